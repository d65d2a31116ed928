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
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_train_fixtures import markov_language, sample_sequences  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
TAU, ALPHA = 2.0, 0.5
GRAD_MODELS = ["llama-gqa", "llama-mha-tied", "llama-mqa-rope3", "llama-yarn", "llama-dynamic", "qwen2"]


def gradients(name):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "models", name), attn_implementation="eager")
    model = model.double().eval()
    cfg = model.config
    B, T, V, C = 2, 8, cfg.vocab_size, cfg.hidden_size
    g = torch.Generator().manual_seed(9)
    tokens = torch.randint(0, V, (B, T), generator=g)
    teacher_logits = (torch.randn(B, T, V, generator=g) * 2).double()
    targets = [torch.randn(B, T, C, generator=g).double() for _ in range(cfg.num_hidden_layers)]
    block_out = []
    hooks = [blk.register_forward_hook(lambda m, i, o: block_out.append(o[0] if isinstance(o, tuple) else o))
             for blk in model.model.layers]
    logits = model(input_ids=tokens).logits
    for h in hooks:
        h.remove()
    kl = F.kl_div(F.log_softmax(logits / TAU, -1), F.log_softmax(teacher_logits / TAU, -1),
                  log_target=True, reduction="sum") / (B * T) * TAU ** 2
    mse = sum(((h - t) ** 2).mean() for h, t in zip(block_out, targets)) / len(targets)
    loss = kl + ALPHA * mse
    loss.backward()
    out = {"tokens": tokens.to(torch.int64), "teacher_logits": teacher_logits.float(),
           "loss": loss.detach().float().reshape(())}
    for i, t in enumerate(targets):
        out[f"hidden_target.{i}"] = t.float()
    for pname, p in model.named_parameters():
        out["grad." + pname] = p.grad.float()
    print(f"{name}: loss {loss.item():.6f} (kl {kl.item():.6f}, mse {mse.item():.6f}), {len(out)} tensors")
    os.makedirs(os.path.join(ROOT, "train"), exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(ROOT, "train", f"{name}-grads.safetensors"),
              metadata={"format": "pt", "tau": str(TAU), "alpha": str(ALPHA)})


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
    model = LlamaForCausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    steps = 800
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        ids = torch.from_numpy(sample_sequences(nxt, prob, 32, T, rng))
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"teacher step {step} loss {loss.item():.4f}")
    p = prob.reshape(-1, 3)
    print(f"entropy rate of the language: {-(p * np.log(p + 1e-30)).sum(1).mean():.4f} nats")
    out = os.path.join(ROOT, "models", "llama-teacher4")
    model.eval().save_pretrained(out)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)


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

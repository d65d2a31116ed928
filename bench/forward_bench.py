#!/usr/bin/env python3
"""Forward-pass speed: `ckpt forward` against PyTorch on the same machine, same thread count.

    python bench/forward_bench.py --ckpt .build/release/ckpt     # needs torch + transformers

Builds random-weight models with transformers (fixed seed, cached in --workdir; --models picks):
  gpt2-124m   GPT2LMHeadModel with GPT-2 small's config (124M parameters)
  llama-100m  LlamaForCausalLM, hidden 768, 10 layers, 12 heads / 4 key-value heads,
              intermediate 2048, vocabulary 32000, untied head (~112M parameters)
  llama-1b    LlamaForCausalLM in Llama-3.2-1B's shape: hidden 2048, 16 layers, 32 heads / 8
              key-value heads (head size 64), intermediate 8192, vocabulary 128256, tied
              embeddings, llama3 rope scaling (1.24B parameters, ~5 GB in f32 on each side)
and times one 128-token sequence (batch 1, full-sequence forward, no KV cache) for each
thread count: PyTorch in inference mode (eager attention) and `ckpt forward --repeat`,
median of --repeat runs after a warm-up. Both sides are charged the same FLOP count (matrix
products + attention). Also checks that the two agree on the logits.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import torch


def flops_gpt2(cfg, T):
    C, L, V = cfg.n_embd, cfg.n_layer, cfg.vocab_size
    inner = cfg.n_inner or 4 * C
    return L * (2.0 * T * C * (3 * C + C + 2 * inner) + 4.0 * T * T * C) + 2.0 * T * C * V


def flops_llama(cfg, T):
    C, L, V, inner = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size, cfg.intermediate_size
    hs = C // cfg.num_attention_heads
    proj = C * (2 * cfg.num_attention_heads * hs + 2 * cfg.num_key_value_heads * hs) + 3.0 * C * inner
    return L * (2.0 * T * proj + 4.0 * T * T * cfg.num_attention_heads * hs) + 2.0 * T * C * V


MODELS = ("gpt2-124m", "llama-100m", "llama-1b")


def build_models(workdir, names):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    configs = {
        "gpt2-124m": (GPT2LMHeadModel, flops_gpt2, lambda: GPT2Config(attn_implementation="eager")),
        "llama-100m": (LlamaForCausalLM, flops_llama, lambda: LlamaConfig(
            hidden_size=768, intermediate_size=2048, num_hidden_layers=10, num_attention_heads=12,
            num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048,
            tie_word_embeddings=False, attn_implementation="eager")),
        "llama-1b": (LlamaForCausalLM, flops_llama, lambda: LlamaConfig(
            hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
            num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
            rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
            rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
            attn_implementation="eager")),
    }
    models = {}
    for name in names:
        cls, flops_fn, make_config = configs[name]
        path = os.path.join(workdir, name)
        if not os.path.exists(os.path.join(path, "model.safetensors")):
            torch.manual_seed(0)  # each model from the same fixed seed, whichever are built
            cls(make_config()).save_pretrained(path, max_shard_size="20GB")
        models[name] = (path, cls, flops_fn)
    return models


def time_torch(model, ids, threads, repeat):
    torch.set_num_threads(threads)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits  # warm-up
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            model(input_ids=ids)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), logits[0].float().numpy()


def time_ckpt(ckpt, path, tokens, threads, repeat, out):
    cmd = [ckpt, "forward", path, "--tokens", ",".join(map(str, tokens)), "--threads", str(threads),
           "--repeat", str(repeat + 1), "--output", out]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = re.search(r"forward ([0-9.]+) s", r.stdout)
    return float(m.group(1)), np.load(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=".build/release/ckpt")
    ap.add_argument("--workdir", default="/tmp/ckpt-forward-bench")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default="gpt2-124m,llama-100m,llama-1b",
                    help="comma-separated, from: " + ", ".join(MODELS))
    ap.add_argument("--markdown-out")
    args = ap.parse_args()
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}; known: {', '.join(MODELS)}")
    os.makedirs(args.workdir, exist_ok=True)
    models = build_models(args.workdir, names)
    rows = []
    for name, (path, cls, flops_fn) in models.items():
        rng = np.random.default_rng(0)
        model = cls.from_pretrained(path, attn_implementation="eager").eval()
        cfg = model.config
        tokens = rng.integers(0, cfg.vocab_size, args.tokens).tolist()
        ids = torch.tensor([tokens])
        flops = flops_fn(cfg, args.tokens)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        for threads in [int(t) for t in args.threads.split(",")]:
            t_torch, ref = time_torch(model, ids, threads, args.repeat)
            t_ckpt, got = time_ckpt(args.ckpt, path, tokens, threads, args.repeat, os.path.join(args.workdir, "out.npy"))
            err = float(np.abs(got - ref).max() / np.abs(ref).max())
            rows.append((name, params, threads, t_torch, t_ckpt, flops, err))
            print(f"{name} threads={threads}: torch {t_torch:.4f}s ckpt {t_ckpt:.4f}s rel.err {err:.1e}", file=sys.stderr)
        del model

    lines = [
        f"One sequence of {args.tokens} tokens, batch 1, median of {args.repeat} runs after a warm-up; "
        f"torch {torch.__version__} (eager attention, inference mode), same thread count on both sides.",
        "",
        "| model | params | threads | PyTorch tokens/s | ckpt tokens/s | ckpt / PyTorch | PyTorch GFLOP/s | ckpt GFLOP/s | max rel. diff of logits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, params, threads, tt, tc, flops, err in rows:
        lines.append(f"| {name} | {params:.0f}M | {threads} | {args.tokens / tt:.0f} | {args.tokens / tc:.0f} | "
                     f"{tt / tc:.2f}× | {flops / tt / 1e9:.1f} | {flops / tc / 1e9:.1f} | {err:.1e} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown_out:
        with open(args.markdown_out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Forward-pass speed: `ckpt forward` against PyTorch on the same machine, same thread count.

    python bench/forward_bench.py --ckpt .build/release/ckpt     # needs torch + transformers

Builds two random-weight models with transformers (cached in --workdir):
  gpt2-124m   GPT2LMHeadModel with GPT-2 small's config (124M parameters)
  llama-100m  LlamaForCausalLM, hidden 768, 10 layers, 12 heads / 4 key-value heads,
              intermediate 2048, vocabulary 32000, untied head (~112M parameters)
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


def build_models(workdir):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    models = {}
    torch.manual_seed(0)
    path = os.path.join(workdir, "gpt2-124m")
    cfg = GPT2Config(attn_implementation="eager")
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        GPT2LMHeadModel(cfg).save_pretrained(path)
    models["gpt2-124m"] = (path, GPT2LMHeadModel, flops_gpt2)
    path = os.path.join(workdir, "llama-100m")
    cfg = LlamaConfig(hidden_size=768, intermediate_size=2048, num_hidden_layers=10, num_attention_heads=12,
                      num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048,
                      tie_word_embeddings=False, attn_implementation="eager")
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        LlamaForCausalLM(cfg).save_pretrained(path)
    models["llama-100m"] = (path, LlamaForCausalLM, flops_llama)
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
    ap.add_argument("--markdown-out")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    models = build_models(args.workdir)
    rng = np.random.default_rng(0)
    rows = []
    for name, (path, cls, flops_fn) in models.items():
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

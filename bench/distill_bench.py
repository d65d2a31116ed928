#!/usr/bin/env python3
"""Distillation benchmark (issues 9, 22): a trained teacher into a smaller student.

    swift build -c release
    python3 bench/distill_bench.py --ckpt .build/release/ckpt [--steps 600] [--markdown-out section.md]
    python3 bench/distill_bench.py --teacher fixtures/models/llama-teacher4 --student "--layers 2"
    python3 bench/distill_bench.py --teacher fixtures/models/llama-teacher4 --student "--hidden 32 --heads 2 --intermediate 64"

Steps (standard library only):
  1. `ckpt distill --steps 0` writes the student merely initialised by pruning (--student flags,
     default `--layers 2`: teacher blocks 0 and 3) and the held-out sequences the teacher sampled (never trained on).
  2. `ckpt distill --steps N` trains the same student (timed, 1 BLAS thread).
  3. `ckpt verify teacher student --tokens heldout.txt --json` for both: KL(teacher ‖ student),
     top-1 agreement; the reduction of the KL is the issue's criterion (>= 50 %).
  4. The same run with --threads 2: is the output byte-identical (determinism across thread counts)?
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def run(cmd):
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return p, dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(ROOT, ".build/release/ckpt"))
    ap.add_argument("--teacher", default=os.path.join(ROOT, "fixtures/models/gpt2-teacher4"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", default="3e-3")
    ap.add_argument("--sequences", type=int, default=512)
    ap.add_argument("--eval-sequences", type=int, default=64)
    ap.add_argument("--hidden-weight", default="0")
    ap.add_argument("--student", default="--layers 2", help="the student's ckpt distill flags")
    ap.add_argument("--markdown-out")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ckpt-distill-bench-")
    common = a.student.split() + ["--sequences", str(a.sequences), "--eval-sequences", str(a.eval_sequences),
              "--length", "64", "--batch", str(a.batch), "--lr", a.lr, "--seed", "0",
              "--hidden-weight", a.hidden_weight]
    held = os.path.join(work, "heldout.txt")
    _, t_init = run([a.ckpt, "distill", a.teacher, f"{work}/init/student.safetensors", "--steps", "0",
                     "--save-eval-tokens", held] + common)
    p, t_run = run([a.ckpt, "distill", a.teacher, f"{work}/dist/student.safetensors", "--steps", str(a.steps),
                    "--threads", "1"] + common)
    log = p.stderr
    p2, t_run2 = run([a.ckpt, "distill", a.teacher, f"{work}/dist2/student.safetensors", "--steps", str(a.steps),
                      "--threads", "2", "--quiet"] + common)
    # The 1- and 2-thread students, tensor by tensor (the metadata differs: it records --threads).
    d = subprocess.run([a.ckpt, "diff", f"{work}/dist/student.safetensors", f"{work}/dist2/student.safetensors", "--json"],
                       capture_output=True, text=True)
    diff_tensors = json.loads(d.stdout)["tensors"]
    same_threads = all(t["status"] == "identical" for t in diff_tensors)
    thread_diff = max([t.get("max_abs", 0.0) for t in diff_tensors] or [0.0])
    p3, _ = run([a.ckpt, "distill", a.teacher, f"{work}/dist3/student.safetensors", "--steps", str(a.steps),
                 "--threads", "1", "--quiet"] + common)
    with open(f"{work}/dist/student.safetensors", "rb") as f1, open(f"{work}/dist3/student.safetensors", "rb") as f3:
        same_rerun = f1.read() == f3.read()  # the whole file, metadata included

    def verify(cand):
        p, _ = run([a.ckpt, "verify", a.teacher, cand, "--tokens", held, "--json"])
        return json.loads(p.stdout)["overall"]

    v0 = verify(f"{work}/init/student.safetensors")
    v1 = verify(f"{work}/dist/student.safetensors")
    red = (v0["kl_mean"] - v1["kl_mean"]) / v0["kl_mean"] * 100
    steps_line = [l for l in log.splitlines() if l.startswith("step ")]
    ms = [float(l.split()[-2]) for l in steps_line if l.endswith("ms/step")]

    with open(os.path.join(a.teacher, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(work, "dist", "config.json")) as f:
        scfg = json.load(f)

    def sizes(c):
        get = lambda *ks: next((c[k] for k in ks if c.get(k) is not None), None)
        return (f"{get('num_hidden_layers', 'n_layer')} layers, hidden {get('hidden_size', 'n_embd')}, "
                f"{get('num_attention_heads', 'n_head')} heads"
                + (f" ({c['num_key_value_heads']} key/value)" if c.get("num_key_value_heads") else "")
                + f", MLP {get('intermediate_size', 'n_inner') or 4 * get('hidden_size', 'n_embd')}")
    if cfg.get("model_type") != "gpt2":
        lines = [
            f"### {cfg['architectures'][0]} teacher, student `{a.student}`",
            "",
            f"Teacher: `{os.path.relpath(a.teacher, ROOT)}` ({sizes(cfg)}, vocab {cfg['vocab_size']}), trained by "
            "`tools/make_llama_train_fixtures.py` on the order-2 Markov language of the GPT-2 teacher. "
            f"Student: {sizes(scfg)}, pruned from the teacher by activation importance (`{a.student}`), then "
            f"trained for {a.steps} steps of {a.batch} × 64 tokens on {a.sequences} teacher-sampled sequences "
            f"(AdamW, lr {a.lr}, 5 % warmup, cosine decay, clip 1, τ = 2, seed 0); held out: {a.eval_sequences} "
            "further sequences, compared by `ckpt verify --tokens`. Same machine and build as above.",
            "",
            "| student | KL mean | KL max | top-1 agreement | perplexity (student / teacher) |",
            "|---|---:|---:|---:|---:|",
            f"| pruned, untrained (`--steps 0`) | {v0['kl_mean']:.4f} | {v0['kl_max']:.3f} | {v0['top1']:.3f} | "
            f"{v0['perplexity_candidate']:.2f} / {v0['perplexity_reference']:.2f} |",
            f"| distilled | {v1['kl_mean']:.4f} | {v1['kl_max']:.3f} | {v1['top1']:.3f} | "
            f"{v1['perplexity_candidate']:.2f} / {v1['perplexity_reference']:.2f} |",
            "",
            f"KL reduction: **{red:.1f} %** (issue: ≥ 50 %). {t_run:.1f} s wall for {a.steps} steps (median "
            f"{sorted(ms)[len(ms) // 2] if ms else float('nan'):.1f} ms/step, 1 BLAS thread). Second 1-thread run "
            f"byte-identical: {'yes' if same_rerun else 'NO'}; 2 threads byte-identical: {'yes' if same_threads else 'no'}.",
        ]
        return finish(lines, a, steps_line, work)
    lines = [
        "## Distillation, issue 9",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared with other jobs; "
        f"run on {time.strftime('%Y-%m-%d')}, release build. Reproduce: `swift build -c release && "
        f"python3 bench/distill_bench.py --ckpt .build/release/ckpt --steps {a.steps}`.",
        "",
        f"Teacher: `fixtures/models/gpt2-teacher4`, GPT-2 with {cfg['n_layer']} layers, n_embd {cfg['n_embd']}, "
        f"{cfg['n_head']} heads, vocab {cfg['vocab_size']}, trained by `tools/make_train_fixtures.py` on an order-2 "
        "Markov language. Student: 2 layers (teacher blocks 0 and 3 copied, embeddings and ln_f copied), "
        f"trained for {a.steps} steps of {a.batch} × 64 tokens on {a.sequences} teacher-sampled sequences "
        f"(AdamW, lr {a.lr}, 5 % warmup, cosine decay, clip 1, τ = 2, hidden weight {a.hidden_weight}, seed 0). "
        f"Held out: {a.eval_sequences} further teacher-sampled sequences of 64 tokens, never trained on, "
        "compared by `ckpt verify --tokens` (KL(teacher ‖ student) mean over positions, nats).",
        "",
        "| student | KL mean | KL max | top-1 agreement | perplexity (student / teacher) |",
        "|---|---:|---:|---:|---:|",
        f"| initialised by layer selection | {v0['kl_mean']:.4f} | {v0['kl_max']:.3f} | {v0['top1']:.3f} | "
        f"{v0['perplexity_candidate']:.2f} / {v0['perplexity_reference']:.2f} |",
        f"| distilled | {v1['kl_mean']:.4f} | {v1['kl_max']:.3f} | {v1['top1']:.3f} | "
        f"{v1['perplexity_candidate']:.2f} / {v1['perplexity_reference']:.2f} |",
        "",
        f"KL reduction: **{red:.1f} %** (issue: ≥ 50 %). Distillation run: {t_run:.1f} s wall for {a.steps} steps "
        f"including data sampling and the final verify (median {sorted(ms)[len(ms) // 2] if ms else float('nan'):.1f} ms/step, "
        f"1 BLAS thread). Initialisation only (`--steps 0`: teacher sampling and the held-out KL): {t_init:.1f} s.",
        "",
        f"Determinism: a second 1-thread run gives a byte-identical student: {'yes' if same_rerun else 'NO'}. "
        f"With 2 BLAS threads ({t_run2:.1f} s; no faster at this size): every tensor byte-identical to the 1-thread "
        f"run: {'yes' if same_threads else 'no'}"
        + ("" if same_threads else f", largest weight difference {thread_diff:.2g} (OpenBLAS blocks the products "
           "differently per thread count, so rounding differs and grows over the steps)") + ".",
    ]
    finish(lines, a, steps_line, work)


def finish(lines, a, steps_line, work):
    text = "\n".join(lines) + "\n"
    print(text)
    print("\n".join(steps_line[:3] + ["..."] + steps_line[-3:]), file=sys.stderr)
    if a.markdown_out:
        with open(a.markdown_out, "w") as f:
            f.write(text)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()

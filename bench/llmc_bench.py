#!/usr/bin/env python3
"""Training-step speed against llm.c's CPU trainer (issue 22, build item 4).

Clone and build llm.c yourself (this script fetches and compiles nothing):

    git clone https://github.com/karpathy/llm.c /tmp/llm.c
    (cd /tmp/llm.c && gcc -Ofast -march=native -fopenmp -o train_gpt2 train_gpt2.c -lm)
    swift build -c release
    /path/to/python-with-torch bench/llmc_bench.py --llmc /tmp/llm.c [--layers 6 --hidden 384 --heads 6]

Needs torch and transformers (it writes the random-init models). Steps:
  1. One random-init GPT-2 (default 6 layers, 384 wide, 6 heads, vocab 50257, 1024 positions) written twice:
     as a transformers safetensors directory for ckpt and in llm.c's own .bin layout (header magic 20240326,
     version 3; Linear weights stored (out, in), the vocabulary padded to a multiple of 128). Random tokens
     (uniform over the vocabulary) in llm.c's data layout and as a 2-D .npy for ckpt; a placeholder tokenizer
     file so llm.c's periodic sampling runs.
  2. llm.c's stock `train_gpt2` (B = 4, T = 64; its "took N ms" lines time forward + zero-grad + backward +
     AdamW only) with OMP_NUM_THREADS = 1 and 2, stopped after --llmc-steps steps.
  3. `ckpt distill` of the same model into a student of the same shape (every layer kept), --batch 4 --length 64,
     on those tokens, --threads 1 and 2 (OpenBLAS threads); its "ms/step" lines. A ckpt step also runs the
     teacher's forward pass (about a third of a training step's FLOPs), so the ratio overstates ckpt's cost.
  4. The same for a random-init LLaMA of similar size (GQA, SwiGLU, RoPE), compared with the GPT-2 run per FLOP.
Runs are interleaved (llm.c, ckpt GPT-2, ckpt LLaMA per repetition and thread count); medians over steps
(first step dropped) and then over repetitions. The machine may be shared: compare the ratios, not the times.
"""

import argparse
import json
import os
import platform
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
B, T = 4, 64  # fixed in llm.c's train_gpt2.c


def write_models(work, a):
    import numpy as np
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    V, C, L, NH, maxT = 50257, a.hidden, a.layers, a.heads, 1024
    m = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=maxT, n_embd=C, n_layer=L, n_head=NH)).eval()
    m.save_pretrained(f"{work}/gpt2", safe_serialization=True)
    sd = {k: v.detach().float().numpy() for k, v in m.state_dict().items()}
    Vp = (V + 127) // 128 * 128
    with open(f"{work}/llmc/gpt2_124M.bin", "wb") as f:
        f.write(np.array([20240326, 3, maxT, V, L, NH, C, Vp] + [0] * 248, dtype=np.int32).tobytes())
        wte = np.zeros((Vp, C), np.float32)
        wte[:V] = sd["transformer.wte.weight"]
        parts = [wte, sd["transformer.wpe.weight"]]
        # HF GPT-2 uses Conv1D, (in, out): llm.c wants (out, in).
        per_layer = [("ln_1.weight", False), ("ln_1.bias", False), ("attn.c_attn.weight", True),
                     ("attn.c_attn.bias", False), ("attn.c_proj.weight", True), ("attn.c_proj.bias", False),
                     ("ln_2.weight", False), ("ln_2.bias", False), ("mlp.c_fc.weight", True),
                     ("mlp.c_fc.bias", False), ("mlp.c_proj.weight", True), ("mlp.c_proj.bias", False)]
        for name, tr in per_layer:
            parts.append(np.stack([sd[f"transformer.h.{i}.{name}"].T if tr else sd[f"transformer.h.{i}.{name}"]
                                   for i in range(L)]))
        parts += [sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"]]
        for p in parts:
            f.write(np.ascontiguousarray(p, dtype=np.float32).tobytes())
    rng = np.random.default_rng(0)
    toks = rng.integers(0, V - 1, size=(256, T + 1)).astype(np.int64)
    np.save(f"{work}/tokens.npy", toks)
    os.makedirs(f"{work}/llmc/dev/data/tinyshakespeare", exist_ok=True)
    for split in ("train", "val"):
        flat = toks.reshape(-1).astype(np.uint16)
        with open(f"{work}/llmc/dev/data/tinyshakespeare/tiny_shakespeare_{split}.bin", "wb") as f:
            f.write(np.array([20240520, 1, flat.size] + [0] * 253, dtype=np.int32).tobytes())
            f.write(flat.tobytes())
    with open(f"{work}/llmc/gpt2_tokenizer.bin", "wb") as f:
        f.write(np.array([20240328, 2, V, 50256] + [0] * 252, dtype=np.uint32).tobytes())
        for i in range(V):
            s = f"<{i}>".encode()
            f.write(struct.pack("B", len(s)) + s)
    lc = LlamaConfig(vocab_size=V, hidden_size=C, intermediate_size=a.llama_intermediate, num_hidden_layers=L,
                     num_attention_heads=NH, num_key_value_heads=a.llama_kv_heads, max_position_embeddings=maxT,
                     tie_word_embeddings=True)
    LlamaForCausalLM(lc).eval().save_pretrained(f"{work}/llama", safe_serialization=True)

    def flops_per_token(mlp_mats, attn_proj):
        # 6 FLOPs per weight per token (forward 2, backward 4) for every matrix incl. the LM head,
        # plus causal attention: QK^T and AV, forward + backward, about 6·L·T·C per token.
        n = L * (attn_proj + mlp_mats) + V * C
        return 6 * n + 6 * L * T * C
    hd = C // NH
    gpt2_f = flops_per_token(8 * C * C, 4 * C * C)
    llama_f = flops_per_token(3 * C * a.llama_intermediate, 2 * C * C + 2 * C * a.llama_kv_heads * hd)
    return gpt2_f, llama_f


def llmc_run(a, work, threads):
    # Stopped after --llmc-steps steps (before its step-20 sampling); stdbuf makes its stdout line-buffered.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.Popen(["stdbuf", "-oL", os.path.join(os.path.abspath(a.llmc), "train_gpt2")], cwd=f"{work}/llmc",
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ms, tail = [], []
    for line in p.stdout:
        tail = (tail + [line])[-20:]
        m = re.match(r"step (\d+): train loss \S+ \(took ([\d.]+) ms\)", line)
        if m:
            ms.append(float(m.group(2)))
            if len(ms) > a.llmc_steps:
                p.kill()
                break
    p.wait()
    if len(ms) <= a.llmc_steps:
        sys.exit("llm.c failed:\n" + "".join(tail))
    return statistics.median(ms[1:])


def ckpt_run(a, work, model, threads):
    cmd = [a.ckpt, "distill", f"{work}/{model}", f"{work}/out-{model}-{threads}/student.safetensors",
           "--layers", str(a.layers), "--data", f"{work}/tokens.npy", "--batch", str(B), "--length", str(T),
           "--steps", str(a.steps), "--log-every", "1", "--save-every", "0", "--threads", str(threads),
           "--verify-sequences", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 and "can be trained so far" in p.stderr:
        return None  # this build cannot train the family
    if p.returncode != 0:
        sys.exit(f"ckpt failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    ms = [float(x) for x in re.findall(r"([\d.]+) ms/step", p.stderr)]
    return statistics.median(ms[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmc", required=True, help="llm.c checkout with train_gpt2 built in it")
    ap.add_argument("--ckpt", default=os.path.join(ROOT, ".build/release/ckpt"))
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--llama-intermediate", type=int, default=1024)
    ap.add_argument("--llama-kv-heads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8, help="ckpt steps per run")
    ap.add_argument("--llmc-steps", type=int, default=11, help="llm.c steps per run")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--markdown-out")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ckpt-llmc-bench-")
    os.makedirs(f"{work}/llmc")
    gpt2_f, llama_f = write_models(work, a)
    res = {}
    for rep in range(a.reps):
        for th in [int(x) for x in a.threads.split(",")]:
            for name, fn in (("llm.c", lambda: llmc_run(a, work, th)),
                             ("ckpt gpt2", lambda: ckpt_run(a, work, "gpt2", th)),
                             ("ckpt llama", lambda: ckpt_run(a, work, "llama", th))):
                if name == "ckpt llama" and res.get((name, th)) == [None]:
                    continue
                v = fn()
                if v is None:
                    res[(name, th)] = [None]
                    print(f"threads {th} {name}: not trainable by this build", file=sys.stderr, flush=True)
                    continue
                res.setdefault((name, th), []).append(v)
                print(f"rep {rep} threads {th} {name}: {v:.1f} ms/step", file=sys.stderr, flush=True)
    ntok = B * T
    lines = [
        "## Training step against llm.c (issue 22)",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared with other jobs "
        f"(noisy: read the ratios); run on {time.strftime('%Y-%m-%d')}. llm.c's CPU trainer `train_gpt2.c` built "
        "here with `gcc -Ofast -march=native -fopenmp`; ckpt release build. Reproduce: "
        "`python bench/llmc_bench.py --llmc /path/to/built/llm.c` (clone and build llm.c yourself).",
        "",
        f"Model: random-init GPT-2, {a.layers} layers, {a.hidden} wide, {a.heads} heads, vocab 50257 "
        f"(the same weights in both programs); B × T = {B} × {T} (llm.c's fixed shape); random tokens. llm.c: "
        f"median of its per-step times (forward, backward, AdamW) over steps 1–{a.llmc_steps}; ckpt: `ckpt distill` into a "
        f"student of the same shape, median of {a.steps} steps' ms/step, which also includes the teacher's "
        "forward pass and the KL loss over the vocabulary (llm.c: cross-entropy). Medians over "
        f"{a.reps} interleaved repetitions. LLaMA: random-init, {a.layers} layers, {a.hidden} wide, {a.heads} "
        f"heads ({a.llama_kv_heads} key/value), SwiGLU {a.llama_intermediate}, tied head; "
        f"training FLOPs/token {llama_f / 1e6:.0f} M vs GPT-2's {gpt2_f / 1e6:.0f} M (6 per weight, plus attention).",
        "",
        "| threads | llm.c ms/token | ckpt GPT-2 ms/token | ratio ckpt/llm.c | ckpt LLaMA ms/token | "
        "LLaMA/GPT-2 time per FLOP |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for th in [int(x) for x in a.threads.split(",")]:
        l = statistics.median(res[("llm.c", th)]) / ntok
        g = statistics.median(res[("ckpt gpt2", th)]) / ntok
        qs = res.get(("ckpt llama", th), [None])
        if qs == [None]:
            lines.append(f"| {th} | {l:.3f} | {g:.3f} | {g / l:.2f} | not trainable by this build | – |")
        else:
            q = statistics.median(qs) / ntok
            lines.append(f"| {th} | {l:.3f} | {g:.3f} | {g / l:.2f} | {q:.3f} | {(q / llama_f) / (g / gpt2_f):.2f} |")
    out = "\n".join(lines) + "\n"
    print(out)
    print(json.dumps({f"{k[0]}@{k[1]}": v for k, v in res.items()}), file=sys.stderr)
    if a.markdown_out:
        with open(a.markdown_out, "w") as f:
            f.write(out)


if __name__ == "__main__":
    main()

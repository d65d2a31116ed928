#!/usr/bin/env python3
"""Layer-streamed forward/verify: peak memory and speed, streamed vs in-memory (and llama.cpp).

    python bench/stream_bench.py --ckpt .build/release/ckpt             # numpy only
    python bench/stream_bench.py --ckpt .build/release/ckpt --llama \\
        --llama-python /path/to/python-with-llama_cpp                    # + the 1.24B Q8_0 row

Generates (in --workdir, reused when present) with numpy only:
  llama-0.8b   LLaMA-shaped bf16 safetensors: hidden 2048, 6 layers, 32 heads, intermediate
               5632, vocabulary 32000, untied head (0.88 GB), and its q8_0 GGUF made by
               `ckpt quantize --scheme q8_0`;
  llama-1.24b  (--llama) a Llama-3.2-1B-shaped Q8_0 GGUF written with gguf-py: hidden 2048,
               16 layers, 32 heads / 8 key-value heads, intermediate 8192, vocabulary 128256,
               tied embeddings, with a placeholder vocabulary so llama.cpp loads it.
Each measured command runs in a fresh child; its peak resident set comes from getrusage
(RUSAGE_CHILDREN), independent of what ckpt reports. Random weights: speed and memory do not
depend on the values. Times are medians of --repeat runs; the machine may be shared, so
compare ratios measured in the same run.
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

BF16_CONFIG = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=6, num_attention_heads=32,
                   num_key_value_heads=32, vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5,
                   hidden_act="silu", tie_word_embeddings=False, model_type="llama",
                   architectures=["LlamaForCausalLM"], rope_theta=10000.0)


def bf16_bytes(a):
    """float32 array -> bf16 (round to nearest even) as uint16."""
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def make_bf16_model(path):
    if os.path.exists(os.path.join(path, "model.safetensors")):
        return
    os.makedirs(path, exist_ok=True)
    c = BF16_CONFIG
    C, I, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    kv = C // c["num_attention_heads"] * c["num_key_value_heads"]
    rng = np.random.default_rng(0)
    tensors = {}

    def w(name, shape, std=0.02):
        # bf16 stored as raw uint16 in a safetensors "BF16" slot: written below by hand.
        tensors[name] = bf16_bytes(rng.standard_normal(shape, dtype=np.float32) * std)

    w("model.embed_tokens.weight", (V, C))
    for i in range(L):
        p = f"model.layers.{i}."
        w(p + "self_attn.q_proj.weight", (C, C))
        w(p + "self_attn.k_proj.weight", (kv, C))
        w(p + "self_attn.v_proj.weight", (kv, C))
        w(p + "self_attn.o_proj.weight", (C, C))
        w(p + "mlp.gate_proj.weight", (I, C))
        w(p + "mlp.up_proj.weight", (I, C))
        w(p + "mlp.down_proj.weight", (C, I))
        tensors[p + "input_layernorm.weight"] = bf16_bytes(np.ones(C, np.float32))
        tensors[p + "post_attention_layernorm.weight"] = bf16_bytes(np.ones(C, np.float32))
    tensors["model.norm.weight"] = bf16_bytes(np.ones(C, np.float32))
    w("lm_head.weight", (V, C))
    # safetensors.numpy has no bfloat16: write the file with the header by hand.
    header, offset = {}, 0
    for name, a in tensors.items():
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(path, "model.safetensors.tmp"), "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        for a in tensors.values():
            f.write(a.tobytes())
    os.rename(os.path.join(path, "model.safetensors.tmp"), os.path.join(path, "model.safetensors"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(c, f, indent=1)


def make_llama_1b_gguf(path):
    """Llama-3.2-1B shapes, Q8_0, llama.cpp naming and metadata (gguf-py)."""
    if os.path.exists(path):
        return
    import gguf
    C, I, L, V, NH, NKV = 2048, 8192, 16, 128256, 32, 8
    hs = C // NH
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(path + ".tmp", "llama")
    w.add_name("llama-1.24b-random")
    w.add_context_length(2048)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(I)
    w.add_head_count(NH)
    w.add_head_count_kv(NKV)
    w.add_rope_dimension_count(hs)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(V)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>".encode() for i in range(V)])
    w.add_token_scores([0.0] * V)
    w.add_token_types([int(gguf.TokenType.NORMAL)] * V)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def q8(name, shape):
        a = rng.standard_normal(shape, dtype=np.float32) * 0.02
        w.add_tensor(name, gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0), raw_shape=None,
                     raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    def f32(name, n):
        w.add_tensor(name, np.ones(n, np.float32))

    q8("token_embd.weight", (V, C))
    for i in range(L):
        f32(f"blk.{i}.attn_norm.weight", C)
        q8(f"blk.{i}.attn_q.weight", (C, C))
        q8(f"blk.{i}.attn_k.weight", (NKV * hs, C))
        q8(f"blk.{i}.attn_v.weight", (NKV * hs, C))
        q8(f"blk.{i}.attn_output.weight", (C, C))
        f32(f"blk.{i}.ffn_norm.weight", C)
        q8(f"blk.{i}.ffn_gate.weight", (I, C))
        q8(f"blk.{i}.ffn_up.weight", (I, C))
        q8(f"blk.{i}.ffn_down.weight", (C, I))
    f32("output_norm.weight", C)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.rename(path + ".tmp", path)


def measured(cmd, env=None):
    """Runs cmd in a fresh child of a fresh Python; returns (stdout, wall seconds, peak RSS bytes, CPU seconds)."""
    wrapper = ("import resource, subprocess, sys, time, json\n"
               "t = time.time(); r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "dt = time.time() - t; u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr, 'sec': dt,\n"
               "  'rss': u.ru_maxrss * 1024, 'cpu': u.ru_utime + u.ru_stime}))\n")
    r = subprocess.run([sys.executable, "-c", wrapper] + cmd, capture_output=True, text=True, check=True,
                       env=dict(os.environ, **(env or {})))
    j = json.loads(r.stdout)
    if j["rc"] not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed: {j['err']}")
    return j["out"], j["sec"], j["rss"], j["cpu"]


def ckpt_forward(ckpt, model, T, mode, threads, repeat):
    tokens = ",".join(str((i * 7919) % 32000) for i in range(T))
    rows = []
    for _ in range(repeat):
        out, sec, rss, _ = measured([ckpt, "forward", model, "--tokens", tokens, "--execution", mode, "--threads", str(threads)])
        fwd = float(re.search(r"forward ([0-9.]+) s", out).group(1))
        load = float(re.search(r"load ([0-9.]+) s", out).group(1))
        rows.append((load + fwd, rss))
    return statistics.median(r[0] for r in rows), max(r[1] for r in rows)


def ckpt_verify(ckpt, ref, cand, mode, threads, repeat):
    rows = []
    for _ in range(repeat):
        out, sec, rss, _ = measured(["env", f"OPENBLAS_NUM_THREADS={threads}", ckpt, "verify", ref, cand,
                                  "--random-tokens", "2", "--length", "64", "--execution", mode, "--json"])
        rows.append((sec, rss, json.loads(out)))
    return statistics.median(r[0] for r in rows), max(r[1] for r in rows), rows[-1][2]


def llama_cpp(python, model, T, threads, logits_all):
    """One llama.cpp process: load the model and eval the T-token prompt (one shot, as `ckpt
    forward` runs), then eval it again with the model loaded and its pages resident (warm).
    Returns {"one shot": (sec, cpu, rss), "warm": (sec, cpu, rss)}; CPU is the process's, all threads."""
    script = f"""
import json, resource, time
from llama_cpp import Llama
t0, c0 = time.time(), time.process_time()
llm = Llama(model_path={model!r}, n_ctx={T + 16}, n_batch={T}, n_ubatch={T}, n_threads={threads},
            n_threads_batch={threads}, logits_all={logits_all}, use_mmap=True, verbose=False)
tokens = [(i * 7919) % 128000 + 3 for i in range({T})]
llm.eval(tokens)
t1, c1 = time.time(), time.process_time()
llm.reset()
t2, c2 = time.time(), time.process_time()
llm.eval(tokens)
t3, c3 = time.time(), time.process_time()
print(json.dumps({{'one': [t1 - t0, c1 - c0], 'warm': [t3 - t2, c3 - c2],
                   'rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""
    r = subprocess.run([python, "-c", script], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("llama.cpp run failed: " + r.stderr[-2000:])
    j = json.loads(r.stdout.strip().splitlines()[-1])
    return {"load + eval, one shot": (j["one"][0], j["one"][1], j["rss"]),
            "eval only, model loaded (warm)": (j["warm"][0], j["warm"][1], j["rss"])}


def ckpt_prompt(ckpt, model, T, threads, mode, env, extra=()):
    """One `ckpt forward` of the T-token prompt: (load + forward seconds, CPU seconds of the process, peak RSS)."""
    tokens = ",".join(str((i * 7919) % 32000) for i in range(T))
    out, sec, rss, cpu = measured([ckpt, "forward", model, "--tokens", tokens, "--execution", mode,
                                   "--threads", str(threads), *extra], env)
    fwd = float(re.search(r"forward ([0-9.]+) s", out).group(1))
    load = float(re.search(r"load ([0-9.]+) s", out).group(1))
    return load + fwd, cpu, rss


def gb(b):
    return f"{b / 1e9:.2f} GB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--workdir", default="/tmp/ckpt-stream-bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--llama", action="store_true", help="also the 1.24B Q8_0 GGUF against llama.cpp")
    ap.add_argument("--scheme", default="q8_0",
                    help="--llama on the 1.24B GGUF requantized by `ckpt quantize --scheme SCHEME` (e.g. q4_k_m)")
    ap.add_argument("--llama-python", default=os.environ.get("LLAMA_PYTHON", sys.executable))
    ap.add_argument("--skip-bf16", action="store_true")
    ap.add_argument("--skip-f32", action="store_true", help="leave out the f32-widening rows of the --llama table")
    ap.add_argument("--skip-panels", action="store_true", help="leave out the f32-panel row of the --llama table (the slowest)")
    ap.add_argument("--llama-threads", default="1,2", help="thread counts for the --llama table")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; threads {a.threads}; medians of {a.repeat}")

    if not a.skip_bf16:
        model = os.path.join(a.workdir, "llama-0.8b")
        make_bf16_model(model)
        gguf_path = os.path.join(a.workdir, "llama-0.8b-q8_0.gguf")
        if not os.path.exists(gguf_path):
            subprocess.run([a.ckpt, "quantize", model, gguf_path, "--scheme", "q8_0"], check=True, capture_output=True)
        size = os.path.getsize(os.path.join(model, "model.safetensors"))
        print(f"\nllama-0.8b: bf16 safetensors {gb(size)}, q8_0 GGUF {gb(os.path.getsize(gguf_path))}; "
              f"done-when bound (half the bf16 file): {gb(size / 2)}")
        print(f"{'run':44} {'mode':10} {'seconds':>8} {'tokens/s':>9} {'peak RSS':>9} {'/ bf16':>7}")
        for mode in ["streamed", "in-memory"]:
            sec, rss = ckpt_forward(a.ckpt, model, 64, mode, a.threads, a.repeat)
            print(f"{'forward bf16, 64 tokens':44} {mode:10} {sec:8.2f} {64 / sec:9.1f} {gb(rss):>9} {rss / size:7.2f}")
        for mode in ["streamed", "in-memory"]:
            sec, rss, rep = ckpt_verify(a.ckpt, model, gguf_path, mode, a.threads, a.repeat)
            print(f"{'verify bf16 vs q8_0 GGUF, 2 x 64 tokens':44} {mode:10} {sec:8.2f} {128 / sec:9.1f} {gb(rss):>9} "
                  f"{rss / size:7.2f}   (cosine {rep['overall']['cosine']:.6f}, ckpt's estimate {gb(rep['estimated_memory_bytes'])})")

    if a.llama:
        path = os.path.join(a.workdir, "llama-1.24b-q8_0.gguf")
        make_llama_1b_gguf(path)
        if a.scheme != "q8_0":
            requantized = os.path.join(a.workdir, f"llama-1.24b-{a.scheme}.gguf")
            if not os.path.exists(requantized):
                subprocess.run([a.ckpt, "quantize", path, requantized + ".tmp", "--scheme", a.scheme, "--to", "gguf"],
                               check=True, capture_output=True)
                os.rename(requantized + ".tmp", requantized)
            path = requantized
        size = os.path.getsize(path)
        T = 128
        # Every configuration once per round, round after round, so a change in the machine's
        # load hits them alike; medians over the rounds.
        configs = [
            ("ckpt forward, streamed, integer products (all 128 rows of logits)",
             lambda th: ckpt_prompt(a.ckpt, path, T, th, "streamed", {})),
            ("ckpt forward --last-position, streamed, integer products (last row of logits)",
             lambda th: ckpt_prompt(a.ckpt, path, T, th, "streamed", {}, ["--last-position"])),
            ("ckpt forward, streamed, weights widened to f32 + sgemm",
             lambda th: ckpt_prompt(a.ckpt, path, T, th, "streamed", {"CKPT_F32_PRODUCTS": "1"})),
            ("ckpt forward, streamed, f32 panels + sgemm",
             lambda th: ckpt_prompt(a.ckpt, path, T, th, "streamed", {"CKPT_F32_PRODUCTS": "1", "CKPT_PANEL_PRODUCTS": "1"})),
            ("ckpt forward, in-memory, integer products (incl. load)",
             lambda th: ckpt_prompt(a.ckpt, path, T, th, "in-memory", {})),
            ("llama.cpp, logits for all 128 rows", lambda th: llama_cpp(a.llama_python, path, T, th, True)),
            ("llama.cpp, logits for the last row", lambda th: llama_cpp(a.llama_python, path, T, th, False)),
        ]
        # A run may report several rows ({suffix: (sec, cpu, rss)}): llama.cpp one shot and warm.
        if a.skip_f32:
            configs = [c for c in configs if "f32" not in c[0]]
        if a.skip_panels:
            configs = [c for c in configs if "panels" not in c[0]]
        for threads in [int(t) for t in str(a.llama_threads).split(",")]:
            results = {}
            for r in range(a.repeat):
                for name, run in configs:
                    got = run(threads)
                    for suffix, row in (got.items() if isinstance(got, dict) else [("", got)]):
                        key = f"{name}, {suffix}" if suffix else name
                        results.setdefault(key, []).append(row)
                        print(f"  round {r + 1}, {threads} threads: {key}: {row[0]:.2f} s (CPU {row[1]:.2f} s)",
                              file=sys.stderr, flush=True)
            load = os.getloadavg()
            print(f"\nllama-1.24b {a.scheme.upper()} GGUF {gb(size)}; {T}-token prompt, {threads} thread(s), medians of {a.repeat} "
                  f"rounds; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
            print(f"| run | seconds | tokens/s | CPU seconds | peak RSS | / file |")
            print(f"| --- | --- | --- | --- | --- | --- |")
            med = {}
            for name in results:
                rows = results[name]
                sec = statistics.median(x[0] for x in rows)
                cpu = statistics.median(x[1] for x in rows)
                rss = max(x[2] for x in rows)
                med[name] = (sec, cpu)
                print(f"| {name} | {sec:.2f} | {T / sec:.1f} | {cpu:.2f} | {gb(rss)} | {rss / size:.2f} |")
            names = [name for name, _ in configs]

            def ratio(label, ours, theirs):
                if ours in med and theirs in med:
                    print(f"  {label}: ckpt speed ÷ peer speed {med[theirs][0] / med[ours][0]:.2f}x (wall), "
                          f"{med[theirs][1] / med[ours][1]:.2f}x (CPU)")

            for suffix in ["load + eval, one shot", "eval only, model loaded (warm)"]:
                ratio(f"all rows of logits vs llama.cpp {suffix}", names[0], f"{names[-2]}, {suffix}")
                ratio(f"last row of logits vs llama.cpp {suffix}", names[1], f"{names[-1]}, {suffix}")
            for name in names[2:-2]:
                ratio(f"integer products vs {name}", names[0], name)


if __name__ == "__main__":
    main()

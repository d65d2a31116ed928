#!/usr/bin/env python3
"""Benchmark: `ckpt quantize` against llama.cpp's own quantizer (`llama_model_quantize`) on a
LLaMA-shaped f32 GGUF, same thread counts, interleaved, and a byte comparison of every
quantized tensor. Not part of CI (it needs llama.cpp, built by llama-cpp-python).

    make bench-quantize-llamacpp LLAMA_PYTHON=/path/to/venv/bin/python
    python bench/quantize_llamacpp_bench.py --ckpt .build/release/ckpt \
        --llama-python VENV/bin/python [--layers 2] [--hidden 2048] [--repeat 3] [--types q8_0,q4_0]

- The model: random N(0, 0.02) weights with Hugging Face LLaMA names (vocabulary 32000,
  intermediate 2.75 × hidden, untied head) written by numpy + safetensors, then converted to
  an f32 GGUF by `ckpt convert` (llama.cpp's converter would need a tokenizer).
- llama.cpp: `llama_model_quantize` with `pure` set (every 2-D tensor to the one type, as
  `ckpt quantize --scheme` does), nthread = threads; timed inside its Python process around
  the call (interpreter start-up and imports excluded). The mixes (q4_k_m, q5_k_m, q3_k_m,
  q4_k_s, q5_k_s) run without `pure` on both sides: llama.cpp's per-tensor rules against
  ckpt's copy of them (`--scheme q4_k_m`).
- ckpt: `ckpt quantize IN OUT --scheme T --jobs threads --no-errors --quiet` (plus
  `--tensor-type '.*=T'` for the single types, the counterpart of `pure`), the whole
  process (start-up, reading, quantizing, writing, fsync).
- Bytes: every tensor both files hold, compared with gguf-py's reader.
Prints medians and ckpt ÷ llama.cpp speed ratios (> 1 = ckpt faster), of wall time and of
CPU time (user + system: ckpt's whole process, llama.cpp's quantize call), which a loaded
machine distorts less than wall time.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

LLAMA = r"""
import ctypes, json, sys, time, llama_cpp
src, dst, ftype, threads, pure = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
p = llama_cpp.llama_model_quantize_default_params()
p.nthread = threads
p.ftype = ftype
p.pure = pure
t0, c0 = time.perf_counter(), time.process_time()
rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}))
"""

FTYPES = {"q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9, "q4_k": 15, "q5_k": 17, "q6_k": 18, "q2_k": 10, "q3_k": 12}
# llama-quantize's mixes, run without `pure` on both sides (ckpt's `--scheme q4_k_m` is the same
# preset: each tensor gets the type llama.cpp's rules give it).
MIXES = {"q4_k_m": 15, "q5_k_m": 17, "q3_k_m": 12, "q4_k_s": 14, "q5_k_s": 16}

COMPARE = r"""
import json, sys
import numpy as np
from gguf import GGUFReader
a, b = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
tb = {t.name: t for t in b.tensors}
same = diff = 0
names = []
for t in a.tensors:
    u = tb.get(t.name)
    if u is None or len(t.shape) < 2 or t.tensor_type != u.tensor_type: continue
    if np.asarray(t.data).tobytes() == np.asarray(u.data).tobytes(): same += 1
    else: diff += 1; names.append(t.name)
print(json.dumps({"same": same, "different": diff, "names": names[:5]}))
"""


def make_model(d, layers, hidden, python):
    script = r"""
import json, sys, numpy as np
from safetensors.numpy import save_file
d, layers, hidden = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
vocab, inter, heads = 32000, hidden * 11 // 4 // 256 * 256, hidden // 64
rng = np.random.default_rng(0)
w = lambda *s: (rng.standard_normal(s, dtype=np.float32) * 0.02)
t = {"model.embed_tokens.weight": w(vocab, hidden), "model.norm.weight": np.ones(hidden, np.float32), "lm_head.weight": w(vocab, hidden)}
for i in range(layers):
    p = f"model.layers.{i}."
    for m in "qkvo": t[p + f"self_attn.{m}_proj.weight"] = w(hidden, hidden)
    t[p + "mlp.gate_proj.weight"] = w(inter, hidden); t[p + "mlp.up_proj.weight"] = w(inter, hidden)
    t[p + "mlp.down_proj.weight"] = w(hidden, inter)
    t[p + "input_layernorm.weight"] = np.ones(hidden, np.float32); t[p + "post_attention_layernorm.weight"] = np.ones(hidden, np.float32)
save_file(t, d + "/model.safetensors", metadata={"format": "pt"})
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden, "intermediate_size": inter,
           "num_attention_heads": heads, "num_key_value_heads": heads, "num_hidden_layers": layers, "vocab_size": vocab,
           "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
           "torch_dtype": "float32"}, open(d + "/config.json", "w"))
print(sum(a.size for a in t.values()))
"""
    os.makedirs(d, exist_ok=True)
    r = subprocess.run([python, "-c", script, d, str(layers), str(hidden)], check=True, capture_output=True, text=True)
    return int(r.stdout.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default=".build/release/ckpt")
    ap.add_argument("--llama-python", required=True, help="a Python with llama_cpp (llama-cpp-python) and gguf")
    ap.add_argument("--python", default=sys.executable, help="a Python with numpy + safetensors (model generation)")
    ap.add_argument("--workdir", default="/tmp/ckpt-quant-llamacpp")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--types", default="q8_0,q4_0,q4_1,q5_0,q5_1,q6_k,q4_k,q4_k_m,q5_k,q2_k,q3_k")
    ap.add_argument("--markdown-out")
    ap.add_argument("--regenerate", action="store_true", help="rebuild the model and its f32 GGUF even if --workdir has them")
    a = ap.parse_args()
    ckpt = os.path.abspath(a.ckpt)
    w = lambda n: os.path.join(a.workdir, n)  # noqa: E731
    params = make_model(w("hf"), a.layers, a.hidden, a.python) if a.regenerate or not os.path.exists(w("hf/params")) else int(open(w("hf/params")).read())
    open(w("hf/params"), "w").write(str(params))
    if not os.path.exists(w("f32.gguf")) or a.regenerate:
        subprocess.run([ckpt, "convert", w("hf"), w("f32.gguf"), "--quiet"], check=True)
    size = os.path.getsize(w("f32.gguf"))
    lines = [f"LLaMA-shaped model: hidden {a.hidden}, {a.layers} layers, vocabulary 32000, {params / 1e6:.0f}M parameters, "
             f"f32 GGUF {size / 1e9:.2f} GB; medians of {a.repeat} interleaved runs; wall seconds.\n",
             "| type | threads | ckpt s | llama.cpp s | ckpt ÷ llama.cpp speed | CPU s ckpt / llama.cpp | ÷ in CPU time | 2-D tensors byte-identical |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    print("\n".join(lines), flush=True)
    for typ in a.types.split(","):
        for threads in [int(x) for x in a.threads.split(",")]:
            c, l, cc, lc = [], [], [], []
            for _ in range(a.repeat):
                for f in (w("ckpt.gguf"), w("llama.gguf")):
                    if os.path.exists(f): os.unlink(f)
                t0 = time.perf_counter()
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                # `pure` on ckpt's side: names such as q4_0 and q6_k are also llama-quantize presets
                # (output.weight → Q6_K); the override gives every 2-D tensor the one type.
                pure_args = [] if typ in MIXES else ["--tensor-type", f".*={typ}"]
                subprocess.run([ckpt, "quantize", w("f32.gguf"), w("ckpt.gguf"), "--scheme", typ, "--jobs", str(threads),
                                "--no-errors", "--quiet", *pure_args], check=True, stdout=subprocess.DEVNULL)
                c.append(time.perf_counter() - t0)
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cc.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
                ftype, pure = (MIXES[typ], "0") if typ in MIXES else (FTYPES[typ], "1")
                r = subprocess.run([a.llama_python, "-c", LLAMA, w("f32.gguf"), w("llama.gguf"), str(ftype), str(threads), pure],
                                   check=True, capture_output=True, text=True)
                res = json.loads(r.stdout.strip().splitlines()[-1])
                if res["rc"] != 0: sys.exit(f"llama_model_quantize failed: {r.stderr[-2000:]}")
                l.append(res["seconds"])
                lc.append(res["cpu"])
            cmp = json.loads(subprocess.run([a.llama_python, "-c", COMPARE, w("ckpt.gguf"), w("llama.gguf")], check=True,
                                            capture_output=True, text=True).stdout.strip().splitlines()[-1])
            mc, ml = statistics.median(c), statistics.median(l)
            ident = f"{cmp['same']}/{cmp['same'] + cmp['different']}" + (f" (differ: {', '.join(cmp['names'])})" if cmp["different"] else "")
            mcc, mlc = statistics.median(cc), statistics.median(lc)
            line = f"| {typ} | {threads} | {mc:.2f} | {ml:.2f} | {ml / mc:.2f}× | {mcc:.2f} / {mlc:.2f} | {mlc / mcc:.2f}× | {ident} |"
            lines.append(line)
            print(line, flush=True)
    if a.markdown_out:
        open(a.markdown_out, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

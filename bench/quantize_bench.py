#!/usr/bin/env python3
"""Quantization throughput (GB/s of f32 input) per scheme: ckpt vs gguf-py vs ggml's C reference.

    python bench/quantize_bench.py --ckpt .build/release/ckpt [--ggml-src DIR] [--rows 8192] [--cols 4096]

One f32 tensor of rows × cols standard-normal values (default 8192 × 4096 = 128 MiB) is
quantized to each scheme by:
  ckpt       `ckpt quantize in.safetensors out.gguf --scheme S --no-errors --json` on all cores
             and with --jobs 1: the kernel time it reports (`quantize_seconds`), and end to end
             (process start, read from the page cache, quantize, write + fsync the GGUF).
  gguf-py    `gguf.quants.quantize(array, type)` in this process (numpy; the 32-value types only:
             gguf-py cannot quantize k-quants).
  ggml C     ggml's reference quantizers (`quantize_row_*_ref`, what llama-quantize's
             ggml_quantize_chunk runs without an importance matrix), one core, kernel only:
             bench/ggml_ref/harness.c compiled with gcc -O2 -march=native against ggml's
             sources (given with --ggml-src, else cloned into /tmp). Never committed.
One-core figures use CPU time (the process's user + system time; for ckpt the whole process,
reading and writing included), so other load on the machine does not distort them; the
all-cores column is wall-clock kernel time and does depend on what else runs. Each figure is
the median of --runs runs (default 3). Bytes are compared too: ckpt's GGUF
tensor must equal gguf-py's bytes for the 32-value types.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from safetensors.numpy import save_file

SCHEMES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "int8", "int4"]
GGUF_PY = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1"}
GGML_C = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"}


def build_ggml(src, work):
    """Compiles ggml-quants.c and the harness; returns the binary path or None."""
    if src is None:
        src = os.path.join(work, "ggml")
        r = subprocess.run(["git", "clone", "--depth", "1", "https://github.com/ggerganov/ggml", src], capture_output=True)
        if r.returncode != 0:
            print("ggml C reference: cannot clone ggml:", r.stderr.decode()[:200], file=sys.stderr)
            return None
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(work, "ggml-ref")
    flags = ["-O2", "-march=native", "-I" + os.path.join(src, "src"), "-I" + os.path.join(src, "include")]
    obj = os.path.join(work, "quants.o")
    for cmd in (["gcc", *flags, "-c", os.path.join(src, "src", "ggml-quants.c"), "-o", obj],
                ["gcc", *flags, os.path.join(here, "ggml_ref", "harness.c"), obj, "-lm", "-o", out]):
        r = subprocess.run(cmd, capture_output=True)
        if r.returncode != 0:
            print("ggml C reference: build failed:", r.stderr.decode()[:400], file=sys.stderr)
            return None
    return out


def median_time(fn, runs, clock=time.perf_counter):
    times = []
    for _ in range(runs):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=".build/release/ckpt")
    ap.add_argument("--ggml-src", default=None)
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    import gguf
    from gguf.quants import quantize
    work = tempfile.mkdtemp(prefix="ckpt-qbench-")
    try:
        x = np.random.default_rng(0).standard_normal((args.rows, args.cols)).astype(np.float32)
        gb = x.nbytes / 1e9
        src = os.path.join(work, "in.safetensors")
        save_file({"w": x}, src)
        raw = os.path.join(work, "in.f32")
        x.tofile(raw)
        ggml = build_ggml(args.ggml_src, work)
        cores = os.cpu_count()
        results = []
        for s in SCHEMES:
            row = {"scheme": s}
            # ckpt's own int8/int4 types need .ckz; here they go to f32 safetensors (--dequantize)
            # and only the kernel time counts.
            own = s.startswith("int")
            out = os.path.join(work, "out.safetensors" if own else "out.gguf")
            for jobs, key in ((cores, "ckpt"), (1, "ckpt_1core")):
                cmd = [args.ckpt, "quantize", src, out, "--scheme", s, "--no-errors", "--jobs", str(jobs), "--quiet", "--json"]
                if own:
                    cmd.append("--dequantize")
                subprocess.run(cmd, check=True, capture_output=True)  # warm-up
                kernel = []

                def run_ckpt():
                    r = subprocess.run(cmd, check=True, capture_output=True)
                    kernel.append(json.loads(r.stdout)["quantize_seconds"])
                if jobs == 1:
                    row[key + "_cpu"] = gb / median_time(run_ckpt, args.runs, clock=children_cpu)
                else:
                    median_time(run_ckpt, args.runs)
                row[key] = gb / statistics.median(kernel)
            if s in GGUF_PY:
                t = getattr(gguf.GGMLQuantizationType, s.upper())
                ref = None

                def run_py():
                    nonlocal ref
                    ref = quantize(x, t)
                row["gguf_py"] = gb / median_time(run_py, args.runs, clock=time.process_time)
                ours = gguf.GGUFReader(out).tensors[0].data
                row["bytes_equal_gguf_py"] = bool(np.array_equal(np.asarray(ours).reshape(-1), ref.reshape(-1)))
            if ggml and s in GGML_C:
                r = subprocess.run([ggml, s, raw, os.path.join(work, "c.bin"), str(args.runs)], capture_output=True, check=True)
                secs = float(r.stderr.decode().split()[1])
                row["ggml_c_1core"] = gb / secs
            results.append(row)
            print(json.dumps(row), flush=True)

        print()
        print(f"f32 input {args.rows} x {args.cols} ({x.nbytes / 2**20:.0f} MiB), {cores} cores, median of {args.runs}; GB/s of f32 input")
        print("| scheme | ckpt, 1 core, CPU time, whole process | gguf-py (numpy), CPU time | ggml C reference, 1 core, CPU time | ckpt kernel, 1 core, wall | ckpt kernel, all cores, wall | ckpt bytes = gguf-py |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
        f = lambda v: f"{v:.3f}" if isinstance(v, float) else "—"
        for r in results:
            eq = {True: "yes", False: "NO"}.get(r.get("bytes_equal_gguf_py"), "—")
            print(f"| {r['scheme']} | {f(r.get('ckpt_1core_cpu'))} | {f(r.get('gguf_py'))} | {f(r.get('ggml_c_1core'))} | {f(r.get('ckpt_1core'))} | {f(r.get('ckpt'))} | {eq} |")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

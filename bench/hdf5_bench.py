#!/usr/bin/env python3
"""Benchmark: ckpt against h5py converting a >= 1 GB checkpoint to and from HDF5 (issue 3).

    python bench/hdf5_bench.py --ckpt .build/release/ckpt [--workdir /tmp/ckpt-h5-bench]
        [--repeat 3] [--gzip-repeat 1] [--no-gzip] [--layers 24] [--markdown-out FILE]

Needs numpy, safetensors and h5py (the repository's .venv has them).

1. Generates a 1.36 GB fp32 GPT-2-like checkpoint with `safetensors.numpy.save_file`
   (a 50257 x 1024 embedding, 24 blocks of 1024 x 1024 attention and 4096 x 1024 MLP matrices).
2. Times, round-robin, --repeat runs of each (one fresh process per run, peak RSS from GNU time):
     to HDF5     ckpt convert SRC.safetensors OUT.h5
                 h5py: safe_open, one tensor at a time into nested groups (`a.b` -> `/a/b`), fsync
     from HDF5   ckpt convert IN.h5 OUT.safetensors
                 h5py: read every dataset into numpy, `save_file`, fsync
                 (both read the same IN.h5, the one h5py wrote: a file from the ecosystem)
     gzip        the "to HDF5" pair with deflate level 1 + shuffle, ~1 MiB chunks each
                 (--gzip-repeat runs, 1 by default: ~90 s each, zlib-bound for both tools)
   ckpt fsyncs its outputs (temp file + rename); the Python scripts fsync too, so both pay it.
3. Checks: ckpt's safetensors output of IN.h5 is byte-identical to the source (`cmp`), and
   h5py reads ckpt's .h5 with the source's values.
4. Prints a markdown table of medians, GB/s (source bytes / wall seconds), h5py/ckpt ratios
   and peak RSS, and deletes every large file it made (the source too).
Warm page cache (the source is read once before timing; dropping caches would disturb others).
"""

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import h5py
import numpy as np
import safetensors
from safetensors.numpy import save_file

GB, MB = 1e9, 1e6
VOCAB, HIDDEN, MLP, LAYERS = 50257, 1024, 4096, 24


def spec():
    out = [("wte.weight", (VOCAB, HIDDEN))]
    for i in range(LAYERS):
        p = f"h.{i}."
        out += [(p + "ln_1.weight", (HIDDEN,)), (p + "ln_1.bias", (HIDDEN,))]
        out += [(p + f"attn.{m}.weight", (HIDDEN, HIDDEN)) for m in ("q_proj", "k_proj", "v_proj", "o_proj")]
        out += [(p + "mlp.up_proj.weight", (MLP, HIDDEN)), (p + "mlp.down_proj.weight", (HIDDEN, MLP))]
    return out + [("ln_f.weight", (HIDDEN,))]


PY_TO_H5 = r"""
import os, sys, h5py
from safetensors import safe_open
src, dst, gzip = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
kw = {"compression": "gzip", "compression_opts": 1, "shuffle": True} if gzip else {}
with safe_open(src, "np") as s, h5py.File(dst, "w") as f:
    for k, v in (s.metadata() or {}).items():
        f.attrs[k] = v
    for name in s.keys():
        a = s.get_tensor(name)
        if gzip:  # ~1 MiB chunks of whole rows, like ckpt
            rows = max(1, min(a.shape[0], (1 << 20) // max(1, a[0].nbytes)))
            kw["chunks"] = (rows,) + a.shape[1:]
        f.create_dataset(name.replace(".", "/"), data=a, **kw)
fd = os.open(dst, os.O_RDONLY); os.fsync(fd); os.close(fd)
"""

PY_FROM_H5 = r"""
import os, sys, h5py
from safetensors.numpy import save_file
src, dst = sys.argv[1], sys.argv[2]
tensors = {}
with h5py.File(src, "r") as f:
    meta = {k: str(v) for k, v in f.attrs.items()}
    f.visititems(lambda n, o: tensors.__setitem__(n.replace("/", "."), o[()]) if isinstance(o, h5py.Dataset) else None)
save_file(tensors, dst, metadata=meta)
fd = os.open(dst, os.O_RDONLY); os.fsync(fd); os.close(fd)
"""

PY_CHECK = r"""
import sys, h5py, numpy as np
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as s, h5py.File(sys.argv[2], "r") as f:
    bad = [n for n in s.keys() if not np.array_equal(s.get_tensor(n), f[n.replace(".", "/")][()])]
print("ok" if not bad else "DIFFERENT: " + ", ".join(bad[:5]))
"""


def measure(argv):
    stats = "/tmp/.hdf5-bench-time"
    t0 = time.perf_counter()
    rc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", stats, *argv], stdin=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t0
    rss = int(open(stats).read().strip().splitlines()[-1]) * 1024
    os.unlink(stats)
    if rc != 0:
        sys.exit(f"command failed (exit {rc}): {' '.join(argv)}")
    return wall, rss


def remove(p):
    if os.path.lexists(p):
        os.unlink(p)


def main():
    global LAYERS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default=".build/release/ckpt")
    ap.add_argument("--workdir", default="/tmp/ckpt-h5-bench")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gzip-repeat", type=int, default=1)
    ap.add_argument("--no-gzip", action="store_true")
    ap.add_argument("--layers", type=int, default=LAYERS, help="transformer blocks (24: 1.36 GB; 4: 0.40 GB)")
    ap.add_argument("--markdown-out")
    args = ap.parse_args()
    LAYERS = args.layers
    ckpt = os.path.abspath(args.ckpt)
    os.makedirs(args.workdir, exist_ok=True)
    w = lambda n: os.path.join(args.workdir, n)
    src, h5_in = w("source.safetensors"), w("h5py.h5")
    try:
        print("generating the checkpoint ...", flush=True)
        rng = np.random.default_rng(3)
        save_file({n: (rng.standard_normal(s, dtype=np.float32) * 0.02) for n, s in spec()}, src, metadata={"format": "pt"})
        size = os.path.getsize(src)
        largest = max(4 * np.prod(s) for _, s in spec())
        print(f"checkpoint: {size / GB:.3f} GB, {len(spec())} tensors, largest {largest / MB:.0f} MB", flush=True)
        py = sys.executable
        subprocess.run([py, "-c", PY_TO_H5, src, h5_in, "0"], check=True)  # the common input of "from HDF5"
        with open(src, "rb") as f:
            while f.read(16 << 20):
                pass
        cmds = [
            ("to", "ckpt", [ckpt, "convert", src, w("ckpt.h5"), "--quiet"], w("ckpt.h5")),
            ("to", "h5py", [py, "-c", PY_TO_H5, src, w("py.h5"), "0"], w("py.h5")),
            ("from", "ckpt", [ckpt, "convert", h5_in, w("ckpt.safetensors"), "--quiet"], w("ckpt.safetensors")),
            ("from", "h5py", [py, "-c", PY_FROM_H5, h5_in, w("py.safetensors")], w("py.safetensors")),
        ]
        if not args.no_gzip:
            cmds += [
                ("gzip", "ckpt", [ckpt, "convert", src, w("ckpt.gz.h5"), "--quiet", "--compression", "gzip=1"], w("ckpt.gz.h5")),
                ("gzip", "h5py", [py, "-c", PY_TO_H5, src, w("py.gz.h5"), "1"], w("py.gz.h5")),
            ]
        res = {(d, t): [] for d, t, *_ in cmds}
        sizes, checks = {}, {}
        for rep in range(args.repeat):
            for d, t, argv, out in cmds:
                if d == "gzip" and rep >= args.gzip_repeat:
                    continue
                remove(out)
                os.sync()
                wall, rss = measure(argv)
                res[(d, t)].append((wall, rss))
                print(f"  run {rep + 1} {d:4s} {t:4s} {wall:7.2f} s  peak RSS {rss / MB:7.0f} MB", flush=True)
                if rep == 0:
                    sizes[(d, t)] = os.path.getsize(out)
                    if (d, t) == ("from", "ckpt"):
                        checks["cmp"] = subprocess.run(["cmp", src, out]).returncode == 0
                    if (d, t) in (("to", "ckpt"), ("gzip", "ckpt")):
                        checks[d] = subprocess.run([py, "-c", PY_CHECK, src, out], capture_output=True, text=True).stdout.strip()
                remove(out)
        rows = ["| direction | tool | median s | GB/s | h5py ÷ ckpt (time) | peak RSS MB | output MB |",
                "|---|---|---:|---:|---:|---:|---:|"]
        labels = {"to": "safetensors → HDF5", "from": "HDF5 → safetensors", "gzip": "safetensors → HDF5, gzip 1 + shuffle"}
        for d in ("to", "from", "gzip"):
            if (d, "ckpt") not in res:
                continue
            mc = statistics.median(x[0] for x in res[(d, "ckpt")])
            for t in ("ckpt", "h5py"):
                m = statistics.median(x[0] for x in res[(d, t)])
                ratio = f"{m / mc:.2f}×" if t == "h5py" else ""
                rows.append(f"| {labels[d]} | {t} | {m:.2f} | {size / GB / m:.2f} | {ratio} | "
                            f"{max(x[1] for x in res[(d, t)]) / MB:.0f} | {sizes[(d, t)] / MB:.0f} |")
        report = "\n".join([
            f"Machine: {os.cpu_count()} cores, Linux {platform.release()}, {datetime.date.today().isoformat()}; "
            f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}), "
            f"{subprocess.run([ckpt, '--version'], capture_output=True, text=True).stdout.strip()}, safetensors {safetensors.__version__}.",
            "",
            f"Checkpoint: {size / GB:.3f} GB of fp32 in {len(spec())} tensors (largest {largest / MB:.0f} MB). "
            f"Medians of {args.repeat} warm-cache runs ({args.gzip_repeat} for gzip), round-robin, each a fresh process; "
            "both tools fsync their output. "
            "The HDF5 → safetensors runs read the same h5py-written file.",
            "",
            *rows,
            "",
            f"Checks: ckpt's safetensors from the h5py file is byte-identical to the source: {checks.get('cmp')}; "
            f"h5py reads ckpt's .h5 with the source's values: {checks.get('to')}"
            + (f"; and ckpt's gzip .h5: {checks.get('gzip')}." if 'gzip' in checks else "."),
        ]) + "\n"
        print("\n" + report)
        if args.markdown_out:
            open(args.markdown_out, "w").write(report)
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)  # ~5 GB of scratch files


if __name__ == "__main__":
    main()

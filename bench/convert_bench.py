#!/usr/bin/env python3
"""Benchmark: `ckpt convert` safetensors -> safetensors against cp and the reference library.

    python bench/convert_bench.py --ckpt .build-bench/release/ckpt \
        [--workdir /tmp/ckpt-bench] [--repeat 3] [--markdown-out FILE] [--clean]

Needs only numpy + safetensors + the standard library.

1. Generates once (cached in --workdir) a >= 2 GiB GPT-2-like fp32 checkpoint with the real
   `safetensors.numpy.save_file`: a 50257 x 1024 token embedding (the largest tensor, ~206 MB),
   48 blocks of 4.2 MB attention and 8.4 MB MLP matrices, and small 1-D biases/norms.
2. Reads the source once so that it sits in the page cache (dropping the cache is not possible
   reliably here, so every run is a warm-cache run), then times, round-robin, --repeat times each:
     cp                  plain `cp SRC DST` (GNU cp; on ext4 this is copy_file_range, in-kernel)
     cp + fsync          `cp SRC DST && sync DST DIR` (fsync of the file and its directory)
     ckpt convert        `ckpt convert SRC DST.safetensors --quiet` (temp file, fsync, rename)
     ckpt convert shards `ckpt convert SRC DSTDIR --max-shard-size 1GB --quiet`
     python load+save    fresh python: `save_file(load_file(SRC), DST, metadata=...)`
     python load+save+fsync  the same followed by os.fsync of the output
   Outputs are removed after each run and `sync` is called (untimed) so that no dirty pages of
   one run are flushed during the next.
3. Each run is one fresh process (GNU time if installed, else a python wrapper around
   getrusage(RUSAGE_CHILDREN)) that runs one command and reports its peak RSS and CPU time.
4. Prints a markdown table (median/min seconds, GB/s, ratios, peak RSS) and the ckpt peak RSS
   minus the largest tensor (target: < 300 MB); --markdown-out writes the same text to a file.
5. Verifies once that ckpt's single-file output is byte-identical to the source (`cmp`) and
   that the sharded output holds exactly the source's tensors.

Units: GB and MB are decimal (1e9, 1e6 bytes); throughput is source bytes / wall seconds.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import safetensors
from safetensors import safe_open
from safetensors.numpy import save_file

MB = 1e6
GB = 1e9
TARGET_EXTRA_RSS_MB = 300

# The checkpoint: GPT-2-like names, all fp32.
VOCAB, HIDDEN, POSITIONS, MLP, LAYERS = 50257, 1024, 1024, 2048, 48
SEED = 20241129
SPEC_VERSION = 1  # bump when the generated checkpoint changes


def checkpoint_spec():
    """(name, shape) of every tensor, in a fixed order."""
    spec = [("wte.weight", (VOCAB, HIDDEN)), ("wpe.weight", (POSITIONS, HIDDEN))]
    for i in range(LAYERS):
        p = f"h.{i}."
        spec += [
            (p + "ln_1.weight", (HIDDEN,)), (p + "ln_1.bias", (HIDDEN,)),
            (p + "attn.q_proj.weight", (HIDDEN, HIDDEN)), (p + "attn.q_proj.bias", (HIDDEN,)),
            (p + "attn.k_proj.weight", (HIDDEN, HIDDEN)), (p + "attn.k_proj.bias", (HIDDEN,)),
            (p + "attn.v_proj.weight", (HIDDEN, HIDDEN)), (p + "attn.v_proj.bias", (HIDDEN,)),
            (p + "attn.o_proj.weight", (HIDDEN, HIDDEN)), (p + "attn.o_proj.bias", (HIDDEN,)),
            (p + "ln_2.weight", (HIDDEN,)), (p + "ln_2.bias", (HIDDEN,)),
            (p + "mlp.gate_proj.weight", (MLP, HIDDEN)),
            (p + "mlp.up_proj.weight", (MLP, HIDDEN)), (p + "mlp.up_proj.bias", (MLP,)),
            (p + "mlp.down_proj.weight", (HIDDEN, MLP)), (p + "mlp.down_proj.bias", (HIDDEN,)),
        ]
    spec += [("ln_f.weight", (HIDDEN,)), ("ln_f.bias", (HIDDEN,))]
    return spec


def nbytes(shape):
    n = 4
    for d in shape:
        n *= d
    return n


def generate(path):
    """Writes the checkpoint with the reference writer (cached: skipped when up to date)."""
    stamp = path + ".stamp"
    want = json.dumps({"version": SPEC_VERSION, "seed": SEED, "safetensors": safetensors.__version__})
    if os.path.exists(path) and os.path.exists(stamp) and open(stamp).read() == want:
        print(f"checkpoint: cached {path}")
        return
    print(f"checkpoint: generating {path} ...", flush=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(SEED)
    tensors = {}
    for name, shape in checkpoint_spec():
        a = rng.standard_normal(shape, dtype=np.float32)
        a *= 0.02
        tensors[name] = a
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata={"format": "pt"})
    del tensors
    os.replace(tmp, path)
    with open(stamp, "w") as f:
        f.write(want)
    print(f"checkpoint: written in {time.perf_counter() - t0:.1f} s")


def warm(path):
    """Reads a file once so that its pages are in the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(16 << 20):
            pass


# One measurement = one fresh measuring process that runs the command once and reports its
# wall time, peak RSS and CPU time. GNU time (`/usr/bin/time -f`) is preferred: its own RSS
# (~2 MB) is the floor of what it can report. Without it, a python wrapper reads
# getrusage(RUSAGE_CHILDREN), whose floor is the wrapper's ~12 MB (Linux keeps the RSS the
# forked child had before exec). Either way only commands above the floor are measured exactly.
GNU_TIME = "/usr/bin/time"
WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall": wall, "maxrss_kib": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime}))
"""


def have_gnu_time():
    try:
        r = subprocess.run([GNU_TIME, "-f", "%M", "true"], stderr=subprocess.PIPE, text=True)
        return r.returncode == 0 and r.stderr.strip().splitlines()[-1].isdigit()
    except OSError:
        return False


def measure(argv, workdir, use_gnu_time):
    """(wall seconds, peak RSS bytes, user+sys CPU seconds) of one run of argv."""
    if use_gnu_time:
        stats = os.path.join(workdir, "time.out")
        t0 = time.perf_counter()
        rc = subprocess.run([GNU_TIME, "-f", "%M %U %S", "-o", stats, *argv], stdin=subprocess.DEVNULL).returncode
        wall = time.perf_counter() - t0
        last = open(stats).read().strip().splitlines()[-1].split()
        os.unlink(stats)
        r = {"rc": rc, "wall": wall, "maxrss_kib": int(last[0]), "cpu": float(last[1]) + float(last[2])}
    else:
        out = subprocess.run([sys.executable, "-c", WRAPPER, *argv], stdout=subprocess.PIPE, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        sys.exit(f"command failed (exit {r['rc']}): {' '.join(argv)}")
    return r["wall"], r["maxrss_kib"] * 1024, r["cpu"]


PY_LOAD_SAVE = r"""
import os, sys
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
src, dst, do_fsync = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with safe_open(src, "np") as f:
    meta = f.metadata()
save_file(load_file(src), dst, metadata=meta)
if do_fsync:
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
"""


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def verify_single(src, out):
    r = subprocess.run(["cmp", src, out])
    return r.returncode == 0


def verify_sharded(src, outdir):
    """The index covers the source's tensors, total_size matches, every tensor is equal."""
    with open(os.path.join(outdir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    with safe_open(src, "np") as s:
        names = set(s.keys())
        if set(index["weight_map"]) != names:
            return False, "index names differ from the source's"
        total = 0
        for name in sorted(names):
            with safe_open(os.path.join(outdir, index["weight_map"][name]), "np") as sh:
                a, b = s.get_tensor(name), sh.get_tensor(name)
            if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
                return False, f"tensor {name} differs"
            total += a.nbytes
        if index["metadata"]["total_size"] != total:
            return False, "total_size differs"
    shards = sorted(set(index["weight_map"].values()))
    return True, f"{len(shards)} shards, {len(names)} tensors equal"


def fmt_ratio(x):
    return f"{x:.2f}×"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default=".build-bench/release/ckpt", help="the ckpt binary")
    ap.add_argument("--workdir", default="/tmp/ckpt-bench", help="scratch dir (source is cached here)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown-out", help="also write the markdown report to this file")
    ap.add_argument("--clean", action="store_true", help="delete --workdir (with the cached source) at the end")
    args = ap.parse_args()

    ckpt = os.path.abspath(args.ckpt)
    if not os.access(ckpt, os.X_OK):
        sys.exit(f"no ckpt binary at {ckpt}: swift build -c release --scratch-path .build-bench")
    os.makedirs(args.workdir, exist_ok=True)
    src = os.path.join(args.workdir, "source.safetensors")
    out = os.path.join(args.workdir, "out")
    remove(out)
    os.makedirs(out)

    generate(src)
    spec = checkpoint_spec()
    src_bytes = os.path.getsize(src)
    largest_name, largest_shape = max(spec, key=lambda s: nbytes(s[1]))
    largest = nbytes(largest_shape)
    print(f"checkpoint: {src_bytes / GB:.3f} GB ({src_bytes / 2**30:.3f} GiB), {len(spec)} tensors, fp32")
    print(f"largest tensor: {largest_name} {list(largest_shape)} = {largest / MB:.1f} MB")

    dst_file = os.path.join(out, "out.safetensors")
    dst_dir = os.path.join(out, "sharded")
    dst_py = os.path.join(out, "py.safetensors")
    py = sys.executable
    cmds = [
        ("cp", "`cp`", ["cp", src, dst_file], dst_file),
        ("cp+fsync", "`cp` + fsync", ["sh", "-c", 'cp "$1" "$2" && sync "$2" "$3"', "sh", src, dst_file, out], dst_file),
        ("ckpt", "`ckpt convert` → file", [ckpt, "convert", src, dst_file, "--quiet"], dst_file),
        ("ckpt-shards", "`ckpt convert` → 1GB shards", [ckpt, "convert", src, dst_dir, "--max-shard-size", "1GB", "--quiet"], dst_dir),
        ("py", "python load+save", [py, "-c", PY_LOAD_SAVE, src, dst_py, "0"], dst_py),
        ("py+fsync", "python load+save + fsync", [py, "-c", PY_LOAD_SAVE, src, dst_py, "1"], dst_py),
    ]

    print("warming the page cache with one read of the source (runs are warm-cache)", flush=True)
    warm(src)
    os.sync()

    use_gnu_time = have_gnu_time()
    method = ("GNU time (`/usr/bin/time -f %M`)" if use_gnu_time
              else "a python wrapper's getrusage(RUSAGE_CHILDREN) (floor ~12 MB)")
    print(f"peak RSS from {method}, one fresh process per run")
    times = {k: [] for k, *_ in cmds}
    rss = {k: [] for k, *_ in cmds}
    cpu = {k: [] for k, *_ in cmds}
    checks = {}
    for rep in range(args.repeat):
        for key, label, argv, dst in cmds:  # round-robin, so drift hits every command alike
            remove(dst)
            os.sync()
            wall, peak, cpu_s = measure(argv, args.workdir, use_gnu_time)
            times[key].append(wall)
            rss[key].append(peak)
            cpu[key].append(cpu_s)
            print(f"  run {rep + 1}/{args.repeat} {label:32s} {wall:7.2f} s  cpu {cpu_s:6.2f} s  "
                  f"peak RSS {peak / MB:7.1f} MB", flush=True)
            if rep == 0 and key == "ckpt":
                checks["ckpt"] = verify_single(src, dst)
            elif rep == 0 and key == "ckpt-shards":
                checks["ckpt-shards"] = verify_sharded(src, dst)
            elif rep == 0 and key == "py":
                checks["py"] = verify_single(src, dst)
            remove(dst)
            os.sync()
    remove(out)

    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        "| command | median s | min s | GB/s (median) | vs cp | vs cp+fsync | vs python load+save "
        "| CPU s user+sys (median) | peak RSS MB (max) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label, *_ in cmds:
        m = med[key]
        rows.append(
            f"| {label} | {m:.2f} | {min(times[key]):.2f} | {src_bytes / GB / m:.2f} | "
            f"{fmt_ratio(m / med['cp'])} | {fmt_ratio(m / med['cp+fsync'])} | {fmt_ratio(m / med['py'])} | "
            f"{statistics.median(cpu[key]):.2f} | {max(rss[key]) / MB:.0f} |"
        )
    ckpt_peak = max(max(rss["ckpt"]), max(rss["ckpt-shards"]))
    extra = ckpt_peak - largest
    verdict = "holds" if extra < TARGET_EXTRA_RSS_MB * MB else "EXCEEDED"
    single_ok = checks.get("ckpt")
    shard_ok, shard_note = checks.get("ckpt-shards", (False, "not run"))
    py_ok = checks.get("py")

    when = datetime.date.today().isoformat()
    lines = [
        f"Machine: {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
        f"Linux {platform.release()}, {when}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"safetensors {safetensors.__version__}.",
        "",
        f"Checkpoint: {src_bytes / GB:.3f} GB ({src_bytes / 2**30:.2f} GiB) of fp32 in {len(spec)} tensors, written by "
        f"`safetensors.numpy.save_file`; largest tensor `{largest_name}` {list(largest_shape)} = {largest / MB:.1f} MB.",
        f"Warm page cache (source read once before timing), {args.repeat} runs per command, round-robin; "
        "outputs removed and `sync` called between runs. GB = 1e9 bytes, MB = 1e6 bytes. "
        f"Ratios are of median times (> 1× = slower). Peak RSS from {method}, one fresh process per run.",
        "",
        *rows,
        "",
        f"Peak RSS of ckpt (max over file and shard runs): {ckpt_peak / MB:.1f} MB = largest tensor "
        f"{largest / MB:.1f} MB + {extra / MB:.1f} MB; target < {TARGET_EXTRA_RSS_MB} MB beyond the largest tensor: {verdict}.",
        f"Correctness: `cmp` ckpt output vs source: {'identical' if single_ok else 'DIFFERENT'}; "
        f"sharded output: {'ok, ' if shard_ok else 'FAILED, '}{shard_note}; "
        f"python load+save output vs source: {'identical' if py_ok else 'different'}.",
    ]
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    if args.markdown_out:
        with open(args.markdown_out, "w") as f:
            f.write(report)
    if args.clean:
        remove(args.workdir)
    if not single_ok or not shard_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()

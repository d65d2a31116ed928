#!/usr/bin/env python3
"""Fixtures for quantization, GGUF and .npz, made with the reference Python libraries.

    python tools/make_quant_fixtures.py     # needs numpy, safetensors and gguf (gguf-py) 0.19.0

Outputs (under fixtures/, about 150 kB in all; CI never runs this, the outputs are committed):
  quant/gguf_quants.safetensors  `input` f32 [R, 256]: Gaussian rows, rows of several scales,
                                 and hand-made rows that hit the rounding edge cases (exact .5
                                 ties for q8_0's roundf and q4_0's +8.5 truncation, equal
                                 largest magnitudes of both signs, all-zero and constant
                                 blocks, scales that round to an f16 zero, values whose scale overflows f16);
                                 `q8_0` `q4_0` `q4_1` `q5_0` `q5_1` u8 [R, bytes per row]:
                                 `gguf.quants.quantize(input, type)` — ckpt must produce
                                 exactly these bytes
  gguf/gguf_py.gguf              written by gguf-py's GGUFWriter: F32, F16, BF16, Q8_0, Q4_0,
                                 Q4_K/Q6_K (raw blocks), I32 tensors; string, numeric, bool,
                                 array and nested-array metadata; alignment 64
  gguf/gguf_py.expected.json     what GGUFReader sees in it: metadata, tensor names, shapes
                                 (row-major), types, and the sha256 of each dequantized tensor
  npz/stored.npz, npz/deflated.npz
                                 numpy.savez and numpy.savez_compressed of a few arrays;
  npz/npz.expected.json          names, dtypes, shapes and sha256 of each array's raw bytes
"""

import hashlib
import json
import os

import numpy as np
from safetensors.numpy import save_file
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def quant_inputs():
    rng = np.random.default_rng(6)
    rows = []
    rows += [rng.standard_normal(256).astype(np.float32) for _ in range(16)]
    for scale in (1e-3, 0.02, 30.0, 1e4):
        rows.append((rng.standard_normal(256) * scale).astype(np.float32))
    # Edge rows, block by block (8 blocks of 32 per row).
    edge = []
    b = np.zeros(32, np.float32); b[0] = 127; b[1:] = np.arange(31) - 15.5   # q8_0 ties: d = 1, x.5
    edge.append(b)
    b = np.zeros(32, np.float32); b[0] = -8; b[1:] = (np.arange(31) - 15) / 2  # q4_0: d = 1, x·id+8.5 lands on .0/.5
    edge.append(b)
    b = rng.standard_normal(32).astype(np.float32); b[3] = 2.5; b[9] = -2.5     # equal |max|: first wins
    b = np.clip(b, -2.4, 2.4); b[3] = 2.5; b[9] = -2.5
    edge.append(b)
    edge.append(np.zeros(32, np.float32))                                       # all zero
    edge.append(np.full(32, 0.375, np.float32))                                 # constant
    edge.append((rng.standard_normal(32) * 1e-30).astype(np.float32))          # d is an f16 zero
    b = rng.standard_normal(32).astype(np.float32); b[5] = 1e7                 # d overflows f16
    edge.append(b)
    edge.append(np.linspace(-1, 1, 32, dtype=np.float32))                       # evenly spread
    rows.append(np.concatenate(edge))
    b = np.concatenate([np.linspace(-3, 5, 32, dtype=np.float32) for _ in range(8)])
    rows.append(b)
    rows += [(rng.standard_t(3, 256) * 0.05).astype(np.float32) for _ in range(10)]  # heavy tails
    return np.stack(rows)


def write_quants():
    x = quant_inputs()
    out = {"input": x}
    for name, t in [("q8_0", T.Q8_0), ("q4_0", T.Q4_0), ("q4_1", T.Q4_1), ("q5_0", T.Q5_0), ("q5_1", T.Q5_1)]:
        q = quantize(x, t)
        assert q.dtype == np.uint8
        out[name] = np.ascontiguousarray(q)
    os.makedirs(os.path.join(ROOT, "quant"), exist_ok=True)
    save_file(out, os.path.join(ROOT, "quant", "gguf_quants.safetensors"), metadata={"generator": f"gguf {gguf.__version__ if hasattr(gguf, '__version__') else '0.19.0'}"})


def random_blocks(t, n, rng):
    """n random blocks of type t with finite, moderate f16 scale fields."""
    block, size = gguf.GGML_QUANT_SIZES[t]
    raw = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    halves = {T.Q4_K: [0, 2], T.Q6_K: [208]}[t]
    for off in halves:
        raw[:, off:off + 2] = (rng.standard_normal(n) * 0.01).astype(np.float16).view(np.uint8).reshape(n, 2)
    return raw


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def write_gguf():
    rng = np.random.default_rng(7)
    d = os.path.join(ROOT, "gguf")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "gguf_py.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.data_alignment = 64
    w.add_uint32("general.alignment", 64)
    w.add_name("tiny test")
    w.add_context_length(64)
    w.add_float32("test.f32", 0.25)
    w.add_float64("test.f64", -1.5e300)
    w.add_bool("test.bool", True)
    w.add_int8("test.i8", -5)
    w.add_uint16("test.u16", 65535)
    w.add_int64("test.i64", -(2**62))
    w.add_uint64("test.u64", 2**64 - 1)
    w.add_string("test.unicode", "héllo ✓")
    w.add_array("test.strings", ["a", "", "ünï"])
    w.add_array("test.ints", [1, -2, 3])
    w.add_array("test.nested", [[1, 2], [3]])
    tensors = {}
    tensors["f32"] = rng.standard_normal((3, 5)).astype(np.float32)
    tensors["f16"] = rng.standard_normal((4, 8)).astype(np.float16)
    tensors["vec"] = rng.standard_normal(7).astype(np.float32)
    tensors["i32"] = rng.integers(-1000, 1000, (2, 3)).astype(np.int32)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    bf = gguf.quants.quantize(rng.standard_normal((2, 16)).astype(np.float32), T.BF16)
    w.add_tensor("bf16", bf, raw_dtype=T.BF16)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    w.add_tensor("q8_0", quantize(x, T.Q8_0), raw_dtype=T.Q8_0)
    w.add_tensor("q4_0", quantize(x, T.Q4_0), raw_dtype=T.Q4_0)
    w.add_tensor("blk.0.q4_k", random_blocks(T.Q4_K, 2, rng).reshape(2, 144), raw_dtype=T.Q4_K)
    w.add_tensor("blk.0.q6_k", random_blocks(T.Q6_K, 3, rng).reshape(3, 210), raw_dtype=T.Q6_K)
    x3 = rng.standard_normal((2, 3, 32)).astype(np.float32)
    w.add_tensor("q5_1.3d", quantize(x3, T.Q5_1), raw_dtype=T.Q5_1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    r = gguf.GGUFReader(path)
    meta = {}
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        meta[f.name] = {"types": [t.name for t in f.types], "value": jsonable(f.contents())}
    # GGUFReader's contents() flattens nested arrays; the file holds [[1, 2], [3]].
    meta["test.nested"]["value"] = [[1, 2], [3]]
    ts = []
    for t in r.tensors:
        shape = [int(v) for v in reversed(t.shape.tolist())]
        deq = dequantize(t.data, t.tensor_type) if t.tensor_type != T.I32 else None
        ts.append({"name": t.name, "type": t.tensor_type.name, "shape": shape,
                   "raw_sha256": sha(t.data),
                   "values_sha256": sha(np.asarray(deq, dtype=np.float32).reshape(-1)) if deq is not None else None})
    with open(os.path.join(d, "gguf_py.expected.json"), "w") as f:
        json.dump({"metadata": meta, "tensors": ts, "alignment": int(r.alignment)}, f, indent=1, ensure_ascii=False)
        f.write("\n")


def jsonable(v):
    if isinstance(v, (list, tuple)):
        return [jsonable(e) for e in v]
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return str(v)
    return v


def write_npz():
    rng = np.random.default_rng(8)
    d = os.path.join(ROOT, "npz")
    os.makedirs(d, exist_ok=True)
    arrays = {
        "weight": rng.standard_normal((16, 8)).astype(np.float32),
        "bias": rng.standard_normal(8).astype(np.float64),
        "ids": np.arange(10, dtype=np.int64),
        "half": rng.standard_normal((3, 3)).astype(np.float16),
        "flags": np.array([True, False, True]),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    np.savez(os.path.join(d, "stored.npz"), **arrays)
    np.savez_compressed(os.path.join(d, "deflated.npz"), **arrays)
    exp = {k: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": sha(a)} for k, a in arrays.items()}
    with open(os.path.join(d, "npz.expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    write_quants()
    write_gguf()
    write_npz()

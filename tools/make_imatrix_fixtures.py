#!/usr/bin/env python3
"""Fixtures for importance-weighted quantization and llama.cpp's imatrix files.

  fixtures/imatrix/weights.f32       W, [ROWS, COLS] little-endian f32 (rows of 512: two k-quant
                                     super-blocks, sixteen 32-blocks)
  fixtures/imatrix/importance.f32    one importance per column (mean x², log-normal spread)
  fixtures/imatrix/<type>.bin        llama.cpp's bytes: ggml_quantize_chunk(type, W, imatrix)
                                     from libggml-base (llama-cpp-python, llama.cpp built from
                                     source), for q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k
  fixtures/imatrix/llamacpp.imatrix.gguf   an imatrix file in llama.cpp's GGUF layout (as
                                     tools/imatrix/imatrix.cpp writes it: general.type imatrix,
                                     imatrix.datasets / chunk_count / chunk_size, per weight
                                     <name>.in_sum2 [nmat, n] and <name>.counts [nmat, 1], f32),
                                     written with gguf-py
  fixtures/imatrix/llamacpp.imatrix.dat    the same data in the legacy format (int32 entries;
                                     per entry int32 name length, name, int32 ncall, int32 nval,
                                     f32 mean·ncall; then int32 chunk count, int32 length, dataset)
  fixtures/imatrix/expected.json     what a reader must get from both files (means per entry)

Run with a Python that has llama-cpp-python 0.3.36, numpy and gguf:
  /work/venv-llama/bin/python tools/make_imatrix_fixtures.py [--check]
--check recomputes the llama.cpp bytes and compares them with the committed ones (and with
many more random rows: the `make test-llamacpp` check).
"""
import ctypes
import glob
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "imatrix")
ROWS, COLS = 8, 512
# ggml_type ids (ggml.h)
TYPES = {"q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q2_k": 10, "q3_k": 11, "q4_k": 12, "q5_k": 13, "q6_k": 14}
BLOCK = {"q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24), "q8_0": (32, 34),
         "q2_k": (256, 84), "q3_k": (256, 110), "q4_k": (256, 144), "q5_k": (256, 176), "q6_k": (256, 210)}


def libggml():
    import llama_cpp
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    path = sorted(glob.glob(os.path.join(libdir, "libggml-base.so*")))[0]
    lib = ctypes.CDLL(path)
    f = lib.ggml_quantize_chunk
    f.restype = ctypes.c_size_t
    f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    return f


def quantize(f, name, w, imatrix):
    rows, cols = w.shape
    per, size = BLOCK[name]
    out = np.zeros(rows * cols // per * size, dtype=np.uint8)
    w = np.ascontiguousarray(w, dtype=np.float32)
    im = np.ascontiguousarray(imatrix, dtype=np.float32)
    n = f(TYPES[name], w.ctypes.data, out.ctypes.data, 0, rows, cols, im.ctypes.data)
    assert n == out.size, (name, n, out.size)
    return out.tobytes()


def make_weights(rng, rows, cols):
    w = rng.normal(0, 0.05, size=(rows, cols)).astype(np.float32)
    w[:, ::37] *= 6  # outlier columns
    w[1] = np.abs(w[1])  # one all-positive row (q4_1's min > 0 path)
    if rows > 3:
        w[3, :256] = 0  # an all-zero super-block
        w[3, 256:288] = 0.01  # a constant 32-block
    return w


def make_importance(rng, cols):
    im = np.exp(rng.normal(0, 1.5, size=cols)).astype(np.float32)
    im[::53] *= 40  # a few channels that matter far more (what real activations look like)
    return im


def write_gguf_imatrix(path, entries, chunk_count, chunk_size, dataset):
    import gguf
    w = gguf.GGUFWriter(path, "")
    # llama.cpp's imatrix files carry no general.architecture (gguf-py always adds one).
    for kv in w.kv_data:
        kv.pop(gguf.Keys.General.ARCHITECTURE, None)
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", [dataset])
    w.add_uint32("imatrix.chunk_count", chunk_count)
    w.add_uint32("imatrix.chunk_size", chunk_size)
    for name in sorted(entries):
        sums, counts = entries[name]
        w.add_tensor(name + ".in_sum2", sums.astype(np.float32))
        w.add_tensor(name + ".counts", counts.astype(np.float32).reshape(-1, 1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_legacy_imatrix(path, entries, chunk_count, chunk_size, dataset):
    out = bytearray()
    names = sorted(entries)
    out += struct.pack("<i", len(names))
    for name in names:
        sums, counts = entries[name]
        ncall = int((counts.max() + chunk_size - 1) // chunk_size)
        vals = (sums.reshape(-1) / np.repeat(counts, sums.shape[1])).astype(np.float32) * np.float32(ncall)
        b = name.encode()
        out += struct.pack("<i", len(b)) + b + struct.pack("<ii", ncall, vals.size) + vals.astype("<f4").tobytes()
    d = dataset.encode()
    out += struct.pack("<i", chunk_count) + struct.pack("<i", len(d)) + d
    with open(path, "wb") as fh:
        fh.write(out)


def main():
    check = "--check" in sys.argv
    f = libggml()
    rng = np.random.default_rng(20261130)
    w = make_weights(rng, ROWS, COLS)
    im = make_importance(rng, COLS)
    os.makedirs(ROOT, exist_ok=True)
    if check:
        bad = 0
        for name in TYPES:
            got = quantize(f, name, w, im)
            want = open(os.path.join(ROOT, name + ".bin"), "rb").read()
            if got != want:
                print(f"{name}: libggml differs from the committed fixture"); bad += 1
        print("fixture bytes:", "ok" if bad == 0 else f"{bad} type(s) differ")
        sys.exit(1 if bad else 0)
    w.astype("<f4").tofile(os.path.join(ROOT, "weights.f32"))
    im.astype("<f4").tofile(os.path.join(ROOT, "importance.f32"))
    for name in TYPES:
        with open(os.path.join(ROOT, name + ".bin"), "wb") as fh:
            fh.write(quantize(f, name, w, im))

    # imatrix files: two dense entries and one with 2 experts (nmat = 2, one never routed to).
    chunk_size, chunks = 64, 3
    entries = {
        "blk.0.attn_q.weight": (rng.uniform(0, 5, size=(1, 32)).astype(np.float32) * 192, np.array([192.0])),
        "blk.0.ffn_down.weight": (rng.uniform(0, 5, size=(1, 64)).astype(np.float32) * 192, np.array([192.0])),
        "blk.1.ffn_up_exps.weight": (rng.uniform(0, 5, size=(2, 32)).astype(np.float32) * 100, np.array([100.0, 0.0])),
    }
    write_gguf_imatrix(os.path.join(ROOT, "llamacpp.imatrix.gguf"), entries, chunks, chunk_size, "calibration.txt")
    dense = {k: v for k, v in entries.items() if v[1].min() > 0}  # legacy files skip entries without data
    write_legacy_imatrix(os.path.join(ROOT, "llamacpp.imatrix.dat"), dense, chunks, chunk_size, "calibration.txt")
    expected = {"chunk_count": chunks, "chunk_size": chunk_size, "datasets": ["calibration.txt"], "gguf": {}, "dat": {}}
    for name, (sums, counts) in entries.items():
        means = []
        for j in range(sums.shape[0]):
            # llama-quantize's reading: in_sum2 / count, 1 where the count is 0.
            c = np.float32(counts[j])
            means += (sums[j] / c).astype(np.float32).tolist() if c > 0 else [1.0] * sums.shape[1]
        expected["gguf"][name] = {"values": means, "counts": counts.tolist()}
    for name, (sums, counts) in dense.items():
        # legacy: stored mean·ncall, read back divided by ncall (f32 both ways)
        ncall = np.float32((counts.max() + chunk_size - 1) // chunk_size)
        stored = (sums.reshape(-1) / np.float32(counts[0])).astype(np.float32) * ncall
        expected["dat"][name] = {"values": (stored / ncall).astype(np.float32).tolist(), "ncall": int(ncall)}
    with open(os.path.join(ROOT, "expected.json"), "w") as fh:
        json.dump(expected, fh, indent=1)
    print("wrote", ROOT)


if __name__ == "__main__":
    main()

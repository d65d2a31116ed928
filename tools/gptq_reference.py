#!/usr/bin/env python3
"""A float64 NumPy GPTQ (Frantar et al. 2022) on ggml's / ckpt's block grids, written
independently of Sources/Quantize/GPTQ.swift to check it (Tests/QuantizeTests/GPTQTests).

usage: gptq_reference.py W.f32 H.f64 ROWS COLS DTYPE ACTORDER OUT.bin

W.f32: little-endian float32 [ROWS, COLS]; H.f64: float64 [COLS, COLS]. Writes the quantized
blocks (row after row) to OUT.bin.

The algorithm follows the paper's reference implementation (gptq.py): dead columns, optional
act order, damping 1% of the mean diagonal, upper Cholesky factor of the inverse Hessian,
batches of 128 columns with lazy updates. The group grid (scale and minimum) is computed when a
group starts, from the group's current weights, the way each type's round-to-nearest encoder
computes it (float32 arithmetic, scale stored as float16). With act order, every group's grid
is fixed first from the original weights (static groups), since a block is contiguous in the file.
"""
import sys

import numpy as np

F32 = np.float32


def grid(dtype, x):
    """(d, m, lo, hi) for float32 values x of one group: value = k*d + m."""
    x = x.astype(F32)
    def signed_absmax(v):
        i = int(np.argmax(np.abs(v)))  # first of the largest magnitudes
        return v[i] if np.abs(v[i]) > 0 else F32(0)
    def h(v):
        return float(np.float16(F32(v)))
    if dtype == "q8_0":
        return h(F32(np.max(np.abs(x))) / F32(127)), 0.0, -128, 127
    if dtype in ("q4_0",) or dtype.startswith("i4_"):
        return h(signed_absmax(x) / F32(-8)), 0.0, -8, 7
    if dtype == "q5_0":
        return h(signed_absmax(x) / F32(-16)), 0.0, -16, 15
    if dtype.startswith("i8_"):
        return h(F32(np.max(np.abs(x))) / F32(127)), 0.0, -127, 127
    top = 31 if dtype == "q5_1" else 15
    lo, hi = F32(np.min(x)), F32(np.max(x))
    return h((hi - lo) / F32(top)), h(lo), 0, top


def level(g, w):
    d, m, lo, hi = g
    if d == 0:
        return max(lo, min(hi, 0))
    r = (w - m) / d
    r = np.sign(r) * np.floor(np.abs(r) + 0.5)  # half away from zero
    return int(max(lo, min(hi, r)))


def value(g, k):
    d, m, _, _ = g
    return float(F32(F32(k) * F32(d)) + F32(m))


def pack(dtype, g, k):
    d, m, _, _ = g
    half = lambda v: np.array([v], dtype=np.float16).tobytes()
    k = np.asarray(k, dtype=np.int64)
    if dtype == "q8_0" or dtype.startswith("i8_"):
        return half(d) + k.astype(np.int8).tobytes()
    if dtype in ("q4_0", "q4_1"):
        n = (k + 8) if dtype == "q4_0" else k
        qs = (n[:16] | (n[16:] << 4)).astype(np.uint8).tobytes()
        return half(d) + (half(m) if dtype == "q4_1" else b"") + qs
    if dtype in ("q5_0", "q5_1"):
        n = (k + 16) if dtype == "q5_0" else k
        qs = ((n[:16] & 15) | ((n[16:] & 15) << 4)).astype(np.uint8).tobytes()
        qh = 0
        for j in range(32):
            qh |= int((n[j] >> 4) & 1) << j
        return half(d) + (half(m) if dtype == "q5_1" else b"") + np.array([qh], dtype="<u4").tobytes() + qs
    if dtype.startswith("i4_"):
        n = k + 8
        return half(d) + (n[0::2] | (n[1::2] << 4)).astype(np.uint8).tobytes()
    # u4
    return half(d) + half(m) + (k[0::2] | (k[1::2] << 4)).astype(np.uint8).tobytes()


def gptq(W, H, dtype, actorder, percdamp=0.01, blocksize=128):
    rows, cols = W.shape
    g = 32 if dtype[0] == "q" else int(dtype.split("_g")[1])
    blocksize = max(blocksize, g)  # a group never straddles two batches
    W = W.astype(np.float64).copy()
    H = H.copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    grids = {}
    if actorder:
        for r in range(rows):
            for gi in range(cols // g):
                grids[r, gi] = grid(dtype, W[r, gi * g:(gi + 1) * g])
        perm = np.argsort(-np.diag(H), kind="stable")
    else:
        perm = np.arange(cols)
    W = W[:, perm]
    H = H[perm][:, perm]
    H[np.diag_indices(cols)] += percdamp * np.mean(np.diag(H))
    L = np.linalg.cholesky(H)
    Hinv = np.linalg.inv(L).T @ np.linalg.inv(L)
    U = np.linalg.cholesky(Hinv).T  # upper: Hinv = U^T U
    K = np.zeros((rows, cols), dtype=np.int64)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].copy()
        Err = np.zeros_like(W1)
        for i in range(i2 - i1):
            col = perm[i1 + i]
            if not actorder and col % g == 0:
                for r in range(rows):
                    grids[r, col // g] = grid(dtype, W1[r, i:i + g])
            w = W1[:, i]
            q = np.zeros(rows)
            for r in range(rows):
                gr = grids[r, col // g]
                k = level(gr, w[r])
                K[r, col] = k
                q[r] = value(gr, k)
            e = (w - q) / U[i1 + i, i1 + i]
            W1[:, i + 1:] -= np.outer(e, U[i1 + i, i1 + i + 1:i2])
            Err[:, i] = e
        W[:, i1:i2] = W1
        W[:, i2:] -= Err @ U[i1:i2, i2:]
    out = bytearray()
    for r in range(rows):
        for gi in range(cols // g):
            out += pack(dtype, grids[r, gi], K[r, gi * g:(gi + 1) * g])
    return bytes(out)


def main():
    wpath, hpath, rows, cols, dtype, actorder, out = sys.argv[1:8]
    rows, cols = int(rows), int(cols)
    W = np.fromfile(wpath, dtype="<f4").reshape(rows, cols)
    H = np.fromfile(hpath, dtype="<f8").reshape(cols, cols)
    with open(out, "wb") as f:
        f.write(gptq(W, H, dtype, actorder == "1"))


if __name__ == "__main__":
    main()

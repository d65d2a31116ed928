#!/usr/bin/env python3
"""A float64 NumPy GPTQ (Frantar et al. 2022) on ggml's / ckpt's block grids, written
independently of Sources/Quantize/GPTQ.swift to check it (Tests/QuantizeTests/GPTQTests).

usage: gptq_reference.py W.f32 H.f64 ROWS COLS DTYPE ACTORDER OUT.bin [HEADERS.bin STARTS.f32]

W.f32: little-endian float32 [ROWS, COLS]; H.f64: float64 [COLS, COLS]. Writes the quantized
blocks (row after row) to OUT.bin.

k-quants (q2_k..q6_k): a super-block's scales are chosen first and frozen, then GPTQ rounds
each value onto the frozen grid of its sub-block. The scale search is the type's encoder, which
this script does not re-implement: HEADERS.bin holds blocks (ckpt's output) whose headers (super-
block scales, sub-block scales and mins) are taken as the frozen grids, and STARTS.f32 receives,
per row and super-block, the 256 weights as they stood when GPTQ reached the super-block's first
column (the original weights with act order), so the caller can check that encoding them gives
those headers. The quantized values are packed here and the blocks are checked against gguf-py's
dequantizer.

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


KQUANT = {  # block bytes, values per sub-block
    "q2_k": (84, 16), "q3_k": (110, 16), "q4_k": (144, 32), "q5_k": (176, 32), "q6_k": (210, 16),
}


def f16(b, off):
    return F32(np.frombuffer(bytes(b[off:off + 2]), dtype="<f2")[0])


def kquant_grids(dtype, b):
    """The sub-block grids (d, m, lo, hi), value = k*d + m, of one encoded super-block."""
    b = np.frombuffer(bytes(b), dtype=np.uint8).astype(np.int64)
    if dtype in ("q4_k", "q5_k"):
        d, dmin, q = f16(b.astype(np.uint8), 0), f16(b.astype(np.uint8), 2), b[4:16]
        out = []
        for j in range(8):
            if j < 4:
                sc, m = q[j] & 63, q[j + 4] & 63
            else:
                sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4)
                m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4)
            out.append((float(d * F32(sc)), float(-(dmin * F32(m))), 0, 15 if dtype == "q4_k" else 31))
        return out
    if dtype == "q6_k":
        d = f16(b.astype(np.uint8), 208)
        sc = b[192:208].astype(np.uint8).view(np.int8)
        return [(float(d * F32(sc[j])), 0.0, -32, 31) for j in range(16)]
    if dtype == "q3_k":
        d, s = f16(b.astype(np.uint8), 108), b[96:108]
        out = []
        for j in range(16):
            low = (s[j] & 15) if j < 8 else (s[j - 8] >> 4)
            high = (s[8 + j % 4] >> (2 * (j // 4))) & 3
            out.append((float(d * F32((low | (high << 4)) - 32)), 0.0, -4, 3))
        return out
    d, dmin = f16(b.astype(np.uint8), 80), f16(b.astype(np.uint8), 82)  # q2_k
    return [(float(d * F32(b[j] & 15)), float(-(dmin * F32(b[j] >> 4))), 0, 3) for j in range(16)]


def kquant_pack(dtype, header, k):
    """The block `header` (bytes) with its value bits replaced by levels k (256, signed)."""
    b = np.frombuffer(bytes(header), dtype=np.uint8).copy()
    k = np.asarray(k, dtype=np.int64)
    if dtype in ("q2_k", "q3_k"):
        u = k + (4 if dtype == "q3_k" else 0)
        low = u & 3
        planes = np.zeros(64, dtype=np.int64)
        for e in range(256):  # 2-bit planes: byte 32*(e/128) + e%32, bits 2*((e%128)/32)
            planes[32 * (e // 128) + e % 32] |= low[e] << (2 * ((e % 128) // 32))
        if dtype == "q2_k":
            b[16:80] = planes
        else:
            hm = np.zeros(32, dtype=np.int64)
            for e in range(256):
                hm[e % 32] |= ((u[e] >> 2) & 1) << (e // 32)
            b[0:32] = hm
            b[32:96] = planes
        return bytes(b)
    if dtype in ("q4_k", "q5_k"):
        qs = np.zeros(128, dtype=np.int64)
        qh = np.zeros(32, dtype=np.int64)
        for e in range(256):  # 4-bit planes: byte 32*(e/64) + e%32, high nibble if e%64 >= 32
            qs[32 * (e // 64) + e % 32] |= (k[e] & 15) << (4 * ((e % 64) // 32))
            qh[e % 32] |= ((k[e] >> 4) & 1) << (e // 32)
        if dtype == "q4_k":
            b[16:144] = qs
        else:
            b[16:48] = qh
            b[48:176] = qs
        return bytes(b)
    u = k + 32  # q6_k
    ql = np.zeros(128, dtype=np.int64)
    qh = np.zeros(64, dtype=np.int64)
    for e in range(256):
        h, r = e // 128, e % 128
        ql[64 * h + r % 64] |= (u[e] & 15) << (4 * (r // 64))
        qh[32 * h + r % 32] |= (u[e] >> 4) << (2 * (r // 32))
    b[0:128] = ql
    b[128:192] = qh
    return bytes(b)


def dead_columns_zeroed(W, H):
    """W in float64 and a copy of H, with columns no calibration input reached (zero Hessian
    diagonal) set to zero in W and to 1 on H's diagonal, as GPTQ does."""
    W = W.astype(np.float64).copy()
    H = H.copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    return W, H


def permuted_factor(W, H, actorder, percdamp):
    """Columns in act order (descending Hessian diagonal, stable) or as they are; H dampened by
    percdamp of its mean diagonal; returns (permuted W, U upper with H^-1 = U^T U, perm)."""
    cols = W.shape[1]
    perm = np.argsort(-np.diag(H), kind="stable") if actorder else np.arange(cols)
    W = W[:, perm]
    H = H[perm][:, perm]
    H[np.diag_indices(cols)] += percdamp * np.mean(np.diag(H))
    L = np.linalg.cholesky(H)
    Hinv = np.linalg.inv(L).T @ np.linalg.inv(L)
    return W, np.linalg.cholesky(Hinv).T, perm


def sweep(W, U, perm, blocksize, grid_at, before):
    """GPTQ's column sweep with lazy batch updates, shared by both references: columns in `perm`
    order, each row's value rounded onto grid_at(r, col) and the error fed to the columns after
    it (within the batch at once, to later batches through Err @ U). before(i, col, W1) runs
    first for each column (to fix grids or note weights from the updated batch W1). Returns
    (levels K, values Q), indexed by original column."""
    rows, cols = W.shape
    K = np.zeros((rows, cols), dtype=np.int64)
    Q = np.zeros((rows, cols))
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].copy()
        Err = np.zeros_like(W1)
        for i in range(i2 - i1):
            col = perm[i1 + i]
            before(i, col, W1)
            w = W1[:, i]
            for r in range(rows):
                gr = grid_at(r, col)
                K[r, col] = level(gr, w[r])
                Q[r, col] = value(gr, K[r, col])
            e = (w - Q[:, col]) / U[i1 + i, i1 + i]
            W1[:, i + 1:] -= np.outer(e, U[i1 + i, i1 + i + 1:i2])
            Err[:, i] = e
        W[:, i1:i2] = W1
        W[:, i2:] -= Err @ U[i1:i2, i2:]
    return K, Q


def gptq_kquant(W, H, dtype, actorder, headers, percdamp=0.01, blocksize=128):
    """GPTQ onto the frozen grids of `headers`; returns (blocks, weights at super-block starts)."""
    import gguf
    from gguf.quants import dequantize
    rows, cols = W.shape
    nbytes, sub = KQUANT[dtype]
    nsb = cols // 256
    blocksize = max(blocksize, 256)
    W, H = dead_columns_zeroed(W, H)
    starts = np.zeros((rows, cols), dtype=np.float32)
    header = lambda r, s: headers[(r * nsb + s) * nbytes:(r * nsb + s + 1) * nbytes]
    grids = {(r, s): kquant_grids(dtype, header(r, s)) for r in range(rows) for s in range(nsb)}
    if actorder:
        starts[:] = W
    W, U, perm = permuted_factor(W, H, actorder, percdamp)

    def before(i, col, W1):
        if not actorder and col % 256 == 0:
            starts[:, col:col + 256] = W1[:, i:i + 256].astype(np.float32)

    K, Q = sweep(W, U, perm, blocksize, lambda r, col: grids[r, col // 256][(col % 256) // sub], before)
    out = bytearray()
    for r in range(rows):
        for s in range(nsb):
            out += kquant_pack(dtype, header(r, s), K[r, s * 256:(s + 1) * 256])
    # The packing is checked against gguf-py's reading of the blocks.
    back = dequantize(np.frombuffer(bytes(out), dtype=np.uint8), gguf.GGMLQuantizationType[dtype.upper()])
    if not np.array_equal(back.reshape(rows, cols).astype(np.float32), Q.astype(np.float32)):
        sys.exit("gptq_reference.py: gguf-py reads the packed blocks to other values than the levels chosen")
    return bytes(out), starts


def gptq(W, H, dtype, actorder, percdamp=0.01, blocksize=128):
    rows, cols = W.shape
    g = 32 if dtype[0] == "q" else int(dtype.split("_g")[1])
    blocksize = max(blocksize, g)  # a group never straddles two batches
    W, H = dead_columns_zeroed(W, H)
    grids = {}
    if actorder:
        for r in range(rows):
            for gi in range(cols // g):
                grids[r, gi] = grid(dtype, W[r, gi * g:(gi + 1) * g])
    W, U, perm = permuted_factor(W, H, actorder, percdamp)

    def before(i, col, W1):
        if not actorder and col % g == 0:
            for r in range(rows):
                grids[r, col // g] = grid(dtype, W1[r, i:i + g])

    K, _ = sweep(W, U, perm, blocksize, lambda r, col: grids[r, col // g], before)
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
    if dtype in KQUANT:
        headers = open(sys.argv[8], "rb").read()
        blocks, starts = gptq_kquant(W, H, dtype, actorder == "1", headers)
        open(out, "wb").write(blocks)
        starts.astype("<f4").tofile(sys.argv[9])
        return
    with open(out, "wb") as f:
        f.write(gptq(W, H, dtype, actorder == "1"))


if __name__ == "__main__":
    main()

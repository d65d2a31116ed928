// Integer dot products for the forward pass: a Q8_0 weight matrix (GGUF's 34-byte blocks,
// used as stored) times activations quantized to 8 bits per block of 32, as llama.cpp
// multiplies Q8_0 weights. Kept apart from ckernels.h (the quantizers' header).
//
// Every path (AVX-512 VNNI, AVX2 + FMA, portable scalar) computes each output with the same
// integer sums and the same f32 operations in the same order, so the paths agree bit for bit:
//   acc[L], L < 16, starts at +0; for each pair of blocks p (blocks 2p and 2p+1, the last one
//   zero when the row has an odd number of blocks), lane L belongs to block b = 2p + L/8,
//   bytes 4(L%8) ..< 4(L%8)+4 of it: acc[L] = fma((float)Σ w·a over those 4 bytes,
//   dw[b]·da[b], acc[L]). Then h[j] = acc[j] + acc[j+8], g[j] = h[j] + h[j+4],
//   e[j] = g[j] + g[j+2], result = e[0] + e[1].
#ifndef CKDOT_H
#define CKDOT_H

#include <stddef.h>
#include <stdint.h>

/// Values per row of the quantized activations for rows of `k` values (k a multiple of
/// 32): k rounded up to a whole pair of blocks (64).
size_t ck_q8_act_stride(size_t k);

/// Quantizes x[rows, k] (k a multiple of 32) per block of 32 as ggml's quantize_row_q8_0
/// does: d = max|x| / 127, q = x / d rounded to nearest even; d is kept in f32 (ggml rounds
/// it to f16). Writes q + 128 as bytes to qa[rows, ck_q8_act_stride(k)] and d to
/// da[rows, ck_q8_act_stride(k) / 32]; padding blocks get q = 0 and d = 0. A block holding
/// inf or NaN gets d = NaN, so the products it enters are NaN.
void ck_q8_act_quantize(const float *x, size_t rows, size_t k, uint8_t *qa, float *da);

/// out[t·ldo + (r − r0)] = Σ_b dw[r,b]·da[t,b]·Σ_i w[r,b,i]·a[t,b,i] (order above) for the
/// rows r0 ..< r1 of the Q8_0 matrix `w` ([rows, k], rows of k/32 blocks {f16 d; int8 q[32]})
/// and the T quantized activation rows of ck_q8_act_quantize. Allocates a repacking buffer of
/// about 12·k bytes (4 rows; 96 kB for k = 8192) per call, freed before it returns.
void ck_q8_0_matmul(const uint8_t *w, size_t k, size_t r0, size_t r1,
                    const uint8_t *qa, const float *da, size_t T, float *out, size_t ldo);

/// Which path ck_q8_0_matmul takes: 2 AVX-512 VNNI, 1 AVX2 + FMA, 0 scalar (respects
/// ck_simd_enabled()).
int ck_q8_dot_path(void);

#endif

// Integer dot products for the forward pass: GGUF block-quantized weights (Q8_0, Q4_0, Q4_1,
// Q5_0, Q5_1, Q3_K, Q4_K, Q5_K, Q6_K, used as stored) times activations quantized to 8 bits per block of 32, as llama.cpp
// multiplies quantized weights. Kept apart from ckernels.h (the quantizers' header).
//
// Each weight block of 32 values is an integer vector w[32] and an f32 scale dw (and, for
// Q4_K, an f32 offset mw):
//   Q8_0: w = q (int8), dw = d;   Q4_0: w = q − 8 (q the nibble), dw = d;
//   Q4_1: w = q, dw = d, mw = m;  Q5_0 / Q5_1: as Q4_0 / Q4_1 with a fifth bit from qh;
//   Q4_K: sub-block j of a super-block: w = q (0…15), dw = d·sc_j, mw = −dmin·m_j
//         (sc_j, m_j the 6-bit scale and min; both products exact in f32);
//   Q5_K: as Q4_K with a fifth bit from qh: w = q (0…31);
//   Q6_K: two halves of 16 values with their own int8 scales s_0, s_1: w_i = s_h·(q_i − 32)
//         (q the 6-bit value, h = i / 16; the kernels sum each half and scale the sums, the
//         same integers), dw = d;
//   Q3_K: as Q6_K, with w = q − 4·(1 − h) (q the 2-bit value, h its bit in hmask) and the
//         halves' 6-bit scales minus 32.
// The value it stands for is dw·w_i (+ mw). Every path (AVX-512 VNNI, AVX2 + FMA, portable
// scalar) computes each output with the same integer sums and the same f32 operations in the
// same order, so the paths agree bit for bit:
//   acc = +0; for each block b in order:
//     acc = fma((float)Σ_i w[b,i]·a[b,i], dw[b]·da[b], acc)      (the integer sum is exact,
//                                                                 and below 2^24 for Q6_K)
//     Q4_1, Q5_1, Q4_K, Q5_K: acc = fma(mw[b], sa[b], acc)                    (sa[b] = da[b]·(float)Σ_i a[b,i])
//   result = acc.
#ifndef CKDOT_H
#define CKDOT_H

#include <stddef.h>
#include <stdint.h>

/// Weight block types the kernels multiply (values of the `type` arguments).
enum { CK_DOT_Q8_0 = 0, CK_DOT_Q4_0 = 1, CK_DOT_Q4_K = 2, CK_DOT_Q6_K = 3, CK_DOT_Q5_K = 4, CK_DOT_Q3_K = 5,
       CK_DOT_Q4_1 = 6, CK_DOT_Q5_0 = 7, CK_DOT_Q5_1 = 8 };

/// Bytes of one stored row of `k` values of `type` (k a multiple of its block size: 32, or
/// 256 for the k-quants); 0 for an unknown type.
size_t ck_dot_row_bytes(int type, size_t k);

/// Values per row of the quantized activations for rows of `k` values (k a multiple of 32).
size_t ck_q8_act_stride(size_t k);

/// Quantizes x[rows, k] (k a multiple of 32) per block of 32 as ggml's quantize_row_q8_0
/// does: d = max|x| / 127, q = x / d rounded to nearest even; d is kept in f32 (ggml rounds
/// it to f16). Writes q + 128 as bytes to qa[rows, ck_q8_act_stride(k)] and d to
/// da[rows, ck_q8_act_stride(k) / 32]. A block holding inf or NaN gets d = NaN, so the
/// products it enters are NaN. `sa` (may be NULL): da·(float)Σq per block, which Q4_K's
/// offsets multiply.
void ck_q8_act_quantize(const float *x, size_t rows, size_t k, uint8_t *qa, float *da, float *sa);

/// out[t·ldo + (r − r0)] for rows r0 ..< r1 of the weight matrix `w` ([rows, k] of `type`,
/// rows of ck_dot_row_bytes(type, k) bytes) and the T quantized activation rows of
/// ck_q8_act_quantize (`sa` needed for the types with offsets mw only), in the order above. Allocates a repacking
/// buffer of about 26·k bytes (16 rows; 208 kB for k = 8192) per call, freed before it returns.
void ck_dot_matmul(int type, const uint8_t *w, size_t k, size_t r0, size_t r1,
                   const uint8_t *qa, const float *da, const float *sa, size_t T, float *out, size_t ldo);

/// Which path ck_dot_matmul takes: 2 AVX-512 VNNI, 1 AVX2 + FMA, 0 scalar (respects
/// ck_simd_enabled(); CKPT_Q8_PATH=avx2|scalar forces a slower one, for tests and benchmarks).
int ck_q8_dot_path(void);

#endif

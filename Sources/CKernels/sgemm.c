// f32 matrix products against weights packed once at load time. See include/ckernels.h.
//
// Why not sgemm alone: for the forward pass's shapes (a few hundred activation rows against
// a weight matrix of millions of values) OpenBLAS repacks the whole weight matrix on every
// call, which profiled at ~15 % of a LLaMA forward's time (reading the weights from memory
// in a copy loop that does no arithmetic). Packed once, the weights stream straight into
// the multiply-adds, and the next block is prefetched while the current one is reused.
//
// Layout: panels of 32 output columns; panel p holds, for k = 0..<K, the 32 weights of
// columns 32p..<32p+32 at input k (zeros past the last column). The product walks panel by
// panel, K in blocks of KC, and the activation rows 8 at a time: 16 AVX-512 accumulators.
// Each output is ((bias + Σ block 0) + Σ block 1) + ..., each block summed in k order with
// fused multiply-adds; its rounding differs from sgemm's in the last bits (tests hold it to
// the f32 summation bound against a double-precision sum).
#include "ckernels.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_X86 1
#endif

enum { NR = 32, MR = 8, KC = 512 };

static int ck_avx512_state = -1;

int ck_sgemm_packed_available(void) {
    // Decided once per process (CPU, and CKPT_NO_SIMD=1 to keep sgemm): not by ck_set_simd,
    // so every product of a process rounds alike even while tests toggle the other kernels.
    if (ck_avx512_state < 0) {
        const char *off = getenv("CKPT_NO_SIMD");
        int disabled = off && *off && strcmp(off, "0") != 0;
#ifdef CK_X86
        __builtin_cpu_init();
        ck_avx512_state = !disabled && __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
        (void)disabled;
        ck_avx512_state = 0;
#endif
    }
    return ck_avx512_state;
}

size_t ck_sgemm_panels(size_t oc) { return (oc + NR - 1) / NR; }

size_t ck_sgemm_packed_floats(size_t oc, size_t k) { return ck_sgemm_panels(oc) * NR * k; }

void ck_sgemm_pack(const float *w, size_t oc, size_t k, int in_out, float *packed, size_t p0, size_t p1) {
    for (size_t p = p0; p < p1; p++) {
        float *dst = packed + p * NR * k;
        size_t c0 = p * NR, cols = oc - c0 < NR ? oc - c0 : NR;
        if (in_out) {
            // w[k][oc]: a row of 32 columns is contiguous.
            for (size_t i = 0; i < k; i++) {
                memcpy(dst + i * NR, w + i * oc + c0, cols * sizeof(float));
                for (size_t j = cols; j < NR; j++) dst[i * NR + j] = 0;
            }
        } else {
            // w[oc][k]: transpose 32 rows, a block of inputs at a time.
            for (size_t i0 = 0; i0 < k; i0 += 64) {
                size_t i1 = i0 + 64 < k ? i0 + 64 : k;
                for (size_t j = 0; j < NR; j++) {
                    const float *row = w + (c0 + j) * k;
                    if (j < cols) {
                        for (size_t i = i0; i < i1; i++) dst[i * NR + j] = row[i];
                    } else {
                        for (size_t i = i0; i < i1; i++) dst[i * NR + j] = 0;
                    }
                }
            }
        }
    }
}

#ifdef CK_X86
// rows × (≤ 32 columns, `mask` of the second half) of out += x[rows, kc] · panel block,
// starting from bias (first block) or from out. `pf`: `pf_lines` 64-byte lines of the
// next block to prefetch, one per k step.
__attribute__((target("avx512f"), always_inline))
static inline void micro(int rows, size_t kc, const float *x, size_t ldx, const float *w,
                         float *out, size_t ldo, int first, const float *bias, __mmask16 m0, __mmask16 m1,
                         const char *pf, size_t pf_lines) {
    // Each K block is summed from zero and then added to the running total (the bias, or
    // the earlier blocks' sum in out): blocked summation, as sgemm kernels do, keeps the
    // rounding error growing with KC + K/KC rather than K.
    __m512 a0[MR], a1[MR];
    for (int r = 0; r < MR; r++) { a0[r] = _mm512_setzero_ps(); a1[r] = _mm512_setzero_ps(); }
    size_t pfi = 0;
    for (size_t i = 0; i < kc; i++) {
        __m512 w0 = _mm512_load_ps(w + i * NR), w1 = _mm512_load_ps(w + i * NR + 16);
        if (pfi < pf_lines) { _mm_prefetch(pf + 64 * pfi, _MM_HINT_T1); pfi++; }
        for (int r = 0; r < MR; r++) {
            if (r < rows) {
                __m512 xv = _mm512_set1_ps(x[r * ldx + i]);
                a0[r] = _mm512_fmadd_ps(xv, w0, a0[r]);
                a1[r] = _mm512_fmadd_ps(xv, w1, a1[r]);
            }
        }
    }
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (first && bias) {
        b0 = _mm512_maskz_loadu_ps(m0, bias);
        b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (int r = 0; r < MR; r++) {
        if (r < rows) {
            __m512 t0 = first ? b0 : _mm512_maskz_loadu_ps(m0, out + r * ldo);
            __m512 t1 = first ? b1 : _mm512_maskz_loadu_ps(m1, out + r * ldo + 16);
            _mm512_mask_storeu_ps(out + r * ldo, m0, _mm512_add_ps(t0, a0[r]));
            _mm512_mask_storeu_ps(out + r * ldo + 16, m1, _mm512_add_ps(t1, a1[r]));
        }
    }
}

// One specialisation per row count, so the loops over rows unroll with no tests left.
#define CK_MICRO(R)                                                                                     \
    __attribute__((target("avx512f"))) static void micro##R(size_t kc, const float *x, size_t ldx,     \
        const float *w, float *out, size_t ldo, int first, const float *bias, __mmask16 m0,            \
        __mmask16 m1, const char *pf, size_t pf_lines) {                                              \
        micro(R, kc, x, ldx, w, out, ldo, first, bias, m0, m1, pf, pf_lines);                          \
    }
CK_MICRO(1)
CK_MICRO(2)
CK_MICRO(3)
CK_MICRO(4)
CK_MICRO(5)
CK_MICRO(6)
CK_MICRO(7)
CK_MICRO(8)

typedef void (*micro_fn)(size_t, const float *, size_t, const float *, float *, size_t, int, const float *,
                         __mmask16, __mmask16, const char *, size_t);
static const micro_fn micros[MR + 1] = {0, micro1, micro2, micro3, micro4, micro5, micro6, micro7, micro8};
#endif

void ck_sgemm_packed(const float *x, size_t t, size_t k, size_t ldx, const float *packed, size_t oc,
                     const float *bias, float *out, size_t ldo, size_t p0, size_t p1) {
#ifdef CK_X86
    if (t == 0 || k == 0) {
        for (size_t r = 0; r < t; r++)
            for (size_t c = p0 * NR; c < oc && c < p1 * NR; c++) out[r * ldo + c] = bias ? bias[c] : 0;
        return;
    }
    // Rows in blocks of TB (each block reads every weight once); per panel, K in blocks of
    // KC, then the rows 8 at a time (the panel block stays in L2 while the rows pass).
    const size_t TB = 256;
    for (size_t t0 = 0; t0 < t; t0 += TB) {
        size_t t1 = t0 + TB < t ? t0 + TB : t;
        size_t blocks = (t1 - t0 + MR - 1) / MR;
        for (size_t p = p0; p < p1; p++) {
            size_t c0 = p * NR, cols = oc - c0 < NR ? oc - c0 : NR;
            __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
            __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
            const float *panel = packed + p * NR * k;
            const float *b = bias ? bias + c0 : 0;
            for (size_t k0 = 0; k0 < k; k0 += KC) {
                size_t kc = k0 + KC < k ? KC : k - k0;
                const float *wb = panel + k0 * NR;
                // The block after this one (the next K block, else the next panel's first).
                const char *next = (const char *)(k0 + KC < k ? wb + kc * NR : (p + 1 < p1 ? packed + (p + 1) * NR * k : 0));
                size_t next_lines = next ? (KC * NR * sizeof(float)) / 64 : 0;
                size_t per_block = blocks > 1 ? (next_lines + blocks - 2) / (blocks - 1) : next_lines;
                for (size_t bi = 0; bi < blocks; bi++) {
                    size_t r0 = t0 + bi * MR, rows = t1 - r0 < MR ? t1 - r0 : MR;
                    // The first row block pulls this block in; the others prefetch the next.
                    size_t from = bi == 0 ? 0 : (bi - 1) * per_block;
                    size_t lines = bi == 0 && blocks > 1 ? 0 : (from < next_lines ? next_lines - from : 0);
                    if (lines > per_block) lines = per_block;
                    micros[rows](kc, x + r0 * ldx + k0, ldx, wb, out + r0 * ldo + c0, ldo, k0 == 0, b, m0, m1,
                                 next ? next + 64 * from : 0, next ? lines : 0);
                }
            }
        }
    }
#else
    (void)x; (void)t; (void)k; (void)ldx; (void)packed; (void)oc; (void)bias; (void)out; (void)ldo; (void)p0; (void)p1;
#endif
}

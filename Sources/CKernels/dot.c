// Q8_0 weights × 8-bit activations: see include/ckdot.h for the order every path follows.
//
// Weights are used as stored. For a tile of 4 weight rows the blocks are first repacked
// (pairs of blocks side by side, the scales spread over the lanes they multiply, the
// correction for the +128 offset of the activations precomputed), then every activation
// row is multiplied against the tile, 4 rows × 4 tokens of accumulators at a time:
//   VNNI:  vpdpbusd(−128·Σw, a + 128, w) = Σ a·w, exact in each 32-bit lane (4 products);
//   AVX2:  vpmaddubsw(|w|, sign(a, w)) then vpmaddwd(·, 1): the same 4-product lane sums
//          (|w|·|a| ≤ 128·127, so the 16-bit pair sums cannot saturate);
//   scalar: the same sums with plain integer arithmetic.
// The f32 work (convert, scale product, fused multiply-add, final reduction) is identical.
#include "ckdot.h"
#include "ckernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_X86 1
#endif

#pragma STDC FP_CONTRACT OFF

typedef struct {
    int8_t q[64];   // blocks 2p and 2p+1 of the row
    float s[16];    // their scales: lanes 0-7 block 2p, 8-15 block 2p+1
    int32_t c[16];  // VNNI: −128 · the 4-byte lane sums of q; AVX2: |q| as 64 bytes
} ck_pair;

static float half_to_float(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 0) {
        float f = (float)m * 0x1p-24f;
        return sign ? -f : f;
    }
    bits = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e + 112) << 23) | (m << 13));
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

size_t ck_q8_act_stride(size_t k) { return (k / 32 + 1) / 2 * 64; }

void ck_q8_act_quantize(const float *x, size_t rows, size_t k, uint8_t *qa, float *da) {
    size_t nb = k / 32, kp = ck_q8_act_stride(k), nd = kp / 32;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * k;
        uint8_t *q = qa + r * kp;
        float *d = da + r * nd;
        for (size_t b = 0; b < nb; b++) {
            const float *v = xr + 32 * b;
            float amax = 0;
            int finite = 1;
            for (int i = 0; i < 32; i++) {
                float a = fabsf(v[i]);
                finite &= a <= 3.4028235e38f;  // false for inf and NaN
                amax = a > amax ? a : amax;
            }
            if (!finite) {
                memset(q + 32 * b, 128, 32);
                d[b] = NAN;
                continue;
            }
            float s = amax / 127.0f, is = s != 0 ? 1.0f / s : 0.0f;
            for (int i = 0; i < 32; i++) {
                float t = v[i] * is;
                t = (t + 12582912.0f) - 12582912.0f;  // round to nearest even (|t| ≤ 127)
                int iq = (int)t;
                iq = iq > 127 ? 127 : iq < -127 ? -127 : iq;
                q[32 * b + i] = (uint8_t)(iq + 128);
            }
            d[b] = s;
        }
        for (size_t b = nb; b < nd; b++) {
            memset(q + 32 * b, 128, 32);
            d[b] = 0;
        }
    }
}

// ---- the canonical order, scalar ---------------------------------------------------------

static float reduce16(const float *acc) {
    float h[8], g[4], e[2];
    for (int j = 0; j < 8; j++) h[j] = acc[j] + acc[j + 8];
    for (int j = 0; j < 4; j++) g[j] = h[j] + h[j + 4];
    for (int j = 0; j < 2; j++) e[j] = g[j] + g[j + 2];
    return e[0] + e[1];
}

static void matmul_scalar(const uint8_t *w, size_t k, size_t r0, size_t r1,
                          const uint8_t *qa, const float *da, size_t T, float *out, size_t ldo) {
    size_t nb = k / 32, nbp = (nb + 1) / 2, kp = ck_q8_act_stride(k), nd = kp / 32;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = w + r * nb * 34;
        for (size_t t = 0; t < T; t++) {
            float acc[16] = {0};
            const uint8_t *a = qa + t * kp;
            for (size_t p = 0; p < nbp; p++) {
                for (int L = 0; L < 16; L++) {
                    size_t b = 2 * p + (size_t)(L / 8);
                    int j = L % 8;
                    int32_t sum = 0;
                    float s = 0;
                    if (b < nb) {
                        const int8_t *wq = (const int8_t *)(row + b * 34 + 2);
                        for (int u = 0; u < 4; u++) sum += (int32_t)wq[4 * j + u] * ((int32_t)a[32 * b + 4 * j + u] - 128);
                        float dw = half_to_float(row + b * 34);
                        s = dw * da[t * nd + b];
                    }
                    acc[L] = fmaf((float)sum, s, acc[L]);
                }
            }
            out[t * ldo + (r - r0)] = reduce16(acc);
        }
    }
}

#ifdef CK_X86

// ---- repacking a tile of 4 rows ------------------------------------------------------------

static void repack(const uint8_t *w, size_t nb, size_t r, size_t n, ck_pair *dst, int vnni) {
    size_t nbp = (nb + 1) / 2;
    for (size_t p = 0; p < nbp; p++) {
        for (size_t i = 0; i < 4; i++) {
            ck_pair *o = dst + p * 4 + i;
            memset(o, 0, sizeof *o);
            if (i >= n) continue;
            const uint8_t *row = w + (r + i) * nb * 34;
            for (size_t h = 0; h < 2; h++) {
                size_t b = 2 * p + h;
                if (b >= nb) continue;
                memcpy(o->q + 32 * h, row + b * 34 + 2, 32);
                float d = half_to_float(row + b * 34);
                for (int l = 0; l < 8; l++) o->s[8 * h + l] = d;
            }
            if (vnni) {
                for (int l = 0; l < 16; l++)
                    o->c[l] = -128 * (o->q[4 * l] + o->q[4 * l + 1] + o->q[4 * l + 2] + o->q[4 * l + 3]);
            } else {
                uint8_t *absq = (uint8_t *)o->c;
                for (int l = 0; l < 64; l++) absq[l] = (uint8_t)(o->q[l] < 0 ? -(int)o->q[l] : o->q[l]);
            }
        }
    }
}

// ---- AVX-512 VNNI ------------------------------------------------------------------------

#define CK_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")))

CK_VNNI static inline float reduce_vnni(__m512 v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 g = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    __m128 e = _mm_add_ps(g, _mm_movehl_ps(g, g));
    return _mm_cvtss_f32(_mm_add_ss(e, _mm_shuffle_ps(e, e, 1)));
}

CK_VNNI static inline __attribute__((always_inline)) void
tile_vnni(const ck_pair *rp, size_t nbp, const uint8_t *qa, const float *da, size_t kp, size_t nd,
          const int nt, float res[4][4]) {
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < nt; t++) acc[i][t] = _mm512_setzero_ps();
    const __m512i spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    for (size_t p = 0; p < nbp; p++) {
        __m512i a[4];
        __m512 sa[4];
        for (int t = 0; t < nt; t++) {
            a[t] = _mm512_loadu_si512((const void *)(qa + t * kp + p * 64));
            __m128 two = _mm_castpd_ps(_mm_load_sd((const double *)(da + t * nd + 2 * p)));
            sa[t] = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(two));
        }
        const ck_pair *o = rp + p * 4;
        for (int i = 0; i < 4; i++) {
            __m512i wq = _mm512_load_si512((const void *)o[i].q);
            __m512i c = _mm512_load_si512((const void *)o[i].c);
            __m512 sw = _mm512_load_ps(o[i].s);
            for (int t = 0; t < nt; t++) {
                __m512i d = _mm512_dpbusd_epi32(c, a[t], wq);
                acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(sw, sa[t]), acc[i][t]);
            }
        }
    }
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < nt; t++) res[i][t] = reduce_vnni(acc[i][t]);
}

CK_VNNI static void tile_vnni_n(const ck_pair *rp, size_t nbp, const uint8_t *qa, const float *da, size_t kp,
                                size_t nd, int nt, float res[4][4]) {
    switch (nt) {
    case 4: tile_vnni(rp, nbp, qa, da, kp, nd, 4, res); break;
    case 3: tile_vnni(rp, nbp, qa, da, kp, nd, 3, res); break;
    case 2: tile_vnni(rp, nbp, qa, da, kp, nd, 2, res); break;
    default: tile_vnni(rp, nbp, qa, da, kp, nd, 1, res); break;
    }
}

// The repacking of `repack` for the VNNI path, vectorised (the same bytes).
CK_VNNI static void repack_vnni(const uint8_t *w, size_t nb, size_t r, size_t n, ck_pair *dst) {
    size_t nbp = (nb + 1) / 2;
    const __m512i u128 = _mm512_set1_epi8((char)0x80);
    for (size_t i = 0; i < 4; i++) {
        const uint8_t *row = i < n ? w + (r + i) * nb * 34 : NULL;
        for (size_t p = 0; p < nbp; p++) {
            ck_pair *o = dst + p * 4 + i;
            if (!row) {
                memset(o, 0, sizeof *o);
                continue;
            }
            size_t b = 2 * p;
            int second = b + 1 < nb;
            __m256i q0 = _mm256_loadu_si256((const __m256i *)(row + b * 34 + 2));
            __m256i q1 = second ? _mm256_loadu_si256((const __m256i *)(row + (b + 1) * 34 + 2)) : _mm256_setzero_si256();
            __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
            float d0 = half_to_float(row + b * 34), d1 = second ? half_to_float(row + (b + 1) * 34) : 0.0f;
            __m512 s = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(d0)), _mm256_set1_ps(d1), 1);
            __m512i c = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), u128, q));
            _mm512_store_si512((void *)o->q, q);
            _mm512_store_ps(o->s, s);
            _mm512_store_si512((void *)o->c, c);
        }
    }
}

// ---- AVX2 + FMA ----------------------------------------------------------------------------

#define CK_AVX2 __attribute__((target("avx2,fma")))

CK_AVX2 static inline float reduce_avx2(__m256 lo, __m256 hi) {
    __m256 h = _mm256_add_ps(lo, hi);
    __m128 g = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    __m128 e = _mm_add_ps(g, _mm_movehl_ps(g, g));
    return _mm_cvtss_f32(_mm_add_ss(e, _mm_shuffle_ps(e, e, 1)));
}

// 4 rows × 1 token; lanes 0-7 (even blocks) and 8-15 (odd blocks) in two registers.
CK_AVX2 static void tile_avx2(const ck_pair *rp, size_t nbp, const uint8_t *qa, const float *da, float res[4]) {
    __m256 lo[4], hi[4];
    for (int i = 0; i < 4; i++) lo[i] = hi[i] = _mm256_setzero_ps();
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t p = 0; p < nbp; p++) {
        __m256i a0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(qa + p * 64)), flip);
        __m256i a1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(qa + p * 64 + 32)), flip);
        __m256 s0 = _mm256_set1_ps(da[2 * p]), s1 = _mm256_set1_ps(da[2 * p + 1]);
        const ck_pair *o = rp + p * 4;
        for (int i = 0; i < 4; i++) {
            const uint8_t *absq = (const uint8_t *)o[i].c;
            __m256i w0 = _mm256_load_si256((const __m256i *)o[i].q), w1 = _mm256_load_si256((const __m256i *)(o[i].q + 32));
            __m256i u0 = _mm256_load_si256((const __m256i *)absq), u1 = _mm256_load_si256((const __m256i *)(absq + 32));
            __m256i d0 = _mm256_madd_epi16(_mm256_maddubs_epi16(u0, _mm256_sign_epi8(a0, w0)), ones);
            __m256i d1 = _mm256_madd_epi16(_mm256_maddubs_epi16(u1, _mm256_sign_epi8(a1, w1)), ones);
            __m256 sw0 = _mm256_load_ps(o[i].s), sw1 = _mm256_load_ps(o[i].s + 8);
            lo[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_mul_ps(sw0, s0), lo[i]);
            hi[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), _mm256_mul_ps(sw1, s1), hi[i]);
        }
    }
    for (int i = 0; i < 4; i++) res[i] = reduce_avx2(lo[i], hi[i]);
}

static int cpu_path(void) {
    static int path = -1;
    if (path < 0) {
        __builtin_cpu_init();
        int vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma");
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        path = vnni ? 2 : avx2 ? 1 : 0;
    }
    return path;
}

int ck_q8_dot_path(void) {
    const char *force = getenv("CKPT_Q8_PATH");  // benchmarking: "avx2" or "scalar"
    int p = ck_simd_enabled() ? cpu_path() : 0;
    if (force && p > 1 && strcmp(force, "avx2") == 0) p = 1;
    if (force && strcmp(force, "scalar") == 0) p = 0;
    return p;
}

#else
int ck_q8_dot_path(void) { return 0; }
#endif

void ck_q8_0_matmul(const uint8_t *w, size_t k, size_t r0, size_t r1,
                    const uint8_t *qa, const float *da, size_t T, float *out, size_t ldo) {
    int path = ck_q8_dot_path();
    if (path == 0 || r1 <= r0 || T == 0) {
        matmul_scalar(w, k, r0, r1, qa, da, T, out, ldo);
        return;
    }
#ifdef CK_X86
    size_t nb = k / 32, nbp = (nb + 1) / 2, kp = ck_q8_act_stride(k), nd = kp / 32;
    ck_pair *rp = aligned_alloc(64, nbp * 4 * sizeof(ck_pair));
    if (!rp) {
        matmul_scalar(w, k, r0, r1, qa, da, T, out, ldo);
        return;
    }
    for (size_t r = r0; r < r1; r += 4) {
        size_t n = r1 - r < 4 ? r1 - r : 4;
        if (path == 2) repack_vnni(w, nb, r, n, rp);
        else repack(w, nb, r, n, rp, 0);
        for (size_t t0 = 0; t0 < T; t0 += (path == 2 ? 4 : 1)) {
            float res[4][4];
            if (path == 2) {
                int nt = T - t0 < 4 ? (int)(T - t0) : 4;
                tile_vnni_n(rp, nbp, qa + t0 * kp, da + t0 * nd, kp, nd, nt, res);
                for (int t = 0; t < nt; t++)
                    for (size_t i = 0; i < n; i++) out[(t0 + t) * ldo + (r - r0) + i] = res[i][t];
            } else {
                float one[4];
                tile_avx2(rp, nbp, qa + t0 * kp, da + t0 * nd, one);
                for (size_t i = 0; i < n; i++) out[t0 * ldo + (r - r0) + i] = one[i];
            }
        }
    }
    free(rp);
#endif
}

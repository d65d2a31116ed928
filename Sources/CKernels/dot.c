// Block-quantized weights × 8-bit activations: see include/ckdot.h for the order every path
// follows.
//
// Weights are used as stored. For a group of 16 weight rows the blocks are first repacked so
// that one 512-bit register holds 4 values of every row (lane i = row i): block b of the group
// is q[8][16][4] (values 4j..4j+3 of each row in q[j]), the rows' scales dw[16], offsets
// mw[16] (Q4_K), Q6_K's half scales hs[2][16] and, for VNNI, the correction c[16] for the
// +128 offset of the activations (for Q6_K, c and ch: one per half).
// Then each activation row's 4 bytes are broadcast against q[j], so the 8 products of a block
// accumulate the whole 32-value integer sum of 16 rows in 16 lanes, with no horizontal
// reduction and one f32 fused multiply-add per block and row (ggml's llamafile kernels spend
// one per block, row and token on 8 lanes, then reduce). 16 rows × 8 tokens at a time:
//   VNNI:  vpdpbusd(c, a + 128, w) with c = −128·Σw: Σ a·w, exact in each 32-bit lane;
//   AVX2:  vpmaddubsw(|w|, sign(a, w)) then vpmaddwd(·, 1): the same sums (|w|·|a| ≤ 128·127,
//          so the 16-bit pair sums cannot saturate), 8 rows per register (Q6_K: vpmaddwd by
//          the half's scale, |w| ≤ 32 so s·pair sum < 2^21);
//   scalar: the same sums with plain integer arithmetic.
// Q6_K sums each half of 16 values apart and adds s_0·Σ_0 + s_1·Σ_1 (32-bit products, exact).
// The f32 work (convert, scale product, fused multiply-adds) is identical in all three.
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
    _Alignas(64) int8_t q[8][16][4];  // q[j][i]: values 4j ..< 4j+4 of row i's block (the
                                      // alignment keeps every block of an array 64-byte aligned)
    float dw[16];        // the rows' block scales
    int32_t c[16];       // VNNI: −128 · Σ q of the row's block (Q6_K: of its first half)
    float mw[16];        // Q4_K: −dmin·m of the row's sub-block; 0 otherwise
    int32_t ch[16];      // VNNI, Q6_K: −128 · Σ q of the second half
    int8_t hs[2][16];    // Q6_K: the scales of the halves; unused otherwise
} ck_blk;

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

size_t ck_dot_row_bytes(int type, size_t k) {
    switch (type) {
    case CK_DOT_Q8_0: return k / 32 * 34;
    case CK_DOT_Q4_0: return k / 32 * 18;
    case CK_DOT_Q4_1: return k / 32 * 20;
    case CK_DOT_Q5_0: return k / 32 * 22;
    case CK_DOT_Q5_1: return k / 32 * 24;
    case CK_DOT_Q4_K: return k / 256 * 144;
    case CK_DOT_Q3_K: return k / 256 * 110;
    case CK_DOT_Q5_K: return k / 256 * 176;
    case CK_DOT_Q6_K: return k / 256 * 210;
    default: return 0;
    }
}

size_t ck_q8_act_stride(size_t k) { return k; }

void ck_q8_act_quantize(const float *x, size_t rows, size_t k, uint8_t *qa, float *da, float *sa) {
    size_t nb = k / 32;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * k;
        uint8_t *q = qa + r * k;
        float *d = da + r * nb;
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
                if (sa) sa[r * nb + b] = NAN;
                continue;
            }
            float s = amax / 127.0f, is = s != 0 ? 1.0f / s : 0.0f;
            int sum = 0;
            for (int i = 0; i < 32; i++) {
                float t = v[i] * is;
                t = (t + 12582912.0f) - 12582912.0f;  // round to nearest even (|t| ≤ 127)
                int iq = (int)t;
                iq = iq > 127 ? 127 : iq < -127 ? -127 : iq;
                sum += iq;
                q[32 * b + i] = (uint8_t)(iq + 128);
            }
            d[b] = s;
            if (sa) sa[r * nb + b] = s * (float)sum;
        }
    }
}

// ---- weight blocks as integers ---------------------------------------------------------

// ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j of a Q4_K super-block.
static void scale_min_k4(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// ggml's Q3_K scale k (0…15) of a super-block: 4 low bits from scales[k % 8] (low or high
// nibble), 2 high bits from scales[8 + k % 4], minus 32.
static int8_t scale_k3(const uint8_t *s, int k) {
    int low = (s[k % 8] >> (4 * (k / 8))) & 15, high = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
    return (int8_t)((low | (high << 4)) - 32);
}

// Block b (32 values) of a stored row: its integers, scale and offset (ckdot.h), and the
// scales of its halves (Q6_K; 1 otherwise).
static void unpack_block(int type, const uint8_t *row, size_t b, int8_t w[32], float *dw, float *mw, int8_t hs[2]) {
    hs[0] = hs[1] = 1;
    if (type == CK_DOT_Q6_K) {
        // {uint8 ql[128], qh[64]; int8 scales[16]; half d} per 256 values, in two halves of
        // 128: value 32g + l of half n has the low (g < 2) or high nibble of ql[64n + 32(g % 2) + l],
        // bits 2g, 2g + 1 of qh[32n + l] on top, and scale scales[8n + 2g + l / 16].
        const uint8_t *sb = row + b / 8 * 210;
        int n = (int)(b % 8 / 4), g = (int)(b % 4);
        const uint8_t *ql = sb + 64 * n + 32 * (g % 2), *qh = sb + 128 + 32 * n;
        int nib = g < 2 ? 0 : 4, hi = 2 * g;
        for (int l = 0; l < 32; l++) w[l] = (int8_t)((((ql[l] >> nib) & 15) | (((qh[l] >> hi) & 3) << 4)) - 32);
        hs[0] = (int8_t)sb[192 + 8 * n + 2 * g];
        hs[1] = (int8_t)sb[192 + 8 * n + 2 * g + 1];
        *dw = half_to_float(sb + 208);
        *mw = 0;
    } else if (type == CK_DOT_Q3_K) {
        // {uint8 hmask[32], qs[64], scales[12]; half d} per 256 values, in two halves of 128:
        // value 32j + l of half n is bits 2j, 2j + 1 of qs[32n + l], minus 4 unless bit 4n + j
        // of hmask[l] is set; scales 8n + 2j and 8n + 2j + 1 (ggml's dequantize_row_q3_K).
        const uint8_t *sb = row + b / 8 * 110;
        int n = (int)(b % 8 / 4), j = (int)(b % 4), hbit = 4 * n + j;
        const uint8_t *qs = sb + 32 + 32 * n;
        for (int l = 0; l < 32; l++) w[l] = (int8_t)(((qs[l] >> (2 * j)) & 3) + (((sb[l] >> hbit) & 1) << 2) - 4);
        hs[0] = scale_k3(sb + 96, 8 * n + 2 * j);
        hs[1] = scale_k3(sb + 96, 8 * n + 2 * j + 1);
        *dw = half_to_float(sb + 108);
        *mw = 0;
    } else if (type == CK_DOT_Q8_0) {
        const uint8_t *blk = row + b * 34;
        *dw = half_to_float(blk);
        *mw = 0;
        memcpy(w, blk + 2, 32);
    } else if (type == CK_DOT_Q4_0) {
        const uint8_t *blk = row + b * 18;
        *dw = half_to_float(blk);
        *mw = 0;
        for (int j = 0; j < 16; j++) {
            w[j] = (int8_t)((blk[2 + j] & 15) - 8);
            w[j + 16] = (int8_t)((blk[2 + j] >> 4) - 8);
        }
    } else if (type == CK_DOT_Q4_1 || type == CK_DOT_Q5_0 || type == CK_DOT_Q5_1) {
        // {half d; [half m]; [uint8 qh[4]]; uint8 qs[16]}: value j < 16 is the low nibble of
        // qs[j], value j + 16 the high one; Q5: bit j of qh (little-endian) on top; Q5_0 − 16.
        int hasMin = type != CK_DOT_Q5_0, five = type != CK_DOT_Q4_1;
        size_t bs = type == CK_DOT_Q4_1 ? 20 : type == CK_DOT_Q5_0 ? 22 : 24;
        const uint8_t *blk = row + b * bs, *qh = blk + (hasMin ? 4 : 2), *qs = qh + (five ? 4 : 0);
        uint32_t h = five ? (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24 : 0;
        int off = type == CK_DOT_Q5_0 ? 16 : 0;
        for (int j = 0; j < 16; j++) {
            w[j] = (int8_t)(((qs[j] & 15) | ((h >> j) & 1) << 4) - off);
            w[j + 16] = (int8_t)(((qs[j] >> 4) | ((h >> (j + 16)) & 1) << 4) - off);
        }
        *dw = half_to_float(blk);
        *mw = hasMin ? half_to_float(blk + 2) : 0;
    } else if (type == CK_DOT_Q5_K) {  // {half d, dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]}
        // Sub-block j: Q4_K's nibbles plus bit j of qh[l] as the fifth bit.
        const uint8_t *sb = row + b / 8 * 176, *qh = sb + 16, *qs = sb + 48 + 32 * (b % 8 / 2);
        int j = (int)(b % 8), shift = 4 * (j % 2), sc, m;
        scale_min_k4(j, sb + 4, &sc, &m);
        for (int i = 0; i < 32; i++) w[i] = (int8_t)(((qs[i] >> shift) & 15) | (((qh[i] >> j) & 1) << 4));
        *dw = half_to_float(sb) * (float)sc;
        *mw = -(half_to_float(sb + 2) * (float)m);
    } else {  // Q4_K: {half d, dmin; uint8 scales[12]; uint8 qs[128]} per 256 values
        const uint8_t *sb = row + b / 8 * 144, *qs = sb + 16 + 32 * (b % 8 / 2);
        int j = (int)(b % 8), shift = 4 * (j % 2), sc, m;
        scale_min_k4(j, sb + 4, &sc, &m);
        for (int i = 0; i < 32; i++) w[i] = (int8_t)((qs[i] >> shift) & 15);
        *dw = half_to_float(sb) * (float)sc;
        *mw = -(half_to_float(sb + 2) * (float)m);
    }
}

// Rows [r, r + n) (n ≤ 16; missing rows are zero) of the group, every block.
static void repack16(int type, const uint8_t *w, size_t rb, size_t nb, size_t r, size_t n, ck_blk *dst) {
    for (size_t b = 0; b < nb; b++) {
        ck_blk *o = dst + b;
        for (size_t i = 0; i < 16; i++) {
            int8_t v[32], hs[2] = {0, 0};
            float dw = 0, mw = 0;
            if (i < n) unpack_block(type, w + (r + i) * rb, b, v, &dw, &mw, hs);
            else memset(v, 0, 32);
            for (int j = 0; j < 8; j++) memcpy(o->q[j][i], v + 4 * j, 4);
            o->dw[i] = dw;
            o->mw[i] = mw;
            o->hs[0][i] = hs[0];
            o->hs[1][i] = hs[1];
        }
    }
}

// ---- the canonical order, scalar ---------------------------------------------------------

static void matmul_scalar(int type, const uint8_t *w, size_t k, size_t r0, size_t r1,
                          const uint8_t *qa, const float *da, const float *sa, size_t T, float *out, size_t ldo) {
    size_t nb = k / 32, rb = ck_dot_row_bytes(type, k);
    int8_t v[32], hs[2];
    for (size_t r = r0; r < r1; r++) {
        for (size_t t = 0; t < T; t++) {
            const uint8_t *a = qa + t * k;
            float acc = 0;
            for (size_t b = 0; b < nb; b++) {
                float dw, mw;
                unpack_block(type, w + r * rb, b, v, &dw, &mw, hs);
                int32_t half[2] = {0, 0};
                for (int i = 0; i < 32; i++) half[i / 16] += (int32_t)v[i] * ((int32_t)a[32 * b + i] - 128);
                int32_t sum = hs[0] * half[0] + hs[1] * half[1];  // hs = 1, 1 but for Q6_K, Q3_K
                float s = dw * da[t * nb + b];
                acc = fmaf((float)sum, s, acc);
                if (type == CK_DOT_Q4_K || type == CK_DOT_Q5_K || type == CK_DOT_Q4_1 || type == CK_DOT_Q5_1)
                    acc = fmaf(mw, sa[t * nb + b], acc);
            }
            out[t * ldo + (r - r0)] = acc;
        }
    }
}

#ifdef CK_X86

static inline int32_t load32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// ---- AVX-512 VNNI ------------------------------------------------------------------------

#define CK_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")))

// c = −128 · Σ q for each row and block of the group (halves: c and ch for each half).
CK_VNNI static void corrections_vnni(ck_blk *rp, size_t nb, int halves) {
    const __m512i u128 = _mm512_set1_epi8((char)0x80);
    for (size_t b = 0; b < nb; b++) {
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) s0 = _mm512_dpbusd_epi32(s0, u128, _mm512_load_si512((const void *)rp[b].q[j]));
        for (int j = 4; j < 8; j++) s1 = _mm512_dpbusd_epi32(s1, u128, _mm512_load_si512((const void *)rp[b].q[j]));
        if (halves) {
            _mm512_store_si512((void *)rp[b].c, _mm512_sub_epi32(_mm512_setzero_si512(), s0));
            _mm512_store_si512((void *)rp[b].ch, _mm512_sub_epi32(_mm512_setzero_si512(), s1));
        } else {
            _mm512_store_si512((void *)rp[b].c, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_add_epi32(s0, s1)));
        }
    }
}

// repack16, vectorised (the same bytes): Q8_0 by an in-register transpose, the Q4 nibbles and
// Q6_K's low and high bits by gathers of 4 bytes of each of the 16 rows at once (for Q8_0, gathers measured slower than
// plain copies); the scales and Q4_K's sub-block constants stay scalar.
CK_VNNI static void repack16_vnni(int type, const uint8_t *w, size_t rb, size_t nb, size_t r, size_t n, ck_blk *dst) {
    const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    // Missing rows read row r again (always present) and are zeroed by the mask.
    __mmask16 live = (__mmask16)((1u << n) - 1);
    __m512i rows = _mm512_maskz_mullo_epi32(live, lanes, _mm512_set1_epi32((int)rb));
    const uint8_t *base = w + r * rb;
    const __m512i low = _mm512_set1_epi8(15), eight = _mm512_set1_epi8(8);
    for (size_t b = 0; b < nb; b++) {
        ck_blk *o = dst + b;
        if (type == CK_DOT_Q8_0) {
            // Rows k and k + 8 side by side (z[k]), then an 8 × 8 transpose of 4-byte values in
            // each 256-bit half: unpack 32-bit, unpack 64-bit, then pick 128-bit lanes.
            __m512i z[8], t[8], u[8];
            for (int k = 0; k < 8; k++) {
                __m256i lo = (size_t)k < n ? _mm256_loadu_si256((const __m256i *)(base + k * rb + b * 34 + 2)) : _mm256_setzero_si256();
                __m256i hi = (size_t)k + 8 < n ? _mm256_loadu_si256((const __m256i *)(base + (k + 8) * rb + b * 34 + 2)) : _mm256_setzero_si256();
                z[k] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            }
            for (int g = 0; g < 8; g += 4) {
                t[g + 0] = _mm512_unpacklo_epi32(z[g + 0], z[g + 1]);
                t[g + 1] = _mm512_unpackhi_epi32(z[g + 0], z[g + 1]);
                t[g + 2] = _mm512_unpacklo_epi32(z[g + 2], z[g + 3]);
                t[g + 3] = _mm512_unpackhi_epi32(z[g + 2], z[g + 3]);
                u[g + 0] = _mm512_unpacklo_epi64(t[g + 0], t[g + 2]);  // 4-byte value 0 (4) of 4 rows
                u[g + 1] = _mm512_unpackhi_epi64(t[g + 0], t[g + 2]);  // 1 (5)
                u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);  // 2 (6)
                u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);  // 3 (7)
            }
            const __m512i first = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0), second = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
            for (int d = 0; d < 4; d++) {
                _mm512_store_si512((void *)o->q[d], _mm512_permutex2var_epi64(u[d], first, u[d + 4]));
                _mm512_store_si512((void *)o->q[d + 4], _mm512_permutex2var_epi64(u[d], second, u[d + 4]));
            }
        } else if (type == CK_DOT_Q4_0) {
            const uint8_t *p = base + b * 18 + 2;
            for (int j = 0; j < 4; j++) {
                __m512i v = _mm512_maskz_mov_epi32(live, _mm512_i32gather_epi32(rows, (const void *)(p + 4 * j), 1));
                __m512i lo = _mm512_sub_epi8(_mm512_and_si512(v, low), eight);
                __m512i hi = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), low), eight);
                _mm512_store_si512((void *)o->q[j], _mm512_maskz_mov_epi32(live, lo));
                _mm512_store_si512((void *)o->q[j + 4], _mm512_maskz_mov_epi32(live, hi));
            }
        } else if (type == CK_DOT_Q3_K) {
            // unpack_block's layout: 2 bits from qs, plus 4 where hmask's bit is set, minus 4.
            int n3 = (int)(b % 8 / 4), j3 = (int)(b % 4);
            const uint8_t *hm = base + b / 8 * 110, *qs = hm + 32 + 32 * n3;
            const __m512i three = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1), four = _mm512_set1_epi8(4);
            for (int j = 0; j < 8; j++) {
                __m512i q = _mm512_i32gather_epi32(rows, (const void *)(qs + 4 * j), 1);
                __m512i h = _mm512_i32gather_epi32(rows, (const void *)(hm + 4 * j), 1);
                q = _mm512_and_si512(_mm512_srli_epi16(q, (unsigned)(2 * j3)), three);
                h = _mm512_and_si512(_mm512_srli_epi16(h, (unsigned)(4 * n3 + j3)), one);
                __m512i v = _mm512_sub_epi8(_mm512_or_si512(q, _mm512_slli_epi16(h, 2)), four);
                _mm512_store_si512((void *)o->q[j], _mm512_maskz_mov_epi32(live, v));
            }
        } else if (type == CK_DOT_Q6_K) {
            // unpack_block's layout: low 4 bits from ql, 2 high bits from qh (after the 16-bit
            // shifts, the masks keep each byte's own bits), minus 32.
            int n6 = (int)(b % 8 / 4), g = (int)(b % 4);
            const uint8_t *ql = base + b / 8 * 210 + 64 * n6 + 32 * (g % 2), *qh = base + b / 8 * 210 + 128 + 32 * n6;
            const __m512i three = _mm512_set1_epi8(3), k32 = _mm512_set1_epi8(32);
            for (int j = 0; j < 8; j++) {
                __m512i lo = _mm512_i32gather_epi32(rows, (const void *)(ql + 4 * j), 1);
                __m512i hb = _mm512_i32gather_epi32(rows, (const void *)(qh + 4 * j), 1);
                if (g >= 2) lo = _mm512_srli_epi16(lo, 4);
                lo = _mm512_and_si512(lo, low);
                hb = _mm512_and_si512(_mm512_srli_epi16(hb, (unsigned)(2 * g)), three);
                __m512i v = _mm512_sub_epi8(_mm512_or_si512(lo, _mm512_slli_epi16(hb, 4)), k32);
                _mm512_store_si512((void *)o->q[j], _mm512_maskz_mov_epi32(live, v));
            }
        } else {
            // Q4_K, and Q5_K with bit (b % 8) of qh[l] as the fifth bit (the mask after the
            // 16-bit shift keeps each byte's own bit).
            int five = type == CK_DOT_Q5_K, j5 = (int)(b % 8);
            const uint8_t *sb = base + b / 8 * (five ? 176 : 144), *p = sb + (five ? 48 : 16) + 32 * (b % 8 / 2);
            int shift = 4 * (int)(b % 2);
            const __m512i one = _mm512_set1_epi8(1);
            for (int j = 0; j < 8; j++) {
                __m512i v = _mm512_maskz_mov_epi32(live, _mm512_i32gather_epi32(rows, (const void *)(p + 4 * j), 1));
                if (shift) v = _mm512_srli_epi16(v, 4);
                v = _mm512_and_si512(v, low);
                if (five) {
                    __m512i hb = _mm512_maskz_mov_epi32(live, _mm512_i32gather_epi32(rows, (const void *)(sb + 16 + 4 * j), 1));
                    hb = _mm512_and_si512(_mm512_srli_epi16(hb, (unsigned)j5), one);
                    v = _mm512_or_si512(v, _mm512_slli_epi16(hb, 4));
                }
                _mm512_store_si512((void *)o->q[j], v);
            }
        }
        for (size_t i = 0; i < 16; i++) {
            float dw = 0, mw = 0;
            int8_t h0 = 0, h1 = 0;
            if (i < n) {
                const uint8_t *row = base + i * rb;
                if (type == CK_DOT_Q6_K) {
                    const uint8_t *sb = row + b / 8 * 210;
                    int s = 192 + 8 * (int)(b % 8 / 4) + 2 * (int)(b % 4);
                    dw = half_to_float(sb + 208);
                    h0 = (int8_t)sb[s];
                    h1 = (int8_t)sb[s + 1];
                } else if (type == CK_DOT_Q3_K) {
                    const uint8_t *sb = row + b / 8 * 110;
                    int s = 8 * (int)(b % 8 / 4) + 2 * (int)(b % 4);
                    dw = half_to_float(sb + 108);
                    h0 = scale_k3(sb + 96, s);
                    h1 = scale_k3(sb + 96, s + 1);
                } else if (type == CK_DOT_Q8_0) dw = half_to_float(row + b * 34);
                else if (type == CK_DOT_Q4_0) dw = half_to_float(row + b * 18);
                else {  // Q4_K, Q5_K
                    const uint8_t *sb = row + b / 8 * (type == CK_DOT_Q5_K ? 176 : 144);
                    int sc, m;
                    scale_min_k4((int)(b % 8), sb + 4, &sc, &m);
                    dw = half_to_float(sb) * (float)sc;
                    mw = -(half_to_float(sb + 2) * (float)m);
                }
            }
            o->dw[i] = dw;
            o->mw[i] = mw;
            o->hs[0][i] = h0;
            o->hs[1][i] = h1;
        }
    }
}

// The kinds of block a tile multiplies: one scale (Q8_0, Q4_0, Q5_0), with offsets (Q4_1, Q5_1,
// Q4_K, Q5_K), with a
// scale per half (Q6_K, Q3_K).
enum { CK_PLAIN = 0, CK_OFFSETS = 1, CK_HALVES = 2 };

// 16 rows × nt tokens; writes out[t·ldo + i] for i < n.
CK_VNNI static inline __attribute__((always_inline)) void
tile_vnni(const ck_blk *rp, size_t nb, const uint8_t *qa, const float *da, const float *sa, size_t k,
          const int nt, const int kind, float *out, size_t ldo, size_t n) {
    __m512 acc[8];
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        const ck_blk *B = rp + b;
        const __m512i c = _mm512_load_si512((const void *)B->c);
        const __m512 dw = _mm512_load_ps(B->dw);
        if (kind == CK_HALVES) {
            const __m512i ch = _mm512_load_si512((const void *)B->ch);
            const __m512i h0 = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)B->hs[0]));
            const __m512i h1 = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)B->hs[1]));
            for (int t = 0; t < nt; t++) {
                const uint8_t *a = qa + t * k + 32 * b;
                __m512i s0 = c, s1 = ch;
                s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(load32(a + 0)), _mm512_load_si512((const void *)B->q[0]));
                s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(load32(a + 16)), _mm512_load_si512((const void *)B->q[4]));
                s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(load32(a + 4)), _mm512_load_si512((const void *)B->q[1]));
                s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(load32(a + 20)), _mm512_load_si512((const void *)B->q[5]));
                s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(load32(a + 8)), _mm512_load_si512((const void *)B->q[2]));
                s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(load32(a + 24)), _mm512_load_si512((const void *)B->q[6]));
                s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(load32(a + 12)), _mm512_load_si512((const void *)B->q[3]));
                s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(load32(a + 28)), _mm512_load_si512((const void *)B->q[7]));
                __m512i s = _mm512_add_epi32(_mm512_mullo_epi32(s0, h0), _mm512_mullo_epi32(s1, h1));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(da[t * (k / 32) + b])), acc[t]);
            }
            continue;
        }
        for (int t = 0; t < nt; t++) {
            const uint8_t *a = qa + t * k + 32 * b;
            __m512i s0 = c, s1 = _mm512_setzero_si512();
            s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(load32(a + 0)), _mm512_load_si512((const void *)B->q[0]));
            s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(load32(a + 4)), _mm512_load_si512((const void *)B->q[1]));
            s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(load32(a + 8)), _mm512_load_si512((const void *)B->q[2]));
            s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(load32(a + 12)), _mm512_load_si512((const void *)B->q[3]));
            s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(load32(a + 16)), _mm512_load_si512((const void *)B->q[4]));
            s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(load32(a + 20)), _mm512_load_si512((const void *)B->q[5]));
            s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(load32(a + 24)), _mm512_load_si512((const void *)B->q[6]));
            s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(load32(a + 28)), _mm512_load_si512((const void *)B->q[7]));
            __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
            acc[t] = _mm512_fmadd_ps(f, _mm512_mul_ps(dw, _mm512_set1_ps(da[t * (k / 32) + b])), acc[t]);
            if (kind == CK_OFFSETS) acc[t] = _mm512_fmadd_ps(_mm512_load_ps(B->mw), _mm512_set1_ps(sa[t * (k / 32) + b]), acc[t]);
        }
    }
    __mmask16 m = (__mmask16)((1u << n) - 1);
    for (int t = 0; t < nt; t++) _mm512_mask_storeu_ps(out + t * ldo, m, acc[t]);
}

#define CK_TILE_CASES(fn, ...)                                         \
    switch (nt) {                                                      \
    case 8: fn(__VA_ARGS__, 8, OFF, out, ldo, n); break;               \
    case 7: fn(__VA_ARGS__, 7, OFF, out, ldo, n); break;               \
    case 6: fn(__VA_ARGS__, 6, OFF, out, ldo, n); break;               \
    case 5: fn(__VA_ARGS__, 5, OFF, out, ldo, n); break;               \
    case 4: fn(__VA_ARGS__, 4, OFF, out, ldo, n); break;               \
    case 3: fn(__VA_ARGS__, 3, OFF, out, ldo, n); break;               \
    case 2: fn(__VA_ARGS__, 2, OFF, out, ldo, n); break;               \
    default: fn(__VA_ARGS__, 1, OFF, out, ldo, n); break;              \
    }

CK_VNNI static void tiles_vnni(const ck_blk *rp, size_t nb, const uint8_t *qa, const float *da, const float *sa,
                               size_t k, int nt, int kind, float *out, size_t ldo, size_t n) {
    if (kind == CK_OFFSETS) {
#define OFF CK_OFFSETS
        CK_TILE_CASES(tile_vnni, rp, nb, qa, da, sa, k)
#undef OFF
    } else if (kind == CK_HALVES) {
#define OFF CK_HALVES
        CK_TILE_CASES(tile_vnni, rp, nb, qa, da, sa, k)
#undef OFF
    } else {
#define OFF 0
        CK_TILE_CASES(tile_vnni, rp, nb, qa, da, sa, k)
#undef OFF
    }
}

// ---- AVX2 + FMA ----------------------------------------------------------------------------

#define CK_AVX2 __attribute__((target("avx2,fma")))

// Rows 8h ..< 8h + 8 of the group × nt tokens (nt ≤ 4); writes out[t·ldo + i] for i < n.
CK_AVX2 static inline __attribute__((always_inline)) void
tile_avx2(const ck_blk *rp, size_t nb, int h, const uint8_t *qa, const float *da, const float *sa, size_t k,
          const int nt, const int kind, float *out, size_t ldo, size_t n) {
    __m256 acc[4];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    for (size_t b = 0; b < nb; b++) {
        const ck_blk *B = rp + b;
        const __m256 dw = _mm256_loadu_ps(B->dw + 8 * h);
        // Halves: vpmaddwd multiplies the pair sums by the half's scale (in both 16-bit lanes of
        // each row's 32-bit lane) instead of by 1: the same integers, s_h·Σ_h, with no vpmulld.
        __m256i hw[2] = {ones, ones};
        if (kind == CK_HALVES) {
            for (int x = 0; x < 2; x++) {
                __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(B->hs[x] + 8 * h)));
                hw[x] = _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(v, 16));
            }
        }
        for (int t = 0; t < nt; t++) {
            const uint8_t *a = qa + t * k + 32 * b;
            __m256i s = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) {
                __m256i w = _mm256_load_si256((const __m256i *)B->q[j][8 * h]);
                __m256i x = _mm256_xor_si256(_mm256_set1_epi32(load32(a + 4 * j)), flip);
                __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
                s = _mm256_add_epi32(s, _mm256_madd_epi16(p, kind == CK_HALVES ? hw[j / 4] : ones));
            }
            __m256 f = _mm256_cvtepi32_ps(s);
            acc[t] = _mm256_fmadd_ps(f, _mm256_mul_ps(dw, _mm256_set1_ps(da[t * (k / 32) + b])), acc[t]);
            if (kind == CK_OFFSETS) acc[t] = _mm256_fmadd_ps(_mm256_loadu_ps(B->mw + 8 * h), _mm256_set1_ps(sa[t * (k / 32) + b]), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) {
        float v[8];
        _mm256_storeu_ps(v, acc[t]);
        for (size_t i = 0; i < n; i++) out[t * ldo + i] = v[i];
    }
}

#define CK_AVX2_CASES(KIND)                                                        \
    switch (nt) {                                                                  \
    case 4: tile_avx2(rp, nb, h, qa, da, sa, k, 4, KIND, out, ldo, n); break;      \
    case 3: tile_avx2(rp, nb, h, qa, da, sa, k, 3, KIND, out, ldo, n); break;      \
    case 2: tile_avx2(rp, nb, h, qa, da, sa, k, 2, KIND, out, ldo, n); break;      \
    default: tile_avx2(rp, nb, h, qa, da, sa, k, 1, KIND, out, ldo, n); break;     \
    }

CK_AVX2 static void tiles_avx2(const ck_blk *rp, size_t nb, int h, const uint8_t *qa, const float *da, const float *sa,
                               size_t k, int nt, int kind, float *out, size_t ldo, size_t n) {
    if (kind == CK_OFFSETS) {
        CK_AVX2_CASES(CK_OFFSETS)
    } else if (kind == CK_HALVES) {
        CK_AVX2_CASES(CK_HALVES)
    } else {
        CK_AVX2_CASES(CK_PLAIN)
    }
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

void ck_dot_matmul(int type, const uint8_t *w, size_t k, size_t r0, size_t r1,
                   const uint8_t *qa, const float *da, const float *sa, size_t T, float *out, size_t ldo) {
    if (r1 <= r0 || T == 0 || ck_dot_row_bytes(type, k) == 0) return;
    int path = ck_q8_dot_path();
    if (path == 0) {
        matmul_scalar(type, w, k, r0, r1, qa, da, sa, T, out, ldo);
        return;
    }
#ifdef CK_X86
    size_t nb = k / 32, rb = ck_dot_row_bytes(type, k);
    int kind = type == CK_DOT_Q4_K || type == CK_DOT_Q5_K || type == CK_DOT_Q4_1 || type == CK_DOT_Q5_1 ? CK_OFFSETS : type == CK_DOT_Q6_K || type == CK_DOT_Q3_K ? CK_HALVES : CK_PLAIN;
    ck_blk *rp = aligned_alloc(64, nb * sizeof(ck_blk));
    if (!rp) {
        matmul_scalar(type, w, k, r0, r1, qa, da, sa, T, out, ldo);
        return;
    }
    for (size_t r = r0; r < r1; r += 16) {
        size_t n = r1 - r < 16 ? r1 - r : 16;
        // Q4_1, Q5_0, Q5_1 (rare now) are repacked one row at a time.
        if (path == 2 && type != CK_DOT_Q4_1 && type != CK_DOT_Q5_0 && type != CK_DOT_Q5_1) repack16_vnni(type, w, rb, nb, r, n, rp);
        else repack16(type, w, rb, nb, r, n, rp);
        if (path == 2) {
            corrections_vnni(rp, nb, kind == CK_HALVES);
            // The next group's rows (contiguous) are fetched into L2 while this one is
            // multiplied, a slice per token tile: the repacking then finds them in cache
            // instead of waiting on the mapped file's pages in DRAM.
            const uint8_t *next = w + (r + 16) * rb;
            size_t ahead = r + 16 < r1 ? ((r1 - r - 16 < 16 ? r1 - r - 16 : 16) * rb) : 0, tiles = (T + 7) / 8;
            size_t slice = (ahead / tiles + 63) / 64 * 64, done = 0;
            for (size_t t0 = 0; t0 < T; t0 += 8) {
                int nt = T - t0 < 8 ? (int)(T - t0) : 8;
                for (size_t e = done + slice; done < ahead && done < e; done += 64) _mm_prefetch((const char *)(next + done), _MM_HINT_T1);
                tiles_vnni(rp, nb, qa + t0 * k, da + t0 * nb, kind == CK_OFFSETS ? sa + t0 * nb : NULL, k, nt, kind,
                           out + t0 * ldo + (r - r0), ldo, n);
            }
        } else {
            for (int h = 0; h < 2 && (size_t)(8 * h) < n; h++) {
                size_t nh = n - 8 * h < 8 ? n - 8 * h : 8;
                for (size_t t0 = 0; t0 < T; t0 += 4) {
                    int nt = T - t0 < 4 ? (int)(T - t0) : 4;
                    tiles_avx2(rp, nb, h, qa + t0 * k, da + t0 * nb, kind == CK_OFFSETS ? sa + t0 * nb : NULL, k, nt, kind,
                               out + t0 * ldo + (r - r0) + 8 * h, ldo, nh);
                }
            }
        }
    }
    free(rp);
#endif
}

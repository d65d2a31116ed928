// GGUF k-quant quantizers (q2_k, q3_k, q4_k, q5_k, q6_k) with AVX2. See include/ckernels.h.
//
// ggml's reference (`quantize_row_q{2,4,5,6}_K_ref` in ggml-quants.c, re-implemented in
// Sources/Quantize/KQuants.swift) spends its time in per-sub-block searches
// (`make_qkx2_quants`, `make_qx_quants`) whose sums run sequentially over the sub-block's
// values. Vectorising along those values would reorder the sums and change rounding, so
// these kernels vectorise *across* sub-blocks instead: lane j of every vector belongs to
// sub-block j, and each lane runs the reference loop over its own values in the reference
// order. Every lane therefore performs exactly the reference's sequence of f32 operations
// (each rounded on its own: this file is compiled for AVX2 without FMA, and contraction is
// off), comparisons and branches become per-lane masks, and the bytes are the reference's
// for every input, NaN and infinity included (tested against the Swift reference and
// against ggml's C library).
//
// The sub-blocks are transposed into lane order first (xt[i*8 + j] = value i of sub-block j):
// 8 sub-blocks of 32 for q4_k/q5_k, two groups of 8 sub-blocks of 16 for q2_k and q6_k.
#include "ckernels.h"

#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_X86 1
#endif

#pragma STDC FP_CONTRACT OFF

int ck_simd_enabled(void);

static inline void st16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t float_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/// ggml's fp16 field round trip: store as binary16 (round to nearest even), read back as f32.
static inline void store_half(uint8_t *p, float v) { st16(p, ck_half(float_bits(v))); }
static inline float load_half(const uint8_t *p) { return bits_float(ck_f32_from_half(ld16(p))); }

/// ggml's `nearest_int`: round half to even through the 1.5·2²³ trick (its bits for any input).
static inline int nearest1(float f) {
    float v = f + 12582912.f;
    return (int)(float_bits(v) & 0x007fffff) - 0x00400000;
}

/// ggml's GROUP_MAX_EPS.
#define GROUP_MAX_EPS 1e-15f

#ifdef CK_X86
#define CK_TARGET __attribute__((target("avx2")))

CK_TARGET static inline __m256 v_abs(__m256 x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }

/// nearest_int on 8 lanes: the same add and the same integer bit operations.
CK_TARGET static inline __m256i v_nearest(__m256 f) {
    __m256i b = _mm256_castps_si256(_mm256_add_ps(f, _mm256_set1_ps(12582912.f)));
    return _mm256_sub_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

CK_TARGET static inline __m256i v_clamp(__m256i l, int lo, int hi) {
    return _mm256_max_epi32(_mm256_set1_epi32(lo), _mm256_min_epi32(_mm256_set1_epi32(hi), l));
}

CK_TARGET static inline __m256 v_sel(__m256 a, __m256 b, __m256 mask) { return _mm256_blendv_ps(a, b, mask); }

/// `make_qkx2_quants(n, nmax, x, w, L, &the_min, Laux, rmin, rdelta, nstep, use_mad)` on the
/// 8 sub-blocks held in lane order by xt and wt (n vectors each). Writes the levels of lane
/// j's value i to L[i] (as floats, exact small integers), and per lane the scale and −min.
CK_TARGET static void qkx2_lanes(int n, int nmax, const __m256 *xt, const __m256 *wt, __m256 *L, __m256 *Laux,
                                 float rmin, float rdelta, int nstep, int use_mad, __m256 *scale_out, __m256 *negmin_out) {
    const __m256 zero = _mm256_setzero_ps();
    __m256 mn = xt[0], mx = xt[0], sum_w = wt[0], sum_x = _mm256_mul_ps(wt[0], xt[0]);
    for (int i = 1; i < n; i++) {
        // if (x[i] < min) min = x[i]; if (x[i] > max) max = x[i];
        mn = v_sel(mn, xt[i], _mm256_cmp_ps(xt[i], mn, _CMP_LT_OQ));
        mx = v_sel(mx, xt[i], _mm256_cmp_ps(xt[i], mx, _CMP_GT_OQ));
        sum_w = _mm256_add_ps(sum_w, wt[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(wt[i], xt[i]));
    }
    mn = v_sel(mn, zero, _mm256_cmp_ps(mn, zero, _CMP_GT_OQ));
    // max == min: all levels 0, scale 0, and no lane update below.
    const __m256 flat = _mm256_cmp_ps(mx, mn, _CMP_EQ_OQ);
    const __m256 live = _mm256_xor_ps(flat, _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
    const __m256i cap = _mm256_set1_epi32(nmax);
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)nmax), _mm256_sub_ps(mx, mn));
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
    __m256 best = zero;
    for (int i = 0; i < n; i++) {
        __m256i l = _mm256_max_epi32(_mm256_setzero_si256(),
                                     _mm256_min_epi32(cap, v_nearest(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], mn)))));
        __m256 fl = _mm256_cvtepi32_ps(l);
        L[i] = fl;
        __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, fl), mn), xt[i]);
        diff = use_mad ? v_abs(diff) : _mm256_mul_ps(diff, diff);
        best = _mm256_add_ps(best, _mm256_mul_ps(wt[i], diff));
    }
    for (int is = 0; is <= nstep; is++) {
        const float factor = rmin + rdelta * (float)is + (float)nmax;
        iscale = _mm256_div_ps(_mm256_set1_ps(factor), _mm256_sub_ps(mx, mn));
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < n; i++) {
            __m256i l = _mm256_max_epi32(_mm256_setzero_si256(),
                                         _mm256_min_epi32(cap, v_nearest(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], mn)))));
            __m256 fl = _mm256_cvtepi32_ps(l);
            Laux[i] = fl;
            __m256 wl = _mm256_mul_ps(wt[i], fl);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, fl));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, xt[i]));
        }
        __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        __m256 take = _mm256_and_ps(live, _mm256_cmp_ps(D, zero, _CMP_GT_OQ));
        if (!_mm256_movemask_ps(take)) continue;
        __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        __m256 positive = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
        if (_mm256_movemask_ps(positive)) {
            this_min = v_sel(this_min, zero, positive);
            this_scale = v_sel(this_scale, _mm256_div_ps(sum_xl, sum_l2), positive);
        }
        __m256 err = zero;
        for (int i = 0; i < n; i++) {
            __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, Laux[i]), this_min), xt[i]);
            diff = use_mad ? v_abs(diff) : _mm256_mul_ps(diff, diff);
            err = _mm256_add_ps(err, _mm256_mul_ps(wt[i], diff));
        }
        take = _mm256_and_ps(take, _mm256_cmp_ps(err, best, _CMP_LT_OQ));
        if (!_mm256_movemask_ps(take)) continue;
        for (int i = 0; i < n; i++) L[i] = v_sel(L[i], Laux[i], take);
        best = v_sel(best, err, take);
        scale = v_sel(scale, this_scale, take);
        mn = v_sel(mn, this_min, take);
    }
    for (int i = 0; i < n; i++) L[i] = _mm256_andnot_ps(flat, L[i]);
    *scale_out = _mm256_andnot_ps(flat, scale);
    *negmin_out = _mm256_xor_ps(mn, _mm256_set1_ps(-0.0f));
}

/// Lane-ordered levels (floats) of 8 sub-blocks of n to bytes: out[j*n + i] = L[i] lane j.
CK_TARGET static void lanes_to_bytes(int n, const __m256 *L, uint8_t *out) {
    for (int i = 0; i < n; i++) {
        int32_t v[8];
        _mm256_storeu_si256((__m256i *)v, _mm256_cvttps_epi32(L[i]));
        for (int j = 0; j < 8; j++) out[j * n + i] = (uint8_t)v[j];
    }
}

/// Lane order: xt[i] lane j = x[j*n + i] for 8 sub-blocks of n.
CK_TARGET static void to_lanes(int n, const float *x, __m256 *xt) {
    for (int i = 0; i < n; i++)
        xt[i] = _mm256_setr_ps(x[i], x[n + i], x[2 * n + i], x[3 * n + i], x[4 * n + i], x[5 * n + i], x[6 * n + i], x[7 * n + i]);
}

/// Packs eight 6-bit scales and mins as q4_k/q5_k store them (ggml's get_scale_min_k4 inverse).
static void pack_scales_k4(const uint8_t *ls, const uint8_t *lm, uint8_t *s) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/// Eight levels (each 0..255) to bytes L[0..<8].
CK_TARGET static inline void store_levels8(__m256i l, uint8_t *L) {
    int32_t v[8];
    _mm256_storeu_si256((__m256i *)v, l);
    for (int k = 0; k < 8; k++) L[k] = (uint8_t)v[k];
}

/// L[i] = clamp(nearest_int((x[i] + dm) / d), 0, nmax) for n values (n a multiple of 8).
CK_TARGET static void requantize_asym(const float *x, int n, float dm, float d, int nmax, uint8_t *L) {
    const __m256 vdm = _mm256_set1_ps(dm), vd = _mm256_set1_ps(d);
    for (int i = 0; i < n; i += 8) {
        store_levels8(v_clamp(v_nearest(_mm256_div_ps(_mm256_add_ps(_mm256_loadu_ps(x + i), vdm), vd)), 0, nmax), L + i);
    }
}

/// L[i] = clamp(nearest_int(x[i] / d), −nmax, nmax−1) + nmax for 16 values: the symmetric
/// types' (q3_k, q6_k) final pass with a sub-block's rounded scale d.
CK_TARGET static inline void requantize_sym16(const float *x, float d, int nmax, uint8_t *L) {
    const __m256 vd = _mm256_set1_ps(d);
    for (int i = 0; i < 16; i += 8) {
        __m256i l = v_clamp(v_nearest(_mm256_div_ps(_mm256_loadu_ps(x + i), vd)), -nmax, nmax - 1);
        store_levels8(_mm256_add_epi32(l, _mm256_set1_epi32(nmax)), L + i);
    }
}

/// q4_k (bits 4) and q5_k (bits 5): `quantize_row_q{4,5}_K_ref`.
CK_TARGET static void q45_k_avx2(const float *x, size_t blocks, uint8_t *y, int bits) {
    const int nmax = bits == 4 ? 15 : 31;
    const size_t size = bits == 4 ? 144 : 176;
    const int qs_offset = bits == 4 ? 16 : 48;
    const float rmin = bits == 4 ? -1.0f : -0.5f;
    const int nstep = bits == 4 ? 20 : 15;
    __m256 xt[32], wt[32], L[32], Laux[32];
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b;
        uint8_t *yb = y + size * b;
        to_lanes(32, xb, xt);
        // weights: av_x + |x|, av_x = sqrt(Σx²/32) summed in order per sub-block.
        __m256 sum_x2 = _mm256_mul_ps(xt[0], xt[0]);
        for (int l = 1; l < 32; l++) sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(xt[l], xt[l]));
        __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0f)));
        for (int l = 0; l < 32; l++) wt[l] = _mm256_add_ps(av_x, v_abs(xt[l]));
        __m256 vs, vm;
        qkx2_lanes(32, nmax, xt, wt, L, Laux, rmin, 0.1f, nstep, 0, &vs, &vm);
        float scales[8], mins[8];
        _mm256_storeu_ps(scales, vs);
        _mm256_storeu_ps(mins, vm);
        uint8_t Lb[256];
        lanes_to_bytes(32, L, Lb);
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        uint8_t ls[8], lm[8];
        for (int j = 0; j < 8; j++) {
            uint8_t s = (uint8_t)nearest1(inv_scale * scales[j]);
            uint8_t m = (uint8_t)nearest1(inv_min * mins[j]);
            ls[j] = s < 63 ? s : 63;
            lm[j] = m < 63 ? m : 63;
        }
        pack_scales_k4(ls, lm, yb + 4);
        store_half(yb, max_scale / 63.f);
        store_half(yb + 2, max_min / 63.f);
        const float d = load_half(yb), dmin = load_half(yb + 2);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            scale_min_k4(j, yb + 4, &sc, &m);
            const float dj = d * (float)sc;
            if (dj == 0.0f) continue;
            const float dm = dmin * (float)m;
            requantize_asym(xb + 32 * j, 32, dm, dj, nmax, Lb + 32 * j);
        }
        uint8_t *qs = yb + qs_offset;
        if (bits == 4) {
            for (int c = 0; c < 4; c++) {
                __m256i lo = _mm256_loadu_si256((const __m256i *)(Lb + 64 * c));
                __m256i hi = _mm256_loadu_si256((const __m256i *)(Lb + 64 * c + 32));
                _mm256_storeu_si256((__m256i *)(qs + 32 * c), _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)));
            }
        } else {
            uint8_t *qh = yb + 16;
            const __m256i low4 = _mm256_set1_epi8(15), sixteen = _mm256_set1_epi8(16);
            __m256i h = _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                __m256i lo = _mm256_loadu_si256((const __m256i *)(Lb + 64 * c));
                __m256i hi = _mm256_loadu_si256((const __m256i *)(Lb + 64 * c + 32));
                // bit 4 of each level (levels <= 31) to bits 2c and 2c+1 of qh.
                __m256i blo = _mm256_cmpeq_epi8(_mm256_and_si256(lo, sixteen), sixteen);
                __m256i bhi = _mm256_cmpeq_epi8(_mm256_and_si256(hi, sixteen), sixteen);
                h = _mm256_or_si256(h, _mm256_and_si256(blo, _mm256_set1_epi8((char)(1 << (2 * c)))));
                h = _mm256_or_si256(h, _mm256_and_si256(bhi, _mm256_set1_epi8((char)(1 << (2 * c + 1)))));
                lo = _mm256_and_si256(lo, low4);
                hi = _mm256_and_si256(hi, low4);
                _mm256_storeu_si256((__m256i *)(qs + 32 * c), _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)));
            }
            _mm256_storeu_si256((__m256i *)qh, h);
        }
    }
}

// Shared by the symmetric searches (make_qx_quants, make_q3_quants), lane j = sub-block j.

/// Weights w = x² and wx = w·x of xt[0..<n], the signed value of largest |x| in *max (the
/// first on ties, as the reference's `amax < ax` loop); returns the mask of lanes whose
/// amax < GROUP_MAX_EPS (the reference's all-zero sub-block).
CK_TARGET static inline __m256 weigh_lanes(int n, const __m256 *xt, __m256 *w, __m256 *wx, __m256 *max) {
    __m256 amax = _mm256_setzero_ps(), m = _mm256_setzero_ps();
    for (int i = 0; i < n; i++) {
        __m256 ax = v_abs(xt[i]);
        __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = v_sel(amax, ax, gt);
        m = v_sel(m, xt[i], gt);
        w[i] = _mm256_mul_ps(xt[i], xt[i]);
        wx[i] = _mm256_mul_ps(w[i], xt[i]);
    }
    *max = m;
    return _mm256_cmp_ps(amax, _mm256_set1_ps(GROUP_MAX_EPS), _CMP_LT_OQ);
}

/// Levels l[i] = clamp(nearest(iscale·x[i]), −nmax, nmax−1) (as floats) and the reference's
/// sums in its order: *sumlx = Σ wx·l, *suml2 = Σ (w·l)·l.
CK_TARGET static inline void level_lanes(int n, int nmax, __m256 iscale, const __m256 *xt, const __m256 *w,
                                         const __m256 *wx, __m256 *l, __m256 *sumlx, __m256 *suml2) {
    __m256 slx = _mm256_setzero_ps(), sl2 = _mm256_setzero_ps();
    for (int i = 0; i < n; i++) {
        __m256 fl = _mm256_cvtepi32_ps(v_clamp(v_nearest(_mm256_mul_ps(iscale, xt[i])), -nmax, nmax - 1));
        l[i] = fl;
        slx = _mm256_add_ps(slx, _mm256_mul_ps(wx[i], fl));
        sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(w[i], fl), fl));
    }
    *sumlx = slx;
    *suml2 = sl2;
}

/// Levels offset by nmax (to 0..2·nmax−1) and, in `small` lanes, levels and scale zeroed.
CK_TARGET static inline __m256 finish_lanes(int n, int nmax, __m256 small, __m256 *L, __m256 scale) {
    const __m256 offset = _mm256_set1_ps((float)nmax);
    for (int i = 0; i < n; i++) L[i] = _mm256_andnot_ps(small, _mm256_add_ps(L[i], offset));
    return _mm256_andnot_ps(small, scale);
}

/// `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL)` on 8 sub-blocks in lane order:
/// weights x², levels −nmax..nmax−1 stored offset by nmax (0 for an all-zero sub-block).
CK_TARGET static __m256 qx_lanes(int n, int nmax, const __m256 *xt, __m256 *L) {
    const __m256 zero = _mm256_setzero_ps();
    __m256 max, w[32], wx[32], Lcur[32];
    const __m256 small = weigh_lanes(n, xt, w, wx, &max);
    const __m256 live = _mm256_xor_ps(small, _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)-nmax), max);
    __m256 sumlx, suml2;
    level_lanes(n, nmax, iscale, xt, w, wx, L, &sumlx, &suml2);
    // scale = suml2 ? sumlx/suml2 : 0 (NaN counts as true, as in C)
    __m256 scale = v_sel(_mm256_div_ps(sumlx, suml2), zero, _mm256_cmp_ps(suml2, zero, _CMP_EQ_OQ));
    __m256 best = _mm256_mul_ps(scale, sumlx);
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        const float factor = -((float)nmax + 0.1f * (float)is);
        iscale = _mm256_div_ps(_mm256_set1_ps(factor), max);
        level_lanes(n, nmax, iscale, xt, w, wx, Lcur, &sumlx, &suml2);
        __m256 take = _mm256_and_ps(live, _mm256_and_ps(_mm256_cmp_ps(suml2, zero, _CMP_GT_OQ),
                                                        _mm256_cmp_ps(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2), _CMP_GT_OQ)));
        if (!_mm256_movemask_ps(take)) continue;
        for (int i = 0; i < n; i++) L[i] = v_sel(L[i], Lcur[i], take);
        scale = v_sel(scale, _mm256_div_ps(sumlx, suml2), take);
        best = v_sel(best, _mm256_mul_ps(scale, sumlx), take);
    }
    return finish_lanes(n, nmax, small, L, scale);
}

/// A symmetric search over 8 sub-blocks in lane order (qx_lanes, q3_lanes): levels into L,
/// the scales returned.
typedef __m256 lanes_search(int n, int nmax, const __m256 *xt, __m256 *L);

/// q6_k and q3_k: the 16 sub-blocks of 16 of the super-block at xb, as two groups of 8 lanes,
/// through `search`: the sub-blocks' scales into scales[16], their levels into Lb[256].
/// Returns the scale of largest magnitude (the first on ties; a NaN never wins), as the
/// references' super-block loop finds it.
CK_TARGET static inline float search_16x16(const float *xb, int nmax, lanes_search *search, float *scales, uint8_t *Lb) {
    __m256 xt[16], L[16];
    for (int g = 0; g < 2; g++) {
        to_lanes(16, xb + 128 * g, xt);
        _mm256_storeu_ps(scales + 8 * g, search(16, nmax, xt, L));
        lanes_to_bytes(16, L, Lb + 128 * g);
    }
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        const float scale = scales[j] < 0 ? -scales[j] : scales[j];
        if (scale > amax) {
            amax = scale;
            max_scale = scales[j];
        }
    }
    return max_scale;
}

/// q6_k: `quantize_row_q6_K_ref`.
CK_TARGET static void q6_k_avx2(const float *x, size_t blocks, uint8_t *y) {
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b;
        uint8_t *yb = y + 210 * b;
        float scales[16];
        uint8_t Lb[256];
        const float max_scale = search_16x16(xb, 32, qx_lanes, scales, Lb);
        const float max_abs_scale = max_scale < 0 ? -max_scale : max_scale;
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(yb, 0, 210);
            continue;
        }
        const float iscale = -128.f / max_scale;
        store_half(yb + 208, 1 / iscale);
        int8_t *sc = (int8_t *)(yb + 192);
        for (int ib = 0; ib < 16; ib++) {
            int l = nearest1(iscale * scales[ib]);
            sc[ib] = (int8_t)(l < 127 ? l : 127);
        }
        const float d = load_half(yb + 208);
        for (int j = 0; j < 16; j++) {
            const float dj = d * (float)sc[j];
            if (dj == 0.0f) continue;
            requantize_sym16(xb + 16 * j, dj, 32, Lb + 16 * j);
        }
        const __m256i low4 = _mm256_set1_epi8(15);
        for (int h = 0; h < 2; h++) {
            const uint8_t *Lh = Lb + 128 * h;
            __m256i q1 = _mm256_loadu_si256((const __m256i *)Lh), q2 = _mm256_loadu_si256((const __m256i *)(Lh + 32));
            __m256i q3 = _mm256_loadu_si256((const __m256i *)(Lh + 64)), q4 = _mm256_loadu_si256((const __m256i *)(Lh + 96));
            // levels <= 63: 16-bit shifts move no bit across a byte after masking.
            __m256i ql0 = _mm256_or_si256(_mm256_and_si256(q1, low4), _mm256_slli_epi16(_mm256_and_si256(q3, low4), 4));
            __m256i ql1 = _mm256_or_si256(_mm256_and_si256(q2, low4), _mm256_slli_epi16(_mm256_and_si256(q4, low4), 4));
            __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(q1, 4), _mm256_set1_epi8(3));
            __m256i h2 = _mm256_and_si256(_mm256_srli_epi16(q2, 4), _mm256_set1_epi8(3));
            __m256i h3 = _mm256_and_si256(_mm256_srli_epi16(q3, 4), _mm256_set1_epi8(3));
            __m256i h4 = _mm256_and_si256(_mm256_srli_epi16(q4, 4), _mm256_set1_epi8(3));
            __m256i qh = _mm256_or_si256(_mm256_or_si256(h1, _mm256_slli_epi16(h2, 2)),
                                         _mm256_or_si256(_mm256_slli_epi16(h3, 4), _mm256_slli_epi16(h4, 6)));
            _mm256_storeu_si256((__m256i *)(yb + 64 * h), ql0);
            _mm256_storeu_si256((__m256i *)(yb + 64 * h + 32), ql1);
            _mm256_storeu_si256((__m256i *)(yb + 128 + 32 * h), qh);
        }
    }
}

/// q2_k: `quantize_row_q2_K_ref` (16 sub-blocks of 16, weights |x|, mean absolute error).
CK_TARGET static void q2_k_avx2(const float *x, size_t blocks, uint8_t *y) {
    __m256 xt[16], wt[16], L[16], Laux[16];
    const float q4scale = 15.f;
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b;
        uint8_t *yb = y + 84 * b;
        float scales[16], mins[16];
        uint8_t Lb[256];
        for (int g = 0; g < 2; g++) {
            to_lanes(16, xb + 128 * g, xt);
            for (int l = 0; l < 16; l++) wt[l] = v_abs(xt[l]);
            __m256 vs, vm;
            qkx2_lanes(16, 3, xt, wt, L, Laux, -0.5f, 0.1f, 15, 1, &vs, &vm);
            _mm256_storeu_ps(scales + 8 * g, vs);
            _mm256_storeu_ps(mins + 8 * g, vm);
            lanes_to_bytes(16, L, Lb + 128 * g);
        }
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        uint8_t *sc = yb;
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++) sc[j] = (uint8_t)nearest1(iscale * scales[j]);
            store_half(yb + 80, max_scale / q4scale);
        } else {
            for (int j = 0; j < 16; j++) sc[j] = 0;
            store_half(yb + 80, 0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++) sc[j] |= (uint8_t)(nearest1(iscale * mins[j]) << 4);
            store_half(yb + 82, max_min / q4scale);
        } else {
            store_half(yb + 82, 0.f);
        }
        const float d = load_half(yb + 80), dmin = load_half(yb + 82);
        for (int j = 0; j < 16; j++) {
            const float dj = d * (float)(sc[j] & 0xF);
            if (dj == 0.0f) continue;
            const float dm = dmin * (float)(sc[j] >> 4);
            requantize_asym(xb + 16 * j, 16, dm, dj, 3, Lb + 16 * j);
        }
        uint8_t *qs = yb + 16;
        for (int c = 0; c < 2; c++) {
            const uint8_t *Lc = Lb + 128 * c;
            __m256i a = _mm256_loadu_si256((const __m256i *)Lc), bb = _mm256_loadu_si256((const __m256i *)(Lc + 32));
            __m256i cc = _mm256_loadu_si256((const __m256i *)(Lc + 64)), dd = _mm256_loadu_si256((const __m256i *)(Lc + 96));
            // levels <= 3: no bit crosses a byte.
            __m256i v = _mm256_or_si256(_mm256_or_si256(a, _mm256_slli_epi16(bb, 2)),
                                        _mm256_or_si256(_mm256_slli_epi16(cc, 4), _mm256_slli_epi16(dd, 6)));
            _mm256_storeu_si256((__m256i *)(qs + 32 * c), v);
        }
    }
}
/// `make_q3_quants(n, nmax, x, L, do_rmse = true)` on 8 sub-blocks in lane order: levels
/// −nmax..nmax−1 with weights x², then up to 5 passes moving single values to a better
/// level. A lane whose pass changed nothing would change nothing in a further pass either,
/// so running the passes while any lane changes gives every lane the reference's result.
CK_TARGET static __m256 q3_lanes(int n, int nmax, const __m256 *xt, __m256 *L) {
    const __m256 zero = _mm256_setzero_ps();
    __m256 max, w[16], wx[16];
    const __m256 small = weigh_lanes(n, xt, w, wx, &max);
    const __m256 live = _mm256_xor_ps(small, _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
    const __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)-nmax), max);
    __m256 sumlx, suml2;
    level_lanes(n, nmax, iscale, xt, w, wx, L, &sumlx, &suml2);
    for (int itry = 0; itry < 5; itry++) {
        __m256 changed = zero;
        for (int i = 0; i < n; i++) {
            __m256 slx = _mm256_sub_ps(sumlx, _mm256_mul_ps(wx[i], L[i]));
            __m256 take = _mm256_and_ps(live, _mm256_cmp_ps(slx, zero, _CMP_GT_OQ));
            if (!_mm256_movemask_ps(take)) continue;
            __m256 sl2 = _mm256_sub_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w[i], L[i]), L[i]));
            __m256 nl = _mm256_cvtepi32_ps(v_clamp(v_nearest(_mm256_div_ps(_mm256_mul_ps(xt[i], sl2), slx)), -nmax, nmax - 1));
            take = _mm256_and_ps(take, _mm256_cmp_ps(nl, L[i], _CMP_NEQ_OQ));
            if (!_mm256_movemask_ps(take)) continue;
            slx = _mm256_add_ps(slx, _mm256_mul_ps(wx[i], nl));
            sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(w[i], nl), nl));
            __m256 better = _mm256_cmp_ps(_mm256_mul_ps(_mm256_mul_ps(slx, slx), suml2),
                                          _mm256_mul_ps(_mm256_mul_ps(sumlx, sumlx), sl2), _CMP_GT_OQ);
            take = _mm256_and_ps(take, _mm256_and_ps(_mm256_cmp_ps(sl2, zero, _CMP_GT_OQ), better));
            L[i] = v_sel(L[i], nl, take);
            sumlx = v_sel(sumlx, slx, take);
            suml2 = v_sel(suml2, sl2, take);
            changed = _mm256_or_ps(changed, take);
        }
        if (!_mm256_movemask_ps(changed)) break;
    }
    return finish_lanes(n, nmax, small, L, _mm256_div_ps(sumlx, suml2));
}

/// q3_k: `quantize_row_q3_K_ref`.
CK_TARGET static void q3_k_avx2(const float *x, size_t blocks, uint8_t *y) {
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b;
        uint8_t *yb = y + 110 * b;
        float scales[16];
        uint8_t Lb[256];
        const float max_scale = search_16x16(xb, 4, q3_lanes, scales, Lb);
        uint8_t *s = yb + 96;
        memset(s, 0, 12);
        if (max_scale != 0.0f) {  // C truthiness: NaN counts as true
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)nearest1(iscale * scales[j]);
                l = (int8_t)((l < -32 ? -32 : l > 31 ? 31 : l) + 32);
                if (j < 8) s[j] = (uint8_t)(l & 0xF);
                else s[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                s[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            store_half(yb + 108, 1 / iscale);
        } else {
            store_half(yb + 108, 0.f);
        }
        const float d = load_half(yb + 108);
        for (int j = 0; j < 16; j++) {
            int sc = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
            sc = (sc | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
            const float dj = d * (float)sc;
            if (dj == 0.0f) continue;
            requantize_sym16(xb + 16 * j, dj, 4, Lb + 16 * j);
        }
        // hmask: bit e/32 of byte e%32 holds bit 2 of level e; then the low two bits.
        const __m256i four = _mm256_set1_epi8(4), three = _mm256_set1_epi8(3);
        __m256i hm = _mm256_setzero_si256();
        __m256i low[8];
        for (int c = 0; c < 8; c++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(Lb + 32 * c));
            __m256i high = _mm256_cmpeq_epi8(_mm256_and_si256(v, four), four);
            hm = _mm256_or_si256(hm, _mm256_and_si256(high, _mm256_set1_epi8((char)(1 << c))));
            low[c] = _mm256_and_si256(v, three);
        }
        _mm256_storeu_si256((__m256i *)yb, hm);
        for (int c = 0; c < 2; c++) {
            __m256i v = _mm256_or_si256(_mm256_or_si256(low[4 * c], _mm256_slli_epi16(low[4 * c + 1], 2)),
                                        _mm256_or_si256(_mm256_slli_epi16(low[4 * c + 2], 4), _mm256_slli_epi16(low[4 * c + 3], 6)));
            _mm256_storeu_si256((__m256i *)(yb + 32 + 32 * c), v);
        }
    }
}
#endif

// The entry points share one dispatch: every block through the AVX2 kernel when it runs,
// else none (the caller's reference code then encodes them all).
static size_t kquant_run(int type, const float *x, size_t blocks, uint8_t *y) {
#ifdef CK_X86
    if (ck_simd_enabled()) {
        switch (type) {
        case 2: q2_k_avx2(x, blocks, y); break;
        case 3: q3_k_avx2(x, blocks, y); break;
        case 4: case 5: q45_k_avx2(x, blocks, y, type); break;
        default: q6_k_avx2(x, blocks, y); break;
        }
        return blocks;
    }
#endif
    (void)type; (void)x; (void)blocks; (void)y;
    return 0;
}

size_t ck_quantize_q2_k(const float *x, size_t blocks, uint8_t *y) { return kquant_run(2, x, blocks, y); }
size_t ck_quantize_q3_k(const float *x, size_t blocks, uint8_t *y) { return kquant_run(3, x, blocks, y); }
size_t ck_quantize_q4_k(const float *x, size_t blocks, uint8_t *y) { return kquant_run(4, x, blocks, y); }
size_t ck_quantize_q5_k(const float *x, size_t blocks, uint8_t *y) { return kquant_run(5, x, blocks, y); }
size_t ck_quantize_q6_k(const float *x, size_t blocks, uint8_t *y) { return kquant_run(6, x, blocks, y); }

// GGUF 32-value block quantizers with AVX2. See include/ckernels.h. Byte-identical to
// ggml's reference (and so to ckpt's Swift kernels in Sources/Quantize/GGML.swift, which
// handle the blocks these leave): the same f32 operations in the same order, each rounded
// on its own. The functions are compiled for AVX2 without FMA, so no multiply-add can be
// contracted.
#include "ckernels.h"

#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_X86 1
#endif

#ifdef CK_X86
#define CK_TARGET __attribute__((target("avx2")))

typedef struct { __m256 v[4]; } block32;

CK_TARGET static inline __m256 absps(__m256 x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }

CK_TARGET static inline float hmax(__m256 x) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

CK_TARGET static inline float hmin(__m256 x) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/// Loads a block; 0 if it has a value that is not finite or whose magnitude is above 2^100.
CK_TARGET static inline int load_block(const float *x, block32 *b, float *amax) {
    __m256 m = _mm256_setzero_ps();
    __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    const __m256 limit = _mm256_set1_ps(0x1p100f);
    for (int k = 0; k < 4; k++) {
        b->v[k] = _mm256_loadu_ps(x + 8 * k);
        __m256 a = absps(b->v[k]);
        ok = _mm256_and_ps(ok, _mm256_cmp_ps(a, limit, _CMP_LE_OQ));  // false for NaN and inf
        m = _mm256_max_ps(m, a);
    }
    if (_mm256_movemask_ps(ok) != 0xFF) return 0;
    *amax = hmax(m);
    return 1;
}

/// Usable scale input: 0 (all-zero block) or a normal magnitude in [2^-100, 2^100].
static inline int scale_ok(float a) { return a == 0.0f || a >= 0x1p-100f; }

/// Bit mask of the elements equal (==) to v, element j at bit j.
CK_TARGET static inline uint32_t equal_mask(const block32 *b, float v) {
    __m256 t = _mm256_set1_ps(v);
    uint32_t m = 0;
    for (int k = 0; k < 4; k++) m |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(b->v[k], t, _CMP_EQ_OQ)) << (8 * k);
    return m;
}

/// The signed value of largest magnitude, the first on ties, as the reference's
/// `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }` finds it (0.0f if all are zero).
CK_TARGET static inline float signed_absmax(const block32 *b, const float *x, float amax) {
    if (amax == 0.0f) return 0.0f;
    uint32_t m = 0;
    __m256 t = _mm256_set1_ps(amax);
    for (int k = 0; k < 4; k++) m |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(absps(b->v[k]), t, _CMP_EQ_OQ)) << (8 * k);
    return x[__builtin_ctz(m)];
}

/// min and max as the reference's `if (v < min) min = v; if (v > max) max = v;` loop finds
/// them: the value, and among equal values (only ±0 differ in bits) the first one.
CK_TARGET static inline void min_max(const block32 *b, const float *x, float *mn, float *mx) {
    __m256 lo = b->v[0], hi = b->v[0];
    for (int k = 1; k < 4; k++) { lo = _mm256_min_ps(lo, b->v[k]); hi = _mm256_max_ps(hi, b->v[k]); }
    float l = hmin(lo), h = hmax(hi);
    *mn = l == 0.0f ? x[__builtin_ctz(equal_mask(b, l))] : l;
    *mx = h == 0.0f ? x[__builtin_ctz(equal_mask(b, h))] : h;
}

static inline float bits_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t float_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline void st16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/// 4 × 8 int32 (elements 0..31 in order) -> 32 bytes in order (saturating, values fit).
CK_TARGET static inline __m256i pack_bytes(__m256i q0, __m256i q1, __m256i q2, __m256i q3) {
    __m256i ab = _mm256_packs_epi32(q0, q1), cd = _mm256_packs_epi32(q2, q3);
    __m256i bytes = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/// qs[j] = q[j] | q[j+16] << 4 for j < 16, from 32 bytes each < 16.
CK_TARGET static inline __m128i nibbles(__m256i q) {
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    return _mm_or_si128(lo, _mm_slli_epi16(hi, 4));
}

/// min(cap, (int)(x*id + add)) for the 32 values (x - sub first when `sub` is used).
CK_TARGET static inline __m256i codes(const block32 *b, float sub, int subtract, float id, float add, int cap) {
    __m256 vid = _mm256_set1_ps(id), vadd = _mm256_set1_ps(add), vsub = _mm256_set1_ps(sub);
    __m256i c = _mm256_set1_epi32(cap), q[4];
    for (int k = 0; k < 4; k++) {
        __m256 v = subtract ? _mm256_sub_ps(b->v[k], vsub) : b->v[k];
        v = _mm256_add_ps(_mm256_mul_ps(v, vid), vadd);
        q[k] = _mm256_min_epi32(_mm256_cvttps_epi32(v), c);
    }
    return pack_bytes(q[0], q[1], q[2], q[3]);
}

CK_TARGET static size_t q8_0_avx2(const float *x, size_t blocks, uint8_t *y) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    for (size_t i = 0; i < blocks; i++) {
        const float *xb = x + 32 * i;
        uint8_t *yb = y + 34 * i;
        block32 b;
        float amax;
        if (!load_block(xb, &b, &amax) || !scale_ok(amax)) return i;
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        st16(yb, ck_half(float_bits(d)));
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_mul_ps(b.v[k], vid);
            // roundf (half away from zero): truncate, then step away from zero when the
            // dropped fraction is at least one half (exact: |v| < 2^23).
            __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m256 frac = absps(_mm256_sub_ps(v, t));
            __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), _mm256_or_ps(_mm256_and_ps(v, sign), one));
            q[k] = _mm256_cvttps_epi32(_mm256_add_ps(t, step));
        }
        _mm256_storeu_si256((__m256i *)(yb + 2), pack_bytes(q[0], q[1], q[2], q[3]));
    }
    return blocks;
}

/// The codes q (each < 2^bits) of a 4- or 5-bit block at p: for 5 bits, bit 4 of each code
/// as the u32 qh (to the byte's top bit first: codes < 32, so no bit crosses a byte), then the
/// low nibbles packed.
CK_TARGET static inline void store_codes(uint8_t *p, __m256i q, int bits) {
    if (bits == 4) {
        _mm_storeu_si128((__m128i *)p, nibbles(q));
    } else {
        st32(p, (uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(q, 3)));
        _mm_storeu_si128((__m128i *)(p + 4), nibbles(_mm256_and_si256(q, _mm256_set1_epi8(15))));
    }
}

/// q4_0 (bits 4) and q5_0 (bits 5).
CK_TARGET static size_t qx_0_avx2(const float *x, size_t blocks, uint8_t *y, int bits) {
    const size_t size = bits == 4 ? 18 : 22;
    const float offset = bits == 4 ? 8.0f : 16.0f;  // d = max/−offset; codes offset by it
    for (size_t i = 0; i < blocks; i++) {
        const float *xb = x + 32 * i;
        uint8_t *yb = y + size * i;
        block32 b;
        float amax;
        if (!load_block(xb, &b, &amax) || !scale_ok(amax)) return i;
        float max = signed_absmax(&b, xb, amax);
        float d = max / -offset;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        st16(yb, ck_half(float_bits(d)));
        store_codes(yb + 2, codes(&b, 0, 0, id, offset + 0.5f, bits == 4 ? 15 : 31), bits);
    }
    return blocks;
}

/// q4_1 (bits 4) and q5_1 (bits 5).
CK_TARGET static size_t qx_1_avx2(const float *x, size_t blocks, uint8_t *y, int bits) {
    const size_t size = bits == 4 ? 20 : 24;
    const float levels = bits == 4 ? 15.0f : 31.0f;
    for (size_t i = 0; i < blocks; i++) {
        const float *xb = x + 32 * i;
        uint8_t *yb = y + size * i;
        block32 b;
        float amax, mn, mx;
        if (!load_block(xb, &b, &amax)) return i;
        min_max(&b, xb, &mn, &mx);
        float range = mx - mn;
        if (!scale_ok(range)) return i;
        float d = range / levels;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        st16(yb, ck_half(float_bits(d)));
        st16(yb + 2, ck_half(float_bits(mn)));
        store_codes(yb + 4, codes(&b, mn, 1, id, 0.5f, bits == 4 ? 15 : 31), bits);
    }
    return blocks;
}
#endif

int ck_simd_enabled(void);

// The entry points share one dispatch: the AVX2 kernel when it runs (it returns how many
// blocks it encoded from the start), else none.
enum block32 { Q8_0, Q4_0, Q5_0, Q4_1, Q5_1 };
static size_t block32_run(enum block32 type, const float *x, size_t blocks, uint8_t *y) {
#ifdef CK_X86
    if (ck_simd_enabled()) {
        switch (type) {
        case Q8_0: return q8_0_avx2(x, blocks, y);
        case Q4_0: return qx_0_avx2(x, blocks, y, 4);
        case Q5_0: return qx_0_avx2(x, blocks, y, 5);
        case Q4_1: return qx_1_avx2(x, blocks, y, 4);
        case Q5_1: return qx_1_avx2(x, blocks, y, 5);
        }
    }
#endif
    (void)type; (void)x; (void)blocks; (void)y;
    return 0;
}

size_t ck_quantize_q8_0(const float *x, size_t blocks, uint8_t *y) { return block32_run(Q8_0, x, blocks, y); }
size_t ck_quantize_q4_0(const float *x, size_t blocks, uint8_t *y) { return block32_run(Q4_0, x, blocks, y); }
size_t ck_quantize_q5_0(const float *x, size_t blocks, uint8_t *y) { return block32_run(Q5_0, x, blocks, y); }
size_t ck_quantize_q4_1(const float *x, size_t blocks, uint8_t *y) { return block32_run(Q4_1, x, blocks, y); }
size_t ck_quantize_q5_1(const float *x, size_t blocks, uint8_t *y) { return block32_run(Q5_1, x, blocks, y); }

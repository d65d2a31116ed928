// Float casts (f32/bf16/f16). See include/ckernels.h. The scalar functions mirror
// CkptCore's FloatBits bit for bit; the tests compare the two on every edge case.
#include "ckernels.h"

#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_X86 1
#endif

static inline uint32_t ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline void st16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

uint16_t ck_half(uint32_t bits) {
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    int exponent = (int)((bits >> 23) & 0xFF);
    uint32_t mantissa = bits & 0x7FFFFF;
    if (exponent == 0xFF) {
        if (mantissa == 0) return sign | 0x7C00;
        uint16_t payload = (uint16_t)(mantissa >> 13);
        if (payload == 0) payload = 0x200;
        return sign | 0x7C00 | payload;
    }
    int e = exponent - 127 + 15;
    if (e >= 0x1F) return sign | 0x7C00;
    if (e <= 0) {
        if (e < -10) return sign;
        uint32_t significand = mantissa | 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = 1u << (shift - 1);
        uint32_t rest = significand & ((1u << shift) - 1);
        uint32_t result = significand >> shift;
        if (rest > half || (rest == half && (result & 1))) result++;
        return sign | (uint16_t)result;
    }
    uint32_t result = (uint32_t)e << 10 | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (result & 1))) result++;
    return sign | (uint16_t)result;
}

static uint32_t f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F;
    uint32_t mantissa = h & 0x3FF;
    if (exponent == 0x1F) return sign | 0x7F800000 | (mantissa << 13);
    if (exponent == 0) {
        if (mantissa == 0) return sign;
        uint32_t m = mantissa, e = 127 - 15 + 1;
        while (!(m & 0x400)) { m <<= 1; e--; }
        return sign | (e << 23) | ((m & 0x3FF) << 13);
    }
    return sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
}

uint32_t ck_f32_from_half(uint16_t h) { return f16_to_f32(h); }

static uint16_t f32_to_bf16(uint32_t bits) {
    if ((bits & 0x7F800000) == 0x7F800000 && (bits & 0x7FFFFF)) {
        uint16_t top = (uint16_t)(bits >> 16);
        if (!(top & 0x7F)) top |= 0x40;
        return top;
    }
    uint32_t lsb = (bits >> 16) & 1;
    return (uint16_t)((bits + 0x7FFF + lsb) >> 16);
}

int ck_simd_enabled(void);

// One element's exact scalar conversion, on its bits (16-bit types in the low half).
typedef uint32_t convert_fn(uint32_t bits);
static inline uint32_t f32_f16(uint32_t b) { return ck_half(b); }
static inline uint32_t f32_bf16(uint32_t b) { return f32_to_bf16(b); }
static inline uint32_t bf16_f16(uint32_t b) { return ck_half(b << 16); }
static inline uint32_t f16_f32(uint32_t b) { return f16_to_f32((uint16_t)b); }
static inline uint32_t bf16_f32(uint32_t b) { return b << 16; }

static inline uint32_t load(const uint8_t *p, size_t size) { return size == 4 ? ld32(p) : ld16(p); }
static inline void store(uint8_t *p, size_t size, uint32_t v) { if (size == 4) st32(p, v); else st16(p, (uint16_t)v); }

/// Elements i..<n of `in`-byte elements at src to `out`-byte elements at dst, one by one:
/// the tail after a SIMD kernel, the blocks it leaves to scalar code, or all of them.
static inline void cast_scalar(size_t i, size_t n, const uint8_t *src, size_t in, uint8_t *dst, size_t out, convert_fn *convert) {
    for (; i < n; i++) store(dst + out * i, out, convert(load(src + in * i, in)));
}

#ifdef CK_X86
// 8 f32 (as integer bits) -> 8 f16, or 0 if a NaN is among them (the caller goes scalar).
__attribute__((target("avx2,f16c")))
static inline int f16x8(__m256i bits, __m128i *out) {
    __m256i absv = _mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF));
    __m256i nan = _mm256_cmpgt_epi32(absv, _mm256_set1_epi32(0x7F800000));
    if (!_mm256_testz_si256(nan, nan)) return 0;
    *out = _mm256_cvtps_ph(_mm256_castsi256_ps(bits), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return 1;
}

// 8 bf16 values widened to f32 bits (exact).
__attribute__((target("avx2")))
static inline __m256i bf16x8_bits(const uint8_t *p) {
    return _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16);
}

// f32 (in = 4) or bf16 (in = 2) to f16, 8 at a time; a block holding a NaN goes scalar.
// Inlined into one kernel per source type, so `in` is a constant there.
__attribute__((target("avx2,f16c"), always_inline))
static inline size_t to_f16_avx2(const uint8_t *src, size_t in, size_t n, uint8_t *dst) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i bits = in == 4 ? _mm256_loadu_si256((const __m256i *)(src + 4 * i)) : bf16x8_bits(src + 2 * i);
        __m128i h;
        if (f16x8(bits, &h)) {
            _mm_storeu_si128((__m128i *)(dst + 2 * i), h);
        } else {
            cast_scalar(i, i + 8, src, in, dst, 2, in == 4 ? f32_f16 : bf16_f16);
        }
    }
    return i;
}

__attribute__((target("avx2,f16c")))
static size_t f32_to_f16_avx2(const uint8_t *src, size_t n, uint8_t *dst) { return to_f16_avx2(src, 4, n, dst); }

__attribute__((target("avx2,f16c")))
static size_t bf16_to_f16_avx2(const uint8_t *src, size_t n, uint8_t *dst) { return to_f16_avx2(src, 2, n, dst); }

__attribute__((target("avx2")))
static size_t f32_to_bf16_avx2(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i = 0;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7FFF);
    const __m256i absmask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int k = 0; k < 2; k++) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(src + 4 * i + 32 * k));
            __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), one);
            __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(b, bias), lsb), 16);
            __m256i top = _mm256_srli_epi32(b, 16);
            // NaN: the top half, with the quiet bit (0x40) set when its payload bits are zero.
            __m256i nopayload = _mm256_cmpeq_epi32(_mm256_and_si256(top, _mm256_set1_epi32(0x7F)), _mm256_setzero_si256());
            __m256i nanval = _mm256_or_si256(top, _mm256_and_si256(nopayload, _mm256_set1_epi32(0x40)));
            __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(b, absmask), inf);
            r[k] = _mm256_blendv_epi8(rounded, nanval, nan);
        }
        // Values are < 0x10000: pack without saturation effects, then undo the lane split.
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xD8);
        _mm256_storeu_si256((__m256i *)(dst + 2 * i), packed);
    }
    return i;
}

__attribute__((target("avx2,f16c")))
static size_t f16_to_f32_avx2(const uint8_t *src, size_t n, uint8_t *dst) {
    // F16C widening is exact and keeps NaN payloads as f16_to_f32 does, except that it
    // quiets signalling NaNs: blocks with a NaN go scalar.
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * i));
        __m128i e = _mm_and_si128(h, _mm_set1_epi16(0x7C00));
        __m128i special = _mm_cmpeq_epi16(e, _mm_set1_epi16(0x7C00));
        __m128i m = _mm_and_si128(h, _mm_set1_epi16(0x3FF));
        __m128i nan = _mm_andnot_si128(_mm_cmpeq_epi16(m, _mm_setzero_si128()), special);
        if (_mm_testz_si128(nan, nan)) {
            _mm256_storeu_ps((float *)(dst + 4 * i), _mm256_cvtph_ps(h));
        } else {
            cast_scalar(i, i + 8, src, 2, dst, 4, f16_f32);
        }
    }
    return i;
}

__attribute__((target("avx2")))
static size_t bf16_to_f32_avx2(const uint8_t *src, size_t n, uint8_t *dst) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_si256((__m256i *)(dst + 4 * i), bf16x8_bits(src + 2 * i));
    }
    return i;
}
#endif

static int ck_f16c(void) {
#ifdef CK_X86
    static int state = -1;
    if (state < 0) { __builtin_cpu_init(); state = __builtin_cpu_supports("f16c"); }
    return state && ck_simd_enabled();
#else
    return 0;
#endif
}

/// How many leading elements the AVX2/F16C kernel of the cast converted (0 without the CPU
/// features, with SIMD off, or for a pair it has no kernel for).
static size_t simd_prefix(ck_float from, ck_float to, const uint8_t *src, size_t n, uint8_t *dst) {
#ifdef CK_X86
    if (from == CK_F32 && to == CK_F16 && ck_f16c()) return f32_to_f16_avx2(src, n, dst);
    if (from == CK_BF16 && to == CK_F16 && ck_f16c()) return bf16_to_f16_avx2(src, n, dst);
    if (from == CK_F16 && to == CK_F32 && ck_f16c()) return f16_to_f32_avx2(src, n, dst);
    if (from == CK_F32 && to == CK_BF16 && ck_simd_enabled()) return f32_to_bf16_avx2(src, n, dst);
    if (from == CK_BF16 && to == CK_F32 && ck_simd_enabled()) return bf16_to_f32_avx2(src, n, dst);
#endif
    (void)from; (void)to; (void)src; (void)n; (void)dst;
    return 0;
}

int ck_cast(ck_float from, ck_float to, const uint8_t *src, size_t n, uint8_t *dst) {
    // Each branch a constant converter and sizes, so the scalar loop is specialised.
    const size_t i = simd_prefix(from, to, src, n, dst);
    if (from == CK_F32 && to == CK_F16) cast_scalar(i, n, src, 4, dst, 2, f32_f16);
    else if (from == CK_F32 && to == CK_BF16) cast_scalar(i, n, src, 4, dst, 2, f32_bf16);
    else if (from == CK_BF16 && to == CK_F16) cast_scalar(i, n, src, 2, dst, 2, bf16_f16);
    else if (from == CK_F16 && to == CK_F32) cast_scalar(i, n, src, 2, dst, 4, f16_f32);
    else if (from == CK_BF16 && to == CK_F32) cast_scalar(i, n, src, 2, dst, 4, bf16_f32);
    else return 0;
    return 1;
}

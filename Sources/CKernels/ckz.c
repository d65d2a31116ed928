// .ckz plane filter, HDF5 shuffle and byte histogram. See include/ckernels.h.
#include "ckernels.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_X86 1
#endif

static int ck_simd_state = -1;  // -1 = not probed yet

static int ck_cpu_has_avx2(void) {
#ifdef CK_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

int ck_simd_enabled(void) {
    // CKPT_NO_SIMD=1 runs every kernel's scalar path (to test it on an AVX2 machine).
    if (ck_simd_state < 0) {
        const char *off = getenv("CKPT_NO_SIMD");
        ck_simd_state = off && *off && strcmp(off, "0") != 0 ? 0 : ck_cpu_has_avx2();
    }
    return ck_simd_state;
}

void ck_set_simd(int on) { ck_simd_state = on ? ck_cpu_has_avx2() : 0; }

// MARK: scalar reference paths

static void split2_scalar(const uint8_t *src, size_t i, size_t n, uint8_t *p0, uint8_t *p1) {
    for (; i < n; i++) {
        uint16_t v = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        uint16_t r = (uint16_t)(v << 1 | v >> 15);
        p0[i] = (uint8_t)r;
        p1[i] = (uint8_t)(r >> 8);
    }
}

static void join2_scalar(const uint8_t *p0, const uint8_t *p1, size_t i, size_t n, uint8_t *dst) {
    for (; i < n; i++) {
        uint16_t r = (uint16_t)(p0[i] | p1[i] << 8);
        uint16_t v = (uint16_t)(r >> 1 | r << 15);
        dst[2 * i] = (uint8_t)v;
        dst[2 * i + 1] = (uint8_t)(v >> 8);
    }
}

static void split4_scalar(const uint8_t *src, size_t i, size_t n, uint8_t *p0, uint8_t *p1, uint8_t *p2, uint8_t *p3) {
    for (; i < n; i++) {
        const uint8_t *s = src + 4 * i;
        uint32_t v = (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24;
        uint32_t r = v << 1 | v >> 31;
        p0[i] = (uint8_t)r;
        p1[i] = (uint8_t)(r >> 8);
        p2[i] = (uint8_t)(r >> 16);
        p3[i] = (uint8_t)(r >> 24);
    }
}

static void join4_scalar(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3,
                         size_t i, size_t n, uint8_t *dst) {
    for (; i < n; i++) {
        uint32_t r = (uint32_t)p0[i] | (uint32_t)p1[i] << 8 | (uint32_t)p2[i] << 16 | (uint32_t)p3[i] << 24;
        uint32_t v = r >> 1 | r << 31;
        uint8_t *d = dst + 4 * i;
        d[0] = (uint8_t)v;
        d[1] = (uint8_t)(v >> 8);
        d[2] = (uint8_t)(v >> 16);
        d[3] = (uint8_t)(v >> 24);
    }
}

// MARK: AVX2 paths (32 elements per iteration; the scalar code finishes the tail)

#ifdef CK_X86
__attribute__((target("avx2")))
static size_t split2_avx2(const uint8_t *src, size_t n, uint8_t *p0, uint8_t *p1) {
    // Within each 128-bit lane: the 8 low bytes, then the 8 high bytes.
    const __m256i gather = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                            0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + 2 * i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + 2 * i + 32));
        a = _mm256_or_si256(_mm256_slli_epi16(a, 1), _mm256_srli_epi16(a, 15));
        b = _mm256_or_si256(_mm256_slli_epi16(b, 1), _mm256_srli_epi16(b, 15));
        // [lo 0-7, hi 0-7 | lo 8-15, hi 8-15] -> [lo 0-15 | hi 0-15]
        a = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(a, gather), 0xD8);
        b = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(b, gather), 0xD8);
        _mm256_storeu_si256((__m256i *)(p0 + i), _mm256_permute2x128_si256(a, b, 0x20));
        _mm256_storeu_si256((__m256i *)(p1 + i), _mm256_permute2x128_si256(a, b, 0x31));
    }
    return i;
}

__attribute__((target("avx2")))
static size_t join2_avx2(const uint8_t *p0, const uint8_t *p1, size_t n, uint8_t *dst) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(p0 + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(p1 + i));
        __m256i lo = _mm256_unpacklo_epi8(a, b);  // elements 0-7 | 16-23
        __m256i hi = _mm256_unpackhi_epi8(a, b);  // elements 8-15 | 24-31
        lo = _mm256_or_si256(_mm256_srli_epi16(lo, 1), _mm256_slli_epi16(lo, 15));
        hi = _mm256_or_si256(_mm256_srli_epi16(hi, 1), _mm256_slli_epi16(hi, 15));
        _mm256_storeu_si256((__m256i *)(dst + 2 * i), _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256((__m256i *)(dst + 2 * i + 32), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    return i;
}

__attribute__((target("avx2")))
static size_t split4_avx2(const uint8_t *src, size_t n, uint8_t *p0, uint8_t *p1, uint8_t *p2, uint8_t *p3) {
    // Within each lane (4 elements): byte 0 of each, then byte 1, 2, 3.
    const __m256i gather = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    // [P0 e0-3, P1, P2, P3 | P0 e4-7, ...] -> qword j = plane j of elements 0-7
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i v[4];
        for (int k = 0; k < 4; k++) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(src + 4 * i + 32 * k));
            x = _mm256_or_si256(_mm256_slli_epi32(x, 1), _mm256_srli_epi32(x, 31));
            v[k] = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(x, gather), order);
        }
        __m256i lo01 = _mm256_unpacklo_epi64(v[0], v[1]);  // [v0.q0 v1.q0 | v0.q2 v1.q2]
        __m256i hi01 = _mm256_unpackhi_epi64(v[0], v[1]);  // [v0.q1 v1.q1 | v0.q3 v1.q3]
        __m256i lo23 = _mm256_unpacklo_epi64(v[2], v[3]);
        __m256i hi23 = _mm256_unpackhi_epi64(v[2], v[3]);
        _mm256_storeu_si256((__m256i *)(p0 + i), _mm256_permute2x128_si256(lo01, lo23, 0x20));
        _mm256_storeu_si256((__m256i *)(p1 + i), _mm256_permute2x128_si256(hi01, hi23, 0x20));
        _mm256_storeu_si256((__m256i *)(p2 + i), _mm256_permute2x128_si256(lo01, lo23, 0x31));
        _mm256_storeu_si256((__m256i *)(p3 + i), _mm256_permute2x128_si256(hi01, hi23, 0x31));
    }
    return i;
}

__attribute__((target("avx2")))
static size_t join4_avx2(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3,
                         size_t n, uint8_t *dst) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(p0 + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(p1 + i));
        __m256i c = _mm256_loadu_si256((const __m256i *)(p2 + i));
        __m256i d = _mm256_loadu_si256((const __m256i *)(p3 + i));
        __m256i ab_lo = _mm256_unpacklo_epi8(a, b), ab_hi = _mm256_unpackhi_epi8(a, b);
        __m256i cd_lo = _mm256_unpacklo_epi8(c, d), cd_hi = _mm256_unpackhi_epi8(c, d);
        __m256i w[4] = {
            _mm256_unpacklo_epi16(ab_lo, cd_lo),  // elements 0-3 | 16-19
            _mm256_unpackhi_epi16(ab_lo, cd_lo),  // 4-7 | 20-23
            _mm256_unpacklo_epi16(ab_hi, cd_hi),  // 8-11 | 24-27
            _mm256_unpackhi_epi16(ab_hi, cd_hi),  // 12-15 | 28-31
        };
        for (int k = 0; k < 4; k++) w[k] = _mm256_or_si256(_mm256_srli_epi32(w[k], 1), _mm256_slli_epi32(w[k], 31));
        _mm256_storeu_si256((__m256i *)(dst + 4 * i), _mm256_permute2x128_si256(w[0], w[1], 0x20));
        _mm256_storeu_si256((__m256i *)(dst + 4 * i + 32), _mm256_permute2x128_si256(w[2], w[3], 0x20));
        _mm256_storeu_si256((__m256i *)(dst + 4 * i + 64), _mm256_permute2x128_si256(w[0], w[1], 0x31));
        _mm256_storeu_si256((__m256i *)(dst + 4 * i + 96), _mm256_permute2x128_si256(w[2], w[3], 0x31));
    }
    return i;
}
#endif

// MARK: dispatch

void ck_split2(const uint8_t *src, size_t n, uint8_t *p0, uint8_t *p1) {
    size_t i = 0;
#ifdef CK_X86
    if (ck_simd_enabled()) i = split2_avx2(src, n, p0, p1);
#endif
    split2_scalar(src, i, n, p0, p1);
}

void ck_join2(const uint8_t *p0, const uint8_t *p1, size_t n, uint8_t *dst) {
    size_t i = 0;
#ifdef CK_X86
    if (ck_simd_enabled()) i = join2_avx2(p0, p1, n, dst);
#endif
    join2_scalar(p0, p1, i, n, dst);
}

void ck_split4(const uint8_t *src, size_t n, uint8_t *p0, uint8_t *p1, uint8_t *p2, uint8_t *p3) {
    size_t i = 0;
#ifdef CK_X86
    if (ck_simd_enabled()) i = split4_avx2(src, n, p0, p1, p2, p3);
#endif
    split4_scalar(src, i, n, p0, p1, p2, p3);
}

void ck_join4(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3, size_t n, uint8_t *dst) {
    size_t i = 0;
#ifdef CK_X86
    if (ck_simd_enabled()) i = join4_avx2(p0, p1, p2, p3, n, dst);
#endif
    join4_scalar(p0, p1, p2, p3, i, n, dst);
}

// MARK: HDF5 shuffle

void ck_shuffle(const uint8_t *src, size_t n, size_t size, uint8_t *dst) {
    if (size == 4) {
        for (size_t i = 0; i < n; i++) {
            dst[i] = src[4 * i];
            dst[n + i] = src[4 * i + 1];
            dst[2 * n + i] = src[4 * i + 2];
            dst[3 * n + i] = src[4 * i + 3];
        }
        return;
    }
    if (size == 2) {
        for (size_t i = 0; i < n; i++) {
            dst[i] = src[2 * i];
            dst[n + i] = src[2 * i + 1];
        }
        return;
    }
    for (size_t j = 0; j < size; j++)
        for (size_t i = 0; i < n; i++) dst[j * n + i] = src[i * size + j];
}

// The byte histogram is in ckz_encode.c, with the Huffman literal writer.

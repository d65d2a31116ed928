// .ckz encoder kernels: the byte histogram and the Huffman literal writer. See include/ckernels.h.
#include "ckernels.h"

#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_X86 1
#endif

// MARK: histogram

static void histogram_scalar(const uint8_t *src, size_t n, uint32_t *counts) {
    // Four tables break the store-to-load dependency between neighbouring equal bytes;
    // 8-byte loads halve the load count. Counts fit in u32: callers pass at most 64 MiB.
    uint32_t t[4][256];
    memset(t, 0, sizeof t);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        t[0][w & 0xFF]++;
        t[1][(w >> 8) & 0xFF]++;
        t[2][(w >> 16) & 0xFF]++;
        t[3][(w >> 24) & 0xFF]++;
        t[0][(w >> 32) & 0xFF]++;
        t[1][(w >> 40) & 0xFF]++;
        t[2][(w >> 48) & 0xFF]++;
        t[3][w >> 56]++;
    }
    for (; i < n; i++) t[0][src[i]]++;
    for (int s = 0; s < 256; s++) counts[s] += t[0][s] + t[1][s] + t[2][s] + t[3][s];
}

#ifdef CK_X86
#define CK_HOT 12
// Counts the CK_HOT values `hot` (distinct) with byte compares, 32 bytes at a time, into
// `hot_counts`; every other byte goes to counts[] one by one. Returns the bytes consumed
// (a multiple of 32).
__attribute__((target("avx2")))
static size_t histogram_hot_avx2(const uint8_t *src, size_t n, const uint8_t hot[CK_HOT],
                                 uint64_t hot_counts[CK_HOT], uint32_t *counts) {
    __m256i value[CK_HOT];
    for (int k = 0; k < CK_HOT; k++) value[k] = _mm256_set1_epi8((char)hot[k]);
    const __m256i zero = _mm256_setzero_si256();
    size_t i = 0;
    while (n - i >= 32) {
        // Byte counters: at most 255 blocks before they are summed into hot_counts.
        __m256i acc[CK_HOT];
        for (int k = 0; k < CK_HOT; k++) acc[k] = zero;
        size_t end = n - i >= 255 * 32 ? i + 255 * 32 : i + (n - i) / 32 * 32;
        for (; i < end; i += 32) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(src + i));
            __m256i any = zero;
            for (int k = 0; k < CK_HOT; k++) {
                __m256i eq = _mm256_cmpeq_epi8(v, value[k]);
                acc[k] = _mm256_sub_epi8(acc[k], eq);
                any = _mm256_or_si256(any, eq);
            }
            uint32_t rest = ~(uint32_t)_mm256_movemask_epi8(any);
            while (rest) {
                counts[src[i + (size_t)__builtin_ctz(rest)]]++;
                rest &= rest - 1;
            }
        }
        for (int k = 0; k < CK_HOT; k++) {
            __m256i s = _mm256_sad_epu8(acc[k], zero);
            hot_counts[k] += (uint64_t)_mm256_extract_epi64(s, 0) + (uint64_t)_mm256_extract_epi64(s, 1)
                           + (uint64_t)_mm256_extract_epi64(s, 2) + (uint64_t)_mm256_extract_epi64(s, 3);
        }
    }
    return i;
}
#endif

void ck_histogram(const uint8_t *src, size_t n, uint32_t *counts) {
#ifdef CK_X86
    // Exponent planes are dominated by a handful of values (a few octaves of magnitude):
    // when the first 2 KiB show CK_HOT values covering ≥ 97 % of the bytes, count those with
    // vector compares (~1.5× the table loop on trained weights) and the rest one by one. Exact either way.
    enum { probe = 2048 };
    if (ck_simd_enabled() && n >= 8 * probe) {
        uint32_t first[256];
        memset(first, 0, sizeof first);
        histogram_scalar(src, probe, first);
        uint8_t hot[CK_HOT];
        uint8_t taken[256];
        memset(taken, 0, sizeof taken);
        uint32_t covered = 0;
        for (int k = 0; k < CK_HOT; k++) {
            int best = -1;
            for (int v = 0; v < 256; v++)
                if (!taken[v] && (best < 0 || first[v] > first[best])) best = v;
            taken[best] = 1;
            hot[k] = (uint8_t)best;
            covered += first[best];
        }
        for (int v = 0; v < 256; v++) counts[v] += first[v];
        if ((uint64_t)covered * 100 < (uint64_t)probe * 97) {
            histogram_scalar(src + probe, n - probe, counts);
            return;
        }
        uint64_t hot_counts[CK_HOT] = {0};
        size_t done = probe + histogram_hot_avx2(src + probe, n - probe, hot, hot_counts, counts);
        for (int k = 0; k < CK_HOT; k++) counts[hot[k]] += (uint32_t)hot_counts[k];
        histogram_scalar(src + done, n - done, counts);
        return;
    }
#endif
    histogram_scalar(src, n, counts);
}

// MARK: Huffman literal writer

// Stores the whole 64-bit accumulator at dst + pos and keeps the partial byte (bits ≤ 63).
#define CK_FLUSH()                                  \
    do {                                            \
        uint64_t le_ = acc;                         \
        memcpy(dst + pos, &le_, 8);                 \
        pos += bits >> 3;                           \
        acc >>= (bits & ~7u);                       \
        bits &= 7;                                  \
    } while (0)

void ck_huffman_literals(const uint8_t *src, size_t n, const uint32_t *table, uint64_t *pairs,
                         uint8_t *dst, ck_bitwriter *w) {
    uint64_t acc = w->acc;
    unsigned bits = w->bits;
    size_t pos = w->pos;
    size_t i = 0;
    CK_FLUSH();
    if (pairs) {
        // Two literals per lookup: entry (a | b << 8) holds code(a) then code(b) in its low
        // 56 bits and their total length (≤ 30) in the top byte. Only pairs of bytes the
        // table codes are filled; no other byte occurs in src.
        uint8_t used[256];
        int u = 0;
        for (int s = 0; s < 256; s++)
            if (table[s] >> 16) used[u++] = (uint8_t)s;
        for (int j = 0; j < u; j++) {
            uint32_t eb = table[used[j]];
            uint64_t cb = eb & 0xFFFF, lb = eb >> 16;
            uint64_t *row = pairs + ((size_t)used[j] << 8);
            for (int k = 0; k < u; k++) {
                uint32_t ea = table[used[k]];
                uint64_t la = ea >> 16;
                row[used[k]] = ((uint64_t)(ea & 0xFFFF) | cb << la) | (la + lb) << 56;
            }
        }
        const uint64_t mask = (1ull << 56) - 1;
        for (; i + 4 <= n; i += 4) {
            // After a flush bits ≤ 7; a pair adds ≤ 30, so the first always fits and the
            // second fits unless the two together pass 63 bits (then flush between).
            uint64_t a = pairs[(size_t)src[i] | (size_t)src[i + 1] << 8];
            uint64_t b = pairs[(size_t)src[i + 2] | (size_t)src[i + 3] << 8];
            acc |= (a & mask) << bits;
            bits += (unsigned)(a >> 56);
            unsigned lb = (unsigned)(b >> 56);
            if (__builtin_expect(bits + lb > 63, 0)) CK_FLUSH();
            acc |= (b & mask) << bits;
            bits += lb;
            CK_FLUSH();
        }
    }
    // One literal per lookup, three (≤ 45 bits) between flushes.
    for (; i + 3 <= n; i += 3) {
        uint32_t a = table[src[i]], b = table[src[i + 1]], c = table[src[i + 2]];
        acc |= (uint64_t)(a & 0xFFFF) << bits;
        bits += a >> 16;
        acc |= (uint64_t)(b & 0xFFFF) << bits;
        bits += b >> 16;
        acc |= (uint64_t)(c & 0xFFFF) << bits;
        bits += c >> 16;
        CK_FLUSH();
    }
    for (; i < n; i++) {
        uint32_t a = table[src[i]];
        acc |= (uint64_t)(a & 0xFFFF) << bits;
        bits += a >> 16;
        CK_FLUSH();
    }
    w->acc = acc;
    w->bits = bits;
    w->pos = pos;
}

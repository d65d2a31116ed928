// Small C kernels for ckpt's hot loops, with AVX2 paths chosen at run time and portable
// scalar fallbacks that produce the same bytes (tested). No state, no allocation: callers
// pass buffers whose sizes they have checked.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// 1 when the AVX2 paths run: the CPU has AVX2, the environment variable CKPT_NO_SIMD is
/// unset (or "0"), and `ck_set_simd` has not turned them off.
int ck_simd_enabled(void);
/// Turns the SIMD paths off (0) or back on where the CPU has them (1); for tests that
/// compare both paths, and not thread-safe against kernels running at the same time.
void ck_set_simd(int on);

// .ckz float filter (docs/ckz.md, "Decoding a chunk"): element i of `n` little-endian
// elements is rotated left by one bit and its byte j sent to plane j; join is the inverse.
void ck_split2(const uint8_t *src, size_t n, uint8_t *p0, uint8_t *p1);
void ck_join2(const uint8_t *p0, const uint8_t *p1, size_t n, uint8_t *dst);
void ck_split4(const uint8_t *src, size_t n, uint8_t *p0, uint8_t *p1, uint8_t *p2, uint8_t *p3);
void ck_join4(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3, size_t n, uint8_t *dst);

/// HDF5's shuffle filter (H5Z_FILTER_SHUFFLE): byte j of element i of `n` elements of
/// `size` bytes goes to dst[j*n + i] (no rotation, unlike the .ckz filter).
void ck_shuffle(const uint8_t *src, size_t n, size_t size, uint8_t *dst);

/// Adds the byte frequencies of src[0..<n] to counts[256] (n ≤ 64 MiB: u32 counts).
void ck_histogram(const uint8_t *src, size_t n, uint32_t *counts);

/// A DEFLATE bit writer (least-significant bit first): `bits` (< 8 between calls, < 64 on
/// entry) pending bits in `acc`, the next byte at dst[pos]. Every flush stores 8 bytes.
typedef struct {
    uint64_t acc;
    size_t pos;
    unsigned bits;
} ck_bitwriter;

/// Writes the Huffman codes of src[0..<n] as DEFLATE literals: table[b] = bit-reversed code
/// | length << 16 (length 1...15 for every byte that occurs in src). `pairs` (65536 entries
/// of scratch, or NULL) lets it look up two bytes at once. dst needs room for the coded
/// bits plus 8 bytes. The output is the same with or without `pairs`.
void ck_huffman_literals(const uint8_t *src, size_t n, const uint32_t *table, uint64_t *pairs,
                         uint8_t *dst, ck_bitwriter *w);

// f32 products against packed weights (sgemm.c): out[t, OC] = bias + x[t, K] · W, W packed
// once into panels of 32 output columns. AVX-512 only: callers use sgemm where
// `ck_sgemm_packed_available()` is 0 (no AVX-512F, or SIMD turned off).
int ck_sgemm_packed_available(void);
/// Panels of 32 output columns for `oc` columns.
size_t ck_sgemm_panels(size_t oc);
/// Floats of the packed form of a [oc, k] weight (panels · 32 · k).
size_t ck_sgemm_packed_floats(size_t oc, size_t k);
/// Packs panels [p0, p1) of w into `packed` (64-byte aligned): w is [oc][k] (torch's
/// Linear) when in_out = 0, [k][oc] (GPT-2's Conv1D) when 1.
void ck_sgemm_pack(const float *w, size_t oc, size_t k, int in_out, float *packed, size_t p0, size_t p1);
/// Columns of panels [p0, p1) of out[t, oc] (row stride ldo) = bias (or 0) + x[t, k] (row
/// stride ldx) · W; threads may run disjoint panel ranges at once.
void ck_sgemm_packed(const float *x, size_t t, size_t k, size_t ldx, const float *packed, size_t oc,
                     const float *bias, float *out, size_t ldo, size_t p0, size_t p1);

// Float casts on little-endian bytes, `n` elements, exactly as CkptCore's FloatBits does
// them: round to nearest even; NaN keeps its sign and top payload bits without quieting
// (quiet bit set only if no payload bit survives). F16C/AVX2 where the CPU has them; a block
// holding a NaN goes through the scalar code (F16C would quiet it).
// One entry point for every pair: f32 -> f16, f32 -> bf16, bf16 -> f16, f16 -> f32,
// bf16 -> f32. Returns 1, or 0 (writing nothing) for any other pair.
typedef enum { CK_F32, CK_F16, CK_BF16 } ck_float;
int ck_cast(ck_float from, ck_float to, const uint8_t *src, size_t n, uint8_t *dst);

/// f32 bits -> f16 bits, as FloatBits.f32ToF16 (round to nearest even, NaN payload kept).
uint16_t ck_half(uint32_t bits);
/// f16 bits -> f32 bits (exact), as FloatBits.f16ToF32.
uint32_t ck_f32_from_half(uint16_t h);

// GGUF 32-value block quantizers (ggml's quantize_row_*_ref, byte for byte): `blocks`
// blocks of 32 floats from x into y. Each returns how many blocks it encoded from the
// start; it stops early (possibly at 0) at the first block it leaves to the caller's
// scalar reference code: a block holding a non-finite value or a magnitude outside
// [2^-100, 2^100] (apart from all zeros), where the scale arithmetic reaches inf, NaN or
// subnormals, and every block when SIMD is off or absent. Multiplies and adds are
// separate roundings (no FMA), as in the reference.
size_t ck_quantize_q8_0(const float *x, size_t blocks, uint8_t *y);
size_t ck_quantize_q4_0(const float *x, size_t blocks, uint8_t *y);
size_t ck_quantize_q4_1(const float *x, size_t blocks, uint8_t *y);
size_t ck_quantize_q5_0(const float *x, size_t blocks, uint8_t *y);
size_t ck_quantize_q5_1(const float *x, size_t blocks, uint8_t *y);

// GGUF k-quant quantizers (ggml's quantize_row_q{2,3,4,5,6}_K_ref, byte for byte, for every
// input including NaN and infinity): `blocks` super-blocks of 256 floats from x into y.
// Same contract as above: the count encoded from the start, which is every block when the
// AVX2 path runs and 0 when SIMD is off or absent (the caller's reference code then runs).
size_t ck_quantize_q2_k(const float *x, size_t blocks, uint8_t *y);
size_t ck_quantize_q3_k(const float *x, size_t blocks, uint8_t *y);
size_t ck_quantize_q4_k(const float *x, size_t blocks, uint8_t *y);
size_t ck_quantize_q5_k(const float *x, size_t blocks, uint8_t *y);
size_t ck_quantize_q6_k(const float *x, size_t blocks, uint8_t *y);

/// Copies up to `count` bytes from `in_fd` at `offset` to `out_fd` at its current position
/// inside the kernel (Linux copy_file_range(2): no trip through user memory, and on file
/// systems that can, shared extents). Returns the bytes copied (0 at the source's end) or
/// −errno (−ENOSYS where the call does not exist; −EXDEV, −EINVAL, −EOPNOTSUPP where the
/// file systems cannot: the caller then writes the bytes itself). Retries on EINTR.
long long ck_copy_file_range(int in_fd, int64_t offset, int out_fd, size_t count);

#endif

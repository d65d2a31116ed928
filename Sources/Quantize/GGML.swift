// GGUF's 32-value block types: q8_0, q4_0, q4_1, q5_0, q5_1.
//
// Byte layouts (ggml-common.h; all little-endian, `half` = IEEE binary16, a block holds 32
// consecutive values of one row):
//   q8_0  34 B  half d; int8 qs[32]                      x = qs[j]·d
//   q4_0  18 B  half d; uint8 qs[16]                     x = (q−8)·d
//   q4_1  20 B  half d, m; uint8 qs[16]                  x = q·d + m
//   q5_0  22 B  half d; uint8 qh[4]; uint8 qs[16]        x = (q−16)·d
//   q5_1  24 B  half d, m; uint8 qh[4]; uint8 qs[16]     x = q·d + m
// 4-bit packing: qs[j] = q[j] | q[j+16] << 4 (low nibble element j, high nibble element j+16).
// 5-bit: the low four bits as above, bit 4 of element j is bit j of the little-endian u32 qh.
//
// Quantizers follow ggml's reference (`quantize_row_*_ref` in ggml-quants.c), which gguf-py's
// `gguf.quants.quantize` reproduces bit for bit, so ckpt's bytes equal both:
//   q8_0  d = amax/127, id = d ? 1/d : 0, q = roundf(x·id)          (half away from zero)
//   q4_0  max = the signed value of largest |x| (first wins), d = max/−8,
//         q = min(15, trunc(x·id + 8.5))
//   q4_1  d = (max−min)/15, q = min(15, trunc((x−min)·id + 0.5))
//   q5_0  d = max/−16, q = min(31, trunc(x·id + 16.5))
//   q5_1  d = (max−min)/31, q = min(31, trunc((x−min)·id + 0.5))
// Every product and sum is a separate f32 operation: the references are not fused
// (with `x*id + 8.5f` fused, about 1 in 44,000 q4_0 blocks differ). Swift does not
// contract `a * b + c` into an FMA, and nothing here uses `fma`/`addingProduct`.
// The hot path is a C kernel with AVX2 (Sources/CKernels/quant.c) doing the same operations;
// it leaves blocks with non-finite or extreme values, and every block on CPUs without AVX2,
// to the reference code here, and tests check both give the same bytes.
// Each type is a `BlockCodec` (its DType, C kernel, one-block encode and decode); one loop
// per direction runs any of them, and `GGML.blockTypes` lists them all.
// Dequantization computes exactly what ggml and gguf-py compute: one f32 product (and one
// f32 sum for the types with a minimum).

import CKernels
import CkptCore

enum GGML {
    // MARK: Little-endian block fields

    @inline(__always)
    static func half(_ x: Float) -> UInt16 { FloatBits.f32ToF16(x.bitPattern) }

    @inline(__always)
    static func float(_ h: UInt16) -> Float { Float(bitPattern: FloatBits.f16ToF32(h)) }

    @inline(__always)
    static func storeHalf(_ x: Float, _ p: UnsafeMutableRawPointer, _ offset: Int) {
        p.storeBytes(of: half(x).littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always)
    static func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        float(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    /// C's `(int8_t)f` for the values these quantizers produce (finite, well inside int32):
    /// truncation toward zero, then the low byte. Non-finite input (NaN/inf weights) gives 0
    /// instead of C's undefined behaviour.
    @inline(__always)
    static func truncToInt8(_ f: Float) -> Int8 {
        guard f.isFinite, abs(f) < 2_147_483_520 else { return 0 }
        return Int8(truncatingIfNeeded: Int32(f))
    }

    /// The signed value of largest magnitude in x[0..<n] (the first on ties), as the
    /// reference's `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }` loop finds it.
    @inline(__always)
    static func signedAbsMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var amax: Float = 0, max: Float = 0
        for j in 0..<n {
            let v = x[j]
            if amax < abs(v) {
                amax = abs(v)
                max = v
            }
        }
        return max
    }

    @inline(__always)
    static func minMax(_ x: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<n {
            let v = x[j]
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
        return (lo, hi)
    }

    // MARK: One loop per direction over a block codec

    /// One entry of ``blockTypes``: the whole-run encoders and decoder of one block type.
    struct BlockType {
        let dtype: DType
        /// The C kernel (AVX2) for the blocks it takes, the codec's reference code for the rest.
        let encode: Quantizer.Encode
        /// The reference code alone (tests compare it with `encode`).
        let encodeReference: Quantizer.Encode
        let decode: Quantizer.Decode
    }

    /// Every 32-value ggml block type. A new one is a ``BlockCodec`` and a line here.
    static var blockTypes: [BlockType] {
        [entry(Q8_0.self), entry(Q4_0.self), entry(Q4_1.self), entry(Q5_0.self), entry(Q5_1.self)]
    }

    static func blockType(_ dtype: DType) -> BlockType? { blockTypes.first { $0.dtype == dtype } }

    static func entry<C: BlockCodec>(_ codec: C.Type) -> BlockType {
        BlockType(dtype: C.dtype,
                  encode: { quantize(C.self, $0, $1, blocks: $2) },
                  encodeReference: { quantizeReference(C.self, $0, $1, blocks: $2) },
                  decode: { dequantize(C.self, $0, $1, blocks: $2) })
    }

    static func quantize<C: BlockCodec>(_: C.Type, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        let size = C.bytes
        var b = 0
        while b < blocks {
            // SAFETY: blocks b..<blocks of x (32 floats each) and y (`size` bytes each) exist.
            b += C.kernel(x + b * 32, blocks - b, (y + b * size).assumingMemoryBound(to: UInt8.self))
            if b < blocks {
                C.encode(x + b * 32, y + b * size)
                b += 1
            }
        }
    }

    static func quantizeReference<C: BlockCodec>(_: C.Type, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        let size = C.bytes
        for b in 0..<blocks { C.encode(x + b * 32, y + b * size) }
    }

    static func dequantize<C: BlockCodec>(_: C.Type, _ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        let size = C.bytes
        for b in 0..<blocks { C.decode(y + b * size, x + b * 32) }
    }
}

/// A C block quantizer: (x, blocks, y) -> blocks encoded from the start.
typealias BlockKernel = @convention(c) (UnsafePointer<Float>?, Int, UnsafeMutablePointer<UInt8>?) -> Int

/// One 32-value ggml block type: its DType (which gives the block's byte size), its C kernel
/// and ggml's reference encoding and decoding of one block.
protocol BlockCodec {
    static var dtype: DType { get }
    /// The C kernel (`ck_quantize_*`): encodes up to `blocks` blocks from the start and
    /// returns how many it did.
    static var kernel: BlockKernel { get }
    /// 32 floats from x into one block at y.
    static func encode(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer)
    /// One block at y into 32 floats at x.
    static func decode(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>)
}

extension BlockCodec {
    static var bytes: Int {
        guard case .block(32, let bytes) = dtype.layout else { preconditionFailure("\(dtype) is not a 32-value block type") }
        return bytes
    }
}

// MARK: q8_0

enum Q8_0: BlockCodec {
    static let dtype = DType.q8_0, kernel: BlockKernel = ck_quantize_q8_0

    @inline(__always)
    static func encode(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = Swift.max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        GGML.storeHalf(d, y, 0)
        for j in 0..<32 {
            let v = x[j] * id
            // roundf: half away from zero. |v| <= 127 (+ rounding) for finite input.
            let r = v.rounded(.toNearestOrAwayFromZero)
            let q: Int8 = r.isFinite ? Int8(truncatingIfNeeded: Int32(Swift.max(-128, Swift.min(127, r)))) : 0
            y.storeBytes(of: q, toByteOffset: 2 + j, as: Int8.self)
        }
    }

    @inline(__always)
    static func decode(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>) {
        let d = GGML.loadHalf(y, 0)
        for j in 0..<32 { x[j] = Float(y.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
    }
}

// MARK: q4_0, q4_1, q5_0, q5_1

/// The 4- and 5-bit types: header (half d; half m for the `_1` types; u32 qh for 5 bits),
/// then 16 bytes of nibbles. `_0`: d = signed absmax/−2^(bits−1), q offset by 2^(bits−1);
/// `_1`: d = (max−min)/(2^bits−1), m = min.
protocol NibbleCodec: BlockCodec {
    static var bits: Int { get }
    static var hasMin: Bool { get }
}

enum Q4_0: NibbleCodec { static let dtype = DType.q4_0, bits = 4, hasMin = false, kernel: BlockKernel = ck_quantize_q4_0 }
enum Q4_1: NibbleCodec { static let dtype = DType.q4_1, bits = 4, hasMin = true, kernel: BlockKernel = ck_quantize_q4_1 }
enum Q5_0: NibbleCodec { static let dtype = DType.q5_0, bits = 5, hasMin = false, kernel: BlockKernel = ck_quantize_q5_0 }
enum Q5_1: NibbleCodec { static let dtype = DType.q5_1, bits = 5, hasMin = true, kernel: BlockKernel = ck_quantize_q5_1 }

extension NibbleCodec {
    /// Byte offsets of qh (5 bits only) and of the nibbles.
    @inline(__always) static var qhOffset: Int { hasMin ? 4 : 2 }
    @inline(__always) static var qsOffset: Int { qhOffset + (bits == 5 ? 4 : 0) }

    @inline(__always)
    static func encode(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        let top = UInt8(1 << bits - 1)
        let d: Float, m: Float, bias: Float
        if hasMin {
            let (min, max) = GGML.minMax(x, 32)
            (d, m, bias) = ((max - min) / Float(top), min, 0.5)
        } else {
            let half = Float(1 << (bits - 1))
            (d, m, bias) = (GGML.signedAbsMax(x, 32) / -half, 0, half + 0.5)
        }
        let id: Float = d != 0 ? 1 / d : 0
        GGML.storeHalf(d, y, 0)
        if hasMin { GGML.storeHalf(m, y, 2) }
        var qh: UInt32 = 0
        for j in 0..<16 {
            let x0 = (hasMin ? x[j] - m : x[j]) * id
            let x1 = (hasMin ? x[j + 16] - m : x[j + 16]) * id
            // For q5_1 the C reference casts to uint8 without a clamp and gguf-py clips to 31;
            // they agree because (max−min)·id + 0.5 < 32 for finite input.
            let q0 = UInt8(truncatingIfNeeded: Swift.min(Int8(top), GGML.truncToInt8(x0 + bias)))
            let q1 = UInt8(truncatingIfNeeded: Swift.min(Int8(top), GGML.truncToInt8(x1 + bias)))
            if bits == 4 {
                y.storeBytes(of: q0 | q1 << 4, toByteOffset: qsOffset + j, as: UInt8.self)
            } else {
                y.storeBytes(of: (q0 & 0x0F) | (q1 & 0x0F) << 4, toByteOffset: qsOffset + j, as: UInt8.self)
                qh |= UInt32((q0 & 0x10) >> 4) << UInt32(j)
                qh |= UInt32((q1 & 0x10) >> 4) << UInt32(j + 16)
            }
        }
        if bits == 5 { y.storeBytes(of: qh.littleEndian, toByteOffset: qhOffset, as: UInt32.self) }
    }

    @inline(__always)
    static func decode(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>) {
        let d = GGML.loadHalf(y, 0), m: Float = hasMin ? GGML.loadHalf(y, 2) : 0
        let qh: UInt32 = bits == 5 ? UInt32(littleEndian: y.loadUnaligned(fromByteOffset: qhOffset, as: UInt32.self)) : 0
        let offset = 1 << (bits - 1)
        for j in 0..<16 {
            let q = y.load(fromByteOffset: qsOffset + j, as: UInt8.self)
            let h0 = Int((qh >> UInt32(j)) & 1) << 4, h1 = Int((qh >> UInt32(j + 16)) & 1) << 4
            let v0 = Int(q & 0x0F) | h0, v1 = Int(q >> 4) | h1
            // Separate branches: adding m = 0 would turn a −0 product into +0.
            if hasMin {
                x[j] = Float(v0) * d + m
                x[j + 16] = Float(v1) * d + m
            } else {
                x[j] = Float(v0 - offset) * d
                x[j + 16] = Float(v1 - offset) * d
            }
        }
    }
}

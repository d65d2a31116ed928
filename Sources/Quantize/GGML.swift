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
// (FACTS.md: with `x*id + 8.5f` fused ~1 in 44,000 q4_0 blocks differ). Swift does not
// contract `a * b + c` into an FMA, and nothing here uses `fma`/`addingProduct`.
// The hot path is a C kernel with AVX2 (Sources/CKernels/quant.c) doing the same operations;
// it leaves blocks with non-finite or extreme values, and every block on CPUs without AVX2,
// to the reference code here, and tests check both give the same bytes.
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

    // MARK: q8_0

    /// The C kernel (AVX2) for the blocks it takes, this file's reference code for the rest.
    static func quantizeQ8_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        var b = 0
        while b < blocks {
            // SAFETY: blocks b..<blocks of x (32 floats each) and y (34 bytes each) exist.
            b += ck_quantize_q8_0(x + b * 32, blocks - b, (y + b * 34).assumingMemoryBound(to: UInt8.self))
            if b < blocks {
                quantizeQ8_0Reference(x + b * 32, y + b * 34, blocks: 1)
                b += 1
            }
        }
    }

    static func quantizeQ8_0Reference(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let xb = x + b * 32, yb = y + b * 34
            var amax: Float = 0
            for j in 0..<32 { amax = Swift.max(amax, abs(xb[j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, yb, 0)
            for j in 0..<32 {
                let v = xb[j] * id
                // roundf: half away from zero. |v| <= 127 (+ rounding) for finite input.
                let r = v.rounded(.toNearestOrAwayFromZero)
                let q: Int8 = r.isFinite ? Int8(truncatingIfNeeded: Int32(Swift.max(-128, Swift.min(127, r)))) : 0
                yb.storeBytes(of: q, toByteOffset: 2 + j, as: Int8.self)
            }
        }
    }

    static func dequantizeQ8_0(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * 34, xb = x + b * 32
            let d = loadHalf(yb, 0)
            for j in 0..<32 {
                xb[j] = Float(yb.load(fromByteOffset: 2 + j, as: Int8.self)) * d
            }
        }
    }

    // MARK: q4_0

    /// The C kernel (AVX2) for the blocks it takes, this file's reference code for the rest.
    static func quantizeQ4_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        var b = 0
        while b < blocks {
            // SAFETY: blocks b..<blocks of x (32 floats each) and y (18 bytes each) exist.
            b += ck_quantize_q4_0(x + b * 32, blocks - b, (y + b * 18).assumingMemoryBound(to: UInt8.self))
            if b < blocks {
                quantizeQ4_0Reference(x + b * 32, y + b * 18, blocks: 1)
                b += 1
            }
        }
    }

    static func quantizeQ4_0Reference(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let xb = x + b * 32, yb = y + b * 18
            let max = signedAbsMax(xb, 32)
            let d = max / -8
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, yb, 0)
            for j in 0..<16 {
                let x0 = xb[j] * id
                let x1 = xb[j + 16] * id
                let q0 = UInt8(truncatingIfNeeded: Swift.min(15, truncToInt8(x0 + 8.5)))
                let q1 = UInt8(truncatingIfNeeded: Swift.min(15, truncToInt8(x1 + 8.5)))
                yb.storeBytes(of: q0 | q1 << 4, toByteOffset: 2 + j, as: UInt8.self)
            }
        }
    }

    static func dequantizeQ4_0(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * 18, xb = x + b * 32
            let d = loadHalf(yb, 0)
            for j in 0..<16 {
                let q = yb.load(fromByteOffset: 2 + j, as: UInt8.self)
                xb[j] = Float(Int(q & 0x0F) - 8) * d
                xb[j + 16] = Float(Int(q >> 4) - 8) * d
            }
        }
    }

    // MARK: q4_1

    /// The C kernel (AVX2) for the blocks it takes, this file's reference code for the rest.
    static func quantizeQ4_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        var b = 0
        while b < blocks {
            // SAFETY: blocks b..<blocks of x (32 floats each) and y (20 bytes each) exist.
            b += ck_quantize_q4_1(x + b * 32, blocks - b, (y + b * 20).assumingMemoryBound(to: UInt8.self))
            if b < blocks {
                quantizeQ4_1Reference(x + b * 32, y + b * 20, blocks: 1)
                b += 1
            }
        }
    }

    static func quantizeQ4_1Reference(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let xb = x + b * 32, yb = y + b * 20
            let (min, max) = minMax(xb, 32)
            let d = (max - min) / 15
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, yb, 0)
            storeHalf(min, yb, 2)
            for j in 0..<16 {
                let x0 = (xb[j] - min) * id
                let x1 = (xb[j + 16] - min) * id
                let q0 = UInt8(truncatingIfNeeded: Swift.min(15, truncToInt8(x0 + 0.5)))
                let q1 = UInt8(truncatingIfNeeded: Swift.min(15, truncToInt8(x1 + 0.5)))
                yb.storeBytes(of: q0 | q1 << 4, toByteOffset: 4 + j, as: UInt8.self)
            }
        }
    }

    static func dequantizeQ4_1(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * 20, xb = x + b * 32
            let d = loadHalf(yb, 0), m = loadHalf(yb, 2)
            for j in 0..<16 {
                let q = yb.load(fromByteOffset: 4 + j, as: UInt8.self)
                xb[j] = Float(q & 0x0F) * d + m
                xb[j + 16] = Float(q >> 4) * d + m
            }
        }
    }

    // MARK: q5_0

    /// The C kernel (AVX2) for the blocks it takes, this file's reference code for the rest.
    static func quantizeQ5_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        var b = 0
        while b < blocks {
            // SAFETY: blocks b..<blocks of x (32 floats each) and y (22 bytes each) exist.
            b += ck_quantize_q5_0(x + b * 32, blocks - b, (y + b * 22).assumingMemoryBound(to: UInt8.self))
            if b < blocks {
                quantizeQ5_0Reference(x + b * 32, y + b * 22, blocks: 1)
                b += 1
            }
        }
    }

    static func quantizeQ5_0Reference(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let xb = x + b * 32, yb = y + b * 22
            let max = signedAbsMax(xb, 32)
            let d = max / -16
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, yb, 0)
            var qh: UInt32 = 0
            for j in 0..<16 {
                let x0 = xb[j] * id
                let x1 = xb[j + 16] * id
                let q0 = UInt8(truncatingIfNeeded: Swift.min(31, truncToInt8(x0 + 16.5)))
                let q1 = UInt8(truncatingIfNeeded: Swift.min(31, truncToInt8(x1 + 16.5)))
                yb.storeBytes(of: (q0 & 0x0F) | (q1 & 0x0F) << 4, toByteOffset: 6 + j, as: UInt8.self)
                qh |= UInt32((q0 & 0x10) >> 4) << UInt32(j)
                qh |= UInt32((q1 & 0x10) >> 4) << UInt32(j + 16)
            }
            yb.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
        }
    }

    static func dequantizeQ5_0(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * 22, xb = x + b * 32
            let d = loadHalf(yb, 0)
            let qh = UInt32(littleEndian: yb.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            for j in 0..<16 {
                let q = yb.load(fromByteOffset: 6 + j, as: UInt8.self)
                let h0 = Int((qh >> UInt32(j)) & 1) << 4, h1 = Int((qh >> UInt32(j + 16)) & 1) << 4
                xb[j] = Float((Int(q & 0x0F) | h0) - 16) * d
                xb[j + 16] = Float((Int(q >> 4) | h1) - 16) * d
            }
        }
    }

    // MARK: q5_1

    /// The C kernel (AVX2) for the blocks it takes, this file's reference code for the rest.
    static func quantizeQ5_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        var b = 0
        while b < blocks {
            // SAFETY: blocks b..<blocks of x (32 floats each) and y (24 bytes each) exist.
            b += ck_quantize_q5_1(x + b * 32, blocks - b, (y + b * 24).assumingMemoryBound(to: UInt8.self))
            if b < blocks {
                quantizeQ5_1Reference(x + b * 32, y + b * 24, blocks: 1)
                b += 1
            }
        }
    }

    static func quantizeQ5_1Reference(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let xb = x + b * 32, yb = y + b * 24
            let (min, max) = minMax(xb, 32)
            let d = (max - min) / 31
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, yb, 0)
            storeHalf(min, yb, 2)
            var qh: UInt32 = 0
            for j in 0..<16 {
                let x0 = (xb[j] - min) * id
                let x1 = (xb[j + 16] - min) * id
                // The C reference casts to uint8 without a clamp; gguf-py clips to 31. They
                // agree because (max−min)·id + 0.5 < 32 for finite input.
                let q0 = UInt8(truncatingIfNeeded: Swift.min(31, truncToInt8(x0 + 0.5)))
                let q1 = UInt8(truncatingIfNeeded: Swift.min(31, truncToInt8(x1 + 0.5)))
                yb.storeBytes(of: (q0 & 0x0F) | (q1 & 0x0F) << 4, toByteOffset: 8 + j, as: UInt8.self)
                qh |= UInt32((q0 & 0x10) >> 4) << UInt32(j)
                qh |= UInt32((q1 & 0x10) >> 4) << UInt32(j + 16)
            }
            yb.storeBytes(of: qh.littleEndian, toByteOffset: 4, as: UInt32.self)
        }
    }

    static func dequantizeQ5_1(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * 24, xb = x + b * 32
            let d = loadHalf(yb, 0), m = loadHalf(yb, 2)
            let qh = UInt32(littleEndian: yb.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            for j in 0..<16 {
                let q = yb.load(fromByteOffset: 8 + j, as: UInt8.self)
                let h0 = Int((qh >> UInt32(j)) & 1) << 4, h1 = Int((qh >> UInt32(j + 16)) & 1) << 4
                xb[j] = Float(Int(q & 0x0F) | h0) * d + m
                xb[j + 16] = Float(Int(q >> 4) | h1) * d + m
            }
        }
    }
}

// ckpt's own group-wise weight-only integer types (stored natively in .ckz; GGUF cannot
// hold them). A group is g = 32, 64, 128 or 256 consecutive values of one row (the innermost
// dimension, which must be a whole number of groups).
//
// Byte layouts (little-endian; `half` = IEEE binary16):
//   i8_g<g>  2 + g bytes    half d; int8 q[g]                  x = q·d,        q in −127...127
//   i4_g<g>  2 + g/2 bytes  half d; uint8 p[g/2]               x = (n−8)·d,    n in 0...15
//   u4_g<g>  4 + g/2 bytes  half d; half m; uint8 p[g/2]       x = n·d + m,    n in 0...15
// Nibble packing (both 4-bit types): p[i] = n[2i] | n[2i+1] << 4 — element 2i in the low
// nibble, 2i+1 in the high nibble. (Sequential pairs, unlike ggml's q4_0, which pairs j with
// j+16: with variable group sizes the sequential order is the one that needs no per-size rule.)
//
// Quantizers (round to nearest; the scale is rounded to f16 first and the values are
// quantized against the stored scale, so the error is that of the bytes actually written):
//   i8: d = amax/127; q = round(x/d) (half away from zero), clamped to ±127 (symmetric, no −128)
//   i4: as ggml's q4_0, which uses all 16 levels: max = the signed value of largest |x|,
//       d = max/−8 (so that value maps to level −8 exactly), n = clamp(round(x/d) + 8, 0, 15)
//   u4: d = (max−min)/15, m = min; n = clamp(round((x−m)/d), 0, 15)
// Dequantization is one f32 product (and, for u4, one f32 sum).
//
// `--scheme int8` is symmetric per output channel in spirit: the group is the largest of
// 256/128/64/32 that divides the row (a 4096-wide row gets 16 scales of 256 values rather than
// one). One scale per row would need a type per row length; groups of <= 256 keep a single
// block layout and are at least as accurate, for 2/256 = 0.8 % more bytes than int8 alone.

import CkptCore

enum IntegerSchemes {
    @inline(__always)
    static func roundedInt(_ f: Float, lo: Int, hi: Int) -> Int {
        guard f.isFinite else { return 0 }
        let r = f.rounded(.toNearestOrAwayFromZero)
        return Int(Swift.max(Float(lo), Swift.min(Float(hi), r)))
    }

    static func quantizeI8(group g: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let xb = x + b * g, yb = y + b * (2 + g)
            var amax: Float = 0
            for j in 0..<g { amax = Swift.max(amax, abs(xb[j])) }
            GGML.storeHalf(amax / 127, yb, 0)
            let d = GGML.loadHalf(yb, 0)
            let id: Float = d != 0 ? 1 / d : 0
            for j in 0..<g {
                let q = roundedInt(xb[j] * id, lo: -127, hi: 127)
                yb.storeBytes(of: Int8(q), toByteOffset: 2 + j, as: Int8.self)
            }
        }
    }

    static func dequantizeI8(group g: Int, _ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * (2 + g), xb = x + b * g
            let d = GGML.loadHalf(yb, 0)
            for j in 0..<g { xb[j] = Float(yb.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
        }
    }

    static func quantizeI4(group g: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let xb = x + b * g, yb = y + b * (2 + g / 2)
            GGML.storeHalf(GGML.signedAbsMax(xb, g) / -8, yb, 0)
            let d = GGML.loadHalf(yb, 0)
            let id: Float = d != 0 ? 1 / d : 0
            for i in 0..<g / 2 {
                let n0 = roundedInt(xb[2 * i] * id, lo: -8, hi: 7) + 8
                let n1 = roundedInt(xb[2 * i + 1] * id, lo: -8, hi: 7) + 8
                yb.storeBytes(of: UInt8(n0 | n1 << 4), toByteOffset: 2 + i, as: UInt8.self)
            }
        }
    }

    static func dequantizeI4(group g: Int, _ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * (2 + g / 2), xb = x + b * g
            let d = GGML.loadHalf(yb, 0)
            for i in 0..<g / 2 {
                let p = yb.load(fromByteOffset: 2 + i, as: UInt8.self)
                xb[2 * i] = Float(Int(p & 0xF) - 8) * d
                xb[2 * i + 1] = Float(Int(p >> 4) - 8) * d
            }
        }
    }

    static func quantizeU4(group g: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for b in 0..<blocks {
            let xb = x + b * g, yb = y + b * (4 + g / 2)
            let (lo, hi) = GGML.minMax(xb, g)
            GGML.storeHalf((hi - lo) / 15, yb, 0)
            GGML.storeHalf(lo, yb, 2)
            let d = GGML.loadHalf(yb, 0), m = GGML.loadHalf(yb, 2)
            let id: Float = d != 0 ? 1 / d : 0
            for i in 0..<g / 2 {
                let n0 = roundedInt((xb[2 * i] - m) * id, lo: 0, hi: 15)
                let n1 = roundedInt((xb[2 * i + 1] - m) * id, lo: 0, hi: 15)
                yb.storeBytes(of: UInt8(n0 | n1 << 4), toByteOffset: 4 + i, as: UInt8.self)
            }
        }
    }

    static func dequantizeU4(group g: Int, _ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * (4 + g / 2), xb = x + b * g
            let d = GGML.loadHalf(yb, 0), m = GGML.loadHalf(yb, 2)
            for i in 0..<g / 2 {
                let p = yb.load(fromByteOffset: 4 + i, as: UInt8.self)
                xb[2 * i] = Float(p & 0xF) * d + m
                xb[2 * i + 1] = Float(p >> 4) * d + m
            }
        }
    }
}

// GGUF's k-quants: super-blocks of 256 values with sub-block scales.
//
// Byte layouts (ggml-common.h, field order as stored; QK_K = 256):
//   q2_k   84 B  uint8 scales[16] (low nibble scale, high nibble min, per 16 values);
//                uint8 qs[64] (2 bits); half d; half dmin          x = d·sc·q − dmin·m
//   q3_k  110 B  uint8 hmask[32] (bit 2 of q); uint8 qs[64] (bits 0-1); uint8 scales[12]
//                (16 six-bit signed scales, offset 32); half d      x = d·(sc−32)·(q−4)
//   q4_k  144 B  half d, dmin; uint8 scales[12] (8 six-bit scales + 8 six-bit mins, packed as
//                ggml's get_scale_min_k4); uint8 qs[128]           x = d·sc·q − dmin·m
//   q5_k  176 B  half d, dmin; uint8 scales[12]; uint8 qh[32] (bit 4); uint8 qs[128]
//   q6_k  210 B  uint8 ql[128] (bits 0-3); uint8 qh[64] (bits 4-5); int8 scales[16]; half d
//                                                                   x = d·sc·(q−32)
// Element order inside a super-block (e = 0..<256):
//   2-bit planes (q2_k, q3_k): byte qs[32·(e/128) + e%32], bits 2·((e%128)/32)
//   4-bit planes (q4_k, q5_k): byte qs[32·(e/64) + e%32], low nibble if (e%64) < 32
//   high bits (q3_k hmask, q5_k qh): bit e/32 of byte e%32
//   q6_k: 128-value halves; in each, ql[l] holds e=l (low) and e=l+64 (high), ql[l+32] holds
//         e=l+32 and e=l+96; qh[l] holds bits 4-5 of e = l, l+32, l+64, l+96 at shifts 0,2,4,6
//   sub-block scale of element e: e/16 (q2_k, q3_k, q6_k) or e/32 (q4_k, q5_k)
//
// Quantizers: ggml's reference algorithms (`quantize_row_q{2,3,4,5,6}_K_ref` with
// `make_qkx2_quants`, `make_q3_quants` and `make_qx_quants` in ggml-quants.c), re-implemented
// step for step from their description: the same search grids, the same f32 operation order,
// `nearest_int` rounding half to even through the 1.5·2²³ trick, no fused multiply-adds.
// gguf-py cannot quantize k-quants; the tests check that its dequantizer reads ckpt's bytes to
// exactly ckpt's values and that the error matches the reference algorithm's.
// The hot path is Sources/CKernels/kquant.c (AVX2): the same searches run for 8 sub-blocks at
// once, one per vector lane, each lane doing this file's operations in this file's order, so
// the bytes are the same for every input (tests compare the two on random and edge-case data).

import CKernels
import CkptCore

enum KQuants {
    static let QK = 256
    /// ggml's GROUP_MAX_EPS: a group whose largest |x| is below this is all zero.
    static let groupMaxEps: Float = 1e-15

    /// ggml's `nearest_int`: round half to even by adding 1.5·2²³ and reading the mantissa.
    /// Exact for |f| <= 4194303 (ggml asserts that); the same bits as C beyond it.
    @inline(__always)
    static func nearestInt(_ f: Float) -> Int32 {
        let v = f + 12_582_912
        return Int32(bitPattern: v.bitPattern & 0x007F_FFFF) - 0x0040_0000
    }

    // MARK: Shared searches

    /// `make_qkx2_quants`: asymmetric levels 0...nmax for n values with a weighted search
    /// over 1 + nstep scales around nmax/(max−min). Returns (scale, −min); fills L. With
    /// `useMAD: false` it is also ggml's `make_qkx3_quants` (the importance-weighted k-quants,
    /// ImportanceQuants.swift): the same operations in the same order; qkx3's `max <= min`
    /// guard differs from `max == min` only when max < min, which the min/max scan cannot give.
    static func makeQKX2(
        _ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
        _ L: UnsafeMutablePointer<UInt8>, _ Laux: UnsafeMutablePointer<UInt8>,
        rmin: Float, rdelta: Float, nstep: Int, useMAD: Bool
    ) -> (scale: Float, negMin: Float) {
        var min = x[0], max = x[0]
        var sumW = weights[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < min { min = x[i] }
            if x[i] > max { max = x[i] }
            let w = weights[i]
            sumW += w
            sumX += w * x[i]
        }
        if min > 0 { min = 0 }
        if max == min {
            for i in 0..<n { L[i] = 0 }
            return (0, -min)
        }
        var iscale = Float(nmax) / (max - min)
        var scale = 1 / iscale
        var bestMAD: Float = 0
        for i in 0..<n {
            let l = nearestInt(iscale * (x[i] - min))
            L[i] = UInt8(Swift.max(0, Swift.min(Int32(nmax), l)))
            var diff = scale * Float(L[i]) + min - x[i]
            diff = useMAD ? abs(diff) : diff * diff
            bestMAD += weights[i] * diff
        }
        if nstep < 1 { return (scale, -min) }
        for step in 0...nstep {
            iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (max - min)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                var l = nearestInt(iscale * (x[i] - min))
                l = Swift.max(0, Swift.min(Int32(nmax), l))
                Laux[i] = UInt8(l)
                let w = weights[i]
                let fl = Float(l)
                sumL += w * fl
                sumL2 += w * fl * fl
                sumXL += w * fl * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            if D > 0 {
                var thisScale = (sumW * sumXL - sumX * sumL) / D
                var thisMin = (sumL2 * sumX - sumL * sumXL) / D
                if thisMin > 0 {
                    thisMin = 0
                    thisScale = sumXL / sumL2
                }
                var mad: Float = 0
                for i in 0..<n {
                    var diff = thisScale * Float(Laux[i]) + thisMin - x[i]
                    diff = useMAD ? abs(diff) : diff * diff
                    mad += weights[i] * diff
                }
                if mad < bestMAD {
                    for i in 0..<n { L[i] = Laux[i] }
                    bestMAD = mad
                    scale = thisScale
                    min = thisMin
                }
            }
        }
        return (scale, -min)
    }

    /// `make_qx_quants` with rmse_type 1 and no importance weights (what q6_k's reference
    /// uses): symmetric levels −nmax..<nmax stored offset by nmax, weights x², 18 extra scales
    /// tried around −nmax/max. Returns the scale.
    static func makeQX(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>) -> Float {
        var max: Float = 0, amax: Float = 0
        for i in 0..<n {
            let ax = abs(x[i])
            if ax > amax {
                amax = ax
                max = x[i]
            }
        }
        if amax < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let fnmax = Float(nmax)
        var iscale = Float(-nmax) / max
        var sumLX: Float = 0, sumL2: Float = 0
        for i in 0..<n {
            var l = nearestInt(iscale * x[i])
            l = Swift.max(Int32(-nmax), Swift.min(Int32(nmax - 1), l))
            L[i] = Int8(truncatingIfNeeded: l + Int32(nmax))
            let w = x[i] * x[i]
            let fl = Float(l)
            sumLX += w * x[i] * fl
            sumL2 += w * fl * fl
        }
        var scale: Float = sumL2 != 0 ? sumLX / sumL2 : 0
        var best = scale * sumLX
        for step in -9...9 where step != 0 {
            iscale = -(fnmax + 0.1 * Float(step)) / max
            sumLX = 0
            sumL2 = 0
            for i in 0..<n {
                var l = nearestInt(iscale * x[i])
                l = Swift.max(Int32(-nmax), Swift.min(Int32(nmax - 1), l))
                let w = x[i] * x[i]
                let fl = Float(l)
                sumLX += w * x[i] * fl
                sumL2 += w * fl * fl
            }
            if sumL2 > 0 && sumLX * sumLX > best * sumL2 {
                for i in 0..<n {
                    let l = nearestInt(iscale * x[i])
                    L[i] = Int8(truncatingIfNeeded: Int32(nmax) + Swift.max(Int32(-nmax), Swift.min(Int32(nmax - 1), l)))
                }
                scale = sumLX / sumL2
                best = scale * sumLX
            }
        }
        return scale
    }

    /// `make_q3_quants` with do_rmse: symmetric levels −nmax..<nmax, weights x², then up to 5
    /// passes moving single values to a better level. L is stored offset by nmax.
    static func makeQ3(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>) -> Float {
        var max: Float = 0, amax: Float = 0
        for i in 0..<n {
            let ax = abs(x[i])
            if ax > amax {
                amax = ax
                max = x[i]
            }
        }
        if amax < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let iscale = Float(-nmax) / max
        var sumLX: Float = 0, sumL2: Float = 0
        let lo = Int32(-nmax), hi = Int32(nmax - 1)
        for i in 0..<n {
            let l = Swift.max(lo, Swift.min(hi, nearestInt(iscale * x[i])))
            L[i] = Int8(l)
            let w = x[i] * x[i]
            let fl = Float(l)
            sumLX += w * x[i] * fl
            sumL2 += w * fl * fl
        }
        for _ in 0..<5 {
            var changed = 0
            for i in 0..<n {
                let w = x[i] * x[i]
                let li = Float(L[i])
                var slx = sumLX - w * x[i] * li
                if slx > 0 {
                    var sl2 = sumL2 - w * li * li
                    let newL = Swift.max(lo, Swift.min(hi, nearestInt(x[i] * sl2 / slx)))
                    if newL != Int32(L[i]) {
                        let fl = Float(newL)
                        slx += w * x[i] * fl
                        sl2 += w * fl * fl
                        if sl2 > 0 && slx * slx * sumL2 > sumLX * sumLX * sl2 {
                            L[i] = Int8(newL)
                            sumLX = slx
                            sumL2 = sl2
                            changed += 1
                        }
                    }
                }
            }
            if changed == 0 { break }
        }
        for i in 0..<n { L[i] = L[i] &+ Int8(nmax) }
        return sumLX / sumL2
    }

    /// ggml's `get_scale_min_k4`: sub-block j's 6-bit scale and min from q4_k/q5_k's 12 bytes.
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (UInt8, UInt8) {
        func b(_ i: Int) -> UInt8 { q.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 { return (b(j) & 63, b(j + 4) & 63) }
        return ((b(j + 4) & 0xF) | ((b(j - 4) >> 6) << 4), (b(j + 4) >> 4) | ((b(j) >> 6) << 4))
    }

    /// Packs eight 6-bit scales and mins as q4_k/q5_k store them (inverse of scaleMinK4).
    static func packScalesMinsK4(_ ls: [UInt8], _ lm: [UInt8], into s: UnsafeMutableRawPointer) {
        var out = [UInt8](repeating: 0, count: 12)
        for j in 0..<8 {
            if j < 4 {
                out[j] = ls[j]
                out[j + 4] = lm[j]
            } else {
                out[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4)
                out[j - 4] |= (ls[j] >> 4) << 6
                out[j] |= (lm[j] >> 4) << 6
            }
        }
        for i in 0..<12 { s.storeBytes(of: out[i], toByteOffset: i, as: UInt8.self) }
    }

    // MARK: q4_k and q5_k (shared: 8 sub-blocks of 32, asymmetric, 6-bit scales and mins)

    /// The C kernel (AVX2, Sources/CKernels/kquant.c) for the blocks it takes, the reference
    /// code below for the rest (every block when SIMD is off or absent).
    static func quantizeQ45K(bits: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        let size = bits == 4 ? 144 : 176
        // SAFETY: `blocks` super-blocks of x (256 floats each) and y (`size` bytes each) exist.
        let done = bits == 4 ? ck_quantize_q4_k(x, blocks, y.assumingMemoryBound(to: UInt8.self))
                             : ck_quantize_q5_k(x, blocks, y.assumingMemoryBound(to: UInt8.self))
        if done < blocks { quantizeQ45KReference(bits: bits, x + done * QK, y + done * size, blocks: blocks - done) }
    }

    /// q4_k (bits 4) or q5_k (bits 5): `quantize_row_q{4,5}_K_ref`.
    static func quantizeQ45KReference(bits: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        let nmax = bits == 4 ? 15 : 31
        let size = bits == 4 ? 144 : 176
        let qsOffset = bits == 4 ? 16 : 48
        // q4_k: rmin −1, 20 steps; q5_k: rmin −0.5, 15 steps (quantize_row_q{4,5}_K_ref).
        let rmin: Float = bits == 4 ? -1 : -0.5
        let nstep = bits == 4 ? 20 : 15
        var L = [UInt8](repeating: 0, count: QK), Laux = [UInt8](repeating: 0, count: 32)
        var weights = [Float](repeating: 0, count: 32)
        var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
        var ls = [UInt8](repeating: 0, count: 8), lm = [UInt8](repeating: 0, count: 8)
        for b in 0..<blocks {
            let xb = x + b * QK, yb = y + b * size
            var maxScale: Float = 0, maxMin: Float = 0
            for j in 0..<8 {
                let xs = xb + 32 * j
                var sumX2: Float = 0
                for l in 0..<32 { sumX2 += xs[l] * xs[l] }
                let avX = (sumX2 / 32).squareRoot()
                for l in 0..<32 { weights[l] = avX + abs(xs[l]) }
                let (s, m) = L.withUnsafeMutableBufferPointer { Lp in
                    Laux.withUnsafeMutableBufferPointer { La in
                        weights.withUnsafeBufferPointer { w in
                            makeQKX2(32, nmax, xs, w.baseAddress!, Lp.baseAddress! + 32 * j, La.baseAddress!,
                                     rmin: rmin, rdelta: 0.1, nstep: nstep, useMAD: false)
                        }
                    }
                }
                scales[j] = s
                mins[j] = m
                if s > maxScale { maxScale = s }
                if m > maxMin { maxMin = m }
            }
            let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
            let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
            for j in 0..<8 {
                ls[j] = Swift.min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * scales[j])))
                lm[j] = Swift.min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * mins[j])))
            }
            packScalesMinsK4(ls, lm, into: yb + 4)
            GGML.storeHalf(maxScale / 63, yb, 0)
            GGML.storeHalf(maxMin / 63, yb, 2)
            let d = GGML.loadHalf(yb, 0), dmin = GGML.loadHalf(yb, 2)
            for j in 0..<8 {
                let (sc, m) = scaleMinK4(j, yb + 4)
                let dj = d * Float(sc)
                if dj == 0 { continue }
                let dm = dmin * Float(m)
                for ii in 0..<32 {
                    let l = nearestInt((xb[32 * j + ii] + dm) / dj)
                    L[32 * j + ii] = UInt8(Swift.max(0, Swift.min(Int32(nmax), l)))
                }
            }
            if bits == 5 {
                for i in 0..<32 { yb.storeBytes(of: 0, toByteOffset: 16 + i, as: UInt8.self) }
            }
            for c in 0..<4 {
                for l in 0..<32 {
                    var l1 = L[64 * c + l], l2 = L[64 * c + l + 32]
                    if bits == 5 {
                        var h = yb.load(fromByteOffset: 16 + l, as: UInt8.self)
                        if l1 > 15 { l1 -= 16; h |= 1 << UInt8(2 * c) }
                        if l2 > 15 { l2 -= 16; h |= 1 << UInt8(2 * c + 1) }
                        yb.storeBytes(of: h, toByteOffset: 16 + l, as: UInt8.self)
                    }
                    yb.storeBytes(of: l1 | l2 << 4, toByteOffset: qsOffset + 32 * c + l, as: UInt8.self)
                }
            }
        }
    }

    static func dequantizeQ45K(bits: Int, _ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        let size = bits == 4 ? 144 : 176
        let qsOffset = bits == 4 ? 16 : 48
        for b in 0..<blocks {
            let yb = y + b * size, xb = x + b * QK
            let d = GGML.loadHalf(yb, 0), dmin = GGML.loadHalf(yb, 2)
            for j in 0..<8 {
                let (sc, m) = scaleMinK4(j, yb + 4)
                let dj = d * Float(sc), mj = dmin * Float(m)
                let c = j / 2, high = j % 2 == 1
                for l in 0..<32 {
                    let byte = yb.load(fromByteOffset: qsOffset + 32 * c + l, as: UInt8.self)
                    var q = high ? byte >> 4 : byte & 0xF
                    if bits == 5, (yb.load(fromByteOffset: 16 + l, as: UInt8.self) >> UInt8(j)) & 1 == 1 { q += 16 }
                    xb[32 * j + l] = dj * Float(q) - mj
                }
            }
        }
    }

    // MARK: q6_k

    /// The C kernel (AVX2) for the blocks it takes, the reference code below for the rest.
    static func quantizeQ6K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        // SAFETY: `blocks` super-blocks of x (256 floats each) and y (210 bytes each) exist.
        let done = ck_quantize_q6_k(x, blocks, y.assumingMemoryBound(to: UInt8.self))
        if done < blocks { quantizeQ6KReference(x + done * QK, y + done * 210, blocks: blocks - done) }
    }

    static func quantizeQ6KReference(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        var L = [Int8](repeating: 0, count: QK)
        var scales = [Float](repeating: 0, count: 16)
        for b in 0..<blocks {
            let xb = x + b * QK, yb = y + b * 210
            var maxScale: Float = 0, maxAbsScale: Float = 0
            L.withUnsafeMutableBufferPointer { Lp in
                for ib in 0..<16 {
                    let s = makeQX(16, 32, xb + 16 * ib, Lp.baseAddress! + 16 * ib)
                    scales[ib] = s
                    if abs(s) > maxAbsScale {
                        maxAbsScale = abs(s)
                        maxScale = s
                    }
                }
            }
            if maxAbsScale < groupMaxEps {
                for i in 0..<210 { yb.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
                continue
            }
            let iscale = -128 / maxScale
            GGML.storeHalf(1 / iscale, yb, 208)
            for ib in 0..<16 {
                let s = Swift.min(127, nearestInt(iscale * scales[ib]))
                yb.storeBytes(of: Int8(truncatingIfNeeded: s), toByteOffset: 192 + ib, as: Int8.self)
            }
            let d = GGML.loadHalf(yb, 208)
            for j in 0..<16 {
                let dj = d * Float(yb.load(fromByteOffset: 192 + j, as: Int8.self))
                if dj == 0 { continue }
                for ii in 0..<16 {
                    let l = Swift.max(-32, Swift.min(31, nearestInt(xb[16 * j + ii] / dj)))
                    L[16 * j + ii] = Int8(l + 32)
                }
            }
            for h in 0..<2 {
                let e = 128 * h, ql = 64 * h, qh = 128 + 32 * h
                for l in 0..<32 {
                    let q1 = UInt8(bitPattern: L[e + l]), q2 = UInt8(bitPattern: L[e + l + 32])
                    let q3 = UInt8(bitPattern: L[e + l + 64]), q4 = UInt8(bitPattern: L[e + l + 96])
                    yb.storeBytes(of: (q1 & 0xF) | (q3 & 0xF) << 4, toByteOffset: ql + l, as: UInt8.self)
                    yb.storeBytes(of: (q2 & 0xF) | (q4 & 0xF) << 4, toByteOffset: ql + l + 32, as: UInt8.self)
                    let hb = (q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6
                    yb.storeBytes(of: hb, toByteOffset: qh + l, as: UInt8.self)
                }
            }
        }
    }

    static func dequantizeQ6K(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * 210, xb = x + b * QK
            let d = GGML.loadHalf(yb, 208)
            for h in 0..<2 {
                let ql = 64 * h, qh = 128 + 32 * h
                for l in 0..<32 {
                    let lo0 = yb.load(fromByteOffset: ql + l, as: UInt8.self)
                    let lo1 = yb.load(fromByteOffset: ql + l + 32, as: UInt8.self)
                    let hi = yb.load(fromByteOffset: qh + l, as: UInt8.self)
                    for k in 0..<4 {
                        let lo = k % 2 == 0 ? lo0 : lo1
                        let q = Int((k < 2 ? lo & 0xF : lo >> 4) | ((hi >> UInt8(2 * k)) & 3) << 4)
                        let e = 128 * h + l + 32 * k
                        let sc = Float(yb.load(fromByteOffset: 192 + e / 16, as: Int8.self))
                        xb[e] = d * sc * Float(q - 32)
                    }
                }
            }
        }
    }

    // MARK: q2_k

    /// The C kernel (AVX2) for the blocks it takes, the reference code below for the rest.
    static func quantizeQ2K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        // SAFETY: `blocks` super-blocks of x (256 floats each) and y (84 bytes each) exist.
        let done = ck_quantize_q2_k(x, blocks, y.assumingMemoryBound(to: UInt8.self))
        if done < blocks { quantizeQ2KReference(x + done * QK, y + done * 84, blocks: blocks - done) }
    }

    static func quantizeQ2KReference(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        var L = [UInt8](repeating: 0, count: QK), Laux = [UInt8](repeating: 0, count: 16)
        var weights = [Float](repeating: 0, count: 16)
        var scales = [Float](repeating: 0, count: 16), mins = [Float](repeating: 0, count: 16)
        let q4scale: Float = 15
        for b in 0..<blocks {
            let xb = x + b * QK, yb = y + b * 84
            var maxScale: Float = 0, maxMin: Float = 0
            for j in 0..<16 {
                for l in 0..<16 { weights[l] = abs(xb[16 * j + l]) }
                let (s, m) = L.withUnsafeMutableBufferPointer { Lp in
                    Laux.withUnsafeMutableBufferPointer { La in
                        weights.withUnsafeBufferPointer { w in
                            makeQKX2(16, 3, xb + 16 * j, w.baseAddress!, Lp.baseAddress! + 16 * j, La.baseAddress!,
                                     rmin: -0.5, rdelta: 0.1, nstep: 15, useMAD: true)
                        }
                    }
                }
                scales[j] = s
                mins[j] = m
                if s > maxScale { maxScale = s }
                if m > maxMin { maxMin = m }
            }
            var sc = [UInt8](repeating: 0, count: 16)
            if maxScale > 0 {
                let iscale = q4scale / maxScale
                for j in 0..<16 { sc[j] = UInt8(truncatingIfNeeded: nearestInt(iscale * scales[j])) }
                GGML.storeHalf(maxScale / q4scale, yb, 80)
            } else {
                GGML.storeHalf(0, yb, 80)
            }
            if maxMin > 0 {
                let iscale = q4scale / maxMin
                for j in 0..<16 { sc[j] |= UInt8(truncatingIfNeeded: nearestInt(iscale * mins[j]) << 4) }
                GGML.storeHalf(maxMin / q4scale, yb, 82)
            } else {
                GGML.storeHalf(0, yb, 82)
            }
            for j in 0..<16 { yb.storeBytes(of: sc[j], toByteOffset: j, as: UInt8.self) }
            let d = GGML.loadHalf(yb, 80), dmin = GGML.loadHalf(yb, 82)
            for j in 0..<16 {
                let dj = d * Float(sc[j] & 0xF)
                if dj == 0 { continue }
                let dm = dmin * Float(sc[j] >> 4)
                for ii in 0..<16 {
                    let l = nearestInt((xb[16 * j + ii] + dm) / dj)
                    L[16 * j + ii] = UInt8(Swift.max(0, Swift.min(3, l)))
                }
            }
            pack2Bit(L, into: yb + 16)
        }
    }

    /// qs[32·c + l] = L[128c+l] | L[128c+l+32] << 2 | L[128c+l+64] << 4 | L[128c+l+96] << 6.
    static func pack2Bit(_ L: [UInt8], into q: UnsafeMutableRawPointer) {
        for c in 0..<2 {
            for l in 0..<32 {
                let e = 128 * c + l
                let v = (L[e] & 3) | (L[e + 32] & 3) << 2 | (L[e + 64] & 3) << 4 | (L[e + 96] & 3) << 6
                q.storeBytes(of: v, toByteOffset: 32 * c + l, as: UInt8.self)
            }
        }
    }

    @inline(__always)
    static func twoBits(_ q: UnsafeRawPointer, _ e: Int) -> Int {
        let byte = q.load(fromByteOffset: 32 * (e / 128) + e % 32, as: UInt8.self)
        return Int((byte >> UInt8(2 * ((e % 128) / 32))) & 3)
    }

    static func dequantizeQ2K(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * 84, xb = x + b * QK
            let d = GGML.loadHalf(yb, 80), dmin = GGML.loadHalf(yb, 82)
            for j in 0..<16 {
                let sc = yb.load(fromByteOffset: j, as: UInt8.self)
                let dl = d * Float(sc & 0xF), ml = dmin * Float(sc >> 4)
                for l in 0..<16 {
                    let e = 16 * j + l
                    xb[e] = dl * Float(twoBits(yb + 16, e)) - ml
                }
            }
        }
    }

    // MARK: q3_k

    /// Sub-block j's signed 6-bit scale (−32...31) from q3_k's 12 scale bytes.
    @inline(__always)
    static func scaleQ3K(_ j: Int, _ s: UnsafeRawPointer) -> Int {
        let lowByte = s.load(fromByteOffset: j < 8 ? j : j - 8, as: UInt8.self)
        let low = j < 8 ? lowByte & 0xF : lowByte >> 4
        let high = (s.load(fromByteOffset: 8 + j % 4, as: UInt8.self) >> UInt8(2 * (j / 4))) & 3
        return Int(low | high << 4) - 32
    }

    /// The C kernel (AVX2) for the blocks it takes, the reference code below for the rest.
    static func quantizeQ3K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        // SAFETY: `blocks` super-blocks of x (256 floats each) and y (110 bytes each) exist.
        let done = ck_quantize_q3_k(x, blocks, y.assumingMemoryBound(to: UInt8.self))
        if done < blocks { quantizeQ3KReference(x + done * QK, y + done * 110, blocks: blocks - done) }
    }

    static func quantizeQ3KReference(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        var L = [Int8](repeating: 0, count: QK)
        var scales = [Float](repeating: 0, count: 16)
        for b in 0..<blocks {
            let xb = x + b * QK, yb = y + b * 110
            var maxScale: Float = 0, amax: Float = 0
            L.withUnsafeMutableBufferPointer { Lp in
                for j in 0..<16 {
                    scales[j] = makeQ3(16, 4, xb + 16 * j, Lp.baseAddress! + 16 * j)
                    if abs(scales[j]) > amax {
                        amax = abs(scales[j])
                        maxScale = scales[j]
                    }
                }
            }
            var s = [UInt8](repeating: 0, count: 12)
            if maxScale != 0 {
                let iscale = -32 / maxScale
                for j in 0..<16 {
                    var l = Int8(truncatingIfNeeded: nearestInt(iscale * scales[j]))
                    l = Swift.max(-32, Swift.min(31, l)) + 32
                    let ul = UInt8(l)
                    if j < 8 { s[j] = ul & 0xF } else { s[j - 8] |= (ul & 0xF) << 4 }
                    s[j % 4 + 8] |= (ul >> 4) << UInt8(2 * (j / 4))
                }
                GGML.storeHalf(1 / iscale, yb, 108)
            } else {
                GGML.storeHalf(0, yb, 108)
            }
            for i in 0..<12 { yb.storeBytes(of: s[i], toByteOffset: 96 + i, as: UInt8.self) }
            let d = GGML.loadHalf(yb, 108)
            for j in 0..<16 {
                let dj = d * Float(scaleQ3K(j, yb + 96))
                if dj == 0 { continue }
                for ii in 0..<16 {
                    let l = Swift.max(-4, Swift.min(3, nearestInt(xb[16 * j + ii] / dj)))
                    L[16 * j + ii] = Int8(l + 4)
                }
            }
            var hmask = [UInt8](repeating: 0, count: 32)
            var low = [UInt8](repeating: 0, count: QK)
            for e in 0..<QK {
                var v = L[e]
                if v > 3 {
                    hmask[e % 32] |= 1 << UInt8(e / 32)
                    v -= 4
                }
                low[e] = UInt8(bitPattern: v)
            }
            for i in 0..<32 { yb.storeBytes(of: hmask[i], toByteOffset: i, as: UInt8.self) }
            pack2Bit(low, into: yb + 32)
        }
    }

    static func dequantizeQ3K(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let yb = y + b * 110, xb = x + b * QK
            let d = GGML.loadHalf(yb, 108)
            for j in 0..<16 {
                let dl = d * Float(scaleQ3K(j, yb + 96))
                for l in 0..<16 {
                    let e = 16 * j + l
                    let h = (yb.load(fromByteOffset: e % 32, as: UInt8.self) >> UInt8(e / 32)) & 1
                    xb[e] = dl * Float(twoBits(yb + 32, e) - (h == 1 ? 0 : 4))
                }
            }
        }
    }
}

// Importance-weighted quantization (llama.cpp's imatrix): every column j of a weight row has
// an importance q_j (the mean of x_j² over calibration tokens, x the layer's input), and the
// scale/min searches minimise Σ_j w_j·(x_j − x̂_j)² with w_j derived from q_j instead of the
// weight-only heuristics of round-to-nearest. The output is the scheme's standard block.
//
// What ggml's `quantize_q*` do when handed `quant_weights` (ggml-quants.c, `quantize_row_*_impl`),
// re-implemented from their description, step for step in f32 (the same operation order,
// `nearest_int` rounding half to even, no fused multiply-adds) so the bytes equal llama.cpp's
// given the same importance vector (tools/make_imatrix_fixtures.py checks it against libggml):
//
//   σ² = Σ x²/n over the whole row (q4_0..q5_1, q2_k) or 2·Σ x²/256 over the super-block (q3_k,
//   q4_k, q5_k); per value w = q·sqrt(σ² + x²).
//   q4_0, q5_0   make_qx_quants(32, 8|16, w): symmetric levels, 19 scales tried around −nmax/max,
//                the best by the weighted least-squares criterion (Σwxl)²/Σwl²
//   q4_1, q5_1   make_qkx3_quants(32, 15|31, w, rmin −0.9, rdelta 0.05, 37 steps): asymmetric
//                levels, per step the weighted least-squares scale and min, the lowest Σw·err²
//   q2_k         16 sub-blocks of 16 with make_qkx3_quants(16, 3, w); the 4-bit sub-block scales
//                and mins by make_qp_quants(16, 15, Σw per sub-block); values re-rounded
//   q3_k         make_qx_quants(16, 4, w) per sub-block; 6-bit scales by make_qx_quants(16, 32, Σw)
//   q4_k, q5_k   make_qkx3_quants(32, 15|31, w) per sub-block; 6-bit scales and mins by
//                make_qp_quants(8, 63, Σw); values re-rounded with the stored scales
//   q6_k         make_qx_quants(16, 32) weighted by q itself (no σ² term); 8-bit scales as the
//                reference quantizer
// q8_0 ignores the importance in llama.cpp too (its round-to-nearest is already near lossless).
// make_qkx3_quants is KQuants.makeQKX2 with squared errors (useMAD: false): one search serves
// both (QuantizeTests compare these quantizers' bytes with libggml's, fixtures/imatrix).

import CkptCore

public enum ImportanceQuants {
    /// The block types whose quantizer uses an importance vector.
    public static func supports(_ dtype: DType) -> Bool {
        switch dtype {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k: return true
        default: return false
        }
    }

    /// Quantizes rows of `rowLength` values to `dtype`, weighting column j of every row by
    /// `importance[j]` (llama.cpp's imatrix entry for the tensor: Σx_j²/tokens). Rows run in
    /// parallel; the bytes do not depend on `jobs`.
    public static func quantize(_ values: UnsafeBufferPointer<Float>, rowLength: Int, importance: [Float], to dtype: DType,
                                name: String = "", jobs: Int = Quantizer.defaultJobs) throws(QuantizeError) -> [UInt8] {
        guard supports(dtype), case .block(let per, let bytes) = dtype.layout else { throw .notABlockType(dtype) }
        guard rowLength > 0, rowLength % per == 0, values.count % rowLength == 0, importance.count == rowLength else {
            throw .rowNotWholeBlocks(tensor: name, rowLength: rowLength, dtype: dtype, blockValues: per)
        }
        let rows = values.count / rowLength, rowBytes = rowLength / per * bytes
        var out = [UInt8](repeating: 0, count: rows * rowBytes)
        guard rows > 0 else { return out }
        importance.withUnsafeBufferPointer { qw in
            out.withUnsafeMutableBytes { dst in
                // SAFETY: each worker reads rows [first, first+n) of `values` and writes the same
                // rows of `out`; both buffers outlive forEachSlice, and the slices are disjoint.
                let src = values.baseAddress!, o = dst.baseAddress!, w = qw.baseAddress!
                Quantizer.forEachSlice(blocks: rows, valuesPerBlock: rowLength, jobs: jobs) { first, n in
                    for r in first..<first + n {
                        row(dtype, src + r * rowLength, o + r * rowBytes, n: rowLength, qw: w)
                    }
                }
            }
        }
        return out
    }

    static func row(_ dtype: DType, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, n: Int, qw: UnsafePointer<Float>) {
        switch dtype {
        case .q4_0, .q5_0, .q4_1, .q5_1: blocks32(dtype, x, y, n: n, qw: qw)
        case .q2_k: for i in 0..<n / 256 { q2K(x + 256 * i, y + 84 * i, qw + 256 * i) }
        case .q3_k: for i in 0..<n / 256 { q3K(x + 256 * i, y + 110 * i, qw + 256 * i) }
        case .q4_k: for i in 0..<n / 256 { q45K(bits: 4, x + 256 * i, y + 144 * i, qw + 256 * i) }
        case .q5_k: for i in 0..<n / 256 { q45K(bits: 5, x + 256 * i, y + 176 * i, qw + 256 * i) }
        case .q6_k: for i in 0..<n / 256 { q6K(x + 256 * i, y + 210 * i, qw + 256 * i) }
        default: preconditionFailure("ImportanceQuants.row: \(dtype) is not supported")
        }
    }

    // MARK: ggml's helpers

    static let groupMaxEps: Float = 1e-15

    /// ggml's `nearest_int`: round half to even through the 1.5·2²³ trick.
    @inline(__always)
    static func nearestInt(_ f: Float) -> Int32 {
        let v = f + 12_582_912
        return Int32(bitPattern: v.bitPattern & 0x007F_FFFF) - 0x0040_0000
    }

    @inline(__always) static func half(_ x: Float) -> UInt16 { FloatBits.f32ToF16(x.bitPattern) }
    @inline(__always) static func float(_ h: UInt16) -> Float { Float(bitPattern: FloatBits.f16ToF32(h)) }
    @inline(__always) static func store(_ x: Float, _ y: UnsafeMutableRawPointer, _ offset: Int) {
        y.storeBytes(of: half(x).littleEndian, toByteOffset: offset, as: UInt16.self)
    }
    @inline(__always) static func stored(_ x: Float) -> Float { float(half(x)) }

    /// `make_qx_quants` with rmse_type 1 and weights `w`: symmetric levels −nmax..<nmax, stored
    /// in L offset by nmax; the scale maximising (Σ w·x·l)²/Σ w·l² among 19 candidates.
    static func makeQX(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>,
                       _ w: UnsafePointer<Float>) -> Float {
        var max: Float = 0, amax: Float = 0
        for i in 0..<n {
            let ax = abs(x[i])
            if ax > amax { amax = ax; max = x[i] }
        }
        if amax < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let lo = Int32(-nmax), hi = Int32(nmax - 1), fnmax = Float(nmax)
        var iscale = Float(-nmax) / max
        var sumLX: Float = 0, sumL2: Float = 0
        for i in 0..<n {
            let l = Swift.max(lo, Swift.min(hi, nearestInt(iscale * x[i])))
            L[i] = Int8(truncatingIfNeeded: l + Int32(nmax))
            let fl = Float(l)
            sumLX += w[i] * x[i] * fl
            sumL2 += w[i] * fl * fl
        }
        var scale: Float = sumL2 != 0 ? sumLX / sumL2 : 0
        var best = scale * sumLX
        for step in -9...9 where step != 0 {
            iscale = -(fnmax + 0.1 * Float(step)) / max
            sumLX = 0
            sumL2 = 0
            for i in 0..<n {
                let fl = Float(Swift.max(lo, Swift.min(hi, nearestInt(iscale * x[i]))))
                sumLX += w[i] * x[i] * fl
                sumL2 += w[i] * fl * fl
            }
            if sumL2 > 0 && sumLX * sumLX > best * sumL2 {
                for i in 0..<n {
                    L[i] = Int8(truncatingIfNeeded: Int32(nmax) + Swift.max(lo, Swift.min(hi, nearestInt(iscale * x[i]))))
                }
                scale = sumLX / sumL2
                best = scale * sumLX
            }
        }
        return scale
    }

    /// `make_qp_quants`: non-negative values (sub-block scales or mins) to levels 0...nmax of
    /// one scale, weighted by `w`; 9 candidate scales, then up to 5 passes moving single levels.
    static func makeQP(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<UInt8>,
                       _ w: UnsafePointer<Float>) -> Float {
        var max: Float = 0
        for i in 0..<n { max = max > x[i] ? max : x[i] }
        if max < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let top = Int32(nmax)
        var iscale = Float(nmax) / max
        for i in 0..<n { L[i] = UInt8(truncatingIfNeeded: nearestInt(iscale * x[i])) }
        let scale = 1 / iscale
        var best: Float = 0
        for i in 0..<n {
            let diff = x[i] - scale * Float(L[i])
            best += w[i] * diff * diff
        }
        for step in -4...4 where step != 0 {
            let iscaleStep = (0.1 * Float(step) + Float(nmax)) / max
            let scaleStep = 1 / iscaleStep
            var mse: Float = 0
            for i in 0..<n {
                let l = Swift.min(top, nearestInt(iscaleStep * x[i]))
                let diff = x[i] - scaleStep * Float(l)
                mse += w[i] * diff * diff
            }
            if mse < best {
                best = mse
                iscale = iscaleStep
            }
        }
        var sumLX: Float = 0, sumL2: Float = 0
        for i in 0..<n {
            let l = Swift.min(top, nearestInt(iscale * x[i]))
            L[i] = UInt8(truncatingIfNeeded: l)
            let fl = Float(l)
            sumLX += w[i] * x[i] * fl
            sumL2 += w[i] * fl * fl
        }
        for _ in 0..<5 {
            var changed = 0
            for i in 0..<n {
                let li = Float(L[i])
                var slx = sumLX - w[i] * x[i] * li
                var sl2 = sumL2 - w[i] * li * li
                if slx > 0 && sl2 > 0 {
                    let newL = Swift.min(top, nearestInt(x[i] * sl2 / slx))
                    if newL != Int32(L[i]) {
                        let fl = Float(newL)
                        slx += w[i] * x[i] * fl
                        sl2 += w[i] * fl * fl
                        if slx * slx * sumL2 > sumLX * sumLX * sl2 {
                            L[i] = UInt8(truncatingIfNeeded: newL)
                            sumLX = slx
                            sumL2 = sl2
                            changed += 1
                        }
                    }
                }
            }
            if changed == 0 { break }
        }
        return sumL2 > 0 ? sumLX / sumL2 : 0
    }

    // MARK: 32-value blocks (q4_0 q4_1 q5_0 q5_1)

    static func blocks32(_ dtype: DType, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, n: Int,
                         qw: UnsafePointer<Float>) {
        var sumX2: Float = 0
        for j in 0..<n { sumX2 += x[j] * x[j] }
        let sigma2 = sumX2 / Float(n)
        let weight = UnsafeMutablePointer<Float>.allocate(capacity: 32)
        let L = UnsafeMutablePointer<UInt8>.allocate(capacity: 32), Laux = UnsafeMutablePointer<UInt8>.allocate(capacity: 32)
        defer { weight.deallocate(); L.deallocate(); Laux.deallocate() }
        let blockBytes: Int
        switch dtype {
        case .q4_0: blockBytes = 18
        case .q4_1: blockBytes = 20
        case .q5_0: blockBytes = 22
        default: blockBytes = 24
        }
        for ib in 0..<n / 32 {
            let xb = x + 32 * ib, q = qw + 32 * ib, b = y + blockBytes * ib
            _ = weigh(xb, q, sigma2: sigma2, start: 0, count: 32, into: weight)
            var qsOffset = 2
            switch dtype {
            case .q4_0, .q5_0:
                let d = L.withMemoryRebound(to: Int8.self, capacity: 32) { makeQX(32, dtype == .q4_0 ? 8 : 16, xb, $0, weight) }
                store(d, b, 0)
                qsOffset = dtype == .q4_0 ? 2 : 6
            default:
                let (d, negMin) = KQuants.makeQKX2(32, dtype == .q4_1 ? 15 : 31, xb, weight, L, Laux, rmin: -0.9, rdelta: 0.05, nstep: 36, useMAD: false)
                store(d, b, 0)
                store(-negMin, b, 2)
                qsOffset = dtype == .q4_1 ? 4 : 8
            }
            var qh: UInt32 = 0
            for j in 0..<16 {
                let a = L[j], c = L[j + 16]
                b.storeBytes(of: (a & 0x0F) | (c & 0x0F) << 4, toByteOffset: qsOffset + j, as: UInt8.self)
                qh |= UInt32(a >> 4 & 1) << UInt32(j)
                qh |= UInt32(c >> 4 & 1) << UInt32(j + 16)
            }
            if dtype == .q5_0 || dtype == .q5_1 {
                b.storeBytes(of: qh.littleEndian, toByteOffset: dtype == .q5_0 ? 2 : 4, as: UInt32.self)
            }
        }
    }

    /// llama.cpp's importance of each value, w = qw·sqrt(σ² + x²), for the `count` values from
    /// `start` into weights[0..<count]; returns Σw, added in order (every type's per-block
    /// weights and the sub-block sums its scale search takes).
    @inline(__always)
    static func weigh(_ x: UnsafePointer<Float>, _ qw: UnsafePointer<Float>, sigma2: Float, start: Int, count: Int,
                      into weights: UnsafeMutablePointer<Float>) -> Float {
        var sum: Float = 0
        for l in 0..<count { weights[l] = qw[start + l] * (sigma2 + x[start + l] * x[start + l]).squareRoot() }
        for l in 0..<count { sum += weights[l] }
        return sum
    }

    // MARK: k-quants (one super-block of 256 values each)

    /// 2-bit planes as q2_k/q3_k store them: byte 32·(e/128) + e%32, bits 2·((e%128)/32).
    static func pack2(_ L: UnsafePointer<UInt8>, _ qs: UnsafeMutableRawPointer) {
        for j in stride(from: 0, to: 256, by: 128) {
            for l in 0..<32 {
                let v = L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6
                qs.storeBytes(of: v, toByteOffset: j / 4 + l, as: UInt8.self)
            }
        }
    }

    /// q2_k: scales[16] (low nibble scale, high nibble min), qs[64], half d, half dmin.
    static func q2K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ qw: UnsafePointer<Float>) {
        var L = [UInt8](repeating: 0, count: 256), Laux = [UInt8](repeating: 0, count: 16)
        var weight = [Float](repeating: 0, count: 16), sw = [Float](repeating: 0, count: 16)
        var scales = [Float](repeating: 0, count: 16), mins = [Float](repeating: 0, count: 16)
        var Ls = [UInt8](repeating: 0, count: 16), Lm = [UInt8](repeating: 0, count: 16)
        var sumX2: Float = 0
        for j in 0..<256 { sumX2 += x[j] * x[j] }
        let sigma2 = sumX2 / 256
        L.withUnsafeMutableBufferPointer { L in
            for j in 0..<16 {
                sw[j] = weigh(x, qw, sigma2: sigma2, start: 16 * j, count: 16, into: &weight)
                let (s, m) = KQuants.makeQKX2(16, 3, x + 16 * j, weight, L.baseAddress! + 16 * j, &Laux, rmin: -0.9, rdelta: 0.05, nstep: 36, useMAD: false)
                scales[j] = s
                mins[j] = m
            }
            var dm = makeQP(16, 15, scales, &Ls, sw)
            var mm = makeQP(16, 15, mins, &Lm, sw)
            store(dm, y, 80)
            store(mm, y, 82)
            dm = stored(dm)
            mm = stored(mm)
            for j in 0..<16 {
                let sc = Ls[j] | Lm[j] << 4
                y.storeBytes(of: sc, toByteOffset: j, as: UInt8.self)
                let d = dm * Float(sc & 0xF)
                if d == 0 { continue }
                let m = mm * Float(sc >> 4)
                for ii in 0..<16 {
                    L[16 * j + ii] = UInt8(Swift.max(0, Swift.min(3, nearestInt((x[16 * j + ii] + m) / d))))
                }
            }
            pack2(L.baseAddress!, y + 16)
        }
    }

    /// q3_k: hmask[32], qs[64], scales[12] (16 six-bit scales offset by 32), half d.
    static func q3K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ qw: UnsafePointer<Float>) {
        var L = [Int8](repeating: 0, count: 256)
        var weight = [Float](repeating: 0, count: 16), sw = [Float](repeating: 0, count: 16)
        var scales = [Float](repeating: 0, count: 16), Ls = [Int8](repeating: 0, count: 16)
        var sumX2: Float = 0
        for j in 0..<256 { sumX2 += x[j] * x[j] }
        let sigma2 = 2 * sumX2 / 256
        L.withUnsafeMutableBufferPointer { L in
            for j in 0..<16 {
                sw[j] = weigh(x, qw, sigma2: sigma2, start: 16 * j, count: 16, into: &weight)
                scales[j] = makeQX(16, 4, x + 16 * j, L.baseAddress! + 16 * j, weight)
            }
            var sc = [UInt8](repeating: 0, count: 12)
            let dBlock = makeQX(16, 32, scales, &Ls, sw)
            for j in 0..<16 {
                var l = UInt8(bitPattern: Ls[j])
                if j < 8 { sc[j] = l & 0xF } else { sc[j - 8] |= (l & 0xF) << 4 }
                l >>= 4
                sc[j % 4 + 8] |= l << (2 * (j / 4))
            }
            store(dBlock, y, 108)
            let d0 = stored(dBlock)
            for j in 0..<16 {
                var s = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4
                s |= ((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4
                let d = d0 * Float(Int(s) - 32)
                if d == 0 { continue }
                for ii in 0..<16 {
                    L[16 * j + ii] = Int8(Swift.max(-4, Swift.min(3, nearestInt(x[16 * j + ii] / d))) + 4)
                }
            }
            for i in 0..<12 { y.storeBytes(of: sc[i], toByteOffset: 96 + i, as: UInt8.self) }
            var hmask = [UInt8](repeating: 0, count: 32)
            var m = 0, hm: UInt8 = 1
            var low = [UInt8](repeating: 0, count: 256)
            for j in 0..<256 {
                var v = L[j]
                if v > 3 {
                    hmask[m] |= hm
                    v -= 4
                }
                low[j] = UInt8(v)
                m += 1
                if m == 32 { m = 0; hm <<= 1 }
            }
            for i in 0..<32 { y.storeBytes(of: hmask[i], toByteOffset: i, as: UInt8.self) }
            pack2(low, y + 32)
        }
    }

    /// q4_k / q5_k: half d, half dmin, scales[12] (six-bit scales and mins), [qh[32]], qs[128].
    static func q45K(bits: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ qw: UnsafePointer<Float>) {
        let nmax = bits == 4 ? 15 : 31
        var L = [UInt8](repeating: 0, count: 256), Laux = [UInt8](repeating: 0, count: 32)
        var weights = [Float](repeating: 0, count: 32), sw = [Float](repeating: 0, count: 8)
        var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
        var Ls = [UInt8](repeating: 0, count: 8), Lm = [UInt8](repeating: 0, count: 8)
        var sumX2: Float = 0
        for l in 0..<256 { sumX2 += x[l] * x[l] }
        let sigma2 = 2 * sumX2 / 256
        L.withUnsafeMutableBufferPointer { L in
            for j in 0..<8 {
                sw[j] = weigh(x, qw, sigma2: sigma2, start: 32 * j, count: 32, into: &weights)
                let (s, m) = KQuants.makeQKX2(32, nmax, x + 32 * j, weights, L.baseAddress! + 32 * j, &Laux, rmin: -0.9, rdelta: 0.05, nstep: 36, useMAD: false)
                scales[j] = s
                mins[j] = m
            }
            let dBlock = makeQP(8, 63, scales, &Ls, sw)
            let mBlock = makeQP(8, 63, mins, &Lm, sw)
            var sc = [UInt8](repeating: 0, count: 12)
            for j in 0..<8 {
                // q5_k clamps to 63, q4_k stores make_qp_quants' levels as they are (both are <= 63
                // unless a scale came out negative).
                let ls = bits == 5 ? Swift.min(63, Ls[j]) : Ls[j], lm = bits == 5 ? Swift.min(63, Lm[j]) : Lm[j]
                if j < 4 {
                    sc[j] = ls
                    sc[j + 4] = lm
                } else {
                    sc[j + 4] = (ls & 0xF) | (lm & 0xF) << 4
                    sc[j - 4] |= (ls >> 4) << 6
                    sc[j] |= (lm >> 4) << 6
                }
            }
            store(dBlock, y, 0)
            store(mBlock, y, 2)
            for i in 0..<12 { y.storeBytes(of: sc[i], toByteOffset: 4 + i, as: UInt8.self) }
            let d0 = stored(dBlock), m0 = stored(mBlock)
            for j in 0..<8 {
                let s: UInt8, m: UInt8
                if j < 4 {
                    s = sc[j] & 63
                    m = sc[j + 4] & 63
                } else {
                    s = (sc[j + 4] & 0xF) | (sc[j - 4] >> 6) << 4
                    m = (sc[j + 4] >> 4) | (sc[j] >> 6) << 4
                }
                let d = d0 * Float(s)
                if d == 0 { continue }
                let dm = m0 * Float(m)
                for ii in 0..<32 {
                    L[32 * j + ii] = UInt8(Swift.max(0, Swift.min(Int32(nmax), nearestInt((x[32 * j + ii] + dm) / d))))
                }
            }
            if bits == 4 {
                for j in stride(from: 0, to: 256, by: 64) {
                    for l in 0..<32 { y.storeBytes(of: L[j + l] | L[j + l + 32] << 4, toByteOffset: 16 + j / 2 + l, as: UInt8.self) }
                }
            } else {
                var qh = [UInt8](repeating: 0, count: 32)
                var m1: UInt8 = 1, m2: UInt8 = 2
                for n in stride(from: 0, to: 256, by: 64) {
                    for j in 0..<32 {
                        var l1 = L[n + j], l2 = L[n + j + 32]
                        if l1 > 15 { l1 -= 16; qh[j] |= m1 }
                        if l2 > 15 { l2 -= 16; qh[j] |= m2 }
                        y.storeBytes(of: l1 | l2 << 4, toByteOffset: 48 + n / 2 + j, as: UInt8.self)
                    }
                    m1 <<= 2
                    m2 <<= 2
                }
                for i in 0..<32 { y.storeBytes(of: qh[i], toByteOffset: 16 + i, as: UInt8.self) }
            }
        }
    }

    /// q6_k: ql[128], qh[64], int8 scales[16], half d.
    static func q6K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ qw: UnsafePointer<Float>) {
        var L = [Int8](repeating: 0, count: 256)
        var scales = [Float](repeating: 0, count: 16)
        var maxScale: Float = 0, maxAbsScale: Float = 0
        L.withUnsafeMutableBufferPointer { L in
            for ib in 0..<16 {
                let scale = makeQX(16, 32, x + 16 * ib, L.baseAddress! + 16 * ib, qw + 16 * ib)
                scales[ib] = scale
                if abs(scale) > maxAbsScale { maxAbsScale = abs(scale); maxScale = scale }
            }
            if maxAbsScale < groupMaxEps {
                for i in 0..<210 { y.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
                return
            }
            let iscale = -128 / maxScale
            store(1 / iscale, y, 208)
            let d0 = stored(1 / iscale)
            var sc = [Int8](repeating: 0, count: 16)
            for ib in 0..<16 {
                sc[ib] = Int8(truncatingIfNeeded: Swift.min(127, nearestInt(iscale * scales[ib])))
                y.storeBytes(of: sc[ib], toByteOffset: 192 + ib, as: Int8.self)
            }
            for j in 0..<16 {
                let d = d0 * Float(sc[j])
                if d == 0 { continue }
                for ii in 0..<16 {
                    L[16 * j + ii] = Int8(Swift.max(-32, Swift.min(31, nearestInt(x[16 * j + ii] / d))) + 32)
                }
            }
            for j in stride(from: 0, to: 256, by: 128) {
                let ql = 64 * (j / 128), qh = 128 + 32 * (j / 128)
                for l in 0..<32 {
                    let q1 = UInt8(L[j + l]), q2 = UInt8(L[j + l + 32]), q3 = UInt8(L[j + l + 64]), q4 = UInt8(L[j + l + 96])
                    y.storeBytes(of: (q1 & 0xF) | (q3 & 0xF) << 4, toByteOffset: ql + l, as: UInt8.self)
                    y.storeBytes(of: (q2 & 0xF) | (q4 & 0xF) << 4, toByteOffset: ql + l + 32, as: UInt8.self)
                    y.storeBytes(of: (q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6, toByteOffset: qh + l, as: UInt8.self)
                }
            }
        }
    }
}

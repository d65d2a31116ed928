// The BLAS-backed and packed-product kernels against plain-loop references written here.

import Foundation
import Testing
@testable import Transformer

func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
    var state = seed &* 6364136223846793005 &+ 1442695040888963407
    return (0..<n).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
    }
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

@Suite struct KernelTests {
    @Test func linearMatchesNaiveLoopsForBothLayouts() {
        let T = 5, C = 7, OC = 3
        let x = randomFloats(T * C, seed: 1), wOutIn = randomFloats(OC * C, seed: 2), b = randomFloats(OC, seed: 3)
        var expected = [Float](repeating: 0, count: T * OC)
        for t in 0..<T { for o in 0..<OC {
            var s = b[o]
            for i in 0..<C { s += x[t * C + i] * wOutIn[o * C + i] }
            expected[t * OC + o] = s
        } }
        let got = Kernels.linear(x, T: T, Matrix(data: wOutIn, inFeatures: C, outFeatures: OC, layout: .outIn), bias: b)
        #expect(maxAbsDiff(got, expected) < 1e-5)
        // The same weights stored [C, OC] (Conv1D).
        var wInOut = [Float](repeating: 0, count: C * OC)
        for o in 0..<OC { for i in 0..<C { wInOut[i * OC + o] = wOutIn[o * C + i] } }
        let got2 = Kernels.linear(x, T: T, Matrix(data: wInOut, inFeatures: C, outFeatures: OC, layout: .inOut), bias: b)
        #expect(maxAbsDiff(got2, expected) < 1e-5)
    }

    /// The packed product (weights in panels of 32 columns, AVX-512; sgemm.c) against a
    /// double-precision reference, on shapes with partial panels, row counts that are not
    /// multiples of 8, K across several 512-wide blocks, with and without bias, on 1 and 3
    /// threads; packed at load, packed per product and by column blocks all give the same
    /// bits. Where the CPU lacks AVX-512 (or CKPT_NO_SIMD=1) every path is sgemm, which the
    /// same checks then cover.
    @Test(arguments: [(1, 5, 1), (9, 40, 33), (17, 1100, 70), (3, 512, 64)], [false, true])
    func packedLinearMatchesReferenceAndSgemm(shape: (Int, Int, Int), conv1d: Bool) {
        let (T, C, OC) = shape
        let x = randomFloats(T * C, seed: 11), wOutIn = randomFloats(OC * C, seed: 12), b = randomFloats(OC, seed: 13)
        var w = wOutIn
        if conv1d { for o in 0..<OC { for i in 0..<C { w[i * OC + o] = wOutIn[o * C + i] } } }
        let plain = Matrix(data: w, inFeatures: C, outFeatures: OC, layout: conv1d ? .inOut : .outIn)
        let packed = plain.packed()
        #expect(packed.panels == nil || packed.data.isEmpty)
        let saved = Transformers.threads
        defer { Transformers.threads = saved }
        for bias in [nil, b] {
            var reference = [Double](repeating: 0, count: T * OC)
            var scale = [Double](repeating: 0, count: T)  // Σ|x·w| per row: the rounding scale
            for t in 0..<T { for o in 0..<OC {
                var s = Double(bias?[o] ?? 0), a = abs(s)
                for i in 0..<C { let p = Double(x[t * C + i]) * Double(wOutIn[o * C + i]); s += p; a += abs(p) }
                reference[t * OC + o] = s
                scale[t] = max(scale[t], a)
            } }
            // A matrix not packed at load is packed for the product: the same bits.
            let unpacked = Kernels.linear(x, T: T, plain, bias: bias)
            for threads in [1, 3] {
                Transformers.threads = threads
                let got = Kernels.linear(x, T: T, packed, bias: bias)
                #expect(got == unpacked)
                for t in 0..<T { for o in 0..<OC {
                    // An f32 sum of C products: within C·2^-24 of the row's magnitude.
                    let bound = scale[t] * Double(C + 1) * 0x1p-24
                    #expect(abs(Double(got[t * OC + o]) - reference[t * OC + o]) <= bound)
                } }
                // Columns by blocks (a streamed head) equal the one product, bit for bit when packed.
                if !conv1d, bias == nil {
                    var byBlocks = [Float](repeating: 0, count: T * OC)
                    wOutIn.withUnsafeBufferPointer { wp in
                        var first = 0
                        while first < OC {
                            let n = min(13, OC - first)
                            Kernels.linearColumns(x, T: T, C: C, weightRows: UnsafeBufferPointer(rebasing: wp[first * C..<(first + n) * C]),
                                                  count: n, into: &byBlocks, column: first, total: OC)
                            first += n
                        }
                    }
                    if packed.panels != nil {
                        #expect(byBlocks == got)
                    } else {
                        // sgemm's kernels for each block's last columns may round differently.
                        #expect(maxAbsDiff(byBlocks, got) <= 1e-5 * (got.map { abs($0) }.max() ?? 1))
                    }
                }
            }
        }
    }

    /// A tied head keeps the token table only as panels: its rows read back exactly.
    @Test func embeddingRowsReadBackFromPackedPanels() {
        let V = 70, C = 9
        let table = randomFloats(V * C, seed: 21)
        let m = Matrix(data: table, inFeatures: C, outFeatures: V, layout: .outIn).packed()
        let ids = [0, 31, 32, 69, 5, 5]
        let want = Kernels.embed(table, C: C, ids: ids)
        if let panels = m.panels { #expect(Kernels.embed(panels, C: C, ids: ids) == want) }
    }

    func naiveAttention(q: [Float], k: [Float], v: [Float], _ s: Kernels.AttentionShape) -> [Float] {
        var out = [Float](repeating: 0, count: s.T * s.NH * s.hs)
        for h in 0..<s.NH {
            let kvh = h / (s.NH / s.NKV)
            for i in 0..<s.T {
                var scores = [Double](repeating: -.infinity, count: s.T)
                for j in 0..<s.T {
                    if s.causal && j > i { continue }
                    if let w = s.window, j <= i - w { continue }
                    var dot = 0.0
                    for d in 0..<s.hs { dot += Double(q[(i * s.NH + h) * s.hs + d]) * Double(k[(j * s.NKV + kvh) * s.hs + d]) }
                    scores[j] = dot / Double(s.hs).squareRoot()
                }
                let m = scores.max()!
                let e = scores.map { exp($0 - m) }
                let z = e.reduce(0, +)
                for d in 0..<s.hs {
                    var acc = 0.0
                    for j in 0..<s.T { acc += e[j] / z * Double(v[(j * s.NKV + kvh) * s.hs + d]) }
                    out[(i * s.NH + h) * s.hs + d] = Float(acc)
                }
            }
        }
        return out
    }

    @Test(arguments: [
        Kernels.AttentionShape(T: 6, NH: 4, NKV: 4, hs: 5, causal: false, window: nil),
        Kernels.AttentionShape(T: 9, NH: 4, NKV: 2, hs: 6, causal: true, window: nil),
        Kernels.AttentionShape(T: 9, NH: 6, NKV: 1, hs: 4, causal: true, window: 3),
    ])
    func attentionMatchesNaiveReference(_ s: Kernels.AttentionShape) {
        let q = randomFloats(s.T * s.NH * s.hs, seed: 4), k = randomFloats(s.T * s.NKV * s.hs, seed: 5)
        let v = randomFloats(s.T * s.NKV * s.hs, seed: 6)
        #expect(maxAbsDiff(Kernels.attention(q: q, k: k, v: v, s), naiveAttention(q: q, k: k, v: v, s)) < 1e-5)
    }

    @Test func layerNormAndRMSNormMatchTheirDefinitions() {
        let x: [Float] = [1, 2, 3, 4, -1, 0, 1, 10]
        let ln = Kernels.layerNorm(x, T: 2, C: 4, weight: [1, 1, 1, 1], bias: [0, 0, 0, 1], eps: 0)
        // Row [1,2,3,4]: mean 2.5, variance 1.25.
        let sd: Float = Float(1.25).squareRoot()
        #expect(abs(ln[0] + 1.5 / sd) < 1e-6)
        #expect(abs(ln[3] - (1.5 / sd + 1)) < 1e-6)
        let rms = Kernels.rmsNorm(x, T: 2, C: 4, weight: [2, 2, 2, 2], eps: 0)
        let r: Float = Float(7.5).squareRoot()
        #expect(abs(rms[0] - 2 / r) < 1e-6)
    }

    @Test func ropeRotatesPairsHalfAHeadApart() {
        // One head of size 4, position 1, inverse frequencies [1, 0.5].
        var x: [Float] = [0, 0, 0, 0, 1, 2, 3, 4]
        let (c, s) = Kernels.ropeTables(T: 2, invFreq: [1, 0.5])
        Kernels.rope(&x, T: 2, heads: 1, hs: 4, cos: c, sin: s)
        let c1 = Float(cos(1.0)), s1 = Float(sin(1.0)), ch = Float(cos(0.5)), sh = Float(sin(0.5))
        #expect(abs(x[4] - (1 * c1 - 3 * s1)) < 1e-6)
        #expect(abs(x[6] - (3 * c1 + 1 * s1)) < 1e-6)
        #expect(abs(x[5] - (2 * ch - 4 * sh)) < 1e-6)
    }
}

@Suite struct VectorMathTests {
    @Test func expIsWithinTwoUlpOfLibm() {
        var xs: [Float] = stride(from: Float(-87), through: 88, by: 0.0137).map { $0 } + [0, -0.0, 1e-8, -1e-8, 0.5, -0.5]
        let want = xs.map { Foundation.exp($0) }
        VectorMath.exp(&xs)
        for (got, w) in zip(xs, want) {
            #expect(abs(got - w) <= 2 * w.ulp, "exp: \(got) vs \(w)")
        }
    }

    @Test func activationsMatchTheirScalarDefinitions() {
        let xs = randomFloats(1003, seed: 9).map { $0 * 8 }
        var g = xs
        VectorMath.geluTanh(&g)
        for (x, y) in zip(xs, g) {
            let k = Float((2 / Double.pi).squareRoot())
            let want = 0.5 * x * (1 + tanh(k * (x + 0.044715 * x * x * x)))
            #expect(abs(y - want) <= 2e-6 * max(1, abs(want)))
        }
        var s = xs
        s.withUnsafeMutableBufferPointer { VectorMath.silu($0) }
        for (x, y) in zip(xs, s) { #expect(abs(y - x / (1 + Foundation.exp(-x))) <= 2e-6 * max(1, abs(x))) }
    }
}

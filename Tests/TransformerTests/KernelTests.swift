// The BLAS-backed kernels against plain-loop references written here.

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

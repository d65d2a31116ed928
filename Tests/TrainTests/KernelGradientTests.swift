// Each training kernel's backward pass against central finite differences of its forward pass,
// and the BLAS forward kernels against naive loops (the references STYLE.md asks to keep).

import CkptCore
import Foundation
import Testing
@testable import Transformer
@testable import Train

/// Deterministic pseudo-random floats in [-scale, scale).
func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) * scale }
}

/// Central differences of `f` at `x`, one coordinate at a time.
func numericGradient(_ x: [Float], eps: Float = 1e-2, _ f: ([Float]) -> Double) -> [Double] {
    (0..<x.count).map { i in
        var a = x, b = x
        a[i] += eps
        b[i] -= eps
        return (f(a) - f(b)) / Double(2 * eps)
    }
}

/// max |analytic - numeric| / max |numeric|.
func gradientError(_ analytic: [Float], _ numeric: [Double]) -> Double {
    let diff = zip(analytic, numeric).map { abs(Double($0) - $1) }.max() ?? 0
    return diff / max(numeric.map { abs($0) }.max() ?? 0, 1e-12)
}

/// Calls `body` with one FloatBuffer per array. A buffer's pointer is valid only while the
/// buffer lives: `FloatBuffer(x).p` as a call argument may be freed before the call runs.
func withBuffers<R>(_ arrays: [Float]..., body: ([FloatBuffer]) -> R) -> R {
    let bufs = arrays.map { FloatBuffer($0) }
    return withExtendedLifetime(bufs) { body(bufs) }
}

/// Σ w·out: a scalar whose gradient with respect to `out` is `w`.
func dot(_ out: FloatBuffer, _ w: [Float]) -> Double {
    zip(out.array, w).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
}

@Suite struct KernelGradientTests {
    init() { singleThreadedBLAS }

    let tolerance = 2e-3

    @Test func layerNorm() {
        let N = 3, C = 6
        let x0 = randomFloats(N * C, seed: 1, scale: 2), w0 = randomFloats(C, seed: 2), b0 = randomFloats(C, seed: 3)
        let dout = randomFloats(N * C, seed: 4)
        let out = FloatBuffer(count: N * C), m = FloatBuffer(count: N), r = FloatBuffer(count: N)
        func forward(_ x: [Float], _ w: [Float], _ b: [Float]) -> Double {
            withBuffers(x, w, b) { v in
                TrainKernels.layerNormForward(out.p, mean: m.p, rstd: r.p, inp: v[0].p, weight: v[1].p, bias: v[2].p, N: N, C: C, eps: 1e-5)
                return dot(out, dout)
            }
        }
        _ = forward(x0, w0, b0)  // leaves mean and rstd of x0 in m and r
        let dx = FloatBuffer(count: N * C), dw = FloatBuffer(count: C), db = FloatBuffer(count: C)
        withBuffers(x0, w0, dout) { v in
            TrainKernels.layerNormBackward(dinp: dx.p, dweight: dw.p, dbias: db.p, dout: v[2].p, inp: v[0].p,
                                           weight: v[1].p, mean: m.p, rstd: r.p, N: N, C: C)
        }
        #expect(gradientError(dx.array, numericGradient(x0) { forward($0, w0, b0) }) < tolerance)
        #expect(gradientError(dw.array, numericGradient(w0) { forward(x0, $0, b0) }) < tolerance)
        #expect(gradientError(db.array, numericGradient(b0) { forward(x0, w0, $0) }) < tolerance)
    }

    @Test(arguments: [WeightLayout.inOut, .outIn])
    func matmul(_ layout: WeightLayout) {
        let N = 3, C = 4, OC = 5
        let x0 = randomFloats(N * C, seed: 5), w0 = randomFloats(C * OC, seed: 6), b0 = randomFloats(OC, seed: 7)
        let dout = randomFloats(N * OC, seed: 8)
        func forward(_ x: [Float], _ w: [Float], _ b: [Float]) -> FloatBuffer {
            let out = FloatBuffer(count: N * OC)
            withBuffers(x, w, b) { v in
                TrainKernels.matmulForward(out.p, inp: v[0].p, weight: v[1].p, bias: v[2].p, N: N, C: C, OC: OC, layout: layout)
            }
            return out
        }
        // Naive reference of the forward pass.
        let out = forward(x0, w0, b0)
        for n in 0..<N {
            for o in 0..<OC {
                var s = b0[o]
                for c in 0..<C { s += x0[n * C + c] * (layout == .inOut ? w0[c * OC + o] : w0[o * C + c]) }
                #expect(abs(out[n * OC + o] - s) < 1e-5)
            }
        }
        let dx = FloatBuffer(count: N * C), dw = FloatBuffer(count: C * OC), db = FloatBuffer(count: OC)
        withBuffers(x0, w0, dout) { v in
            TrainKernels.matmulBackward(dinp: dx.p, dweight: dw.p, dbias: db.p, dout: v[2].p, inp: v[0].p,
                                        weight: v[1].p, N: N, C: C, OC: OC, layout: layout)
        }
        #expect(gradientError(dx.array, numericGradient(x0) { dot(forward($0, w0, b0), dout) }) < tolerance)
        #expect(gradientError(dw.array, numericGradient(w0) { dot(forward(x0, $0, b0), dout) }) < tolerance)
        #expect(gradientError(db.array, numericGradient(b0) { dot(forward(x0, w0, $0), dout) }) < tolerance)
    }

    @Test func attention() {
        let B = 2, T = 4, C = 6, NH = 2, hs = C / NH
        let qkv0 = randomFloats(B * T * 3 * C, seed: 9, scale: 1.5), dout = randomFloats(B * T * C, seed: 10)
        func forward(_ qkv: [Float]) -> (FloatBuffer, FloatBuffer) {
            let out = FloatBuffer(count: B * T * C), att = FloatBuffer(count: B * NH * T * T)
            withBuffers(qkv) { v in TrainKernels.attentionForward(out.p, att: att.p, qkv: v[0].p, B: B, T: T, NH: NH, NKV: NH, hs: hs, scale: 1 / Float(hs).squareRoot()) }
            return (out, att)
        }
        // Naive reference: causal softmax(q·kᵀ/√hs)·v per batch and head.
        let (out, att) = forward(qkv0)
        for b in 0..<B {
            for h in 0..<NH {
                for i in 0..<T {
                    func at(_ t: Int, _ part: Int, _ d: Int) -> Float { qkv0[(b * T + t) * 3 * C + part * C + h * hs + d] }
                    var scores = (0...i).map { j in (0..<hs).reduce(Float(0)) { $0 + at(i, 0, $1) * at(j, 1, $1) } / Float(hs).squareRoot() }
                    let m = scores.max()!
                    scores = scores.map { expf($0 - m) }
                    let z = scores.reduce(0, +)
                    for d in 0..<hs {
                        let want = (0...i).reduce(Float(0)) { $0 + scores[$1] / z * at($1, 2, d) }
                        #expect(abs(out[(b * T + i) * C + h * hs + d] - want) < 1e-5)
                    }
                    for j in 0..<T {
                        let want: Float = j <= i ? scores[j] / z : 0
                        #expect(abs(att[((b * NH + h) * T + i) * T + j] - want) < 1e-6)
                    }
                }
            }
        }
        let dqkv = FloatBuffer(count: B * T * 3 * C), scratch = FloatBuffer(count: 2 * T * T)
        withBuffers(dout, qkv0) { v in
            TrainKernels.attentionBackward(dqkv: dqkv.p, dout: v[0].p, qkv: v[1].p, att: att.p, scratch: scratch.p,
                                           B: B, T: T, NH: NH, NKV: NH, hs: hs, scale: 1 / Float(hs).squareRoot())
        }
        #expect(gradientError(dqkv.array, numericGradient(qkv0) { dot(forward($0).0, dout) }) < tolerance)
    }

    /// Grouped-query attention (3 query heads per key/value head, MQA at NKV 1) with a custom scale.
    @Test(arguments: [2, 1])
    func groupedQueryAttention(_ NKV: Int) {
        let B = 2, T = 4, hs = 3, NH = 6, W = (NH + 2 * NKV) * hs, group = NH / NKV, scale: Float = 0.4
        let qkv0 = randomFloats(B * T * W, seed: 21, scale: 1.5), dout = randomFloats(B * T * NH * hs, seed: 22)
        func forward(_ qkv: [Float]) -> FloatBuffer {
            let out = FloatBuffer(count: B * T * NH * hs), att = FloatBuffer(count: B * NH * T * T)
            withBuffers(qkv) { v in TrainKernels.attentionForward(out.p, att: att.p, qkv: v[0].p, B: B, T: T, NH: NH, NKV: NKV, hs: hs, scale: scale) }
            return out
        }
        // Naive reference: query head h attends with key/value head h / group.
        let out = forward(qkv0)
        for b in 0..<B {
            for h in 0..<NH {
                let g = h / group
                func q(_ t: Int, _ d: Int) -> Float { qkv0[(b * T + t) * W + h * hs + d] }
                func k(_ t: Int, _ d: Int) -> Float { qkv0[(b * T + t) * W + NH * hs + g * hs + d] }
                func v(_ t: Int, _ d: Int) -> Float { qkv0[(b * T + t) * W + (NH + NKV) * hs + g * hs + d] }
                for i in 0..<T {
                    var scores = (0...i).map { j in (0..<hs).reduce(Float(0)) { $0 + q(i, $1) * k(j, $1) } * scale }
                    let m = scores.max()!
                    scores = scores.map { expf($0 - m) }
                    let z = scores.reduce(0, +)
                    for d in 0..<hs {
                        let want = (0...i).reduce(Float(0)) { $0 + scores[$1] / z * v($1, d) }
                        #expect(abs(out[(b * T + i) * NH * hs + h * hs + d] - want) < 1e-5)
                    }
                }
            }
        }
        let att = FloatBuffer(count: B * NH * T * T), o = FloatBuffer(count: B * T * NH * hs)
        withBuffers(qkv0) { v in TrainKernels.attentionForward(o.p, att: att.p, qkv: v[0].p, B: B, T: T, NH: NH, NKV: NKV, hs: hs, scale: scale) }
        let dqkv = FloatBuffer(count: B * T * W), scratch = FloatBuffer(count: 2 * T * T)
        withBuffers(dout, qkv0) { v in
            TrainKernels.attentionBackward(dqkv: dqkv.p, dout: v[0].p, qkv: v[1].p, att: att.p, scratch: scratch.p,
                                           B: B, T: T, NH: NH, NKV: NKV, hs: hs, scale: scale)
        }
        #expect(gradientError(dqkv.array, numericGradient(qkv0) { dot(forward($0), dout) }) < tolerance)
    }

    @Test func rmsNorm() {
        let N = 3, C = 6
        let x0 = randomFloats(N * C, seed: 23, scale: 2), w0 = randomFloats(C, seed: 24)
        let dout = randomFloats(N * C, seed: 25)
        let out = FloatBuffer(count: N * C), r = FloatBuffer(count: N)
        func forward(_ x: [Float], _ w: [Float]) -> Double {
            withBuffers(x, w) { v in
                TrainKernels.rmsNormForward(out.p, rstd: r.p, inp: v[0].p, weight: v[1].p, N: N, C: C, eps: 1e-6)
                return dot(out, dout)
            }
        }
        _ = forward(x0, w0)
        // Naive reference: x / √(mean(x²) + eps) · w.
        for n in 0..<N {
            let row = Array(x0[n * C..<(n + 1) * C])
            let s = 1 / (row.map { $0 * $0 }.reduce(0, +) / Float(C) + 1e-6).squareRoot()
            for i in 0..<C { #expect(abs(out[n * C + i] - row[i] * s * w0[i]) < 1e-5) }
        }
        let dx = FloatBuffer(count: N * C), dw = FloatBuffer(count: C)
        withBuffers(x0, w0, dout) { v in
            TrainKernels.rmsNormBackward(dinp: dx.p, dweight: dw.p, dout: v[2].p, inp: v[0].p, weight: v[1].p, rstd: r.p, N: N, C: C)
        }
        #expect(gradientError(dx.array, numericGradient(x0) { forward($0, w0) }) < tolerance)
        #expect(gradientError(dw.array, numericGradient(w0) { forward(x0, $0) }) < tolerance)
    }

    /// Rotary positions (partial rotary: 4 of 6 channels, rows wider than the rotated heads): the
    /// forward against the rotate-half formula, and the backward (rotation by −θ) against
    /// finite differences; rotating by θ then −θ is the identity.
    @Test func rope() throws {
        let B = 2, T = 5, heads = 3, hs = 6, rot = 4, stride = heads * hs + 2
        let spec = RopeSpec(theta: 100, rotaryDim: rot, scaling: .yarn(factor: 4, originalMax: 2, betaFast: 32, betaSlow: 1, attentionFactor: 1.2, truncate: true))
        let (cos, sin) = spec.tables(T: T)
        let x0 = randomFloats(B * T * stride, seed: 26), dout = randomFloats(B * T * stride, seed: 27)
        func forward(_ x: [Float]) -> FloatBuffer {
            let b = FloatBuffer(x)
            TrainKernels.rope(b.p, B: B, T: T, heads: heads, hs: hs, rotaryDim: rot, stride: stride, cos: cos, sin: sin, inverse: false)
            return b
        }
        let out = forward(x0)
        for b in 0..<B {
            for t in 0..<T {
                for h in 0..<heads {
                    let base = (b * T + t) * stride + h * hs
                    for i in 0..<rot / 2 {
                        let c = cos[t * rot / 2 + i], s = sin[t * rot / 2 + i], a = x0[base + i], bb = x0[base + i + rot / 2]
                        #expect(abs(out[base + i] - (a * c - bb * s)) < 1e-6)
                        #expect(abs(out[base + i + rot / 2] - (bb * c + a * s)) < 1e-6)
                    }
                    for i in rot..<hs { #expect(out[base + i] == x0[base + i]) }
                }
            }
        }
        let d = FloatBuffer(dout)
        TrainKernels.rope(d.p, B: B, T: T, heads: heads, hs: hs, rotaryDim: rot, stride: stride, cos: cos, sin: sin, inverse: true)
        #expect(gradientError(d.array, numericGradient(x0) { dot(forward($0), dout) }) < tolerance)
    }

    @Test(arguments: [Activation.silu, .geluExact, .relu, .geluTanh])
    func activationsAndGating(_ act: Activation) {
        let n = 17
        let g0 = randomFloats(n, seed: 28, scale: 3).map { abs($0) < 0.05 ? 0.3 : $0 }  // away from ReLU's kink
        let u0 = randomFloats(n, seed: 29, scale: 2), dout = randomFloats(n, seed: 30)
        func plain(_ x: [Float]) -> FloatBuffer {
            let out = FloatBuffer(count: n)
            withBuffers(x) { v in TrainKernels.activationForward(act, out.p, inp: v[0].p, count: n) }
            return out
        }
        // Naive references.
        let ref: (Float) -> Float = {
            switch act {
            case .silu: return { $0 / (1 + expf(-$0)) }
            case .geluExact: return { 0.5 * $0 * (1 + erff($0 / Float(2).squareRoot())) }
            case .relu: return { max($0, 0) }
            case .geluTanh: return { 0.5 * $0 * (1 + tanhf(0.7978845608 * ($0 + 0.044715 * $0 * $0 * $0))) }
            }
        }()
        let out = plain(g0)
        for i in 0..<n { #expect(abs(out[i] - ref(g0[i])) < 1e-5) }
        let dx = FloatBuffer(count: n)
        withBuffers(g0, dout) { v in TrainKernels.activationBackward(act, dinp: dx.p, inp: v[0].p, dout: v[1].p, count: n) }
        #expect(gradientError(dx.array, numericGradient(g0, eps: 1e-3) { dot(plain($0), dout) }) < tolerance)
        // Gated: act(gate) ∘ up.
        func gated(_ g: [Float], _ u: [Float]) -> FloatBuffer {
            let out = plain(g)
            withBuffers(u) { v in TrainKernels.multiply(out.p, v[0].p, count: n) }
            return out
        }
        let dg = FloatBuffer(count: n), du = FloatBuffer(count: n)
        withBuffers(dout, g0, u0) { v in TrainKernels.gatedBackward(act, dgate: dg.p, dup: du.p, dout: v[0].p, gate: v[1].p, up: v[2].p, count: n) }
        #expect(gradientError(dg.array, numericGradient(g0, eps: 1e-3) { dot(gated($0, u0), dout) }) < tolerance)
        #expect(gradientError(du.array, numericGradient(u0, eps: 1e-3) { dot(gated(g0, $0), dout) }) < tolerance)
    }

    @Test func gelu() {
        let n = 19
        let x0 = randomFloats(n, seed: 11, scale: 4), dout = randomFloats(n, seed: 12)
        func forward(_ x: [Float]) -> FloatBuffer {
            let out = FloatBuffer(count: x.count)
            withBuffers(x) { v in TrainKernels.geluForward(out.p, inp: v[0].p, count: x.count) }
            return out
        }
        // Naive reference: the tanh form, with libm's tanhf.
        let out = forward(x0)
        for i in 0..<n {
            let x = x0[i]
            #expect(abs(out[i] - 0.5 * x * (1 + tanhf(0.7978845608 * (x + 0.044715 * x * x * x)))) < 1e-6)
        }
        let dx = FloatBuffer([Float](repeating: 1, count: n))  // backward accumulates onto 1
        withBuffers(x0, dout) { v in TrainKernels.geluBackward(dinp: dx.p, inp: v[0].p, dout: v[1].p, count: n) }
        #expect(gradientError(dx.array.map { $0 - 1 }, numericGradient(x0, eps: 1e-3) { dot(forward($0), dout) }) < tolerance)
    }

    @Test func encoderAndResidual() {
        let B = 2, T = 3, C = 4, V = 5
        let ids = [1, 4, 1, 0, 1, 3]  // token 1 three times: its gradient rows must add up
        let wte0 = randomFloats(V * C, seed: 13), wpe0 = randomFloats(T * C, seed: 14), dout = randomFloats(B * T * C, seed: 15)
        func forward(_ wte: [Float], _ wpe: [Float]) -> FloatBuffer {
            let out = FloatBuffer(count: B * T * C)
            withBuffers(wte, wpe) { v in TrainKernels.encoderForward(out.p, ids: ids, wte: v[0].p, wpe: v[1].p, B: B, T: T, C: C) }
            return out
        }
        let dwte = FloatBuffer(count: V * C), dwpe = FloatBuffer(count: T * C)
        withBuffers(dout) { v in TrainKernels.encoderBackward(dwte: dwte.p, dwpe: dwpe.p, dout: v[0].p, ids: ids, B: B, T: T, C: C) }
        #expect(gradientError(dwte.array, numericGradient(wte0) { dot(forward($0, wpe0), dout) }) < tolerance)
        #expect(gradientError(dwpe.array, numericGradient(wpe0) { dot(forward(wte0, $0), dout) }) < tolerance)

        let a = FloatBuffer(count: 4), b = FloatBuffer(count: 4)
        withBuffers([1, 2, 3, 4]) { v in TrainKernels.residualBackward(da: a.p, db: b.p, dout: v[0].p, count: 4) }
        #expect(a.array == [1, 2, 3, 4] && b.array == [1, 2, 3, 4])
    }

    @Test(arguments: [Float(1), 2, 4])
    func distillationLoss(_ tau: Float) {
        let N = 3, V = 7
        let s0 = randomFloats(N * V, seed: 16, scale: 3), t0 = randomFloats(N * V, seed: 17, scale: 3)
        let d = FloatBuffer(count: N * V)
        func loss(_ s: [Float], _ t: [Float], _ d: FloatBuffer?) -> Double {
            withBuffers(s, t) { v in
                TrainKernels.distillationLoss(dlogits: d?.p, student: v[0].p, teacher: v[1].p, N: N, V: V, tau: tau)
            }
        }
        #expect(loss(s0, t0, d) > 0)
        #expect(abs(loss(t0, t0, nil)) < 1e-12)  // KL of a distribution with itself
        #expect(gradientError(d.array, numericGradient(s0) { loss($0, t0, nil) }) < tolerance)
    }

    @Test func meanSquaredError() {
        let h0 = randomFloats(8, seed: 18), target = randomFloats(8, seed: 19)
        let d = FloatBuffer(count: 8)
        func loss(_ h: [Float], _ d: FloatBuffer?) -> Double {
            withBuffers(h, target) { v in TrainKernels.meanSquaredError(dh: d?.p, h: v[0].p, target: v[1].p, count: 8, weight: 0.7) }
        }
        _ = loss(h0, d)
        #expect(gradientError(d.array, numericGradient(h0) { loss($0, nil) }) < tolerance)
    }
}

// The training kernels, llm.c-style: each layer's forward and backward pass as a small function
// over raw f32 pointers whose shapes are in the comments. Backward functions *accumulate* (+=)
// into their gradient outputs, so a buffer read by two consumers (the tied wte, a residual
// stream) gets both contributions; the caller zeroes gradients once per step.
//
// Legend: B batch, T tokens, N = B·T rows, C channels, OC output channels, NH heads, hs head
// size (C = NH·hs), I MLP width, V vocabulary. Matrix products call OpenBLAS's sgemm (row-major);
// everything else is plain loops. Naive references of every kernel and finite-difference checks
// of every backward live in Tests/TrainTests.
//
// SAFETY (all functions here): each pointer argument addresses at least the elements its comment
// gives (callers size FloatBuffers from the same B, T, C, ...), and outputs do not alias inputs
// unless the comment says so. See FloatBuffer.swift.

import COpenBLAS
import Foundation
import Transformer

typealias Ptr = UnsafeMutablePointer<Float>
typealias CPtr = UnsafePointer<Float>

/// How a weight matrix is stored.
///   .inOut [C, OC] (GPT-2's Conv1D: y = x·W)     .outIn [OC, C] (nn.Linear, the tied head: y = x·Wᵀ)
enum WeightLayout: Sendable { case inOut, outIn }

enum TrainKernels {
    // MARK: embeddings

    /// out[B, T, C] = wte[ids[b, t]] (+ wpe[t]).   ids [B·T], wte [V, C], wpe [maxT, C] or nil
    static func encoderForward(_ out: Ptr, ids: [Int], wte: CPtr, wpe: CPtr?, B: Int, T: Int, C: Int) {
        for b in 0..<B {
            for t in 0..<T {
                let o = out + (b * T + t) * C
                let e = wte + ids[b * T + t] * C
                if let wpe {
                    let p = wpe + t * C
                    for i in 0..<C { o[i] = e[i] + p[i] }
                } else {
                    for i in 0..<C { o[i] = e[i] }
                }
            }
        }
    }

    /// dwte[ids[b, t]] += dout[b, t]; dwpe[t] += dout[b, t].   dout [B, T, C]
    static func encoderBackward(dwte: Ptr, dwpe: Ptr?, dout: CPtr, ids: [Int], B: Int, T: Int, C: Int) {
        for b in 0..<B {
            for t in 0..<T {
                let d = dout + (b * T + t) * C
                let e = dwte + ids[b * T + t] * C
                for i in 0..<C { e[i] += d[i] }
                if let dwpe {
                    let p = dwpe + t * C
                    for i in 0..<C { p[i] += d[i] }
                }
            }
        }
    }

    // MARK: layernorm

    /// out[N, C] = (inp - mean) · rstd · weight + bias, keeping mean[N] and rstd[N] for backward.
    static func layerNormForward(_ out: Ptr, mean: Ptr, rstd: Ptr, inp: CPtr, weight: CPtr, bias: CPtr?,
                                 N: Int, C: Int, eps: Float) {
        for n in 0..<N {
            let x = inp + n * C, o = out + n * C
            var m: Float = 0
            for i in 0..<C { m += x[i] }
            m /= Float(C)
            var v: Float = 0
            for i in 0..<C { let d = x[i] - m; v += d * d }
            v /= Float(C)  // biased variance, as torch.nn.LayerNorm
            let s = 1 / (v + eps).squareRoot()
            for i in 0..<C { o[i] = (x[i] - m) * s * weight[i] + (bias?[i] ?? 0) }
            mean[n] = m
            rstd[n] = s
        }
    }

    /// With x̂ = (x - mean)·rstd and g = dout·weight:
    ///   dweight += Σ_n dout·x̂,  dbias += Σ_n dout,  dinp += rstd · (g - mean(g) - x̂·mean(g·x̂)).
    /// dinp, inp [N, C]; weight, dweight, dbias [C]; mean, rstd [N].
    static func layerNormBackward(dinp: Ptr, dweight: Ptr, dbias: Ptr?, dout: CPtr, inp: CPtr, weight: CPtr,
                                  mean: CPtr, rstd: CPtr, N: Int, C: Int) {
        for n in 0..<N {
            let d = dout + n * C, x = inp + n * C, dx = dinp + n * C
            let m = mean[n], s = rstd[n]
            var gMean: Float = 0, gxMean: Float = 0
            for i in 0..<C {
                let xh = (x[i] - m) * s
                let g = d[i] * weight[i]
                gMean += g
                gxMean += g * xh
            }
            gMean /= Float(C)
            gxMean /= Float(C)
            for i in 0..<C {
                let xh = (x[i] - m) * s
                dbias?[i] += d[i]
                dweight[i] += d[i] * xh
                dx[i] += s * (d[i] * weight[i] - gMean - xh * gxMean)
            }
        }
    }

    // MARK: RMSNorm

    /// out[N, C] = x · rstd · weight with rstd = 1/√(mean(x²) + eps), keeping rstd[N].
    static func rmsNormForward(_ out: Ptr, rstd: Ptr, inp: CPtr, weight: CPtr, N: Int, C: Int, eps: Float) {
        for n in 0..<N {
            let x = inp + n * C, o = out + n * C
            var ss: Float = 0
            for i in 0..<C { ss += x[i] * x[i] }
            let s = 1 / (ss / Float(C) + eps).squareRoot()
            for i in 0..<C { o[i] = x[i] * s * weight[i] }
            rstd[n] = s
        }
    }

    /// With x̂ = x·rstd and g = dout·weight:
    ///   dweight += Σ_n dout·x̂,  dinp += rstd · (g - x̂·mean(g·x̂)).
    /// dinp, inp [N, C]; weight, dweight [C]; rstd [N].
    static func rmsNormBackward(dinp: Ptr, dweight: Ptr, dout: CPtr, inp: CPtr, weight: CPtr, rstd: CPtr, N: Int, C: Int) {
        for n in 0..<N {
            let d = dout + n * C, x = inp + n * C, dx = dinp + n * C
            let s = rstd[n]
            var gxMean: Float = 0
            for i in 0..<C { gxMean += d[i] * weight[i] * x[i] * s }
            gxMean /= Float(C)
            for i in 0..<C {
                let xh = x[i] * s
                dweight[i] += d[i] * xh
                dx[i] += s * (d[i] * weight[i] - xh * gxMean)
            }
        }
    }

    // MARK: matmul

    /// out[N, OC] = inp[N, C] · W (+ bias[OC]); W [C, OC] (.inOut) or [OC, C] (.outIn). Rows of
    /// out are `ldo` apart (≥ OC: a column block of a wider matrix).
    static func matmulForward(_ out: Ptr, inp: CPtr, weight: CPtr, bias: CPtr?, N: Int, C: Int, OC: Int,
                              layout: WeightLayout, ldo: Int? = nil) {
        guard N > 0, OC > 0 else { return }
        let ldo = ldo ?? OC
        if let bias {
            for n in 0..<N { (out + n * ldo).update(from: bias, count: OC) }
        }
        let beta: Float = bias == nil ? 0 : 1
        switch layout {
        case .inOut:
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(OC), Int32(C),
                        1, inp, Int32(C), weight, Int32(OC), beta, out, Int32(ldo))
        case .outIn:
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(OC), Int32(C),
                        1, inp, Int32(C), weight, Int32(C), beta, out, Int32(ldo))
        }
    }

    /// dinp[N, C] += dout[N, OC] · Wᵀ (in the W layout's sense); dweight += inpᵀ · dout (shaped like
    /// W); dbias[OC] += Σ_n dout. dinp may be nil when the input is not trainable. Rows of dout
    /// are `ldd` apart (≥ OC).
    static func matmulBackward(dinp: Ptr?, dweight: Ptr, dbias: Ptr?, dout: CPtr, inp: CPtr, weight: CPtr,
                               N: Int, C: Int, OC: Int, layout: WeightLayout, ldd: Int? = nil) {
        guard N > 0, OC > 0, C > 0 else { return }
        let ldd = ldd ?? OC
        switch layout {
        case .inOut:
            if let dinp {  // [N, OC] · [C, OC]ᵀ
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(C), Int32(OC),
                            1, dout, Int32(ldd), weight, Int32(OC), 1, dinp, Int32(C))
            }
            // dW[C, OC] += inp[N, C]ᵀ · dout[N, OC]
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(C), Int32(OC), Int32(N),
                        1, inp, Int32(C), dout, Int32(ldd), 1, dweight, Int32(OC))
        case .outIn:
            if let dinp {  // [N, OC] · [OC, C]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(C), Int32(OC),
                            1, dout, Int32(ldd), weight, Int32(C), 1, dinp, Int32(C))
            }
            // dW[OC, C] += dout[N, OC]ᵀ · inp[N, C]
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(OC), Int32(C), Int32(N),
                        1, dout, Int32(ldd), inp, Int32(C), 1, dweight, Int32(C))
        }
        if let dbias {
            // Summed row by row in order, so the result does not depend on any thread count.
            for n in 0..<N {
                let d = dout + n * ldd
                for o in 0..<OC { dbias[o] += d[o] }
            }
        }
    }

    // MARK: attention

    /// Causal attention with NKV ≤ NH key/value heads (query head h reads key/value head
    /// h / (NH/NKV): MHA, GQA, MQA). qkv [B, T, W] holds q (NH·hs) | k (NKV·hs) | v (NKV·hs) per
    /// row, W = (NH + 2·NKV)·hs; out [B, T, NH·hs]; att [B, NH, T, T] keeps softmax(scale·q·kᵀ)
    /// (zero above the diagonal).
    static func attentionForward(_ out: Ptr, att: Ptr, qkv: CPtr, B: Int, T: Int, NH: Int, NKV: Int, hs: Int, scale: Float) {
        let W = (NH + 2 * NKV) * hs, CQ = NH * hs, group = NH / NKV
        for b in 0..<B {
            for h in 0..<NH {
                let row0 = qkv + b * T * W, g = h / group
                let q = row0 + h * hs, k = row0 + CQ + g * hs, v = row0 + CQ + NKV * hs + g * hs
                let a = att + (b * NH + h) * T * T
                // a[T, T] = scale · q[T, hs] · k[T, hs]ᵀ
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(hs),
                            scale, q, Int32(W), k, Int32(W), 0, a, Int32(T))
                for i in 0..<T {
                    let row = a + i * T
                    softmaxInPlace(row, count: i + 1)
                    for j in (i + 1)..<T { row[j] = 0 }
                }
                // out_h[T, hs] = a[T, T] · v[T, hs]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            1, a, Int32(T), v, Int32(W), 0, out + b * T * CQ + h * hs, Int32(CQ))
            }
        }
    }

    /// Backward of attentionForward: dqkv [B, T, W] += from dout [B, T, NH·hs]. scratch [2·T·T].
    ///   dA = dout_h · vᵀ;  dv += Aᵀ · dout_h;  dS = A ∘ (dA - rowsum(A ∘ dA))  (softmax);
    ///   dq += scale · dS · k;  dk += scale · dSᵀ · q   (k and v summed over the heads sharing them).
    static func attentionBackward(dqkv: Ptr, dout: CPtr, qkv: CPtr, att: CPtr, scratch: Ptr,
                                  B: Int, T: Int, NH: Int, NKV: Int, hs: Int, scale: Float) {
        let W = (NH + 2 * NKV) * hs, CQ = NH * hs, group = NH / NKV
        let dA = scratch, dS = scratch + T * T
        for b in 0..<B {
            for h in 0..<NH {
                let g = h / group, kOff = CQ + g * hs, vOff = CQ + NKV * hs + g * hs
                let q = qkv + b * T * W + h * hs, k = qkv + b * T * W + kOff, v = qkv + b * T * W + vOff
                let dq = dqkv + b * T * W + h * hs, dk = dqkv + b * T * W + kOff, dv = dqkv + b * T * W + vOff
                let a = att + (b * NH + h) * T * T
                let dout = dout + b * T * CQ + h * hs
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(hs),
                            1, dout, Int32(CQ), v, Int32(W), 0, dA, Int32(T))
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            1, a, Int32(T), dout, Int32(CQ), 1, dv, Int32(W))
                for i in 0..<T {
                    let ar = a + i * T, dar = dA + i * T, dsr = dS + i * T
                    var dot: Float = 0
                    for j in 0...i { dot += ar[j] * dar[j] }
                    for j in 0...i { dsr[j] = ar[j] * (dar[j] - dot) }
                    for j in (i + 1)..<T { dsr[j] = 0 }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            scale, dS, Int32(T), k, Int32(W), 1, dq, Int32(W))
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                            scale, dS, Int32(T), q, Int32(W), 1, dk, Int32(W))
            }
        }
    }

    // MARK: rotary positions

    /// Rotates, in place, the first `rotaryDim` channels of each of the `heads` hs-wide heads at
    /// the start of every row of x [B, T, stride] by the position's angles (rotate-half, as
    /// transformers): (a, b) → (a·cos − b·sin, b·cos + a·sin) with cos, sin [T, rotaryDim/2]
    /// (any scaling, including an attention factor, is already in the tables). `inverse`
    /// rotates by −θ: the backward pass of the rotation, applied to the gradients.
    /// `first`: the position of the rows' first token (a cached decode step rotates one row per
    /// sequence at its position).
    static func rope(_ x: Ptr, B: Int, T: Int, heads: Int, hs: Int, rotaryDim: Int, stride: Int, cos: [Float], sin: [Float], inverse: Bool,
                     first: Int = 0) {
        let half = rotaryDim / 2, sign: Float = inverse ? -1 : 1
        for b in 0..<B {
            for t in 0..<T {
                let row = x + (b * T + t) * stride, p = first + t
                for h in 0..<heads {
                    let base = row + h * hs
                    for i in 0..<half {
                        let c = cos[p * half + i], s = sign * sin[p * half + i]
                        let a = base[i], bb = base[i + half]
                        base[i] = a * c - bb * s
                        base[i + half] = bb * c + a * s
                    }
                }
            }
        }
    }

    // MARK: MLP activations

    /// out = act(inp).   [count]
    static func activationForward(_ act: Activation, _ out: Ptr, inp: CPtr, count: Int) {
        switch act {
        case .geluTanh: geluForward(out, inp: inp, count: count)
        case .geluExact: for i in 0..<count { let x = inp[i]; out[i] = 0.5 * x * (1 + erff(x / Float(2).squareRoot())) }
        case .relu: for i in 0..<count { out[i] = max(inp[i], 0) }
        case .silu: for i in 0..<count { let x = inp[i]; out[i] = x / (1 + expf(-x)) }
        }
    }

    /// act'(x) for one value.
    @inline(__always) static func derivative(_ act: Activation, _ x: Float) -> Float {
        switch act {
        case .geluTanh:
            let u = geluScale * (x + 0.044715 * x * x * x)
            let s = 1 / (1 + expf(-2 * u))
            return s + x * 2 * s * (1 - s) * geluScale * (1 + 3 * 0.044715 * x * x)
        case .geluExact:  // Φ(x) + x·φ(x)
            return 0.5 * (1 + erff(x / Float(2).squareRoot())) + x * expf(-0.5 * x * x) / (2 * Float.pi).squareRoot()
        case .relu: return x > 0 ? 1 : 0
        case .silu:  // σ(x)·(1 + x·(1 − σ(x)))
            let s = 1 / (1 + expf(-x))
            return s * (1 + x * (1 - s))
        }
    }

    @inline(__always) static func value(_ act: Activation, _ x: Float) -> Float {
        switch act {
        case .geluTanh: return x / (1 + expf(-2 * geluScale * (x + 0.044715 * x * x * x)))
        case .geluExact: return 0.5 * x * (1 + erff(x / Float(2).squareRoot()))
        case .relu: return max(x, 0)
        case .silu: return x / (1 + expf(-x))
        }
    }

    /// dinp += dout · act'(inp).   [count]
    static func activationBackward(_ act: Activation, dinp: Ptr, inp: CPtr, dout: CPtr, count: Int) {
        if act == .geluTanh { return geluBackward(dinp: dinp, inp: inp, dout: dout, count: count) }
        for i in 0..<count { dinp[i] += dout[i] * derivative(act, inp[i]) }
    }

    /// x ∘= y.   [count]
    static func multiply(_ x: Ptr, _ y: CPtr, count: Int) {
        for i in 0..<count { x[i] *= y[i] }
    }

    /// Backward of out = act(gate) ∘ up (SwiGLU, GeGLU):
    ///   dup += dout ∘ act(gate);  dgate += dout ∘ up ∘ act'(gate).   [count]
    static func gatedBackward(_ act: Activation, dgate: Ptr, dup: Ptr, dout: CPtr, gate: CPtr, up: CPtr, count: Int) {
        for i in 0..<count {
            let g = gate[i]
            dup[i] += dout[i] * value(act, g)
            dgate[i] += dout[i] * up[i] * derivative(act, g)
        }
    }

    // MARK: GELU (tanh approximation, GPT-2's gelu_new)
    //
    // Written with the logistic function, 0.5·(1 + tanh u) = σ(2u) = 1 / (1 + e^{-2u}), so each
    // value costs one expf. libm's tanhf (through expm1f) was over half of the time of teacher
    // sampling (perf); a SIMD exp was fast when optimised but ~10× slower than this in the debug
    // builds the tests run. e^{-2u} overflowing to +inf for very negative x gives σ = 0: exact.

    static let geluScale: Float = (2 / Float.pi).squareRoot()

    /// out[n] = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) = x·σ(2u).   inp, out [count]
    static func geluForward(_ out: Ptr, inp: CPtr, count: Int) {
        for i in 0..<count {
            let x = inp[i]
            let u = geluScale * (x + 0.044715 * x * x * x)
            out[i] = x / (1 + expf(-2 * u))
        }
    }

    /// dinp += dout · gelu'(inp), with s = σ(2u):
    ///   gelu'(x) = s + x·2s(1-s)·du/dx,  du/dx = √(2/π)·(1 + 3·0.044715·x²)   [count]
    static func geluBackward(dinp: Ptr, inp: CPtr, dout: CPtr, count: Int) {
        for i in 0..<count {
            let x = inp[i]
            let u = geluScale * (x + 0.044715 * x * x * x)
            let s = 1 / (1 + expf(-2 * u))
            let du = geluScale * (1 + 3 * 0.044715 * x * x)
            dinp[i] += dout[i] * (s + x * 2 * s * (1 - s) * du)
        }
    }

    // MARK: residual

    /// out = a + b.   [count]
    /// `x[0..<count] = softmax(x[0..<count])`, max-subtracted, in float with libm's expf: the
    /// causal attention rows of the training forward and of the key/value-cache decoder.
    static func softmaxInPlace(_ x: Ptr, count: Int) {
        var m = -Float.infinity
        for j in 0..<count { m = max(m, x[j]) }
        var sum: Float = 0
        for j in 0..<count { x[j] = expf(x[j] - m); sum += x[j] }
        let inv = 1 / sum
        for j in 0..<count { x[j] *= inv }
    }

    static func residualForward(_ out: Ptr, _ a: CPtr, _ b: CPtr, count: Int) {
        for i in 0..<count { out[i] = a[i] + b[i] }
    }

    /// da += dout; db += dout.   [count]
    static func residualBackward(da: Ptr, db: Ptr, dout: CPtr, count: Int) {
        for i in 0..<count {
            da[i] += dout[i]
            db[i] += dout[i]
        }
    }

    // MARK: losses

    /// log-softmax of one row of logits / tau, into out[V] (Double for the sums).
    static func logSoftmax(_ out: UnsafeMutablePointer<Double>, logits: CPtr, V: Int, tau: Float) {
        var m = -Double.infinity
        for v in 0..<V { m = max(m, Double(logits[v]) / Double(tau)) }
        var sum = 0.0
        for v in 0..<V { sum += Foundation.exp(Double(logits[v]) / Double(tau) - m) }
        let lse = m + Foundation.log(sum)
        for v in 0..<V { out[v] = Double(logits[v]) / Double(tau) - lse }
    }

    /// Distillation loss on temperature-scaled logits, averaged over the N rows and scaled by
    /// τ² (Hinton et al. 2015: keeps the gradient's size independent of τ):
    ///   loss = τ²/N · Σ_n KL(softmax(t_n/τ) ‖ softmax(s_n/τ))
    ///   dlogits[N, V] = scale · τ/N · (softmax(s/τ) - softmax(t/τ))   (written, not accumulated)
    /// student, teacher [N, V]. Returns the loss (times `scale`).
    static func distillationLoss(dlogits: Ptr?, student: CPtr, teacher: CPtr, N: Int, V: Int, tau: Float,
                                 scale: Float = 1) -> Double {
        var ls = [Double](repeating: 0, count: V), lt = ls
        var total = 0.0
        ls.withUnsafeMutableBufferPointer { ls in
            lt.withUnsafeMutableBufferPointer { lt in
                // SAFETY: ls and lt hold V doubles each, alive for this closure.
                let ls = ls.baseAddress!, lt = lt.baseAddress!
                for n in 0..<N {
                    logSoftmax(ls, logits: student + n * V, V: V, tau: tau)
                    logSoftmax(lt, logits: teacher + n * V, V: V, tau: tau)
                    var kl = 0.0
                    for v in 0..<V {
                        let pt = Foundation.exp(lt[v])
                        if pt > 0 { kl += pt * (lt[v] - ls[v]) }
                    }
                    total += kl
                    if let dlogits {
                        let g = Double(scale) * Double(tau) / Double(N)
                        let d = dlogits + n * V
                        for v in 0..<V { d[v] = Float(g * (Foundation.exp(ls[v]) - Foundation.exp(lt[v]))) }
                    }
                }
            }
        }
        return Double(scale) * Double(tau * tau) * total / Double(N)
    }

    /// Hidden-state matching: loss = weight · mean((h - target)²) over `count` values;
    /// dh[count] += 2·weight/count · (h - target). Returns the loss.
    static func meanSquaredError(dh: Ptr?, h: CPtr, target: CPtr, count: Int, weight: Float) -> Double {
        var sum = 0.0
        let g = 2 * weight / Float(count)
        for i in 0..<count {
            let d = h[i] - target[i]
            sum += Double(d) * Double(d)
            if let dh { dh[i] += g * d }
        }
        return Double(weight) * sum / Double(count)
    }
}

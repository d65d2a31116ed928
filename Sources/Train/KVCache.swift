// Incremental decoding for teacher sampling: a key/value cache so that each new token costs one
// position's work (its projections, MLP and head, and attention of its query over the cached
// keys) instead of a forward pass over the whole prefix. Sampling T tokens is then linear in T
// apart from attention's O(T) per step, not O(T²) per step.
//
// Same parts, same parameters and same kernels as `TrainModel.forward` (norms, linears, rope,
// activations), on B rows (one new token per sequence) instead of B·T; only attention differs:
// the new query against the cache's keys [0...t] (keys stored after rotary, as the full forward
// rotates them), softmax computed the same way, values summed with the weights. Results equal
// the full forward's last-position logits up to float rounding (BLAS on other shapes).
//
// A cache is exact only when a position's rotary angles do not depend on the sequence length
// (`RopeSpec.anglesDependOnLength`); `TrainModel.canCache(T:)` says so, and sampling falls back
// to the full-prefix forward otherwise.

import COpenBLAS
import Foundation
import Transformer

/// Keys and values of B sequences of up to `capacity` tokens, per layer [B, capacity, NKV·hs]
/// (keys after rotary), and the scratch buffers of one decode step.
final class KVCache {
    let B, capacity: Int
    /// Tokens cached per sequence (the position of the next token).
    private(set) var length = 0
    let keys, values: [FloatBuffer]
    // One step's rows [B, ·].
    let x, ln, mean, rstd, qkv, atty, proj, fch, up, act, lnf, logits, scores: FloatBuffer

    init(_ m: TrainModel, B: Int, capacity: Int) {
        self.B = B
        self.capacity = capacity
        func f(_ n: Int) -> FloatBuffer { FloatBuffer(count: n) }
        keys = m.blocks.map { f(B * capacity * $0.NKV * $0.hs) }
        values = m.blocks.map { f(B * capacity * $0.NKV * $0.hs) }
        let C = m.shape.C
        let W = m.blocks.map(\.W).max() ?? 0, A = m.blocks.map { $0.NH * $0.hs }.max() ?? 0, I = m.blocks.map(\.I).max() ?? 0
        x = f(B * C); ln = f(B * C); mean = f(B); rstd = f(B); qkv = f(B * W); atty = f(B * A); proj = f(B * C)
        fch = f(B * I); up = f(B * I); act = f(B * I); lnf = f(B * C); logits = f(B * m.shape.V); scores = f(capacity)
    }

    fileprivate func advance() { length += 1 }
}

extension TrainModel {
    /// Whether a key/value cache reproduces the full forward for sequences of up to T tokens.
    func canCache(T: Int) -> Bool {
        !blocks.contains { $0.rope?.anglesDependOnLength(upTo: T) ?? false }
    }

    /// A cache for B sequences of up to `capacity` tokens (≤ maxT).
    func makeCache(B: Int, capacity: Int) -> KVCache {
        precondition(capacity >= 1 && capacity <= shape.maxT, "KVCache: capacity must be in 1...maxT (checked by the caller)")
        return KVCache(self, B: B, capacity: capacity)
    }

    /// Appends one token per sequence (ids [B]) at position `cache.length` and returns the
    /// logits of that position, [B, V] (valid until the next step on this cache).
    @discardableResult
    func decode(_ ids: [Int], cache c: KVCache) -> UnsafePointer<Float> {
        let B = c.B, t = c.length, C = shape.C, P = params.p
        precondition(ids.count == B && t < c.capacity && ids.allSatisfy { $0 >= 0 && $0 < shape.V },
                     "TrainModel.decode: one token below V per sequence, within the cache's capacity (checked by the caller)")
        TrainKernels.encoderForward(c.x.p, ids: ids, wte: P + tok, wpe: pos.map { P + $0 + t * C }, B: B, T: 1, C: C)
        for (l, o) in blocks.enumerated() {
            normForward(o.norm1, out: c.ln.p, mean: c.mean.p, rstd: c.rstd.p, inp: c.x.p, N: B)
            switch o.qkv {
            case .fused(let w): linearForward(w, out: c.qkv.p, inp: c.ln.p, N: B)
            case .split(let q, let k, let v):
                linearForward(q, out: c.qkv.p, ldo: o.W, inp: c.ln.p, N: B)
                linearForward(k, out: c.qkv.p + o.NH * o.hs, ldo: o.W, inp: c.ln.p, N: B)
                linearForward(v, out: c.qkv.p + (o.NH + o.NKV) * o.hs, ldo: o.W, inp: c.ln.p, N: B)
            }
            if let rope = o.rope {
                let (cos, sin) = tables(rope, T: c.capacity)
                TrainKernels.rope(c.qkv.p, B: B, T: 1, heads: o.NH + o.NKV, hs: o.hs, rotaryDim: rope.rotaryDim, stride: o.W,
                                  cos: cos, sin: sin, inverse: false, first: t)
            }
            let KV = o.NKV * o.hs, CQ = o.NH * o.hs, group = o.NH / o.NKV
            for b in 0..<B {
                let row = c.qkv.p + b * o.W
                (c.keys[l].p + (b * c.capacity + t) * KV).update(from: row + CQ, count: KV)
                (c.values[l].p + (b * c.capacity + t) * KV).update(from: row + CQ + KV, count: KV)
            }
            // Attention of each new query over positions 0...t: softmax as attentionForward.
            let n = Int32(t + 1), s = c.scores.p
            for b in 0..<B {
                let K = c.keys[l].p + b * c.capacity * KV, V = c.values[l].p + b * c.capacity * KV
                for h in 0..<o.NH {
                    let g = h / group
                    // s[0...t] = scale · K[0...t, g] · q_h
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, Int32(o.hs), o.scale, K + g * o.hs, Int32(KV),
                                c.qkv.p + b * o.W + h * o.hs, 1, 0, s, 1)
                    TrainKernels.softmaxInPlace(s, count: t + 1)
                    // out_h = V[0...t, g]ᵀ · s
                    cblas_sgemv(CblasRowMajor, CblasTrans, n, Int32(o.hs), 1, V + g * o.hs, Int32(KV), s, 1, 0,
                                c.atty.p + b * CQ + h * o.hs, 1)
                }
            }
            linearForward(o.out, out: c.proj.p, inp: c.atty.p, N: B)
            TrainKernels.residualForward(c.x.p, c.x.p, c.proj.p, count: B * C)
            normForward(o.norm2, out: c.ln.p, mean: c.mean.p, rstd: c.rstd.p, inp: c.x.p, N: B)
            mlpForward(o, out: c.proj.p, fch: c.fch.p, up: c.up.p, act: c.act.p, inp: c.ln.p, N: B)
            TrainKernels.residualForward(c.x.p, c.x.p, c.proj.p, count: B * C)
        }
        normForward(finalNorm, out: c.lnf.p, mean: c.mean.p, rstd: c.rstd.p, inp: c.x.p, N: B)
        TrainKernels.matmulForward(c.logits.p, inp: c.lnf.p, weight: P + head, bias: nil, N: B, C: C, OC: shape.V, layout: .outIn)
        c.advance()
        return UnsafePointer(c.logits.p)
    }
}

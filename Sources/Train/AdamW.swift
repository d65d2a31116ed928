// AdamW (Loshchilov & Hutter 2019: weight decay decoupled from the gradient), with bias
// correction, gradient clipping by global norm, and a linear-warmup + cosine-decay schedule.
//
//   g     = grad · min(1, clip / ‖grad‖₂)                 (global norm over every parameter)
//   m     = β1·m + (1-β1)·g                               v = β2·v + (1-β2)·g²
//   m̂     = m / (1-β1^t)                                  v̂ = v / (1-β2^t)
//   θ    -= lr_t · (m̂ / (√v̂ + ε) + λ·θ)                   λ only for matrices and embeddings
//
// The same update as torch.optim.AdamW (which multiplies θ by 1 - lr·λ before the Adam step,
// identical to first order; here both use the old θ, as llm.c does).

import Foundation

public struct AdamWConfig: Sendable, Equatable {
    public var learningRate: Float = 1e-3
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.01
    /// Clip the global gradient norm to this (nil: no clipping).
    public var clipNorm: Float? = 1.0
    public var warmupSteps: Int = 0
    /// Cosine decay ends at learningRate · minLRFraction on the last step.
    public var minLRFraction: Float = 0.1
    public init() {}
}

/// Learning rate for step `t` (1-based) of `total`: linear warmup from lr/warmup to lr over the
/// first `warmup` steps, then cosine decay to lr·minFraction at step `total`.
public func learningRate(step t: Int, total: Int, _ c: AdamWConfig) -> Float {
    if c.warmupSteps > 0, t <= c.warmupSteps { return c.learningRate * Float(t) / Float(c.warmupSteps) }
    let span = max(1, total - c.warmupSteps)
    let progress = min(1, max(0, Double(t - c.warmupSteps) / Double(span)))
    let minLR = Double(c.learningRate * c.minLRFraction)
    return Float(minLR + 0.5 * (Double(c.learningRate) - minLR) * (1 + cos(Double.pi * progress)))
}

/// The optimiser's moments for a flat parameter buffer.
public final class AdamW {
    public let config: AdamWConfig
    let m: FloatBuffer
    let v: FloatBuffer
    /// Steps taken so far (the bias correction uses step + 1 for the next update).
    public internal(set) var step = 0

    public init(config: AdamWConfig, parameterCount: Int) {
        self.config = config
        m = FloatBuffer(count: parameterCount)
        v = FloatBuffer(count: parameterCount)
    }

    public var moments: (m: [Float], v: [Float]) { (m.array, v.array) }

    public func restore(m: [Float], v: [Float], step: Int) {
        self.m.copy(from: FloatBuffer(m))
        self.v.copy(from: FloatBuffer(v))
        self.step = step
    }

    /// ‖grads‖₂ summed in Double in index order (deterministic).
    static func globalNorm(_ g: FloatBuffer) -> Double {
        var s = 0.0
        for i in 0..<g.count { s += Double(g.p[i]) * Double(g.p[i]) }
        return s.squareRoot()
    }

    /// One update of `model`'s parameters from its gradients. Returns the gradient norm before
    /// clipping.
    @discardableResult
    public func update(_ model: TrainModel, lr: Float) -> Double {
        let params = model.params, grads = model.grads
        precondition(params.count == m.count, "AdamW: moments for \(m.count) parameters, model has \(params.count)")
        let norm = Self.globalNorm(grads)
        var gscale: Float = 1
        if let clip = config.clipNorm, norm > Double(clip) { gscale = Float(Double(clip) / norm) }
        step += 1
        let c = config
        let bc1 = 1 - pow(c.beta1, Float(step)), bc2 = 1 - pow(c.beta2, Float(step))
        let P = params.p, G = grads.p, M = m.p, Vv = v.p
        for slot in model.layout.slots {
            let wd = slot.decays ? c.weightDecay : 0
            for i in slot.offset..<slot.offset + slot.count {
                let g = G[i] * gscale
                M[i] = c.beta1 * M[i] + (1 - c.beta1) * g
                Vv[i] = c.beta2 * Vv[i] + (1 - c.beta2) * g * g
                let mh = M[i] / bc1, vh = Vv[i] / bc2
                P[i] -= lr * (mh / (vh.squareRoot() + c.eps) + wd * P[i])
            }
        }
        return norm
    }
}

// Activation statistics gathered during forward passes on calibration inputs: what
// activation-based pruning importance (Wanda, Minitron-style) is computed from.

import COpenBLAS
import Foundation

public final class ActivationStats: @unchecked Sendable {
    /// Per layer, per head: Σ over tokens of the L2 norm of the head's attention output
    /// (before the output projection).
    public internal(set) var headNorms: [Int: [Double]] = [:]
    /// Per layer, per MLP neuron: Σ over tokens of |activation| (the input of the MLP's
    /// output projection: gelu(fc(x)) or silu(gate(x))·up(x)).
    public internal(set) var neuronMagnitudes: [Int: [Double]] = [:]
    /// Per linear weight (by tensor name), per input channel j: Σ over tokens of x_j²
    /// (Wanda's ‖X_j‖²).
    public internal(set) var inputSquares: [String: [Double]] = [:]
    /// Per layer: Σ over tokens of 1 − cos(block input, block output) ("block influence",
    /// ShortGPT): how much the block changes the residual stream.
    public internal(set) var blockInfluence: [Int: Double] = [:]
    /// Tokens seen.
    public internal(set) var tokens = 0
    /// Per linear weight, when `collectGram`: Σ over tokens of x·xᵀ, [C, C] row-major in f64
    /// (GPTQ's Hessian is 2/N of it). Only the upper triangle is accumulated; `gram(_:)` fills
    /// the lower one.
    public internal(set) var inputGrams: [String: [Double]] = [:]
    /// Per linear weight, when `collectGram`: Σ over tokens of |x_j| (AWQ's channel magnitude).
    public internal(set) var inputAbs: [String: [Double]] = [:]
    /// Per linear weight: tokens seen by that layer.
    public internal(set) var inputTokens: [String: Int] = [:]
    /// Whether to accumulate `inputGrams` and `inputAbs` (C² doubles per linear layer).
    public var collectGram: Bool

    public init(collectGram: Bool = false) { self.collectGram = collectGram }

    func addInput(_ name: String, _ x: [Float], T: Int, C: Int) {
        var acc = inputSquares[name] ?? [Double](repeating: 0, count: C)
        for t in 0..<T { for j in 0..<C { let v = Double(x[t * C + j]); acc[j] += v * v } }
        inputSquares[name] = acc
        inputTokens[name, default: 0] += T
        guard collectGram, T > 0, C > 0 else { return }
        let xd = x.prefix(T * C).map(Double.init)
        var g = inputGrams.removeValue(forKey: name) ?? [Double](repeating: 0, count: C * C)
        xd.withUnsafeBufferPointer { a in
            g.withUnsafeMutableBufferPointer { c in
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(C), Int32(T), 1, a.baseAddress, Int32(C), 1, c.baseAddress, Int32(C))
            }
        }
        inputGrams[name] = g
        var ab = inputAbs[name] ?? [Double](repeating: 0, count: C)
        for t in 0..<T { for j in 0..<C { ab[j] += abs(xd[t * C + j]) } }
        inputAbs[name] = ab
    }

    /// The full symmetric Σ x·xᵀ of a linear weight's inputs, or nil.
    public func gram(_ name: String) -> [Double]? {
        guard var g = inputGrams[name], let C = inputSquares[name]?.count else { return nil }
        for i in 0..<C { for j in 0..<i { g[i * C + j] = g[j * C + i] } }
        return g
    }

    /// `out` is [T, heads·hs].
    func addHeads(layer: Int, _ out: [Float], T: Int, heads: Int, hs: Int) {
        var acc = headNorms[layer] ?? [Double](repeating: 0, count: heads)
        for t in 0..<T {
            for h in 0..<heads {
                var s = 0.0
                for d in 0..<hs { let v = Double(out[(t * heads + h) * hs + d]); s += v * v }
                acc[h] += s.squareRoot()
            }
        }
        headNorms[layer] = acc
    }

    /// `act` is [T, width].
    func addNeurons(layer: Int, _ act: [Float], T: Int, width: Int) {
        var acc = neuronMagnitudes[layer] ?? [Double](repeating: 0, count: width)
        for t in 0..<T { for n in 0..<width { acc[n] += Double(abs(act[t * width + n])) } }
        neuronMagnitudes[layer] = acc
    }

    func addBlock(layer: Int, input: [Float], output: [Float], T: Int, C: Int) {
        var total = 0.0
        for t in 0..<T {
            var dot = 0.0, na = 0.0, nb = 0.0
            for j in 0..<C {
                let a = Double(input[t * C + j]), b = Double(output[t * C + j])
                dot += a * b; na += a * a; nb += b * b
            }
            let cos = na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 1
            total += 1 - cos
        }
        blockInfluence[layer, default: 0] += total
    }

    func addTokens(_ n: Int) { tokens += n }
}

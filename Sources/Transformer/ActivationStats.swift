// Activation statistics gathered during forward passes on calibration inputs: what
// activation-based pruning importance (Wanda, Minitron-style) is computed from.

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

    public init() {}

    func addInput(_ name: String, _ x: [Float], T: Int, C: Int) {
        var acc = inputSquares[name] ?? [Double](repeating: 0, count: C)
        for t in 0..<T { for j in 0..<C { let v = Double(x[t * C + j]); acc[j] += v * v } }
        inputSquares[name] = acc
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

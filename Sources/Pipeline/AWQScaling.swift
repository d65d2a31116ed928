// AWQ in a checkpoint (`ckpt quantize --calibrate FILE --method awq`): per block, the groups of
// linear layers that share an input whose producer can absorb a per-channel division, the
// scale search of Quantize/AWQ.swift on the calibration statistics, and the fold:
//
//   attention norm  -> q, k, v (and a parallel block's MLP inputs when they share the norm)
//   MLP norm        -> up (and gate)
//   v's output rows -> the attention output projection (heads == key/value heads: each input
//                      channel of the output projection is one channel of v)
//   up's output rows-> down, when the MLP is gated (act(gate)·up is linear in up) or ReLU
//                      (relu(x/s) = relu(x)/s for s > 0)
//
// Consumers' input columns are multiplied by s, the producer's channel (a norm's weight and
// bias, with Gemma's 1 + w offset; a linear's output row and bias) divided by s: the model's
// function is unchanged before rounding. Post-norm blocks (BERT) feed the residual stream with
// the norm's output, which cannot absorb a scale, so only their v -> output pair is scaled.
// The scaled weights are then rounded to nearest by the scheme, after AutoAWQ's clipping search
// (auto_clip): per linear weight except the query and key projections (whose clipped outputs
// would be judged without the softmax, as AutoAWQ skips them), per row and block of the target
// type, the threshold max|w|·(1 − i/20), i < 10, that gives the smallest output error on the
// calibration inputs (Quantize/AWQ.swift, `clipSearch`). Clipping changes the float function, so
// it is kept apart from the fold: the folded graph still computes the original function, and the
// thresholds are applied when each weight is rounded. `--method awq+gptq` folds the same scales
// and then quantizes with GPTQ against the scaled inputs' Hessian (no clipping: GPTQ chooses its
// own grid).

import CkptCore
import Foundation
import Quantize
import Transformer

extension Calibration {
    enum AWQProducer {
        case norm(NormSpec)
        /// Output channels offset..<offset+n of a linear.
        case linear(LinearSpec, offset: Int)
    }

    struct AWQGroup {
        var producer: AWQProducer
        var consumers: [LinearSpec]
    }

    static func awqGroups(_ b: BlockSpec) -> [AWQGroup] {
        var groups: [AWQGroup] = []
        let a = b.attention
        var attentionInputs: [LinearSpec]
        switch a.projections {
        case .split(let q, let k, let v): attentionInputs = [q, k, v]
        case .fused(let l, _): attentionInputs = [l]
        }
        var mlpInputs: [LinearSpec] = []
        if let mlp = b.mlp {
            switch mlp.projections {
            case .plain(let up): mlpInputs = [up]
            case .gated(let gate, let up): mlpInputs = [gate, up]
            case .fusedGated(let l): mlpInputs = [l]
            }
        }
        if let n = b.attentionNorm, n.perHead == nil {
            groups.append(AWQGroup(producer: .norm(n), consumers: attentionInputs + (b.parallel && b.mlpNorm == nil && b.moe == nil ? mlpInputs : [])))
        }
        if a.heads == a.kvHeads {
            switch a.projections {
            case .split(_, _, let v): groups.append(AWQGroup(producer: .linear(v, offset: 0), consumers: [a.output]))
            case .fused(let l, .concatenated): groups.append(AWQGroup(producer: .linear(l, offset: 2 * a.heads * a.headDim), consumers: [a.output]))
            default: break
            }
        }
        if let mlp = b.mlp {
            if let n = b.mlpNorm, n.perHead == nil { groups.append(AWQGroup(producer: .norm(n), consumers: mlpInputs)) }
            switch mlp.projections {
            case .gated(_, let up): groups.append(AWQGroup(producer: .linear(up, offset: 0), consumers: [mlp.down]))
            case .fusedGated(let l): groups.append(AWQGroup(producer: .linear(l, offset: mlp.width), consumers: [mlp.down]))
            case .plain(let up) where mlp.activation == .relu: groups.append(AWQGroup(producer: .linear(up, offset: 0), consumers: [mlp.down]))
            default: break
            }
        }
        return groups
    }

    /// A linear's weight as [out, in] floats.
    static func linearWeight(_ g: WeightGraph, _ l: LinearSpec) throws -> [Float]? {
        guard let t = g.tensors[l.weightName], t.shape == l.weightShape, let w = try Cast.floats(t) else { return nil }
        if l.layout == .linear { return w }
        var out = [Float](repeating: 0, count: w.count)
        for i in 0..<l.inFeatures { for o in 0..<l.outFeatures { out[o * l.inFeatures + i] = w[i * l.outFeatures + o] } }
        return out
    }

    static func replace(_ g: inout WeightGraph, _ name: String, _ transform: (inout [Float]) -> Void) throws {
        guard let t = g.tensors[name], var v = try Cast.floats(t) else { throw QuantizeJobError(description: "AWQ: tensor `\(name)` is not a float tensor") }
        transform(&v)
        try g.replace(Tensor(name: name, dtype: .f32, shape: t.shape, data: .owned(v.withUnsafeBytes { Array($0) })))
    }

    /// The graph with AWQ scales folded in. `target(name, [out, in])` is the block type the
    /// recipe gives a linear weight (nil: it stays float).
    func applyAWQ(_ source: WeightGraph, target: (String, [Int]) -> DType?) throws -> WeightGraph {
        var g = source
        for b in blocks {
            for group in Self.awqGroups(b) {
                guard let first = group.consumers.first, let gram = stats.gram(first.weightName),
                      let abs = stats.inputAbs[first.weightName], let n = stats.inputTokens[first.weightName], n > 0 else { continue }
                let cols = first.inFeatures
                guard gram.count == cols * cols, group.consumers.allSatisfy({ $0.inFeatures == cols }) else { continue }
                var layers: [AWQ.Layer] = [], names: [String] = []
                for c in group.consumers {
                    guard let d = target(c.weightName, [c.outFeatures, c.inFeatures]), d.isQuantized,
                          case .block(let per, _) = d.layout, cols % per == 0, let w = try Self.linearWeight(g, c) else { continue }
                    layers.append(AWQ.Layer(weight: w, rows: c.outFeatures, target: d))
                    names.append(c.weightName)
                }
                guard !layers.isEmpty else { continue }
                let start = DispatchTime.now().uptimeNanoseconds
                let r = try AWQ.search(layers, cols: cols, gram: gram, meanAbs: abs.map { $0 / Double(n) })
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                lock.withLock {
                    for (i, name) in names.enumerated() {
                        let l = CalibratedLayer(method: "awq", errorBefore: r.errorBefore[i], errorAfter: r.errorAfter[i])
                        self.layers[name] = l
                        if let gg = ggufNames[name] { self.layers[gg] = l }
                    }
                    quantizeTime += seconds
                    awqAlphas[names.joined(separator: ",")] = r.alpha
                }
                guard r.alpha > 0 else { continue }
                let s = r.scales
                lock.withLock { for c in group.consumers { awqScales[c.weightName] = s } }
                // Consumers: input channel j times s_j.
                for c in group.consumers {
                    try Self.replace(&g, c.weightName) { w in
                        if c.layout == .linear {
                            for o in 0..<c.outFeatures { for j in 0..<cols { w[o * cols + j] *= s[j] } }
                        } else {
                            for j in 0..<cols { for o in 0..<c.outFeatures { w[j * c.outFeatures + o] *= s[j] } }
                        }
                    }
                }
                // Producer: channel j divided by s_j.
                switch group.producer {
                case .norm(let norm):
                    try Self.replace(&g, norm.name + ".weight") { w in for j in 0..<cols { w[j] = (w[j] + norm.weightOffset) / s[j] - norm.weightOffset } }
                    if g.tensors[norm.name + ".bias"] != nil {
                        try Self.replace(&g, norm.name + ".bias") { v in for j in 0..<cols { v[j] /= s[j] } }
                    }
                case .linear(let p, let offset):
                    try Self.replace(&g, p.weightName) { w in
                        if p.layout == .linear {
                            for j in 0..<cols { for i in 0..<p.inFeatures { w[(offset + j) * p.inFeatures + i] /= s[j] } }
                        } else {
                            for i in 0..<p.inFeatures { for j in 0..<cols { w[i * p.outFeatures + offset + j] /= s[j] } }
                        }
                    }
                    if g.tensors[p.biasName] != nil {
                        try Self.replace(&g, p.biasName) { v in for j in 0..<cols { v[offset + j] /= s[j] } }
                    }
                }
            }
        }
        if options.method == "awq" { try searchClips(g, target: target) }
        return g
    }

    /// AutoAWQ's clipping search on every calibrated linear of the scaled graph `g` but the
    /// query and key projections.
    func searchClips(_ g: WeightGraph, target: (String, [Int]) -> DType?) throws {
        for b in blocks {
            var skip: Set<String> = []
            switch b.attention.projections {
            case .split(let q, let k, _): skip = [q.weightName, k.weightName]
            case .fused(let l, _): skip = [l.weightName]
            }
            for l in b.attention.linears + (b.mlp?.linears ?? []) where !skip.contains(l.weightName) {
                guard var gram = stats.gram(l.weightName), gram.count == l.inFeatures * l.inFeatures,
                      let d = target(l.weightName, [l.outFeatures, l.inFeatures]), d.isQuantized,
                      case .block(let per, _) = d.layout, l.inFeatures % per == 0, let w = try Self.linearWeight(g, l) else { continue }
                let cols = l.inFeatures
                let s = lock.withLock { awqScales[l.weightName] }
                if let s {
                    for i in 0..<cols { for j in 0..<cols { gram[i * cols + j] /= Double(s[i]) * Double(s[j]) } }
                }
                let start = DispatchTime.now().uptimeNanoseconds
                let clip = try AWQ.clipSearch(weight: w, rows: l.outFeatures, cols: cols, gram: gram, target: d)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                lock.withLock {
                    awqClips[l.weightName] = clip
                    // Before: round-to-nearest without scales (the scale search's), or without clipping.
                    let before = layers[l.weightName]?.errorBefore ?? clip.errorBefore
                    let layer = CalibratedLayer(method: "awq", errorBefore: before, errorAfter: clip.errorAfter)
                    layers[l.weightName] = layer
                    if let gg = ggufNames[l.weightName] { layers[gg] = layer }
                    quantizeTime += seconds
                }
            }
        }
    }

    /// A weight rounded to nearest after its AWQ clipping (nil: no clipping for it, the caller
    /// rounds to nearest as it is).
    func quantizeClipped(_ tensor: Tensor, modelName: String, target: DType, transposed: Bool, report: QuantizationReport) throws -> Tensor? {
        guard let spec = linears[modelName], spec.layout == .linear || transposed, tensor.shape == [spec.outFeatures, spec.inFeatures],
              let clip = lock.withLock({ awqClips[modelName] }), clip.clips,
              case .block(let per, _) = target.layout, per == clip.group, let w = try Cast.floats(tensor) else { return nil }
        let c = AWQ.clipped(w, cols: spec.inFeatures, clip: clip)
        let bytes = try Quantizer.quantize(c, rowLength: spec.inFeatures, to: target, name: tensor.name)
        if report.measures {
            let values = try bytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: target, count: w.count) }
            report.recordCalibrated(tensor.name, QuantizationError.measure(original: w, reconstructed: values))
        }
        return try Tensor(name: tensor.name, dtype: target, shape: tensor.shape, data: .owned(bytes))
    }
}

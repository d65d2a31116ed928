// `ckpt prune`: the operations, applied to a weight graph in this order —
//   1. drop whole layers (blocks), renumbering the rest;
//   2. remove attention heads, whole key/value groups (with as many key/value heads as query
//      heads: any heads), the same number in every layer; only for families whose config
//      states the head size (`head_dim`): where transformers derives it as hidden_size / heads
//      (GPT-2, BERT, GPT-NeoX, OPT, Falcon...) fewer heads cannot be expressed — transformers 5
//      ignores `pruned_heads` — so head removal is refused up front;
//   3. narrow the MLPs to a target width;
//   4. unstructured sparsity (magnitude per tensor or global, or Wanda's |W|·‖X‖ per output
//      unit) or N:M semi-structured sparsity along the input dimension.
// Every tensor that touches a removed unit is sliced consistently (Layout.swift reads which
// from the architecture description) and the config is updated where the description says
// the family keeps each size, so the reference forward pass and transformers run the result.
//
// Importance (`--importance`):
//   magnitude   heads/neurons: Σ w² of every weight that belongs to the unit; unstructured: |w|
//   activation  from forward passes on calibration inputs (ActivationStats):
//               heads:   Σ_tokens ‖head output‖ · ‖o-proj slice of the head‖   (Minitron-style)
//               neurons: Σ_tokens |activation| · ‖out-proj slice of the neuron‖  (Wanda-style)
//               weights: |W_ij| · ‖X_j‖, compared within each output unit        (Wanda)
//   layers are always ranked by block influence, Σ_tokens 1 − cos(block input, block output)
//   (ShortGPT), which needs calibration inputs whatever the importance.

import CkptCore
import Foundation
import OrderedCollections
import Quantize
import Transformer

public struct PruneOptions: Sendable {
    public enum Importance: String, Sendable, CaseIterable { case magnitude, activation }
    public var sparsity: Double?
    public var globalSparsity = false
    /// N:M sparsity (keep N of every M consecutive weights along the input dimension).
    public var nm: (n: Int, m: Int)?
    /// Regular expressions: matching tensors are not pruned (unstructured / N:M).
    public var keep: [String] = []
    /// (pattern, sparsity): matching tensors get this sparsity instead.
    public var overrides: [(String, Double)] = []
    /// Remove this many query heads from every layer.
    public var headsPerLayer: Int?
    /// Remove exactly these heads: layer -> current head indices.
    public var dropHeads: [Int: [Int]]?
    /// Narrow every MLP to this many neurons.
    public var intermediate: Int?
    /// Keep exactly these MLP neurons: layer -> neuron indices (every layer, the same count).
    public var keepNeurons: [Int: [Int]]?
    public var dropLayers: [Int]?
    public var dropLayerCount: Int?
    public var importance: Importance = .magnitude
    public var calibration: [ModelInput] = []

    public init() {}
}

public struct PruneReport: Sendable {
    public var operations: [String] = []
    public var parametersBefore = 0, parametersAfter = 0
    public var bytesBefore = 0, bytesAfter = 0
    /// Fraction of zeros in each tensor touched by unstructured / N:M pruning.
    public var sparsity: OrderedDictionary<String, Double> = [:]
    public var removedHeads: [Int: [Int]] = [:]
    public var droppedLayers: [Int] = []

    public func json() -> JSONValue {
        .object([
            "operations": .array(operations.map { .string($0) }),
            "parameters_before": .int(parametersBefore), "parameters_after": .int(parametersAfter),
            "bytes_before": .int(bytesBefore), "bytes_after": .int(bytesAfter),
            "dropped_layers": .array(droppedLayers.map { .int($0) }),
            "removed_heads": .object(OrderedDictionary(uniqueKeysWithValues: removedHeads.sorted { $0.key < $1.key }
                .map { ("\($0.key)", JSONValue.array($0.value.map { .int($0) })) })),
            "sparsity": .object(sparsity.mapValues { .double($0) }),
        ])
    }
}

/// What `Pruner.prune` returns: the pruned graph and what was removed.
public struct PruneResult: Sendable {
    /// The pruned graph (a smaller config when structure was removed).
    public var graph: WeightGraph
    /// Parameters and bytes before and after, per-tensor sparsity, removed heads and layers.
    public var report: PruneReport

    public init(graph: WeightGraph, report: PruneReport) {
        self.graph = graph
        self.report = report
    }
}

/// Pruning of a weight graph: unstructured (per tensor or global magnitude), N:M, and structured
/// (attention heads, MLP neurons, whole layers) into a smaller config.
public enum Pruner {
    /// - Parameters:
    ///   - source: The model to prune (with its config for structured pruning).
    ///   - o: What to prune and by which importance (magnitude, or activations from calibration).
    /// - Returns: The pruned graph (a smaller config when structure was removed) and a report of
    ///   parameters before and after, per tensor.
    public static func prune(_ source: WeightGraph, _ o: PruneOptions) throws -> PruneResult {
        var g = source
        var report = PruneReport()
        report.parametersBefore = source.parameterCount
        report.bytesBefore = source.byteCount
        let structured = o.headsPerLayer != nil || o.dropHeads != nil || o.intermediate != nil || o.keepNeurons != nil || o.dropLayers != nil || o.dropLayerCount != nil
        let layout = structured || o.importance == .activation ? try Layout(g) : (try? Layout(g))
        if let s = o.sparsity, !(0...1).contains(s) { throw PruneError.invalid("sparsity must be in 0...1") }
        if let nm = o.nm, !(nm.n > 0 && nm.n < nm.m) { throw PruneError.invalid("N:M needs 0 < N < M") }

        // Activation statistics on the original model, when anything needs them.
        var stats: ActivationStats?
        if o.importance == .activation || o.dropLayerCount != nil {
            guard !o.calibration.isEmpty else { throw PruneError.invalid("activation importance needs calibration inputs") }
            let model = try Transformers.load(source)
            let s = ActivationStats()
            for input in o.calibration { _ = try model.forward(input, collectHidden: false, stats: s) }
            stats = s
        }

        // Original layer index of each current layer (layers may be dropped first).
        var originalIndex = Array(0..<(layout?.layers ?? 0))
        if let layout, o.dropLayers != nil || o.dropLayerCount != nil {
            var drop = Set(o.dropLayers ?? [])
            if let n = o.dropLayerCount {
                guard let bi = stats?.blockInfluence else { throw PruneError.invalid("no block statistics") }
                let ranked = (0..<layout.layers).sorted { (bi[$0] ?? 0, $0) < (bi[$1] ?? 0, $1) }
                drop.formUnion(ranked.prefix(n))
            }
            guard drop.allSatisfy({ $0 >= 0 && $0 < layout.layers }), drop.count < layout.layers else {
                throw PruneError.invalid("layers to drop must be distinct indices in 0..<\(layout.layers), keeping at least one")
            }
            g = try dropLayers(g, layout, Array(drop).sorted())
            report.droppedLayers = Array(drop).sorted()
            originalIndex = originalIndex.filter { !drop.contains($0) }
            report.operations.append("dropped layers \(report.droppedLayers.map(String.init).joined(separator: ", ")) (\(layout.layers) -> \(originalIndex.count))")
        }

        if o.headsPerLayer != nil || o.dropHeads != nil {
            let lay = try Layout(g)
            try lay.checkHeadsResizable()
            var removal: [Int: [Int]] = [:]
            if let explicit = o.dropHeads {
                removal = explicit
            } else if let r = o.headsPerLayer {
                for i in 0..<lay.layers {
                    let a = lay.attention(i)
                    let groupSize = a.heads / a.kvHeads
                    guard r % groupSize == 0, r / groupSize < a.kvHeads else {
                        throw PruneError.invalid(groupSize > 1
                            ? "--heads must be a multiple of the key/value group size \(groupSize) and leave at least one group"
                            : "cannot remove \(r) of \(a.heads) heads in layer \(i)")
                    }
                    let scores = try groupScores(g, lay, layer: i, original: originalIndex[i], stats: stats, importance: o.importance)
                    let removedUnits = lowest(scores, count: r / groupSize)
                    removal[i] = removedUnits.flatMap { u in (0..<groupSize).map { u * groupSize + $0 } }.sorted()
                }
            }
            g = try removeHeads(g, lay, removal)
            report.removedHeads = removal
            report.operations.append("removed heads " + removal.sorted { $0.key < $1.key }
                .map { "\($0.key):\($0.value.map(String.init).joined(separator: ","))" }.joined(separator: " "))
        }

        if o.intermediate != nil || o.keepNeurons != nil {
            let lay = try Layout(g)
            guard let widthKey = lay.keys.width else {
                throw PruneError.invalid("cannot narrow the MLPs of \(lay.description.modelType): its config has no MLP width")
            }
            let cuts = try (0..<lay.layers).map { try lay.neuronCuts($0) }
            let widths = lay.description.blocks.compactMap { $0.mlp?.width }
            guard Set(widths).count == 1, let inner = widths.first else {
                throw PruneError.invalid("\(lay.description.modelType): the MLPs differ in width, which one config key cannot express")
            }
            var keep: [[Int]] = []
            if let explicit = o.keepNeurons {
                keep = (0..<lay.layers).map { (explicit[$0] ?? []).sorted() }
                guard explicit.keys.allSatisfy({ $0 >= 0 && $0 < lay.layers }), let n = keep.first?.count, n > 0,
                      keep.allSatisfy({ $0.count == n && Set($0).count == n && $0.allSatisfy { $0 >= 0 && $0 < inner } }) else {
                    throw PruneError.invalid("neurons to keep must be the same number of distinct indices in 0..<\(inner) for each of the \(lay.layers) layers")
                }
            } else if let width = o.intermediate {
                guard width > 0, width <= inner else { throw PruneError.invalid("--intermediate must be in 1...\(inner)") }
                for i in 0..<lay.layers {
                    let scores = try neuronScores(g, lay, layer: i, original: originalIndex[i], stats: stats, importance: o.importance)
                    keep.append(highest(scores, count: width))
                }
            }
            let width = keep.first?.count ?? inner
            for i in 0..<lay.layers { try apply(cuts[i], keep: keep[i], to: &g) }
            if var c = g.config {
                c.json[widthKey] = .int(width)
                g.config = c
            }
            report.operations.append("MLP width \(inner) -> \(width)")
        }

        // The result must be a model its own config describes, every tensor read.
        if structured {
            let d: ModelDescription
            do { d = try Transformers.describe(g) } catch {
                throw PruneError.invalid("the pruned model's config cannot describe its weights (\(error)); nothing written")
            }
            if let unused = d.unusedTensors(in: g).first {
                throw PruneError.invalid("tensor `\(unused)`: the pruned \(d.modelType) config has no place for it (e.g. a layer that cannot be renumbered); nothing written")
            }
        }

        if o.sparsity != nil || o.nm != nil || !o.overrides.isEmpty {
            try sparsify(&g, layout: layout, o, stats: stats, report: &report)
        }

        report.parametersAfter = g.parameterCount
        report.bytesAfter = g.byteCount
        let recipe = JSONValue.object([
            "importance": .string(o.importance.rawValue),
            "operations": .array(report.operations.map { .string($0) }),
            "calibration_sequences": .int(o.calibration.count),
        ])
        g.metadata["ckpt.prune"] = recipe.serialized()
        return PruneResult(graph: g, report: report)
    }

    // MARK: Scores

    /// Indices of the `count` lowest scores (ties: lower index first), sorted.
    static func lowest(_ scores: [Double], count: Int) -> [Int] {
        Array(scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }.prefix(count)).sorted()
    }

    /// Indices of the `count` highest scores (ties: lower index first), sorted.
    static func highest(_ scores: [Double], count: Int) -> [Int] {
        Array(scores.indices.sorted { (-scores[$0], $0) < (-scores[$1], $1) }.prefix(count)).sorted()
    }

    static func floats(_ t: Tensor) throws -> [Float] {
        guard let f = try Cast.floats(t) else { throw PruneError.unsupportedDType(tensor: t.name, dtype: t.dtype) }
        return f
    }

    /// Σ w² of each line (row or column, or element of a 1-D tensor) along `axis`.
    static func lineSquares(_ t: Tensor, axis: Int) throws -> [Double] {
        let w = try floats(t)
        let dims = t.shape.count == 1 ? [t.shape[0], 1] : t.shape
        guard dims.count == 2 else { throw PruneError.invalid("tensor `\(t.name)`: expected 1-D or 2-D, got \(t.shape)") }
        let (rows, cols) = (dims[0], dims[1])
        var out = [Double](repeating: 0, count: axis == 0 ? rows : cols)
        for r in 0..<rows {
            for c in 0..<cols {
                let v = Double(w[r * cols + c])
                out[axis == 0 ? r : c] += v * v
            }
        }
        return out
    }

    /// Σ w² over the lines of `cuts` that belong to each of `units` units.
    static func cutSquares(_ g: WeightGraph, _ cuts: [Cut], units: Int) throws -> [Double] {
        var scores = [Double](repeating: 0, count: units)
        for cut in cuts {
            guard let t = g.tensors[cut.tensor] else { continue }
            let sq = try lineSquares(t, axis: cut.axis)
            for u in 0..<units { scores[u] += cut.lines([u]).reduce(0.0) { $0 + ($1 < sq.count ? sq[$1] : 0) } }
        }
        return scores
    }

    /// Keeps only the lines of `cuts` that belong to the units `keep`.
    static func apply(_ cuts: [Cut], keep: [Int], to g: inout WeightGraph) throws {
        for cut in cuts {
            guard let t = g.tensors[cut.tensor] else { continue }
            try g.replace(Slicing.take(t, axis: cut.axis, lines: cut.lines(keep)))
        }
    }

    /// Importance of each key/value group of a layer (with NKV = NH, of each head).
    static func groupScores(_ g: WeightGraph, _ lay: Layout, layer i: Int, original: Int, stats: ActivationStats?,
                            importance: PruneOptions.Importance) throws -> [Double] {
        let a = lay.attention(i)
        let group = a.heads / a.kvHeads
        switch importance {
        case .magnitude:
            return try cutSquares(g, lay.groupCuts(i), units: a.kvHeads)
        case .activation:
            guard let norms = stats?.headNorms[original], norms.count == a.heads else {
                throw PruneError.invalid("no head statistics for layer \(i)")
            }
            // ‖o-proj slice‖ of each query head: its hs input lines.
            let out = lay.inputCut(a.output) { heads in heads.flatMap { h in (0..<a.headDim).map { h * a.headDim + $0 } } }
            let outNorms = try cutSquares(g, [out], units: a.heads).map { $0.squareRoot() }
            let perHead = zip(norms, outNorms).map { $0 * $1 }
            return (0..<a.kvHeads).map { u in (0..<group).reduce(0.0) { $0 + perHead[u * group + $1] } }
        }
    }

    static func neuronScores(_ g: WeightGraph, _ lay: Layout, layer i: Int, original: Int, stats: ActivationStats?,
                             importance: PruneOptions.Importance) throws -> [Double] {
        guard let down = lay.mlpOutput(i), let width = lay.description.blocks[i].mlp?.width else {
            throw PruneError.invalid("layer \(i) has no MLP")
        }
        switch importance {
        case .magnitude:
            return try cutSquares(g, lay.neuronCuts(i), units: width)
        case .activation:
            guard let act = stats?.neuronMagnitudes[original], act.count == width else {
                throw PruneError.invalid("no MLP statistics for layer \(i)")
            }
            let norms = try cutSquares(g, [lay.inputCut(down) { $0 }], units: width).map { $0.squareRoot() }
            return zip(act, norms).map { $0 * $1 }
        }
    }

    // MARK: Structural edits

    /// Removes query heads, which must make whole key/value groups (with NKV = NH: any
    /// heads), the same number in every layer (the config has one head count).
    static func removeHeads(_ g: WeightGraph, _ lay: Layout, _ removal: [Int: [Int]]) throws -> WeightGraph {
        var g = g
        guard removal.keys.allSatisfy({ $0 >= 0 && $0 < lay.layers }) else {
            throw PruneError.invalid("layers to remove heads from must be in 0..<\(lay.layers)")
        }
        var removedGroups: Int?
        for i in 0..<lay.layers {
            let a = lay.attention(i)
            let group = a.heads / a.kvHeads
            let heads = Set(removal[i] ?? [])
            let groups = Set(heads.map { $0 / group })
            guard heads.allSatisfy({ $0 >= 0 && $0 < a.heads }), heads.count == (removal[i] ?? []).count else {
                throw PruneError.invalid("layer \(i): heads to remove must be distinct in 0..<\(a.heads)")
            }
            guard groups.allSatisfy({ g in (0..<group).allSatisfy { heads.contains(g * group + $0) } }) else {
                throw PruneError.invalid("layer \(i): heads must be removed in whole key/value groups of \(group)")
            }
            if let r = removedGroups, r != groups.count {
                throw PruneError.invalid("the config has one head count for all layers: remove the same number of heads from each")
            }
            removedGroups = groups.count
            guard groups.count < a.kvHeads else { throw PruneError.invalid("layer \(i): cannot remove every key/value group") }
            try apply(lay.groupCuts(i), keep: (0..<a.kvHeads).filter { !groups.contains($0) }, to: &g)
        }
        guard let r = removedGroups, r > 0, let a = lay.description.blocks.first?.attention else { return g }
        let newHeads = a.heads - r * (a.heads / a.kvHeads), C = lay.description.hiddenSize
        if lay.keys.headsDivideHidden, C % newHeads != 0 {
            throw PruneError.invalid("\(lay.description.modelType): transformers requires hidden_size \(C) to be a multiple of the head count, and \(newHeads) heads would remain; remove a number of heads that leaves a divisor of \(C)")
        }
        if var c = g.config {
            let group = a.heads / a.kvHeads
            if let k = lay.keys.heads { c.json[k] = .int(a.heads - r * group) }
            if let k = lay.keys.keyValueHeads, group > 1 || c[k] != nil { c.json[k] = .int(a.kvHeads - r) }
            if let k = lay.keys.headDim { c.json[k] = .int(a.headDim) }
            g.config = c
        }
        return g
    }

    static func dropLayers(_ g: WeightGraph, _ lay: Layout, _ drop: [Int]) throws -> WeightGraph {
        let dropSet = Set(drop)
        var newIndex: [Int: Int] = [:]
        var n = 0
        for i in 0..<lay.layers where !dropSet.contains(i) {
            newIndex[i] = n
            n += 1
        }
        func rename(_ name: String) -> String?? {
            guard name.hasPrefix(lay.blockStem) else { return .some(name) }
            let rest = name.dropFirst(lay.blockStem.count)
            guard let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]) else { return .some(name) }
            guard let j = newIndex[i] else { return .some(nil) }  // dropped
            return .some(lay.blockStem + "\(j)" + rest[dot...])
        }
        var out = WeightGraph()
        out.metadata = g.metadata
        for t in g.tensors.values {
            guard case .some(let newName?) = rename(t.name) else { continue }
            var t2 = t
            t2.name = newName
            try out.add(t2)
        }
        for (alias, target) in g.ties {
            if case .some(let a?) = rename(alias), case .some(let b?) = rename(target) { try out.tie(a, to: b) }
        }
        if var c = g.config {
            guard let layersKey = lay.keys.layers else {
                throw PruneError.invalid("cannot drop layers of \(lay.description.modelType): its config has no layer count")
            }
            // Layers that alternate by position (local/global attention) keep their kind:
            // written out per layer when the config only implied them.
            let windows = lay.description.blocks.map { $0.attention.window }
            if lay.keys.perLayer.contains("layer_types"), c["layer_types"] == nil, Set(windows.map { $0 == nil }).count > 1 {
                c.json["layer_types"] = .array(windows.map { .string($0 == nil ? "full_attention" : "sliding_attention") })
            }
            c.json[layersKey] = .int(n)
            if let pruned = c["pruned_heads"]?.objectValue {
                var remapped = OrderedDictionary<String, JSONValue>()
                for (k, v) in pruned { if let i = Int(k), let j = newIndex[i] { remapped["\(j)"] = v } }
                c.json["pruned_heads"] = .object(remapped)
            }
            for key in lay.keys.perLayer {
                if let list = c[key]?.arrayValue, list.count == lay.layers {
                    c.json[key] = .array(list.enumerated().filter { !dropSet.contains($0.offset) }.map(\.element))
                }
            }
            out.config = c
        }
        return out
    }

    // MARK: Unstructured and N:M

    static func sparsify(_ g: inout WeightGraph, layout: Layout?, _ o: PruneOptions, stats: ActivationStats?,
                         report: inout PruneReport) throws {
        let keep = try o.keep.map { try Regex($0) }
        let overrides = try o.overrides.map { (try Regex($0.0), $0.1) }
        let embeddings = ["wte.weight", "wpe.weight", "embed_tokens.weight", "word_embeddings.weight",
                          "position_embeddings.weight", "token_type_embeddings.weight", "lm_head.weight"]
        var targets: [(name: String, sparsity: Double?)] = []
        for t in g.tensors.values where t.shape.count == 2 && t.name.hasSuffix(".weight") {
            if keep.contains(where: { t.name.contains($0) }) { continue }
            if let o = overrides.first(where: { t.name.contains($0.0) }) {
                targets.append((t.name, o.1))
                continue
            }
            if embeddings.contains(where: { t.name == $0 || t.name.hasSuffix("." + $0) }) { continue }
            if let layout, !layout.blockParameters.contains(t.name) { continue }
            targets.append((t.name, o.sparsity))
        }
        guard !targets.isEmpty else { throw PruneError.invalid("no tensors to sparsify (check --keep)") }

        // Scores per tensor (|w| or Wanda's |w|·‖X_j‖), and whether the input dim is rows.
        func scores(_ t: Tensor) throws -> (values: [Double], inputIsRows: Bool) {
            let w = try floats(t)
            let inputIsRows = layout?.isConv1D(t.name) ?? false
            guard o.importance == .activation else { return (w.map { Double(abs($0)) }, inputIsRows) }
            guard let sq = stats?.inputSquares[t.name] else {
                throw PruneError.invalid("tensor `\(t.name)`: no activation statistics (not a linear layer of the forward pass)")
            }
            let (rows, cols) = (t.shape[0], t.shape[1])
            return ((0..<rows * cols).map { k in
                let j = inputIsRows ? k / cols : k % cols
                return Double(abs(w[k])) * sq[j].squareRoot()
            }, inputIsRows)
        }

        if o.globalSparsity, o.nm == nil, o.importance == .magnitude, let s = o.sparsity {
            // One threshold over every target tensor: the k-th smallest |w| overall.
            var all: [(Double, Int, Int)] = []
            for (ti, target) in targets.enumerated() {
                for (k, v) in try scores(g.tensors[target.name]!).values.enumerated() { all.append((v, ti, k)) }
            }
            let count = Int((s * Double(all.count)).rounded())
            all.sort { ($0.0, $0.1, $0.2) < ($1.0, $1.1, $1.2) }
            var masks = targets.map { [Bool](repeating: false, count: g.tensors[$0.name]!.elementCount) }
            for e in all.prefix(count) { masks[e.1][e.2] = true }
            for (ti, target) in targets.enumerated() {
                try g.replace(Slicing.zeroing(g.tensors[target.name]!, mask: masks[ti]))
            }
            report.operations.append(String(format: "global magnitude sparsity %.3f over %d tensors", s, targets.count))
        } else {
            for target in targets {
                let t = g.tensors[target.name]!
                let (sc, inputIsRows) = try scores(t)
                let (rows, cols) = (t.shape[0], t.shape[1])
                var mask = [Bool](repeating: false, count: rows * cols)
                // Comparison groups: index lists whose lowest scores are zeroed.
                let outputs = inputIsRows ? cols : rows, inputs = inputIsRows ? rows : cols
                func at(_ out: Int, _ inp: Int) -> Int { inputIsRows ? inp * cols + out : out * cols + inp }
                if let nm = o.nm {
                    guard inputs % nm.m == 0 else {
                        throw PruneError.invalid("tensor `\(t.name)`: input dimension \(inputs) is not a multiple of \(nm.m) for \(nm.n):\(nm.m)")
                    }
                    for out in 0..<outputs {
                        for start in stride(from: 0, to: inputs, by: nm.m) {
                            let group = (start..<start + nm.m).map { at(out, $0) }
                            for k in group.sorted(by: { (sc[$0], $0) < (sc[$1], $1) }).prefix(nm.m - nm.n) { mask[k] = true }
                        }
                    }
                } else if let s = target.sparsity {
                    if o.importance == .activation {
                        // Wanda: within each output unit.
                        let k = Int((s * Double(inputs)).rounded())
                        for out in 0..<outputs {
                            let group = (0..<inputs).map { at(out, $0) }
                            for idx in group.sorted(by: { (sc[$0], $0) < (sc[$1], $1) }).prefix(k) { mask[idx] = true }
                        }
                    } else {
                        let k = Int((s * Double(rows * cols)).rounded())
                        for idx in sc.indices.sorted(by: { (sc[$0], $0) < (sc[$1], $1) }).prefix(k) { mask[idx] = true }
                    }
                } else {
                    continue
                }
                try g.replace(Slicing.zeroing(t, mask: mask))
            }
            if let nm = o.nm {
                report.operations.append("\(nm.n):\(nm.m) sparsity (\(o.importance.rawValue)) on \(targets.count) tensors")
            } else {
                report.operations.append(String(format: "%@ sparsity %.3f on %d tensors", o.importance == .activation ? "Wanda" : "magnitude",
                                                o.sparsity ?? 0, targets.count))
            }
        }
        for target in targets {
            let w = try floats(g.tensors[target.name]!)
            report.sparsity[target.name] = Double(w.filter { $0 == 0 }.count) / Double(max(w.count, 1))
        }
    }
}

extension PruneOptions {
    /// "2:4" -> (2, 4).
    public static func parseNM(_ text: String) -> (n: Int, m: Int)? {
        let parts = text.split(separator: ":").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }

    /// "0:1,2;3:0" -> [0: [1, 2], 3: [0]].
    public static func parseDropHeads(_ text: String) -> [Int: [Int]]? {
        var map: [Int: [Int]] = [:]
        for part in text.split(separator: ";") {
            let kv = part.split(separator: ":")
            guard kv.count == 2, let layer = Int(kv[0].trimmingCharacters(in: .whitespaces)) else { return nil }
            let heads = kv[1].split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard heads.allSatisfy({ $0 != nil }) else { return nil }
            map[layer, default: []] += heads.map { $0! }
        }
        return map
    }

    /// Whether any operation was asked for.
    public var isEmpty: Bool {
        sparsity == nil && nm == nil && overrides.isEmpty && headsPerLayer == nil && dropHeads == nil
            && intermediate == nil && keepNeurons == nil && dropLayers == nil && dropLayerCount == nil
    }

    /// Whether the operations need calibration inputs.
    public var needsCalibration: Bool { importance == .activation || dropLayerCount != nil }
}

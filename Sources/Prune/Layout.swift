// Where a model keeps the units structured pruning removes, read from its architecture
// description (Transformer's ModelDescription): no family is named here.
//
// A "cut" names a tensor, the axis that indexes units, and which lines (rows or columns) of
// that axis belong to a set of units. Weights are stored [out, in] (torch.nn.Linear) or
// [in, out] (GPT-2's Conv1D); biases and norm weights are 1-D.
//   heads    removed a key/value group at a time (NH/NKV query heads with their k and v
//            head; with NKV = NH a group is one head): q, k, v (split, fused q|k|v or fused
//            per group), full-width q/k norms, the output projection's input;
//   neurons  up (and gate, or the fused gate|up) rows, the down projection's input;
//   layers   whole blocks, renumbered.
// The description's `sizeKeys` say which config keys hold the changed sizes.

import CkptCore
import Transformer

public enum PruneError: Error, Equatable, Sendable, CustomStringConvertible {
    case unsupportedArchitecture(String)
    case invalid(String)
    case unsupportedDType(tensor: String, dtype: DType)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let a):
            return "structured pruning of \(a) is not supported: its architecture description says nothing of where its config keeps head, MLP and layer sizes (registered architectures: \(Architectures.modelTypes.joined(separator: ", ")))"
        case .invalid(let m): return m
        case .unsupportedDType(let t, let d): return "tensor `\(t)`: cannot prune \(d) weights (prune before quantizing)"
        }
    }
}

/// Lines of one tensor that belong to units.
struct Cut {
    var tensor: String
    /// 0: rows (or a 1-D tensor), 1: columns.
    var axis: Int
    /// The lines of `axis` that belong to `units`, in stored order.
    var lines: ([Int]) -> [Int]
}

struct Layout {
    let description: ModelDescription
    let keys: SizeKeys
    var layers: Int { description.blocks.count }
    /// Block names are `blockStem + index + "."`.
    let blockStem: String
    /// Names of Conv1D-layout weights (stored [in, out]).
    let conv1D: Set<String>
    /// Names of every parameter that belongs to a block.
    let blockParameters: Set<String>

    init(_ graph: WeightGraph) throws {
        guard let c = graph.config else { throw PruneError.invalid("structured pruning needs the model config") }
        guard Architectures.family(for: c.modelType) != nil else { throw PruneError.unsupportedArchitecture(c.modelType ?? "(no model_type)") }
        let d = try Transformers.describe(graph)
        guard let keys = d.sizeKeys else { throw PruneError.unsupportedArchitecture(d.modelType) }
        description = d
        self.keys = keys
        let stems = Set(d.blocks.map { b in String(b.prefix.dropLast("\(b.index).".count)) })
        guard stems.count <= 1, d.blocks.allSatisfy({ $0.prefix.hasSuffix(".\($0.index).") }) else {
            throw PruneError.invalid("\(d.modelType): block names do not follow one numbered pattern")
        }
        blockStem = stems.first ?? ""
        var conv = Set<String>(), inBlocks = Set<String>()
        for b in d.blocks {
            for l in b.attention.linears + (b.mlp?.linears ?? []) + (b.moe?.linears ?? []) where l.layout == .conv1d { conv.insert(l.weightName) }
            for s in b.slots() { inBlocks.insert(s.name) }
        }
        conv1D = conv
        blockParameters = inBlocks
    }

    func isConv1D(_ name: String) -> Bool { conv1D.contains(name) }

    /// Cuts of a linear's output units (its weight's output axis and its bias).
    func outputCuts(_ l: LinearSpec, _ lines: @escaping ([Int]) -> [Int]) -> [Cut] {
        var cuts = [Cut(tensor: l.weightName, axis: l.layout == .linear ? 0 : 1, lines: lines)]
        if l.bias != .absent { cuts.append(Cut(tensor: l.biasName, axis: 0, lines: lines)) }
        return cuts
    }

    /// The cut of a linear's input units.
    func inputCut(_ l: LinearSpec, _ lines: @escaping ([Int]) -> [Int]) -> Cut {
        Cut(tensor: l.weightName, axis: l.layout == .linear ? 1 : 0, lines: lines)
    }

    // MARK: Heads

    /// Heads can be removed only where the config states the head size: families whose
    /// transformers code derives it as hidden_size / heads could not load fewer heads
    /// (and transformers 5 ignores `pruned_heads`).
    func checkHeadsResizable() throws {
        guard keys.heads != nil, keys.headDim != nil else {
            throw PruneError.invalid("cannot remove heads of \(description.modelType): transformers derives its head size from hidden_size / heads (and transformers 5 ignores pruned_heads), so no config would load with fewer heads; --intermediate, --drop-layers and --sparsity work")
        }
        let a = description.blocks.map(\.attention)
        guard Set(a.map(\.heads)).count <= 1, Set(a.map(\.kvHeads)).count <= 1, Set(a.map(\.headDim)).count <= 1 else {
            throw PruneError.invalid("\(description.modelType): layers differ in head counts, which one config key cannot express")
        }
        if keys.keyValueHeads == nil, let first = a.first, first.kvHeads != first.heads {
            throw PruneError.invalid("cannot remove heads of \(description.modelType): its config cannot state fewer key/value heads")
        }
    }

    /// Attention of block i: key/value groups (the removable units) and their query heads.
    func attention(_ i: Int) -> AttentionSpec { description.blocks[i].attention }

    /// Every tensor line belonging to key/value groups of block i.
    func groupCuts(_ i: Int) throws -> [Cut] {
        let a = attention(i)
        let (NH, NKV, hs) = (a.heads, a.kvHeads, a.headDim)
        let G = NH / NKV
        func span(_ units: [Int], _ size: Int) -> [Int] { units.flatMap { u in (0..<size).map { u * size + $0 } } }
        let queryLines = { (groups: [Int]) in span(groups, G * hs) }   // the group's query heads, hs each
        let kvLines = { (groups: [Int]) in span(groups, hs) }
        var cuts: [Cut] = []
        switch a.projections {
        case .split(let q, let k, let v):
            cuts += outputCuts(q, queryLines) + outputCuts(k, kvLines) + outputCuts(v, kvLines)
        case .fused(let qkv, .concatenated):
            cuts += outputCuts(qkv) { groups in
                queryLines(groups) + kvLines(groups).map { NH * hs + $0 } + kvLines(groups).map { (NH + NKV) * hs + $0 }
            }
        case .fused(let qkv, .grouped):
            cuts += outputCuts(qkv) { groups in span(groups, (G + 2) * hs) }
        }
        for (norm, lines) in [(a.queryNorm, queryLines), (a.keyNorm, kvLines)] {
            guard let n = norm, n.width != hs else { continue }  // per-head norms (width hs) are shared by every head
            guard n.perHead == nil, n.width == (n.role == .queryNorm ? NH : NKV) * hs else {
                throw PruneError.invalid("layer \(i): q/k norm `\(n.name)` cannot be cut by heads")
            }
            cuts.append(Cut(tensor: n.name + ".weight", axis: 0, lines: lines))
            if n.bias != .absent { cuts.append(Cut(tensor: n.name + ".bias", axis: 0, lines: lines)) }
        }
        cuts.append(inputCut(a.output, queryLines))
        return cuts
    }

    // MARK: Neurons

    /// Every tensor line belonging to MLP neurons of block i.
    func neuronCuts(_ i: Int) throws -> [Cut] {
        let b = description.blocks[i]
        guard let m = b.mlp else {
            throw PruneError.invalid("layer \(i) has \(b.moe != nil ? "a mixture of experts" : "no MLP"): narrowing experts is not supported (--heads, --drop-layers and --sparsity work)")
        }
        let same = { (units: [Int]) in units }
        var cuts: [Cut] = []
        switch m.projections {
        case .plain(let up): cuts += outputCuts(up, same)
        case .gated(let gate, let up): cuts += outputCuts(gate, same) + outputCuts(up, same)
        case .fusedGated(let gu): cuts += outputCuts(gu) { units in units + units.map { m.width + $0 } }
        }
        cuts.append(inputCut(m.down, same))
        return cuts
    }

    /// The MLP's output projection (its input axis is the MLP width).
    func mlpOutput(_ i: Int) -> LinearSpec? { description.blocks[i].mlp?.down }
}

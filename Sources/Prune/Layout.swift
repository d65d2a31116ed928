// Where each architecture keeps the units structured pruning removes, in Hugging Face's
// tensor names. Weights are 2-D and stored one of two ways:
//   Linear  [out, in]   (torch.nn.Linear: BERT, LLaMA)   output units are rows
//   Conv1D  [in, out]   (GPT-2's Conv1D)                 output units are columns
// A "slice" names a tensor, the axis that indexes the unit, and how many equal blocks the axis
// holds (3 for GPT-2's fused q|k|v `c_attn`): removing unit u removes it from every block.

import CkptCore

public enum PruneError: Error, Equatable, Sendable, CustomStringConvertible {
    case unsupportedArchitecture(String)
    case invalid(String)
    case unsupportedDType(tensor: String, dtype: DType)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let a): return "structured pruning supports gpt2, bert and llama/mistral/qwen2 models, not \(a)"
        case .invalid(let m): return m
        case .unsupportedDType(let t, let d): return "tensor `\(t)`: cannot prune \(d) weights (prune before quantizing)"
        }
    }
}

struct UnitSlice {
    var tensor: String
    /// Axis of a 2-D weight (0 rows, 1 columns), or 0 for a 1-D bias.
    var axis: Int
    /// Equal blocks along the axis (fused q|k|v: 3).
    var blocks: Int = 1
}

enum ArchKind: String { case gpt2, bert, llama }

struct Layout {
    var kind: ArchKind
    var prefix: String
    var layers: Int
    var hidden: Int
    /// Query heads per layer (GPT-2/BERT may differ per layer through `pruned_heads`).
    var heads: [Int]
    /// The config's head count (head size = hidden / this, for GPT-2/BERT).
    var configHeads: Int
    var kvHeads: Int
    var headSize: Int
    var inner: Int

    init(_ graph: WeightGraph) throws {
        guard let c = graph.config else { throw PruneError.invalid("structured pruning needs the model config") }
        let type = c.modelType ?? "(none)"
        switch type {
        case "gpt2": kind = .gpt2
        case "bert": kind = .bert
        case "llama", "mistral", "qwen2": kind = .llama
        default: throw PruneError.unsupportedArchitecture(type)
        }
        guard let C = c.hiddenSize, let L = c.numLayers, let NH = c.numHeads else {
            throw PruneError.invalid("config lacks hidden size, layer or head count")
        }
        hidden = C
        layers = L
        configHeads = NH
        kvHeads = c.numKeyValueHeads ?? NH
        headSize = c["head_dim"]?.intValue ?? C / NH
        inner = c.intermediateSize ?? 4 * C
        let anchor = ["gpt2": "wte.weight", "bert": "embeddings.word_embeddings.weight"][type] ?? "embed_tokens.weight"
        guard let name = graph.tensors.keys.first(where: { $0 == anchor || $0.hasSuffix("." + anchor) }) else {
            throw PruneError.invalid("no `\(anchor)` tensor")
        }
        prefix = String(name.dropLast(anchor.count))
        var counts = [Int](repeating: NH, count: L)
        if let pruned = c["pruned_heads"]?.objectValue {
            for (k, v) in pruned { if let l = Int(k), l < L { counts[l] = NH - (v.arrayValue?.count ?? 0) } }
        }
        heads = counts
    }

    func block(_ i: Int) -> String {
        switch kind {
        case .gpt2: return prefix + "h.\(i)."
        case .bert: return prefix + "encoder.layer.\(i)."
        case .llama: return prefix + "layers.\(i)."
        }
    }

    /// The block-level name prefix pattern (without the index), for renumbering layers.
    var blockStem: String {
        switch kind {
        case .gpt2: return prefix + "h."
        case .bert: return prefix + "encoder.layer."
        case .llama: return prefix + "layers."
        }
    }

    /// Tensors whose rows/columns are indexed by the attention width (query-head side).
    func attentionSlices(_ i: Int) -> [UnitSlice] {
        let b = block(i)
        switch kind {
        case .gpt2:
            return [UnitSlice(tensor: b + "attn.c_attn.weight", axis: 1, blocks: 3), UnitSlice(tensor: b + "attn.c_attn.bias", axis: 0, blocks: 3),
                    UnitSlice(tensor: b + "attn.c_proj.weight", axis: 0)]
        case .bert:
            return ["query", "key", "value"].flatMap { p in
                [UnitSlice(tensor: b + "attention.self.\(p).weight", axis: 0), UnitSlice(tensor: b + "attention.self.\(p).bias", axis: 0)]
            } + [UnitSlice(tensor: b + "attention.output.dense.weight", axis: 1)]
        case .llama:
            return [UnitSlice(tensor: b + "self_attn.q_proj.weight", axis: 0), UnitSlice(tensor: b + "self_attn.q_proj.bias", axis: 0),
                    UnitSlice(tensor: b + "self_attn.o_proj.weight", axis: 1)]
        }
    }

    /// LLaMA's key/value projections, indexed by key/value heads.
    func keyValueSlices(_ i: Int) -> [UnitSlice] {
        guard kind == .llama else { return [] }
        let b = block(i)
        return ["k", "v"].flatMap { p in
            [UnitSlice(tensor: b + "self_attn.\(p)_proj.weight", axis: 0), UnitSlice(tensor: b + "self_attn.\(p)_proj.bias", axis: 0)]
        }
    }

    /// The output projection of attention (its input axis is the attention width).
    func attentionOutput(_ i: Int) -> String {
        switch kind {
        case .gpt2: return block(i) + "attn.c_proj.weight"
        case .bert: return block(i) + "attention.output.dense.weight"
        case .llama: return block(i) + "self_attn.o_proj.weight"
        }
    }

    /// Tensors indexed by MLP neurons.
    func mlpSlices(_ i: Int) -> [UnitSlice] {
        let b = block(i)
        switch kind {
        case .gpt2:
            return [UnitSlice(tensor: b + "mlp.c_fc.weight", axis: 1), UnitSlice(tensor: b + "mlp.c_fc.bias", axis: 0),
                    UnitSlice(tensor: b + "mlp.c_proj.weight", axis: 0)]
        case .bert:
            return [UnitSlice(tensor: b + "intermediate.dense.weight", axis: 0), UnitSlice(tensor: b + "intermediate.dense.bias", axis: 0),
                    UnitSlice(tensor: b + "output.dense.weight", axis: 1)]
        case .llama:
            return ["gate", "up"].flatMap { p in
                [UnitSlice(tensor: b + "mlp.\(p)_proj.weight", axis: 0), UnitSlice(tensor: b + "mlp.\(p)_proj.bias", axis: 0)]
            } + [UnitSlice(tensor: b + "mlp.down_proj.weight", axis: 1)]
        }
    }

    /// The MLP's output projection (its input axis is the MLP width).
    func mlpOutput(_ i: Int) -> String {
        switch kind {
        case .gpt2: return block(i) + "mlp.c_proj.weight"
        case .bert: return block(i) + "output.dense.weight"
        case .llama: return block(i) + "mlp.down_proj.weight"
        }
    }

    /// Whether a 2-D weight is stored [in, out] (GPT-2's Conv1D) rather than [out, in].
    func isConv1D(_ name: String) -> Bool {
        kind == .gpt2 && (name.hasSuffix("c_attn.weight") || name.hasSuffix("c_proj.weight") || name.hasSuffix("c_fc.weight"))
    }

    /// Config keys holding the MLP width and layer count.
    var innerKey: String { kind == .gpt2 ? "n_inner" : "intermediate_size" }
    var layersKey: String { kind == .gpt2 ? "n_layer" : "num_hidden_layers" }
}

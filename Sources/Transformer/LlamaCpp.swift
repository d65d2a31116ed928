// llama.cpp's view of a model: for every parameter slot of the description its GGUF name and
// the rearrangement llama.cpp's loader expects, and the `<arch>.*` keys — all derived from
// roles and the description, learned from llama.cpp's converter (convert_hf_to_gguf.py) and
// gguf-py's tensor names (constants.py). Formats/GGUF/GGUFNaming applies the plan.
//
// Names by role (blk.N. for block parameters; .weight / .bias kept):
//   tokenEmbedding token_embd · positionEmbedding position_embd · tokenTypeEmbedding token_types
//   embeddingNorm token_embd_norm · finalNorm output_norm · head output
//   attentionNorm attn_norm · query/key/value attn_q/attn_k/attn_v · qkv attn_qkv
//   queryNorm/keyNorm attn_q_norm/attn_k_norm · attentionOutput attn_output
//   postAttentionNorm post_attention_norm · attentionResidualNorm (post-LN) attn_output_norm
//   mlpNorm ffn_norm (attn_norm_2 in Falcon's two-norm blocks) · gate ffn_gate · up and
//   gateUp ffn_up · down ffn_down · postMLPNorm post_ffw_norm · mlpResidualNorm layer_output_norm
// Rearrangements:
//   - rotary permutation: Hugging Face rotates the two halves of a head, llama.cpp's "normal"
//     rope type (LLaMA, Granite) adjacent pairs, so q and k rows (and biases) are permuted
//     within each head, as the converter does; "neox" rope archs (Qwen, Gemma, Phi-3, ...) keep
//     Hugging Face's order;
//   - fused q/k/v stored per key/value group (GPT-NeoX, Falcon) become q | k | v;
//   - GPT-2's Conv1D weights ([in, out]) are transposed;
//   - Gemma's norms store w and compute x·(1+w); the converter writes 1+w.
// Mixture-of-experts blocks: the experts' gate/up/down matrices of a layer are stacked into one
// 3-D tensor each (`ffn_gate_exps` [E, I, C], `ffn_up_exps`, `ffn_down_exps` [E, C, I]), the
// shared expert is `ffn_*_shexp` and its gate `ffn_gate_inp_shexp`, the router `ffn_gate_inp`;
// keys `expert_count`, `expert_used_count`, `expert_feed_forward_length`,
// `expert_shared_feed_forward_length` (`stacks` in the plan; GGUFNaming stacks and splits).
// Per-head norms (StableLM 2's q/k LayerNorms, one [head_dim] tensor per head) are stacked the
// same way into `attn_q_norm`/`attn_k_norm` [heads, head_dim].
// llama3 rope scaling becomes the `rope_freqs.weight` tensor the converter computes; longrope
// (Phi-3) `rope_factors_long/short.weight` with `rope.scaling.attn_factor` and the original context.
// Encoders are llama.cpp's bert: RoBERTa's (and XLM-RoBERTa's) position table loses its rows
// before padding_idx + 1 (llama.cpp counts positions from 0), DistilBERT has no token-type table
// (token_type_count 1). ModernBERT is llama.cpp's modern-bert: fused Wqkv and Wi kept as
// attn_qkv and ffn_up, its local/global layers and two rope thetas as keys.
// Families llama.cpp cannot run (or features it lacks) come back as `warnings`, never silently.

import CkptCore
import Foundation

public enum LlamaCpp {
    /// How llama.cpp knows one Hugging Face family.
    public struct Arch: Sendable {
        public var name: String
        /// llama.cpp's "normal" rope type: q/k rows are permuted to adjacent pairs.
        public var interleavedRope = false
        /// Keys llama.cpp reads that only this arch has (e.g. parallel residual).
        public var parallelResidualKey = false
        /// Why llama.cpp cannot run it (names and keys are still written where they map).
        public var unsupported: String? = nil
    }

    /// model_type -> llama.cpp architecture: the one table of llama.cpp's architecture names.
    public static let architectures: [String: Arch] = [
        "llama": Arch(name: "llama", interleavedRope: true),
        "mistral": Arch(name: "llama", interleavedRope: true),
        "mixtral": Arch(name: "llama", interleavedRope: true),
        "qwen2_moe": Arch(name: "qwen2moe"),
        "qwen3_moe": Arch(name: "qwen3moe"),
        "granite": Arch(name: "granite", interleavedRope: true),
        "qwen2": Arch(name: "qwen2"),
        "qwen3": Arch(name: "qwen3"),
        "gemma": Arch(name: "gemma"),
        "gemma2": Arch(name: "gemma2"),
        "gemma3_text": Arch(name: "gemma3"),
        "phi3": Arch(name: "phi3"),
        "starcoder2": Arch(name: "starcoder2"),
        "olmo2": Arch(name: "olmo2"),
        "stablelm": Arch(name: "stablelm"),
        "gpt_neox": Arch(name: "gptneox", parallelResidualKey: true),
        "falcon": Arch(name: "falcon"),
        "gpt2": Arch(name: "gpt2"),
        "bert": Arch(name: "bert"),
        // As llama.cpp's converter: bert with the position rows before padding_idx + 1 dropped.
        "roberta": Arch(name: "bert"),
        // RoBERTa's layout with a t5 (SentencePiece Unigram) vocabulary.
        "xlm-roberta": Arch(name: "bert"),
        // As llama.cpp's converter: bert without a token-type table (token_type_count 1).
        "distilbert": Arch(name: "bert"),
        // Fused Wqkv and Wi kept (attn_qkv, ffn_up: llama.cpp's GEGLU gates with the second
        // half as transformers does); local layers as sliding_window/_pattern, rope.freq_base_swa.
        "modernbert": Arch(name: "modern-bert"),
    ]

    /// Families ckpt runs that it does not write for llama.cpp, and why (the warning line).
    public static let notWritten: [String: String] = [
        "opt": "llama.cpp has no OPT architecture",
        "seed_transformer": "ckpt's own seed encoder has no llama.cpp architecture",
    ]

    public enum Transform: Sendable, Equatable {
        case none
        /// Conv1D [in, out] -> [out, in].
        case transpose
        /// Rows: gguf row r = hf row order[r].
        case rows([Int])
        /// w -> w + 1 (inverse w - 1).
        case plusOne
        /// The first n rows dropped (inverse: n zero rows put back): RoBERTa's position table
        /// starts at padding_idx + 1, llama.cpp's at 0.
        case dropLeadingRows(Int)
    }

    public struct Entry: Sendable {
        public var gguf: String
        public var transform: Transform
    }

    public enum Value: Sendable, Equatable {
        case u32(UInt32), f32(Float), bool(Bool), string(String)
    }

    public struct Plan: Sendable {
        /// llama.cpp's architecture name, nil when ckpt cannot name its tensors.
        public var arch: String?
        /// Hugging Face name -> GGUF name and rearrangement.
        public var tensors: [String: Entry] = [:]
        /// `general.*` and `<arch>.*` keys, in the order to write them.
        public var keys: [(String, Value)] = []
        /// Tensors stacked into one: GGUF name -> the Hugging Face names of its slices, in order
        /// (a layer's experts).
        public var stacks: [String: [String]] = [:]
        /// Tensors llama.cpp needs that the checkpoint does not store (name, shape, f32 values).
        public var extraTensors: [(name: String, shape: [Int], values: [Float])] = []
        /// One line each: what llama.cpp will not run or will compute differently.
        public var warnings: [String] = []

        public init(arch: String? = nil, warnings: [String] = []) {
            self.arch = arch
            self.warnings = warnings
        }
    }

    /// The description of a checkpoint whose tensors carry Hugging Face names but maybe GGUF
    /// layouts (shapes are not checked): what reading a GGUF back needs.
    public static func describeNames(_ graph: WeightGraph) throws -> ModelDescription {
        guard let config = graph.config, let family = Architectures.family(for: config.modelType) else {
            throw TransformerError.unsupportedArchitecture(graph.config?.modelType ?? "(no config)")
        }
        return try family.describe(ConfigReader(config, graph: graph))
    }

    static func roleName(_ role: ParamRole, block: BlockSpec?) -> String? {
        switch role {
        case .tokenEmbedding: return "token_embd"
        case .positionEmbedding: return "position_embd"
        case .tokenTypeEmbedding: return "token_types"
        case .embeddingNorm: return "token_embd_norm"
        case .finalNorm: return "output_norm"
        case .head: return "output"
        case .attentionNorm: return "attn_norm"
        case .query: return "attn_q"
        case .key: return "attn_k"
        case .value: return "attn_v"
        case .qkv: return "attn_qkv"
        case .queryNorm: return "attn_q_norm"
        case .keyNorm: return "attn_k_norm"
        case .attentionOutput: return "attn_output"
        case .postAttentionNorm: return "post_attention_norm"
        // Falcon's parallel blocks with two input norms: the second is attn_norm_2 (GPT-NeoX's
        // is ffn_norm: see plan).
        case .mlpNorm: return block?.parallel == true ? "attn_norm_2" : "ffn_norm"
        case .gate: return "ffn_gate"
        case .up, .gateUp: return "ffn_up"
        case .down: return "ffn_down"
        case .postMLPNorm: return "post_ffw_norm"
        case .router: return "ffn_gate_inp"
        case .sharedExpertGate: return "ffn_gate_inp_shexp"
        case .embeddingProjection, .outputProjection: return nil
        }
    }

    /// Residual norms have no role of their own: BERT's post-LN norms by their place in the block.
    static func residualNormName(_ name: String, block: BlockSpec) -> String? {
        if block.attentionResidualNorm?.name == name { return "attn_output_norm" }
        if block.mlpResidualNorm?.name == name { return "layer_output_norm" }
        return nil
    }

    /// Rows of a rotary q/k matrix in llama.cpp's adjacent-pair order.
    public static func rotaryOrder(rows: Int, heads: Int) -> [Int]? {
        guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0 else { return nil }
        let hs = rows / heads, half = hs / 2
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads { for i in 0..<half { for j in 0..<2 { order[h * hs + 2 * i + j] = h * hs + j * half + i } } }
        return order
    }

    /// Rows of a fused q/k/v stored per key/value group, reordered to q | k | v.
    static func groupedOrder(heads: Int, kvHeads: Int, headDim hs: Int) -> [Int] {
        let perGroup = heads / kvHeads + 2
        var q: [Int] = [], k: [Int] = [], v: [Int] = []
        for g in 0..<kvHeads {
            let base = g * perGroup * hs
            for h in 0..<(perGroup - 2) { q += (0..<hs).map { base + h * hs + $0 } }
            k += (0..<hs).map { base + (perGroup - 2) * hs + $0 }
            v += (0..<hs).map { base + (perGroup - 1) * hs + $0 }
        }
        return q + k + v
    }

    /// "1K", "135M", "8B", as gguf-py rounds parameter counts.
    static func sizeLabel(_ n: Int) -> String {
        let x = Double(n)
        let (s, u) = x > 1e12 ? (x * 1e-12, "T") : x > 1e9 ? (x * 1e-9, "B") : x > 1e6 ? (x * 1e-6, "M") : (x * 1e-3, "K")
        return "\(Int(s.rounded()))\(u)"
    }

    /// llama.cpp's plan for a described checkpoint.
    public static func plan(_ d: ModelDescription, config: ModelConfig) -> Plan {
        var p = Plan()
        guard let arch = architectures[d.modelType] else {
            let why = notWritten[d.modelType] ?? "llama.cpp has no architecture for model_type \(d.modelType)"
            p.warnings.append("\(d.modelType): \(why): tensors keep their Hugging Face names and llama.cpp will not load the file")
            return p
        }
        if let u = arch.unsupported { p.warnings.append("llama.cpp cannot run \(d.modelType): \(u)") }
        if d.embedding.projection != nil || d.head.projection != nil {
            p.warnings.append("llama.cpp layout for \(d.modelType) embedding projections is not written by ckpt: tensors keep their Hugging Face names and llama.cpp will not load the file")
            return p
        }
        // Experts: weight name -> (stacked stem, expert index, expert count); shared expert stems.
        var expertOf: [String: (stem: String, index: Int, count: Int)] = [:]
        var sharedOf: [String: String] = [:]
        func ffnStem(_ role: ParamRole) -> String? {
            switch role { case .gate: return "ffn_gate"; case .up: return "ffn_up"; case .down: return "ffn_down"; default: return nil }
        }
        for b in d.blocks {
            guard let moe = b.moe else { continue }
            for (e, x) in moe.experts.enumerated() {
                for l in x.linears {
                    guard let stem = ffnStem(l.role), l.bias == .absent else {
                        p.warnings.append("\(l.weightName): llama.cpp's experts have separate gate/up/down matrices without biases; the file keeps its Hugging Face names")
                        return Plan(arch: nil, warnings: p.warnings)
                    }
                    expertOf[l.weightName] = (stem + "_exps", e, moe.experts.count)
                }
            }
            for l in moe.shared?.linears ?? [] { if let stem = ffnStem(l.role) { sharedOf[l.weightName] = stem + "_shexp" } }
        }
        if d.blocks.contains(where: { $0.moe != nil }) && d.blocks.contains(where: { $0.moe == nil }) {
            p.warnings.append("\(d.modelType): llama.cpp's \(arch.name) expects experts in every layer; layers with a dense MLP (mlp_only_layers, decoder_sparse_step) will not load")
        }
        let slots = d.slots()
        // llama.cpp's modern-bert graph has no bias anywhere (ModernBERT's norm_bias,
        // attention_bias and mlp_bias are false in the released models).
        if arch.name == "modern-bert", let bias = slots.first(where: \.isBias) {
            p.warnings.append("\(bias.name): llama.cpp's modern-bert has no biases (norm_bias, attention_bias, mlp_bias must be false); the file keeps its Hugging Face names")
            return Plan(arch: nil, warnings: p.warnings)
        }
        var blocks: [Int: BlockSpec] = [:]
        for b in d.blocks { blocks[b.index] = b }
        var names: [String: Entry] = [:]
        // Norms computing x·(offset + w) (Gemma's 1 + w): llama.cpp multiplies by the stored weight.
        let allNorms = d.blocks.flatMap(\.norms) + [d.head.finalNorm, d.embedding.norm].compactMap { $0 }
        let offsetNorms = Set(allNorms.filter { $0.weightOffset == 1 }.flatMap(\.parameterNames))
        for s in slots {
            let block = s.layer.flatMap { blocks[$0] }
            let base = s.isBias ? String(s.name.dropLast(".bias".count)) : (s.name.hasSuffix(".weight") ? String(s.name.dropLast(".weight".count)) : s.name)
            guard var stem = block.flatMap({ residualNormName(base, block: $0) }) ?? roleName(s.role, block: block) else {
                p.warnings.append("\(s.name): llama.cpp has no tensor for role \(s.role.rawValue); the file keeps its Hugging Face names")
                return Plan(arch: nil, warnings: p.warnings)
            }
            // Per-head norms (StableLM 2's q/k LayerNorms): stacked into one [heads, head_dim] tensor.
            if let block, let layer = s.layer, let norm = block.norms.first(where: { $0.perHead != nil && $0.parameterNames.contains(base) }),
               let head = norm.parameterNames.firstIndex(of: base) {
                guard !s.isBias else {
                    p.warnings.append("\(s.name): llama.cpp's per-head norms have no bias; the file keeps its Hugging Face names")
                    return Plan(arch: nil, warnings: p.warnings)
                }
                let name = "blk.\(layer).\(stem).weight"
                var parts = p.stacks[name] ?? [String](repeating: "", count: norm.parameterNames.count)
                parts[head] = s.name
                p.stacks[name] = parts
                continue
            }
            if stem == "attn_norm_2" && arch.name != "falcon" { stem = "ffn_norm" }
            if let x = expertOf[s.name], let layer = s.layer {
                let name = "blk.\(layer).\(x.stem).weight"
                var parts = p.stacks[name] ?? [String](repeating: "", count: x.count)
                parts[x.index] = s.name
                p.stacks[name] = parts
                continue
            }
            let gguf = (s.layer.map { "blk.\($0)." } ?? "") + (sharedOf[s.name] ?? stem) + (s.isBias ? ".bias" : ".weight")
            var t = Transform.none
            if let block {
                let a = block.attention
                if arch.interleavedRope, a.rope != nil, s.role == .query || s.role == .key {
                    let heads = s.role == .query ? a.heads : a.kvHeads
                    if let order = rotaryOrder(rows: s.shape[0], heads: heads) { t = .rows(order) }
                }
                if s.role == .qkv, case .fused(_, .grouped) = a.projections {
                    t = .rows(groupedOrder(heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim))
                }
                if s.role == .qkv || s.role == .attentionOutput || s.role == .up || s.role == .down,
                   !s.isBias, (a.linears + (block.mlp?.linears ?? [])).contains(where: { $0.weightName == s.name && $0.layout == .conv1d }) {
                    t = .transpose
                }
            }
            if !s.isBias, offsetNorms.contains(base) { t = .plusOne }
            if s.role == .positionEmbedding, let first = d.embedding.positionPaddingID.map({ $0 + 1 }) ?? (d.embedding.positionOffset > 0 ? d.embedding.positionOffset : nil) {
                t = .dropLeadingRows(first)
            }
            if let other = names.values.first(where: { $0.gguf == gguf }) {
                p.warnings.append("\(s.name): two tensors map to \(other.gguf); the file keeps its Hugging Face names")
                return Plan(arch: nil, warnings: p.warnings)
            }
            names[s.name] = Entry(gguf: gguf, transform: t)
        }
        // A stack of one (a single key/value head's norm, one expert) is the tensor itself:
        // llama.cpp's shape check treats a trailing dimension of 1 as absent.
        for (name, parts) in p.stacks where parts.count == 1 {
            names[parts[0]] = Entry(gguf: name, transform: .none)
            p.stacks[name] = nil
        }
        if let (name, parts) = p.stacks.first(where: { $0.value.contains("") }) {
            p.warnings.append("\(name): the checkpoint lacks some of the \(parts.count) tensors stacked in it; the file keeps its Hugging Face names")
            return Plan(arch: nil, warnings: p.warnings)
        }
        p.arch = arch.name
        p.tensors = names
        p.keys = keys(d, config: config, arch: arch, slots: slots, plan: &p)
        return p
    }

    /// ModernBERT's alternating layers as llama.cpp's modern-bert reads them: local layers see
    /// keys with |i − j| ≤ sliding_window / 2 (ckpt's window counts the key itself, so
    /// sliding_window = 2·(window − 1)); layer i is global when i % sliding_window_pattern == 0;
    /// rope.freq_base is the global layers' theta (set from the first layer, which is global),
    /// rope.freq_base_swa the local layers'. Layer kinds that are not that pattern are warned.
    static func modernBertLayers(_ d: ModelDescription, key u32: (String, Int?) -> Void, f32: (String, Double?) -> Void, plan p: inout Plan) {
        let local = d.blocks.filter { $0.attention.window != nil }
        guard let firstLocal = local.first, let w = firstLocal.attention.window else { return }
        u32("attention.sliding_window", 2 * (w - 1))
        let period = d.blocks.first(where: { $0.index > 0 && $0.attention.window == nil })?.index ?? d.blocks.count
        u32("attention.sliding_window_pattern", period)
        f32("rope.freq_base_swa", firstLocal.attention.rope?.theta)
        let periodic = d.blocks.allSatisfy { ($0.index % period == 0) == ($0.attention.window == nil) }
        if !periodic || d.blocks.first?.attention.window != nil || local.contains(where: { $0.attention.window != w || $0.attention.rope != firstLocal.attention.rope }) {
            p.warnings.append("\(d.modelType): layer_types are not every \(period)th layer global (from layer 0) with one window and theta for the local ones; llama.cpp's modern-bert assumes that pattern, so outputs differ")
        }
    }

    static func isNorm(_ r: ParamRole) -> Bool {
        [.attentionNorm, .mlpNorm, .postAttentionNorm, .postMLPNorm, .finalNorm, .queryNorm, .keyNorm, .embeddingNorm].contains(r)
    }

    static func keys(_ d: ModelDescription, config c: ModelConfig, arch: Arch, slots: [ParamSlot], plan p: inout Plan) -> [(String, Value)] {
        let a = arch.name
        var kv: [(String, Value)] = []
        func u32(_ k: String, _ v: Int?) { if let v, v >= 0, v <= Int(UInt32.max) { kv.append((a + "." + k, .u32(UInt32(v)))) } }
        func f32(_ k: String, _ v: Double?) { if let v { kv.append((a + "." + k, .f32(Float(v)))) } }
        kv.append(("general.type", .string("model")))
        let name = c["_name_or_path"]?.stringValue.flatMap { $0.split(separator: "/").last.map(String.init) } ?? d.architecture
        kv.append(("general.name", .string(name)))
        let params = slots.reduce(0) { $0 + $1.shape.reduce(1, *) }
        kv.append(("general.size_label", .string(sizeLabel(params))))
        kv.append(("general.quantization_version", .u32(2)))
        let first = d.blocks.first
        u32("context_length", d.maxPositions ?? c.maxPositions)
        u32("embedding_length", d.hiddenSize)
        u32("block_count", d.blocks.count)
        let moe = d.blocks.lazy.compactMap(\.moe).first
        u32("feed_forward_length", first?.mlp?.width ?? c["intermediate_size"]?.intValue ?? moe?.experts.first?.width)
        if let moe {
            u32("expert_count", moe.experts.count)
            u32("expert_used_count", moe.topK)
            if a != "llama" { u32("expert_feed_forward_length", moe.experts.first?.width) }
            if let sh = moe.shared { u32("expert_shared_feed_forward_length", sh.width) }
            // llama.cpp renormalises the chosen experts' weights for Mixtral and Qwen3-MoE, not Qwen2-MoE.
            if moe.normalizeTopK != (a != "qwen2moe") {
                p.warnings.append("\(d.modelType): norm_topk_prob \(moe.normalizeTopK) but llama.cpp's \(a) \(moe.normalizeTopK ? "does not renormalise" : "renormalises") the chosen experts' weights; outputs differ")
            }
        }
        if let at = first?.attention {
            u32("attention.head_count", at.heads)
            u32("attention.head_count_kv", at.kvHeads)
            u32("attention.key_length", at.headDim)
            u32("attention.value_length", at.headDim)
            if !at.causal { kv.append((a + ".attention.causal", .bool(false))) }
            if a == "modern-bert" {
                modernBertLayers(d, key: u32, f32: f32, plan: &p)
            } else if let w = d.blocks.compactMap({ $0.attention.window }).first {
                u32("attention.sliding_window", w)
                if !["gemma2", "gemma3"].contains(a) {
                    p.warnings.append("\(d.modelType): llama.cpp's \(a) runs every layer with full attention; ckpt and transformers mask keys older than \(w) positions, so outputs differ beyond \(w) tokens")
                }
            }
            if let cap = at.softcap { f32("attn_logit_softcapping", Double(cap)) }
            if a != "granite", abs(at.scale * Float(at.headDim).squareRoot() - 1) > 1e-6 {
                p.warnings.append("\(d.modelType): attention scale \(at.scale) is not 1/sqrt(head_dim); llama.cpp's \(a) may use its own")
            }
        }
        if let cap = d.head.softcap { f32("final_logit_softcapping", Double(cap)) }
        if let n = first?.norms.first ?? d.head.finalNorm {
            f32(n.kind == .rmsNorm ? "attention.layer_norm_rms_epsilon" : "attention.layer_norm_epsilon", Double(n.eps))
        }
        if arch.parallelResidualKey { kv.append((a + ".use_parallel_residual", .bool(first?.parallel ?? false))) }
        if let rope = first?.attention.rope {
            u32("rope.dimension_count", rope.rotaryDim)
            f32("rope.freq_base", rope.theta)
            switch rope.scaling {
            case .none: break
            case .linear(let f):
                kv.append((a + ".rope.scaling.type", .string("linear"))); f32("rope.scaling.factor", f)
            case .yarn(let f, let orig, let fast, let slow, let attn, _):
                kv.append((a + ".rope.scaling.type", .string("yarn"))); f32("rope.scaling.factor", f)
                u32("rope.scaling.original_context_length", orig)
                f32("rope.scaling.yarn_beta_fast", fast); f32("rope.scaling.yarn_beta_slow", slow)
                f32("rope.scaling.attn_factor", attn)
            case .llama3(let f, let lo, let hi, let orig):
                // As the converter: per-frequency factors in rope_freqs.weight.
                let hs = rope.rotaryDim
                var factors: [Float] = []
                for i in stride(from: 0, to: hs, by: 2) {
                    let freq = 1 / pow(rope.theta, Double(i) / Double(hs)), wavelen = 2 * Double.pi / freq
                    let loWave = Double(orig) / lo, hiWave = Double(orig) / hi
                    if wavelen < hiWave { factors.append(1) } else if wavelen > loWave { factors.append(Float(f)) } else {
                        let smooth = (Double(orig) / wavelen - lo) / (hi - lo)
                        factors.append(Float(1 / ((1 - smooth) / f + smooth)))
                    }
                }
                p.extraTensors.append((name: "rope_freqs.weight", shape: [hs / 2], values: factors))
            case .dynamic:
                p.warnings.append("\(d.modelType): llama.cpp has no dynamic NTK rope scaling; it runs unscaled rotary")
            case .longrope(let short, let long, let orig, let attn):
                // As the converter: both factor lists as tensors (llama.cpp picks long ones when
                // its context exceeds the original), the cos/sin factor and original context.
                u32("rope.scaling.original_context_length", orig)
                f32("rope.scaling.attn_factor", attn)
                p.extraTensors.append((name: "rope_factors_long.weight", shape: [long.count], values: long.map { Float($0) }))
                p.extraTensors.append((name: "rope_factors_short.weight", shape: [short.count], values: short.map { Float($0) }))
            }
        }
        // Granite's multipliers.
        if a == "granite" {
            if let s = first?.attention.scale { f32("attention.scale", Double(s)) }
            if let s = d.embedding.scale { f32("embedding_scale", Double(s)) }
            if let s = first?.residualScale { f32("residual_scale", Double(s)) }
            if let s = d.head.scale, s != 0 { f32("logit_scale", 1 / Double(s)) }
        }
        u32("vocab_size", d.vocabSize)
        // BERT-style token type table: llama.cpp's bert refuses a file without its row count.
        if let tt = slots.first(where: { $0.role == .tokenTypeEmbedding && !$0.isBias }), let n = tt.shape.first {
            kv.append(("tokenizer.ggml.token_type_count", .u32(UInt32(n))))
        } else if a == "bert" {
            kv.append(("tokenizer.ggml.token_type_count", .u32(1)))
        }
        return kv
    }
}

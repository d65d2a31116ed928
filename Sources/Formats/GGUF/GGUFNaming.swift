// Tensor and metadata names between Hugging Face checkpoints and llama.cpp's GGUF files.
//
// Writing: the architecture description says what each parameter is (its role); Transformer/
// LlamaCpp.swift turns roles into llama.cpp's names (`blk.N.attn_q.weight`), the rearrangements
// llama.cpp's loader expects (rotary q/k row permutation, grouped q/k/v to q|k|v, Conv1D
// transposes, Gemma's 1 + w norms) and the `general.*` / `<arch>.*` keys. This file applies
// that plan to a graph. 1-D tensors are written as f32 whatever their dtype. The Hugging Face
// config.json is kept verbatim under `ckpt.hf_config` and every tensor's Hugging Face name
// under `ckpt.hf_names`, so reading ckpt's GGUF back undoes the plan exactly.
//
// Reading GGUF files from elsewhere (no `ckpt.hf_names`): LLaMA and GPT-2 are mapped back by
// the name tables below and their config rebuilt from llama.cpp's keys:
//   model.embed_tokens / model.norm / lm_head      token_embd / output_norm / output
//   model.layers.N.input_layernorm ... mlp.down_proj   blk.N.attn_norm ... blk.N.ffn_down
//   (q and k rows un-permuted: GGUF row h·hs + 2i + j is Hugging Face row h·hs + j·hs/2 + i)
//   GPT-2: wte / wpe / ln_f / h.N.ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj
//   (Conv1D weights transposed back).
//   Mixtral (llama with expert_count): ffn_gate_inp -> block_sparse_moe.gate, the stacked
//   ffn_gate/up/down_exps split into block_sparse_moe.experts.E.w1/w3/w2.
// Other architectures from elsewhere keep llama.cpp's names.

import CkptCore
import Foundation
import OrderedCollections
import Quantize
import Transformer

public enum GGUFNaming {
    public static let hfConfigKey = "ckpt.hf_config"

    /// Whether the graph already uses llama.cpp's names.
    public static func isGGUFNamed(_ g: WeightGraph) -> Bool {
        g.tensors["token_embd.weight"] != nil || g.tensors.keys.contains { $0.hasPrefix("blk.") }
    }

    // MARK: Name tables

    static let llamaGlobal: [(hf: String, gguf: String)] = [
        ("model.embed_tokens.weight", "token_embd.weight"), ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ]
    static let llamaLayer: [(hf: String, gguf: String)] = [
        ("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"),
        ("post_attention_layernorm", "ffn_norm"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ]
    static let gpt2Global: [(hf: String, gguf: String)] = [
        ("wte.weight", "token_embd.weight"), ("wpe.weight", "position_embd.weight"),
        ("ln_f.weight", "output_norm.weight"), ("ln_f.bias", "output_norm.bias"), ("lm_head.weight", "output.weight"),
    ]
    static let gpt2Layer: [(hf: String, gguf: String)] = [
        ("ln_1", "attn_norm"), ("attn.c_attn", "attn_qkv"), ("attn.c_proj", "attn_output"),
        ("ln_2", "ffn_norm"), ("mlp.c_fc", "ffn_up"), ("mlp.c_proj", "ffn_down"),
    ]
    /// GPT-2's Conv1D modules, whose weights GGUF stores transposed.
    static let gpt2Conv1D: Set<String> = ["attn_qkv", "attn_output", "ffn_up", "ffn_down"]

    /// `blk.N.<conv1d>.weight`
    static func isConv1D(_ ggufName: String) -> Bool {
        let parts = ggufName.split(separator: ".")
        return parts.count == 4 && parts[0] == "blk" && parts[3] == "weight" && gpt2Conv1D.contains(String(parts[2]))
    }

    /// Hugging Face name for a GGUF name (nil: not one ckpt maps).
    static func hfName(_ gguf: String, arch: String, gpt2Prefix: String = "transformer.") -> String? {
        let (global, layer, layerPrefix) = arch == "llama" ? (llamaGlobal, llamaLayer, "model.layers.") : (gpt2Global, gpt2Layer, "h.")
        let prefix = arch == "gpt2" ? gpt2Prefix : ""
        if let g = global.first(where: { $0.gguf == gguf }) { return g.hf == "lm_head.weight" ? g.hf : prefix + g.hf }
        guard gguf.hasPrefix("blk.") else { return nil }
        let rest = gguf.dropFirst(4)
        guard let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]) else { return nil }
        let tail = rest[rest.index(after: dot)...]
        for (h, g) in layer {
            for suffix in [".weight", ".bias"] where tail == g + suffix { return prefix + layerPrefix + "\(n).\(h)\(suffix)" }
        }
        return nil
    }

    // MARK: Rotary permutation

    /// Row order that turns Hugging Face's q/k rows into llama.cpp's (toGGUF) or back.
    static func ropeRowOrder(rows: Int, heads: Int, toGGUF: Bool) -> [Int]? {
        guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0 else { return nil }
        let hs = rows / heads, half = hs / 2
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let gg = h * hs + 2 * i + j, hf = h * hs + j * half + i
                    if toGGUF { order[gg] = hf } else { order[hf] = gg }
                }
            }
        }
        return order
    }

    static func permuteRows(_ t: Tensor, heads: Int, toGGUF: Bool) throws -> Tensor {
        guard let rows = t.shape.first, heads > 0, rows % heads == 0, (rows / heads) % 2 == 0 else {
            throw GGUFError.cannotWrite(tensor: t.name, reason: "\(t.shape.first ?? 0) rows do not split into \(heads) heads of even size")
        }
        // An empty tensor has no rows to move: nothing is sized by its (untrusted) dimensions.
        if t.byteCount == 0 { return t }
        guard let order = ropeRowOrder(rows: rows, heads: heads, toGGUF: toGGUF) else {
            throw GGUFError.cannotWrite(tensor: t.name, reason: "\(rows) rows do not split into \(heads) heads of even size")
        }
        return try Tensor(name: t.name, dtype: t.dtype, shape: t.shape, data: .external(RowPermutedBytes(source: t, order: order)))
    }

    static func transposed(_ t: Tensor, name: String) throws -> Tensor {
        guard t.shape.count == 2 else { throw GGUFError.cannotWrite(tensor: t.name, reason: "expected a 2-D Conv1D weight, found shape \(t.shape)") }
        let bytes = TransposedBytes(source: t)
        return try Tensor(name: name, dtype: t.dtype.isQuantized ? .f32 : t.dtype, shape: [t.shape[1], t.shape[0]], data: .external(bytes))
    }

    // MARK: Hugging Face -> GGUF

    /// Metadata key listing, for a file ckpt wrote, each GGUF tensor's Hugging Face name as
    /// "gguf=hf" strings: reading the file back maps names and layouts exactly back.
    public static let hfNamesKey = "ckpt.hf_names"

    /// Tensors Hugging Face checkpoints store that are buffers, not weights (dropped, as the
    /// converter drops them).
    static func isBuffer(_ name: String) -> Bool {
        name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias") || name.hasSuffix("rotary_emb.inv_freq")
    }

    /// Where warnings about what llama.cpp will not run go (stderr by default).
    nonisolated(unsafe) public static var warn: (String) -> Void = { line in
        FileHandle.standardError.write(Data(("warning: " + line + "\n").utf8))
    }

    /// The Hugging Face name of every GGUF tensor in a graph ckpt renamed (empty otherwise).
    /// A stacked tensor (experts) lists one entry per slice; this map keeps the first.
    public static func hfNames(of graph: WeightGraph) -> [String: String] {
        hfNameLists(of: graph).compactMapValues(\.first)
    }

    /// The Hugging Face names of every GGUF tensor in a graph ckpt renamed, in order: one for a
    /// plain tensor, one per slice for a stacked one.
    public static func hfNameLists(of graph: WeightGraph) -> [String: [String]] {
        guard let text = graph.metadata[hfNamesKey], let list = (try? JSONValue.parse(text))?.arrayValue else { return [:] }
        var out: [String: [String]] = [:]
        for e in list {
            guard let s = e.stringValue, let eq = s.firstIndex(of: "=") else { continue }
            out[String(s[..<eq]), default: []].append(String(s[s.index(after: eq)...]))
        }
        return out
    }

    /// One tensor of `parts` (same dtype and shape) stacked along a new first dimension.
    static func stacked(_ parts: [Tensor], name: String) throws -> Tensor {
        guard let first = parts.first else { throw GGUFError.cannotWrite(tensor: name, reason: "no tensors to stack") }
        for t in parts where t.dtype != first.dtype || t.shape != first.shape {
            throw GGUFError.cannotWrite(tensor: t.name, reason: "\(t.dtype) \(t.shape) cannot be stacked into \(name) with `\(first.name)` (\(first.dtype) \(first.shape))")
        }
        return try Tensor(name: name, dtype: first.dtype, shape: [parts.count] + first.shape, data: .external(StackedBytes(parts: parts)))
    }

    /// The slices of a stacked tensor along its first dimension, named `names`.
    static func split(_ t: Tensor, into names: [String]) throws -> [Tensor] {
        guard t.shape.count >= 2, t.shape[0] == names.count, t.byteCount % names.count == 0 else {
            throw GGUFError.cannotWrite(tensor: t.name, reason: "shape \(t.shape) does not split into the \(names.count) tensors stacked in it")
        }
        let each = t.byteCount / names.count
        return try names.enumerated().map { i, n in
            try Tensor(name: n, dtype: t.dtype, shape: Array(t.shape.dropFirst()), data: .external(SlicedBytes(source: t, offset: i * each, count: each)))
        }
    }

    static func value(_ v: LlamaCpp.Value) -> GGUFValue {
        switch v {
        case .u32(let x): return .u32(x)
        case .f32(let x): return .f32(x)
        case .bool(let x): return .bool(x)
        case .string(let x): return .string(x)
        }
    }

    /// Applies a llama.cpp rearrangement (or, `inverse`, undoes it).
    static func apply(_ transform: LlamaCpp.Transform, to t: Tensor, name: String, inverse: Bool) throws -> Tensor {
        switch transform {
        case .none:
            var r = t
            r.name = name
            return r
        case .transpose:
            return try transposed(t, name: name)
        case .rows(let order):
            guard t.shape.first == order.count else {
                throw GGUFError.cannotWrite(tensor: t.name, reason: "\(t.shape.first ?? 0) rows, expected \(order.count) for llama.cpp's q/k/v layout")
            }
            var o = order
            if inverse { for (r, s) in order.enumerated() { o[s] = r } }
            return try Tensor(name: name, dtype: t.dtype, shape: t.shape, data: .external(RowPermutedBytes(source: t, order: o)))
        case .dropLeadingRows(let n):
            guard let rows = t.shape.first, inverse || rows > n else {
                throw GGUFError.cannotWrite(tensor: t.name, reason: "\(t.shape.first ?? 0) rows; llama.cpp's layout drops the first \(n)")
            }
            var shape = t.shape
            shape[0] = inverse ? rows + n : rows - n
            return try Tensor(name: name, dtype: t.dtype, shape: shape, data: .external(LeadingRowsBytes(source: t, rows: rows, n: n, drop: !inverse)))
        case .plusOne:
            guard var f = try Cast.floats(t) else { throw GGUFError.cannotWrite(tensor: t.name, reason: "\(t.dtype) is not a float type") }
            for i in f.indices { f[i] += inverse ? -1 : 1 }
            return try Tensor(name: name, dtype: .f32, shape: t.shape, data: .owned(f.withUnsafeBytes { Array($0) }))
        }
    }

    /// 1-D float tensors (norms, biases) as f32: ggml's CPU kernels multiply f32 activations
    /// only by f32 vectors, and llama.cpp aborts on f16/bf16 norms (its converter writes f32).
    /// Routers (`ffn_gate_inp`) and stacked per-head norms too, as the converter writes them
    /// (llama-quantize keeps them). BERT's position and token-type tables too: llama.cpp adds
    /// their rows to f32 activations (ggml's CPU add has no f32 + f16/bf16 path; it aborts).
    static func oneDimensionalAsF32(_ t: Tensor) throws -> Tensor {
        guard t.shape.count < 2 || t.name.hasSuffix("ffn_gate_inp.weight") || t.name.hasSuffix("_norm.weight")
                || t.name == "position_embd.weight" || t.name == "token_types.weight",
              t.dtype != .f32, Cast.floatSources.contains(t.dtype) else { return t }
        return try Cast.lazyCast(t, to: .f32)
    }

    /// Renames a Hugging Face graph to llama.cpp's names and layouts and adds its keys, from
    /// the architecture description (Transformer/LlamaCpp.swift). Graphs already in GGUF
    /// naming pass through; a family llama.cpp cannot run keeps its Hugging Face names (with
    /// its config in `ckpt.hf_config`) and a warning line says so.
    public static func toGGUF(_ graph: WeightGraph) throws -> WeightGraph {
        if isGGUFNamed(graph) { return graph }
        var out = WeightGraph()
        out.metadata = graph.metadata
        out.config = graph.config
        var kvs = OrderedDictionary<String, GGUFValue>()
        let prepared = graph.metadata["general.architecture"] != nil && graph.metadata[hfConfigKey] != nil
        var plan = LlamaCpp.Plan()
        if let config = graph.config {
            do {
                plan = LlamaCpp.plan(try Transformers.describe(graph), config: config)
            } catch {
                plan.warnings.append("\(config.modelType ?? "model"): \(error); tensors keep their Hugging Face names and llama.cpp will not load the file")
            }
        } else if !prepared {
            plan.warnings.append("no config.json: tensors keep their names and llama.cpp will not load the file")
        }
        if !prepared { for w in plan.warnings { warn(w) } }
        guard let arch = plan.arch, let config = graph.config else {
            if !prepared, graph.metadata["general.architecture"] == nil || graph.config?.modelType != nil {
                kvs["general.architecture"] = .string(graph.config?.modelType ?? "unknown")
            }
            if let config = graph.config { kvs[hfConfigKey] = .string(String(decoding: config.serialized(), as: UTF8.self)) }
            for t in graph.tensors.values { try out.add(oneDimensionalAsF32(t)) }
            GGUFMetadata.store(kvs, into: &out)
            return out
        }
        var names: [GGUFValue] = []
        var stackOf: [String: (name: String, index: Int)] = [:]
        for (name, parts) in plan.stacks { for (i, hf) in parts.enumerated() { stackOf[hf] = (name, i) } }
        for t in graph.tensors.values {
            if let s = stackOf[t.name] {
                // Written where the first slice is; every slice must be there.
                guard s.index == 0, let hfs = plan.stacks[s.name] else { continue }
                let parts = try hfs.map { hf in
                    guard let p = graph.tensors[hf] else { throw GGUFError.cannotWrite(tensor: hf, reason: "missing; it is stacked into \(s.name)") }
                    return p
                }
                try out.add(oneDimensionalAsF32(stacked(parts, name: s.name)))
                names += hfs.map { .string(s.name + "=" + $0) }
                continue
            }
            guard let e = plan.tensors[t.name] else {
                if isBuffer(t.name) { continue }
                // As the converter drops BERT's pooler: llama.cpp refuses files with tensors it
                // does not know, and neither it nor ckpt's forward pass reads this one.
                warn("\(t.name): not read by \(config.modelType ?? arch)'s forward pass; left out of the GGUF file (llama.cpp refuses unknown tensors)")
                continue
            }
            if t.dtype.isQuantized, e.transform == LlamaCpp.Transform.transpose || e.transform == LlamaCpp.Transform.plusOne {
                throw GGUFError.cannotWrite(tensor: t.name, reason: "llama.cpp's layout rearranges it, which a quantized tensor cannot be; quantize straight to .gguf instead (ckpt quantize rearranges first)")
            }
            try out.add(oneDimensionalAsF32(apply(e.transform, to: t, name: e.gguf, inverse: false)))
            names.append(.string(e.gguf + "=" + t.name))
        }
        for x in plan.extraTensors where out.tensors[x.name] == nil {
            try out.add(Tensor(name: x.name, dtype: .f32, shape: x.shape, data: .owned(x.values.withUnsafeBytes { Array($0) })))
        }
        kvs["general.architecture"] = .string(arch)
        for (k, v) in plan.keys { kvs[k] = value(v) }
        // As the converter, which always writes it (a quantizer replaces it with its preset's).
        if graph.metadata[GGUF.fileTypeKey] == nil, let main = GGUF.mainType(of: out), let ft = GGUF.fileTypeByMainType[main] {
            kvs[GGUF.fileTypeKey] = .u32(ft)
        }
        kvs[hfConfigKey] = .string(String(decoding: config.serialized(), as: UTF8.self))
        kvs[hfNamesKey] = .array(.string, names)
        GGUFMetadata.store(kvs, into: &out)
        return out
    }

    // MARK: GGUF -> Hugging Face

    /// Renames a GGUF-named graph back to Hugging Face's names and layouts: exactly, from
    /// `ckpt.hf_names` and the description, for files ckpt wrote; from the name tables for
    /// LLaMA/GPT-2 files made elsewhere. Other graphs pass through unchanged.
    public static func toHF(_ graph: WeightGraph) throws -> WeightGraph {
        guard isGGUFNamed(graph) else { return graph }
        let lists = hfNameLists(of: graph)
        let map = lists.compactMapValues { $0.count == 1 ? $0[0] : nil }
        guard !lists.isEmpty, let config = graph.config else { return try legacyToHF(graph) }
        var renamed = WeightGraph()
        renamed.config = config
        for t in graph.tensors.values {
            if let hfs = lists[t.name], hfs.count > 1 {
                for part in try split(t, into: hfs) { try renamed.add(part) }
                continue
            }
            guard let hf = map[t.name] else { continue }  // rope_freqs and other derived tensors
            var r = t
            r.name = hf
            try renamed.add(r)
        }
        renamed.applyConfigTies()
        let plan = LlamaCpp.plan(try LlamaCpp.describeNames(renamed), config: config)
        var out = WeightGraph()
        out.config = config
        var kvs = (try? GGUFMetadata.values(of: graph)) ?? [:]
        let arch = kvs["general.architecture"].flatMap { if case .string(let s) = $0 { return s } else { return nil } } ?? ""
        for k in kvs.keys where k == "general.architecture" || k == hfConfigKey || k == hfNamesKey || k.hasPrefix(arch + ".")
            || ["general.type", "general.name", "general.size_label", "general.quantization_version", GGUF.fileTypeKey].contains(k) { kvs.removeValue(forKey: k) }
        GGUFMetadata.store(kvs, into: &out)
        for t in graph.tensors.values {
            if let hfs = lists[t.name], hfs.count > 1 {
                for h in hfs { if let part = renamed.tensors[h] { try out.add(part) } }
                continue
            }
            guard let hf = map[t.name] else {
                if plan.extraTensors.contains(where: { $0.name == t.name }) { continue }
                try out.add(t)
                continue
            }
            try out.add(apply(plan.tensors[hf]?.transform ?? .none, to: t, name: hf, inverse: true))
        }
        out.applyConfigTies()
        return out
    }

    /// llama.cpp's stacked Mixtral experts -> the Hugging Face module of each slice.
    static let mixtralExperts = ["ffn_gate_exps.weight": "w1", "ffn_up_exps.weight": "w3", "ffn_down_exps.weight": "w2"]

    /// `blk.N.rest` -> (N, rest).
    static func blockPart(_ name: String) -> (Int, String)? {
        guard name.hasPrefix("blk.") else { return nil }
        let rest = name.dropFirst(4)
        guard let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]) else { return nil }
        return (n, String(rest[rest.index(after: dot)...]))
    }

    /// LLaMA/GPT-2 GGUF files made by llama.cpp's converter (no `ckpt.hf_names`); Mixtral's
    /// (llama with `expert_count`) too.
    static func legacyToHF(_ graph: WeightGraph) throws -> WeightGraph {
        guard case .string(let arch)? = try? GGUFMetadata.values(of: graph, only: { $0 == "general.architecture" })["general.architecture"],
              arch == "llama" || arch == "gpt2" else { return graph }
        var out = WeightGraph()
        // Only the keys the config is built from are parsed; the others (the vocabulary's 10⁵
        // strings: a tenth of a 1.24B model's forward pass when parsed and written again) are
        // carried over as they are stored.
        let consumed: (String) -> Bool = { $0 == "general.architecture" || $0 == hfConfigKey || $0.hasPrefix(arch + ".") }
        let kvs = (try? GGUFMetadata.values(of: graph, only: consumed)) ?? [:]
        out.config = graph.config ?? config(fromKVs: kvs, graph: graph)
        out.metadata = graph.metadata.filter { !consumed($0.key) }
        if let t = out.metadata[GGUFMetadata.typesKey], let types = (try? JSONValue.parse(t))?.objectValue {
            let kept = types.filter { !consumed($0.key) }
            out.metadata[GGUFMetadata.typesKey] = kept.isEmpty ? nil : JSONValue.object(kept).serialized()
        }
        let heads = out.config?.numHeads ?? 0, kvHeads = out.config?.numKeyValueHeads ?? heads
        for t in graph.tensors.values {
            if t.name == "rope_freqs.weight" { continue }
            // Mixtral from llama.cpp's converter: stacked experts split back into w1/w3/w2.
            if arch == "llama", let (layer, stem) = blockPart(t.name), let hf = mixtralExperts[stem] {
                let E = t.shape.first ?? 0
                guard E > 0, E <= 4096 else { throw GGUFError.cannotWrite(tensor: t.name, reason: "\(E) experts") }
                let names = (0..<E).map { "model.layers.\(layer).block_sparse_moe.experts.\($0).\(hf).weight" }
                for part in try split(t, into: names) { try out.add(part) }
                continue
            }
            if arch == "llama", let (layer, stem) = blockPart(t.name), stem == "ffn_gate_inp.weight" {
                var r = t
                r.name = "model.layers.\(layer).block_sparse_moe.gate.weight"
                try out.add(r)
                continue
            }
            guard let name = hfName(t.name, arch: arch) else {
                try out.add(t)
                continue
            }
            var r = t
            r.name = name
            if arch == "llama", t.name.hasSuffix(".attn_q.weight") || t.name.hasSuffix(".attn_q.bias") {
                r = try permuteRows(r, heads: heads, toGGUF: false)
            } else if arch == "llama", t.name.hasSuffix(".attn_k.weight") || t.name.hasSuffix(".attn_k.bias") {
                r = try permuteRows(r, heads: kvHeads, toGGUF: false)
            } else if arch == "gpt2", isConv1D(t.name) {
                r = try transposed(r, name: name)
            }
            try out.add(r)
        }
        out.applyConfigTies()
        return out
    }

    // MARK: Config

    /// The Hugging Face config of a GGUF file: `ckpt.hf_config` when ckpt wrote it, otherwise
    /// rebuilt from llama.cpp's keys for LLaMA and GPT-2; nil for other architectures.
    static func config(fromKVs kvs: OrderedDictionary<String, GGUFValue>, graph: WeightGraph) -> ModelConfig? {
        if case .string(let text)? = kvs[hfConfigKey], let c = try? ModelConfig(jsonBytes: Array(text.utf8)) { return c }
        guard case .string(let arch)? = kvs["general.architecture"], arch == "llama" || arch == "gpt2" else { return nil }
        func int(_ k: String) -> Int? { kvs[arch + "." + k]?.intValue }
        func double(_ k: String) -> Double? { kvs[arch + "." + k]?.doubleValue }
        var j = OrderedDictionary<String, JSONValue>()
        let vocab = graph.tensors["token_embd.weight"]?.shape.first ?? int("vocab_size")
        if arch == "llama", let experts = int("expert_count"), experts > 0 {
            j["architectures"] = .array([.string("MixtralForCausalLM")])
            j["model_type"] = .string("mixtral")
            j["num_local_experts"] = .int(experts)
            j["num_experts_per_tok"] = int("expert_used_count").map(JSONValue.int) ?? .null
            j["sliding_window"] = .null
        } else if arch == "llama" {
            j["architectures"] = .array([.string("LlamaForCausalLM")])
            j["model_type"] = .string("llama")
        }
        if arch == "llama" {
            j["hidden_size"] = int("embedding_length").map(JSONValue.int) ?? .null
            j["intermediate_size"] = int("feed_forward_length").map(JSONValue.int) ?? .null
            j["num_hidden_layers"] = int("block_count").map(JSONValue.int) ?? .null
            j["num_attention_heads"] = int("attention.head_count").map(JSONValue.int) ?? .null
            j["num_key_value_heads"] = (int("attention.head_count_kv") ?? int("attention.head_count")).map(JSONValue.int) ?? .null
            if let k = int("attention.key_length") { j["head_dim"] = .int(k) }
            j["max_position_embeddings"] = int("context_length").map(JSONValue.int) ?? .null
            j["rms_norm_eps"] = .double(double("attention.layer_norm_rms_epsilon") ?? 1e-6)
            j["rope_theta"] = .double(double("rope.freq_base") ?? 10000)
            j["hidden_act"] = .string("silu")
            j["tie_word_embeddings"] = .bool(graph.tensors["output.weight"] == nil)
        } else {
            j["architectures"] = .array([.string("GPT2LMHeadModel")])
            j["model_type"] = .string("gpt2")
            j["n_embd"] = int("embedding_length").map(JSONValue.int) ?? .null
            j["n_inner"] = int("feed_forward_length").map(JSONValue.int) ?? .null
            j["n_layer"] = int("block_count").map(JSONValue.int) ?? .null
            j["n_head"] = int("attention.head_count").map(JSONValue.int) ?? .null
            j["n_positions"] = int("context_length").map(JSONValue.int) ?? .null
            j["layer_norm_epsilon"] = .double(double("attention.layer_norm_epsilon") ?? 1e-5)
            j["activation_function"] = .string("gelu_new")
            j["tie_word_embeddings"] = .bool(graph.tensors["output.weight"] == nil)
        }
        if let vocab { j["vocab_size"] = .int(vocab) }
        return ModelConfig(json: j)
    }
}

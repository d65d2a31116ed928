// Tensor and metadata names between Hugging Face checkpoints and llama.cpp's GGUF files,
// following llama.cpp's converter (convert_hf_to_gguf.py, gguf-py's constants.py and
// tensor_mapping.py) for the two architectures ckpt's forward pass shares with it:
//
//   LLaMA (also Mistral, which llama.cpp converts as "llama")
//     model.embed_tokens.weight            token_embd.weight
//     model.norm.weight                    output_norm.weight
//     lm_head.weight                       output.weight          (absent when tied)
//     model.layers.N.input_layernorm       blk.N.attn_norm
//     model.layers.N.self_attn.q_proj      blk.N.attn_q           rows permuted, see below
//     ...self_attn.k_proj / v_proj / o_proj   attn_k (permuted) / attn_v / attn_output
//     model.layers.N.post_attention_layernorm  blk.N.ffn_norm
//     ...mlp.gate_proj / up_proj / down_proj   ffn_gate / ffn_up / ffn_down
//   GPT-2
//     wte / wpe / ln_f                     token_embd / position_embd / output_norm
//     h.N.ln_1 / ln_2                      blk.N.attn_norm / ffn_norm
//     h.N.attn.c_attn / attn.c_proj        blk.N.attn_qkv / attn_output     (weights transposed)
//     h.N.mlp.c_fc / mlp.c_proj            blk.N.ffn_up / ffn_down          (weights transposed)
//     (attn.bias / attn.masked_bias are causal-mask buffers, not weights: dropped, as the
//      converter drops them)
//
// Rotary layout: Hugging Face's LLaMA rotates the two halves of each head (rotate_half);
// llama.cpp rotates adjacent pairs. The converter therefore permutes the rows of q and k
// (and their biases): within each head of hs rows, viewed as [2, hs/2], the two axes swap, so
// GGUF row h·hs + 2i + j is Hugging Face row h·hs + j·hs/2 + i. k uses the key/value head
// count. toHF applies the inverse, so the forward pass sees Hugging Face's layout again.
// Conv1D weights are [in, out] in GPT-2 checkpoints and [out, in] in GGUF.
//
// Metadata: `general.architecture` and `<arch>.context_length`, `.embedding_length`,
// `.block_count`, `.feed_forward_length`, `.attention.head_count(_kv)`,
// `.attention.layer_norm_rms_epsilon` (LLaMA) / `.attention.layer_norm_epsilon` (GPT-2),
// `.rope.freq_base`, `.rope.dimension_count`, `.vocab_size`. The Hugging Face config.json is
// also kept verbatim under `ckpt.hf_config`, so a round trip restores it exactly; GGUF files
// from elsewhere get a config rebuilt from the keys above. Other architectures keep their
// Hugging Face names and carry their config the same way.

import CkptCore
import Foundation
import OrderedCollections

public enum GGUFNaming {
    public static let hfConfigKey = "ckpt.hf_config"

    /// Whether the graph already uses llama.cpp's names.
    public static func isGGUFNamed(_ g: WeightGraph) -> Bool {
        g.tensors["token_embd.weight"] != nil || g.tensors.keys.contains { $0.hasPrefix("blk.") }
    }

    /// llama.cpp's architecture name for a Hugging Face model_type, when ckpt maps its names.
    static func ggufArchitecture(_ modelType: String?) -> String? {
        switch modelType {
        case "llama", "mistral": return "llama"
        case "gpt2": return "gpt2"
        default: return nil
        }
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

    /// GGUF name for a Hugging Face name (nil: not a weight of this architecture).
    static func ggufName(_ hf: String, arch: String) -> String? {
        var name = hf
        if arch == "gpt2", name.hasPrefix("transformer.") { name.removeFirst("transformer.".count) }
        let (global, layer, layerPrefix) = arch == "llama" ? (llamaGlobal, llamaLayer, "model.layers.") : (gpt2Global, gpt2Layer, "h.")
        if let g = global.first(where: { $0.hf == name }) { return g.gguf }
        guard name.hasPrefix(layerPrefix) else { return nil }
        let rest = name.dropFirst(layerPrefix.count)
        guard let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]) else { return nil }
        let tail = rest[rest.index(after: dot)...]
        for (h, g) in layer {
            for suffix in [".weight", ".bias"] where tail == h + suffix { return "blk.\(n).\(g)\(suffix)" }
        }
        return nil
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

    /// Renames a Hugging Face LLaMA/GPT-2 graph to llama.cpp's names and layouts and adds
    /// the architecture's keys. Graphs already in GGUF naming, and other architectures
    /// (names kept, config carried in `ckpt.hf_config`), pass through with only their keys set.
    public static func toGGUF(_ graph: WeightGraph) throws -> WeightGraph {
        if isGGUFNamed(graph) { return graph }
        var out = WeightGraph()
        out.metadata = graph.metadata
        out.config = graph.config
        let config = graph.config
        var kvs = OrderedDictionary<String, GGUFValue>()
        guard let config, let arch = ggufArchitecture(config.modelType) else {
            if graph.metadata["general.architecture"] == nil || config?.modelType != nil {
                kvs["general.architecture"] = .string(config?.modelType ?? "unknown")
            }
            if let config { kvs[hfConfigKey] = .string(String(decoding: config.serialized(), as: UTF8.self)) }
            for t in graph.tensors.values { try out.add(t) }
            GGUFMetadata.store(kvs, into: &out)
            return out
        }
        let heads = config.numHeads ?? 0, kvHeads = config.numKeyValueHeads ?? heads
        for t in graph.tensors.values {
            guard let name = ggufName(t.name, arch: arch) else {
                if arch == "gpt2", t.name.hasSuffix(".attn.bias") || t.name.hasSuffix(".attn.masked_bias") { continue }
                if t.name.hasSuffix("rotary_emb.inv_freq") { continue }
                try out.add(t)  // kept under its own name
                continue
            }
            var r = t
            r.name = name
            if arch == "llama", name.hasSuffix(".attn_q.weight") || name.hasSuffix(".attn_q.bias") {
                r = try permuteRows(r, heads: heads, toGGUF: true)
            } else if arch == "llama", name.hasSuffix(".attn_k.weight") || name.hasSuffix(".attn_k.bias") {
                r = try permuteRows(r, heads: kvHeads, toGGUF: true)
            } else if arch == "gpt2", isConv1D(name) {
                guard !t.dtype.isQuantized else {
                    throw GGUFError.cannotWrite(tensor: t.name, reason: "GPT-2 Conv1D weights are [in, out] and GGUF stores them transposed, which a quantized tensor cannot be; quantize straight to .gguf instead (ckpt quantize renames first)")
                }
                r = try transposed(r, name: name)
            }
            try out.add(r)
        }
        kvs["general.architecture"] = .string(arch)
        kvs.merge(architectureKeys(config, arch: arch, graph: graph)) { _, new in new }
        kvs[hfConfigKey] = .string(String(decoding: config.serialized(), as: UTF8.self))
        GGUFMetadata.store(kvs, into: &out)
        return out
    }

    static func architectureKeys(_ c: ModelConfig, arch: String, graph: WeightGraph) -> OrderedDictionary<String, GGUFValue> {
        var kv = OrderedDictionary<String, GGUFValue>()
        func u32(_ k: String, _ v: Int?) { if let v, v >= 0, v <= Int(UInt32.max) { kv[arch + "." + k] = .u32(UInt32(v)) } }
        u32("context_length", c.maxPositions)
        u32("embedding_length", c.hiddenSize)
        u32("block_count", c.numLayers)
        if arch == "llama" {
            u32("feed_forward_length", c.intermediateSize)
            u32("attention.head_count", c.numHeads)
            u32("attention.head_count_kv", c.numKeyValueHeads)
            let eps = c["rms_norm_eps"]?.doubleValue ?? 1e-6
            kv["llama.attention.layer_norm_rms_epsilon"] = .f32(Float(eps))
            let params = c["rope_parameters"]?.objectValue ?? c["rope_scaling"]?.objectValue
            let theta = params?["rope_theta"]?.doubleValue ?? c["rope_theta"]?.doubleValue ?? 10000
            kv["llama.rope.freq_base"] = .f32(Float(theta))
            if let h = c.hiddenSize, let n = c.numHeads, n > 0 {
                let hs = c["head_dim"]?.intValue ?? h / n
                u32("rope.dimension_count", hs)
                if hs != h / n {
                    u32("attention.key_length", hs)
                    u32("attention.value_length", hs)
                }
            }
            u32("vocab_size", c.vocabSize)
        } else {
            u32("feed_forward_length", c.intermediateSize ?? c.hiddenSize.map { 4 * $0 })
            u32("attention.head_count", c.numHeads)
            kv["gpt2.attention.layer_norm_epsilon"] = .f32(Float(c["layer_norm_epsilon"]?.doubleValue ?? 1e-5))
        }
        return kv
    }

    // MARK: GGUF -> Hugging Face

    /// Renames a GGUF-named LLaMA/GPT-2 graph back to Hugging Face's names and layouts (q/k
    /// rows un-permuted, Conv1D weights transposed back — quantized ones dequantized to f32,
    /// since blocks cannot be transposed). Other graphs pass through unchanged.
    public static func toHF(_ graph: WeightGraph) throws -> WeightGraph {
        guard isGGUFNamed(graph), case .string(let arch)? = try? GGUFMetadata.values(of: graph)["general.architecture"],
              arch == "llama" || arch == "gpt2" else { return graph }
        var out = WeightGraph()
        // The keys toGGUF derives from the config go away again (the config is carried
        // separately); everything else (tokenizer, provenance) stays.
        var kvs = (try? GGUFMetadata.values(of: graph)) ?? [:]
        out.config = graph.config ?? config(fromKVs: kvs, graph: graph)
        for k in kvs.keys where k == "general.architecture" || k == hfConfigKey || k.hasPrefix(arch + ".") { kvs.removeValue(forKey: k) }
        out.metadata = [:]
        GGUFMetadata.store(kvs, into: &out)
        let heads = out.config?.numHeads ?? 0, kvHeads = out.config?.numKeyValueHeads ?? heads
        for t in graph.tensors.values {
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
        if arch == "llama" {
            j["architectures"] = .array([.string("LlamaForCausalLM")])
            j["model_type"] = .string("llama")
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

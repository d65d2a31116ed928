// LLaMA-style rotary decoders (Hugging Face LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM, Qwen3ForCausalLM; `XxxModel` gives the last hidden state).
//
//   x = embed_tokens[ids]                                            x [T, C]
//   for each layer:
//     h = input_layernorm(x)                                         RMSNorm
//     q, k, v = q_proj(h), k_proj(h), v_proj(h)                       q [T, NH·hs], k v [T, NKV·hs]
//     (Qwen3: q, k = q_norm(q), k_norm(k), per head over hs)
//     rope(q), rope(k)                                               every rope_type
//     x = x + o_proj(attention(q, k, v, causal, GQA, sliding window on sliding layers))
//     x = x + down_proj(act(gate_proj(h2)) · up_proj(h2)),  h2 = post_attention_layernorm(x)
//   logits = norm(x) · lm_headᵀ                                       [T, V] (tied when configured)
//
// Biases are used when the checkpoint has them (Qwen2's q/k/v, `attention_bias`, `mlp_bias`).
// Names under "model." (and "lm_head.weight"). Other rotary decoders (Gemma, ...) start from
// `RotaryDecoder` and change what differs.

/// The config of a LLaMA-style rotary decoder, read once and validated.
struct RotaryDecoder: Sendable {
    var C, NH, NKV, hs, I, L, V: Int
    /// max_position_embeddings: validated, but not a limit (rotary positions have none; HF
    /// runs longer sequences, which is what dynamic/yarn/longrope scaling is for).
    var maxT: Int?
    var eps: Float
    var activation: Activation
    var rope: RopeSpec
    /// Per layer: whether it is a sliding-window (local) layer, and its window (nil: full attention).
    var sliding: [Bool]
    var windows: [Int?]
    /// e.g. "model."
    var prefix: String

    /// `slidingByDefault`: whether `sliding_window` applies to every layer when the config has
    /// no `layer_types` / `use_sliding_window` (Mistral); `slidingLayer`: the family's pattern
    /// instead (older Gemma configs).
    /// `activationKeys`: where the MLP activation is named (Gemma: hidden_activation first).
    init(_ c: ConfigReader, activation defaultActivation: Activation = .silu, activationKeys: [String] = ["hidden_act"],
                slidingByDefault: Bool = false, slidingLayer: ((Int) -> Bool)? = nil, rope customRope: RopeSpec? = nil) throws {
        C = try c.size("hidden_size")
        NH = try c.size("num_attention_heads")
        NKV = try c.size("num_key_value_heads", default: NH)
        V = try c.size("vocab_size")
        I = try c.size("intermediate_size")
        L = try c.layerCount("num_hidden_layers")
        hs = try c.size("head_dim", default: C / NH)
        _ = try c.product(NH, hs, "num_attention_heads × head_dim")
        maxT = try c.optionalSize("max_position_embeddings")
        eps = try c.epsilon("rms_norm_eps", default: 1e-6)
        guard NH % NKV == 0 else { throw TransformerError.invalidConfig("num_attention_heads \(NH) is not a multiple of num_key_value_heads \(NKV)") }
        activation = try c.activation(activationKeys, default: defaultActivation, allowed: [.silu, .geluTanh, .geluExact, .relu])
        rope = try customRope ?? c.rope(headDim: hs)
        // Sliding window: per layer from `layer_types`, else `use_sliding_window` (Qwen2:
        // layers from max_window_layers on), else the family's default.
        let types: [String]
        if let list = c["layer_types"]?.arrayValue {
            types = list.compactMap(\.stringValue)
            guard types.count == L, types.allSatisfy({ $0 == "full_attention" || $0 == "sliding_attention" }) else {
                throw TransformerError.invalidConfig("layer_types must list full_attention or sliding_attention for each of the \(L) layers")
            }
        } else if let use = c["use_sliding_window"]?.boolValue {
            let from = c["max_window_layers"]?.intValue ?? 0
            types = (0..<L).map { use && $0 >= from ? "sliding_attention" : "full_attention" }
        } else if let slidingLayer {
            types = (0..<L).map { slidingLayer($0) ? "sliding_attention" : "full_attention" }
        } else {
            types = Array(repeating: slidingByDefault ? "sliding_attention" : "full_attention", count: L)
        }
        sliding = types.map { $0 == "sliding_attention" }
        // Used: a positive size (null: none). Unused (Qwen2 writes 0): still not negative.
        let window: Int?
        if sliding.contains(true) {
            window = try c.optionalSize("sliding_window")
        } else {
            if let v = c["sliding_window"], v != .null, (v.intValue ?? -1) < 0 {
                throw TransformerError.invalidConfig("sliding_window \(v) must be a non-negative integer")
            }
            window = nil
        }
        windows = sliding.map { $0 ? window : nil }
        prefix = try c.prefix(anchor: "embed_tokens.weight", missing: "model.embed_tokens.weight")
    }

    func rms(_ name: String, _ role: ParamRole, width: Int? = nil) -> NormSpec {
        NormSpec(name: name, role: role, kind: .rmsNorm, width: width ?? C, eps: eps)
    }

    /// Block i: pre-norm RMSNorm, split q/k/v with optional biases, rotary, gated MLP.
    func block(_ i: Int, _ c: ConfigReader) -> BlockSpec {
        let b = prefix + "layers.\(i)."
        // A bias the config promises must be there; others are used when the checkpoint has them.
        let attentionBias = c["attention_bias"]?.boolValue == true, mlpBias = c["mlp_bias"]?.boolValue == true
        func linear(_ name: String, _ role: ParamRole, _ inF: Int, _ outF: Int) -> LinearSpec {
            let promised = name.hasPrefix("self_attn.") ? attentionBias : mlpBias
            return LinearSpec(name: b + name, role: role, inFeatures: inF, outFeatures: outF, bias: promised ? .required : c.presence(b + name + ".bias"))
        }
        return BlockSpec(
            index: i, prefix: b,
            attentionNorm: rms(b + "input_layernorm", .attentionNorm),
            attention: AttentionSpec(heads: NH, kvHeads: NKV, headDim: hs,
                                     projections: .split(q: linear("self_attn.q_proj", .query, C, NH * hs),
                                                         k: linear("self_attn.k_proj", .key, C, NKV * hs),
                                                         v: linear("self_attn.v_proj", .value, C, NKV * hs)),
                                     output: linear("self_attn.o_proj", .attentionOutput, NH * hs, C),
                                     rope: rope, causal: true, window: windows[i], scale: 1 / Float(hs).squareRoot()),
            mlpNorm: rms(b + "post_attention_layernorm", .mlpNorm),
            mlp: MLPSpec(width: I, activation: activation,
                         projections: .gated(gate: linear("mlp.gate_proj", .gate, C, I), up: linear("mlp.up_proj", .up, C, I)),
                         down: linear("mlp.down_proj", .down, I, C)))
    }

    /// The head: final RMSNorm, then lm_head (stored), the tied embedding, or nothing (XxxModel).
    /// `tiedByDefault`: the family config class's tie_word_embeddings default.
    func head(_ c: ConfigReader, finalNorm: NormSpec? = nil, tiedByDefault: Bool = false) throws -> HeadSpec {
        let output: HeadSpec.Output
        if c.stored("lm_head.weight") {
            output = .logits(LinearSpec(name: "lm_head", role: .head, inFeatures: C, outFeatures: V))
        } else if c.isBaseModel {
            output = .hiddenState
        } else if c.tieWordEmbeddings(default: tiedByDefault) {
            output = .tiedLogits(embedding: prefix + "embed_tokens.weight")
        } else {
            throw TransformerError.missingTensor("lm_head.weight")
        }
        return HeadSpec(finalNorm: finalNorm ?? rms(prefix + "norm", .finalNorm), output: output)
    }

    func description(_ c: ConfigReader, default architecture: String, blocks: [BlockSpec], head: HeadSpec,
                            embeddingScale: Float? = nil) -> ModelDescription {
        ModelDescription(
            architecture: c.config.architecture ?? architecture, modelType: c.modelType, hiddenSize: C, vocabSize: V, maxPositions: nil,
            embedding: EmbeddingSpec(tokens: .init(name: prefix + "embed_tokens.weight", role: .tokenEmbedding, rows: V, width: C), scale: embeddingScale),
            blocks: blocks, head: head)
    }
}

public enum LlamaFamily: Architecture {
    public static let modelTypes = ["llama", "mistral", "qwen2", "qwen3"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let d = try RotaryDecoder(c, slidingByDefault: c.modelType == "mistral")
        let qkNorm = c.modelType == "qwen3"
        let blocks = (0..<d.L).map { i -> BlockSpec in
            var b = d.block(i, c)
            if qkNorm {
                b.attention.queryNorm = d.rms(b.prefix + "self_attn.q_norm", .queryNorm, width: d.hs)
                b.attention.keyNorm = d.rms(b.prefix + "self_attn.k_norm", .keyNorm, width: d.hs)
            }
            return b
        }
        var description = d.description(c, default: "LlamaForCausalLM", blocks: blocks, head: try d.head(c))
        description.sizeKeys?.headsDivideHidden = c.modelType == "llama"  // LlamaConfig validates it
        return description
    }
}

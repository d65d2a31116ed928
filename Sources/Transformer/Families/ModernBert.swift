// ModernBERT (Hugging Face ModernBertModel): a pre-norm rotary encoder whose layers alternate
// global attention and bidirectional local attention, each kind with its own rope theta:
//
//   x = norm(tok_embeddings[ids])                                    LayerNorm (bias: norm_bias)
//   for each layer:
//     x = x + attn.Wo(attention(rope(q), rope(k), v)),  q|k|v = attn.Wqkv(attn_norm(x))
//         (layer 0 has no attn_norm; local layers see keys with |i − j| ≤ local_attention / 2)
//     x = x + mlp.Wo(act(a) · g),  a|g = mlp.Wi(mlp_norm(x))         fused: input half, then gate half
//   output: final_norm(x), the last hidden state [T, C]
//
// Layer kinds come from `layer_types`, else every global_attn_every_n_layers-th layer (from 0)
// is global. Rope thetas: rope_parameters.{full,sliding}_attention (transformers ≥ 5) or
// global_rope_theta / local_rope_theta (160000 and 10000 by default).

public enum ModernBertFamily: Architecture {
    public static let modelTypes = ["modernbert"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let C = try c.size("hidden_size")
        let NH = try c.size("num_attention_heads")
        let V = try c.size("vocab_size")
        let I = try c.size("intermediate_size")
        let L = try c.layerCount("num_hidden_layers")
        let maxT = try c.size("max_position_embeddings")
        let eps = try c.epsilon("norm_eps", default: 1e-5)
        guard C % NH == 0 else { throw TransformerError.invalidConfig("hidden_size \(C) is not a multiple of num_attention_heads \(NH)") }
        let hs = C / NH
        let act = try c.activation("hidden_activation", default: .geluExact, allowed: [.geluExact, .geluTanh, .relu, .silu])
        let normBias: Presence = try c.bool("norm_bias", default: false) ? .required : .absent  // transformers: false
        let attentionBias: Presence = try c.bool("attention_bias", default: false) ? .required : .absent
        let mlpBias: Presence = try c.bool("mlp_bias", default: false) ? .required : .absent
        let local = try c.size("local_attention", default: 128)
        let every = try c.size("global_attn_every_n_layers", default: 3)
        let types: [String]
        if let list = c["layer_types"]?.arrayValue {
            types = list.compactMap(\.stringValue)
            guard types.count == L, types.allSatisfy({ $0 == "full_attention" || $0 == "sliding_attention" }) else {
                throw TransformerError.invalidConfig("layer_types must list full_attention or sliding_attention for each of the \(L) layers")
            }
        } else {
            types = (0..<L).map { $0 % every == 0 ? "full_attention" : "sliding_attention" }
        }
        let perType = c["rope_parameters"]?.objectValue
        func rope(_ type: String, legacyKey: String, theta: Double) throws -> RopeSpec {
            if let p = perType?[type]?.objectValue { return try c.rope(headDim: hs, parameters: JSONObject(p)) }
            let t = try c.positive(legacyKey, default: theta)
            return try c.rope(headDim: hs, parameters: JSONObject(["rope_type": .string("default"), "rope_theta": .number("\(t)")]))
        }
        let globalRope = try rope("full_attention", legacyKey: "global_rope_theta", theta: 160_000)
        let localRope = try rope("sliding_attention", legacyKey: "local_rope_theta", theta: 10_000)
        let p = try c.prefix(anchor: "embeddings.tok_embeddings.weight", missing: "embeddings.tok_embeddings.weight")
        func ln(_ name: String, _ role: ParamRole) -> NormSpec {
            NormSpec(name: name, role: role, kind: .layerNorm, width: C, eps: eps, bias: normBias)
        }
        func linear(_ name: String, _ role: ParamRole, _ inF: Int, _ outF: Int, _ bias: Presence) -> LinearSpec {
            LinearSpec(name: name, role: role, inFeatures: inF, outFeatures: outF, bias: bias)
        }
        let blocks = (0..<L).map { i -> BlockSpec in
            let b = p + "layers.\(i)."
            let isLocal = types[i] == "sliding_attention"
            return BlockSpec(
                index: i, prefix: b,
                attentionNorm: i == 0 ? nil : ln(b + "attn_norm", .attentionNorm),
                attention: AttentionSpec(heads: NH, kvHeads: NH, headDim: hs,
                                         projections: .fused(linear(b + "attn.Wqkv", .qkv, C, 3 * C, attentionBias)),
                                         output: linear(b + "attn.Wo", .attentionOutput, C, C, attentionBias),
                                         rope: isLocal ? localRope : globalRope, causal: false,
                                         window: isLocal ? local / 2 + 1 : nil, scale: 1 / Float(hs).squareRoot()),
                mlpNorm: ln(b + "mlp_norm", .mlpNorm),
                mlp: MLPSpec(width: I, activation: act, projections: .fusedGated(linear(b + "mlp.Wi", .gateUp, C, 2 * I, mlpBias)),
                             down: linear(b + "mlp.Wo", .down, I, C, mlpBias)))
        }
        return ModelDescription(
            architecture: "ModernBertModel", modelType: "modernbert", hiddenSize: C, vocabSize: V, maxPositions: maxT,
            embedding: EmbeddingSpec(tokens: .init(name: p + "embeddings.tok_embeddings.weight", role: .tokenEmbedding, rows: V, width: C),
                                     norm: ln(p + "embeddings.norm", .embeddingNorm)),
            blocks: blocks,
            head: HeadSpec(finalNorm: ln(p + "final_norm", .finalNorm), output: .hiddenState),
            // transformers derives the head size from hidden_size / heads
            sizeKeys: SizeKeys(heads: "num_attention_heads", keyValueHeads: nil, headDim: nil, width: "intermediate_size",
                               layers: "num_hidden_layers", perLayer: ["layer_types"]),
            buffers: ModelDescription.commonBuffers + ["head.", "decoder."])  // ModernBertForMaskedLM's head
    }
}

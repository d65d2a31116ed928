// OPT (Hugging Face OPTForCausalLM): learned positions offset by 2, LayerNorm with bias, ReLU
// MLP, pre-norm (do_layer_norm_before, most sizes) or post-norm (350m), and optional
// project_in / project_out when word_embed_proj_dim ≠ hidden_size:
//
//   x = project_in(embed_tokens[ids]) + embed_positions[2 + t]            x [T, C]
//   for each layer (pre-norm):
//     x = x + out_proj(attention(q_proj, k_proj, v_proj of self_attn_layer_norm(x)))
//     x = x + fc2(relu(fc1(final_layer_norm(x))))
//   (post-norm: the same norms applied after each residual add instead)
//   logits = project_out(final_layer_norm(x)) · embed_tokensᵀ              tied

public enum OPTFamily: Architecture {
    public static let modelTypes = ["opt"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let C = try c.size("hidden_size")
        let NH = try c.size("num_attention_heads")
        let V = try c.size("vocab_size")
        let I = try c.size("ffn_dim")
        let L = try c.layerCount("num_hidden_layers")
        let maxT = try c.size("max_position_embeddings")
        let E = try c.size("word_embed_proj_dim", default: C)
        guard C % NH == 0 else { throw TransformerError.invalidConfig("hidden_size \(C) is not a multiple of num_attention_heads \(NH)") }
        let hs = C / NH
        let act = try c.activation("activation_function", default: .relu, allowed: [.relu, .geluExact, .geluTanh, .silu])
        let preNorm = try c.bool("do_layer_norm_before", default: true)
        let removeFinal = try c.bool("_remove_final_layer_norm", default: false)
        let finalNorm = preNorm && !removeFinal
        try c.refuse("layer_norm_elementwise_affine", unless: [.bool(true)])
        let bias: Presence = try c.bool("enable_bias", default: true) ? .required : .absent
        let p = try c.prefix(anchor: "decoder.embed_tokens.weight", missing: "model.decoder.embed_tokens.weight") + "decoder."
        let offset = 2  // OPTLearnedPositionalEmbedding
        func ln(_ name: String, _ role: ParamRole) -> NormSpec {
            NormSpec(name: name, role: role, kind: .layerNorm, width: C, eps: 1e-5, bias: .required)
        }
        func linear(_ name: String, _ role: ParamRole, _ inF: Int, _ outF: Int) -> LinearSpec {
            LinearSpec(name: name, role: role, inFeatures: inF, outFeatures: outF, bias: bias)
        }
        let blocks = (0..<L).map { i -> BlockSpec in
            let b = p + "layers.\(i)."
            let attnNorm = ln(b + "self_attn_layer_norm", preNorm ? .attentionNorm : .postAttentionNorm)
            let mlpNorm = ln(b + "final_layer_norm", preNorm ? .mlpNorm : .postMLPNorm)
            return BlockSpec(
                index: i, prefix: b,
                attentionNorm: preNorm ? attnNorm : nil,
                attention: AttentionSpec(heads: NH, kvHeads: NH, headDim: hs,
                                         projections: .split(q: linear(b + "self_attn.q_proj", .query, C, C),
                                                             k: linear(b + "self_attn.k_proj", .key, C, C),
                                                             v: linear(b + "self_attn.v_proj", .value, C, C)),
                                         output: linear(b + "self_attn.out_proj", .attentionOutput, C, C),
                                         causal: true, scale: 1 / Float(hs).squareRoot()),
                attentionResidualNorm: preNorm ? nil : attnNorm,
                mlpNorm: preNorm ? mlpNorm : nil,
                mlp: MLPSpec(width: I, activation: act, projections: .plain(up: linear(b + "fc1", .up, C, I)), down: linear(b + "fc2", .down, I, C)),
                mlpResidualNorm: preNorm ? nil : mlpNorm)
        }
        let output: HeadSpec.Output
        if c.stored("lm_head.weight") {
            output = .logits(LinearSpec(name: "lm_head", role: .head, inFeatures: E, outFeatures: V))
        } else if c.isBaseModel {
            output = .hiddenState
        } else {
            output = .tiedLogits(embedding: p + "embed_tokens.weight")
        }
        let project = E != C
        return ModelDescription(
            architecture: c.config.architecture ?? "OPTForCausalLM", modelType: "opt", hiddenSize: C, vocabSize: V, maxPositions: maxT,
            embedding: EmbeddingSpec(tokens: .init(name: p + "embed_tokens.weight", role: .tokenEmbedding, rows: V, width: E),
                                     positions: .init(name: p + "embed_positions.weight", role: .positionEmbedding, rows: maxT + offset, width: C),
                                     positionOffset: offset,
                                     projection: project ? LinearSpec(name: p + "project_in", role: .embeddingProjection, inFeatures: E, outFeatures: C) : nil),
            blocks: blocks,
            head: HeadSpec(finalNorm: finalNorm ? ln(p + "final_layer_norm", .finalNorm) : nil,
                           projection: project ? LinearSpec(name: p + "project_out", role: .outputProjection, inFeatures: C, outFeatures: E) : nil,
                           output: output),
            sizeKeys: SizeKeys(heads: "num_attention_heads", keyValueHeads: nil, headDim: nil, width: "ffn_dim", layers: "num_hidden_layers"))
    }
}

// GPT-NeoX (Hugging Face GPTNeoXForCausalLM; Pythia; GPTNeoXModel gives the last hidden
// state): LayerNorm with bias, one fused q/k/v matrix laid out per head (q_h k_h v_h),
// rotary over the first partial_rotary_factor·hs channels, exact GELU MLP, and (by default)
// the parallel residual:
//
//   x = embed_in[ids]                                                   x [T, C]
//   for each layer (use_parallel_residual):
//     x = x + attention.dense(attention(query_key_value(input_layernorm(x))))
//           + mlp.dense_4h_to_h(gelu(mlp.dense_h_to_4h(post_attention_layernorm(x))))
//   (sequential otherwise: the MLP reads x after the attention residual)
//   logits = final_layer_norm(x) · embed_outᵀ

public enum GPTNeoXFamily: Architecture {
    public static let modelTypes = ["gpt_neox"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let C = try c.size("hidden_size")
        let NH = try c.size("num_attention_heads")
        let V = try c.size("vocab_size")
        let I = try c.size("intermediate_size")
        let L = try c.layerCount("num_hidden_layers")
        let eps = try c.epsilon("layer_norm_eps", default: 1e-5)
        guard C % NH == 0 else { throw TransformerError.invalidConfig("hidden_size \(C) is not a multiple of num_attention_heads \(NH)") }
        let hs = C / NH
        let act = try c.activation("hidden_act", default: .geluExact, allowed: [.geluExact, .geluTanh, .relu, .silu])
        let rope = try c.rope(headDim: hs)
        let parallel = try c.bool("use_parallel_residual", default: true)
        let bias: Presence = try c.bool("attention_bias", default: true) ? .required : .absent
        let p = try c.prefix(anchor: "embed_in.weight", missing: "gpt_neox.embed_in.weight")
        func ln(_ name: String, _ role: ParamRole) -> NormSpec {
            NormSpec(name: name, role: role, kind: .layerNorm, width: C, eps: eps, bias: .required)
        }
        let blocks = (0..<L).map { i -> BlockSpec in
            let b = p + "layers.\(i)."
            return BlockSpec(
                index: i, prefix: b,
                attentionNorm: ln(b + "input_layernorm", .attentionNorm),
                attention: AttentionSpec(heads: NH, kvHeads: NH, headDim: hs,
                                         projections: .fused(LinearSpec(name: b + "attention.query_key_value", role: .qkv, inFeatures: C, outFeatures: 3 * C, bias: bias), order: .grouped),
                                         output: LinearSpec(name: b + "attention.dense", role: .attentionOutput, inFeatures: C, outFeatures: C, bias: bias),
                                         rope: rope, causal: true, scale: 1 / Float(hs).squareRoot()),
                mlpNorm: ln(b + "post_attention_layernorm", .mlpNorm),
                mlp: MLPSpec(width: I, activation: act,
                             projections: .plain(up: LinearSpec(name: b + "mlp.dense_h_to_4h", role: .up, inFeatures: C, outFeatures: I, bias: .required)),
                             down: LinearSpec(name: b + "mlp.dense_4h_to_h", role: .down, inFeatures: I, outFeatures: C, bias: .required)),
                parallel: parallel)
        }
        let output: HeadSpec.Output
        if c.stored("embed_out.weight") {
            output = .logits(LinearSpec(name: "embed_out", role: .head, inFeatures: C, outFeatures: V))
        } else if c.isBaseModel {
            output = .hiddenState
        } else if c.tieWordEmbeddings(default: false) {
            output = .tiedLogits(embedding: p + "embed_in.weight")
        } else {
            throw TransformerError.missingTensor("embed_out.weight")
        }
        return ModelDescription(
            architecture: c.config.architecture ?? "GPTNeoXForCausalLM", modelType: "gpt_neox", hiddenSize: C, vocabSize: V, maxPositions: nil,
            embedding: EmbeddingSpec(tokens: .init(name: p + "embed_in.weight", role: .tokenEmbedding, rows: V, width: C)),
            blocks: blocks,
            head: HeadSpec(finalNorm: ln(p + "final_layer_norm", .finalNorm), output: output),
            sizeKeys: SizeKeys(heads: "num_attention_heads", keyValueHeads: nil, headDim: nil, width: "intermediate_size", layers: "num_hidden_layers"),
            buffers: ModelDescription.commonBuffers + ["attention.bias", "attention.masked_bias"])  // mask buffers of older Pythia checkpoints
    }
}

// Falcon (Hugging Face FalconForCausalLM) with rotary positions: LayerNorm (bias), exact
// GELU MLP, one fused q/k/v matrix, and the parallel residual:
//
//   x = x + dense(attention(query_key_value(ln_attn(x)))) + mlp(ln_mlp(x))
//
// Three q/k/v layouts: new_decoder_architecture (grouped by key/value head: its query
// heads, then k, then v; num_kv_heads), multi_query (q heads | k | v, one key/value head) and
// the original per-head layout (q_h k_h v_h). One shared input_layernorm unless the new
// architecture has num_ln_in_parallel_attn = 2 (ln_attn, ln_mlp); parallel_attn false gives
// the sequential block with post_attention_layernorm. ALiBi checkpoints (alibi: true,
// Falcon-RW) use no rotary positions but a linear bias slope_h · j on the scores, with slopes
// and products rounded to bfloat16 as transformers computes them; it is added once, as in
// transformers' sdpa path (its eager path adds it a second time through the mask).

public enum FalconFamily: Architecture {
    public static let modelTypes = ["falcon"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let C = try c.size("hidden_size")
        let NH = try c.size("num_attention_heads")
        let V = try c.size("vocab_size")
        let L = try c.layerCount("num_hidden_layers")
        let I = try c.size("ffn_hidden_size", default: try c.product(4, C, "4 × hidden_size"))
        let eps = try c.epsilon("layer_norm_epsilon", default: 1e-5)
        guard C % NH == 0 else { throw TransformerError.invalidConfig("hidden_size \(C) is not a multiple of num_attention_heads \(NH)") }
        let hs = C / NH
        let alibi = try c.bool("alibi", default: false)
        let newArch = try c.bool("new_decoder_architecture", default: false)
        let multiQuery = try c.bool("multi_query", default: true)
        let NKV = newArch ? try c.size("num_kv_heads", default: NH) : multiQuery ? 1 : NH
        guard NH % NKV == 0 else { throw TransformerError.invalidConfig("num_attention_heads \(NH) is not a multiple of num_kv_heads \(NKV)") }
        let parallel = try c.bool("parallel_attn", default: true)
        let lnCount = try c.optionalSize("num_ln_in_parallel_attn") ?? 2
        let twoNorms = newArch && lnCount == 2
        let act = try c.activation("activation", default: .geluExact, allowed: [.geluExact, .geluTanh, .relu, .silu])
        let bias: Presence = try c.bool("bias", default: false) ? .required : .absent
        let rope = alibi ? nil : try c.rope(headDim: hs)
        let p = try c.prefix(anchor: "word_embeddings.weight", missing: "transformer.word_embeddings.weight")
        func ln(_ name: String, _ role: ParamRole) -> NormSpec {
            NormSpec(name: name, role: role, kind: .layerNorm, width: C, eps: eps, bias: .required)
        }
        func linear(_ name: String, _ role: ParamRole, _ inF: Int, _ outF: Int) -> LinearSpec {
            LinearSpec(name: name, role: role, inFeatures: inF, outFeatures: outF, bias: bias)
        }
        let blocks = (0..<L).map { i -> BlockSpec in
            let b = p + "h.\(i)."
            let attnNorm = ln(b + (twoNorms ? "ln_attn" : "input_layernorm"), .attentionNorm)
            let sequential = !newArch && !parallel
            let mlpNorm = twoNorms ? ln(b + "ln_mlp", .mlpNorm) : sequential ? ln(b + "post_attention_layernorm", .mlpNorm) : attnNorm
            return BlockSpec(
                index: i, prefix: b,
                attentionNorm: attnNorm,
                attention: AttentionSpec(heads: NH, kvHeads: NKV, headDim: hs,
                                         projections: .fused(linear(b + "self_attention.query_key_value", .qkv, C, (NH + 2 * NKV) * hs),
                                                             order: newArch || !multiQuery ? .grouped : .concatenated),
                                         output: linear(b + "self_attention.dense", .attentionOutput, C, C),
                                         rope: rope, causal: true, scale: 1 / Float(hs).squareRoot(),
                                         alibi: alibi ? AttentionSpec.ALiBi(heads: NH, bf16: true) : nil),
                mlpNorm: mlpNorm,
                mlp: MLPSpec(width: I, activation: act, projections: .plain(up: linear(b + "mlp.dense_h_to_4h", .up, C, I)),
                             down: linear(b + "mlp.dense_4h_to_h", .down, I, C)),
                parallel: !sequential)
        }
        let output: HeadSpec.Output
        if c.stored("lm_head.weight") {
            output = .logits(LinearSpec(name: "lm_head", role: .head, inFeatures: C, outFeatures: V))
        } else if c.isBaseModel {
            output = .hiddenState
        } else if c.tieWordEmbeddings(default: true) {
            output = .tiedLogits(embedding: p + "word_embeddings.weight")
        } else {
            throw TransformerError.missingTensor("lm_head.weight")
        }
        return ModelDescription(
            architecture: c.config.architecture ?? "FalconForCausalLM", modelType: "falcon", hiddenSize: C, vocabSize: V, maxPositions: nil,
            embedding: EmbeddingSpec(tokens: .init(name: p + "word_embeddings.weight", role: .tokenEmbedding, rows: V, width: C)),
            blocks: blocks,
            head: HeadSpec(finalNorm: ln(p + "ln_f", .finalNorm), output: output),
            sizeKeys: SizeKeys(heads: "num_attention_heads", keyValueHeads: newArch ? "num_kv_heads" : nil, headDim: nil,
                               width: "ffn_hidden_size", layers: "num_hidden_layers"))
    }
}

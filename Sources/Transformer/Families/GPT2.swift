// GPT-2 (Hugging Face GPT2LMHeadModel; GPT2Model gives the last hidden state).
//
//   x = wte[ids] + wpe[0..<T]                                   x [T, C]
//   for each block:
//     x = x + c_proj(attention(c_attn(ln_1(x))))                c_attn: Conv1D [C, 3C] → q | k | v
//     x = x + mlp.c_proj(gelu_tanh(mlp.c_fc(ln_2(x))))          hidden [T, 4C] (or n_inner)
//   logits = ln_f(x) · wteᵀ                                     [T, V] (tied unless lm_head is stored)
//
// Names as Hugging Face saves them, under "transformer." or no prefix. A config's
// `pruned_heads` ({"layer": [head, ...]}, transformers 4.x's format, as transformers 4.x's own
// prune_heads saved it; `ckpt prune` removes no GPT-2 heads, see Prune/Layout.swift) gives a layer fewer heads of the same size hs = n_embd / n_head: its c_attn is then
// [C, 3·NH_l·hs] and its c_proj [NH_l·hs, C].

public enum GPT2Family: Architecture {
    public static let modelTypes = ["gpt2"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let C = try c.size("n_embd", "hidden_size")
        let NH = try c.size("n_head", "num_attention_heads")
        let V = try c.size("vocab_size")
        let maxT = try c.size("n_positions", "max_position_embeddings")
        let L = try c.layerCount("n_layer", "num_hidden_layers")
        let I = try c.size("n_inner", "intermediate_size", default: try c.product(4, C, "4 × n_embd"))
        let eps = try c.epsilon("layer_norm_epsilon", default: 1e-5)
        guard C % NH == 0 else { throw TransformerError.invalidConfig("n_embd \(C) is not a multiple of n_head \(NH)") }
        let act = try c.activation("activation_function", default: .geluTanh, allowed: [.geluTanh, .geluExact, .relu, .silu])
        try c.refuse("scale_attn_by_inverse_layer_idx", unless: [.bool(false)])
        try c.refuse("add_cross_attention", unless: [.bool(false)])
        let hs = C / NH
        let scale: Float = try c.bool("scale_attn_weights", default: true) ? 1 / Float(hs).squareRoot() : 1
        let p = try c.prefix(anchor: "wte.weight", missing: "transformer.wte.weight")
        let heads = try prunedHeadCounts(c, layers: L, heads: NH)
        func ln(_ name: String, _ role: ParamRole) -> NormSpec {
            NormSpec(name: name, role: role, kind: .layerNorm, width: C, eps: eps, bias: .required)
        }
        func conv(_ name: String, _ role: ParamRole, _ inF: Int, _ outF: Int) -> LinearSpec {
            LinearSpec(name: name, role: role, inFeatures: inF, outFeatures: outF, layout: .conv1d, bias: .required)
        }
        let blocks = (0..<L).map { i -> BlockSpec in
            let b = p + "h.\(i).", A = heads[i] * hs
            return BlockSpec(
                index: i, prefix: b,
                attentionNorm: ln(b + "ln_1", .attentionNorm),
                attention: AttentionSpec(heads: heads[i], kvHeads: heads[i], headDim: hs,
                                         projections: .fused(conv(b + "attn.c_attn", .qkv, C, 3 * A)),
                                         output: conv(b + "attn.c_proj", .attentionOutput, A, C),
                                         causal: true, scale: scale),
                mlpNorm: ln(b + "ln_2", .mlpNorm),
                mlp: MLPSpec(width: I, activation: act, projections: .plain(up: conv(b + "mlp.c_fc", .up, C, I)),
                             down: conv(b + "mlp.c_proj", .down, I, C)))
        }
        let output: HeadSpec.Output
        if c.stored("lm_head.weight") {
            output = .logits(LinearSpec(name: "lm_head", role: .head, inFeatures: C, outFeatures: V))
        } else if c.isBaseModel {
            output = .hiddenState
        } else {
            output = .tiedLogits(embedding: p + "wte.weight")
        }
        return ModelDescription(
            architecture: c.config.architecture ?? "GPT2LMHeadModel", modelType: "gpt2", hiddenSize: C, vocabSize: V, maxPositions: maxT,
            embedding: EmbeddingSpec(tokens: .init(name: p + "wte.weight", role: .tokenEmbedding, rows: V, width: C),
                                     positions: .init(name: p + "wpe.weight", role: .positionEmbedding, rows: maxT, width: C)),
            blocks: blocks,
            head: HeadSpec(finalNorm: ln(p + "ln_f", .finalNorm), output: output),
            sizeKeys: SizeKeys(heads: "n_head", keyValueHeads: nil, headDim: nil, width: "n_inner", layers: "n_layer"),
            buffers: ModelDescription.commonBuffers + ["attn.bias", "attn.masked_bias"])  // causal-mask buffers in older checkpoints
    }
}

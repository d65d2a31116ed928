// BERT-style encoder (Hugging Face BertModel; sentence-transformers checkpoints such as
// all-MiniLM-L6-v2). Post-LayerNorm residual blocks, `LayerNorm(x + SubLayer(x))`:
//
//   x = LayerNorm(word[ids] + position[0..<T] + token_type[0])        x [T, C]
//   for each layer:
//     x = LayerNorm(x + attention.output.dense(attention(query(x), key(x), value(x))))   bidirectional
//     x = LayerNorm(x + output.dense(gelu(intermediate.dense(x))))                        hidden [T, I]
//   output: x, the last hidden state [T, C]
//
// Names under "bert." or no prefix. One sequence, no padding: token type 0 everywhere.
// `pruned_heads` in the config gives a layer fewer heads of size hidden/num_heads
// (transformers 4.x's format, written by `ckpt prune`).
//
// RoBERTa and XLM-RoBERTa are the same encoder (names under "roberta." or none) whose
// positions start after the padding id: row pad_token_id + 1 + t for the t-th non-padding token.

public enum BertFamily: Architecture {
    public static let modelTypes = ["bert", "roberta", "xlm-roberta"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let C = try c.size("hidden_size")
        let NH = try c.size("num_attention_heads")
        let V = try c.size("vocab_size")
        let maxT = try c.size("max_position_embeddings")
        let I = try c.size("intermediate_size")
        let L = try c.layerCount("num_hidden_layers")
        let types = try c.size("type_vocab_size", default: 2)
        let eps = try c.epsilon("layer_norm_eps", default: 1e-12)
        guard C % NH == 0 else { throw TransformerError.invalidConfig("hidden_size \(C) is not a multiple of num_attention_heads \(NH)") }
        let act = try c.activation("hidden_act", default: .geluExact, allowed: [.geluExact, .geluTanh, .relu, .silu])
        try c.refuse("position_embedding_type", unless: [.string("absolute")])
        try c.refuse("is_decoder", unless: [.bool(false)])
        try c.refuse("add_cross_attention", unless: [.bool(false)])
        let p = try c.prefix(anchor: "embeddings.word_embeddings.weight", missing: "embeddings.word_embeddings.weight")
        let roberta = c.modelType != "bert"
        var pad: Int? = nil
        if roberta {
            guard let id = c["pad_token_id"]?.intValue, id >= 0, id < maxT else {
                throw TransformerError.invalidConfig("pad_token_id must be a position row below max_position_embeddings \(maxT) (RoBERTa positions start after it)")
            }
            pad = id
        }
        let heads = try prunedHeadCounts(c, layers: L, heads: NH)
        let hs = C / NH
        func ln(_ name: String, _ role: ParamRole) -> NormSpec {
            NormSpec(name: name, role: role, kind: .layerNorm, width: C, eps: eps, bias: .required)
        }
        func linear(_ name: String, _ role: ParamRole, _ inF: Int, _ outF: Int) -> LinearSpec {
            LinearSpec(name: name, role: role, inFeatures: inF, outFeatures: outF, bias: .required)
        }
        let blocks = (0..<L).map { i -> BlockSpec in
            let b = p + "encoder.layer.\(i).", A = heads[i] * hs
            return BlockSpec(
                index: i, prefix: b,
                attentionNorm: nil,
                attention: AttentionSpec(heads: heads[i], kvHeads: heads[i], headDim: hs,
                                         projections: .split(q: linear(b + "attention.self.query", .query, C, A),
                                                             k: linear(b + "attention.self.key", .key, C, A),
                                                             v: linear(b + "attention.self.value", .value, C, A)),
                                         output: linear(b + "attention.output.dense", .attentionOutput, A, C),
                                         causal: false, scale: 1 / Float(hs).squareRoot()),
                attentionResidualNorm: ln(b + "attention.output.LayerNorm", .postAttentionNorm),
                mlp: MLPSpec(width: I, activation: act, projections: .plain(up: linear(b + "intermediate.dense", .up, C, I)),
                             down: linear(b + "output.dense", .down, I, C)),
                mlpResidualNorm: ln(b + "output.LayerNorm", .postMLPNorm))
        }
        return ModelDescription(
            architecture: roberta ? c.config.architecture ?? "RobertaModel" : "BertModel", modelType: c.modelType, hiddenSize: C, vocabSize: V,
            maxPositions: maxT - (pad.map { $0 + 1 } ?? 0),
            embedding: EmbeddingSpec(tokens: .init(name: p + "embeddings.word_embeddings.weight", role: .tokenEmbedding, rows: V, width: C),
                                     positions: .init(name: p + "embeddings.position_embeddings.weight", role: .positionEmbedding, rows: maxT, width: C),
                                     positionPaddingID: pad,
                                     tokenTypes: .init(name: p + "embeddings.token_type_embeddings.weight", role: .tokenTypeEmbedding, rows: types, width: C),
                                     norm: ln(p + "embeddings.LayerNorm", .embeddingNorm)),
            blocks: blocks,
            head: HeadSpec(finalNorm: nil, output: .hiddenState),
            sizeKeys: SizeKeys(heads: "num_attention_heads", keyValueHeads: nil, headDim: nil, width: "intermediate_size", layers: "num_hidden_layers"),
            // The pooler and the pre-training heads (BertForMaskedLM's cls., RoBERTa's lm_head.)
            // are not part of the last hidden state.
            buffers: ModelDescription.commonBuffers + ["pooler.", "cls.", "lm_head."])
    }
}

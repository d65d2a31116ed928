// DistilBERT (Hugging Face DistilBertModel): BERT's post-LayerNorm encoder without token
// types, with its own names (under "distilbert." or none):
//
//   x = LayerNorm(word_embeddings[ids] + position_embeddings[0..<T])          x [T, C]
//   for each layer:
//     x = sa_layer_norm(x + attention.out_lin(attention(q_lin(x), k_lin(x), v_lin(x))))
//     x = output_layer_norm(x + ffn.lin2(gelu(ffn.lin1(x))))
//   output: the last hidden state [T, C]
//
// Sinusoidal position tables (sinusoidal_pos_embds) are stored in the weights like learned ones.

public enum DistilBertFamily: Architecture {
    public static let modelTypes = ["distilbert"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let C = try c.size("dim", "hidden_size")
        let NH = try c.size("n_heads", "num_attention_heads")
        let V = try c.size("vocab_size")
        let maxT = try c.size("max_position_embeddings")
        let I = try c.size("hidden_dim", "intermediate_size")
        let L = try c.layerCount("n_layers", "num_hidden_layers")
        guard C % NH == 0 else { throw TransformerError.invalidConfig("dim \(C) is not a multiple of n_heads \(NH)") }
        let act = try c.activation("activation", default: .geluExact, allowed: [.geluExact, .geluTanh, .relu])
        let p = try c.prefix(anchor: "embeddings.word_embeddings.weight", missing: "embeddings.word_embeddings.weight")
        let hs = C / NH
        func ln(_ name: String, _ role: ParamRole) -> NormSpec {
            NormSpec(name: name, role: role, kind: .layerNorm, width: C, eps: 1e-12, bias: .required)
        }
        func linear(_ name: String, _ role: ParamRole, _ inF: Int, _ outF: Int) -> LinearSpec {
            LinearSpec(name: name, role: role, inFeatures: inF, outFeatures: outF, bias: .required)
        }
        let blocks = (0..<L).map { i -> BlockSpec in
            let b = p + "transformer.layer.\(i)."
            return BlockSpec(
                index: i, prefix: b,
                attentionNorm: nil,
                attention: AttentionSpec(heads: NH, kvHeads: NH, headDim: hs,
                                         projections: .split(q: linear(b + "attention.q_lin", .query, C, C),
                                                             k: linear(b + "attention.k_lin", .key, C, C),
                                                             v: linear(b + "attention.v_lin", .value, C, C)),
                                         output: linear(b + "attention.out_lin", .attentionOutput, C, C),
                                         causal: false, scale: 1 / Float(hs).squareRoot()),
                attentionResidualNorm: ln(b + "sa_layer_norm", .postAttentionNorm),
                mlp: MLPSpec(width: I, activation: act, projections: .plain(up: linear(b + "ffn.lin1", .up, C, I)),
                             down: linear(b + "ffn.lin2", .down, I, C)),
                mlpResidualNorm: ln(b + "output_layer_norm", .postMLPNorm))
        }
        return ModelDescription(
            architecture: "DistilBertModel", modelType: "distilbert", hiddenSize: C, vocabSize: V, maxPositions: maxT,
            embedding: EmbeddingSpec(tokens: .init(name: p + "embeddings.word_embeddings.weight", role: .tokenEmbedding, rows: V, width: C),
                                     positions: .init(name: p + "embeddings.position_embeddings.weight", role: .positionEmbedding, rows: maxT, width: C),
                                     norm: ln(p + "embeddings.LayerNorm", .embeddingNorm)),
            blocks: blocks,
            head: HeadSpec(finalNorm: nil, output: .hiddenState),
            sizeKeys: SizeKeys(heads: "n_heads", keyValueHeads: nil, headDim: nil, width: "hidden_dim", layers: "n_layers"),
            buffers: ModelDescription.commonBuffers + ["vocab_transform.", "vocab_layer_norm.", "vocab_projector."])  // DistilBertForMaskedLM's head
    }
}

// The seed article's encoder: a stack of multi-head attention layers, each followed by the
// article's residual + LayerNorm, `LayerNorm(x + MHA(x))`, with one LayerNorm shared by all
// layers. Input: d_model-wide vectors, not tokens.
//
//   for each layer i:                                         x [T, C]
//     q, k, v = layers.i.query(x), layers.i.key(x), layers.i.value(x)
//     head_h = softmax(q_h · k_hᵀ / √d_k) · v_h                d_k = C / num_heads, over the sequence
//     x = norm(x + layers.i.out(concat(head_1 .. head_H)))
//   output: x [T, C]
//
// Parameter names are the article's PyTorch `state_dict()`: `layers.{i}.{query,key,value,out}.
// {weight,bias}`, `norm.{weight,bias}`. The article's code reshapes q to (B, T, H, d_k) and
// multiplies without moving the head axis forward, which attends across heads instead of
// positions; ckpt implements the article's formula (attention over the sequence, per head),
// which is what its text and equations state. The config (`model_type: seed_transformer`,
// `d_model`, `num_heads`, `num_layers`, `layer_norm_eps`) is ckpt's own, since the article
// saves none.

public enum SeedEncoderFamily: Architecture {
    public static let modelTypes = ["seed_transformer"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let C = try c.size("d_model", "hidden_size")
        let NH = try c.size("num_heads", "num_attention_heads")
        guard C % NH == 0 else { throw TransformerError.invalidConfig("d_model \(C) is not a multiple of num_heads \(NH)") }
        let eps = try c.epsilon("layer_norm_eps", default: 1e-5)
        // The layer count is in the config or implied by the weights.
        var L = c.lookup(["num_layers", "num_hidden_layers"]) == nil ? 0 : try c.layerCount("num_layers", "num_hidden_layers")
        if L == 0 { while c.has("layers.\(L).query.weight") { L += 1 } }
        guard L > 0 else { throw TransformerError.missingTensor("layers.0.query.weight") }
        let hs = C / NH
        func linear(_ name: String, _ role: ParamRole) -> LinearSpec {
            LinearSpec(name: name, role: role, inFeatures: C, outFeatures: C, bias: .required)
        }
        let norm = NormSpec(name: "norm", role: .postAttentionNorm, kind: .layerNorm, width: C, eps: eps, bias: .required)
        let blocks = (0..<L).map { i -> BlockSpec in
            let b = "layers.\(i)."
            return BlockSpec(
                index: i, prefix: b,
                attentionNorm: nil,
                attention: AttentionSpec(heads: NH, kvHeads: NH, headDim: hs,
                                         projections: .split(q: linear(b + "query", .query), k: linear(b + "key", .key), v: linear(b + "value", .value)),
                                         output: linear(b + "out", .attentionOutput),
                                         causal: false, scale: 1 / Float(hs).squareRoot()),
                attentionResidualNorm: norm)  // shared by every layer
        }
        return ModelDescription(
            architecture: "SeedTransformer", modelType: "seed_transformer", hiddenSize: C, vocabSize: nil, maxPositions: nil,
            embedding: EmbeddingSpec(tokens: nil), blocks: blocks, head: HeadSpec(finalNorm: nil, output: .hiddenState),
            sizeKeys: nil)  // ckpt's own test model: not resized
    }
}

// The seed article's encoder (../shared/seed/): a stack of multi-head attention layers, each
// followed by the article's residual + LayerNorm, `LayerNorm(x + MHA(x))`, with one LayerNorm
// shared by all layers. Input: d_model-wide vectors, not tokens.
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

import CkptCore

struct SeedEncoder: TransformerModel {
    struct Layer {
        var q, k, v, o: Matrix
        var qb, kb, vb, ob: [Float]
    }

    let architecture = "SeedTransformer"
    let outputKind = ForwardOutput.Kind.hiddenState
    let C, NH: Int
    let eps: Float
    let normw, normb: [Float]
    let layers: [Layer]
    var layerCount: Int { layers.count }
    var vocabSize: Int? { nil }

    init(config: ModelConfig, weights w: WeightStore) throws {
        C = try config.require(config["d_model"]?.intValue ?? config.hiddenSize, "d_model")
        NH = try config.require(config.numHeads, "num_heads")
        guard C % NH == 0 else { throw TransformerError.invalidConfig("d_model \(C) is not a multiple of num_heads \(NH)") }
        eps = config.float("layer_norm_eps", default: 1e-5)
        // The layer count is in the config or implied by the weights.
        var L = config.numLayers ?? 0
        if L == 0 { while w.has("layers.\(L).query.weight") { L += 1 } }
        guard L > 0 else { throw TransformerError.missingTensor("layers.0.query.weight") }
        normw = try w.floats("norm.weight", [C])
        normb = try w.floats("norm.bias", [C])
        let C = C
        layers = try (0..<L).map { i in
            let b = "layers.\(i)."
            return Layer(
                q: try w.linear(b + "query.weight", inFeatures: C, outFeatures: C),
                k: try w.linear(b + "key.weight", inFeatures: C, outFeatures: C),
                v: try w.linear(b + "value.weight", inFeatures: C, outFeatures: C),
                o: try w.linear(b + "out.weight", inFeatures: C, outFeatures: C),
                qb: try w.floats(b + "query.bias", [C]), kb: try w.floats(b + "key.bias", [C]),
                vb: try w.floats(b + "value.bias", [C]), ob: try w.floats(b + "out.bias", [C]))
        }
    }

    func flops(tokens T: Int) -> Double {
        Double(layers.count) * (8.0 * Double(T) * Double(C * C) + 4.0 * Double(T * T * C))
    }

    func forward(_ input: ModelInput, collectHidden: Bool, stats: ActivationStats?) throws -> ForwardOutput {
        guard case .vectors(var x, let T) = input else {
            throw TransformerError.badInput("the seed encoder takes d_model-wide vectors (--input vectors.npy), not token ids")
        }
        guard T > 0, x.count == T * C else { throw TransformerError.badInput("input must be [T, \(C)] vectors, got \(x.count) values") }
        var hidden: [[Float]] = []
        for l in layers {
            if collectHidden { hidden.append(x) }
            let q = Kernels.linear(x, T: T, l.q, bias: l.qb)
            let k = Kernels.linear(x, T: T, l.k, bias: l.kb)
            let v = Kernels.linear(x, T: T, l.v, bias: l.vb)
            let a = Kernels.attention(q: q, k: k, v: v, .init(T: T, NH: NH, NKV: NH, hs: C / NH, causal: false, window: nil))
            var r = Kernels.linear(a, T: T, l.o, bias: l.ob)
            Kernels.add(&r, x)
            x = Kernels.layerNorm(r, T: T, C: C, weight: normw, bias: normb, eps: eps)
        }
        return ForwardOutput(kind: .hiddenState, values: x, rows: T, cols: C, hiddenStates: hidden)
    }
}

// BERT-style encoder (Hugging Face BertModel; sentence-transformers checkpoints such as
// all-MiniLM-L6-v2), forward pass. Post-LayerNorm residual blocks, the seed article's
// `LayerNorm(x + SubLayer(x))`:
//
//   x = LayerNorm(word[ids] + position[0..<T] + token_type[0])        x [T, C]
//   for each layer:
//     a = attention(query(x), key(x), value(x), bidirectional)         NH heads of hs
//     x = LayerNorm(x + attention.output.dense(a))
//     x = LayerNorm(x + output.dense(gelu_erf(intermediate.dense(x)))) hidden [T, I]
//   output: x, the last hidden state [T, C]
//
// Names under "bert." or no prefix. One sequence, no padding: token type 0 everywhere.
// `pruned_heads` in the config gives a layer fewer heads of size hidden/num_heads
// (transformers 4.x's format, written by `ckpt prune`).

import CkptCore

struct Bert: TransformerModel {
    struct Layer {
        var heads: Int
        var q, k, v, o, up, down: Matrix
        var qb, kb, vb, ob, upb, downb: [Float]
        var ln1w, ln1b, ln2w, ln2b: [Float]
    }

    let architecture = "BertModel"
    let outputKind = ForwardOutput.Kind.hiddenState
    let C, NH, V, maxT, inner: Int
    let eps: Float
    let prefix: String
    let word, position, tokenType, lnw, lnb: [Float]
    let layers: [Layer]
    var layerCount: Int { layers.count }
    var vocabSize: Int? { V }

    init(config: ModelConfig, weights w: WeightStore) throws {
        C = try config.require(config.hiddenSize, "hidden_size")
        NH = try config.require(config.numHeads, "num_attention_heads")
        V = try config.require(config.vocabSize, "vocab_size")
        maxT = try config.require(config.maxPositions, "max_position_embeddings")
        inner = try config.require(config.intermediateSize, "intermediate_size")
        let L = try config.require(config.numLayers, "num_hidden_layers")
        eps = config.float("layer_norm_eps", default: 1e-12)
        guard C % NH == 0 else { throw TransformerError.invalidConfig("hidden_size \(C) is not a multiple of num_attention_heads \(NH)") }
        if let act = config["hidden_act"]?.stringValue, act != "gelu" {
            throw TransformerError.invalidConfig("hidden_act \(act) is not supported (BERT uses gelu)")
        }
        if let pos = config["position_embedding_type"]?.stringValue, pos != "absolute" {
            throw TransformerError.invalidConfig("position_embedding_type \(pos) is not supported")
        }
        guard let p = w.prefix(forAnchor: "embeddings.word_embeddings.weight") else {
            throw TransformerError.missingTensor("embeddings.word_embeddings.weight")
        }
        prefix = p
        let headsPerLayer = try prunedHeadCounts(config, layers: L, heads: NH)
        let types = config["type_vocab_size"]?.intValue ?? 2
        word = try w.floats(p + "embeddings.word_embeddings.weight", [V, C])
        position = try w.floats(p + "embeddings.position_embeddings.weight", [maxT, C])
        tokenType = try w.floats(p + "embeddings.token_type_embeddings.weight", [types, C])
        lnw = try w.floats(p + "embeddings.LayerNorm.weight", [C])
        lnb = try w.floats(p + "embeddings.LayerNorm.bias", [C])
        let (C, inner, hs) = (C, inner, C / NH)
        layers = try (0..<L).map { i in
            let b = p + "encoder.layer.\(i)."
            let A = headsPerLayer[i] * hs
            return Layer(
                heads: headsPerLayer[i],
                q: try w.linear(b + "attention.self.query.weight", inFeatures: C, outFeatures: A),
                k: try w.linear(b + "attention.self.key.weight", inFeatures: C, outFeatures: A),
                v: try w.linear(b + "attention.self.value.weight", inFeatures: C, outFeatures: A),
                o: try w.linear(b + "attention.output.dense.weight", inFeatures: A, outFeatures: C),
                up: try w.linear(b + "intermediate.dense.weight", inFeatures: C, outFeatures: inner),
                down: try w.linear(b + "output.dense.weight", inFeatures: inner, outFeatures: C),
                qb: try w.floats(b + "attention.self.query.bias", [A]),
                kb: try w.floats(b + "attention.self.key.bias", [A]),
                vb: try w.floats(b + "attention.self.value.bias", [A]),
                ob: try w.floats(b + "attention.output.dense.bias", [C]),
                upb: try w.floats(b + "intermediate.dense.bias", [inner]),
                downb: try w.floats(b + "output.dense.bias", [C]),
                ln1w: try w.floats(b + "attention.output.LayerNorm.weight", [C]),
                ln1b: try w.floats(b + "attention.output.LayerNorm.bias", [C]),
                ln2w: try w.floats(b + "output.LayerNorm.weight", [C]),
                ln2b: try w.floats(b + "output.LayerNorm.bias", [C]))
        }
    }

    func flops(tokens T: Int) -> Double {
        let hs = C / NH
        return layers.map { l in
            2.0 * Double(T) * Double(C) * Double(4 * l.heads * hs + 2 * inner) + 4.0 * Double(T * T * l.heads * hs)
        }.reduce(0, +)
    }

    func forward(_ input: ModelInput, collectHidden: Bool, stats: ActivationStats?) throws -> ForwardOutput {
        let ids = try checkTokens(input, vocab: V, maxPositions: maxT)
        let T = ids.count
        var e = Kernels.embed(word, C: C, ids: ids)                  // [T, C]
        Kernels.add(&e, Array(position[0..<T * C]))
        for t in 0..<T { for i in 0..<C { e[t * C + i] += tokenType[i] } }
        var x = Kernels.layerNorm(e, T: T, C: C, weight: lnw, bias: lnb, eps: eps)
        var hidden: [[Float]] = []
        stats?.addTokens(T)
        let hs = C / NH
        for (i, l) in layers.enumerated() {
            if collectHidden { hidden.append(x) }
            let blockInput = x
            let name = prefix + "encoder.layer.\(i)."
            for proj in ["query", "key", "value"] { stats?.addInput(name + "attention.self.\(proj).weight", x, T: T, C: C) }
            let q = Kernels.linear(x, T: T, l.q, bias: l.qb)
            let k = Kernels.linear(x, T: T, l.k, bias: l.kb)
            let v = Kernels.linear(x, T: T, l.v, bias: l.vb)
            let a = Kernels.attention(q: q, k: k, v: v, .init(T: T, NH: l.heads, NKV: l.heads, hs: hs, causal: false, window: nil))
            stats?.addHeads(layer: i, a, T: T, heads: l.heads, hs: hs)
            stats?.addInput(name + "attention.output.dense.weight", a, T: T, C: l.heads * hs)
            var r = Kernels.linear(a, T: T, l.o, bias: l.ob)
            Kernels.add(&r, x)
            x = Kernels.layerNorm(r, T: T, C: C, weight: l.ln1w, bias: l.ln1b, eps: eps)
            stats?.addInput(name + "intermediate.dense.weight", x, T: T, C: C)
            var f = Kernels.linear(x, T: T, l.up, bias: l.upb)       // [T, inner]
            Kernels.geluErf(&f)
            stats?.addNeurons(layer: i, f, T: T, width: inner)
            stats?.addInput(name + "output.dense.weight", f, T: T, C: inner)
            var r2 = Kernels.linear(f, T: T, l.down, bias: l.downb)
            Kernels.add(&r2, x)
            x = Kernels.layerNorm(r2, T: T, C: C, weight: l.ln2w, bias: l.ln2b, eps: eps)
            stats?.addBlock(layer: i, input: blockInput, output: x, T: T, C: C)
        }
        return ForwardOutput(kind: .hiddenState, values: x, rows: T, cols: C, hiddenStates: hidden)
    }
}

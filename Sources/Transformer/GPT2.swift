// GPT-2 (Hugging Face GPT2LMHeadModel), forward pass.
//
//   x = wte[ids] + wpe[0..<T]                                   x [T, C]
//   for each block:
//     a = c_attn(ln_1(x))                                       a [T, 3C]  (Conv1D: W [C, 3C])
//     x = x + c_proj(attention(q, k, v, causal))                q, k, v [T, C], NH heads of hs
//     x = x + mlp.c_proj(gelu_tanh(mlp.c_fc(ln_2(x))))          hidden [T, 4C] (or n_inner)
//   logits = ln_f(x) · wteᵀ                                     [T, V] (lm_head tied to wte)
//
// Names as Hugging Face saves them, under "transformer." or no prefix. A config's
// `pruned_heads` ({"layer": [head, ...]}, transformers 4.x's format, written by `ckpt prune`)
// gives a layer fewer heads of the same size hs = n_embd / n_head: its c_attn is then
// [C, 3·NH_l·hs] and its c_proj [NH_l·hs, C].

import CkptCore

struct GPT2: TransformerModel {
    struct Block {
        var heads: Int
        var ln1w, ln1b, ln2w, ln2b: [Float]
        var attn: Matrix, attnBias: [Float]
        var proj: Matrix, projBias: [Float]
        var fc: Matrix, fcBias: [Float]
        var fcProj: Matrix, fcProjBias: [Float]
    }

    let architecture = "GPT2LMHeadModel"
    let outputKind = ForwardOutput.Kind.logits
    let C, NH, V, maxT, inner: Int
    let eps: Float
    let prefix: String
    let wte, wpe, lnfw, lnfb: [Float]
    let head: Matrix
    let blocks: [Block]
    var layerCount: Int { blocks.count }
    var vocabSize: Int? { V }

    init(config: ModelConfig, weights w: WeightStore) throws {
        C = try config.require(config.hiddenSize, "n_embd")
        NH = try config.require(config.numHeads, "n_head")
        V = try config.require(config.vocabSize, "vocab_size")
        maxT = try config.require(config.maxPositions, "n_positions")
        let L = try config.require(config.numLayers, "n_layer")
        inner = config.intermediateSize ?? 4 * C
        eps = config.float("layer_norm_epsilon", default: 1e-5)
        guard C % NH == 0 else { throw TransformerError.invalidConfig("n_embd \(C) is not a multiple of n_head \(NH)") }
        if let act = config["activation_function"]?.stringValue, !["gelu_new", "gelu_pytorch_tanh", "gelu_fast"].contains(act) {
            throw TransformerError.invalidConfig("activation_function \(act) is not supported (GPT-2 uses gelu_new)")
        }
        guard let p = w.prefix(forAnchor: "wte.weight") else { throw TransformerError.missingTensor("transformer.wte.weight") }
        prefix = p
        let headsPerLayer = try prunedHeadCounts(config, layers: L, heads: NH)
        wte = try w.floats(p + "wte.weight", [V, C])
        wpe = try w.floats(p + "wpe.weight", [maxT, C])
        lnfw = try w.floats(p + "ln_f.weight", [C])
        lnfb = try w.floats(p + "ln_f.bias", [C])
        // An untied head, if the checkpoint has one; otherwise the embedding (tied).
        if w.graph.tensors["lm_head.weight"] != nil {
            head = try w.linear("lm_head.weight", inFeatures: C, outFeatures: V)
        } else {
            head = Matrix(data: wte, inFeatures: C, outFeatures: V, layout: .outIn)
        }
        let (C, inner, hs) = (C, inner, C / NH)
        blocks = try (0..<L).map { i in
            let b = p + "h.\(i)."
            func conv(_ name: String, _ inF: Int, _ outF: Int) throws -> Matrix {
                Matrix(data: try w.floats(b + name, [inF, outF]), inFeatures: inF, outFeatures: outF, layout: .inOut)
            }
            let A = headsPerLayer[i] * hs  // attention width of this layer
            return Block(
                heads: headsPerLayer[i],
                ln1w: try w.floats(b + "ln_1.weight", [C]), ln1b: try w.floats(b + "ln_1.bias", [C]),
                ln2w: try w.floats(b + "ln_2.weight", [C]), ln2b: try w.floats(b + "ln_2.bias", [C]),
                attn: try conv("attn.c_attn.weight", C, 3 * A), attnBias: try w.floats(b + "attn.c_attn.bias", [3 * A]),
                proj: try conv("attn.c_proj.weight", A, C), projBias: try w.floats(b + "attn.c_proj.bias", [C]),
                fc: try conv("mlp.c_fc.weight", C, inner), fcBias: try w.floats(b + "mlp.c_fc.bias", [inner]),
                fcProj: try conv("mlp.c_proj.weight", inner, C), fcProjBias: try w.floats(b + "mlp.c_proj.bias", [C]))
        }
    }

    func flops(tokens T: Int) -> Double {
        let hs = C / NH
        let perBlock = blocks.map { b in
            2.0 * Double(T) * Double(C) * Double(4 * b.heads * hs + 2 * inner) + 4.0 * Double(T * T * b.heads * hs)
        }
        return perBlock.reduce(0, +) + 2.0 * Double(T) * Double(C) * Double(V)
    }

    func forward(_ input: ModelInput, collectHidden: Bool, stats: ActivationStats?) throws -> ForwardOutput {
        let ids = try checkTokens(input, vocab: V, maxPositions: maxT)
        let T = ids.count, hs = C / NH
        var x = Kernels.embed(wte, C: C, ids: ids)                 // [T, C]
        Kernels.add(&x, Array(wpe[0..<T * C]))
        var hidden: [[Float]] = []
        stats?.addTokens(T)
        for (i, b) in blocks.enumerated() {
            if collectHidden { hidden.append(x) }
            let blockInput = x
            let name = prefix + "h.\(i)."
            let A = b.heads * hs
            let h1 = Kernels.layerNorm(x, T: T, C: C, weight: b.ln1w, bias: b.ln1b, eps: eps)
            stats?.addInput(name + "attn.c_attn.weight", h1, T: T, C: C)
            let qkv = Kernels.linear(h1, T: T, b.attn, bias: b.attnBias)  // [T, 3A]
            var q = [Float](repeating: 0, count: T * A), k = q, v = q
            for t in 0..<T {
                q.replaceSubrange(t * A..<(t + 1) * A, with: qkv[t * 3 * A..<t * 3 * A + A])
                k.replaceSubrange(t * A..<(t + 1) * A, with: qkv[t * 3 * A + A..<t * 3 * A + 2 * A])
                v.replaceSubrange(t * A..<(t + 1) * A, with: qkv[t * 3 * A + 2 * A..<(t + 1) * 3 * A])
            }
            let att = Kernels.attention(q: q, k: k, v: v, .init(T: T, NH: b.heads, NKV: b.heads, hs: hs, causal: true, window: nil))
            stats?.addHeads(layer: i, att, T: T, heads: b.heads, hs: hs)
            stats?.addInput(name + "attn.c_proj.weight", att, T: T, C: A)
            Kernels.add(&x, Kernels.linear(att, T: T, b.proj, bias: b.projBias))
            let h2 = Kernels.layerNorm(x, T: T, C: C, weight: b.ln2w, bias: b.ln2b, eps: eps)
            stats?.addInput(name + "mlp.c_fc.weight", h2, T: T, C: C)
            var f = Kernels.linear(h2, T: T, b.fc, bias: b.fcBias)   // [T, inner]
            Kernels.geluTanh(&f)
            stats?.addNeurons(layer: i, f, T: T, width: inner)
            stats?.addInput(name + "mlp.c_proj.weight", f, T: T, C: inner)
            Kernels.add(&x, Kernels.linear(f, T: T, b.fcProj, bias: b.fcProjBias))
            stats?.addBlock(layer: i, input: blockInput, output: x, T: T, C: C)
        }
        let xf = Kernels.layerNorm(x, T: T, C: C, weight: lnfw, bias: lnfb, eps: eps)
        let logits = Kernels.linear(xf, T: T, head, bias: nil)     // [T, V]
        return ForwardOutput(kind: .logits, values: logits, rows: T, cols: V, hiddenStates: hidden)
    }
}

/// Heads per layer after a config's `pruned_heads` ({"layer": [head indices]}), as
/// transformers 4.x applied them (GPT-2, BERT).
func prunedHeadCounts(_ config: ModelConfig, layers L: Int, heads NH: Int) throws -> [Int] {
    var counts = [Int](repeating: NH, count: L)
    guard let pruned = config["pruned_heads"]?.objectValue else { return counts }
    for (key, value) in pruned {
        guard let layer = Int(key), layer >= 0, layer < L, let heads = value.arrayValue?.compactMap(\.intValue),
              Set(heads).count == heads.count, heads.allSatisfy({ $0 >= 0 && $0 < NH }), heads.count < NH
        else { throw TransformerError.invalidConfig("pruned_heads entry \"\(key)\" is not a layer with a list of distinct heads, keeping at least one") }
        counts[layer] = NH - heads.count
    }
    return counts
}

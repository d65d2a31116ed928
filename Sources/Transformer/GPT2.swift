// GPT-2 (Hugging Face GPT2LMHeadModel), forward pass.
//
//   x = wte[ids] + wpe[0..<T]                                   x [T, C]
//   for each block:
//     a = c_attn(ln_1(x))                                       a [T, 3C]  (Conv1D: W [C, 3C])
//     x = x + c_proj(attention(q, k, v, causal))                q, k, v [T, C], NH heads of hs
//     x = x + mlp.c_proj(gelu_tanh(mlp.c_fc(ln_2(x))))          hidden [T, 4C] (or n_inner)
//   logits = ln_f(x) · wteᵀ                                     [T, V] (lm_head tied to wte)
//
// Names as Hugging Face saves them, under "transformer." or no prefix.

import CkptCore

struct GPT2: TransformerModel {
    struct Block {
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
        let (C, inner) = (C, inner)
        blocks = try (0..<L).map { i in
            let b = p + "h.\(i)."
            func conv(_ name: String, _ inF: Int, _ outF: Int) throws -> Matrix {
                Matrix(data: try w.floats(b + name, [inF, outF]), inFeatures: inF, outFeatures: outF, layout: .inOut)
            }
            return Block(
                ln1w: try w.floats(b + "ln_1.weight", [C]), ln1b: try w.floats(b + "ln_1.bias", [C]),
                ln2w: try w.floats(b + "ln_2.weight", [C]), ln2b: try w.floats(b + "ln_2.bias", [C]),
                attn: try conv("attn.c_attn.weight", C, 3 * C), attnBias: try w.floats(b + "attn.c_attn.bias", [3 * C]),
                proj: try conv("attn.c_proj.weight", C, C), projBias: try w.floats(b + "attn.c_proj.bias", [C]),
                fc: try conv("mlp.c_fc.weight", C, inner), fcBias: try w.floats(b + "mlp.c_fc.bias", [inner]),
                fcProj: try conv("mlp.c_proj.weight", inner, C), fcProjBias: try w.floats(b + "mlp.c_proj.bias", [C]))
        }
    }

    func flops(tokens T: Int) -> Double {
        let perBlock = 2.0 * Double(T) * Double(C) * Double(3 * C + C + 2 * inner) + 4.0 * Double(T * T * C)
        return Double(blocks.count) * perBlock + 2.0 * Double(T) * Double(C) * Double(V)
    }

    func forward(_ input: ModelInput, collectHidden: Bool) throws -> ForwardOutput {
        let ids = try checkTokens(input, vocab: V, maxPositions: maxT)
        let T = ids.count, hs = C / NH
        var x = Kernels.embed(wte, C: C, ids: ids)                 // [T, C]
        Kernels.add(&x, Array(wpe[0..<T * C]))
        var hidden: [[Float]] = []
        for b in blocks {
            if collectHidden { hidden.append(x) }
            let h1 = Kernels.layerNorm(x, T: T, C: C, weight: b.ln1w, bias: b.ln1b, eps: eps)
            let qkv = Kernels.linear(h1, T: T, b.attn, bias: b.attnBias)  // [T, 3C]
            var q = [Float](repeating: 0, count: T * C), k = q, v = q
            for t in 0..<T {
                q.replaceSubrange(t * C..<(t + 1) * C, with: qkv[t * 3 * C..<t * 3 * C + C])
                k.replaceSubrange(t * C..<(t + 1) * C, with: qkv[t * 3 * C + C..<t * 3 * C + 2 * C])
                v.replaceSubrange(t * C..<(t + 1) * C, with: qkv[t * 3 * C + 2 * C..<(t + 1) * 3 * C])
            }
            let att = Kernels.attention(q: q, k: k, v: v, .init(T: T, NH: NH, NKV: NH, hs: hs, causal: true, window: nil))
            Kernels.add(&x, Kernels.linear(att, T: T, b.proj, bias: b.projBias))
            let h2 = Kernels.layerNorm(x, T: T, C: C, weight: b.ln2w, bias: b.ln2b, eps: eps)
            var f = Kernels.linear(h2, T: T, b.fc, bias: b.fcBias)   // [T, inner]
            Kernels.geluTanh(&f)
            Kernels.add(&x, Kernels.linear(f, T: T, b.fcProj, bias: b.fcProjBias))
        }
        let xf = Kernels.layerNorm(x, T: T, C: C, weight: lnfw, bias: lnfb, eps: eps)
        let logits = Kernels.linear(xf, T: T, head, bias: nil)     // [T, V]
        return ForwardOutput(kind: .logits, values: logits, rows: T, cols: V, hiddenStates: hidden)
    }
}

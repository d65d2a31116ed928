// LLaMA-style decoder (Hugging Face LlamaForCausalLM; the same code runs Mistral and Qwen2
// configs), forward pass.
//
//   x = embed_tokens[ids]                                            x [T, C]
//   for each layer:
//     h = rms_norm(x)
//     q, k, v = q_proj(h), k_proj(h), v_proj(h)                       q [T, NH·hs], k v [T, NKV·hs]
//     rope(q), rope(k)                                               rotate-half, rope_theta (+ llama3/linear scaling)
//     x = x + o_proj(attention(q, k, v, causal, GQA, sliding window))
//     x = x + down_proj(silu(gate_proj(h2)) · up_proj(h2)),  h2 = rms_norm(x)
//   logits = rms_norm(x) · lm_headᵀ                                  [T, V] (lm_head tied when configured)
//
// Biases are used when the checkpoint has them (Qwen2's q/k/v, `attention_bias`, `mlp_bias`).
// Names under "model." (and "lm_head.weight").

import CkptCore
import Foundation

struct Llama: TransformerModel {
    struct Layer {
        var inNorm, postNorm: [Float]
        var q, k, v, o, gate, up, down: Matrix
        var qb, kb, vb, ob, gateb, upb, downb: [Float]?
    }

    let architecture: String
    let outputKind = ForwardOutput.Kind.logits
    let C, NH, NKV, hs, V, inner: Int
    let maxT: Int?
    let window: Int?
    let eps: Float
    let prefix: String
    let embed, norm: [Float]
    let head: Matrix
    let invFreq: [Float]
    let layers: [Layer]
    var layerCount: Int { layers.count }
    var vocabSize: Int? { V }

    init(config: ModelConfig, weights w: WeightStore) throws {
        architecture = config.architecture ?? "LlamaForCausalLM"
        C = try config.require(config.hiddenSize, "hidden_size")
        NH = try config.require(config.numHeads, "num_attention_heads")
        NKV = try config.require(config.numKeyValueHeads, "num_key_value_heads")
        V = try config.require(config.vocabSize, "vocab_size")
        inner = try config.require(config.intermediateSize, "intermediate_size")
        let L = try config.require(config.numLayers, "num_hidden_layers")
        hs = config["head_dim"]?.intValue ?? C / NH
        maxT = config.maxPositions
        eps = config.float("rms_norm_eps", default: 1e-6)
        guard NH % NKV == 0 else { throw TransformerError.invalidConfig("num_attention_heads \(NH) is not a multiple of num_key_value_heads \(NKV)") }
        guard hs % 2 == 0, hs > 0 else { throw TransformerError.invalidConfig("head size \(hs) must be even for rotary embeddings") }
        if let act = config["hidden_act"]?.stringValue, act != "silu" {
            throw TransformerError.invalidConfig("hidden_act \(act) is not supported (LLaMA uses silu)")
        }
        // Mistral's sliding window (Qwen2 only when use_sliding_window is set).
        let useWindow = config["use_sliding_window"]?.boolValue ?? (config.modelType == "mistral")
        window = useWindow ? config["sliding_window"]?.intValue : nil
        invFreq = try Llama.inverseFrequencies(config: config, headSize: hs)

        guard let p = w.prefix(forAnchor: "embed_tokens.weight") else { throw TransformerError.missingTensor("model.embed_tokens.weight") }
        prefix = p
        embed = try w.floats(p + "embed_tokens.weight", [V, C])
        norm = try w.floats(p + "norm.weight", [C])
        if w.graph.tensors["lm_head.weight"] != nil {
            head = try w.linear("lm_head.weight", inFeatures: C, outFeatures: V)
        } else if config.tieWordEmbeddings {
            head = Matrix(data: embed, inFeatures: C, outFeatures: V, layout: .outIn)
        } else {
            throw TransformerError.missingTensor("lm_head.weight")
        }
        let (C, NH, NKV, hs, inner) = (C, NH, NKV, hs, inner)
        layers = try (0..<L).map { i in
            let b = p + "layers.\(i)."
            return Layer(
                inNorm: try w.floats(b + "input_layernorm.weight", [C]),
                postNorm: try w.floats(b + "post_attention_layernorm.weight", [C]),
                q: try w.linear(b + "self_attn.q_proj.weight", inFeatures: C, outFeatures: NH * hs),
                k: try w.linear(b + "self_attn.k_proj.weight", inFeatures: C, outFeatures: NKV * hs),
                v: try w.linear(b + "self_attn.v_proj.weight", inFeatures: C, outFeatures: NKV * hs),
                o: try w.linear(b + "self_attn.o_proj.weight", inFeatures: NH * hs, outFeatures: C),
                gate: try w.linear(b + "mlp.gate_proj.weight", inFeatures: C, outFeatures: inner),
                up: try w.linear(b + "mlp.up_proj.weight", inFeatures: C, outFeatures: inner),
                down: try w.linear(b + "mlp.down_proj.weight", inFeatures: inner, outFeatures: C),
                qb: try w.optionalFloats(b + "self_attn.q_proj.bias", [NH * hs]),
                kb: try w.optionalFloats(b + "self_attn.k_proj.bias", [NKV * hs]),
                vb: try w.optionalFloats(b + "self_attn.v_proj.bias", [NKV * hs]),
                ob: try w.optionalFloats(b + "self_attn.o_proj.bias", [C]),
                gateb: try w.optionalFloats(b + "mlp.gate_proj.bias", [inner]),
                upb: try w.optionalFloats(b + "mlp.up_proj.bias", [inner]),
                downb: try w.optionalFloats(b + "mlp.down_proj.bias", [C]))
        }
    }

    /// Rotary inverse frequencies θ^(-2i/hs), i < hs/2, in f32 as PyTorch computes them, with
    /// the `rope_scaling` / `rope_parameters` types Hugging Face defines for LLaMA: default,
    /// linear, llama3. (transformers ≥ 5 writes `rope_parameters` with `rope_theta` inside.)
    static func inverseFrequencies(config: ModelConfig, headSize hs: Int) throws -> [Float] {
        let params = config["rope_parameters"]?.objectValue ?? config["rope_scaling"]?.objectValue
        let theta = params?["rope_theta"]?.doubleValue ?? config["rope_theta"]?.doubleValue ?? 10000
        var inv = (0..<hs / 2).map { i in Float(1) / powf(Float(theta), Float(2 * i) / Float(hs)) }
        let type = params?["rope_type"]?.stringValue ?? params?["type"]?.stringValue ?? "default"
        switch type {
        case "default":
            break
        case "linear":
            let factor = Float(params?["factor"]?.doubleValue ?? 1)
            inv = inv.map { $0 / factor }
        case "llama3":
            guard let factor = params?["factor"]?.doubleValue, let low = params?["low_freq_factor"]?.doubleValue,
                  let high = params?["high_freq_factor"]?.doubleValue,
                  let old = params?["original_max_position_embeddings"]?.doubleValue, high != low
            else { throw TransformerError.invalidConfig("llama3 rope scaling needs factor, low_freq_factor, high_freq_factor, original_max_position_embeddings") }
            let (f, lo, hi, oldCtx) = (Float(factor), Float(low), Float(high), Float(old))
            let lowWavelen = oldCtx / lo, highWavelen = oldCtx / hi
            inv = inv.map { freq in
                let wavelen = 2 * Float.pi / freq
                if wavelen < highWavelen { return freq }
                if wavelen > lowWavelen { return freq / f }
                let smooth = (oldCtx / wavelen - lo) / (hi - lo)
                return (1 - smooth) * freq / f + smooth * freq
            }
        default:
            throw TransformerError.invalidConfig("rope type \(type) is not supported (default, linear, llama3)")
        }
        return inv
    }

    func flops(tokens T: Int) -> Double {
        let proj = Double(C) * Double(2 * NH * hs + 2 * NKV * hs) + 3.0 * Double(C) * Double(inner)
        return Double(layers.count) * (2.0 * Double(T) * proj + 4.0 * Double(T * T * NH * hs)) + 2.0 * Double(T) * Double(C) * Double(V)
    }

    func forward(_ input: ModelInput, collectHidden: Bool, stats: ActivationStats?) throws -> ForwardOutput {
        let ids = try checkTokens(input, vocab: V, maxPositions: maxT)
        let T = ids.count
        let (cos, sin) = Kernels.ropeTables(T: T, invFreq: invFreq)
        var x = Kernels.embed(embed, C: C, ids: ids)                 // [T, C]
        var hidden: [[Float]] = []
        stats?.addTokens(T)
        for (i, l) in layers.enumerated() {
            if collectHidden { hidden.append(x) }
            let blockInput = x
            let name = prefix + "layers.\(i)."
            let h = Kernels.rmsNorm(x, T: T, C: C, weight: l.inNorm, eps: eps)
            for proj in ["q", "k", "v"] { stats?.addInput(name + "self_attn.\(proj)_proj.weight", h, T: T, C: C) }
            var q = Kernels.linear(h, T: T, l.q, bias: l.qb)         // [T, NH·hs]
            var k = Kernels.linear(h, T: T, l.k, bias: l.kb)         // [T, NKV·hs]
            let v = Kernels.linear(h, T: T, l.v, bias: l.vb)
            Kernels.rope(&q, T: T, heads: NH, hs: hs, cos: cos, sin: sin)
            Kernels.rope(&k, T: T, heads: NKV, hs: hs, cos: cos, sin: sin)
            let a = Kernels.attention(q: q, k: k, v: v, .init(T: T, NH: NH, NKV: NKV, hs: hs, causal: true, window: window))
            stats?.addHeads(layer: i, a, T: T, heads: NH, hs: hs)
            stats?.addInput(name + "self_attn.o_proj.weight", a, T: T, C: NH * hs)
            Kernels.add(&x, Kernels.linear(a, T: T, l.o, bias: l.ob))
            let h2 = Kernels.rmsNorm(x, T: T, C: C, weight: l.postNorm, eps: eps)
            for proj in ["gate", "up"] { stats?.addInput(name + "mlp.\(proj)_proj.weight", h2, T: T, C: C) }
            var g = Kernels.linear(h2, T: T, l.gate, bias: l.gateb)  // [T, inner]
            Kernels.swiglu(&g, Kernels.linear(h2, T: T, l.up, bias: l.upb))
            stats?.addNeurons(layer: i, g, T: T, width: inner)
            stats?.addInput(name + "mlp.down_proj.weight", g, T: T, C: inner)
            Kernels.add(&x, Kernels.linear(g, T: T, l.down, bias: l.downb))
            stats?.addBlock(layer: i, input: blockInput, output: x, T: T, C: C)
        }
        let xf = Kernels.rmsNorm(x, T: T, C: C, weight: norm, eps: eps)
        let logits = Kernels.linear(xf, T: T, head, bias: nil)     // [T, V]
        return ForwardOutput(kind: .logits, values: logits, rows: T, cols: V, hiddenStates: hidden)
    }
}

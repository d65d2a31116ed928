// StableLM (Hugging Face StableLmForCausalLM): a rotary decoder (RotaryDecoder) with
// LayerNorm (bias), partial rotary, q/k/v biases (use_qkv_bias), optional per-head q/k
// LayerNorms with weights of their own per head (qk_layernorm), and optionally the parallel
// residual with one shared norm:
//
//   h = input_layernorm(x)
//   x = x + o_proj(attention(h)) + mlp(h)                        (use_parallel_residual)
//   x = x + o_proj(attention(h)); x = x + mlp(post_attention_layernorm(x))      (otherwise)

public enum StableLMFamily: Architecture {
    public static let modelTypes = ["stablelm"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let d = try RotaryDecoder(c)
        let eps = try c.epsilon("layer_norm_eps", default: 1e-5)
        let parallel = try c.bool("use_parallel_residual", default: false)
        let qkNorm = try c.bool("qk_layernorm", default: false)
        let qkvBias = try c.bool("use_qkv_bias", default: false)
        func ln(_ name: String, _ role: ParamRole, width: Int? = nil, bias: Presence = .required) -> NormSpec {
            NormSpec(name: name, role: role, kind: .layerNorm, width: width ?? d.C, eps: eps, bias: bias)
        }
        let blocks = (0..<d.L).map { i -> BlockSpec in
            var b = d.block(i, c)
            let p = b.prefix
            let input = ln(p + "input_layernorm", .attentionNorm)
            b.attentionNorm = input
            b.parallel = parallel
            b.mlpNorm = parallel ? input : ln(p + "post_attention_layernorm", .mlpNorm)
            if case .split(var q, var k, var v) = b.attention.projections {
                let bias: Presence = qkvBias ? .required : .absent
                (q.bias, k.bias, v.bias) = (bias, bias, bias)
                b.attention.projections = .split(q: q, k: k, v: v)
            }
            if qkNorm {
                var qn = ln(p + "self_attn.q_layernorm", .queryNorm, width: d.hs, bias: .absent), kn = qn
                qn.perHead = d.NH
                kn.name = p + "self_attn.k_layernorm"
                kn.role = .keyNorm
                kn.perHead = d.NKV
                b.attention.queryNorm = qn
                b.attention.keyNorm = kn
            }
            return b
        }
        var description = d.description(c, default: "StableLmForCausalLM", blocks: blocks, head: try d.head(c, finalNorm: ln(d.prefix + "norm", .finalNorm)))
        description.sizeKeys?.headDim = nil  // transformers' StableLM attention uses hidden_size / heads
        return description
    }
}

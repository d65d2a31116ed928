// OLMo 2 (Hugging Face Olmo2ForCausalLM): a LLaMA-style decoder (RotaryDecoder) whose norms
// follow the sub-layers instead of preceding them, and whose q/k norms span all heads:
//
//   q, k = q_norm(q_proj(x)), k_norm(k_proj(x))            RMSNorm over NH·hs and NKV·hs
//   x = x + post_attention_layernorm(o_proj(attention(rope(q), rope(k), v)))
//   x = x + post_feedforward_layernorm(down_proj(silu(gate_proj(x)) · up_proj(x)))

public enum Olmo2Family: Architecture {
    public static let modelTypes = ["olmo2"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let d = try RotaryDecoder(c)
        let blocks = (0..<d.L).map { i -> BlockSpec in
            var b = d.block(i, c)
            let p = b.prefix
            b.attentionNorm = nil
            b.mlpNorm = nil
            b.postAttentionNorm = d.rms(p + "post_attention_layernorm", .postAttentionNorm)
            b.postMLPNorm = d.rms(p + "post_feedforward_layernorm", .postMLPNorm)
            b.attention.queryNorm = d.rms(p + "self_attn.q_norm", .queryNorm, width: d.NH * d.hs)
            b.attention.keyNorm = d.rms(p + "self_attn.k_norm", .keyNorm, width: d.NKV * d.hs)
            return b
        }
        return d.description(c, default: "Olmo2ForCausalLM", blocks: blocks, head: try d.head(c))
    }
}

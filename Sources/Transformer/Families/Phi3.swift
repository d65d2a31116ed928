// Phi-3 (Hugging Face Phi3ForCausalLM): a LLaMA-style decoder (RotaryDecoder) whose q, k, v
// are one matrix and whose gate and up projections are one matrix:
//
//   qkv = qkv_proj(input_layernorm(x))          [T, NH·hs + 2·NKV·hs]: q | k | v
//   x = x + o_proj(attention(rope(q), rope(k), v))                rotary over the first
//                                                                  partial_rotary_factor·hs channels
//   gu = gate_up_proj(post_attention_layernorm(x))                [T, 2I]: gate | up
//   x = x + down_proj(silu(gate) · up)
//
// Long-context checkpoints use rope type longrope (short/long factors chosen by the sequence
// length against original_max_position_embeddings); `sliding_window`, when set, applies to
// every layer.

public enum Phi3Family: Architecture {
    public static let modelTypes = ["phi3"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let d = try RotaryDecoder(c, slidingByDefault: true)
        let (C, NH, NKV, hs, I) = (d.C, d.NH, d.NKV, d.hs, d.I)
        let blocks = (0..<d.L).map { i -> BlockSpec in
            var b = d.block(i, c)
            let p = b.prefix
            func linear(_ name: String, _ role: ParamRole, _ inF: Int, _ outF: Int) -> LinearSpec {
                LinearSpec(name: p + name, role: role, inFeatures: inF, outFeatures: outF, bias: c.presence(p + name + ".bias"))
            }
            b.attention.projections = .fused(linear("self_attn.qkv_proj", .qkv, C, (NH + 2 * NKV) * hs))
            b.mlp?.projections = .fusedGated(linear("mlp.gate_up_proj", .gateUp, C, 2 * I))
            return b
        }
        return d.description(c, default: "Phi3ForCausalLM", blocks: blocks, head: try d.head(c))
    }
}

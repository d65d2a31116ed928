// StarCoder2 (Hugging Face Starcoder2ForCausalLM): a rotary decoder (RotaryDecoder) with
// LayerNorm (bias when use_bias), biases on every projection, a plain MLP
// c_proj(gelu_tanh(c_fc(x))), and `sliding_window` on every layer.

public enum Starcoder2Family: Architecture {
    public static let modelTypes = ["starcoder2"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let d = try RotaryDecoder(c, activation: .geluTanh, slidingByDefault: true)
        let eps = try c.epsilon("norm_epsilon", default: 1e-5)
        let bias: Presence = try c.bool("use_bias", default: true) ? .required : .absent
        func ln(_ name: String, _ role: ParamRole) -> NormSpec {
            NormSpec(name: name, role: role, kind: .layerNorm, width: d.C, eps: eps, bias: bias)
        }
        let blocks = (0..<d.L).map { i -> BlockSpec in
            var b = d.block(i, c)
            let p = b.prefix
            b.attentionNorm = ln(p + "input_layernorm", .attentionNorm)
            b.mlpNorm = ln(p + "post_attention_layernorm", .mlpNorm)
            b.mlp = MLPSpec(width: d.I, activation: d.activation,
                            projections: .plain(up: LinearSpec(name: p + "mlp.c_fc", role: .up, inFeatures: d.C, outFeatures: d.I, bias: bias)),
                            down: LinearSpec(name: p + "mlp.c_proj", role: .down, inFeatures: d.I, outFeatures: d.C, bias: bias))
            return b
        }
        return d.description(c, default: "Starcoder2ForCausalLM", blocks: blocks, head: try d.head(c, finalNorm: ln(d.prefix + "norm", .finalNorm), tiedByDefault: true))
    }
}

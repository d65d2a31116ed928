// Granite (Hugging Face GraniteForCausalLM): a LLaMA decoder (RotaryDecoder) with four
// multipliers:
//   x = embed_tokens[ids] · embedding_multiplier
//   scores = q·kᵀ · attention_multiplier                 (instead of 1/√hs)
//   x = x + residual_multiplier · sublayer(x)             (attention and MLP)
//   logits = lm_head(norm(x)) / logits_scaling

public enum GraniteFamily: Architecture {
    public static let modelTypes = ["granite"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let d = try RotaryDecoder(c)
        let embedding = Float(try c.positive("embedding_multiplier", default: 1))
        let attention = Float(try c.positive("attention_multiplier", default: 1 / Double(d.hs).squareRoot()))
        let residual = Float(try c.positive("residual_multiplier", default: 1))
        let logits = try c.positive("logits_scaling", default: 1)
        let blocks = (0..<d.L).map { i -> BlockSpec in
            var b = d.block(i, c)
            b.attention.scale = attention
            b.residualScale = residual
            return b
        }
        var head = try d.head(c)
        head.scale = Float(1 / logits)
        return d.description(c, default: "GraniteForCausalLM", blocks: blocks, head: head, embeddingScale: embedding)
    }
}

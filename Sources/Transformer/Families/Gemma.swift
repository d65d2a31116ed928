// Gemma, Gemma 2 and Gemma 3 (text) decoders: LLaMA-style blocks (RotaryDecoder) with
//   - RMSNorm multiplying by (1 + w), and the embedding scaled by √C (rounded to f32);
//   - GeGLU MLP (gelu_pytorch_tanh gate), head tied to the embedding;
//   - Gemma 2/3: sandwich norms (post_attention_layernorm on the attention output,
//     pre_ and post_feedforward_layernorm around the MLP), q·kᵀ scaled by
//     query_pre_attn_scalar^-½, sliding-window layers per `layer_types`;
//   - Gemma 2: attention and final logit soft-capping (cap · tanh(x / cap));
//   - Gemma 3: per-head q/k norms, and a rope per layer type (local layers: rope_local_base_freq
//     or rope_parameters["sliding_attention"]).
//
//   x = embed_tokens[ids] · √C
//   for each layer:
//     x = x + post_attention_layernorm(o_proj(attention(input_layernorm(x))))       (Gemma: no post norm)
//     x = x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)))         (Gemma: post_attention_layernorm before the MLP)
//   logits = softcap(norm(x) · embed_tokensᵀ)

public enum GemmaFamily: Architecture {
    public static let modelTypes = ["gemma", "gemma2", "gemma3_text"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let version = c.modelType == "gemma" ? 1 : c.modelType == "gemma2" ? 2 : 3
        try c.refuse("use_bidirectional_attention", unless: [.bool(false)])
        // Gemma 3 (transformers ≥ 5) keeps one rope per layer type.
        let perType = c["rope_parameters"]?.objectValue.flatMap { o in o["full_attention"]?.objectValue.map { _ in o } }
        let hsGuess = try c.size("head_dim", default: try c.size("hidden_size") / max(1, try c.size("num_attention_heads")))
        var globalRope: RopeSpec? = nil, localRope: RopeSpec? = nil
        if let perType {
            globalRope = try c.rope(headDim: hsGuess, parameters: perType["full_attention"]?.objectValue.map(JSONObject.init))
            localRope = try c.rope(headDim: hsGuess, parameters: (perType["sliding_attention"]?.objectValue ?? perType["full_attention"]?.objectValue).map(JSONObject.init))
        }
        // Configs without layer_types (transformers 4): Gemma 2 alternates local and global
        // layers from layer 0; Gemma 3 makes every sliding_window_pattern-th layer global.
        let pattern = version == 3 ? try c.size("sliding_window_pattern", "_sliding_window_pattern", default: 6) : 2
        let slidingLayer: ((Int) -> Bool)? = version == 1 ? nil : { (i: Int) in (i + 1) % pattern != 0 }
        let d = try RotaryDecoder(c, activation: .geluTanh, activationKeys: ["hidden_activation", "hidden_act"],
                                  slidingLayer: slidingLayer, rope: globalRope)
        if version == 3, localRope == nil {
            localRope = RopeSpec(theta: try c.positive("rope_local_base_freq", default: 10000), rotaryDim: d.hs)
        }
        func norm(_ name: String, _ role: ParamRole, width: Int? = nil) -> NormSpec {
            var n = d.rms(name, role, width: width)
            n.weightOffset = 1
            return n
        }
        let scale: Float
        if version == 1 {
            scale = 1 / Float(d.hs).squareRoot()
        } else {
            scale = Float(1 / (try c.positive("query_pre_attn_scalar", default: Double(d.hs))).squareRoot())
        }
        let attnCap = version == 1 ? nil : try c.optionalPositive("attn_logit_softcapping").map(Float.init)
        let finalCap = version == 1 ? nil : try c.optionalPositive("final_logit_softcapping").map(Float.init)
        let blocks = (0..<d.L).map { i -> BlockSpec in
            var b = d.block(i, c)
            b.attentionNorm = norm(b.prefix + "input_layernorm", .attentionNorm)
            b.attention.scale = scale
            b.attention.softcap = attnCap
            if version == 1 {
                b.mlpNorm = norm(b.prefix + "post_attention_layernorm", .mlpNorm)
            } else {
                b.postAttentionNorm = norm(b.prefix + "post_attention_layernorm", .postAttentionNorm)
                b.mlpNorm = norm(b.prefix + "pre_feedforward_layernorm", .mlpNorm)
                b.postMLPNorm = norm(b.prefix + "post_feedforward_layernorm", .postMLPNorm)
            }
            if version == 3 {
                b.attention.queryNorm = norm(b.prefix + "self_attn.q_norm", .queryNorm, width: d.hs)
                b.attention.keyNorm = norm(b.prefix + "self_attn.k_norm", .keyNorm, width: d.hs)
                if d.sliding[i], let localRope { b.attention.rope = localRope }
            }
            return b
        }
        var head = try d.head(c, finalNorm: norm(d.prefix + "norm", .finalNorm), tiedByDefault: true)
        head.softcap = finalCap
        var description = d.description(c, default: ["", "GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM"][version], blocks: blocks,
                                        head: head, embeddingScale: Float(Double(d.C).squareRoot()))
        description.sizeKeys?.headsDivideHidden = version >= 2  // Gemma2Config / Gemma3TextConfig validate it
        return description
    }
}

// Mixture-of-experts decoders: Mixtral, Qwen2-MoE, Qwen3-MoE. LLaMA-style attention
// (RotaryDecoder; Qwen3-MoE with per-head q/k norms) and, in place of the MLP, a router over
// E SwiGLU experts of which each token uses the top k (MoESpec):
//
//   p = softmax(router(h))                                   [T, E]
//   y_t = Σ_{e ∈ topk(p_t)} p_te / (Σ_topk p_t if normalised) · expert_e(h_t)
//   Qwen2-MoE adds sigmoid(shared_expert_gate(h)) · shared_expert(h).
//
// Names: Mixtral `block_sparse_moe.gate`, `block_sparse_moe.experts.{e}.w1|w3|w2` (gate, up,
// down); Qwen `mlp.gate`, `mlp.experts.{e}.{gate,up,down}_proj`, `mlp.shared_expert.*`,
// `mlp.shared_expert_gate`. Qwen layers listed in `mlp_only_layers`, or not on the
// `decoder_sparse_step`, keep a dense MLP of intermediate_size.

public enum MixtralFamily: Architecture {
    public static let modelTypes = ["mixtral", "qwen2_moe", "qwen3_moe"]

    public static func describe(_ c: ConfigReader) throws -> ModelDescription {
        let d = try RotaryDecoder(c, slidingByDefault: c.modelType == "mixtral")
        let mixtral = c.modelType == "mixtral"
        let E = try c.size("num_local_experts", "num_experts")
        let k = try c.size("num_experts_per_tok")
        guard k <= E else { throw TransformerError.invalidConfig("num_experts_per_tok \(k) is more than the \(E) experts") }
        // Every expert of every layer has its own tensors: bound E · L by what is stored before
        // listing them.
        guard (try? c.product(E, d.L, "experts × layers")).map({ $0 <= c.graph.tensors.count }) == true else {
            throw TransformerError.invalidConfig("num_local_experts \(E) × \(d.L) layers is more experts than the checkpoint has tensors (\(c.graph.tensors.count))")
        }
        let I = mixtral ? d.I : try c.size("moe_intermediate_size")
        let normalize = mixtral ? true : try c.bool("norm_topk_prob", default: false)
        let step = mixtral ? 1 : try c.size("decoder_sparse_step", default: 1)
        let denseLayers = Set(c["mlp_only_layers"]?.arrayValue?.compactMap(\.intValue) ?? [])
        let sharedI = mixtral ? nil : try c.optionalSize("shared_expert_intermediate_size")
        try c.refuse("router_jitter_noise", unless: [.number("0"), .number("0.0")], "(random routing noise) is not supported")
        let blocks = (0..<d.L).map { i -> BlockSpec in
            var b = d.block(i, c)
            let p = b.prefix
            if c.modelType == "qwen3_moe" {
                b.attention.queryNorm = d.rms(p + "self_attn.q_norm", .queryNorm, width: d.hs)
                b.attention.keyNorm = d.rms(p + "self_attn.k_norm", .keyNorm, width: d.hs)
            }
            guard mixtral || (!denseLayers.contains(i) && (i + 1) % step == 0) else { return b }
            let m = mixtral ? p + "block_sparse_moe." : p + "mlp."
            func linear(_ name: String, _ role: ParamRole, _ inF: Int, _ outF: Int) -> LinearSpec {
                LinearSpec(name: m + name, role: role, inFeatures: inF, outFeatures: outF)
            }
            func expert(_ e: String, width: Int) -> MLPSpec {
                let names = mixtral ? ("w1", "w3", "w2") : ("gate_proj", "up_proj", "down_proj")
                return MLPSpec(width: width, activation: d.activation,
                               projections: .gated(gate: linear(e + names.0, .gate, d.C, width), up: linear(e + names.1, .up, d.C, width)),
                               down: linear(e + names.2, .down, width, d.C))
            }
            b.mlp = nil
            b.moe = MoESpec(router: linear("gate", .router, d.C, E),
                            experts: (0..<E).map { expert("experts.\($0).", width: I) },
                            topK: k, normalizeTopK: normalize,
                            shared: sharedI.map { expert("shared_expert.", width: $0) },
                            sharedGate: sharedI.map { _ in linear("shared_expert_gate", .sharedExpertGate, d.C, 1) })
            return b
        }
        return d.description(c, default: "MixtralForCausalLM", blocks: blocks, head: try d.head(c))
    }
}

// llama-quantize's presets (llama.cpp's `llama_ftype` mixes): which type each GGUF tensor gets,
// following llama.cpp's src/llama-quant.cpp (its per-tensor rules; the importance-matrix
// and IQ types are left out: ckpt writes neither).
//
//   output.weight (token_embd.weight when the head is tied): Q6_K, or Q8_0 when the preset
//     is Q8_0, the model is Falcon or its rows do not fit the preset's blocks
//   attn_v:   q2_k Q4_K if heads/kv_heads >= 4 else Q3_K · q3_k_m Q5_K in the first 2 layers,
//             else Q4_K · q3_k_l Q5_K · q4_k_m/q5_k_m Q6_K on "more bits" layers · q4_k_s
//             Q5_K in the first 4 layers · 8 experts: Q8_0
//   attn_k:   8 experts: Q8_0
//   ffn_down: q2_k Q3_K · q3_k_m Q5_K below n/16, else Q4_K (Falcon: Q3_K unless more bits)
//             · q3_k_l Q5_K (Falcon Q4_K) · q4_k_m Q6_K on more-bits layers (Falcon: Q6_K
//             below n/16, Q5_K on more bits) · q5_k_m Q6_K on more bits · q4_k_s Q5_K below n/8
//   attn_output: q2_k Q3_K · q3_k_m Q4_K · q3_k_l Q5_K (Falcon: q3_k_l Q4_K; 8 experts: Q5_K
//             for q2_k/q3_k_s/q3_k_m/q4_k_s/q4_k_m)
//   attn_qkv: q3_k_m/q3_k_l Q4_K · q4_k_m Q5_K · q5_k_m Q6_K
//   "more bits" layers: i < n/8, i >= 7n/8, or (i - n/8) mod 3 == 2.
// Tensors llama-quantize never quantizes: names not ending in "weight", 1-D tensors, norms
// (`_norm.weight`), routers (`ffn_gate_inp`), position and token-type embeddings.
// Rows that do not fit the chosen type's blocks fall back: Q4_K -> Q5_0, Q5_K -> Q5_1,
// Q6_K -> Q8_0, Q2_K/Q3_K -> IQ4_NL in llama.cpp (ckpt writes Q4_0, the nearest type it has,
// and says so), then F16.

import CkptCore

public enum LlamaPreset: String, CaseIterable, Sendable {
    case q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, q4_0, q4_1, q5_0, q5_1, q8_0

    /// llama.h's `llama_ftype`, written as general.file_type.
    public var fileType: UInt32 {
        switch self {
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .q2_k: return 10
        case .q3_k_s: return 11
        case .q3_k_m: return 12
        case .q3_k_l: return 13
        case .q4_k_s: return 14
        case .q4_k_m: return 15
        case .q5_k_s: return 16
        case .q5_k_m: return 17
        case .q6_k: return 18
        }
    }

    /// The type most tensors get.
    public var base: DType {
        switch self {
        case .q2_k: return .q2_k
        case .q3_k_s, .q3_k_m, .q3_k_l: return .q3_k
        case .q4_k_s, .q4_k_m: return .q4_k
        case .q5_k_s, .q5_k_m: return .q5_k
        case .q6_k: return .q6_k
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        case .q5_0: return .q5_0
        case .q5_1: return .q5_1
        case .q8_0: return .q8_0
        }
    }

    /// What llama-quantize needs to know about the model (from the GGUF keys).
    public struct Model: Sendable {
        public var layers: Int
        /// heads / kv heads
        public var gqa: Int
        public var experts: Int
        /// Whether output.weight exists (else token_embd.weight is the head).
        public var hasOutput: Bool
        public var falcon: Bool

        public init(layers: Int, gqa: Int, experts: Int = 0, hasOutput: Bool, falcon: Bool = false) {
            self.layers = layers
            self.gqa = gqa
            self.experts = experts
            self.hasOutput = hasOutput
            self.falcon = falcon
        }
    }

    /// Whether llama-quantize quantizes a tensor of this name and rank at all.
    public static func quantizes(_ name: String, rank: Int) -> Bool {
        name.hasSuffix("weight") && rank >= 2 && !name.contains("_norm.weight") && !name.contains("ffn_gate_inp.weight")
            && name != "position_embd.weight" && name != "token_types.weight"
    }

    public static func layerIndex(_ name: String) -> Int? { layer(name) }

    static func layer(_ name: String) -> Int? {
        guard name.hasPrefix("blk.") else { return nil }
        return Int(name.dropFirst(4).prefix { $0.isNumber })
    }

    static func moreBits(_ i: Int, _ n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }

    static func blockSize(_ d: DType) -> Int {
        if case .block(let v, _) = d.layout { return v }
        return 1
    }

    /// The type llama-quantize picks for a tensor (before the fallback for rows that do not
    /// fit), and why.
    public func rule(for name: String, rowLength nx: Int, model m: Model) -> (type: DType, why: String) {
        let i = Self.layer(name) ?? 0, n = max(1, m.layers)
        if name == "output.weight" || (!m.hasOutput && name == "token_embd.weight") {
            if m.falcon || nx % Self.blockSize(base) != 0 { return (.q8_0, "output: Q8_0") }
            if base != .q8_0 { return (.q6_k, "output: Q6_K") }
            return (base, "preset")
        }
        if name.contains("attn_v.weight") {
            var t = base, why = "preset"
            switch self {
            case .q2_k: t = m.gqa >= 4 ? .q4_k : .q3_k; why = "attn_v, q2_k"
            case .q3_k_m: t = i < 2 ? .q5_k : .q4_k; why = "attn_v, q3_k_m"
            case .q3_k_l: t = .q5_k; why = "attn_v, q3_k_l"
            case .q4_k_m, .q5_k_m: if Self.moreBits(i, n) { t = .q6_k; why = "attn_v, more-bits layer" }
            case .q4_k_s: if i < 4 { t = .q5_k; why = "attn_v, first 4 layers" }
            default: break
            }
            if m.experts == 8 { t = .q8_0; why = "attn_v, 8 experts" }
            return (t, why)
        }
        if name.contains("attn_k.weight") {
            return m.experts == 8 ? (.q8_0, "attn_k, 8 experts") : (base, "preset")
        }
        if name.contains("attn_q.weight") { return (base, "preset") }
        if name.contains("ffn_down") {
            let mb = Self.moreBits(i, n)
            switch self {
            case .q2_k: return (.q3_k, "ffn_down, q2_k")
            case .q3_k_m:
                return (i < n / 16 ? .q5_k : (!m.falcon || mb) ? .q4_k : .q3_k, "ffn_down, q3_k_m")
            case .q3_k_l: return (m.falcon ? .q4_k : .q5_k, "ffn_down, q3_k_l")
            case .q4_k_m:
                if m.falcon { return (i < n / 16 ? .q6_k : mb ? .q5_k : .q4_k, "ffn_down, q4_k_m (Falcon)") }
                return mb ? (.q6_k, "ffn_down, more-bits layer") : (base, "preset")
            case .q5_k_m: return mb ? (.q6_k, "ffn_down, more-bits layer") : (base, "preset")
            case .q4_k_s: return !m.falcon && i < n / 8 ? (.q5_k, "ffn_down, first n/8 layers") : (base, "preset")
            default: return (base, "preset")
            }
        }
        if name.contains("attn_output.weight") {
            if !m.falcon {
                if m.experts == 8 {
                    if [.q2_k, .q3_k_s, .q3_k_m, .q4_k_s, .q4_k_m].contains(self) { return (.q5_k, "attn_output, 8 experts") }
                } else {
                    switch self {
                    case .q2_k: return (.q3_k, "attn_output, q2_k")
                    case .q3_k_m: return (.q4_k, "attn_output, q3_k_m")
                    case .q3_k_l: return (.q5_k, "attn_output, q3_k_l")
                    default: break
                    }
                }
            } else if self == .q3_k_l {
                return (.q4_k, "attn_output, q3_k_l (Falcon)")
            }
            return (base, "preset")
        }
        if name.contains("attn_qkv.weight") {
            switch self {
            case .q3_k_m, .q3_k_l: return (.q4_k, "attn_qkv")
            case .q4_k_m: return (.q5_k, "attn_qkv")
            case .q5_k_m: return (.q6_k, "attn_qkv")
            default: break
            }
        }
        return (base, "preset")
    }

    /// llama-quantize's fallback for rows that do not fit `type`'s blocks (nil: none; ckpt
    /// then uses the recipe's fallback). Q2_K/Q3_K go to IQ4_NL in llama.cpp, which ckpt does
    /// not write: Q4_0 instead (`substituted`).
    public static func fallback(_ type: DType) -> (type: DType, substituted: Bool)? {
        switch type {
        case .q2_k, .q3_k: return (.q4_0, true)
        case .q4_k: return (.q5_0, false)
        case .q5_k: return (.q5_1, false)
        case .q6_k: return (.q8_0, false)
        default: return nil
        }
    }
}

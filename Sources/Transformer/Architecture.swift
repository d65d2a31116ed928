// The architecture description: what every family is made of, as plain values.
//
// A family (one file under Families/) reads its Hugging Face config once through a
// `ConfigReader` (which validates every size before anything is allocated) and returns a
// `ModelDescription`: the embedding, one `BlockSpec` per layer and the head, each naming its
// parameters with their full checkpoint names, shapes and layouts. Everything else reads that
// one value:
//   - `DescribedModel` (Model/DescribedModel.swift) loads the parameters and runs the forward
//     pass block by block from it (`embed` → `block(i).forward` → `finish`);
//   - `slots()` lists every parameter with its role (what prune, GGUF naming and training need);
//   - `prunableUnits` lists the heads (with their key/value groups), MLP neurons and layers.
// The registry of families, keyed by `model_type`, is `Architectures` (Registry.swift).
//
// Legend as in Kernels.swift: T tokens, C hidden size, NH query heads, NKV key/value heads,
// hs head size, I MLP width, V vocabulary.

import CkptCore
import Foundation

/// What a parameter is for. Consumers (pruning, GGUF naming, training) dispatch on roles,
/// never on family names.
public enum ParamRole: String, Sendable, CaseIterable {
    case tokenEmbedding, positionEmbedding, tokenTypeEmbedding, embeddingNorm
    case attentionNorm, query, key, value, qkv, queryNorm, keyNorm, attentionOutput, postAttentionNorm
    case mlpNorm, gate, up, gateUp, down, postMLPNorm, router, sharedExpertGate
    case embeddingProjection, finalNorm, outputProjection, head
}

/// How a weight matrix is stored: torch.nn.Linear [out, in], or GPT-2's Conv1D [in, out].
public enum LinearLayout: Sendable { case linear, conv1d }

/// Whether a bias (or any optional parameter) must exist, may exist, or is never read.
public enum Presence: Sendable, Equatable { case absent, optional, required }

/// One parameter tensor the architecture reads.
public struct ParamSlot: Sendable, Equatable {
    public var name: String
    public var role: ParamRole
    /// As stored in the checkpoint (Conv1D weights are [in, out]).
    public var shape: [Int]
    public var required: Bool
    /// The block it belongs to, nil for embedding and head.
    public var layer: Int?
    /// Whether this is a bias (else a weight or table).
    public var isBias: Bool
}

/// y[T, out] = x[T, in] · W (+ b). `name` is the weight's name without ".weight".
public struct LinearSpec: Sendable {
    public var name: String
    public var role: ParamRole
    public var inFeatures: Int
    public var outFeatures: Int
    public var layout: LinearLayout = .linear
    public var bias: Presence = .absent

    public var weightName: String { name + ".weight" }
    public var biasName: String { name + ".bias" }
    public var weightShape: [Int] { layout == .linear ? [outFeatures, inFeatures] : [inFeatures, outFeatures] }
}

public struct NormSpec: Sendable {
    public enum Kind: Sendable { case layerNorm, rmsNorm }
    public var name: String
    public var role: ParamRole
    public var kind: Kind
    /// Width of one normalised row (C, or hs for per-head q/k norms).
    public var width: Int
    public var eps: Float
    public var bias: Presence = .absent
    /// Gemma stores w and multiplies by (1 + w): offset 1.
    public var weightOffset: Float = 0
    /// One norm per head with weights of its own, stored as `name.norms.{h}.weight` (StableLM's
    /// q/k LayerNorm): row r of the input uses head r mod perHead.
    public var perHead: Int? = nil

    /// Names of its weight (and bias) tensors: one, or one per head.
    var parameterNames: [String] { perHead.map { n in (0..<n).map { name + ".norms.\($0)" } } ?? [name] }
}

public enum Activation: String, Sendable {
    case geluExact = "gelu", geluTanh = "gelu_tanh", relu, silu

    /// The Hugging Face `hidden_act` / `activation_function` names.
    public init?(huggingFace name: String) {
        switch name {
        case "gelu": self = .geluExact
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_tanh": self = .geluTanh
        case "relu": self = .relu
        case "silu", "swish": self = .silu
        default: return nil
        }
    }
}

/// Rotary position embedding of the first `rotaryDim` channels of each head (rotate-half).
public struct RopeSpec: Sendable, Hashable {
    public enum Scaling: Sendable, Hashable {
        case none
        case linear(factor: Double)
        case dynamic(factor: Double, originalMax: Int)
        case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMax: Int)
        case yarn(factor: Double, originalMax: Int, betaFast: Double, betaSlow: Double, attentionFactor: Double, truncate: Bool)
        case longrope(short: [Double], long: [Double], originalMax: Int, attentionFactor: Double)
    }
    public var theta: Double
    public var rotaryDim: Int
    public var scaling: Scaling = .none
}

public struct AttentionSpec: Sendable {
    public enum Projections: Sendable {
        case split(q: LinearSpec, k: LinearSpec, v: LinearSpec)
        /// One matrix for q, k and v ([T, NH·hs + 2·NKV·hs]), its output ordered as `order` says.
        case fused(LinearSpec, order: FusedOrder = .concatenated)
    }
    public enum FusedOrder: Sendable {
        /// q | k | v (GPT-2, Phi-3).
        case concatenated
        /// Per key/value head g: its NH/NKV query heads, then k_g, then v_g, each hs wide
        /// (GPT-NeoX with NH = NKV: q_h k_h v_h per head; Falcon's grouped layout).
        case grouped
    }
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var projections: Projections
    public var output: LinearSpec
    /// Per-head norms of q and k (over hs), before rotary (Qwen3, Gemma 3).
    public var queryNorm: NormSpec? = nil
    public var keyNorm: NormSpec? = nil
    public var rope: RopeSpec? = nil
    public var causal: Bool
    /// Keys this many positions away or more are masked: older ones, and (not causal) newer ones.
    public var window: Int? = nil
    /// scores = cap · tanh(scores / cap) (Gemma 2).
    public var softcap: Float? = nil
    /// Multiplies q·kᵀ; 1/√hs unless the family says otherwise.
    public var scale: Float
    /// A linear position bias in place of rotary positions (Falcon-RW, BLOOM).
    public var alibi: ALiBi? = nil

    /// ALiBi: the score of query head h and key position j gets slope_h · j (times the score
    /// scale); per query row only differences matter, so this is slope_h · (j − i) up to a
    /// constant. `bf16`: slopes and products rounded to bfloat16, as transformers computes them.
    public struct ALiBi: Sendable {
        public var slopes: [Float]
        public var bf16: Bool

        /// The slopes of `heads` heads: 2^(−8k/n) for k = 1…n with n the largest power of two
        /// ≤ heads, then the odd powers of 2^(−4/n) for the remaining heads.
        public init(heads: Int, bf16: Bool) {
            let n = 1 << (Int.bitWidth - 1 - heads.leadingZeroBitCount)
            let base = powf(2, -powf(2, -(log2f(Float(n)) - 3)))
            var s = (1...n).map { powf(base, Float($0)) }
            if n != heads {
                let extra = powf(2, -powf(2, -(log2f(Float(2 * n)) - 3)))
                s += stride(from: 1, to: 1 + 2 * min(n, heads - n), by: 2).map { powf(extra, Float($0)) }
            }
            self.bf16 = bf16
            slopes = bf16 ? s.map(ALiBi.roundBF16) : s
        }

        static func roundBF16(_ x: Float) -> Float { Float(bitPattern: FloatBits.bf16ToF32(FloatBits.f32ToBF16(x.bitPattern))) }

        @inline(__always)
        func bias(head h: Int, key j: Int) -> Float {
            let b = slopes[h] * Float(j)
            return bf16 ? ALiBi.roundBF16(b) : b
        }
    }
}

public struct MLPSpec: Sendable {
    public enum Projections: Sendable {
        /// down(act(up(x)))
        case plain(up: LinearSpec)
        /// down(act(gate(x)) · up(x))  (SwiGLU, GeGLU)
        case gated(gate: LinearSpec, up: LinearSpec)
        /// As gated, with one matrix whose output is gate | up.
        case fusedGated(LinearSpec)
    }
    public var width: Int
    public var activation: Activation
    public var projections: Projections
    public var down: LinearSpec
}

/// A mixture of experts in place of the MLP: a router picks the top-k experts per token, whose
/// outputs are summed weighted by the router's softmax probabilities (renormalised over the
/// chosen k when `normalizeTopK`); an optional shared expert is added, gated by
/// sigmoid(sharedGate(x)) when that exists (Qwen2-MoE).
public struct MoESpec: Sendable {
    /// [E, C]: one logit per expert.
    public var router: LinearSpec
    public var experts: [MLPSpec]
    public var topK: Int
    public var normalizeTopK: Bool
    public var shared: MLPSpec? = nil
    public var sharedGate: LinearSpec? = nil

    public var linears: [LinearSpec] {
        [router] + experts.flatMap(\.linears) + (shared?.linears ?? []) + (sharedGate.map { [$0] } ?? [])
    }
}

/// One block. Sequential (the default):
///   x = residualNorm₁(x + outNorm₁(attention(inNorm₁(x))))
///   x = residualNorm₂(x + outNorm₂(mlp(inNorm₂(x))))
/// with each norm optional: pre-norm (GPT-2, LLaMA) uses the input norms, post-norm (BERT) the
/// residual norms, sandwich (Gemma 2) input and output norms. Parallel (GPT-NeoX, Phi-2):
///   x = x + attention(inNorm₁(x)) + mlp(inNorm₂(x)).
public struct BlockSpec: Sendable {
    public var index: Int
    /// Name prefix of its parameters, e.g. "model.layers.3."
    public var prefix: String
    public var attentionNorm: NormSpec?
    public var attention: AttentionSpec
    public var postAttentionNorm: NormSpec? = nil
    public var attentionResidualNorm: NormSpec? = nil
    public var mlpNorm: NormSpec? = nil
    public var mlp: MLPSpec? = nil
    /// Experts in place of `mlp` (mlp is then nil).
    public var moe: MoESpec? = nil
    public var postMLPNorm: NormSpec? = nil
    public var mlpResidualNorm: NormSpec? = nil
    public var parallel: Bool = false
    /// Sub-layer outputs are multiplied by this before the residual add (Granite).
    public var residualScale: Float? = nil
}

public struct EmbeddingSpec: Sendable {
    public struct Table: Sendable {
        public var name: String
        public var role: ParamRole
        public var rows: Int
        public var width: Int
    }
    /// nil: the model takes d_model-wide vectors (the seed encoder).
    public var tokens: Table?
    public var positions: Table? = nil
    /// Added to every position's index (OPT's learned positions start at 2).
    public var positionOffset: Int = 0
    /// RoBERTa: positions count only tokens ≠ this padding id, from padding id + 1 (a padding
    /// token itself gets the padding id's row).
    public var positionPaddingID: Int? = nil
    /// Row 0 is added (one segment, no padding).
    public var tokenTypes: Table? = nil
    /// x · scale after the lookup (Gemma: √C, rounded to f32).
    public var scale: Float? = nil
    /// A projection of the looked-up rows to C (OPT's project_in, when word_embed_proj_dim ≠ C).
    public var projection: LinearSpec? = nil
    public var norm: NormSpec? = nil
}

public struct HeadSpec: Sendable {
    public enum Output: Sendable {
        /// The last hidden state [T, C] (after `finalNorm`).
        case hiddenState
        /// Logits through a matrix of its own.
        case logits(LinearSpec)
        /// Logits through the token embedding (tied).
        case tiedLogits(embedding: String)
    }
    public var finalNorm: NormSpec?
    /// Applied after the final norm (OPT's project_out).
    public var projection: LinearSpec? = nil
    public var output: Output
    /// logits = cap · tanh(logits / cap) (Gemma 2).
    public var softcap: Float? = nil
    /// logits · scale (Cohere-style logit scale; 1/logits_scaling for Granite).
    public var scale: Float? = nil
}

/// The config keys a family reads its sizes from, so that tools which change sizes (structured
/// pruning) write the new sizes where transformers will read them. nil: the family's config
/// cannot express that change.
public struct SizeKeys: Sendable {
    /// Query heads (e.g. num_attention_heads, n_head).
    public var heads: String? = "num_attention_heads"
    /// Key/value heads; nil when the family has none of its own (MHA only, or multi-query).
    public var keyValueHeads: String? = "num_key_value_heads"
    /// An explicit head size. nil: transformers derives it as hidden_size / heads, so heads
    /// cannot be removed without changing the head size.
    public var headDim: String? = "head_dim"
    /// The MLP width.
    public var width: String? = "intermediate_size"
    public var layers: String? = "num_hidden_layers"
    /// Per-layer lists (one entry per layer) filtered when layers are dropped.
    public var perLayer: [String] = ["layer_types"]
    /// Whether transformers' config class refuses a head count that does not divide
    /// hidden_size, even with an explicit head_dim (LlamaConfig, Gemma2Config, Gemma3TextConfig).
    public var headsDivideHidden = false

    public init() {}
    public init(heads: String?, keyValueHeads: String?, headDim: String?, width: String?, layers: String?, perLayer: [String] = []) {
        (self.heads, self.keyValueHeads, self.headDim, self.width, self.layers, self.perLayer) = (heads, keyValueHeads, headDim, width, layers, perLayer)
    }
}

/// Everything the forward pass, pruning, conversion and training need to know about one model.
public struct ModelDescription: Sendable {
    /// e.g. "LlamaForCausalLM"
    public var architecture: String
    public var modelType: String
    public var hiddenSize: Int
    public var vocabSize: Int?
    /// Longest sequence accepted (nil: unbounded, e.g. rotary models without a limit).
    public var maxPositions: Int?
    public var embedding: EmbeddingSpec
    public var blocks: [BlockSpec]
    public var head: HeadSpec
    /// Where the config keeps the sizes structured pruning changes (nil: not resizable).
    public var sizeKeys: SizeKeys? = SizeKeys()
    /// Name fragments of stored tensors that are not parameters of this computation: buffers
    /// (rotary inv_freq, position_ids, causal masks, llama.cpp's precomputed rope_freqs) and
    /// parts ckpt does not run (an encoder's pooler and pre-training heads).
    public var buffers: [String] = ModelDescription.commonBuffers
    public static let commonBuffers = ["position_ids", "rotary_emb.inv_freq", "rope_freqs"]

    public var outputKind: ForwardOutput.Kind {
        if case .hiddenState = head.output { return .hiddenState }
        return .logits
    }
}

// MARK: - Enumerating parameters and prunable units

extension LinearSpec {
    func slots(layer: Int?) -> [ParamSlot] {
        var s = [ParamSlot(name: weightName, role: role, shape: weightShape, required: true, layer: layer, isBias: false)]
        if bias != .absent { s.append(ParamSlot(name: biasName, role: role, shape: [outFeatures], required: bias == .required, layer: layer, isBias: true)) }
        return s
    }
}

extension NormSpec {
    func slots(layer: Int?) -> [ParamSlot] {
        parameterNames.flatMap { n in
            var s = [ParamSlot(name: n + ".weight", role: role, shape: [width], required: true, layer: layer, isBias: false)]
            if bias != .absent { s.append(ParamSlot(name: n + ".bias", role: role, shape: [width], required: bias == .required, layer: layer, isBias: true)) }
            return s
        }
    }
}

extension EmbeddingSpec.Table {
    var slot: ParamSlot { ParamSlot(name: name, role: role, shape: [rows, width], required: true, layer: nil, isBias: false) }
}

extension AttentionSpec {
    public var linears: [LinearSpec] {
        switch projections {
        case .split(let q, let k, let v): return [q, k, v, output]
        case .fused(let qkv, _): return [qkv, output]
        }
    }
    var norms: [NormSpec] { [queryNorm, keyNorm].compactMap { $0 } }
}

extension MLPSpec {
    public var linears: [LinearSpec] {
        switch projections {
        case .plain(let up): return [up, down]
        case .gated(let gate, let up): return [gate, up, down]
        case .fusedGated(let gu): return [gu, down]
        }
    }
}

extension BlockSpec {
    public var norms: [NormSpec] {
        [attentionNorm, postAttentionNorm, attentionResidualNorm, mlpNorm, postMLPNorm, mlpResidualNorm].compactMap { $0 }
            + attention.norms
    }

    /// Every parameter of this block, in a stable order.
    public func slots() -> [ParamSlot] {
        var s: [ParamSlot] = []
        for n in norms { s += n.slots(layer: index) }
        for l in attention.linears + (mlp?.linears ?? []) + (moe?.linears ?? []) { s += l.slots(layer: index) }
        // A norm shared by all blocks (the seed encoder) is listed once per block that reads it.
        return s
    }
}

/// The units structured pruning can remove.
public struct PrunableUnits: Sendable {
    public struct Heads: Sendable {
        public var layer: Int
        public var heads: Int
        public var kvHeads: Int
        public var headDim: Int
        /// Query heads sharing one key/value head (NH / NKV): GQA heads are removed a group
        /// at a time, or query heads evenly from every group.
        public var groupSize: Int { heads / kvHeads }
    }
    public var heads: [Heads]
    /// MLP width per layer (nil where a block has no MLP).
    public var neurons: [Int?]
    public var layers: Int
}

extension ModelDescription {
    /// Every parameter the architecture reads: embedding, blocks in order, head.
    public func slots() -> [ParamSlot] {
        var s: [ParamSlot] = []
        for t in [embedding.tokens, embedding.positions, embedding.tokenTypes].compactMap({ $0 }) { s.append(t.slot) }
        if let l = embedding.projection { s += l.slots(layer: nil) }
        if let n = embedding.norm { s += n.slots(layer: nil) }
        for b in blocks { s += b.slots() }
        if let n = head.finalNorm { s += n.slots(layer: nil) }
        if let l = head.projection { s += l.slots(layer: nil) }
        if case .logits(let l) = head.output { s += l.slots(layer: nil) }
        // A parameter read in several places (a shared norm) is listed once.
        var seen = Set<String>()
        return s.filter { seen.insert($0.name).inserted }
    }

    /// Stored tensors (in stored order) that no slot reads and that are not known buffers.
    public func unusedTensors(in graph: WeightGraph) -> [String] {
        let read = Set(slots().map(\.name))
        return graph.tensors.keys.filter { name in !read.contains(name) && !buffers.contains { name.contains($0) } }
    }

    public var prunableUnits: PrunableUnits {
        PrunableUnits(
            heads: blocks.map { .init(layer: $0.index, heads: $0.attention.heads, kvHeads: $0.attention.kvHeads, headDim: $0.attention.headDim) },
            neurons: blocks.map { $0.mlp?.width },
            layers: blocks.count)
    }

    /// Floating-point operations for one sequence of `T` tokens (matrix products and attention).
    public func flops(tokens T: Int) -> Double {
        var total = 0.0
        for b in blocks {
            for l in b.attention.linears + (b.mlp?.linears ?? []) { total += 2.0 * Double(T) * Double(l.inFeatures) * Double(l.outFeatures) }
            if let moe = b.moe {  // the router, k experts per token, the shared expert
                for l in [moe.router] + (moe.shared?.linears ?? []) + (moe.sharedGate.map { [$0] } ?? []) { total += 2.0 * Double(T) * Double(l.inFeatures) * Double(l.outFeatures) }
                for l in moe.experts.first?.linears ?? [] { total += 2.0 * Double(T * moe.topK) * Double(l.inFeatures) * Double(l.outFeatures) }
            }
            total += 4.0 * Double(T) * Double(T) * Double(b.attention.heads * b.attention.headDim)
        }
        switch head.output {
        case .hiddenState: break
        case .logits(let l): total += 2.0 * Double(T) * Double(l.inFeatures) * Double(l.outFeatures)
        case .tiedLogits: total += 2.0 * Double(T) * Double(embedding.tokens?.width ?? hiddenSize) * Double(vocabSize ?? 0)
        }
        return total
    }
}

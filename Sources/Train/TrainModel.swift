// A trainable model read from the shared architecture description (Sources/Transformer): the
// same `ModelDescription` (config parser, parameter slots, block specs) the inference forward
// pass uses, so training is not a second model definition. The forward pass keeps every
// activation the backward pass needs; both are composed from the description's parts, after
// llm.c's train_gpt2.c:
//
//   x = tok[ids] (+ pos[t])                                   [B, T, C]   learned positions or none
//   for each block (pre-norm, sequential residual):
//     h1   = norm₁(x)                                          LayerNorm (± bias) or RMSNorm
//     qkv  = h1 · Wqkv (+ b)                                   [B, T, (NH + 2·NKV)·hs]: q | k | v,
//                                                              one fused matrix or three
//     q, k = rope(q), rope(k)                                  any rope type (scaling changes tables)
//     atty = attention(q, k, v)                                causal, MHA/GQA/MQA, spec's scale
//     x2   = x + atty · Wo (+ b)
//     h2   = norm₂(x2)
//     m    = act(h2 · Wup) or act(h2 · Wgate) ∘ (h2 · Wup)     GELU (tanh/erf), ReLU, SiLU; SwiGLU
//     x    = x2 + m · Wdown (+ b)                              (the block's output, `res3`)
//   logits = normf(x) · Wheadᵀ                                 own matrix or the tied embedding
//
// Backward passes follow from the parts: rope's is the rotation by −θ (same tables), GQA's
// key/value gradients sum over the query heads sharing them. Description features training
// does not implement are refused with one line (`TrainModel.check`).
//
// Parameters live in one flat buffer in the checkpoint's names and layouts (Conv1D [in, out],
// nn.Linear [out, in]), in the description's slot order, so AdamW is one loop and exporting is a
// copy. Gradients mirror it.

import CkptCore
import Foundation
import Quantize
import Transformer

public enum TrainError: Error, Equatable, Sendable, CustomStringConvertible {
    case unsupported(String)
    case invalidConfig(String)
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], actual: [Int])
    case badData(String)
    case badState(String)

    public var description: String {
        switch self {
        case .unsupported(let m): return "training: \(m)"
        case .invalidConfig(let m): return "model config: \(m)"
        case .missingTensor(let t): return "tensor `\(t)`: required for training but missing"
        case .shapeMismatch(let t, let e, let a): return "tensor `\(t)`: shape \(a), expected \(e)"
        case .badData(let m): return "training data: \(m)"
        case .badState(let m): return "state file: \(m)"
        }
    }
}

/// The sizes the training loop needs (everything else is in the description); kernel-style
/// names, internal to the kernels (the model's public sizes are `TrainModel.vocabularySize`...).
struct TrainShape: Sendable, Equatable {
    /// Vocabulary, longest sequence (Int.max for rotary models without a limit), layers, hidden size.
    var V, maxT, L, C: Int
}

/// One parameter tensor's place in the flat buffer.
public struct ParameterSlot: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var offset: Int
    public var count: Int
    /// Matrices and embeddings get weight decay; biases and norm parameters do not.
    public var decays: Bool { shape.count >= 2 }
}

/// Where each parameter of a description lives in the flat buffer (the description's slot order).
public struct ParameterLayout: Sendable {
    public let slots: [ParameterSlot]
    public let total: Int
    let index: [String: Int]

    /// `include`: which optional slots (biases the description allows but does not require)
    /// exist; required slots are always in.
    init(_ d: ModelDescription, include: (String) -> Bool) {
        var slots: [ParameterSlot] = [], offset = 0
        for s in d.slots() where s.required || include(s.name) {
            let n = s.shape.reduce(1, *)
            slots.append(ParameterSlot(name: s.name, shape: s.shape, offset: offset, count: n))
            offset += n
        }
        self.slots = slots
        total = offset
        index = Dictionary(uniqueKeysWithValues: slots.enumerated().map { ($1.name, $0) })
    }

    public func slot(_ name: String) -> ParameterSlot? { index[name].map { slots[$0] } }
    func offset(_ name: String) -> Int { slots[index[name]!].offset }
    func optionalOffset(_ name: String) -> Int? { index[name].map { slots[$0].offset } }
}

/// A linear layer resolved to offsets: y = x · W (+ b), W [in, out] (.inOut) or [out, in] (.outIn).
struct TrainLinear {
    var w: Int
    var b: Int?
    var inF, outF: Int
    var layout: WeightLayout

    init(_ s: LinearSpec, _ L: ParameterLayout) {
        w = L.offset(s.weightName)
        b = s.bias == .absent ? nil : L.optionalOffset(s.biasName)
        (inF, outF) = (s.inFeatures, s.outFeatures)
        layout = s.layout == .linear ? .outIn : .inOut
    }
}

struct TrainNorm {
    var kind: NormSpec.Kind
    var w: Int
    var b: Int?
    var eps: Float

    init(_ s: NormSpec, _ L: ParameterLayout) {
        kind = s.kind
        w = L.offset(s.name + ".weight")
        b = s.bias == .absent ? nil : L.optionalOffset(s.name + ".bias")
        eps = s.eps
    }
}

/// One block's parts, resolved to offsets.
struct TrainBlock {
    enum QKV { case fused(TrainLinear), split(TrainLinear, TrainLinear, TrainLinear) }
    var norm1, norm2: TrainNorm
    var qkv: QKV
    var out: TrainLinear
    var NH, NKV, hs: Int
    var scale: Float
    var rope: RopeSpec?
    var gate: TrainLinear?   // nil: plain MLP
    var up, down: TrainLinear
    var I: Int
    var activation: Activation
    /// Width of the fused q | k | v rows.
    var W: Int { (NH + 2 * NKV) * hs }
}

/// Activations of one forward pass for up to B×T tokens, kept for the backward pass; the same
/// structure holds their gradients.
final class Activations {
    struct Block {
        let ln1, ln1Mean, ln1Rstd, qkv, atty, att, attproj, res2, ln2, ln2Mean, ln2Rstd: FloatBuffer
        /// fch: up(h2) (plain) or gate(h2) (gated), before the activation; up: up(h2) (gated only);
        /// act: the MLP's hidden state fed to down.
        let fch, up, act, fcproj, res3: FloatBuffer
        var all: [FloatBuffer] { [ln1, ln1Mean, ln1Rstd, qkv, atty, att, attproj, res2, ln2, ln2Mean, ln2Rstd, fch, up, act, fcproj, res3] }
    }
    let B, T: Int
    let encoded, lnf, lnfMean, lnfRstd, logits: FloatBuffer
    let blocks: [Block]
    /// Scratch for attention's backward pass, [2·T·T].
    let scratch: FloatBuffer

    init(_ m: TrainModel, B: Int, T: Int) {
        self.B = B
        self.T = T
        let N = B * T, C = m.shape.C
        func f(_ n: Int) -> FloatBuffer { FloatBuffer(count: n) }
        encoded = f(N * C); lnf = f(N * C); lnfMean = f(N); lnfRstd = f(N); logits = f(N * m.shape.V)
        blocks = m.blocks.map { o in
            Block(ln1: f(N * C), ln1Mean: f(N), ln1Rstd: f(N), qkv: f(N * o.W), atty: f(N * o.NH * o.hs),
                  att: f(B * o.NH * T * T), attproj: f(N * C), res2: f(N * C), ln2: f(N * C), ln2Mean: f(N), ln2Rstd: f(N),
                  fch: f(N * o.I), up: f(o.gate == nil ? 0 : N * o.I), act: f(N * o.I), fcproj: f(N * C), res3: f(N * C))
        }
        scratch = f(2 * T * T)
    }

    func zero() {
        for b in [encoded, lnf, lnfMean, lnfRstd, logits, scratch] { b.zero() }
        for blk in blocks { for b in blk.all { b.zero() } }
    }
}

/// A decoder whose parameters can be trained: forward with saved activations, backward, export.
public final class TrainModel {
    public let description: ModelDescription
    /// The config the description was read from (written beside exported weights).
    public let config: ModelConfig
    let shape: TrainShape
    public let layout: ParameterLayout
    /// Distinct token ids.
    public var vocabularySize: Int { shape.V }
    /// The longest sequence (Int.max for rotary models without a limit).
    public var maxPositions: Int { shape.maxT }
    /// Transformer blocks.
    public var layerCount: Int { shape.L }
    /// Width of the residual stream.
    public var hiddenSize: Int { shape.C }
    let blocks: [TrainBlock]
    let tok: Int, pos: Int?, finalNorm: TrainNorm
    /// The head's weight [V, C] (the token table when tied).
    let head: Int
    public let tiedHead: Bool
    let params: FloatBuffer
    let grads: FloatBuffer
    private(set) var acts: Activations?
    private var dacts: Activations?
    private var ropeTables: [RopeSpec: (T: Int, cos: [Float], sin: [Float])] = [:]

    /// The parts of a description training implements; anything else is refused in one line.
    public static func check(_ d: ModelDescription) throws(TrainError) {
        func no(_ what: String) -> TrainError { .unsupported("\(d.modelType): \(what) is not implemented in training") }
        let e = d.embedding
        guard let tokens = e.tokens, tokens.width == d.hiddenSize, d.vocabSize != nil else { throw no("a model without a token embedding of the hidden size") }
        if e.tokenTypes != nil || e.positionPaddingID != nil { throw no("token types / padding-aware positions (encoders)") }
        if e.scale != nil { throw no("an embedding scale") }
        if e.projection != nil || e.norm != nil { throw no("an embedding projection or norm") }
        if let p = e.positions, p.width != d.hiddenSize { throw no("position embeddings of another width") }
        for b in d.blocks {
            let a = b.attention
            guard b.attentionNorm != nil, b.mlpNorm != nil else { throw no("a block without pre-norms (post-norm)") }
            if b.postAttentionNorm != nil || b.postMLPNorm != nil || b.attentionResidualNorm != nil || b.mlpResidualNorm != nil {
                throw no("post/sandwich norms")
            }
            if b.parallel { throw no("parallel attention and MLP") }
            if b.residualScale != nil { throw no("a residual scale") }
            if b.moe != nil { throw no("mixture of experts") }
            guard let mlp = b.mlp else { throw no("a block without an MLP") }
            if case .fusedGated = mlp.projections { throw no("a fused gate_up projection") }
            for n in b.norms {
                if n.weightOffset != 0 { throw no("norms with a weight offset (1 + w)") }
                if n.perHead != nil { throw no("per-head norms") }
            }
            if a.queryNorm != nil || a.keyNorm != nil { throw no("q/k norms") }
            if a.window != nil { throw no("sliding-window attention") }
            if a.softcap != nil { throw no("attention logit soft-capping") }
            if !a.causal { throw no("bidirectional attention") }
            if case .fused(_, .grouped) = a.projections { throw no("a per-head grouped qkv layout") }
            if let r = a.rope, r.rotaryDim % 2 != 0 || r.rotaryDim > a.headDim { throw no("rotary dimension \(r.rotaryDim)") }
        }
        let h = d.head
        if h.projection != nil || h.softcap != nil || h.scale != nil { throw no("a head projection, soft-cap or logit scale") }
        switch h.output {
        case .hiddenState: throw no("a model without an LM head")
        case .logits(let l): if l.bias != .absent { throw no("a head bias") }
        case .tiedLogits: break
        }
    }

    /// `include`: which optional parameters exist (see ParameterLayout).
    init(description d: ModelDescription, config: ModelConfig, parameters: [Float]?, include: (String) -> Bool) throws(TrainError) {
        try Self.check(d)
        description = d
        self.config = config
        let L = ParameterLayout(d, include: include)
        layout = L
        shape = TrainShape(V: d.vocabSize!, maxT: d.embedding.positions?.rows ?? d.maxPositions ?? Int.max, L: d.blocks.count, C: d.hiddenSize)
        tok = L.offset(d.embedding.tokens!.name)
        pos = d.embedding.positions.map { L.offset($0.name) }
        guard let fn = d.head.finalNorm else { throw .unsupported("\(d.modelType): a head without a final norm is not implemented in training") }
        finalNorm = TrainNorm(fn, L)
        switch d.head.output {
        case .logits(let l): head = L.offset(l.weightName); tiedHead = false
        default: head = tok; tiedHead = true
        }
        blocks = d.blocks.map { b in
            let a = b.attention, m = b.mlp!
            let qkv: TrainBlock.QKV
            switch a.projections {
            case .fused(let l, _): qkv = .fused(TrainLinear(l, L))
            case .split(let q, let k, let v): qkv = .split(TrainLinear(q, L), TrainLinear(k, L), TrainLinear(v, L))
            }
            var gate: TrainLinear?, up: TrainLinear
            switch m.projections {
            case .plain(let u): up = TrainLinear(u, L)
            case .gated(let g, let u): gate = TrainLinear(g, L); up = TrainLinear(u, L)
            case .fusedGated(let u): up = TrainLinear(u, L)  // refused by check
            }
            return TrainBlock(norm1: TrainNorm(b.attentionNorm!, L), norm2: TrainNorm(b.mlpNorm!, L), qkv: qkv,
                              out: TrainLinear(a.output, L), NH: a.heads, NKV: a.kvHeads, hs: a.headDim, scale: a.scale,
                              rope: a.rope, gate: gate, up: up, down: TrainLinear(m.down, L), I: m.width, activation: m.activation)
        }
        for b in blocks where ![.geluTanh, .geluExact, .relu, .silu].contains(b.activation) {
            throw .unsupported("activation \(b.activation.rawValue)")
        }
        if let parameters, parameters.count != L.total {
            throw .invalidConfig("\(parameters.count) parameters for a layout of \(L.total)")
        }
        params = parameters.map { FloatBuffer($0) } ?? FloatBuffer(count: L.total)
        grads = FloatBuffer(count: L.total)
    }

    /// A model from its description and parameters in its layout (optional parameters: `include`).
    public convenience init(description d: ModelDescription, config: ModelConfig, parameters: [Float], optional include: Set<String> = []) throws {
        try self.init(description: d, config: config, parameters: parameters, include: { include.contains($0) })
    }

    /// Loads a checkpoint of any family the registry describes and training implements (any
    /// float dtype, read as f32).
    public convenience init(graph: WeightGraph) throws {
        guard let config = graph.config else { throw TrainError.invalidConfig("the checkpoint has no config.json") }
        let d = try Transformers.describe(graph)
        try self.init(description: d, config: config, parameters: nil, include: { graph.tensor(named: $0) != nil })
        for slot in layout.slots {
            guard let t = graph.tensor(named: slot.name) else { throw TrainError.missingTensor(slot.name) }
            guard t.shape == slot.shape else { throw TrainError.shapeMismatch(tensor: slot.name, expected: slot.shape, actual: t.shape) }
            guard let values = try Cast.floats(t) else { throw TrainError.unsupported("tensor `\(slot.name)` has dtype \(t.dtype)") }
            values.withUnsafeBufferPointer { src in (params.p + slot.offset).update(from: src.baseAddress!, count: slot.count) }
        }
    }

    public var parameterCount: Int { layout.total }
    public var parameters: [Float] { params.array }
    public var gradients: [Float] { grads.array }
    /// Names of the optional parameters present (biases the description allows).
    public var optionalParameters: Set<String> {
        let required = Set(description.slots().filter(\.required).map(\.name))
        return Set(layout.slots.map(\.name).filter { !required.contains($0) })
    }
    public func setParameters(_ values: [Float]) {
        precondition(values.count == layout.total)
        params.copy(from: FloatBuffer(values))
    }

    /// The values of one named parameter.
    public func parameter(_ name: String) -> [Float]? {
        layout.slot(name).map { params.slice($0.offset, $0.count) }
    }

    public func gradient(_ name: String) -> [Float]? {
        layout.slot(name).map { grads.slice($0.offset, $0.count) }
    }

    func activations(B: Int, T: Int) -> Activations {
        if let a = acts, a.B >= B, a.T == T { return a }
        let a = Activations(self, B: B, T: T)
        acts = a
        dacts = nil
        return a
    }

    func tables(_ rope: RopeSpec, T: Int) -> (cos: [Float], sin: [Float]) {
        if let t = ropeTables[rope], t.T == T { return (t.cos, t.sin) }
        let t = rope.tables(T: T)
        ropeTables[rope] = (T, t.cos, t.sin)
        return t
    }

    // MARK: forward

    func normForward(_ n: TrainNorm, out: Ptr, mean: Ptr, rstd: Ptr, inp: CPtr, N: Int) {
        let P = params.p, C = shape.C
        switch n.kind {
        case .layerNorm:
            TrainKernels.layerNormForward(out, mean: mean, rstd: rstd, inp: inp, weight: P + n.w, bias: n.b.map { P + $0 }, N: N, C: C, eps: n.eps)
        case .rmsNorm:
            TrainKernels.rmsNormForward(out, rstd: rstd, inp: inp, weight: P + n.w, N: N, C: C, eps: n.eps)
        }
    }

    func normBackward(_ n: TrainNorm, dinp: Ptr, dout: CPtr, inp: CPtr, mean: CPtr, rstd: CPtr, N: Int) {
        let P = params.p, G = grads.p, C = shape.C
        switch n.kind {
        case .layerNorm:
            TrainKernels.layerNormBackward(dinp: dinp, dweight: G + n.w, dbias: n.b.map { G + $0 }, dout: dout, inp: inp,
                                           weight: P + n.w, mean: mean, rstd: rstd, N: N, C: C)
        case .rmsNorm:
            TrainKernels.rmsNormBackward(dinp: dinp, dweight: G + n.w, dout: dout, inp: inp, weight: P + n.w, rstd: rstd, N: N, C: C)
        }
    }

    /// The MLP of block `o` on N normalised rows `inp`: `out = down(act(gate·x) ⊙ up·x)` when gated,
    /// else `down(act(up·x))`. Keeps the pre-activation in `fch`, the up projection in `up` (gated
    /// only) and the activation in `act`: what the backward pass reads. Shared by the training
    /// forward and the key/value-cache decoder.
    func mlpForward(_ o: TrainBlock, out: Ptr, fch: Ptr, up: Ptr, act: Ptr, inp: CPtr, N: Int) {
        if let g = o.gate {
            linearForward(g, out: fch, inp: inp, N: N)
            linearForward(o.up, out: up, inp: inp, N: N)
            TrainKernels.activationForward(o.activation, act, inp: fch, count: N * o.I)
            TrainKernels.multiply(act, up, count: N * o.I)
        } else {
            linearForward(o.up, out: fch, inp: inp, N: N)
            TrainKernels.activationForward(o.activation, act, inp: fch, count: N * o.I)
        }
        linearForward(o.down, out: out, inp: act, N: N)
    }

    func linearForward(_ l: TrainLinear, out: Ptr, ldo: Int? = nil, inp: CPtr, N: Int) {
        let P = params.p
        TrainKernels.matmulForward(out, inp: inp, weight: P + l.w, bias: l.b.map { P + $0 }, N: N, C: l.inF, OC: l.outF,
                                   layout: l.layout, ldo: ldo ?? l.outF)
    }

    func linearBackward(_ l: TrainLinear, dinp: Ptr?, dout: CPtr, ldd: Int? = nil, inp: CPtr, N: Int) {
        let P = params.p, G = grads.p
        TrainKernels.matmulBackward(dinp: dinp, dweight: G + l.w, dbias: l.b.map { G + $0 }, dout: dout, inp: inp, weight: P + l.w,
                                    N: N, C: l.inF, OC: l.outF, layout: l.layout, ldd: ldd ?? l.outF)
    }

    /// Runs ids [B, T] and keeps the activations; returns them (logits [B, T, V] in `.logits`).
    @discardableResult
    func forward(ids: [Int], B: Int, T: Int) -> Activations {
        precondition(ids.count == B * T && T <= shape.maxT && ids.allSatisfy { $0 >= 0 && $0 < shape.V },
                     "TrainModel.forward: ids must be [B, T] tokens below V, T ≤ maxT (checked by the caller)")
        let a = activations(B: B, T: T)
        let N = B * T, C = shape.C, P = params.p
        TrainKernels.encoderForward(a.encoded.p, ids: ids, wte: P + tok, wpe: pos.map { P + $0 }, B: B, T: T, C: C)
        var residual = a.encoded
        for (l, o) in blocks.enumerated() {
            let b = a.blocks[l]
            normForward(o.norm1, out: b.ln1.p, mean: b.ln1Mean.p, rstd: b.ln1Rstd.p, inp: residual.p, N: N)
            switch o.qkv {
            case .fused(let w): linearForward(w, out: b.qkv.p, inp: b.ln1.p, N: N)
            case .split(let q, let k, let v):
                linearForward(q, out: b.qkv.p, ldo: o.W, inp: b.ln1.p, N: N)
                linearForward(k, out: b.qkv.p + o.NH * o.hs, ldo: o.W, inp: b.ln1.p, N: N)
                linearForward(v, out: b.qkv.p + (o.NH + o.NKV) * o.hs, ldo: o.W, inp: b.ln1.p, N: N)
            }
            if let rope = o.rope {
                let (cos, sin) = tables(rope, T: T)
                TrainKernels.rope(b.qkv.p, B: B, T: T, heads: o.NH + o.NKV, hs: o.hs, rotaryDim: rope.rotaryDim, stride: o.W,
                                  cos: cos, sin: sin, inverse: false)
            }
            TrainKernels.attentionForward(b.atty.p, att: b.att.p, qkv: b.qkv.p, B: B, T: T, NH: o.NH, NKV: o.NKV, hs: o.hs, scale: o.scale)
            linearForward(o.out, out: b.attproj.p, inp: b.atty.p, N: N)
            TrainKernels.residualForward(b.res2.p, residual.p, b.attproj.p, count: N * C)
            normForward(o.norm2, out: b.ln2.p, mean: b.ln2Mean.p, rstd: b.ln2Rstd.p, inp: b.res2.p, N: N)
            mlpForward(o, out: b.fcproj.p, fch: b.fch.p, up: b.up.p, act: b.act.p, inp: b.ln2.p, N: N)
            TrainKernels.residualForward(b.res3.p, b.res2.p, b.fcproj.p, count: N * C)
            residual = b.res3
        }
        normForward(finalNorm, out: a.lnf.p, mean: a.lnfMean.p, rstd: a.lnfRstd.p, inp: residual.p, N: N)
        TrainKernels.matmulForward(a.logits.p, inp: a.lnf.p, weight: P + head, bias: nil, N: N, C: C, OC: shape.V, layout: .outIn)
        return a
    }

    /// Logits [B·T, V] of the last forward pass.
    func logits(B: Int, T: Int) -> [Float] { acts!.logits.slice(0, B * T * shape.V) }

    // MARK: backward

    /// Zeroes the parameter gradients and the activation gradients before a backward pass, and
    /// returns the activation gradients for the losses to write into: `.logits` (d loss / d
    /// logits) and each block's `.res3` (d loss / d block output, for hidden-state matching).
    func beginBackward() -> Activations {
        let a = acts!
        let d: Activations
        if let existing = dacts { d = existing } else { d = Activations(self, B: a.B, T: a.T); dacts = d }
        d.zero()
        grads.zero()
        return d
    }

    /// Backpropagates the gradients placed by the losses through the whole model into `grads`.
    func backward(ids: [Int], B: Int, T: Int) {
        let a = acts!, d = dacts!
        let N = B * T, C = shape.C, P = params.p, G = grads.p
        let lastRes = shape.L > 0 ? a.blocks[shape.L - 1].res3 : a.encoded
        let dLastRes = shape.L > 0 ? d.blocks[shape.L - 1].res3 : d.encoded
        TrainKernels.matmulBackward(dinp: d.lnf.p, dweight: G + head, dbias: nil, dout: d.logits.p, inp: a.lnf.p,
                                    weight: P + head, N: N, C: C, OC: shape.V, layout: .outIn)
        normBackward(finalNorm, dinp: dLastRes.p, dout: d.lnf.p, inp: lastRes.p, mean: a.lnfMean.p, rstd: a.lnfRstd.p, N: N)
        for l in stride(from: shape.L - 1, through: 0, by: -1) {
            let o = blocks[l], b = a.blocks[l], db = d.blocks[l]
            let residual = l == 0 ? a.encoded : a.blocks[l - 1].res3
            let dresidual = l == 0 ? d.encoded : d.blocks[l - 1].res3
            TrainKernels.residualBackward(da: db.res2.p, db: db.fcproj.p, dout: db.res3.p, count: N * C)
            linearBackward(o.down, dinp: db.act.p, dout: db.fcproj.p, inp: b.act.p, N: N)
            if let g = o.gate {
                // act = f(gate) ∘ up:  dup += dact ∘ f(gate);  dgate += dact ∘ up ∘ f'(gate)
                TrainKernels.gatedBackward(o.activation, dgate: db.fch.p, dup: db.up.p, dout: db.act.p, gate: b.fch.p, up: b.up.p, count: N * o.I)
                linearBackward(o.up, dinp: db.ln2.p, dout: db.up.p, inp: b.ln2.p, N: N)
                linearBackward(g, dinp: db.ln2.p, dout: db.fch.p, inp: b.ln2.p, N: N)
            } else {
                TrainKernels.activationBackward(o.activation, dinp: db.fch.p, inp: b.fch.p, dout: db.act.p, count: N * o.I)
                linearBackward(o.up, dinp: db.ln2.p, dout: db.fch.p, inp: b.ln2.p, N: N)
            }
            normBackward(o.norm2, dinp: db.res2.p, dout: db.ln2.p, inp: b.res2.p, mean: b.ln2Mean.p, rstd: b.ln2Rstd.p, N: N)
            TrainKernels.residualBackward(da: dresidual.p, db: db.attproj.p, dout: db.res2.p, count: N * C)
            linearBackward(o.out, dinp: db.atty.p, dout: db.attproj.p, inp: b.atty.p, N: N)
            TrainKernels.attentionBackward(dqkv: db.qkv.p, dout: db.atty.p, qkv: b.qkv.p, att: b.att.p, scratch: d.scratch.p,
                                           B: B, T: T, NH: o.NH, NKV: o.NKV, hs: o.hs, scale: o.scale)
            if let rope = o.rope {  // the rotation by −θ of the gradients of the rotated q and k
                let (cos, sin) = tables(rope, T: T)
                TrainKernels.rope(db.qkv.p, B: B, T: T, heads: o.NH + o.NKV, hs: o.hs, rotaryDim: rope.rotaryDim, stride: o.W,
                                  cos: cos, sin: sin, inverse: true)
            }
            switch o.qkv {
            case .fused(let w): linearBackward(w, dinp: db.ln1.p, dout: db.qkv.p, inp: b.ln1.p, N: N)
            case .split(let q, let k, let v):
                linearBackward(q, dinp: db.ln1.p, dout: db.qkv.p, ldd: o.W, inp: b.ln1.p, N: N)
                linearBackward(k, dinp: db.ln1.p, dout: db.qkv.p + o.NH * o.hs, ldd: o.W, inp: b.ln1.p, N: N)
                linearBackward(v, dinp: db.ln1.p, dout: db.qkv.p + (o.NH + o.NKV) * o.hs, ldd: o.W, inp: b.ln1.p, N: N)
            }
            normBackward(o.norm1, dinp: dresidual.p, dout: db.ln1.p, inp: residual.p, mean: b.ln1Mean.p, rstd: b.ln1Rstd.p, N: N)
        }
        TrainKernels.encoderBackward(dwte: G + tok, dwpe: pos.map { G + $0 }, dout: d.encoded.p, ids: ids, B: B, T: T, C: C)
    }

    // MARK: export

    /// The parameters as a weight graph in the checkpoint's names (f32; a tied head is recorded
    /// as a tie, not stored twice). `config` defaults to the model's own.
    public func weightGraph(config: ModelConfig? = nil, metadata: [(String, String)] = []) throws -> WeightGraph {
        var g = WeightGraph()
        for slot in layout.slots {
            let values = params.slice(slot.offset, slot.count)
            let bytes = values.withUnsafeBytes { Array($0) }  // little-endian hosts only (x86-64, arm64)
            try g.add(Tensor(name: slot.name, dtype: .f32, shape: slot.shape, data: .owned(bytes)))
        }
        g.metadata["format"] = "pt"
        for (k, v) in metadata { g.metadata[k] = v }
        g.config = config ?? self.config
        g.applyConfigTies()
        return g
    }
}

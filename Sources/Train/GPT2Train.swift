// GPT-2 for training: a forward pass that keeps every activation the backward pass needs, and
// the backward pass, after llm.c's train_gpt2.c (gpt2_forward / gpt2_backward).
//
//   encoded = wte[ids] + wpe[0..<T]                          [B, T, C]
//   for each block l (residual = encoded, then res3 of the block before):
//     ln1    = layernorm(residual)                          [B, T, C]    (+ mean, rstd [B, T])
//     qkv    = ln1 · c_attn + b                             [B, T, 3C]
//     atty   = attention(qkv)                               [B, T, C]    (+ att [B, NH, T, T])
//     attproj= atty · attn.c_proj + b                       [B, T, C]
//     res2   = residual + attproj                           [B, T, C]
//     ln2    = layernorm(res2)                              [B, T, C]
//     fch    = ln2 · c_fc + b                               [B, T, I]
//     gelu   = gelu_tanh(fch)                               [B, T, I]
//     fcproj = gelu · mlp.c_proj + b                        [B, T, C]
//     res3   = res2 + fcproj                                [B, T, C]    (the block's output)
//   lnf = layernorm(res3 of the last block)                 [B, T, C]
//   logits = lnf · wteᵀ                                     [B, T, V]    (head tied to wte)
//
// Parameters live in one flat buffer in Hugging Face's names and layouts (Conv1D weights
// [in, out]), so AdamW is one loop and exporting is a copy. Gradients mirror it.

import CkptCore
import Foundation
import Quantize

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

/// The hyper-parameters of a GPT-2 that training needs.
public struct GPT2Shape: Sendable, Equatable {
    public var V, maxT, L, NH, C, I: Int
    public var eps: Float

    public init(V: Int, maxT: Int, L: Int, NH: Int, C: Int, I: Int, eps: Float = 1e-5) {
        (self.V, self.maxT, self.L, self.NH, self.C, self.I, self.eps) = (V, maxT, L, NH, C, I, eps)
    }

    /// From a Hugging Face GPT-2 config.
    public init(config: ModelConfig) throws(TrainError) {
        guard config.modelType == "gpt2" else {
            throw .unsupported("only GPT-2 (model_type gpt2) can be trained so far, not \(config.modelType ?? "an unknown model_type")")
        }
        func need(_ v: Int?, _ key: String) throws(TrainError) -> Int {
            guard let v, v > 0 else { throw .invalidConfig("missing or invalid \(key)") }
            return v
        }
        C = try need(config.hiddenSize, "n_embd")
        NH = try need(config.numHeads, "n_head")
        V = try need(config.vocabSize, "vocab_size")
        maxT = try need(config.maxPositions, "n_positions")
        L = try need(config.numLayers, "n_layer")
        I = config.intermediateSize ?? 4 * C
        eps = config["layer_norm_epsilon"]?.doubleValue.map { Float($0) } ?? 1e-5
        guard C % NH == 0 else { throw .invalidConfig("n_embd \(C) is not a multiple of n_head \(NH)") }
        if let act = config["activation_function"]?.stringValue, !["gelu_new", "gelu_pytorch_tanh", "gelu_fast"].contains(act) {
            throw .unsupported("activation_function \(act) (training implements GPT-2's gelu_new)")
        }
        if config.tieWordEmbeddings == false { throw .unsupported("an untied lm_head (tie_word_embeddings false)") }
    }
}

/// One parameter tensor's place in the flat buffer.
public struct ParameterSlot: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var offset: Int
    public var count: Int
    /// Matrices and embeddings get weight decay; biases and LayerNorm parameters do not.
    public var decays: Bool { shape.count >= 2 }
}

/// Offsets of one block's parameters in the flat buffer.
struct BlockOffsets {
    var ln1w, ln1b, attnW, attnB, projW, projB, ln2w, ln2b, fcW, fcB, fcProjW, fcProjB: Int
}

/// Where each tensor of a GPT-2 lives in the flat parameter buffer (Hugging Face order).
public struct ParameterLayout: Sendable {
    public let slots: [ParameterSlot]
    public let total: Int
    let wte, wpe, lnfw, lnfb: Int
    let blocks: [BlockOffsets]

    public init(_ s: GPT2Shape) {
        var slots: [ParameterSlot] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let n = shape.reduce(1, *)
            slots.append(ParameterSlot(name: "transformer." + name, shape: shape, offset: offset, count: n))
            defer { offset += n }
            return offset
        }
        let (C, I) = (s.C, s.I)
        wte = add("wte.weight", [s.V, C])
        wpe = add("wpe.weight", [s.maxT, C])
        var blocks: [BlockOffsets] = []
        for l in 0..<s.L {
            let p = "h.\(l)."
            blocks.append(BlockOffsets(
                ln1w: add(p + "ln_1.weight", [C]), ln1b: add(p + "ln_1.bias", [C]),
                attnW: add(p + "attn.c_attn.weight", [C, 3 * C]), attnB: add(p + "attn.c_attn.bias", [3 * C]),
                projW: add(p + "attn.c_proj.weight", [C, C]), projB: add(p + "attn.c_proj.bias", [C]),
                ln2w: add(p + "ln_2.weight", [C]), ln2b: add(p + "ln_2.bias", [C]),
                fcW: add(p + "mlp.c_fc.weight", [C, I]), fcB: add(p + "mlp.c_fc.bias", [I]),
                fcProjW: add(p + "mlp.c_proj.weight", [I, C]), fcProjB: add(p + "mlp.c_proj.bias", [C])))
        }
        lnfw = add("ln_f.weight", [C])
        lnfb = add("ln_f.bias", [C])
        self.blocks = blocks
        self.slots = slots
        total = offset
    }

    public func slot(_ name: String) -> ParameterSlot? { slots.first { $0.name == name } }
}

/// Activations of one forward pass for up to B×T tokens, kept for the backward pass; the same
/// structure holds their gradients.
final class Activations {
    struct Block { let ln1, ln1Mean, ln1Rstd, qkv, atty, att, attproj, res2, ln2, ln2Mean, ln2Rstd, fch, gelu, fcproj, res3: FloatBuffer }
    let B, T: Int
    let encoded, lnf, lnfMean, lnfRstd, logits: FloatBuffer
    let blocks: [Block]
    /// Scratch for attention's backward pass, [2·T·T].
    let scratch: FloatBuffer

    init(_ s: GPT2Shape, B: Int, T: Int) {
        self.B = B
        self.T = T
        let N = B * T
        func f(_ n: Int) -> FloatBuffer { FloatBuffer(count: n) }
        encoded = f(N * s.C); lnf = f(N * s.C); lnfMean = f(N); lnfRstd = f(N); logits = f(N * s.V)
        blocks = (0..<s.L).map { _ in
            Block(ln1: f(N * s.C), ln1Mean: f(N), ln1Rstd: f(N), qkv: f(N * 3 * s.C), atty: f(N * s.C),
                  att: f(B * s.NH * T * T), attproj: f(N * s.C), res2: f(N * s.C), ln2: f(N * s.C),
                  ln2Mean: f(N), ln2Rstd: f(N), fch: f(N * s.I), gelu: f(N * s.I), fcproj: f(N * s.C), res3: f(N * s.C))
        }
        scratch = f(2 * T * T)
    }

    func zero() {
        for b in [encoded, lnf, lnfMean, lnfRstd, logits, scratch] { b.zero() }
        for blk in blocks {
            for b in [blk.ln1, blk.ln1Mean, blk.ln1Rstd, blk.qkv, blk.atty, blk.att, blk.attproj, blk.res2,
                      blk.ln2, blk.ln2Mean, blk.ln2Rstd, blk.fch, blk.gelu, blk.fcproj, blk.res3] { b.zero() }
        }
    }
}

/// A GPT-2 whose parameters can be trained: forward with saved activations, backward, export.
public final class GPT2Train {
    public let shape: GPT2Shape
    public let layout: ParameterLayout
    let params: FloatBuffer
    let grads: FloatBuffer
    private(set) var acts: Activations?
    private var dacts: Activations?

    public init(shape: GPT2Shape, parameters: [Float]) {
        self.shape = shape
        layout = ParameterLayout(shape)
        precondition(parameters.count == layout.total, "GPT2Train: \(parameters.count) parameters for a layout of \(layout.total)")
        params = FloatBuffer(parameters)
        grads = FloatBuffer(count: layout.total)
    }

    /// Loads a GPT-2 checkpoint (any float dtype, read as f32).
    public convenience init(graph: WeightGraph) throws {
        guard let config = graph.config else { throw TrainError.invalidConfig("the checkpoint has no config.json") }
        let s = try GPT2Shape(config: config)
        let layout = ParameterLayout(s)
        // The base-model prefix as saved ("transformer." by GPT2LMHeadModel, none by GPT2Model).
        let prefix = graph.tensor(named: "transformer.wte.weight") != nil ? "transformer." : ""
        if let head = graph.tensors["lm_head.weight"] {
            // An lm_head stored on its own is only acceptable when it is the embedding.
            let wte = graph.tensor(named: prefix + "wte.weight")
            guard let wte, try head.data.load() == wte.data.load() else {
                throw TrainError.unsupported("an untied lm_head.weight")
            }
        }
        var flat = [Float](repeating: 0, count: layout.total)
        for slot in layout.slots {
            let name = prefix + slot.name.dropFirst("transformer.".count)
            guard let t = graph.tensor(named: name) else { throw TrainError.missingTensor(name) }
            guard t.shape == slot.shape else { throw TrainError.shapeMismatch(tensor: name, expected: slot.shape, actual: t.shape) }
            guard let values = try Cast.floats(t) else { throw TrainError.unsupported("tensor `\(name)` has dtype \(t.dtype)") }
            flat.replaceSubrange(slot.offset..<slot.offset + slot.count, with: values)
        }
        self.init(shape: s, parameters: flat)
    }

    public var parameterCount: Int { layout.total }
    public var parameters: [Float] { params.array }
    public var gradients: [Float] { grads.array }
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
        let a = Activations(shape, B: B, T: T)
        acts = a
        dacts = nil
        return a
    }

    // MARK: forward

    /// Runs ids [B, T] and keeps the activations; returns them (logits [B, T, V] in `.logits`).
    @discardableResult
    func forward(ids: [Int], B: Int, T: Int) -> Activations {
        precondition(ids.count == B * T && T <= shape.maxT && ids.allSatisfy { $0 >= 0 && $0 < shape.V },
                     "GPT2Train.forward: ids must be [B, T] tokens below V, T ≤ maxT (checked by the caller)")
        let a = activations(B: B, T: T)
        let s = shape, N = B * T, C = s.C, P = params.p, L = layout
        TrainKernels.encoderForward(a.encoded.p, ids: ids, wte: P + L.wte, wpe: P + L.wpe, B: B, T: T, C: C)
        var residual = a.encoded
        for (l, o) in L.blocks.enumerated() {
            let b = a.blocks[l]
            TrainKernels.layerNormForward(b.ln1.p, mean: b.ln1Mean.p, rstd: b.ln1Rstd.p, inp: residual.p,
                                          weight: P + o.ln1w, bias: P + o.ln1b, N: N, C: C, eps: s.eps)
            TrainKernels.matmulForward(b.qkv.p, inp: b.ln1.p, weight: P + o.attnW, bias: P + o.attnB, N: N, C: C, OC: 3 * C, layout: .inOut)
            TrainKernels.attentionForward(b.atty.p, att: b.att.p, qkv: b.qkv.p, B: B, T: T, C: C, NH: s.NH)
            TrainKernels.matmulForward(b.attproj.p, inp: b.atty.p, weight: P + o.projW, bias: P + o.projB, N: N, C: C, OC: C, layout: .inOut)
            TrainKernels.residualForward(b.res2.p, residual.p, b.attproj.p, count: N * C)
            TrainKernels.layerNormForward(b.ln2.p, mean: b.ln2Mean.p, rstd: b.ln2Rstd.p, inp: b.res2.p,
                                          weight: P + o.ln2w, bias: P + o.ln2b, N: N, C: C, eps: s.eps)
            TrainKernels.matmulForward(b.fch.p, inp: b.ln2.p, weight: P + o.fcW, bias: P + o.fcB, N: N, C: C, OC: s.I, layout: .inOut)
            TrainKernels.geluForward(b.gelu.p, inp: b.fch.p, count: N * s.I)
            TrainKernels.matmulForward(b.fcproj.p, inp: b.gelu.p, weight: P + o.fcProjW, bias: P + o.fcProjB, N: N, C: s.I, OC: C, layout: .inOut)
            TrainKernels.residualForward(b.res3.p, b.res2.p, b.fcproj.p, count: N * C)
            residual = b.res3
        }
        TrainKernels.layerNormForward(a.lnf.p, mean: a.lnfMean.p, rstd: a.lnfRstd.p, inp: residual.p,
                                      weight: P + L.lnfw, bias: P + L.lnfb, N: N, C: C, eps: s.eps)
        TrainKernels.matmulForward(a.logits.p, inp: a.lnf.p, weight: P + L.wte, bias: nil, N: N, C: C, OC: s.V, layout: .outIn)
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
        if let existing = dacts { d = existing } else { d = Activations(shape, B: a.B, T: a.T); dacts = d }
        d.zero()
        grads.zero()
        return d
    }

    /// Backpropagates the gradients placed by the losses through the whole model into `grads`.
    func backward(ids: [Int], B: Int, T: Int) {
        let a = acts!, d = dacts!
        let s = shape, N = B * T, C = s.C, P = params.p, G = grads.p, L = layout
        let lastRes = s.L > 0 ? a.blocks[s.L - 1].res3 : a.encoded
        let dLastRes = s.L > 0 ? d.blocks[s.L - 1].res3 : d.encoded
        TrainKernels.matmulBackward(dinp: d.lnf.p, dweight: G + L.wte, dbias: nil, dout: d.logits.p, inp: a.lnf.p,
                                    weight: P + L.wte, N: N, C: C, OC: s.V, layout: .outIn)
        TrainKernels.layerNormBackward(dinp: dLastRes.p, dweight: G + L.lnfw, dbias: G + L.lnfb, dout: d.lnf.p, inp: lastRes.p,
                                       weight: P + L.lnfw, mean: a.lnfMean.p, rstd: a.lnfRstd.p, N: N, C: C)
        for l in stride(from: s.L - 1, through: 0, by: -1) {
            let o = L.blocks[l], b = a.blocks[l], db = d.blocks[l]
            let residual = l == 0 ? a.encoded : a.blocks[l - 1].res3
            let dresidual = l == 0 ? d.encoded : d.blocks[l - 1].res3
            TrainKernels.residualBackward(da: db.res2.p, db: db.fcproj.p, dout: db.res3.p, count: N * C)
            TrainKernels.matmulBackward(dinp: db.gelu.p, dweight: G + o.fcProjW, dbias: G + o.fcProjB, dout: db.fcproj.p,
                                        inp: b.gelu.p, weight: P + o.fcProjW, N: N, C: s.I, OC: C, layout: .inOut)
            TrainKernels.geluBackward(dinp: db.fch.p, inp: b.fch.p, dout: db.gelu.p, count: N * s.I)
            TrainKernels.matmulBackward(dinp: db.ln2.p, dweight: G + o.fcW, dbias: G + o.fcB, dout: db.fch.p,
                                        inp: b.ln2.p, weight: P + o.fcW, N: N, C: C, OC: s.I, layout: .inOut)
            TrainKernels.layerNormBackward(dinp: db.res2.p, dweight: G + o.ln2w, dbias: G + o.ln2b, dout: db.ln2.p, inp: b.res2.p,
                                           weight: P + o.ln2w, mean: b.ln2Mean.p, rstd: b.ln2Rstd.p, N: N, C: C)
            TrainKernels.residualBackward(da: dresidual.p, db: db.attproj.p, dout: db.res2.p, count: N * C)
            TrainKernels.matmulBackward(dinp: db.atty.p, dweight: G + o.projW, dbias: G + o.projB, dout: db.attproj.p,
                                        inp: b.atty.p, weight: P + o.projW, N: N, C: C, OC: C, layout: .inOut)
            TrainKernels.attentionBackward(dqkv: db.qkv.p, dout: db.atty.p, qkv: b.qkv.p, att: b.att.p, scratch: d.scratch.p,
                                           B: B, T: T, C: C, NH: s.NH)
            TrainKernels.matmulBackward(dinp: db.ln1.p, dweight: G + o.attnW, dbias: G + o.attnB, dout: db.qkv.p,
                                        inp: b.ln1.p, weight: P + o.attnW, N: N, C: C, OC: 3 * C, layout: .inOut)
            TrainKernels.layerNormBackward(dinp: dresidual.p, dweight: G + o.ln1w, dbias: G + o.ln1b, dout: db.ln1.p, inp: residual.p,
                                           weight: P + o.ln1w, mean: b.ln1Mean.p, rstd: b.ln1Rstd.p, N: N, C: C)
        }
        TrainKernels.encoderBackward(dwte: G + L.wte, dwpe: G + L.wpe, dout: d.encoded.p, ids: ids, B: B, T: T, C: C)
    }

    // MARK: export

    /// The parameters as a weight graph in Hugging Face's names (f32, head tied to wte).
    public func weightGraph(config: ModelConfig, metadata: [(String, String)] = []) throws -> WeightGraph {
        var g = WeightGraph()
        for slot in layout.slots {
            let values = params.slice(slot.offset, slot.count)
            let bytes = values.withUnsafeBytes { Array($0) }  // little-endian hosts only (x86-64, arm64)
            try g.add(Tensor(name: slot.name, dtype: .f32, shape: slot.shape, data: .owned(bytes)))
        }
        g.metadata["format"] = "pt"
        for (k, v) in metadata { g.metadata[k] = v }
        g.config = config
        g.applyConfigTies()
        return g
    }
}

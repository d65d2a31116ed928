// The forward pass of any `ModelDescription`: the shared parts (norm, attention, MLP) loaded
// from their specs, and a model that runs them block by block.
//
//   x = embed(ids)                                   x [T, C]
//   for each block i: block(i).forward(&x)           residual stream, see BlockSpec
//   out = finish(x)                                  final norm, then logits [T, V] or x [T, C]
//
// Loading checks every parameter slot (presence and shape) against the checkpoint before any
// weight is widened to f32, so a config that disagrees with its tensors costs nothing.
// `embed`, `blocks[i].forward` and `finish` are the entry points a block-streaming executor
// needs: a block's weights are only read in `Block.init(spec:weights:)`.

import CkptCore
import Foundation

/// A linear layer's weights in f32, and the name its activation statistics are filed under.
struct Linear: Sendable {
    var name: String
    /// The weights in f32 (empty `data` when `packed`).
    var matrix: Matrix
    /// The weights in their stored dtype, widened a panel at a time (streamed execution).
    var packed: PackedWeights?
    var bias: [Float]?

    init(_ spec: LinearSpec, _ w: WeightStore) throws {
        name = spec.weightName
        let layout: Matrix.Layout = spec.layout == .linear ? .outIn : .inOut
        if layout == .outIn, let t = w.graph.tensor(named: spec.weightName), t.shape == spec.weightShape,
           w.packed || (Transformers.integerProducts && PackedWeights.hasIntegerKernel(t.dtype)),
           let p = try PackedWeights(t, mapped: w.streamed) {
            packed = p
            matrix = Matrix(data: [], inFeatures: spec.inFeatures, outFeatures: spec.outFeatures, layout: layout)
        } else if layout == .outIn, let t = w.graph.tensor(named: spec.weightName), t.shape == spec.weightShape,
                  let panels = try WeightStore.reading(t, { try PackedPanels.fromRows(of: t, outFeatures: spec.outFeatures, inFeatures: spec.inFeatures) }) {
            // Packed for the f32 product straight from the stored rows (no whole f32 copy).
            t.data.releaseResidentPages()
            matrix = Matrix(data: [], inFeatures: spec.inFeatures, outFeatures: spec.outFeatures, layout: layout, panels: panels)
        } else {
            let data = try w.floats(spec.weightName, spec.weightShape)
            matrix = Matrix(data: data, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures, layout: layout)
            // Packed once for the f32 product (a streamed block's too: sgemm would pack it anyway).
            matrix = matrix.packed()
        }
        bias = spec.bias == .absent ? nil : try w.optionalFloats(spec.biasName, [spec.outFeatures])
    }

    /// out[T, out] = x[T, in] · W + b, recording x as this weight's input.
    /// Throws only when stored weights read from the checkpoint per product (streamed) fail to read.
    func callAsFunction(_ x: [Float], T: Int, _ stats: ActivationStats?) throws -> [Float] {
        stats?.addInput(name, x, T: T, C: matrix.inFeatures)
        if let packed { return try packed.multiply(x, T: T, bias: bias) }
        return Kernels.linear(x, T: T, matrix, bias: bias)
    }
}

struct Norm: Sendable {
    var kind: NormSpec.Kind
    var width: Int
    var weight: [Float]
    var bias: [Float]?
    var eps: Float

    /// Weight sets: 1, or one per head (rows cycle through them).
    var groups: Int

    init(_ spec: NormSpec, _ w: WeightStore) throws {
        kind = spec.kind
        width = spec.width
        eps = spec.eps
        groups = spec.perHead ?? 1
        weight = try spec.parameterNames.flatMap { try w.floats($0 + ".weight", [spec.width]) }
        if spec.weightOffset != 0 { weight = weight.map { spec.weightOffset + $0 } }  // Gemma: (1 + w) in f32
        bias = spec.bias == .absent || !w.has(spec.parameterNames[0] + ".bias") ? nil
            : try spec.parameterNames.flatMap { try w.floats($0 + ".bias", [spec.width]) }
    }

    /// Normalises each of the `rows` rows of x[rows, width].
    func callAsFunction(_ x: [Float], rows: Int) -> [Float] {
        switch kind {
        case .layerNorm: return Kernels.layerNorm(x, T: rows, C: width, weight: weight, bias: bias, eps: eps, groups: groups)
        case .rmsNorm: return Kernels.rmsNorm(x, T: rows, C: width, weight: weight, eps: eps, groups: groups)
        }
    }
}

/// Per-forward state shared by the blocks: rotary tables (one per distinct rope, computed once).
final class ForwardContext {
    let T: Int
    let stats: ActivationStats?
    private var ropeTables: [RopeSpec: (cos: [Float], sin: [Float])] = [:]

    init(T: Int, stats: ActivationStats?) {
        self.T = T
        self.stats = stats
    }

    func tables(_ rope: RopeSpec) -> (cos: [Float], sin: [Float]) {
        if let t = ropeTables[rope] { return t }
        let t = rope.tables(T: T)
        ropeTables[rope] = t
        return t
    }
}

struct Attention: Sendable {
    enum Projections: Sendable { case split(Linear, Linear, Linear), fused(Linear, AttentionSpec.FusedOrder) }
    var spec: AttentionSpec
    var projections: Projections
    var output: Linear
    var queryNorm, keyNorm: Norm?

    init(_ spec: AttentionSpec, _ w: WeightStore) throws {
        self.spec = spec
        switch spec.projections {
        case .split(let q, let k, let v): projections = .split(try Linear(q, w), try Linear(k, w), try Linear(v, w))
        case .fused(let qkv, let order): projections = .fused(try Linear(qkv, w), order)
        }
        output = try Linear(spec.output, w)
        queryNorm = try spec.queryNorm.map { try Norm($0, w) }
        keyNorm = try spec.keyNorm.map { try Norm($0, w) }
    }

    /// o_proj(attention(q, k, v)) for h[T, C]; returns [T, C].
    func callAsFunction(_ h: [Float], layer: Int, _ ctx: ForwardContext) throws -> [Float] {
        let T = ctx.T, NH = spec.heads, NKV = spec.kvHeads, hs = spec.headDim
        var q: [Float], k: [Float], v: [Float]                       // q [T, NH·hs], k v [T, NKV·hs]
        switch projections {
        case .split(let lq, let lk, let lv):
            q = try lq(h, T: T, ctx.stats)
            k = try lk(h, T: T, ctx.stats)
            v = try lv(h, T: T, ctx.stats)
        case .fused(let l, .concatenated):
            let qkv = try l(h, T: T, ctx.stats)                      // [T, (NH + 2·NKV)·hs]
            let W = (NH + 2 * NKV) * hs
            q = Kernels.columns(qkv, T: T, total: W, from: 0, width: NH * hs)
            k = Kernels.columns(qkv, T: T, total: W, from: NH * hs, width: NKV * hs)
            v = Kernels.columns(qkv, T: T, total: W, from: (NH + NKV) * hs, width: NKV * hs)
        case .fused(let l, .grouped):
            let qkv = try l(h, T: T, ctx.stats)                      // [T, NKV, (NH/NKV + 2)·hs]
            (q, k, v) = Kernels.ungroupQKV(qkv, T: T, NH: NH, NKV: NKV, hs: hs)
        }
        if let n = queryNorm { q = n(q, rows: q.count / n.width) }     // per head (width hs) or whole (NH·hs)
        if let n = keyNorm { k = n(k, rows: k.count / n.width) }
        if let rope = spec.rope {
            let (cos, sin) = ctx.tables(rope)
            Kernels.rope(&q, T: T, heads: NH, hs: hs, rotaryDim: rope.rotaryDim, cos: cos, sin: sin)
            Kernels.rope(&k, T: T, heads: NKV, hs: hs, rotaryDim: rope.rotaryDim, cos: cos, sin: sin)
        }
        let a = Kernels.attention(q: q, k: k, v: v, .init(T: T, NH: NH, NKV: NKV, hs: hs, causal: spec.causal, window: spec.window,
                                                          scale: spec.scale, softcap: spec.softcap, alibi: spec.alibi))
        ctx.stats?.addHeads(layer: layer, a, T: T, heads: NH, hs: hs)
        return try output(a, T: T, ctx.stats)
    }
}

struct MLP: Sendable {
    enum Projections: Sendable { case plain(Linear), gated(Linear, Linear), fusedGated(Linear) }
    var spec: MLPSpec
    var projections: Projections
    var down: Linear

    init(_ spec: MLPSpec, _ w: WeightStore) throws {
        self.spec = spec
        switch spec.projections {
        case .plain(let up): projections = .plain(try Linear(up, w))
        case .gated(let gate, let up): projections = .gated(try Linear(gate, w), try Linear(up, w))
        case .fusedGated(let gu): projections = .fusedGated(try Linear(gu, w))
        }
        down = try Linear(spec.down, w)
    }

    func activate(_ x: inout [Float]) {
        switch spec.activation {
        case .geluTanh: Kernels.geluTanh(&x)
        case .geluExact: Kernels.geluErf(&x)
        case .relu: Kernels.relu(&x)
        case .silu: x.withUnsafeMutableBufferPointer { VectorMath.silu($0) }
        }
    }

    /// down(act(up(h))) or down(act(gate(h)) · up(h)) for h[T, C]; returns [T, C].
    func callAsFunction(_ h: [Float], layer: Int, _ ctx: ForwardContext, recordNeurons: Bool = true) throws -> [Float] {
        let T = ctx.T, I = spec.width
        var f: [Float]                                               // [T, I]
        switch projections {
        case .plain(let up):
            f = try up(h, T: T, ctx.stats)
            activate(&f)
        case .gated(let gate, let up):
            f = try gate(h, T: T, ctx.stats)
            activate(&f)
            Kernels.multiply(&f, try up(h, T: T, ctx.stats))
        case .fusedGated(let gu):
            let both = try gu(h, T: T, ctx.stats)                    // [T, 2I]: gate | up
            f = Kernels.columns(both, T: T, total: 2 * I, from: 0, width: I)
            activate(&f)
            Kernels.multiply(&f, Kernels.columns(both, T: T, total: 2 * I, from: I, width: I))
        }
        if recordNeurons { ctx.stats?.addNeurons(layer: layer, f, T: T, width: I) }
        return try down(f, T: T, ctx.stats)
    }
}

struct MoE: Sendable {
    var spec: MoESpec
    var router: Linear
    var experts: [MLP]
    var shared: MLP?
    var sharedGate: Linear?

    init(_ spec: MoESpec, _ w: WeightStore) throws {
        self.spec = spec
        router = try Linear(spec.router, w)
        experts = try spec.experts.map { try MLP($0, w) }
        shared = try spec.shared.map { try MLP($0, w) }
        sharedGate = try spec.sharedGate.map { try Linear($0, w) }
    }

    /// Σ over each token's top-k experts of p_e · expert_e(h) (+ the shared expert); [T, C].
    func callAsFunction(_ h: [Float], layer: Int, _ ctx: ForwardContext) throws -> [Float] {
        let T = ctx.T, E = experts.count, C = h.count / max(T, 1), k = spec.topK
        var logits = try router(h, T: T, ctx.stats)                      // [T, E]
        // Per expert: the tokens routed to it and their weights.
        var routed = [[(token: Int, weight: Float)]](repeating: [], count: E)
        logits.withUnsafeMutableBufferPointer { l in
            for t in 0..<T {
                let row = UnsafeMutableBufferPointer(rebasing: l[t * E..<(t + 1) * E])
                let m = row.max() ?? 0
                var sum: Float = 0
                for e in 0..<E { row[e] = expf(row[e] - m); sum += row[e] }
                for e in 0..<E { row[e] /= sum }                          // softmax probabilities
                let top = (0..<E).sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(k)
                let norm = spec.normalizeTopK ? top.reduce(Float(0)) { $0 + row[$1] } : 1
                for e in top { routed[e].append((t, row[e] / norm)) }
            }
        }
        var out = [Float](repeating: 0, count: T * C)
        for (e, expert) in experts.enumerated() where !routed[e].isEmpty {
            let n = routed[e].count
            var rows = [Float](repeating: 0, count: n * C)              // [n, C]: this expert's tokens
            for (j, r) in routed[e].enumerated() { for i in 0..<C { rows[j * C + i] = h[r.token * C + i] } }
            let sub = ForwardContext(T: n, stats: ctx.stats)
            let y = try expert(rows, layer: layer, sub, recordNeurons: false)
            for (j, r) in routed[e].enumerated() { for i in 0..<C { out[r.token * C + i] += r.weight * y[j * C + i] } }
        }
        if let shared {
            var s = try shared(h, layer: layer, ctx, recordNeurons: false)
            if let sharedGate {
                let g = try sharedGate(h, T: T, ctx.stats)                   // [T, 1]
                for t in 0..<T { let gate = 1 / (1 + expf(-g[t])); for i in 0..<C { s[t * C + i] *= gate } }
            }
            Kernels.add(&out, s)
        }
        return out
    }
}

/// One block's weights, and its forward pass (see BlockSpec for the residual wiring).
public struct Block: Sendable {
    public let spec: BlockSpec
    let attentionNorm, postAttentionNorm, attentionResidualNorm: Norm?
    let mlpNorm, postMLPNorm, mlpResidualNorm: Norm?
    let attention: Attention
    let mlp: MLP?
    let moe: MoE?

    init(spec: BlockSpec, weights w: WeightStore) throws {
        self.spec = spec
        func norm(_ n: NormSpec?) throws -> Norm? { try n.map { try Norm($0, w) } }
        attentionNorm = try norm(spec.attentionNorm)
        postAttentionNorm = try norm(spec.postAttentionNorm)
        attentionResidualNorm = try norm(spec.attentionResidualNorm)
        mlpNorm = try norm(spec.mlpNorm)
        postMLPNorm = try norm(spec.postMLPNorm)
        mlpResidualNorm = try norm(spec.mlpResidualNorm)
        attention = try Attention(spec.attention, w)
        mlp = try spec.mlp.map { try MLP($0, w) }
        moe = try spec.moe.map { try MoE($0, w) }
    }

    /// The feed-forward sub-layer: the MLP or the experts (nil when the block has neither).
    func feedForward(_ h: [Float], _ ctx: ForwardContext) throws -> [Float]? {
        if let mlp { return try mlp(h, layer: spec.index, ctx) }
        if let moe { return try moe(h, layer: spec.index, ctx) }
        return nil
    }

    var hasFeedForward: Bool { mlp != nil || moe != nil }

    /// Every linear layer of the block.
    var linears: [Linear] {
        var all: [Linear]
        switch attention.projections {
        case .split(let q, let k, let v): all = [q, k, v]
        case .fused(let qkv, _): all = [qkv]
        }
        all.append(attention.output)
        func add(_ m: MLP) {
            switch m.projections {
            case .plain(let up): all.append(up)
            case .gated(let g, let u): all += [g, u]
            case .fusedGated(let gu): all.append(gu)
            }
            all.append(m.down)
        }
        if let mlp { add(mlp) }
        if let moe {
            all.append(moe.router)
            moe.experts.forEach(add)
            if let s = moe.shared { add(s) }
            if let g = moe.sharedGate { all.append(g) }
        }
        return all
    }

    /// x[T, C] ← the block applied to x. Throws only when a streamed weight fails to read.
    func forward(_ x: inout [Float], _ ctx: ForwardContext) throws {
        let T = ctx.T, i = spec.index
        let blockInput = x
        let h = attentionNorm.map { $0(x, rows: T) } ?? x
        var a = try attention(h, layer: i, ctx)
        if let n = postAttentionNorm { a = n(a, rows: T) }
        if let s = spec.residualScale { Kernels.scale(&a, s) }
        if spec.parallel, hasFeedForward {
            var m = try feedForward(mlpNorm.map { $0(blockInput, rows: T) } ?? blockInput, ctx) ?? []
            if let n = postMLPNorm { m = n(m, rows: T) }
            if let s = spec.residualScale { Kernels.scale(&m, s) }
            Kernels.add(&x, a)
            Kernels.add(&x, m)
        } else {
            Kernels.add(&x, a)
            if let n = attentionResidualNorm { x = n(x, rows: T) }
            if hasFeedForward {
                var m = try feedForward(mlpNorm.map { $0(x, rows: T) } ?? x, ctx) ?? []
                if let n = postMLPNorm { m = n(m, rows: T) }
                if let s = spec.residualScale { Kernels.scale(&m, s) }
                Kernels.add(&x, m)
                if let n = mlpResidualNorm { x = n(x, rows: T) }
            }
        }
        ctx.stats?.addBlock(layer: i, input: blockInput, output: x, T: T, C: x.count / max(T, 1))
    }
}

/// An output head's weights: widened to f32, or kept in their stored dtype (integer products).
enum HeadProduct: Sendable {
    case matrix(Matrix)
    case packed(PackedWeights)

    /// logits[T, V] for xf[T, E].
    func callAsFunction(_ xf: [Float], T: Int) throws -> [Float] {
        switch self {
        case .matrix(let m): return Kernels.linear(xf, T: T, m, bias: nil)
        case .packed(let p): return try p.multiply(xf, T: T, bias: nil)
        }
    }
}

/// A model run from its description (every family).
public struct DescribedModel: TransformerModel {
    public let description: ModelDescription
    let tokens, positions, tokenTypes: [Float]?
    let embeddingProjection: Linear?
    let embeddingNorm: Norm?
    public let blocks: [Block]
    let finalNorm: Norm?
    let outputProjection: Linear?
    let head: HeadProduct?
    /// A tied head packed for the f32 product: the token embedding's only copy (rows are
    /// read back from the panels), so tying costs no second table.
    let tiedPanels: PackedPanels?

    public var architecture: String { description.architecture }
    public var outputKind: ForwardOutput.Kind { description.outputKind }
    public var layerCount: Int { blocks.count }
    public var vocabSize: Int? { description.vocabSize }
    public func flops(tokens T: Int) -> Double { description.flops(tokens: T) }

    init(_ d: ModelDescription, weights w: WeightStore) throws {
        try w.check(d.slots())
        description = d
        let e = d.embedding
        // A tied head on the f32 product: the token table is packed straight from its stored
        // rows and the panels are its only copy (no whole f32 table is made first).
        var packedTable: PackedPanels?
        if case .tiedLogits = d.head.output, let t = e.tokens, let stored = w.graph.tensor(named: t.name),
           stored.shape == [t.rows, t.width], !(Transformers.integerProducts && PackedWeights.hasIntegerKernel(stored.dtype)),
           let panels = try WeightStore.reading(stored, { try PackedPanels.fromRows(of: stored, outFeatures: t.rows, inFeatures: t.width) }) {
            stored.data.releaseResidentPages()
            packedTable = panels
        }
        var tokenTable = packedTable != nil ? [] : try e.tokens.map { try w.floats($0.name, [$0.rows, $0.width]) }
        positions = try e.positions.map { try w.floats($0.name, [$0.rows, $0.width]) }
        tokenTypes = try e.tokenTypes.map { try w.floats($0.name, [$0.rows, $0.width]) }
        embeddingProjection = try e.projection.map { try Linear($0, w) }
        embeddingNorm = try e.norm.map { try Norm($0, w) }
        blocks = try d.blocks.map { try Block(spec: $0, weights: w) }
        finalNorm = try d.head.finalNorm.map { try Norm($0, w) }
        outputProjection = try d.head.projection.map { try Linear($0, w) }
        switch d.head.output {
        case .hiddenState: head = nil
        case .logits(let l):
            let linear = try Linear(l, w)
            head = linear.packed.map { .packed($0) } ?? .matrix(linear.matrix)
        case .tiedLogits:
            guard let table = tokenTable, let t = e.tokens else { throw TransformerError.invalidConfig("a tied head needs a token embedding") }
            if let packedTable {
                head = .matrix(Matrix(data: [], inFeatures: t.width, outFeatures: t.rows, layout: .outIn, panels: packedTable))
            } else if Transformers.integerProducts, let stored = w.graph.tensor(named: t.name), PackedWeights.hasIntegerKernel(stored.dtype),
               let p = try PackedWeights(stored) {
                head = .packed(p)
            } else {
                let m = Matrix(data: table, inFeatures: t.width, outFeatures: t.rows, layout: .outIn).packed()
                head = .matrix(m)
                if let panels = m.panels {
                    packedTable = panels
                    tokenTable = []
                }
            }
        }
        tokens = tokenTable
        tiedPanels = packedTable
    }

    /// x[T, C]: token (+ position, + token type) embeddings, scaled and normalised as the
    /// family says; or the input vectors themselves.
    public func embed(_ input: ModelInput) throws -> [Float] {
        try Embedding.embed(input, description, projection: embeddingProjection, norm: embeddingNorm) { table, ids in
            let values: [Float]?
            switch table.role {
            case .tokenEmbedding:
                if let tiedPanels { return Kernels.embed(tiedPanels, C: table.width, ids: ids) }
                values = tokens
            case .positionEmbedding: values = positions
            default: values = tokenTypes
            }
            return Kernels.embed(values ?? [], C: table.width, ids: ids)
        }
    }

    /// The output from the last block's x[T, C]: logits [T, V] or the last hidden state.
    public func finish(_ x: [Float], hiddenStates: [[Float]] = []) -> ForwardOutput {
        // In memory the head cannot fail: its weights are already in memory (widened or copied).
        try! OutputHead.finish(x, description, finalNorm: finalNorm, projection: outputProjection,
                               logits: head.map { head in { xf, T in try head(xf, T: T) } },
                               hiddenStates: hiddenStates)
    }

    public func forwardLastPosition(_ input: ModelInput) throws -> ForwardOutput {
        var x = try embed(input)
        let C = description.hiddenSize
        let ctx = ForwardContext(T: x.count / C, stats: nil)
        for b in blocks { try b.forward(&x, ctx) }
        return finish(Array(x.suffix(C)))
    }

    public func forward(_ input: ModelInput, collectHidden: Bool, stats: ActivationStats?) throws -> ForwardOutput {
        var x = try embed(input)
        let ctx = ForwardContext(T: x.count / description.hiddenSize, stats: stats)
        stats?.addTokens(ctx.T)
        var hidden: [[Float]] = []
        for b in blocks {
            if collectHidden { hidden.append(x) }
            try b.forward(&x, ctx)
        }
        return finish(x, hiddenStates: hidden)
    }
}

/// The embedding step shared by the in-memory and the streamed model; `rows(table, ids)`
/// returns the table's rows for those ids, [ids.count, table.width].
enum Embedding {
    static func embed(_ input: ModelInput, _ d: ModelDescription, projection: Linear?, norm: Norm?,
                      rows: (EmbeddingSpec.Table, [Int]) throws -> [Float]) throws -> [Float] {
        let C = d.hiddenSize
        var x: [Float]
        if let tokenTable = d.embedding.tokens, let V = d.vocabSize {
            let ids = try checkTokens(input, vocab: V, maxPositions: d.maxPositions)
            let T = ids.count
            x = try rows(tokenTable, ids)                                // [T, E]
            if let s = d.embedding.scale { Kernels.scale(&x, s) }
            if let p = projection { x = try p(x, T: T, nil) }            // [T, C]
            if let positions = d.embedding.positions {
                var positionIDs: [Int]
                if let pad = d.embedding.positionPaddingID {             // RoBERTa's position ids
                    var p = pad
                    positionIDs = ids.map { id in
                        if id != pad { p += 1 }
                        return id == pad ? pad : p
                    }
                } else {
                    positionIDs = Array(d.embedding.positionOffset..<d.embedding.positionOffset + T)
                }
                guard positionIDs.allSatisfy({ $0 >= 0 && $0 < positions.rows }) else {
                    throw TransformerError.sequenceTooLong(length: T, max: positions.rows - d.embedding.positionOffset)
                }
                Kernels.add(&x, try rows(positions, positionIDs))
            }
            if let types = d.embedding.tokenTypes {                     // segment 0 everywhere
                Kernels.add(&x, try rows(types, [Int](repeating: 0, count: T)))
            }
        } else {
            guard case .vectors(let v, let T) = input else {
                throw TransformerError.badInput("this model takes \(C)-wide vectors (--input vectors.npy), not token ids")
            }
            guard T > 0, v.count == T * C else { throw TransformerError.badInput("input must be [T, \(C)] vectors, got \(v.count) values") }
            x = v
        }
        if let norm { x = norm(x, rows: x.count / C) }
        return x
    }
}

/// The output step shared by the in-memory and the streamed model: final norm, projection,
/// then `logits(xf, T)` → ([T, V], V), scaled and capped; or the hidden state when there is no head.
enum OutputHead {
    static func finish(_ x: [Float], _ d: ModelDescription, finalNorm: Norm?, projection: Linear?,
                       logits: (([Float], Int) throws -> [Float])?, hiddenStates: [[Float]]) throws -> ForwardOutput {
        let C = d.hiddenSize, T = x.count / C
        var xf = finalNorm.map { $0(x, rows: T) } ?? x
        if let p = projection { xf = try p(xf, T: T, nil) }              // [T, E]
        guard let logits else {
            return ForwardOutput(kind: .hiddenState, values: xf, rows: T, cols: xf.count / max(T, 1), hiddenStates: hiddenStates)
        }
        var values = try logits(xf, T)                                   // [T, V]
        if let s = d.head.scale { Kernels.scale(&values, s) }
        if let cap = d.head.softcap { Kernels.softcap(&values, cap) }
        return ForwardOutput(kind: .logits, values: values, rows: T, cols: values.count / max(T, 1), hiddenStates: hiddenStates)
    }
}

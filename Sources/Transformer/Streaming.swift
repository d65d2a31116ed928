// Layer-streamed execution: every input sequence goes through block i, then block i's weights
// are dropped and block i + 1 is read. Only the activations of all sequences ([S × T × C])
// and one block's weights in f32 are held at a time; the embedding is read by rows and the
// output head is applied a block of vocabulary rows at a time, so neither [V × C] table is
// ever widened whole (a Q8_0, Q4_0 or Q4_K head is multiplied in integers from its stored rows, 4 MB of
// them at a time). File pages are handed back after each tensor (WeightStore), so the
// mapped checkpoint does not stay in the resident set.
//
//   state = model.embed(inputs)              x [S][T, C]
//   for i in 0..<layerCount: model.run(block: i, &state)
//   outputs = model.finish(state)            [S] × logits [T, V] or hidden state [T, C]
//
// The same kernels and the same summation order as DescribedModel run each step, so the
// outputs equal the in-memory pass bit for bit (Tests/TransformerTests/StreamingTests) —
// except where the head is split into vocabulary blocks (more than 1 M values): OpenBLAS's
// edge kernels for each block's last columns may round the last bit differently, so those
// logits agree within 1e-6 relative (one ulp was the largest difference measured).
// `verify` drives two StreamedModels in lock step; calibration reads each block's linear
// inputs through `ActivationStats` (or `run(block:)` directly) without holding the model.

import CkptCore
import COpenBLAS
import Foundation
import Quantize

/// A model whose weights stay in the checkpoint until the block that needs them runs.
public final class StreamedModel: @unchecked Sendable {
    public let description: ModelDescription
    let store: WeightStore

    /// Vocabulary rows of the output head widened at a time: at most this many bytes of f32.
    public static let headBlockBytes = 4 << 20

    /// Describes and checks the checkpoint (every slot present with its shape); reads no weights.
    /// `packedProducts`: linear layers multiply panel by panel from their stored dtype
    /// (PackedLinear.swift) instead of widening each whole matrix first. Off by default: on
    /// this project's 2-core machines widening the whole tensor was faster (BENCHMARKS.md);
    /// CKPT_PANEL_PRODUCTS=1 turns it on for measuring.
    public init(_ graph: WeightGraph, allowUnused: Bool = false,
                packedProducts: Bool = getenv("CKPT_PANEL_PRODUCTS") != nil) throws {
        description = try Transformers.describe(graph)
        try Transformers.requireAllUsed(description, graph, allowUnused: allowUnused)
        store = WeightStore(graph: graph, packed: packedProducts, streamed: true)
        _ = BLAS.core
        // A fixed threshold: every buffer of 1 MiB or more is its own mapping, returned to the
        // system when freed. glibc's default raises the threshold after the first such free,
        // after which one block's freed weights stay in the heap and the next block's land
        // beside them: the resident set would grow with the model, not with one block.
        ckpt_fixed_mmap_threshold(1 << 20)
    }

    public var architecture: String { description.architecture }
    public var outputKind: ForwardOutput.Kind { description.outputKind }
    public var layerCount: Int { description.blocks.count }
    public var vocabSize: Int? { description.vocabSize }

    /// The activations of every sequence between two blocks.
    public struct State {
        /// x[T_s, C] per sequence s.
        public internal(set) var x: [[Float]]
        /// Per sequence: its length and rotary tables, shared by all blocks.
        let contexts: [ForwardContext]
        /// The next block to run.
        public internal(set) var nextBlock = 0
    }

    /// Embeds every input: token rows read from the file, not the whole table.
    public func embed(_ inputs: [ModelInput], stats: ActivationStats? = nil) throws -> State {
        let e = description.embedding
        let projection = try e.projection.map { try Linear($0, store) }
        let norm = try e.norm.map { try Norm($0, store) }
        var xs: [[Float]] = []
        var contexts: [ForwardContext] = []
        for input in inputs {
            let x = try Embedding.embed(input, description, projection: projection, norm: norm) { table, ids in
                try store.rows(table.name, [table.rows, table.width], ids)
            }
            let ctx = ForwardContext(T: x.count / description.hiddenSize, stats: stats)
            stats?.addTokens(ctx.T)
            xs.append(x)
            contexts.append(ctx)
        }
        return State(x: xs, contexts: contexts)
    }

    /// Reads block `state.nextBlock`'s weights, runs every sequence through it and drops them.
    public func runBlock(_ state: inout State) throws {
        let block = try Block(spec: description.blocks[state.nextBlock], weights: store)
        try Self.withBLASForIntegerBlock(block) {
            for s in state.x.indices { try block.forward(&state.x[s], state.contexts[s]) }
        }
        state.nextBlock += 1
    }

    /// Runs `body` with OpenBLAS on one thread when every linear layer of `block` multiplies in
    /// integers: OpenBLAS is then left with the attention's per-head products of [T, T] — a
    /// few milliseconds —, and each of its threads woken for them spins in sched_yield for a
    /// while afterwards, taking CPU from the integer products' own threads (~5 % of the
    /// samples of a 2-thread forward of the 1.24B Q8_0 GGUF were that spinning).
    static func withBLASForIntegerBlock<R>(_ block: Block, _ body: () throws -> R) rethrows -> R {
        guard Transformers.threads > 1, block.linears.allSatisfy({ $0.packed.map { Transformers.integerProducts && PackedWeights.hasIntegerKernel($0.dtype) } ?? false })
        else { return try body() }
        let before = openblas_get_num_threads()
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(before) }
        return try body()
    }

    /// Sequential calibration's first half of a step: runs block `state.nextBlock` on a copy of
    /// every sequence so that `stats` collects its linear layers' inputs; the state is unchanged
    /// and the block's weights are dropped afterwards.
    public func observeBlock(_ state: State, stats: ActivationStats) throws {
        let block = try Block(spec: description.blocks[state.nextBlock], weights: store)
        for s in state.x.indices {
            var x = state.x[s]
            try block.forward(&x, ForwardContext(T: state.contexts[s].T, stats: stats))
        }
    }

    /// Sequential calibration's second half: runs block `state.nextBlock` with `replacing` in
    /// place of the checkpoint's tensors of the same names (its quantized linear weights,
    /// widened to f32), collecting nothing, so the next block sees the quantized block's output.
    public func runBlock(_ state: inout State, replacing: [Tensor]) throws {
        var graph = store.graph
        for t in replacing { try graph.replace(t) }
        let weights = WeightStore(graph: graph, packed: store.packed, streamed: true)
        let block = try Block(spec: description.blocks[state.nextBlock], weights: weights)
        for s in state.x.indices { try block.forward(&state.x[s], ForwardContext(T: state.contexts[s].T, stats: nil)) }
        state.nextBlock += 1
    }

    /// The outputs from the last block's activations; the head's rows are widened a block at a time.
    public func finish(_ state: State, hiddenStates: [[[Float]]] = []) throws -> [ForwardOutput] {
        let d = description
        let finalNorm = try d.head.finalNorm.map { try Norm($0, store) }
        let projection = try d.head.projection.map { try Linear($0, store) }
        var logits: ((([Float], Int) throws -> [Float]))?
        var precomputed: [[Float]]?
        switch d.head.output {
        case .hiddenState: logits = nil
        case .logits(let l) where l.layout == .conv1d:                       // [C, V]: rows are not vocabulary rows
            let m = try Linear(l, store).matrix
            logits = { xf, T in Kernels.linear(xf, T: T, m, bias: nil) }
        case .logits(let l):
            precomputed = try headProducts(name: l.weightName, rows: l.outFeatures, width: l.inFeatures, state, finalNorm, projection)
        case .tiedLogits:
            guard let t = d.embedding.tokens else { throw TransformerError.invalidConfig("a tied head needs a token embedding") }
            precomputed = try headProducts(name: t.name, rows: t.rows, width: t.width, state, finalNorm, projection)
        }
        return try state.x.indices.map { s in
            let head: (([Float], Int) throws -> [Float])? = precomputed.map { p in { _, _ in p[s] } } ?? logits
            return try OutputHead.finish(state.x[s], d, finalNorm: finalNorm, projection: projection, logits: head,
                                         hiddenStates: s < hiddenStates.count ? hiddenStates[s] : [])
        }
    }

    /// logits[s] = xf[s] · Wᵀ for a [V, E] matrix read `headBlockBytes` of f32 at a time,
    /// each block applied to every sequence before the next is read.
    private func headProducts(name: String, rows V: Int, width E: Int, _ state: State,
                              _ finalNorm: Norm?, _ projection: Linear?) throws -> [[Float]] {
        let C = description.hiddenSize
        let xf: [[Float]] = try state.x.map { x in
            let T = x.count / C
            var h = finalNorm.map { $0(x, rows: T) } ?? x
            if let projection { h = try projection(h, T: T, nil) }
            return h
        }
        var out = xf.map { [Float](repeating: 0, count: ($0.count / E) * V) }
        // Integer products: the stored rows are multiplied as they are, from the file, a
        // block of rows at a time (its pages handed back after each block).
        if Transformers.integerProducts, let t = store.graph.tensor(named: name), t.shape == [V, E],
           PackedWeights.hasIntegerKernel(t.dtype), let rowBytes = t.dtype.byteCount(shape: [1, E]) {
            let activations = xf.map { IntegerProducts.Activations($0, T: $0.count / E, C: E) }
            let blockRows = max(16, Self.headBlockBytes / max(rowBytes, 1) / 16 * 16)  // whole groups of the kernel
            try WeightStore.reading(t) { try t.data.withBytes { src in
                var first = 0
                while first < V {
                    let n = min(blockRows, V - first)
                    let rows = UnsafeRawBufferPointer(rebasing: src[first * rowBytes..<(first + n) * rowBytes])
                    for s in xf.indices {
                        out[s].withUnsafeMutableBufferPointer { o in
                            IntegerProducts.multiply(rows, t.dtype, rows: n, activations[s], into: o.baseAddress! + first, ldo: V)
                        }
                    }
                    first += n
                    t.data.releaseResidentPages()
                }
            } }
            return out
        }
        let blockRows = max(1, Self.headBlockBytes / max(4 * E, 1))
        try store.forEachRowBlock(name, [V, E], rowsPerBlock: blockRows) { first, count, w in
            for s in xf.indices {
                Kernels.linearColumns(xf[s], T: xf[s].count / E, C: E, weightRows: w, count: count, into: &out[s], column: first, total: V)
            }
        }
        return out
    }

    /// Runs every sequence through the whole model, one block in memory at a time.
    /// `lastPosition`: the outputs for each sequence's last position only ([1, V] or [1, C]),
    /// as llama.cpp computes a prompt's logits (every block still sees all positions).
    public func forward(_ inputs: [ModelInput], collectHidden: Bool = false, stats: ActivationStats? = nil,
                        lastPosition: Bool = false) throws -> [ForwardOutput] {
        var state = try embed(inputs, stats: stats)
        var hidden = [[[Float]]](repeating: [], count: collectHidden ? inputs.count : 0)
        while state.nextBlock < layerCount {
            if collectHidden { for s in state.x.indices { hidden[s].append(state.x[s]) } }
            try runBlock(&state)
        }
        if lastPosition {
            let C = description.hiddenSize
            state.x = state.x.map { Array($0.suffix(C)) }
        }
        return try finish(state, hiddenStates: hidden)
    }
}

extension WeightStore {
    /// Rows `ids` of the 2-D tensor `name` [R, W] as f32 [ids.count, W]: only those rows'
    /// bytes are read and widened; the file's pages are handed back afterwards.
    func rows(_ name: String, _ shape: [Int], _ ids: [Int]) throws -> [Float] {
        guard let t = graph.tensor(named: name) else { throw TransformerError.missingTensor(name) }
        guard t.shape == shape, shape.count == 2 else { throw TransformerError.shapeMismatch(tensor: name, expected: shape, actual: t.shape) }
        guard let rowBytes = t.dtype.byteCount(shape: [1, shape[1]]) else { throw TransformerError.unsupportedDType(tensor: name, dtype: t.dtype) }
        var picked = [UInt8](repeating: 0, count: ids.count * rowBytes)
        try Self.reading(t) { try t.data.withBytes { src in
            picked.withUnsafeMutableBytes { dst in
                for (j, r) in ids.enumerated() {
                    precondition(r >= 0 && r < shape[0], "row outside the table")  // callers check ids first
                    dst.baseAddress!.advanced(by: j * rowBytes).copyMemory(from: src.baseAddress! + r * rowBytes, byteCount: rowBytes)
                }
            }
        } }
        t.data.releaseResidentPages()
        let part = try Tensor(name: name, dtype: t.dtype, shape: [ids.count, shape[1]], data: .owned(picked))
        guard let values = try Cast.floats(part) else { throw TransformerError.unsupportedDType(tensor: name, dtype: t.dtype) }
        return values
    }

    /// Calls `body(firstRow, rowCount, rows)` for consecutive blocks of the 2-D tensor `name`
    /// [R, W], each widened to f32 [rowCount, W] in turn; pages are handed back per block.
    func forEachRowBlock(_ name: String, _ shape: [Int], rowsPerBlock: Int,
                         _ body: (Int, Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        guard let t = graph.tensor(named: name) else { throw TransformerError.missingTensor(name) }
        guard t.shape == shape, shape.count == 2 else { throw TransformerError.shapeMismatch(tensor: name, expected: shape, actual: t.shape) }
        guard let rowBytes = t.dtype.byteCount(shape: [1, shape[1]]) else { throw TransformerError.unsupportedDType(tensor: name, dtype: t.dtype) }
        guard t.dtype == .f32 || t.dtype == .f16 || t.dtype == .bf16 || t.dtype.isQuantized else {
            throw TransformerError.unsupportedDType(tensor: name, dtype: t.dtype)
        }
        var block = [Float](repeating: 0, count: min(rowsPerBlock, shape[0]) * shape[1])  // reused
        try Self.reading(t) { try t.data.withBytes { src in
            var first = 0
            while first < shape[0] {
                let n = min(rowsPerBlock, shape[0] - first), count = n * shape[1]
                let part = UnsafeRawBufferPointer(rebasing: src[first * rowBytes..<(first + n) * rowBytes])
                try block.withUnsafeMutableBufferPointer { b in
                    let dst = UnsafeMutableBufferPointer(rebasing: b[0..<count])
                    if t.dtype == .f32 {
                        UnsafeMutableRawBufferPointer(dst).copyMemory(from: part)  // the file's f32 may be unaligned
                    } else {
                        PackedWeights.widen(part, t.dtype, count: count, into: dst)
                    }
                    try body(first, n, UnsafeBufferPointer(dst))
                }
                first += n
                t.data.releaseResidentPages()
            }
        } }
    }
}

// Layer-streamed execution gives the in-memory pass's outputs bit for bit: for every
// registered family fixture, for several sequences of different lengths at once, and for
// block-quantized and bf16 weights. Splitting a product into column blocks (a big head, panel
// products) changes only the rounding of OpenBLAS's edge columns: within 1e-6 relative.

import CkptCore
import Foundation
import Formats
import Quantize
import Testing
import TestSupport
@testable import Transformer

/// The fixture's input, and a second, shorter one (so sequences of different lengths share blocks).
func streamingInputs(_ name: String) throws -> [ModelInput] {
    let expected = try Expected(Repo.fixture("models/\(name).expected.safetensors"))
    if expected.tensors["input"] != nil {
        let x = try expected.floats("input")
        let T = try #require(expected.tensors["input"]).shape[0]
        let C = x.count / T
        return [.vectors(x, rows: T), .vectors(Array(x[0..<(T - 1) * C].reversed()), rows: T - 1)]
    }
    let tokens = try expected.ints("tokens")
    return [.tokens(tokens), .tokens(Array(tokens.dropFirst(2).reversed()))]
}

func expectStreamedEqualsInMemory(_ graph: WeightGraph, _ inputs: [ModelInput], _ label: String,
                                  sourceLocation: SourceLocation = #_sourceLocation) throws {
    let whole = try Transformers.load(graph)
    let streamed = try StreamedModel(graph, packedProducts: false).forward(inputs, collectHidden: true)
    let panels = try StreamedModel(graph, packedProducts: true).forward(inputs, collectHidden: true)
    #expect(streamed.count == inputs.count && panels.count == inputs.count)
    for (s, input) in inputs.enumerated() {
        let want = try whole.forward(input, collectHidden: true)
        #expect(panels[s].values == want.values, "\(label) sequence \(s): output from panel products differs", sourceLocation: sourceLocation)
        let got = streamed[s]
        #expect(got.kind == want.kind && got.rows == want.rows && got.cols == want.cols, "\(label)", sourceLocation: sourceLocation)
        #expect(got.values == want.values, "\(label) sequence \(s): streamed output differs", sourceLocation: sourceLocation)
        #expect(got.hiddenStates == want.hiddenStates, "\(label) sequence \(s): a block input differs", sourceLocation: sourceLocation)
    }
}

@Suite struct StreamingTests {
    @Test(arguments: FamilyFixture.supported)
    func streamedEqualsInMemory(_ f: FamilyFixture) throws {
        let graph = try Checkpoint.open(Repo.fixture("models/\(f.name)")).graph
        try expectStreamedEqualsInMemory(graph, try streamingInputs(f.name), f.name)
    }

    /// Block-quantized and half-precision weights are widened tensor by tensor the same way.
    @Test(arguments: [DType.q8_0, .q4_0, .i8_g32, .i4_g32, .bf16])
    func quantizedWeightsStreamTheSame(_ dtype: DType) throws {
        for name in ["llama-gqa", "gpt2-a"] {
            var graph = try Checkpoint.open(Repo.fixture("models/\(name)")).graph
            for t in graph.tensors.values where t.shape.count == 2 && (t.shape.last ?? 0) % 32 == 0 {
                try graph.replace(dtype == .bf16 ? try Cast.cast(t, to: .bf16) : try Quantizer.quantize(t, to: dtype).tensor)
            }
            try expectStreamedEqualsInMemory(graph, try streamingInputs(name), "\(name) \(dtype)")
        }
    }

    /// A head bigger than one block of vocabulary rows is applied block by block: the same
    /// rows, and the same logits within 1e-6 relative.
    @Test func headInSeveralBlocksEqualsOneProduct() throws {
        let graph = try Checkpoint.open(Repo.fixture("models/llama-gqa")).graph
        let d = try Transformers.describe(graph)
        let rows = try #require(d.vocabSize)
        let store = WeightStore(graph: graph)
        let name: String
        switch d.head.output {
        case .logits(let l): name = l.weightName
        default: name = try #require(d.embedding.tokens).name
        }
        let C = d.hiddenSize
        let whole = try store.floats(name, [rows, C])
        var blocks: [(Int, Int)] = []
        var joined: [Float] = []
        try store.forEachRowBlock(name, [rows, C], rowsPerBlock: 7) { first, n, w in
            blocks.append((first, n))
            joined += Array(w)
        }
        #expect(blocks.count == (rows + 6) / 7 && blocks.last!.0 + blocks.last!.1 == rows)
        #expect(joined == whole)
        // The product by blocks of columns equals one product.
        let x = (0..<3 * C).map { Float(($0 * 37) % 101) / 50 - 1 }
        let one = Kernels.linear(x, T: 3, Matrix(data: whole, inFeatures: C, outFeatures: rows, layout: .outIn), bias: nil)
        var byBlocks = [Float](repeating: 0, count: 3 * rows)
        try store.forEachRowBlock(name, [rows, C], rowsPerBlock: 7) { first, n, w in
            Kernels.linearColumns(x, T: 3, C: C, weightRows: w, count: n, into: &byBlocks, column: first, total: rows)
        }
        // Edge kernels for each block's last columns may round differently: within 1e-6.
        let (rel, _) = relativeError(byBlocks, one)
        #expect(rel <= 1e-6, "head by blocks differs by \(rel) relative")
        // Rows picked by id equal the table's rows.
        let ids = [rows - 1, 0, 3, 3]
        let picked = try store.rows(name, [rows, C], ids)
        #expect(picked == ids.flatMap { Array(whole[$0 * C..<($0 + 1) * C]) })
    }

    /// Panel products (several panels, a bias, half and block dtypes) equal one product with
    /// the widened matrix, bit for bit.
    @Test(arguments: [DType.q8_0, .q4_k, .bf16, .i4_g32])
    func panelProductsEqualTheWholeProduct(_ dtype: DType) throws {
        let OC = 37, C = 256, T = 5
        let w = (0..<OC * C).map { Float(($0 * 7919) % 2003) / 1000 - 1 }
        let src = try Tensor(name: "w", dtype: .f32, shape: [OC, C], data: .owned(w.withUnsafeBytes { Array($0) }))
        let t = dtype == .bf16 ? try Cast.cast(src, to: .bf16) : try Quantizer.quantize(src, to: dtype).tensor
        let packed = try #require(try PackedWeights(t))
        let widened = try #require(try Cast.floats(t))
        let x = (0..<T * C).map { Float(($0 * 31) % 97) / 50 - 1 }
        let bias = (0..<OC).map { Float($0) / 10 }
        let want = Kernels.linear(x, T: T, Matrix(data: widened, inFeatures: C, outFeatures: OC, layout: .outIn), bias: bias)
        // One panel: the same sgemm call, bit for bit. Several panels: OpenBLAS's edge kernels
        // for each panel's last columns may round differently, within 1e-6 relative.
        #expect(try packed.multiply(x, T: T, bias: bias, integer: false) == want)
        let (rel, _) = relativeError(try packed.multiply(x, T: T, bias: bias, panelValues: 3 * C, integer: false), want)
        #expect(rel <= 1e-6, "\(dtype): panels differ by \(rel) relative")
    }

    @Test func memoryEstimateAndChoice() throws {
        let graph = try Checkpoint.open(Repo.fixture("models/llama-gqa")).graph
        let d = try Transformers.describe(graph)
        let e = Memory.estimate([d], storedBytes: [graph], sequences: 2, tokens: 8)
        let params = d.slots().reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(e.inMemory >= Memory.base + 4 * params)
        #expect(e.streamed > Memory.base)
        #expect(try Memory.choose(ExecutionOptions(execution: .auto, maxMemory: e.inMemory), e) == .inMemory)
        #expect(try Memory.choose(ExecutionOptions(execution: .auto, maxMemory: e.inMemory - 1), e) == .streamed)
        #expect(throws: TransformerError.self) { try Memory.choose(ExecutionOptions(execution: .streamed, maxMemory: e.streamed - 1), e) }
        #expect(throws: TransformerError.self) { try Memory.choose(ExecutionOptions(execution: .inMemory, maxMemory: e.inMemory - 1), e) }
        // Two models in memory need both; streamed, one block of either at a time.
        let two = Memory.estimate([d, d], storedBytes: [graph, graph], sequences: 2, tokens: 8)
        #expect(two.inMemory - e.inMemory >= 4 * params)
        #expect(two.streamed - e.streamed < 4 * params)
        // f32 weights: auto stays in memory when that fits (widening at load runs on every core).
        #expect(!e.streamedIsCheaper)
    }

    /// Quantized weights with integer kernels: auto streams even when in memory would fit
    /// (the weights are read as stored, the token table by rows); a verify whose reference has
    /// float weights stays in memory.
    /// (Q4_K, the third type, needs rows of 256 values, wider than the fixtures.)
    @Test(arguments: [DType.q8_0, .q4_0])
    func autoStreamsIntegerProductModels(_ dtype: DType) throws {
        let graph = try Checkpoint.open(Repo.fixture("models/llama-teacher4")).graph
        var quantized = graph
        for t in graph.tensors.values where t.shape.count == 2 && t.name.contains("layers") {
            try quantized.replace(try Quantizer.quantize(t, to: dtype).tensor)
        }
        let d = try Transformers.describe(quantized)
        let e = Memory.estimate([d], storedBytes: [quantized], sequences: 1, tokens: 8)
        #expect(e.streamedIsCheaper)
        #expect(try Memory.choose(ExecutionOptions(execution: .auto, maxMemory: 1 << 40), e) == .streamed)
        #expect(try Memory.choose(ExecutionOptions(execution: .inMemory, maxMemory: 1 << 40), e) == .inMemory)
        let pair = Memory.estimate([try Transformers.describe(graph), d], storedBytes: [graph, quantized], sequences: 1, tokens: 8)
        #expect(!pair.streamedIsCheaper)
    }

    @Test func sizesParse() {
        #expect(Memory.parse("512M") == 512 << 20)
        #expect(Memory.parse("8G") == 8 << 30)
        #expect(Memory.parse("8GiB") == 8 << 30)
        #expect(Memory.parse("1.5GB") == 3 << 29)
        #expect(Memory.parse("4096") == 4096)
        #expect(Memory.parse("-1G") == nil)
        #expect(Memory.parse("lots") == nil)
        #expect(Memory.parse("") == nil)
    }
}

/// Bytes that exist only as a size: describing and estimating never read them.
final class PhantomBytes: ExternalBytes, @unchecked Sendable {
    let count: Int
    init(_ count: Int) { self.count = count }
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R { throw SupportError("phantom bytes read") }
    func releaseResidentPages() {}
    var origin: String { "phantom" }
}

/// A bf16 LLaMA checkpoint of the given shape whose tensors have sizes but no bytes.
func phantomLlama(hidden C: Int, intermediate I: Int, layers L: Int, heads: Int, kvHeads: Int, vocab V: Int,
                  dtype: DType = .bf16) throws -> WeightGraph {
    var g = WeightGraph()
    let kv = C / heads * kvHeads
    func add(_ name: String, _ shape: [Int]) throws {
        let type = shape.count == 2 ? dtype : .bf16
        try g.add(try Tensor(name: name, dtype: type, shape: shape, data: .external(PhantomBytes(type.byteCount(shape: shape)!))))
    }
    for t in llamaTensorShapes(vocab: V, hidden: C, intermediate: I, layers: L, kvWidth: kv) { try add(t.name, t.shape) }
    g.config = ModelConfig(json: [
        "model_type": .string("llama"), "architectures": .array([.string("LlamaForCausalLM")]), "hidden_size": .int(C),
        "intermediate_size": .int(I), "num_hidden_layers": .int(L), "num_attention_heads": .int(heads),
        "num_key_value_heads": .int(kvHeads), "vocab_size": .int(V), "max_position_embeddings": .int(8192),
        "rms_norm_eps": .number("1e-5"), "hidden_act": .string("silu"), "tie_word_embeddings": .bool(false)])
    return g
}

@Suite struct MemoryExtrapolationTests {
    /// The README's and BENCHMARKS.md's figures for Llama-3 shapes: verify (two models, 2 × 64
    /// tokens) and forward (one model, 128 tokens), from the estimate the commands use.
    @Test(arguments: [("Llama-3-8B", 4096, 14336, 32, 32), ("Llama-3-70B", 8192, 28672, 80, 64)])
    func llama3Shapes(_ shape: (String, Int, Int, Int, Int)) throws {
        let g = try phantomLlama(hidden: shape.1, intermediate: shape.2, layers: shape.3, heads: shape.4, kvHeads: 8, vocab: 128256)
        let d = try Transformers.describe(g)
        let forward = Memory.estimate([d], storedBytes: [g], sequences: 1, tokens: 128)
        let verify = Memory.estimate([d, d], storedBytes: [g, g], sequences: 2, tokens: 64)
        print("\(shape.0): forward in memory \(Memory.format(forward.inMemory)), streamed \(Memory.format(forward.streamed)); "
              + "verify in memory \(Memory.format(verify.inMemory)), streamed \(Memory.format(verify.streamed))")
        let params = d.slots().reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(forward.inMemory > 4 * params && verify.inMemory > 8 * params)
        #expect(verify.streamed < 4 * params / 8, "streamed needs a block, not the model")
    }

    /// The same shapes as Q8_0 GGUFs (untied head): with integer products the linear weights
    /// are used as stored (34 bytes per 32 values), in memory and streamed.
    @Test(arguments: [("Llama-3-8B", 4096, 14336, 32, 32), ("Llama-3-70B", 8192, 28672, 80, 64)])
    func llama3ShapesQ8(_ shape: (String, Int, Int, Int, Int)) throws {
        let g = try phantomLlama(hidden: shape.1, intermediate: shape.2, layers: shape.3, heads: shape.4, kvHeads: 8,
                                 vocab: 128256, dtype: .q8_0)
        let d = try Transformers.describe(g)
        let forward = Memory.estimate([d], storedBytes: [g], sequences: 1, tokens: 128)
        print("\(shape.0) Q8_0: forward in memory \(Memory.format(forward.inMemory)), streamed \(Memory.format(forward.streamed))")
        let params = d.slots().reduce(0) { $0 + $1.shape.reduce(1, *) }
        let embedding = 128256 * shape.1
        if Transformers.integerProducts {
            // The f32 token table, the other weights at 34/32 bytes per value.
            #expect(forward.inMemory > 4 * embedding + (params - embedding) * 34 / 32)
            #expect(forward.inMemory < 4 * embedding + (params - embedding) * 34 / 32 + (2 << 30))
        }
        #expect(forward.streamed < params / 8, "streamed needs a block, not the model")
    }
}

@Suite struct LastPositionTests {
    /// `forward --last-position`: the last row of the full output, in memory and streamed,
    /// within 1e-5 relative (an f32 head's sgemm of one row may sum in another order).
    @Test(arguments: [DType.f32, .q8_0])
    func lastPositionIsTheLastRow(_ dtype: DType) throws {
        var graph = try Checkpoint.open(Repo.fixture("models/llama-gqa")).graph
        if dtype != .f32 {
            for t in graph.tensors.values where t.shape.count == 2 && (t.shape.last ?? 0) % 32 == 0 {
                try graph.replace(try Quantizer.quantize(t, to: dtype).tensor)
            }
        }
        let input = try streamingInputs("llama-gqa")[0]
        let full = try Transformers.load(graph).forward(input, collectHidden: false)
        let last = Array(full.values.suffix(full.cols))
        let inMemory = try Transformers.load(graph).forwardLastPosition(input)
        let streamed = try StreamedModel(graph).forward([input], lastPosition: true)[0]
        for got in [inMemory, streamed] {
            #expect(got.rows == 1 && got.cols == full.cols)
            #expect(relativeError(got.values, last).rel <= 1e-5)
        }
    }
}

// Sequential calibration (the layer-streamed engine quantizes block i, then feeds its
// quantized output to block i + 1). References:
// - block 0 sees the embedding output in both modes: its statistics, and so its quantized
//   bytes, equal the one-pass mode's bit for bit;
// - block 1's Gram matrix equals a one-pass collection on the model whose block 0 weights were
//   replaced by their GPTQ values (GPTQ run here from block 0's one-pass Hessian), and differs
//   from the float model's;
// - the streamed path reads block 1's weights only after block 0 is collected and quantized
//   (block 0's linear weights are read twice before any block-1 weight: observe, quantize);
// - end to end, `quantize --method gptq` writes the same block-0 bytes in both modes and
//   different block-1 bytes.

import CkptCore
import Formats
import Foundation
@testable import Pipeline
import Quantize
import Testing
import TestSupport
import Transformer

/// Tensor bytes that log each read of their name.
final class LoggedBytes: ExternalBytes, @unchecked Sendable {
    let bytes: [UInt8]
    let name: String
    let log: ReadLog
    init(_ bytes: [UInt8], _ name: String, _ log: ReadLog) { (self.bytes, self.name, self.log) = (bytes, name, log) }
    var count: Int { bytes.count }
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        log.append(name)
        return try bytes.withUnsafeBytes(body)
    }
    func releaseResidentPages() {}
    var origin: String { "test" }
}

final class ReadLog: @unchecked Sendable {
    private let lock = NSLock()
    private var names: [String] = []
    func append(_ n: String) { lock.withLock { names.append(n) } }
    var all: [String] { lock.withLock { names } }
    func clear() { lock.withLock { names = [] } }
}

@Suite struct SequentialCalibrationTests {
    static func q4(_ name: String, _ shape: [Int]) -> DType? { shape.count == 2 && shape[1] % 32 == 0 ? .q4_0 : nil }

    /// A token-id calibration file: 6 lines of 20 ids.
    static func tokenFile(_ dir: TempDir, vocab: Int) throws -> String {
        var rng = SplitMix64(seed: 11)
        let lines = (0..<6).map { _ in (0..<20).map { _ in String(Int(rng.next() % UInt64(vocab))) }.joined(separator: " ") }
        let path = dir.file("calib.txt")
        try writeFile(path, Array(lines.joined(separator: "\n").utf8))
        return path
    }

    static func options(_ file: String, sequential: Bool) -> CalibrationOptions {
        var o = CalibrationOptions(file: file, method: "gptq", context: 20)
        o.sequential = sequential
        return o
    }

    static func linears(_ b: BlockSpec) -> [LinearSpec] { b.attention.linears + (b.mlp?.linears ?? []) }

    @Test(arguments: ["models/llama-base", "models/bert-a"])
    func secondBlockSeesTheQuantizedFirst(_ fixture: String) throws {
        let path = Repo.fixture(fixture)
        let graph = try Checkpoint.openModel(path)
        let description = try Transformers.describe(graph)
        #expect(description.blocks.count == 2)
        let dir = TempDir()
        let file = try Self.tokenFile(dir, vocab: try #require(description.vocabSize))
        let onePass = try Calibration.collect(graph, checkpoint: path, options: Self.options(file, sequential: false))
        let sequential = try Calibration.collect(graph, checkpoint: path, options: Self.options(file, sequential: true), target: Self.q4)
        #expect(sequential.tokens == onePass.tokens && sequential.tokens == 120)

        // Block 0: the same inputs, bit for bit.
        for l in Self.linears(description.blocks[0]) {
            let g = try #require(onePass.stats.gram(l.weightName))
            #expect(sequential.stats.gram(l.weightName) == g, "\(l.weightName)")
            #expect(sequential.stats.inputTokens[l.weightName] == onePass.stats.inputTokens[l.weightName])
        }

        // The reference: block 0 replaced by its GPTQ values, then one float pass.
        var quantizedFirst = graph
        for l in Self.linears(description.blocks[0]) where Self.q4(l.weightName, [l.outFeatures, l.inFeatures]) != nil {
            let t = try #require(graph.tensor(named: l.weightName))
            let w = try #require(try Cast.floats(t))
            let g = try #require(onePass.stats.gram(l.weightName))
            let n = Double(try #require(onePass.stats.inputTokens[l.weightName]))
            let r = try GPTQ.quantize(weight: w, rows: l.outFeatures, cols: l.inFeatures, hessian: g.map { 2 * $0 / n }, to: .q4_0,
                                      options: GPTQOptions(percdamp: 0.01, actOrder: false))
            let values = try r.bytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: .q4_0, count: w.count) }
            try quantizedFirst.replace(Tensor(name: t.name, dtype: .f32, shape: t.shape, data: .owned(values.withUnsafeBytes { Array($0) })))
        }
        let reference = try Calibration.collect(quantizedFirst, checkpoint: path, options: Self.options(file, sequential: false))
        for l in Self.linears(description.blocks[1]) {
            let want = try #require(reference.stats.gram(l.weightName))
            let got = try #require(sequential.stats.gram(l.weightName))
            let float = try #require(onePass.stats.gram(l.weightName))
            #expect(got == want, "\(fixture) \(l.weightName): block 1's Hessian is not the one from the quantized block 0")
            #expect(got != float, "\(fixture) \(l.weightName): sequential changed nothing")
        }
    }

    /// The streamed path holds one block: block 1's weights are first read after block 0 was
    /// observed and quantized (its linears read twice), never at the start as a whole-model load would.
    @Test func readsBlockByBlock() throws {
        let path = Repo.fixture("models/llama-base")
        var graph = try Checkpoint.openModel(path)
        let log = ReadLog()
        for t in graph.tensors.values {
            try graph.replace(Tensor(name: t.name, dtype: t.dtype, shape: t.shape, data: .external(LoggedBytes(try t.data.load(), t.name, log))))
        }
        let description = try Transformers.describe(graph)
        let dir = TempDir()
        let file = try Self.tokenFile(dir, vocab: try #require(description.vocabSize))
        _ = try Calibration.collect(graph, checkpoint: path, options: Self.options(file, sequential: true), target: Self.q4)
        let reads = log.all
        let block1 = Set(Self.linears(description.blocks[1]).map(\.weightName))
        let firstBlock1 = try #require(reads.firstIndex { block1.contains($0) })
        for l in Self.linears(description.blocks[0]) {
            #expect(reads[..<firstBlock1].filter { $0 == l.weightName }.count == 2, "\(l.weightName): \(reads)")
            #expect(!reads[firstBlock1...].contains(l.weightName), "block 0 read again after block 1 started")
        }
        // A whole-model load reads every weight before running anything: block 0's once.
        log.clear()
        _ = try Calibration.collect(graph, checkpoint: path, options: Self.options(file, sequential: false))
        let whole = log.all
        let w0 = Self.linears(description.blocks[0])[0].weightName
        #expect(whole.filter { $0 == w0 }.count == 1)
    }

    /// End to end: block 0's quantized bytes are the one-pass mode's, block 1's differ;
    /// `--no-sequential` (sequential false) is the one-pass mode, the GPTQ default is sequential.
    @Test func quantizeJobWritesTheSequentialBytes() throws {
        let path = Repo.fixture("models/llama-base")
        let graph = try Checkpoint.openModel(path)
        let description = try Transformers.describe(graph)
        let dir = TempDir()
        let file = try Self.tokenFile(dir, vocab: try #require(description.vocabSize))
        func run(_ sequential: Bool?, _ out: String) throws -> WeightGraph {
            var job = QuantizeJob(input: path, output: dir.file(out), scheme: "q4_0")
            (job.calibrate, job.method, job.context, job.sequential) = (file, "gptq", 20, sequential)
            _ = try job.run(progress: JobProgress())
            return try Checkpoint.open(dir.file(out)).graph
        }
        let one = try run(false, "one.ckz"), seq = try run(true, "seq.ckz"), auto = try run(nil, "auto.ckz")
        func bytes(_ g: WeightGraph, _ name: String) throws -> [UInt8] { try #require(g.tensor(named: name)).data.load() }
        for l in Self.linears(description.blocks[0]) {
            #expect(try bytes(seq, l.weightName) == bytes(one, l.weightName), "\(l.weightName)")
        }
        #expect(try Self.linears(description.blocks[1]).contains { try bytes(seq, $0.weightName) != bytes(one, $0.weightName) })
        for name in graph.tensors.keys { #expect(try bytes(auto, name) == bytes(seq, name), "\(name): default is not sequential") }
    }

    /// GPT-2's Conv1D weights are transposed to [out, in] for GGUF before GPTQ: the sequential
    /// pass quantizes them that way too and feeds block 1 the result (block 0 as one pass).
    @Test func conv1DToGGUF() throws {
        let path = Repo.fixture("models/gpt2-a")
        let graph = try Checkpoint.openModel(path)
        let description = try Transformers.describe(graph)
        let dir = TempDir()
        let file = try Self.tokenFile(dir, vocab: try #require(description.vocabSize))
        let onePass = try Calibration.collect(graph, checkpoint: path, options: Self.options(file, sequential: false))
        let sequential = try Calibration.collect(graph, checkpoint: path, options: Self.options(file, sequential: true),
                                                 target: Self.q4, ggufOutput: true)
        for l in Self.linears(description.blocks[0]) { #expect(sequential.stats.gram(l.weightName) == onePass.stats.gram(l.weightName)) }
        for l in Self.linears(description.blocks[1]) { #expect(sequential.stats.gram(l.weightName) != onePass.stats.gram(l.weightName)) }
        var job = QuantizeJob(input: path, output: dir.file("out.gguf"), scheme: "q4_0")
        (job.calibrate, job.context) = (file, 20)
        let r = try job.run(progress: JobProgress())
        let c = try #require(r.calibration)
        #expect(c.options.sequential)
        #expect(r.rows.filter { c.layer($0.name) != nil }.count == 8)
    }

    @Test func sequentialNeedsACalibrationFileAndIsNotForAWQ() throws {
        var job = QuantizeJob(input: "a", output: "b.gguf", scheme: "q4_0")
        job.sequential = true
        #expect(throws: JobError.self) { try job.validate() }
        (job.calibrate, job.method) = ("c.txt", "awq")
        #expect(throws: JobError.self) { try job.validate() }
        job.method = "imatrix"
        try job.validate()
    }
}

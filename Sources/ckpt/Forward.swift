import ArgumentParser
import CkptCore
import Formats
import Foundation
import Quantize
import Transformer

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the reference forward pass on one sequence.",
        discussion: """
            The architecture is chosen by the config's model_type: \
            \(Architectures.modelTypes.joined(separator: ", ")). Decoders give logits (a bare \
            XxxModel the last hidden state), encoders the last hidden state; seed_transformer \
            is the seed article's encoder. Weights in any float or block-quantized dtype \
            (GGUF's types, ckpt's int8/int4) are used as f32, except \(Transformers.integerProductTypes.map { $0.description.uppercased() }.joined(separator: ", ")) linear \
            weights, multiplied in integers with the activations quantized to 8 bits per block \
            of 32 as llama.cpp does (CKPT_F32_PRODUCTS=1 widens them instead). Writes \
            logits [T, V] or the last hidden state [T, C] as a float32 .npy. A stored tensor \
            the configured architecture does not read (e.g. more layers than the config says) \
            is refused unless --allow-unused. Weights are used all at once (in memory), or one \
            block at a time when the model would not fit under --max-memory (streamed; \
            --execution chooses).
            """
    )

    @Argument(help: "A checkpoint file or Hugging Face model directory.")
    var checkpoint: String

    @Option(help: "Token ids, comma-separated (e.g. 5,17,3).")
    var tokens: String?

    @Option(help: "A float32 .npy of shape [T, d_model]: input vectors for the seed encoder.")
    var input: String?

    @Option(help: "Write the output as a float32 .npy here.")
    var output: String?

    @Option(help: "PyTorch checkpoints that wrap their state_dict ({'model': sd}): its dotted key, e.g. model or state_dict.")
    var key: String?

    @Option(help: "A Hugging Face config.json to use instead of the one beside the weights.")
    var config: String?

    @Option(help: "A sentence-transformers directory: write its sentence embedding (the pooling and normalisation modules.json declares) as a float32 .npy here.")
    var embedding: String?

    @Flag(help: "Run even if the checkpoint holds tensors the configured architecture does not read.")
    var allowUnused = false

    @Option(help: "Threads for matrix products (default: all cores).")
    var threads: Int?

    @Option(help: "Run the forward pass this many times and report the median time (benchmarking).")
    var `repeat`: Int = 1

    @Flag(help: "Compute the output for the last position only ([1, V]), as llama.cpp does for a prompt; every layer still runs on all positions.")
    var lastPosition = false

    @OptionGroup var executionFlags: ExecutionFlags

    func run() throws {
        let modelInput: ModelInput
        switch (tokens, input) {
        case (let t?, nil):
            let ids = t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !ids.isEmpty, ids.allSatisfy({ Int($0) != nil }) else { throw CLIError("--tokens must be comma-separated integers, e.g. 5,17,3") }
            modelInput = .tokens(ids.map { Int($0)! })
        case (nil, let path?):
            let t = try Npy.read(path: path)
            guard t.shape.count == 2, let values = try Cast.floats(t) else {
                throw CLIError("\(path): --input must be a 2-D float array [T, d_model], got \(t.dtype) \(t.shape)")
            }
            modelInput = .vectors(values, rows: t.shape[0])
        default:
            throw CLIError("give exactly one of --tokens or --input")
        }
        if let threads { Transformers.setThreads(max(1, threads)) }

        let (opened, _) = try Checkpoint.open(checkpoint, configPath: config, key: key)
        // GGUF files use llama.cpp's names and rotary layout; the forward pass wants Hugging Face's.
        let graph: WeightGraph
        do { graph = try GGUFNaming.toHF(opened) } catch { throw FileError(path: checkpoint, error: error) }
        let out: ForwardOutput
        let architecture: String, flops: (Int) -> Double
        let start = Date()
        var loaded = start
        var times: [Double] = []
        var result: ForwardOutput?
        let chosen: Execution
        var pooling: SentencePooling?
        do {
            let description = try Transformers.describe(graph)
            // sentence-transformers directories: their pooling, read (or refused) before any work.
            var isDirectory: ObjCBool = false
            if description.outputKind == .hiddenState, FileManager.default.fileExists(atPath: checkpoint, isDirectory: &isDirectory), isDirectory.boolValue {
                do { pooling = try SentencePooling.read(directory: checkpoint) } catch { throw CLIError("\(error)") }
            }
            let estimate = Memory.estimate([description], storedBytes: [graph], sequences: 1, tokens: modelInput.length)
            chosen = try Memory.choose(try executionFlags.options(), estimate)
            architecture = description.architecture
            flops = description.flops(tokens:)
            if chosen == .inMemory {
                let model = try Transformers.load(graph, allowUnused: allowUnused)
                loaded = Date()
                for _ in 0..<max(1, self.repeat) {
                    let t0 = Date()
                    result = lastPosition ? try model.forwardLastPosition(modelInput) : try model.forward(modelInput, collectHidden: false)
                    times.append(Date().timeIntervalSince(t0))
                }
            } else {
                // Streamed: every run reads the weights again, block by block (no load step).
                let model = try StreamedModel(graph, allowUnused: allowUnused)
                loaded = Date()
                for _ in 0..<max(1, self.repeat) {
                    let t0 = Date()
                    result = try model.forward([modelInput], lastPosition: lastPosition)[0]
                    times.append(Date().timeIntervalSince(t0))
                }
            }
        } catch let e as CLIError { throw e } catch { throw FileError(path: checkpoint, error: error) }
        out = result!
        let seconds = times.sorted()[times.count / 2]

        if let output {
            try Npy.write(Npy.encode(floats: out.values, shape: [out.rows, out.cols]), to: output)
        }
        print("\(architecture): \(out.kind.rawValue) [\(out.rows), \(out.cols)]"
              + String(format: "  load %.3f s, forward %.4f s%@, %.1f tokens/s, %.1f GFLOP/s",
                       loaded.timeIntervalSince(start), seconds, times.count > 1 ? " (median of \(times.count))" : "",
                       Double(modelInput.length) / seconds,
                       flops(modelInput.length) / seconds / 1e9)
              + (lastPosition ? " (GFLOP counted with the head on every position)" : ""))
        print("execution \(chosen.rawValue), peak memory \(Memory.format(Memory.peakResident))")
        for t in 0..<min(out.rows, 8) {
            let row = out.values[t * out.cols..<(t + 1) * out.cols]
            let head = row.prefix(4).map { String(format: "%.5f", $0) }.joined(separator: ", ")
            if out.kind == .logits, let best = row.indices.max(by: { row[$0] < row[$1] }) {
                print("  [\(t)] argmax \(best - row.startIndex)  [\(head), ...]")
            } else {
                print("  [\(t)] [\(head), ...]")
            }
        }
        if out.rows > 8 { print("  ... \(out.rows - 8) more rows") }
        // sentence-transformers directories: the pooled (and normalised) sentence embedding.
        if out.kind == .hiddenState, let pooling {
            let e = pooling.embed(out.values, rows: out.rows, cols: out.cols)
            let head = e.prefix(4).map { String(format: "%.5f", $0) }.joined(separator: ", ")
            print("  sentence embedding [\(e.count)] (\(pooling.modes.map(\.rawValue).joined(separator: "+"))\(pooling.normalize ? ", normalised" : "")): [\(head), ...]")
            if let embedding { try Npy.write(Npy.encode(floats: e, shape: [e.count]), to: embedding) }
        } else if embedding != nil {
            throw CLIError("--embedding needs a sentence-transformers directory (modules.json with a Pooling module) of an encoder")
        }
    }
}

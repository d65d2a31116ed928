import ArgumentParser
import CkptCore
import Formats
import Foundation
import Quantize

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint between formats, losslessly unless --dtype is given.",
        discussion: """
            The output format follows OUT's extension (.safetensors) or --to. OUT is a \
            Hugging Face model directory (shards, index, config.json) when it ends in '/', \
            is an existing directory, or --max-shard-size is given. Tensors are streamed one \
            at a time; the output appears only when complete.
            """
    )

    @Argument(help: "Input checkpoint file or Hugging Face model directory.")
    var input: String

    @Argument(help: "Output file or directory.")
    var output: String

    @Option(help: "Output format: safetensors, gguf, npz, npy (default: from OUT's extension).")
    var to: String?

    @Option(help: "A Hugging Face config.json to use instead of the one beside the input.")
    var config: String?

    @Option(help: "Write shards of at most this size (e.g. 5GB, 500MB, 2GiB) plus an index.")
    var maxShardSize: String?

    @Option(help: "Cast floating-point tensors to f32, f16 or bf16 (round to nearest even).")
    var dtype: String?

    @Flag(help: "Dequantize block-quantized tensors to f32 (otherwise they stay quantized where the output can hold them: .gguf, .ckz).")
    var dequantize = false

    @Flag(help: ".npz output: deflate the members (like numpy.savez_compressed).")
    var deflate = false

    @Flag(help: "No progress bar.")
    var quiet = false

    func run() throws {
        let shardSize = try maxShardSize.map { try Checkpoint.parseSize($0) }
        var castTarget: DType?
        if let dtype {
            guard let d = DType(rawValue: dtype.lowercased()), Cast.supportedTargets.contains(d) else {
                throw CLIError("--dtype must be one of: \(Cast.supportedTargets.map(\.rawValue).joined(separator: ", "))")
            }
            castTarget = d
        }
        let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: to, maxShardSize: shardSize)
        var (graph, _) = try Checkpoint.open(input, configPath: config)

        if let castTarget {
            for t in graph.tensors.values where Cast.applies(to: t, target: castTarget) {
                try graph.replace(Cast.lazyCast(t, to: castTarget))
            }
            if var c = graph.config, c["torch_dtype"] != nil || c["dtype"] != nil {
                let name = ["f32": "float32", "f16": "float16", "bf16": "bfloat16"][castTarget.rawValue]!
                for key in ["torch_dtype", "dtype"] where c.json[key] != nil { c.json[key] = .string(name) }
                graph.config = c
            }
        }

        // Quantized tensors stay quantized where the output can hold them; otherwise they are
        // dequantized to f32, with a notice (or silently when --dequantize asked for it).
        if dequantize {
            for t in graph.tensors.values where t.dtype.isQuantized { try graph.replace(t.dequantizedLazily()) }
        }
        let lost = Checkpoint.tensorsNeedingDequantization(graph, for: format)
        if !lost.isEmpty {
            FileHandle.standardError.write(Data("ckpt: notice: \(format) cannot hold block-quantized tensors; \(lost.count) tensor(s) (\(lost.prefix(3).joined(separator: ", "))\(lost.count > 3 ? ", ..." : "")) written as f32 — write .gguf or .ckz to keep them quantized\n".utf8))
        }
        let progress = ProgressBar.make(total: graph.byteCount, label: "convert", quiet: quiet)
        try Checkpoint.write(graph, to: output, format: format, directory: directory,
                             options: .init(maxShardSize: shardSize, progress: progress, dequantize: true, deflate: deflate))
        progress?.finish()
    }
}

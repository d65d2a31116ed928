import ArgumentParser
import CkptCore
import Formats
import Pipeline
import Quantize

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint between formats, losslessly unless --dtype is given.",
        discussion: """
            The output format follows OUT's extension (.safetensors, .h5, .hdf5) or --to. OUT is a \
            Hugging Face model directory (shards, index, config.json) when it ends in '/', \
            is an existing directory, or --max-shard-size is given. Tensors are streamed one \
            at a time; the output appears only when complete.
            """
    )

    @Argument(help: "Input checkpoint file or Hugging Face model directory.")
    var input: String

    @Argument(help: "Output file or directory.")
    var output: String

    @Option(help: "Output format: safetensors or hdf5 (default: from OUT's extension, .safetensors, .h5, .hdf5).")
    var to: String?

    @Option(help: "A Hugging Face config.json to use instead of the one beside the input.")
    var config: String?

    @Option(help: "Write shards of at most this size (e.g. 5GB, 500MB, 2GiB) plus an index.")
    var maxShardSize: String?

    @Option(help: "Cast floating-point tensors to f32, f16 or bf16 (round to nearest even).")
    var dtype: String?

    @Option(help: "HDF5 output: chunked datasets, byte shuffle and deflate: gzip or gzip=LEVEL (0-9, default 4).")
    var compression: String?

    @Flag(help: "No progress bar.")
    var quiet = false

    func run() throws {
        let shardSize = try maxShardSize.map { try Checkpoint.parseSize($0) }
        var castTarget: DType?
        if let dtype {
            guard let d = Conversion.castTarget(dtype) else {
                throw CLIError("--dtype must be one of: \(Cast.supportedTargets.map(\.rawValue).joined(separator: ", "))")
            }
            castTarget = d
        }
        var hdf5 = HDF5WriteOptions()
        if let compression {
            let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: to, maxShardSize: shardSize)
            guard format == .hdf5, !directory else { throw CLIError("--compression applies to HDF5 output only") }
            do { hdf5 = try HDF5WriteOptions.parse(compression: compression) } catch { throw CLIError(error.description) }
        }
        let progress = ProgressBar.make(label: "convert", quiet: quiet)
        try Conversion.convert(input, to: output, options: .init(to: to, dtype: castTarget, maxShardSize: shardSize,
                                                                config: config, progress: progress, hdf5: hdf5))
        progress?.finish()
    }
}

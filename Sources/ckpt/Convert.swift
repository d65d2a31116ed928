import ArgumentParser
import CkptCore
import Formats
import Foundation
import Pipeline
import Quantize

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint between formats, losslessly unless --dtype is given.",
        discussion: """
            The output format follows OUT's extension (\(FormatRegistry.standard.writableExtensions)) or --to. OUT is a \
            Hugging Face model directory (shards, index, config.json) when it ends in '/', \
            is an existing directory, or --max-shard-size is given; a directory output also \
            gets every non-weight file of an input model directory (tokenizer, generation \
            config, ...). A single-file output carries the model config inside it. Tensors are \
            streamed one at a time; the output appears only when complete.
            """
    )

    @Argument(help: "Input checkpoint file or Hugging Face model directory.")
    var input: String

    @Argument(help: "Output file or directory.")
    var output: String

    @Option(help: ArgumentHelp("Output format: \(FormatRegistry.standard.writableNames) (default: from OUT's extension)."))
    var to: String?

    @Option(help: "PyTorch checkpoints that wrap their state_dict ({'model': sd}): its dotted key, e.g. model or state_dict.")
    var key: String?

    @Option(help: "A Hugging Face config.json to use instead of the one beside the input.")
    var config: String?

    @Option(help: "Write shards of at most this size (e.g. 5GB, 500MB, 2GiB) plus an index.")
    var maxShardSize: String?

    @Option(help: "Cast floating-point tensors (f8 included, widened exactly) to f32, f16 or bf16 (round to nearest even); integer and bool tensors too when the output format cannot hold them.")
    var dtype: String?

    @Option(help: "HDF5 output: chunked datasets, byte shuffle and deflate: gzip or gzip=LEVEL (0-9, default 4).")
    var compression: String?

    @Option(help: "Compression level for .ckz output, 0 (store) to 9 (smallest, slowest); default 2.")
    var level: Int?

    @Option(help: "Threads for compressing and decompressing .ckz chunks (default: all cores). The output does not depend on it.")
    var jobs: Int?

    @Flag(help: "Dequantize block-quantized tensors to f32 (otherwise they stay quantized where the output can hold them: .gguf, .ckz).")
    var dequantize = false

    @Flag(help: ".npz output: deflate the members (like numpy.savez_compressed).")
    var deflate = false

    @Option(help: "Leave out tensors whose name matches this regular expression (repeatable).")
    var exclude: [String] = []

    @Flag(help: "Single-file output: also write the model config as config.json beside it (it always travels inside the file too).")
    var writeConfig = false

    @Flag(help: "No progress bar.")
    var quiet = false

    /// The job these flags describe.
    var job: ConvertJob {
        var job = ConvertJob(input: input, output: output)
        (job.to, job.key, job.config, job.maxShardSize, job.dtype) = (to, key, config, maxShardSize.map { ByteSize($0) }, dtype)
        (job.compression, job.level, job.jobs) = (compression, level, jobs)
        (job.dequantize, job.deflate, job.exclude, job.writeConfig) = (dequantize, deflate, exclude, writeConfig)
        return job
    }

    func run() throws {
        let progress = ProgressBar.make(label: "convert", quiet: quiet)
        let report = try job.run(progress: .cli(quiet: quiet, bytes: progress))
        progress?.finish()
        for line in report.logLines { print(line) }
    }
}

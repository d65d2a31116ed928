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
            The output format follows OUT's extension (.safetensors, .h5, .hdf5, .ckz) or --to. OUT is a \
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

    @Option(help: "Output format: safetensors, hdf5, ckz, gguf, npz, npy (default: from OUT's extension).")
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

    func run() throws {
        let shardSize = try maxShardSize.map { try Checkpoint.parseSize($0) }
        var castTarget: DType?
        if let dtype {
            guard let d = Conversion.castTarget(dtype) else {
                throw CLIError("--dtype must be one of: \(Cast.supportedTargets.map(\.rawValue).joined(separator: ", "))")
            }
            castTarget = d
        }
        if let jobs, jobs < 1 { throw CLIError("--jobs must be at least 1") }
        let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: to, maxShardSize: shardSize)
        var hdf5 = HDF5WriteOptions(jobs: jobs)
        if let compression {
            guard format == .hdf5, !directory else { throw CLIError("--compression applies to HDF5 output only") }
            do { hdf5 = try HDF5WriteOptions.parse(compression: compression) } catch { throw CLIError(error.description) }
            hdf5.jobs = HDF5WriteOptions(jobs: jobs).jobs
        }
        var ckzLevel = CKZ.Level.default
        if let level {
            guard let l = CKZ.Level(level) else { throw CLIError("--level must be in 0...9") }
            guard format == .ckz else { throw CLIError("--level applies to .ckz output only") }
            ckzLevel = l
        }
        var ckzOptions = CKZ.WriteOptions(level: ckzLevel, jobs: jobs)
        if format == .ckz {
            // Hashed on another thread while the chunks are encoded.
            let (files, recipe) = provenanceInputs(level: ckzLevel)
            ckzOptions.pendingProvenance = CKZ.Provenance.Pending {
                CKZ.Provenance(writer: "ckpt \(Ckpt.version)", recipe: recipe, sources: try files.map(CKZ.Provenance.source))
            }
        }
        let progress = ProgressBar.make(label: "convert", quiet: quiet)
        var options = ConvertOptions(to: to, dtype: castTarget, maxShardSize: shardSize,
                                     config: config, progress: progress, hdf5: hdf5,
                                     ckz: ckzOptions, jobs: jobs, dequantize: dequantize,
                                     deflate: deflate, notice: { line in
            FileHandle.standardError.write(Data("ckpt: notice: \(line)\n".utf8))
        })
        options.exclude = exclude
        options.key = key
        options.configBeside = writeConfig
        let summary = try Conversion.convert(input, to: output, options: options)
        progress?.finish()
        for line in summary.lines(input: input) { print(line) }
    }
}

extension Convert {
    /// What a .ckz records about its making: the files read (base name, size, SHA-256) and
    /// the options that shape the output (the files and the recipe string; hashed later). Not --jobs, --quiet or paths: the same input and
    /// options must give the same bytes wherever and however fast they run.
    func provenanceInputs(level: CKZ.Level) -> (files: [String], recipe: String) {
        var files: [String] = []
        var isDir: ObjCBool = false
        let configDir: String
        if FileManager.default.fileExists(atPath: input, isDirectory: &isDir), isDir.boolValue {
            files = ((try? FileManager.default.contentsOfDirectory(atPath: input)) ?? [])
                .filter { $0.hasSuffix(".safetensors") || $0 == "model.safetensors.index.json" }
                .sorted().map { input + "/" + $0 }
            configDir = input
        } else {
            files = [input]
            configDir = URL(fileURLWithPath: input).deletingLastPathComponent().path
        }
        let besideConfig = configDir + "/config.json"
        if let config {
            files.append(config)
        } else if FileManager.default.fileExists(atPath: besideConfig) {
            files.append(besideConfig)  // it wins over a config embedded in the input
        }
        var recipe = "convert --level \(level.value)"
        if let dtype { recipe += " --dtype \(dtype.lowercased())" }
        return (files, recipe)
    }
}

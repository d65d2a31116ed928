// `ckpt convert` and the pipeline's convert step.

import CkptCore
import Foundation
import Formats
import Quantize

/// Converts a checkpoint between formats, losslessly unless `dtype` is given.
public struct ConvertJob: Job {
    public static let name = "convert"
    /// Input checkpoint file or model directory.
    public var input = ""
    /// Output file or directory ("name/": a model directory).
    public var output = ""
    /// Output format (default: from the output's extension).
    public var to: String?
    /// PyTorch checkpoints that wrap their state_dict: its dotted key.
    public var key: String?
    /// A config.json to use instead of the one beside the input.
    public var config: String?
    /// Write shards of at most this size plus an index.
    public var maxShardSize: ByteSize?
    /// Cast floating-point tensors to f32, f16 or bf16.
    public var dtype: String?
    /// HDF5 output: gzip or gzip=LEVEL.
    public var compression: String?
    /// .ckz output: compression level 0...9 (default 2).
    public var level: Int?
    /// Threads for compressing and decompressing (default: all cores).
    public var jobs: Int?
    /// Dequantize block-quantized tensors to f32.
    public var dequantize = false
    /// .npz output: deflate the members.
    public var deflate = false
    /// Leave out tensors whose name matches these regular expressions.
    public var exclude: [String] = []
    /// Single-file output: also write config.json beside it.
    public var writeConfig = false

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case input, output, to, key, config, maxShardSize = "max_shard_size", dtype, compression, level, jobs
        case dequantize, deflate, exclude, writeConfig = "write_config"
    }
    public static let requiredKeys: [CodingKeys] = [.input, .output]
    public static let inputKeys: [CodingKeys] = [.input, .config]
    public static let outputKeys: [CodingKeys] = [.output]

    public init() {}
    public init(input: String, output: String) {
        self.input = input
        self.output = output
    }

    public struct Report: JobReport {
        public var summary: ConversionSummary
        public var input: String
        public func json() -> JSONValue {
            .object(["excluded": .array(summary.excluded.map { .string($0) }),
                     "cast_for_format": .array(summary.castForFormat.map { .string($0) }),
                     "carried": .array(summary.carried.map { .string($0) })])
        }
        public var passed: Bool { true }
        public var logLines: [String] { summary.lines(input: input) }
    }

    func castTarget() throws -> DType? {
        guard let dtype else { return nil }
        guard let d = Conversion.castTarget(dtype) else {
            throw JobError("dtype", "must be one of: \(Cast.supportedTargets.map(\.rawValue).joined(separator: ", "))")
        }
        return d
    }

    public func validate() throws {
        _ = try castTarget()
        _ = try maxShardSize?.bytes(key: "max_shard_size")
        if let jobs, jobs < 1 { throw JobError("jobs", "must be at least 1") }
        if let level, CKZ.Level(level) == nil { throw JobError("level", "must be in 0...9") }
        if let compression { do { _ = try HDF5WriteOptions.parse(compression: compression) } catch { throw JobError(nil, "\(error)") } }
    }

    public func run(progress: JobProgress) throws -> Report {
        try validate()
        let shardSize = try maxShardSize?.bytes(key: "max_shard_size")
        let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: to, maxShardSize: shardSize)
        var hdf5 = HDF5WriteOptions(jobs: jobs)
        if let compression {
            guard format == .hdf5, !directory else { throw JobError("compression", "applies to HDF5 output only") }
            hdf5 = try HDF5WriteOptions.parse(compression: compression)
            hdf5.jobs = HDF5WriteOptions(jobs: jobs).jobs
        }
        var ckzLevel = CKZ.Level.default
        if let level, let l = CKZ.Level(level) {
            guard format == .ckz else { throw JobError("level", "applies to .ckz output only") }
            ckzLevel = l
        }
        var ckz = CKZ.WriteOptions(level: ckzLevel, jobs: jobs)
        if format == .ckz {
            // Hashed on another thread while the chunks are encoded.
            let (files, recipe) = provenanceInputs(level: ckzLevel)
            ckz.pendingProvenance = CKZ.Provenance.Pending {
                CKZ.Provenance(writer: "ckpt \(CkptInfo.version)", recipe: recipe, sources: try files.map(CKZ.Provenance.source))
            }
        }
        var options = ConvertOptions(to: to, dtype: try castTarget(), maxShardSize: shardSize, config: config,
                                     progress: progress.bytes, hdf5: hdf5, ckz: ckz, jobs: jobs, dequantize: dequantize,
                                     deflate: deflate, notice: progress.notice)
        options.exclude = exclude
        options.key = key
        options.configBeside = writeConfig
        let summary = try Conversion.convert(input, to: output, options: options)
        return Report(summary: summary, input: progress.displayPath(input))
    }

    /// What a .ckz records about its making: the files read (base name, size, SHA-256) and
    /// the options that shape the output (the files are hashed later, beside the encoder).
    /// Not `jobs` or paths: the same input and options must give the same bytes wherever and
    /// however fast they run.
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

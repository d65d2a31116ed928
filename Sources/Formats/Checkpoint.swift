// Checkpoint: opening any supported input and writing any supported output.
//
// Input formats are detected from the file's structure (extensions lie); outputs are
// chosen by extension or `--to`. A directory is a Hugging Face model directory: sharded
// safetensors with an index, or a single `model.safetensors`, with `config.json` beside.
// Which formats exist, and how each is read and written, is FormatRegistry's list.

import CkptCore
import Quantize
import Foundation

public enum CheckpointError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownFormat
    case notSupportedYet(CheckpointFormat, reading: Bool)
    case noCheckpointInDirectory(found: [String])
    case cannotChooseOutputFormat
    case unknownOutputFormat(String, writable: String)
    case invalidShardSize(String)
    case singleFileFormat(CheckpointFormat)
    case cannotHold(CheckpointFormat, tensor: String, dtype: DType)
    case npyNeedsOneTensor(Int)
    case torchScript
    case configBesideDirectory
    case keyNeedsPyTorch(CheckpointFormat)
    case noConfigToWrite
    case differentConfigBeside

    public var description: String {
        switch self {
        case .unknownFormat:
            return "not a checkpoint format ckpt recognises (\(FormatRegistry.standard.readableDisplayNames))"
        case .notSupportedYet(let f, let reading):
            return "\(reading ? "reading" : "writing") \(f) is not supported yet"
        case .noCheckpointInDirectory(let found):
            if found.isEmpty { return "directory holds no model.safetensors, pytorch_model.bin, index or *.safetensors file" }
            return "directory holds several safetensors files (\(found.joined(separator: ", "))) but no \(ShardedSafetensors.indexName)"
        case .cannotChooseOutputFormat:
            return "cannot tell the output format from the name; use --to FORMAT (one of: \(FormatRegistry.standard.writableNames))"
        case .unknownOutputFormat(let name, let writable):
            return "unknown output format \"\(name)\" (one of: \(writable))"
        case .invalidShardSize(let s):
            return "invalid shard size \"\(s)\" (examples: 5GB, 500MB, 2GiB, 1000000)"
        case .singleFileFormat(let f):
            return "\(f) output is a single file: give a file name, without --max-shard-size"
        case .cannotHold(let f, let t, let d):
            let hint = d.isQuantized ? "write .gguf (GGUF types) or .ckz to keep it quantized, or pass --dequantize for f32"
                : Cast.canCast(d) ? "cast it with --dtype f32 (or f16, bf16), or leave it out with --exclude" : "leave it out with --exclude"
            return "tensor `\(t)`: \(f) cannot hold \(d); \(hint)"
        case .npyNeedsOneTensor(let n):
            return ".npy holds one array, the checkpoint has \(n) tensors; write .npz"
        case .keyNeedsPyTorch(let f):
            return "--key picks the state_dict inside a PyTorch pickle; this is \(f)"
        case .configBesideDirectory:
            return "--write-config applies to single-file outputs (a directory output always gets config.json)"
        case .noConfigToWrite:
            return "no model config to write beside the output (give one with --config)"
        case .differentConfigBeside:
            return "exists and holds a different config; not replaced (write the output elsewhere)"
        case .torchScript:
            return "a TorchScript archive (torch.jit.save), not a state_dict: in Python, torch.save(torch.jit.load(PATH).state_dict(), \"model.pt\") and convert that"
        }
    }
}

public enum Checkpoint {
    /// Identifies a file by its structure: each format's sniff (FormatRegistry) checks what
    /// a file of that format must hold, so one format's magic byte never claims a valid file
    /// of another. Only when no format's structure matches do weaker hints decide (a lone
    /// pickle opcode, the extension), so that the reader can say precisely what is wrong.
    public static func detectFormat(path: String) throws -> CheckpointFormat {
        try FormatRegistry.standard.detectFormat(path: path)
    }

    /// Opens a checkpoint file or Hugging Face model directory. Tensors are not read until
    /// used. The model config comes from `configPath`, else a `config.json` beside the
    /// weights (or inside the directory).
    /// `jobs` bounds the threads that decode compressed (.ckz) tensors; nil = all cores.
    /// `key`: for PyTorch checkpoints that wrap their state_dict, the dotted path to it.
    /// - Parameters:
    ///   - path: A checkpoint file (any readable format, detected from its bytes) or a model directory.
    ///   - configPath: A Hugging Face `config.json` to use instead of the one beside the weights.
    ///   - jobs: Threads for decoding compressed tensors; nil uses every core.
    ///   - key: PyTorch only: the dotted path to a wrapped state_dict (`"model"`, `"state_dict"`).
    /// - Returns: The weight graph (tensors read lazily) and the format that was detected.
    /// - Throws: `IOError` when the path cannot be read, `FileError` naming the file and the problem
    ///   when its contents are malformed or unsupported.
    public static func open(_ path: String, configPath: String? = nil, jobs: Int? = nil, key: String? = nil) throws -> (graph: WeightGraph, format: CheckpointFormat) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw IOError.cannotOpen(path: path, errno: ENOENT)
        }
        let registry = FormatRegistry.standard, options = ReadOptions(jobs: jobs, key: key)
        var graph: WeightGraph
        let format: CheckpointFormat
        let configDir: String
        if isDir.boolValue {
            (graph, format) = try registry.readDirectory(path, options: options)
            configDir = path
        } else {
            try RegularFile.check(path)  // a FIFO or device would block or never end
            format = try registry.detectFormat(path: path)
            graph = try registry.read(path, format: format, options: options)
            configDir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        }
        // The config: --config, else a config.json beside the weights (or in the directory),
        // else the one the file carries (safetensors metadata, .npz member, HDF5 attribute,
        // .ckz index, GGUF keys), so a config beside a file can correct an embedded one.
        if key != nil, !format.handler.acceptsStateDictKey { throw FileError(path: path, error: CheckpointError.keyNeedsPyTorch(format)) }
        let configFile = configPath ?? configDir + "/config.json"
        if configPath != nil || FileManager.default.fileExists(atPath: configFile) {
            graph.config = try readConfig(configFile)
        }
        graph.applyConfigTies()
        return (graph, format)
    }

    /// Opens a checkpoint for the forward pass: as `open`, with GGUF files' llama.cpp names
    /// and layouts mapped back to Hugging Face's.
    public static func openModel(_ path: String, configPath: String? = nil, key: String? = nil) throws -> WeightGraph {
        let graph = try open(path, configPath: configPath, key: key).graph
        do { return try GGUFNaming.toHF(graph) } catch { throw FileError(path: path, error: error) }
    }

    public static func readConfig(_ path: String) throws -> ModelConfig {
        let file = try MappedFile(path: path)
        // Configs are a few kB; a cap keeps a hostile one from costing much.
        guard file.count <= 16 << 20 else { throw FileError(path: path, error: CoreError.invalidConfig("larger than 16 MiB")) }
        do { return try ModelConfig(jsonBytes: file.withBytes { Array($0) }) } catch {
            throw FileError(path: path, error: error)
        }
    }

    // MARK: Writing

    public struct WriteOptions: Sendable {
        /// Split into shards of at most this many bytes (directory output).
        public var maxShardSize: Int?
        public var progress: (any ProgressSink)?
        /// HDF5 output: compression (`--compression gzip[=LEVEL]`).
        public var hdf5: HDF5WriteOptions
        /// Level, threads and provenance for .ckz output.
        public var ckz: CKZ.WriteOptions
        /// Block-quantized tensors the output format cannot hold become f32 (else an error).
        public var dequantize: Bool
        /// .npz: deflate members (numpy.savez_compressed) instead of storing them.
        public var deflate: Bool
        /// Single-file output: also write the config as `config.json` beside it.
        public var configBeside: Bool
        /// Directory output: the model directory whose other files (tokenizer, generation
        /// config, sentence-transformers modules ...) are copied in, byte for byte.
        public var companionsFrom: String?
        /// GGUF output: the model directory whose tokenizer becomes tokenizer.ggml.* keys
        /// (GGUFTokenizer), unless the graph already has them.
        public var tokenizerFrom: String? = nil
        public init(maxShardSize: Int? = nil, progress: (any ProgressSink)? = nil, hdf5: HDF5WriteOptions = .init(),
                    ckz: CKZ.WriteOptions = .init(), dequantize: Bool = false, deflate: Bool = false,
                    configBeside: Bool = false, companionsFrom: String? = nil, tokenizerFrom: String? = nil) {
            self.tokenizerFrom = tokenizerFrom
            self.configBeside = configBeside
            self.companionsFrom = companionsFrom
            self.maxShardSize = maxShardSize
            self.progress = progress
            self.hdf5 = hdf5
            self.ckz = ckz
            self.dequantize = dequantize
            self.deflate = deflate
        }
    }

    /// The graph as it will be written in `format`: GGUF-named LLaMA/GPT-2 graphs get their
    /// Hugging Face names back for the other formats; block-quantized tensors the format
    /// cannot hold are dequantized to f32 when `dequantize` is set, an error otherwise.
    public static func prepare(_ graph: WeightGraph, for format: CheckpointFormat, dequantize: Bool) throws -> WeightGraph {
        var g = format.handler.keepsLlamaCppNames ? graph : try GGUFNaming.toHF(graph)
        for t in g.tensors.values where !format.canHold(t.dtype) {
            guard t.dtype.isQuantized, dequantize else { throw CheckpointError.cannotHold(format, tensor: t.name, dtype: t.dtype) }
            try g.replace(t.dequantizedLazily())
        }
        return g
    }

    /// Names of the block-quantized tensors `format` cannot hold (for the CLI's notice).
    public static func tensorsNeedingDequantization(_ graph: WeightGraph, for format: CheckpointFormat) -> [String] {
        graph.tensors.values.filter { $0.dtype.isQuantized && !format.canHold($0.dtype) }.map(\.name)
    }

    /// Where and how an output goes: a directory (Hugging Face layout) or a single file.
    public static func outputFormat(for path: String, explicit: String?, maxShardSize: Int?) throws -> (format: CheckpointFormat, directory: Bool) {
        try FormatRegistry.standard.outputFormat(for: path, explicit: explicit, maxShardSize: maxShardSize)
    }

    /// Writes `graph` to `path` in `format`, atomically: the output appears complete or not at all.
    /// - Parameters:
    ///   - graph: The tensors (and config, metadata) to write; lazily quantized tensors are computed as written.
    ///   - path: The output file, or the model directory when `directory` is true.
    ///   - format: A writable format (``CheckpointFormat/isWritable``); ``outputFormat(for:explicit:maxShardSize:)``
    ///     chooses one from the path.
    ///   - directory: Write a Hugging Face model directory (sharded safetensors + config.json).
    ///   - options: Sharding, compression, progress, and whether to dequantize what the format cannot hold.
    /// - Throws: `FileError` naming the output (a dtype the format cannot hold, a write error).
    public static func write(_ graph: WeightGraph, to path: String, format: CheckpointFormat, directory: Bool, options: WriteOptions = .init()) throws {
        let target = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        let graph = try FormatRegistry.naming(target) { try prepare(graph, for: format, dequantize: options.dequantize) }
        let besideConfig = URL(fileURLWithPath: target).deletingLastPathComponent().path + "/config.json"
        if options.configBeside {
            // Checked before any work: the config must exist, and an existing config.json
            // beside the output (another model's?) is not replaced by a different one.
            guard !directory else { throw FileError(path: target, error: CheckpointError.configBesideDirectory) }
            guard let config = graph.config else { throw FileError(path: target, error: CheckpointError.noConfigToWrite) }
            if let existing = try? readConfig(besideConfig), existing.json != config.json {
                throw FileError(path: besideConfig, error: CheckpointError.differentConfigBeside)
            }
        }
        try FormatRegistry.standard.write(graph, to: target, format: format, directory: directory, options: options)
        if options.configBeside, let config = graph.config, (try? readConfig(besideConfig))?.json != config.json {
            var f = try AtomicFile(target: besideConfig)
            try f.write(config.serialized())
            try f.commit()
        }
    }

    /// Parses a shard size as Hugging Face does: "5GB" = 5·10⁹, "5GiB" = 5·2³⁰, plain bytes.
    public static func parseSize(_ text: String) throws -> Int {
        let s = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [("GIB", 1_073_741_824), ("MIB", 1_048_576), ("KIB", 1024),
                                         ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            guard let v = Double(s.dropLast(suffix.count)), v > 0, v * scale < 9e18 else { break }
            return Int(v * scale)
        }
        if let v = Int(s), v > 0 { return v }
        throw CheckpointError.invalidShardSize(text)
    }
}

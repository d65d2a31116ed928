// Checkpoint: opening any supported input and writing any supported output.
//
// Input formats are detected from the file's first bytes (extensions lie); outputs are
// chosen by extension or `--to`. A directory is a Hugging Face model directory: sharded
// safetensors with an index, or a single `model.safetensors`, with `config.json` beside.

import CkptCore
import Quantize
import Foundation

public enum CheckpointFormat: String, Sendable, CaseIterable, CustomStringConvertible {
    case safetensors, hdf5, ckz, gguf, npz, npy, pytorch
    /// Keras 3's `.keras` archive (read: the weights file inside).
    case keras
    /// A TorchScript archive (`torch.jit.save`): recognised to say what it is, not read.
    case torchscript

    public var description: String { rawValue }

    /// Formats ckpt can read and write today. The others are recognised so the error can
    /// say what the file is.
    public var isReadable: Bool { [.safetensors, .hdf5, .ckz, .gguf, .npz, .npy, .pytorch, .keras].contains(self) }
    public var isWritable: Bool { [.safetensors, .hdf5, .ckz, .gguf, .npz, .npy].contains(self) }

    /// Whether files of this format can hold tensors of `dtype` as they are (HDF5 and .ckz
    /// hold every dtype, block-quantized ones as their bytes).
    public func canHold(_ dtype: DType) -> Bool {
        switch self {
        case .safetensors: return SafetensorsDType.name(dtype) != nil
        case .gguf: return GGUF.canHold(dtype)
        case .npz, .npy: return Npy.descrs.contains { $0.1 == dtype }
        default: return true
        }
    }

    /// The output format an extension implies.
    public static func forExtension(_ ext: String) -> CheckpointFormat? {
        switch ext.lowercased() {
        case "safetensors": return .safetensors
        // Not ".keras": Keras 3's .keras files are zip archives, not HDF5.
        case "h5", "hdf5": return .hdf5
        case "ckz": return .ckz
        case "gguf": return .gguf
        case "npz": return .npz
        case "npy": return .npy
        case "bin", "pt", "pth": return .pytorch
        default: return nil
        }
    }
}

public enum CheckpointError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownFormat
    case notSupportedYet(CheckpointFormat, reading: Bool)
    case noCheckpointInDirectory(found: [String])
    case cannotChooseOutputFormat
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
            return "not a checkpoint format ckpt recognises (safetensors, HDF5, GGUF, .ckz, NumPy, PyTorch)"
        case .notSupportedYet(let f, let reading):
            return "\(reading ? "reading" : "writing") \(f) is not supported yet"
        case .noCheckpointInDirectory(let found):
            if found.isEmpty { return "directory holds no model.safetensors, pytorch_model.bin, index or *.safetensors file" }
            return "directory holds several safetensors files (\(found.joined(separator: ", "))) but no \(ShardedSafetensors.indexName)"
        case .cannotChooseOutputFormat:
            return "cannot tell the output format from the name; use --to FORMAT"
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
    /// Identifies a file by its structure. Each format's `sniff` checks what a file of
    /// that format must hold (safetensors: an 8-byte length, `{`, and a header that closes
    /// inside the file; a torch.save legacy file: the pickled magic number; a zip: its
    /// members), so one format's magic byte never claims a valid file of another.
    /// Only when no format's structure matches do weaker hints decide (a lone pickle opcode,
    /// the extension), so that the reader can say precisely what is wrong.
    public static func detectFormat(path: String) throws -> CheckpointFormat {
        let probe = try FormatProbe(path: path)
        for format in CheckpointFormat.detectionOrder where format.sniff(probe) { return format }
        // A zip we could not classify: the extension chooses the reader that explains it.
        if probe.isZip {
            if probe.hasExtension("npz") { return .npz }
            if probe.hasExtension("keras") { return .keras }
            return .pytorch
        }
        // An 8-byte length and '{' whose header does not hold together (truncated, say),
        // or a .safetensors name: the safetensors reader says what is wrong.
        if probe.hasExtension("safetensors") || probe.byte(at: 8) == UInt8(ascii: "{") { return .safetensors }
        if probe.head.first == 0x80 { return .pytorch }  // some other pickle: PyTorch's reader says what it is
        throw FileError(path: path, error: CheckpointError.unknownFormat)
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
        var graph: WeightGraph
        let format: CheckpointFormat
        let configDir: String
        if isDir.boolValue {
            (graph, format) = try openDirectory(path, key: key)
            configDir = path
        } else {
            try RegularFile.check(path)  // a FIFO or device would block or never end
            format = try detectFormat(path: path)
            if format == .torchscript { throw FileError(path: path, error: CheckpointError.torchScript) }
            guard format.isReadable else { throw FileError(path: path, error: CheckpointError.notSupportedYet(format, reading: true)) }
            graph = try readFile(path, format: format, jobs: jobs, key: key)
            configDir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        }
        // The config: --config, else a config.json beside the weights (or in the directory),
        // else the one the file carries (safetensors metadata, .npz member, HDF5 attribute,
        // .ckz index, GGUF keys), so a config beside a file can correct an embedded one.
        if key != nil, format != .pytorch { throw FileError(path: path, error: CheckpointError.keyNeedsPyTorch(format)) }
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

    static func readFile(_ path: String, format: CheckpointFormat, jobs: Int? = nil, key: String? = nil) throws -> WeightGraph {
        switch format {
        case .ckz:
            return try CKZ.read(path: path, jobs: jobs)
        case .safetensors:
            do { return try Safetensors.read(path: path) } catch let e as IOError { throw e } catch {
                throw FileError(path: path, error: error)
            }
        case .hdf5:
            do { return try HDF5.read(path: path) } catch let e as IOError { throw e } catch {
                throw FileError(path: path, error: error)
            }
        case .gguf:
            do { return try GGUF.read(path: path) } catch let e as IOError { throw e } catch {
                throw FileError(path: path, error: error)
            }
        case .npz:
            return try Npz.read(path: path)
        case .npy:
            let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            var g = WeightGraph()
            try g.add(Npy.read(path: path, name: name))
            return g
        case .pytorch:
            do { return try PyTorch.read(path: path, key: key) } catch let e as IOError { throw e } catch {
                throw FileError(path: path, error: error)
            }
        case .keras:
            return try Keras.read(path: path)
        case .torchscript:
            throw FileError(path: path, error: CheckpointError.torchScript)
        }
    }

    /// A Hugging Face model directory: safetensors first (as transformers prefers them),
    /// then PyTorch's `pytorch_model.bin` (sharded with an index, or single).
    static func openDirectory(_ dir: String, key: String? = nil) throws -> (WeightGraph, CheckpointFormat) {
        let fm = FileManager.default
        let index = dir + "/" + ShardedSafetensors.indexName
        if fm.fileExists(atPath: index) { return (try ShardedSafetensors.read(indexPath: index), .safetensors) }
        let single = dir + "/" + ShardedSafetensors.singleName
        if fm.fileExists(atPath: single) { return (try readFile(single, format: .safetensors), .safetensors) }
        let found = ((try? fm.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasSuffix(".safetensors") }.sorted()
        if found.count == 1 { return (try readFile(dir + "/" + found[0], format: .safetensors), .safetensors) }
        if found.isEmpty {
            let torchIndex = dir + "/" + PyTorch.indexName
            if fm.fileExists(atPath: torchIndex) {
                return (try ShardedSafetensors.read(indexPath: torchIndex, readShard: { try readFile($0, format: .pytorch, key: key) }), .pytorch)
            }
            let torchSingle = dir + "/" + PyTorch.singleName
            if fm.fileExists(atPath: torchSingle) { return (try readFile(torchSingle, format: .pytorch, key: key), .pytorch) }
        }
        throw FileError(path: dir, error: CheckpointError.noCheckpointInDirectory(found: found))
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
        var g = format == .gguf ? graph : try GGUFNaming.toHF(graph)
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
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let directory = maxShardSize != nil || path.hasSuffix("/") || (exists && isDir.boolValue)
        if let explicit {
            guard let f = CheckpointFormat(rawValue: explicit.lowercased()) else {
                throw CheckpointError.cannotChooseOutputFormat
            }
            return (f, directory)
        }
        if directory { return (.safetensors, true) }
        guard let f = CheckpointFormat.forExtension(URL(fileURLWithPath: path).pathExtension) else {
            throw CheckpointError.cannotChooseOutputFormat
        }
        return (f, false)
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
        let prepared: WeightGraph
        do { prepared = try prepare(graph, for: format, dequantize: options.dequantize) } catch let e as IOError { throw e } catch {
            throw FileError(path: target, error: error)
        }
        let graph = prepared
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
        switch (format, directory) {
        case (.safetensors, true):
            let companions = options.companionsFrom.map(Companions.list(in:)) ?? []
            // A GGUF's tokenizer.ggml.* keys become tokenizer.json/tokenizer_config.json unless
            // the input directory carries its own.
            let generated = companions.contains { $0.name == "tokenizer.json" } ? [] : GGUFTokenizer.huggingFaceFiles(of: graph, warn: GGUFNaming.warn)
            try ShardedSafetensors.write(graph, toDirectory: target, maxShardSize: options.maxShardSize, progress: options.progress,
                                         companions: companions, generated: generated.map { ($0.name, $0.bytes) })
        case (.safetensors, false):
            // The config travels in the metadata (read back by Safetensors.read).
            var g = graph
            if let config = graph.config { g.metadata[Safetensors.configKey] = String(decoding: config.serialized(), as: UTF8.self) }
            try Safetensors.write(g, to: target, progress: options.progress)
        case (.hdf5, false):
            do { try HDF5.write(graph, to: target, options: options.hdf5, progress: options.progress) } catch let e as HDF5Error {
                throw FileError(path: target, error: e)
            }
        case (.ckz, false):
            do { try CKZ.write(graph, to: target, options: options.ckz, progress: options.progress) } catch let e as CKZError {
                throw FileError(path: target, error: e)
            }
        case (.ckz, true):
            throw FileError(path: target, error: CheckpointError.singleFileFormat(.ckz))
        case (.gguf, false):
            var graph = graph
            if let dir = options.tokenizerFrom, graph.metadata["tokenizer.ggml.model"] == nil {
                do {
                    if let kv = try GGUFTokenizer.keys(directory: dir, config: graph.config) { GGUFMetadata.store(kv, into: &graph) }
                } catch {
                    throw FileError(path: (dir as NSString).appendingPathComponent("tokenizer.json"), error: error)
                }
            }
            do { try GGUF.write(graph, to: target, progress: options.progress) } catch let e as IOError { throw e } catch let e as FileError { throw e } catch {
                throw FileError(path: target, error: error)
            }
        case (.npz, false):
            do { try Npz.write(graph, to: target, deflate: options.deflate, progress: options.progress) } catch let e as IOError { throw e } catch {
                throw FileError(path: target, error: error)
            }
        case (.npy, false):
            guard graph.tensors.count == 1, let t = graph.tensors.values.first else {
                throw FileError(path: target, error: CheckpointError.npyNeedsOneTensor(graph.tensors.count))
            }
            do { try Npy.write(Npy.encode(dtype: t.dtype, shape: t.shape, data: t.data.load()), to: target) } catch let e as IOError { throw e } catch {
                throw FileError(path: target, error: error)
            }
        default:
            throw FileError(path: target, error: CheckpointError.notSupportedYet(format, reading: false))
        }
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

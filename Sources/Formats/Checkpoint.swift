// Checkpoint: opening any supported input and writing any supported output.
//
// Input formats are detected from the file's first bytes (extensions lie); outputs are
// chosen by extension or `--to`. A directory is a Hugging Face model directory: sharded
// safetensors with an index, or a single `model.safetensors`, with `config.json` beside.

import CkptCore
import Foundation

public enum CheckpointFormat: String, Sendable, CaseIterable, CustomStringConvertible {
    case safetensors, hdf5, ckz, gguf, npz, npy, pytorch

    public var description: String { rawValue }

    /// Formats ckpt can read and write today. The others are recognised so the error can
    /// say what the file is.
    public var isReadable: Bool { self == .safetensors || self == .pytorch }
    public var isWritable: Bool { self == .safetensors }

    /// The output format an extension implies.
    public static func forExtension(_ ext: String) -> CheckpointFormat? {
        switch ext.lowercased() {
        case "safetensors": return .safetensors
        case "h5", "hdf5", "keras": return .hdf5
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
        }
    }
}

public enum Checkpoint {
    /// Identifies a file by its first bytes.
    public static func detectFormat(path: String) throws -> CheckpointFormat {
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)) } catch {
            throw IOError.cannotOpen(path: path, errno: errno == 0 ? ENOENT : errno)
        }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 16)) ?? Data())
        func starts(_ magic: [UInt8]) -> Bool { head.count >= magic.count && Array(head.prefix(magic.count)) == magic }
        if starts([0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) { return .hdf5 }
        if starts(Array("GGUF".utf8)) { return .gguf }
        if starts(Array("CKZ".utf8) + [0]) { return .ckz }
        if starts([0x93] + Array("NUMPY".utf8)) { return .npy }
        if starts([0x50, 0x4B, 0x03, 0x04]) || starts([0x50, 0x4B, 0x05, 0x06]) {
            return path.lowercased().hasSuffix(".npz") ? .npz : .pytorch
        }
        if starts([0x80]) { return .pytorch }  // legacy torch.save pickle (protocol 2+)
        // safetensors has no magic: an 8-byte length followed by '{'. Anything else that
        // ends in .safetensors is handed to the safetensors reader for a precise error.
        if head.count >= 9, head[8] == UInt8(ascii: "{") { return .safetensors }
        if path.lowercased().hasSuffix(".safetensors") { return .safetensors }
        throw FileError(path: path, error: CheckpointError.unknownFormat)
    }

    /// Opens a checkpoint file or Hugging Face model directory. Tensors are not read until
    /// used. The model config comes from `configPath`, else a `config.json` beside the
    /// weights (or inside the directory).
    public static func open(_ path: String, configPath: String? = nil) throws -> (graph: WeightGraph, format: CheckpointFormat) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw IOError.cannotOpen(path: path, errno: ENOENT)
        }
        var graph: WeightGraph
        let format: CheckpointFormat
        let configDir: String
        if isDir.boolValue {
            (graph, format) = try openDirectory(path)
            configDir = path
        } else {
            format = try detectFormat(path: path)
            guard format.isReadable else { throw FileError(path: path, error: CheckpointError.notSupportedYet(format, reading: true)) }
            graph = try readFile(path, format: format)
            configDir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        }
        let configFile = configPath ?? configDir + "/config.json"
        if configPath != nil || FileManager.default.fileExists(atPath: configFile) {
            graph.config = try readConfig(configFile)
        }
        graph.applyConfigTies()
        return (graph, format)
    }

    static func readFile(_ path: String, format: CheckpointFormat) throws -> WeightGraph {
        switch format {
        case .safetensors:
            do { return try Safetensors.read(path: path) } catch let e as IOError { throw e } catch {
                throw FileError(path: path, error: error)
            }
        case .pytorch:
            do { return try PyTorch.read(path: path) } catch let e as IOError { throw e } catch {
                throw FileError(path: path, error: error)
            }
        default:
            throw FileError(path: path, error: CheckpointError.notSupportedYet(format, reading: true))
        }
    }

    /// A Hugging Face model directory: safetensors first (as transformers prefers them),
    /// then PyTorch's `pytorch_model.bin` (sharded with an index, or single).
    static func openDirectory(_ dir: String) throws -> (WeightGraph, CheckpointFormat) {
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
                return (try ShardedSafetensors.read(indexPath: torchIndex, readShard: { try readFile($0, format: .pytorch) }), .pytorch)
            }
            let torchSingle = dir + "/" + PyTorch.singleName
            if fm.fileExists(atPath: torchSingle) { return (try readFile(torchSingle, format: .pytorch), .pytorch) }
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
        public init(maxShardSize: Int? = nil, progress: (any ProgressSink)? = nil) {
            self.maxShardSize = maxShardSize
            self.progress = progress
        }
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

    public static func write(_ graph: WeightGraph, to path: String, format: CheckpointFormat, directory: Bool, options: WriteOptions = .init()) throws {
        let target = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        switch (format, directory) {
        case (.safetensors, true):
            try ShardedSafetensors.write(graph, toDirectory: target, maxShardSize: options.maxShardSize, progress: options.progress)
        case (.safetensors, false):
            try Safetensors.write(graph, to: target, progress: options.progress)
        default:
            throw FileError(path: target, error: CheckpointError.notSupportedYet(format, reading: false))
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

// The list of checkpoint formats, and everything that is derived from it: detection of an
// input's format, the output format an extension or `--to` name implies, the help text that
// lists them, and the one place a reader's or writer's error gets the file's path.

import CkptCore
import Foundation

/// A checkpoint format: a name with its handler. Compared by name, so `format == .gguf` and
/// `switch format { case .ckz: ... }` read as they would for an enum.
public struct CheckpointFormat: Sendable, Hashable, RawRepresentable, CaseIterable, CustomStringConvertible {
    public let handler: any FormatHandler

    public init(_ handler: any FormatHandler) { self.handler = handler }

    /// The format of the standard registry with this name (case-insensitive).
    public init?(rawValue: String) {
        guard let f = FormatRegistry.standard.format(named: rawValue) else { return nil }
        self = f
    }

    public var rawValue: String { handler.name }
    public var description: String { handler.name }
    public static func == (a: Self, b: Self) -> Bool { a.rawValue == b.rawValue }
    public func hash(into h: inout Hasher) { h.combine(rawValue) }

    /// Every format ckpt knows, in detection order.
    public static var allCases: [CheckpointFormat] { FormatRegistry.standard.formats }

    /// Formats ckpt can read; the others are recognised so the error can say what the file is.
    public var isReadable: Bool { handler.isReadable }
    public var isWritable: Bool { handler.isWritable }

    /// Whether files of this format can hold tensors of `dtype` as they are (HDF5 and .ckz
    /// hold every dtype, block-quantized ones as their bytes).
    public func canHold(_ dtype: DType) -> Bool { handler.canHold(dtype) }

    /// The output format an extension implies.
    public static func forExtension(_ ext: String) -> CheckpointFormat? { FormatRegistry.standard.format(forExtension: ext) }
}

/// An ordered list of formats. `standard` is the one ckpt uses; tests build others.
public struct FormatRegistry: Sendable {
    /// Every format, in detection order: when two sniffs match a file (a TorchScript archive
    /// also holds the data.pkl of a torch.save zip) or two fallbacks do, the earlier wins.
    public let formats: [CheckpointFormat]

    public init(_ formats: [CheckpointFormat]) {
        let names = formats.map(\.rawValue), exts = formats.flatMap(\.handler.extensions)
        precondition(Set(names).count == names.count, "format listed twice")
        precondition(Set(exts).count == exts.count, "extension claimed by two formats")
        self.formats = formats
    }

    /// The formats ckpt reads and writes. Adding a format is one entry here (and its folder).
    public static let standard = FormatRegistry([.safetensors, .hdf5, .ckz, .gguf, .npz, .npy, .keras, .torchscript, .pytorch])

    public func format(named name: String) -> CheckpointFormat? {
        let n = name.lowercased()
        return formats.first { $0.rawValue == n }
    }

    public func format(forExtension ext: String) -> CheckpointFormat? {
        let e = ext.lowercased()
        return formats.first { $0.handler.extensions.contains(e) }
    }

    public var writable: [CheckpointFormat] { formats.filter(\.isWritable) }

    /// "safetensors, hdf5, ckz, gguf, npz, npy": for help texts and error messages.
    public var writableNames: String { writable.map(\.rawValue).joined(separator: ", ") }

    /// ".safetensors, .h5, .hdf5, ...": the extensions that pick a writable format.
    public var writableExtensions: String {
        writable.flatMap(\.handler.extensions).map { "." + $0 }.joined(separator: ", ")
    }

    /// "safetensors, HDF5, ...": the formats ckpt reads, as people name them.
    public var readableDisplayNames: String {
        var seen: [String] = []
        for f in formats where f.isReadable && !seen.contains(f.handler.displayName) { seen.append(f.handler.displayName) }
        return seen.joined(separator: ", ")
    }

    /// One line per writable format: its name and extensions (for `--help` discussions).
    public var writableSummary: String {
        writable.map { f in
            let exts = f.handler.extensions.map { "." + $0 }.joined(separator: ", ")
            return "\(f.rawValue) (\(exts)\(f.handler.writesDirectory ? ", or a model directory" : ""))"
        }.joined(separator: "; ")
    }

    /// Identifies a file by its structure: every format's sniff, in order; when none
    /// matches, every format's fallback, in order; else the file is not a checkpoint.
    public func detect(_ probe: FormatProbe) -> CheckpointFormat? {
        formats.first { $0.handler.sniff(probe) } ?? formats.first { $0.handler.fallbackSniff(probe) }
    }

    public func detectFormat(path: String) throws -> CheckpointFormat {
        let probe = try FormatProbe(path: path)
        guard let f = detect(probe) else { throw FileError(path: path, error: CheckpointError.unknownFormat) }
        return f
    }

    /// Reads a file in `format`; any error but a file-system one gets the path.
    public func read(_ path: String, format: CheckpointFormat, options: ReadOptions = .init()) throws -> WeightGraph {
        try Self.naming(path) { try format.handler.read(path: path, options: options) }
    }

    /// A model directory: each format that lays one out is asked, in order.
    public func readDirectory(_ dir: String, options: ReadOptions = .init()) throws -> (WeightGraph, CheckpointFormat) {
        for f in formats {
            if let g = try Self.naming(dir, { try f.handler.readDirectory(dir, options: options) }) { return (g, f) }
        }
        throw FileError(path: dir, error: CheckpointError.noCheckpointInDirectory(found: []))
    }

    /// Writes an already prepared graph; any error but a file-system one gets the path.
    public func write(_ graph: WeightGraph, to target: String, format: CheckpointFormat, directory: Bool, options: Checkpoint.WriteOptions) throws {
        let h = format.handler
        guard h.isWritable else { throw FileError(path: target, error: CheckpointError.notSupportedYet(format, reading: false)) }
        guard !directory || h.writesDirectory else { throw FileError(path: target, error: CheckpointError.singleFileFormat(format)) }
        try Self.naming(target) { try h.write(graph, to: target, directory: directory, options: options) }
    }

    /// Where and how an output goes: a directory (Hugging Face layout) or a single file, in
    /// the format `explicit` names, else the one the extension implies. A format ckpt reads
    /// but does not write (`--to pytorch`, `out.pt`) is refused here, before any work.
    public func outputFormat(for path: String, explicit: String?, maxShardSize: Int?) throws -> (format: CheckpointFormat, directory: Bool) {
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let directory = maxShardSize != nil || path.hasSuffix("/") || (exists && isDir.boolValue)
        let chosen: CheckpointFormat
        if let explicit {
            guard let f = format(named: explicit) else {
                throw CheckpointError.unknownOutputFormat(explicit, writable: writableNames)
            }
            chosen = f
        } else if directory, let f = writable.first(where: \.handler.writesDirectory) {
            chosen = f
        } else {
            guard let f = format(forExtension: URL(fileURLWithPath: path).pathExtension) else {
                throw CheckpointError.cannotChooseOutputFormat
            }
            chosen = f
        }
        guard chosen.isWritable else { throw FileError(path: path, error: CheckpointError.notSupportedYet(chosen, reading: false)) }
        return (chosen, directory)
    }

    /// The one error-wrapping rule: file-system errors and errors that already name their
    /// file pass through; anything else is about `path`.
    static func naming<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as IOError { throw e } catch let e as FileError { throw e } catch {
            throw FileError(path: path, error: error)
        }
    }
}

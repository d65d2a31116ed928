// A checkpoint format, described once: its name, extensions, structural sniff, reader,
// writer and the dtypes it can hold. Each format's handler lives in its own folder
// (Safetensors/SafetensorsHandler.swift, ...) and is listed once in `FormatRegistry.standard`;
// detection, `--to` validation, help text and error wrapping all come from that list.
//
// To add a format: a folder with its reader/writer and a handler conforming to
// `FormatHandler`, a `static let` for it in an `extension CheckpointFormat` there, and one
// entry in `FormatRegistry.standard`.

import CkptCore

/// What a reader may be asked besides the path.
public struct ReadOptions: Sendable {
    /// Threads for decoding compressed tensors (.ckz); nil = all cores.
    public var jobs: Int?
    /// PyTorch only: the dotted path to a wrapped state_dict.
    public var key: String?
    public init(jobs: Int? = nil, key: String? = nil) {
        self.jobs = jobs
        self.key = key
    }
}

/// One checkpoint format. Readers and writers throw their own typed errors; the registry
/// adds the file's path (`FileError`), so handlers do not wrap.
public protocol FormatHandler: Sendable {
    /// The name `--to` and pipeline `to:` accept, and `inspect` prints: lowercase, one word.
    var name: String { get }
    /// How the format is named in prose ("HDF5", ".ckz", "NumPy").
    var displayName: String { get }
    /// File-name extensions (lowercase, no dot) that name this format as an output. An
    /// extension belongs to one format.
    var extensions: [String] { get }
    /// Whether the file has this format's structure: what every file of the format must
    /// hold, not a single leading byte, so it never claims a valid file of another format.
    func sniff(_ probe: FormatProbe) -> Bool
    /// A weaker hint, asked only when no format's structure matched (a truncated header, a
    /// zip that is not quite one, the extension): picks the reader that best explains what is
    /// wrong with the file.
    func fallbackSniff(_ probe: FormatProbe) -> Bool

    var isReadable: Bool { get }
    var isWritable: Bool { get }
    /// Whether the writer can produce a Hugging Face model directory.
    var writesDirectory: Bool { get }
    /// Whether `ReadOptions.key` (a state_dict inside a pickle) means something here.
    var acceptsStateDictKey: Bool { get }
    /// Whether tensors keep llama.cpp's names and layouts when written (GGUF); every other
    /// format gets Hugging Face's.
    var keepsLlamaCppNames: Bool { get }

    /// Whether files of this format can hold tensors of `dtype` as they are.
    func canHold(_ dtype: DType) -> Bool
    /// Reads a file (lazily where the format allows).
    func read(path: String, options: ReadOptions) throws -> WeightGraph
    /// Reads a model directory laid out for this format, or nil when the directory does not
    /// hold one (the next format is then asked).
    func readDirectory(_ dir: String, options: ReadOptions) throws -> WeightGraph?
    /// Writes `graph` (already prepared: see `Checkpoint.prepare`) to `target` atomically.
    /// `directory` is true only when `writesDirectory` is.
    func write(_ graph: WeightGraph, to target: String, directory: Bool, options: Checkpoint.WriteOptions) throws
}

extension FormatHandler {
    public func fallbackSniff(_ probe: FormatProbe) -> Bool { false }
    public var writesDirectory: Bool { false }
    public var acceptsStateDictKey: Bool { false }
    public var keepsLlamaCppNames: Bool { false }
    public func canHold(_ dtype: DType) -> Bool { true }
    public func readDirectory(_ dir: String, options: ReadOptions) throws -> WeightGraph? { nil }
    public func read(path: String, options: ReadOptions) throws -> WeightGraph {
        throw CheckpointError.notSupportedYet(CheckpointFormat(self), reading: true)
    }
    public func write(_ graph: WeightGraph, to target: String, directory: Bool, options: Checkpoint.WriteOptions) throws {
        throw CheckpointError.notSupportedYet(CheckpointFormat(self), reading: false)
    }
}

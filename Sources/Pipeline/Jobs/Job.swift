// One job type per operation: convert, quantize, prune, distill, verify, tokenize.
//
// A job is a value holding every option of its operation, with the operation's defaults as
// property initial values. `ckpt <command>` maps its flags onto a job; a `ckpt run` pipeline
// decodes each step's YAML mapping into the same type (keys are the jobs' CodingKeys, the
// flag names in snake_case). So an option is defined once, as one field here: CLI and
// pipeline cannot drift, and Tests/CLITests/JobParityTests checks every flag against the keys.
//
//   var job = QuantizeJob(input: "model/", output: "model-q8.gguf", scheme: "q8_0")
//   job.keep = ["norm"]
//   try job.validate()
//   let report = try job.run(progress: JobProgress())
//
// Decoding: `QuantizeJob.decode(json)` fills every key left out with its default (a plain
// `JSONDecoder` wants every non-optional key).

import CkptCore
import Foundation
import Formats
import OrderedCollections

public protocol Job: Codable, Sendable {
    associatedtype CodingKeys: CodingKey, CaseIterable
    associatedtype Report: JobReport

    /// The command and pipeline step kind ("convert").
    static var name: String { get }
    /// Every option at its default (paths empty).
    init()
    /// Keys a pipeline step must give (paths).
    static var requiredKeys: [CodingKeys] { get }
    /// Paths the job reads (pipelines digest them to decide whether a step can be skipped).
    static var inputKeys: [CodingKeys] { get }
    /// Paths the job writes as its result (pipelines stage them and publish them at the end).
    static var outputKeys: [CodingKeys] { get }
    /// Other paths the job writes (reports, state files): written where they are named.
    static var sideFileKeys: [CodingKeys] { get }
    /// Whether the outputs are checkpoints (their format must be one ckpt writes).
    static var writesCheckpoints: Bool { get }

    /// Checks the options without reading any file; throws `JobError`.
    func validate() throws
    /// Runs the job (validating first).
    func run(progress: JobProgress) throws -> Report
}

extension Job {
    public static var sideFileKeys: [CodingKeys] { [] }
    public static var writesCheckpoints: Bool { true }
}

/// What a job returns: a value with the fields of `ckpt <command> --json`.
public protocol JobReport: Encodable, Sendable {
    /// The report as the command's `--json` prints it (and a pipeline step's `result`).
    func json() -> JSONValue
    /// False when a verification gate failed (exit status 1).
    var passed: Bool { get }
    /// Lines a pipeline logs after the step (the command's own output is richer).
    var logLines: [String] { get }
}

extension JobReport {
    public var passed: Bool { true }
    public var logLines: [String] { [] }
    public func encode(to encoder: any Encoder) throws { try json().encode(to: encoder) }
}

/// Where a job reports progress, and how it names paths in its reports.
public struct JobProgress: Sendable {
    /// Progress lines (the CLI writes them to stderr unless --quiet).
    public var log: @Sendable (String) -> Void
    /// One-line notices (e.g. tensors dequantized because the output cannot hold them).
    public var notice: @Sendable (String) -> Void
    /// Bytes written, for a progress bar.
    public var bytes: (any ProgressSink)?
    /// The path as the user wrote it (pipelines run jobs on resolved and staged paths).
    public var displayPath: @Sendable (String) -> String
    /// The command line recorded in reports that show one (the HTML verify page).
    public var command: String?

    public init(log: @escaping @Sendable (String) -> Void = { _ in }, notice: (@Sendable (String) -> Void)? = nil,
                bytes: (any ProgressSink)? = nil, displayPath: @escaping @Sendable (String) -> String = { $0 },
                command: String? = nil) {
        self.log = log
        self.notice = notice ?? log
        self.bytes = bytes
        self.displayPath = displayPath
        self.command = command
    }
}

/// A bad option value, named by its key; the CLI shows the key as its flag (`--max-kl`).
public struct JobError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The option's key (snake_case), or nil for a problem with several options.
    public var key: String?
    public var message: String

    public init(_ key: String?, _ message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { key.map { "\($0) \(message)" } ?? message }

    /// The message with the key spelled as a command-line flag.
    public var flagDescription: String { key.map { "--\($0.replacingOccurrences(of: "_", with: "-")) \(message)" } ?? message }
}

extension Job {
    /// Every option key, in declaration order.
    public static var keys: [String] { CodingKeys.allCases.map(\.stringValue) }
    public static var inputKeyNames: [String] { inputKeys.map(\.stringValue) }
    public static var outputKeyNames: [String] { outputKeys.map(\.stringValue) }

    /// The defaults as JSON (absent optionals left out).
    public static func defaults() -> OrderedDictionary<String, JSONValue> { Self().options() }

    /// The job from option values (a pipeline step's mapping): unknown keys are refused, keys
    /// left out keep their defaults; a string where the default is a list is a one-item list.
    public static func decode(_ options: OrderedDictionary<String, JSONValue>) throws -> Self {
        let known = Set(keys)
        for key in options.keys where !known.contains(key) { throw JobError(nil, "unknown option `\(key)`") }
        var merged = defaults()
        for (k, v) in options {
            if case .array = merged[k], v.arrayValue == nil, v != .null { merged[k] = .array([v]) } else { merged[k] = v }
        }
        for (k, v) in merged where v == .null { merged[k] = nil }
        // A number or boolean where text is expected (`nm: 24`, `dtype: 16`) is read as its
        // text, so the option's own check can say what is wrong with it. Not for paths: a
        // path must be written as one.
        let paths = Set((inputKeys + outputKeys + sideFileKeys).map(\.stringValue))
        var attempts = merged.count
        while attempts > 0 {
            attempts -= 1
            do {
                return try JSONDecoder().decode(Self.self, from: Data(JSONValue.object(merged).serialized().utf8))
            } catch let DecodingError.typeMismatch(type, context)
                        where type == String.self && context.codingPath.count == 1 && !paths.contains(context.codingPath[0].stringValue) {
                let k = context.codingPath[0].stringValue
                switch merged[k] {
                case .number(let text)?: merged[k] = .string(text)
                case .bool(let b)?: merged[k] = .string(String(b))
                default: attempts = 0
                }
            } catch {
                break
            }
        }
        do {
            return try JSONDecoder().decode(Self.self, from: Data(JSONValue.object(merged).serialized().utf8))
        } catch let DecodingError.typeMismatch(type, context) {
            throw JobError(keyName(context.codingPath), "must be \(describe(type))")
        } catch let DecodingError.valueNotFound(type, context) {
            throw JobError(keyName(context.codingPath), "must be \(describe(type))")
        } catch let DecodingError.dataCorrupted(context) {
            throw JobError(keyName(context.codingPath), context.debugDescription.isEmpty ? "has a bad value" : context.debugDescription)
        } catch let DecodingError.keyNotFound(key, _) {
            throw JobError(key.stringValue, "is missing")
        }
    }

    /// The job from a JSON object.
    public static func decode(_ json: JSONValue) throws -> Self {
        guard let o = json.objectValue else { throw JobError(nil, "options must be a mapping") }
        return try decode(o)
    }

    /// The job as option values, in key order: defaults included, absent optionals left out.
    public func options() -> OrderedDictionary<String, JSONValue> {
        guard let data = try? JSONEncoder().encode(self), let v = try? JSONValue.parse([UInt8](data)),
              let o = v.objectValue else { return [:] }
        var ordered = OrderedDictionary<String, JSONValue>()
        for k in Self.keys { if let x = o[k] { ordered[k] = x } }
        return ordered
    }

    static func keyName(_ path: [any CodingKey]) -> String? { path.first?.stringValue }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is UInt64.Type, is Int?.Type, is UInt64?.Type: return "an integer"
        case is Double.Type, is Float.Type, is Double?.Type, is Float?.Type: return "a number"
        case is Bool.Type, is Bool?.Type: return "true or false"
        case is String.Type, is String?.Type: return "a string"
        default:
            let name = String(describing: type)
            return name.hasPrefix("Array") || name.hasPrefix("[") ? "a list" : "a \(name)"
        }
    }
}

// Checks the jobs share.
extension Job {
    static func positive(_ value: Int?, _ key: String) throws {
        if let value, value < 1 { throw JobError(key, "must be a positive integer") }
    }
}

/// The output format of a job's output: `to` if given, else the extension (a directory
/// output, "name/", is a safetensors model directory). Checked before any work.
public enum JobOutput {
    public static func check(_ output: String, to: String?, key: String = "to", maxShardSize: Bool = false) throws {
        let writable = CheckpointFormat.allCases.filter(\.isWritable).map(\.rawValue)
        if let to {
            guard let f = CheckpointFormat(rawValue: to.lowercased()), f.isWritable else {
                throw JobError(nil, "unknown `to:` \"\(to)\" (one of: \(writable.joined(separator: ", ")))")
            }
            return
        }
        if output.hasSuffix("/") || maxShardSize { return }
        guard let f = CheckpointFormat.forExtension(URL(fileURLWithPath: output).pathExtension), f.isWritable else {
            throw JobError(nil, "cannot tell the format of output `\(output)` from its extension; add `to:` (one of: \(writable.joined(separator: ", ")))")
        }
    }
}

/// Verification gates as options: a preset, then any limit given on its own.
public struct GateOptions: Sendable, Equatable {
    public var preset: String?
    public var maxKl, minCosine, minTop1, maxAbs: Double?

    public init(preset: String? = nil, maxKl: Double? = nil, minCosine: Double? = nil, minTop1: Double? = nil, maxAbs: Double? = nil) {
        (self.preset, self.maxKl, self.minCosine, self.minTop1, self.maxAbs) = (preset, maxKl, minCosine, minTop1, maxAbs)
    }

    /// The gates: the preset's, with each given limit replacing the preset's.
    public func gates() throws -> Gates {
        var g = Gates()
        if let preset {
            guard let p = Gates.preset(preset) else { throw JobError("preset", "is unknown: \(preset) (one of: \(Gates.presetNames.joined(separator: ", ")))") }
            g = p
        }
        if let maxKl { g.maxKL = maxKl }
        if let minCosine { g.minCosine = minCosine }
        if let minTop1 { g.minTop1 = minTop1 }
        if let maxAbs { g.maxAbs = maxAbs }
        return g
    }
}

/// A size as written: bytes (1000000) or with a unit (5GB, 500MB, 2GiB).
public struct ByteSize: Codable, Sendable, Equatable, ExpressibleByStringLiteral {
    public var text: String
    public init(_ text: String) { self.text = text }
    public init(stringLiteral value: String) { text = value }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(Int.self) { text = String(n) } else { text = try c.decode(String.self) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }

    /// The size in bytes.
    public func bytes(key: String) throws -> Int {
        guard let n = try? Checkpoint.parseSize(text), n >= 1 else {
            throw JobError(key, "must be a size (examples: 5GB, 500MB, 2GiB, 1000000)")
        }
        return n
    }
}

/// Jobs with verification gates given one by one.
public protocol GateLimits {
    var maxKl: Double? { get set }
    var minCosine: Double? { get set }
    var minTop1: Double? { get set }
    var maxAbs: Double? { get set }
}

import CkptCore

/// Every way reading or writing an HDF5 checkpoint can fail. Messages are one line and name
/// the dataset (`/a/b`) or the tensor (`a.b`); the CLI adds the file.
public enum HDF5Error: Error, Equatable, Sendable, CustomStringConvertible {
    /// A libhdf5 call failed. `context` names what was being done to what ("dataset `/a/b`");
    /// `message` condenses libhdf5's error stack (outermost and innermost entries).
    case library(context: String, message: String)
    case unsupportedType(dataset: String, type: String)
    case unsupportedLayout(dataset: String, reason: String)
    case filterNotAllowed(dataset: String, filter: Int, name: String)
    case externalLink(link: String)
    case unsupportedLink(link: String, type: Int)
    case invalidShape(dataset: String, reason: String)
    case implausibleSize(dataset: String, declared: Int, stored: Int)
    case storageOutsideFile(dataset: String, end: UInt64, fileSize: Int)
    case invalidBool(tensor: String, index: Int, value: UInt8)
    case tooManyObjects(limit: Int)
    case nestedTooDeep(path: String, limit: Int)
    case attributeTooLarge(object: String, attribute: String, bytes: Int, limit: Int)
    case nameClash(path: String, first: String, second: String)
    case invalidTensorName(tensor: String, reason: String)
    case reservedMetadataKey(String)
    case invalidMetadata(key: String, reason: String)
    case cannotWrite(tensor: String, reason: String)
    case invalidConfig(String)
    case kerasLayout(String)
    case outOfMemory(tensor: String, bytes: Int)
    case invalidCompression(String)
    // The sandboxed probe of an untrusted file (see HDF5Probe.swift).
    case probeCrashed(signal: Int32)
    case probeTimedOut(seconds: Double)
    case probeFailed(String)

    public var description: String {
        switch self {
        case .library(let context, let message):
            return context.isEmpty ? "libhdf5: \(message)" : "\(context): libhdf5: \(message)"
        case .unsupportedType(let d, let t):
            return "dataset `\(d)`: datatype \(t) is not a tensor type ckpt can hold"
        case .unsupportedLayout(let d, let r): return "dataset `\(d)`: \(r)"
        case .filterNotAllowed(let d, let id, let name):
            return "dataset `\(d)`: filter \(id)\(name.isEmpty ? "" : " (\(name))") is not in ckpt's allow-list (deflate, shuffle, fletcher32)"
        case .externalLink(let l):
            return "link `\(l)` is an external link to another file; ckpt never follows external links"
        case .unsupportedLink(let l, let t): return "link `\(l)` has unsupported link type \(t)"
        case .invalidShape(let d, let r): return "dataset `\(d)`: \(r)"
        case .implausibleSize(let d, let declared, let stored):
            return "dataset `\(d)`: declares \(declared) bytes but stores only \(stored) (more than deflate's 1032:1 can expand; corrupt or hostile file)"
        case .storageOutsideFile(let d, let end, let size):
            return "dataset `\(d)`: data ends at byte \(end) but the file has only \(size) bytes (truncated file?)"
        case .invalidBool(let t, let i, let v):
            return "tensor `\(t)`: bool element \(i) holds \(v), not 0 or 1"
        case .tooManyObjects(let n): return "more than \(n) links in the file (cap)"
        case .nestedTooDeep(let p, let n): return "group `\(p)`: nested deeper than \(n) groups (cap)"
        case .attributeTooLarge(let o, let a, let b, let limit):
            return "attribute `\(a)` of `\(o)`: \(b) bytes exceeds the \(limit)-byte cap"
        case .nameClash(let p, let a, let b):
            return "tensor `\(b)`: HDF5 path `\(p)` is already used by `\(a)` (a name cannot be both a dataset and a group; rename one)"
        case .invalidTensorName(let t, let r): return "tensor `\(t)`: \(r)"
        case .reservedMetadataKey(let k): return "metadata key `\(k)`: the prefix `ckpt:` is reserved for ckpt's own HDF5 attributes"
        case .invalidMetadata(let k, let r): return "metadata key `\(k)`: \(r)"
        case .cannotWrite(let t, let r): return "tensor `\(t)`: \(r)"
        case .invalidConfig(let m): return "attribute `ckpt:config`: \(m)"
        case .kerasLayout(let m): return "Keras layout: \(m)"
        case .outOfMemory(let t, let b): return "tensor `\(t)`: cannot allocate \(b) bytes"
        case .invalidCompression(let s):
            return "invalid compression \"\(s)\" (examples: gzip, gzip=9; levels 0-9)"
        case .probeCrashed(let sig):
            return "libhdf5 crashed (signal \(sig)) reading the file's structure in a sandboxed child process: the file is malformed"
        case .probeTimedOut(let s):
            return "reading the file's structure took longer than \(Int(s)) s in a sandboxed child process (malformed file? CKPT_HDF5_PROBE_TIMEOUT=SECONDS allows more)"
        case .probeFailed(let m): return "sandboxed probe failed: \(m)"
        }
    }
}

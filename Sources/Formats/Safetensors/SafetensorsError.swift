import CkptCore

/// Every way a safetensors file (or a sharded checkpoint's index) can be wrong.
/// Messages name the tensor; the CLI adds the file.
public enum SafetensorsError: Error, Equatable, Sendable, CustomStringConvertible {
    case fileTooSmall(size: Int)
    case headerTooLarge(length: UInt64)
    case headerPastEnd(length: UInt64, fileSize: Int)
    case headerNotUTF8
    case headerNotJSON(String)
    case headerNotObject
    case duplicateTensor(String)
    case invalidEntry(tensor: String, reason: String)
    case unknownDType(tensor: String, dtype: String)
    case negativeDimension(tensor: String, shape: [String])
    case sizeOverflow(tensor: String)
    case invalidOffsets(tensor: String, begin: UInt64, end: UInt64, expectedBegin: UInt64)
    case byteLengthMismatch(tensor: String, dtype: String, shape: [Int], expected: Int, actual: UInt64)
    case dataPastEnd(tensor: String, end: UInt64, dataSize: Int)
    case trailingBytes(dataEnd: UInt64, dataSize: Int)
    case invalidMetadata(String)
    // Sharded checkpoints.
    case invalidIndex(String)
    case missingShard(file: String)
    case tensorNotInShard(tensor: String, shard: String)
    case tensorNotInIndex(tensor: String, shard: String)
    case tensorInTwoShards(tensor: String, first: String, second: String)
    case noCheckpointInDirectory(String)
    case cannotWrite(tensor: String, reason: String)

    public var description: String {
        switch self {
        case .fileTooSmall(let size):
            return size == 0 ? "empty file" : "truncated: \(size) bytes, too short for the 8-byte header length"
        case .headerTooLarge(let n):
            return "header length \(n) exceeds the 100,000,000-byte cap"
        case .headerPastEnd(let n, let size):
            return "truncated: header of \(n) bytes runs past the end of the \(size)-byte file"
        case .headerNotUTF8: return "header is not valid UTF-8"
        case .headerNotJSON(let m): return "header is not valid JSON: \(m)"
        case .headerNotObject: return "header is not a JSON object"
        case .duplicateTensor(let t): return "tensor `\(t)`: name appears twice in the header"
        case .invalidEntry(let t, let r): return "tensor `\(t)`: \(r)"
        case .unknownDType(let t, let d): return "tensor `\(t)`: unknown dtype \"\(d)\""
        case .negativeDimension(let t, let shape): return "tensor `\(t)`: negative dimension in shape [\(shape.joined(separator: ", "))]"
        case .sizeOverflow(let t): return "tensor `\(t)`: shape × dtype size overflows"
        case .invalidOffsets(let t, let b, let e, let expected):
            if e < b { return "tensor `\(t)`: data offsets reversed (\(b)..<\(e))" }
            if b < expected { return "tensor `\(t)`: data offsets \(b)..<\(e) overlap the previous tensor (expected start \(expected))" }
            return "tensor `\(t)`: data offsets \(b)..<\(e) leave a gap (expected start \(expected))"
        case .byteLengthMismatch(let t, let d, let shape, let expected, let actual):
            return "tensor `\(t)`: \(d) \(shape) needs \(expected) bytes, data offsets give \(actual)"
        case .dataPastEnd(let t, let end, let size):
            return "tensor `\(t)`: data ends at byte \(end) of the data section, which has only \(size) bytes (truncated file?)"
        case .trailingBytes(let end, let size):
            return "tensors end at byte \(end) of the data section but it has \(size) bytes (trailing data)"
        case .invalidMetadata(let m): return "__metadata__: \(m)"
        case .invalidIndex(let m): return "index: \(m)"
        case .missingShard(let f): return "shard \(f) listed in the index is missing"
        case .tensorNotInShard(let t, let s): return "tensor `\(t)`: the index places it in \(s), which does not contain it (stale index?)"
        case .tensorNotInIndex(let t, let s): return "tensor `\(t)`: present in \(s) but not in the index (stale index?)"
        case .tensorInTwoShards(let t, let a, let b): return "tensor `\(t)`: found in both \(a) and \(b)"
        case .noCheckpointInDirectory(let m): return m
        case .cannotWrite(let t, let r): return "tensor `\(t)`: \(r)"
        }
    }
}

import CkptCore

/// Every way a GGUF file can be wrong, and what the writer refuses. Messages name the key or
/// tensor; the CLI adds the file.
public enum GGUFError: Error, Equatable, Sendable, CustomStringConvertible {
    case notGGUF
    case unsupportedVersion(UInt32)
    case bigEndian
    case truncated(what: String, needed: UInt64, remaining: Int)
    case tooMany(what: String, count: UInt64, cap: UInt64)
    case stringTooLong(what: String, length: UInt64)
    case invalidUTF8(what: String)
    case unknownValueType(key: String, type: UInt32)
    case arrayTooDeep(key: String, depth: Int)
    case duplicateKey(String)
    case invalidAlignment(String)
    case duplicateTensor(String)
    case tooManyDimensions(tensor: String, count: UInt32)
    case negativeDimension(tensor: String, dims: [Int64])
    case dimensionPastFile(tensor: String, dims: [Int64], fileSize: Int)
    case unknownTensorType(tensor: String, type: UInt32)
    case unsupportedTensorType(tensor: String, type: String)
    case rowNotWholeBlocks(tensor: String, rowLength: Int64, type: String, blockValues: Int)
    case sizeOverflow(tensor: String)
    case invalidOffset(tensor: String, offset: UInt64, expected: UInt64)
    case dataPastEnd(tensor: String, end: UInt64, dataSize: Int)
    case trailingBytes(dataEnd: UInt64, dataSize: Int)
    case cannotWrite(tensor: String, reason: String)
    case invalidMetadata(key: String, reason: String)

    public var description: String {
        switch self {
        case .notGGUF: return "not a GGUF file (no GGUF magic)"
        case .unsupportedVersion(let v):
            return v == 1 ? "GGUF version 1 (32-bit counts) is not supported; only versions 2 and 3" : "GGUF version \(v) is not supported (2 and 3 are)"
        case .bigEndian: return "big-endian GGUF is not supported"
        case .truncated(let w, let n, let r): return "truncated: \(w) needs \(n) bytes, \(r) remain"
        case .tooMany(let w, let c, let cap): return "\(w) count \(c) exceeds what the file can hold (cap \(cap))"
        case .stringTooLong(let w, let n): return "\(w): string length \(n) exceeds the 1 GiB cap or the file"
        case .invalidUTF8(let w): return "\(w): string is not valid UTF-8"
        case .unknownValueType(let k, let t): return "metadata `\(k)`: unknown value type \(t)"
        case .arrayTooDeep(let k, let d): return "metadata `\(k)`: arrays nested \(d) deep (cap \(GGUF.maxArrayDepth))"
        case .duplicateKey(let k): return "metadata `\(k)`: key appears twice"
        case .invalidAlignment(let m): return "general.alignment: \(m)"
        case .duplicateTensor(let t): return "tensor `\(t)`: name appears twice"
        case .tooManyDimensions(let t, let n): return "tensor `\(t)`: \(n) dimensions (GGUF allows at most \(GGUF.maxDims))"
        case .negativeDimension(let t, let d): return "tensor `\(t)`: negative dimension in \(d)"
        case .dimensionPastFile(let t, let d, let size):
            return "tensor `\(t)`: empty tensor with dimensions \(d): an empty tensor's dimensions may not exceed the file's size (\(size) bytes) or 2^24"
        case .unknownTensorType(let t, let ty): return "tensor `\(t)`: unknown ggml type \(ty)"
        case .unsupportedTensorType(let t, let ty): return "tensor `\(t)`: ggml type \(ty) is not supported by ckpt"
        case .rowNotWholeBlocks(let t, let n, let ty, let b): return "tensor `\(t)`: row of \(n) values is not a whole number of \(ty) blocks of \(b)"
        case .sizeOverflow(let t): return "tensor `\(t)`: element count × type size overflows"
        case .invalidOffset(let t, let o, let e): return "tensor `\(t)`: data offset \(o), expected \(e) (offsets must be the padded running total)"
        case .dataPastEnd(let t, let end, let size): return "tensor `\(t)`: data ends at byte \(end) of the data section, which has only \(size) bytes (truncated file?)"
        case .trailingBytes(let end, let size): return "tensors end at byte \(end) of the data section but it has \(size) bytes (trailing data)"
        case .cannotWrite(let t, let r): return "tensor `\(t)`: \(r)"
        case .invalidMetadata(let k, let r): return "metadata `\(k)`: \(r)"
        }
    }
}

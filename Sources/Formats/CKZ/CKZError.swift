import CkptCore

/// Every way a .ckz file can be wrong, and what the writer can refuse. Messages name the
/// tensor and chunk; the CLI adds the file.
public enum CKZError: Error, Equatable, Sendable, CustomStringConvertible {
    case emptyFile
    case truncated(size: Int, reason: String)
    case badMagic
    case unsupportedVersion(UInt32)
    case nonzeroFlags(where: String, value: UInt32)
    case trailerChecksumMismatch(expected: UInt32, actual: UInt32)
    case indexOutOfPlace(offset: UInt64, length: UInt64, fileSize: Int)
    case indexTooLarge(length: UInt64)
    case indexChecksumMismatch(expected: UInt32, actual: UInt32)
    case malformedIndex(String)
    case nonzeroPadding(offset: Int)
    case duplicateName(String)
    case invalidTensor(tensor: String, reason: String)
    case unknownDType(tensor: String, dtype: String)
    case unsupportedQuantization(tensor: String, parameters: String)
    case invalidOffsets(tensor: String, offset: UInt64, expected: UInt64)
    case dataPastEnd(tensor: String, end: UInt64, limit: UInt64)
    case invalidChunk(tensor: String, chunk: Int, reason: String)
    case chunkChecksumMismatch(tensor: String, chunk: Int, expected: UInt32, actual: UInt32)
    case chunkDecodeFailed(tensor: String, chunk: Int, plane: Int, reason: String)
    case rawChecksumMismatch(tensor: String, chunk: Int, expected: UInt32, actual: UInt32)
    case invalidTie(alias: String, target: String)
    case invalidConfig(String)
    case cannotWrite(tensor: String, reason: String)

    public var description: String {
        switch self {
        case .emptyFile: return "empty file"
        case .truncated(let size, let reason): return "truncated .ckz file (\(size) bytes): \(reason)"
        case .badMagic: return "not a .ckz file (bad magic bytes)"
        case .unsupportedVersion(let v): return "unsupported .ckz version \(v) (this ckpt reads version \(CKZ.version))"
        case .nonzeroFlags(let w, let v): return "\(w) flags are 0x\(String(v, radix: 16)), expected 0 (corrupt file or newer version)"
        case .trailerChecksumMismatch(let e, let a):
            return "trailer checksum mismatch (stored \(hex(e)), computed \(hex(a))): corrupt file"
        case .indexOutOfPlace(let o, let l, let size):
            return "index at \(o)..<\(o &+ l) must end where the 32-byte trailer of the \(size)-byte file starts (corrupt or truncated file)"
        case .indexTooLarge(let l): return "index length \(l) exceeds the 1 GiB cap"
        case .indexChecksumMismatch(let e, let a):
            return "index checksum mismatch (stored \(hex(e)), computed \(hex(a))): corrupt file"
        case .malformedIndex(let m): return "malformed index: \(m)"
        case .nonzeroPadding(let o): return "padding byte at offset \(o) is not zero: corrupt file"
        case .duplicateName(let n): return "`\(n)`: name appears twice in the index"
        case .invalidTensor(let t, let r): return "tensor `\(t)`: \(r)"
        case .unknownDType(let t, let d): return "tensor `\(t)`: unknown dtype \"\(d)\""
        case .unsupportedQuantization(let t, let p): return "tensor `\(t)`: unsupported quantization parameters \(p)"
        case .invalidOffsets(let t, let o, let e):
            return "tensor `\(t)`: data offset \(o), expected \(e) (tensors must follow each other, 64-byte aligned)"
        case .dataPastEnd(let t, let end, let limit):
            return "tensor `\(t)`: data ends at byte \(end), past the start of the index at \(limit)"
        case .invalidChunk(let t, let c, let r): return "tensor `\(t)`: chunk \(c): \(r)"
        case .chunkChecksumMismatch(let t, let c, let e, let a):
            return "tensor `\(t)`: chunk \(c): checksum mismatch (stored \(hex(e)), computed \(hex(a))): corrupt data"
        case .chunkDecodeFailed(let t, let c, let p, let r): return "tensor `\(t)`: chunk \(c): plane \(p): \(r)"
        case .rawChecksumMismatch(let t, let c, let e, let a):
            return "tensor `\(t)`: chunk \(c): decoded bytes fail their checksum (stored \(hex(e)), computed \(hex(a)))"
        case .invalidTie(let a, let t): return "tie `\(a)` -> `\(t)`: target is not a tensor, or alias is one"
        case .invalidConfig(let m): return "model config: \(m)"
        case .cannotWrite(let t, let r): return "tensor `\(t)`: \(r)"
        }
    }
}

private func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - s.count)) + s
}

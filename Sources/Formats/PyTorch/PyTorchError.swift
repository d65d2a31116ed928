import CkptCore

/// Every way a PyTorch checkpoint (`torch.save` zip or legacy file, or a sharded
/// `pytorch_model.bin.index.json` directory) can be refused. Messages are one line and name
/// the zip member, the pickle global or the tensor; the CLI adds the file.
public enum PyTorchError: Error, Equatable, Sendable, CustomStringConvertible {
    // The zip container.
    case truncatedZip(String)
    case badZip(String)
    case badMember(member: String, reason: String)
    case compressedMember(member: String, method: Int)
    case missingMember(String)
    case bigEndian
    // The pickle.
    case truncatedPickle(offset: Int, opcode: String)
    case unsupportedProtocol(Int)
    case forbiddenOpcode(name: String, offset: Int)
    case unknownOpcode(UInt8, offset: Int)
    case forbiddenGlobal(String)
    case notCallable(String)
    case malformedPickle(String)
    case limitExceeded(String)
    // From the pickle to tensors.
    case notAStateDict(String)
    case wrapped(suggestion: String)
    case keyNotFound(key: String, reason: String)
    case badStorage(key: String, reason: String)
    case badTensor(tensor: String, reason: String)
    case duplicateTensor(String)

    public var description: String {
        switch self {
        case .truncatedZip(let m): return "truncated zip archive: \(m)"
        case .badZip(let m): return "invalid zip archive: \(m)"
        case .badMember(let name, let r): return "zip member \(name): \(r)"
        case .compressedMember(let name, let method):
            return "zip member \(name) is compressed (method \(method)); torch.save stores members uncompressed and ckpt reads only stored members"
        case .missingMember(let name): return "zip member \(name) is missing"
        case .bigEndian: return "checkpoint was saved on a big-endian machine (byteorder \"big\"); ckpt reads little-endian checkpoints only"
        case .truncatedPickle(let off, let op): return "pickle truncated at byte \(off) (in \(op))"
        case .unsupportedProtocol(let p): return "pickle protocol \(p) is not supported (torch.save writes 2; 2 to 5 are read)"
        case .forbiddenOpcode(let name, let off):
            return "pickle opcode \(name) at byte \(off) is refused: it would construct or call arbitrary objects"
        case .unknownOpcode(let op, let off):
            return "pickle opcode 0x\(String(op, radix: 16)) at byte \(off) is not one a state_dict needs; refused"
        case .forbiddenGlobal(let g):
            return "pickle references global `\(g)`, which is not on ckpt's allow-list of tensor-rebuilding functions; refused (nothing was executed)"
        case .notCallable(let g): return "pickle calls `\(g)`, which is not a function ckpt interprets; refused"
        case .malformedPickle(let m): return "malformed pickle: \(m)"
        case .limitExceeded(let m): return "pickle exceeds a safety limit: \(m)"
        case .notAStateDict(let m): return "not a state_dict (a dict of tensor names to tensors): \(m)"
        case .wrapped(let k): return "not a state_dict itself, but the dict under `\(k)` is one: pass --key \(k)"
        case .keyNotFound(let k, let r): return "--key \(k): \(r)"
        case .badStorage(let key, let r): return "storage `\(key)`: \(r)"
        case .badTensor(let t, let r): return "tensor `\(t)`: \(r)"
        case .duplicateTensor(let t): return "tensor `\(t)`: name appears twice in the state_dict"
        }
    }
}

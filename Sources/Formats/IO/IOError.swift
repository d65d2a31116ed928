#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Failures of the operating system's file calls. Messages name the path.
public enum IOError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, errno: Int32)
    case notARegularFile(path: String)
    /// A FIFO, device, socket or directory where a file is expected (`kind` says which).
    case notAFile(path: String, kind: String)
    case cannotMap(path: String, errno: Int32)
    case readFailed(path: String, errno: Int32)
    case writeFailed(path: String, errno: Int32)
    case cannotCreate(path: String, errno: Int32)
    case cannotRename(from: String, to: String, errno: Int32)
    case notADirectory(path: String)
    case tooLarge(path: String, size: Int, cap: Int)
    /// The file is now shorter than when it was mapped (`size`), and bytes up to `needed` are read.
    case truncated(path: String, size: Int, needed: Int)
    case linkLoop(path: String)

    public var description: String {
        switch self {
        case .cannotOpen(let p, let e): return "\(p): cannot open: \(Self.message(e))"
        case .notARegularFile(let p): return "\(p): not a regular file"
        case .notAFile(let p, let kind): return "\(p): is \(kind), not a file"
        case .cannotMap(let p, let e): return "\(p): cannot map into memory: \(Self.message(e))"
        case .readFailed(let p, let e): return "\(p): read failed: \(Self.message(e))"
        case .writeFailed(let p, let e): return "\(p): write failed: \(Self.message(e))"
        case .cannotCreate(let p, let e): return "\(p): cannot create: \(Self.message(e))"
        case .cannotRename(let f, let t, let e): return "\(t): cannot rename \(f) into place: \(Self.message(e))"
        case .notADirectory(let p): return "\(p): not a directory"
        case .tooLarge(let p, let size, let cap): return "\(p): \(size) bytes, more than the \(cap) a file of this kind may have"
        case .truncated(let p, let size, let needed):
            return "\(p): truncated to \(size) bytes since it was opened (bytes up to \(needed) are needed)"
        case .linkLoop(let p): return "\(p): a symbolic link to a folder that contains it (a loop); not copied"
        }
    }

    static func message(_ e: Int32) -> String { String(cString: strerror(e)) }
}

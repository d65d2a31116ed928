// What a path names when ckpt expects a file: open(2) of a named pipe blocks until a writer
// appears (for ever, if none does), a character device such as /dev/zero never ends, and a
// directory is not a file. Every module that reads a file by path asks here first (Formats'
// RegularFile, and `read` below for the Tokenizer's tokenizer.json and vocab.txt and for text
// files), so each refuses such a path with the same words before opening it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public enum FileKind {
    /// What a non-regular file is, in words ("a named pipe (FIFO)"); nil for a regular file.
    public static func describe(mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a named pipe (FIFO)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "a special file"
        }
    }

    /// `describe` for what `path` names (symlinks followed); nil for a regular file, and when
    /// nothing is there (the open that follows reports that in its own words).
    public static func nonRegular(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return describe(mode: st.st_mode)
    }

    /// Why `read` gave no bytes, in words that follow "PATH: ".
    public enum ReadError: Error, CustomStringConvertible, Equatable {
        case notAFile(kind: String)
        case unreadable
        case tooLarge(cap: Int)

        public var description: String {
            switch self {
            case .notAFile(let kind): return "is \(kind), not a file"
            case .unreadable: return "cannot be read"
            case .tooLarge(let cap): return "larger than " + (cap >= 1 << 30 ? "\(cap >> 30) GiB" : "\(cap >> 20) MiB")
            }
        }
    }

    /// The whole of the file at `path` when it is a regular file of at most `cap` bytes (reads
    /// at most cap + 1 bytes, so a huge file costs no more than the cap).
    public static func read(_ path: String, cap: Int) throws(ReadError) -> [UInt8] {
        if let kind = nonRegular(path) { throw .notAFile(kind: kind) }
        guard let h = FileHandle(forReadingAtPath: path) else { throw .unreadable }
        defer { try? h.close() }
        let data = (try? h.read(upToCount: cap + 1)) ?? Data()
        guard data.count <= cap else { throw .tooLarge(cap: cap) }
        return [UInt8](data)
    }
}

// What a path names when ckpt expects a file: open(2) of a named pipe blocks until a writer
// appears (for ever, if none does), a character device such as /dev/zero never ends, and a
// directory is not a file. Every module that reads a file by path asks here first (Formats'
// RegularFile, the Tokenizer's tokenizer.json and vocab.txt, text and token files), so each
// refuses such a path with the same words before opening it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
}

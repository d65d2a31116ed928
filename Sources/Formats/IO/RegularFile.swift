// RegularFile: refusing what is not a file before anything opens it.
//
// open(2) of a named pipe blocks until a writer appears (for ever, if none does); a
// character device such as /dev/zero or /dev/urandom never ends; a directory is not a file.
// Every path ckpt reads as a file (checkpoints, --config, pipelines, token files) goes
// through `check` (by stat(2), following symlinks) first; MappedFile also opens with
// O_NONBLOCK, so a pipe swapped in after the check still cannot block it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum RegularFile {
    /// Throws unless `path` names a regular file (or a symlink to one).
    public static func check(_ path: String) throws(IOError) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .cannotOpen(path: path, errno: errno) }
        if let kind = kind(st.st_mode) { throw .notAFile(path: path, kind: kind) }
    }

    /// What a non-regular file is, in words; nil for a regular file.
    static func kind(_ mode: mode_t) -> String? {
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

    /// `read(path, cap:)`, or nil when nothing is at `path` (an optional file of a model
    /// directory: tokenizer_config.json, modules.json, a chat template).
    public static func readIfPresent(_ path: String, cap: Int) throws(IOError) -> [UInt8]? {
        var st = stat()
        if stat(path, &st) != 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR { return nil }
            throw .cannotOpen(path: path, errno: e)
        }
        return try read(path, cap: cap)
    }

    /// The whole content of a small file (a config, a pipeline, a token list), at most
    /// `cap` bytes; special files refused.
    public static func read(_ path: String, cap: Int) throws(IOError) -> [UInt8] {
        try check(path)
        let file = try MappedFile(path: path)
        guard file.count <= cap else { throw .tooLarge(path: path, size: file.count, cap: cap) }
        return file.withBytes { Array($0) }
    }
}

// RegularFile: refusing what is not a file before anything opens it (CkptCore's FileKind).
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

import CkptCore

public enum RegularFile {
    /// Throws unless `path` names a regular file (or a symlink to one).
    public static func check(_ path: String) throws(IOError) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .cannotOpen(path: path, errno: errno) }
        if let kind = FileKind.describe(mode: st.st_mode) { throw .notAFile(path: path, kind: kind) }
    }

    /// `read(path, cap:)`, or nil when nothing is at `path` (an optional file of a model
    /// directory: tokenizer_config.json, modules.json, a chat template).
    public static func readIfPresent(_ path: String, cap: Int) throws(IOError) -> [UInt8]? {
        do {
            return try read(path, cap: cap)
        } catch .cannotOpen(_, let e) where e == ENOENT || e == ENOTDIR {
            return nil
        }
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

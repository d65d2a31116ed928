// AtomicPath: an output written by a library that wants a path (libhdf5), appearing under
// its name only when complete.
//
// The temporary path is reserved beside the target (O_CREAT|O_EXCL, same directory, so the
// rename is atomic), handed to the library, then fsynced, renamed and the directory fsynced
// by `commit()`. Dropped without a commit, the temporary file is removed; SIGINT/SIGTERM
// remove it through `TempFiles`, as for AtomicFile.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public struct AtomicPath: ~Copyable {
    public let target: String
    public let tempPath: String
    private var committed = false

    public init(target: String) throws(IOError) {
        self.target = target
        let url = URL(fileURLWithPath: target)
        let dir = url.deletingLastPathComponent().path
        var path = ""
        var fd: Int32 = -1
        for _ in 0..<8 {
            path = dir + "/." + url.lastPathComponent + ".ckpt-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw .cannotCreate(path: target, errno: errno) }
        close(fd)
        self.tempPath = path
        TempFiles.shared.register(path)
    }

    deinit {
        if !committed { unlink(tempPath) }
        TempFiles.shared.unregister(tempPath)
    }

    /// Call once the library has closed the file: fsync, rename into place, fsync the directory.
    public consuming func commit() throws(IOError) {
        let fd = open(tempPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .writeFailed(path: target, errno: errno) }
        let synced = fsync(fd) == 0
        let syncErrno = errno
        close(fd)
        guard synced else { throw .writeFailed(path: target, errno: syncErrno) }
        guard rename(tempPath, target) == 0 else { throw .cannotRename(from: tempPath, to: target, errno: errno) }
        committed = true
        syncDirectory(of: target)
    }
}

// AtomicPath: an output written by a library that wants a path (libhdf5), appearing under
// its name only when complete.
//
// The temporary path is reserved beside the target (O_CREAT|O_EXCL, same directory, so the
// rename is atomic), handed to the library inside `opening` (under TempFiles' lock, so an
// interruption cannot remove the path between the reservation and the library's open and
// leave a file the library re-creates), then fsynced, renamed and the directory fsynced by
// `commit()`. Dropped without a commit, the temporary file is removed; SIGINT/SIGTERM remove
// it through `TempFiles`, as for AtomicFile.

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
        TempFiles.removeStale(in: dir)
        var path = ""
        var fd: Int32 = -1
        var error: Int32 = 0
        for _ in 0..<8 {
            path = TempFiles.tempName(dir: dir, name: url.lastPathComponent)
            (fd, error) = TempFiles.shared.create(path) { open($0, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
            if fd >= 0 || error != EEXIST { break }
        }
        guard fd >= 0 else { throw .cannotCreate(path: target, errno: error) }
        close(fd)
        self.tempPath = path
    }

    deinit {
        if !committed { TempFiles.shared.remove(tempPath) }
    }

    /// Runs `body` with the temporary path: the library's create/open call goes here.
    public func opening<R, E: Error>(_ body: (String) throws(E) -> R) throws(E) -> R {
        let path = tempPath
        return try TempFiles.shared.guarded { () throws(E) -> R in try body(path) }
    }

    /// Call once the library has closed the file: fsync, rename into place, fsync the directory.
    public consuming func commit() throws(IOError) {
        let fd = open(tempPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .writeFailed(path: target, errno: errno) }
        let synced = fsync(fd) == 0
        let syncErrno = errno
        close(fd)
        guard synced else { throw .writeFailed(path: target, errno: syncErrno) }
        let error = TempFiles.shared.publish(tempPath, as: target) { rename($0, $1) }
        guard error == 0 else { throw .cannotRename(from: tempPath, to: target, errno: error) }
        committed = true
        syncDirectory(of: target)
    }
}

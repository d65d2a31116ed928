// AtomicDirectory: a directory output (a Hugging Face model directory) that is replaced as
// a whole: readers, and anything left after kill -9 at any moment, see the old directory or
// the new one, never a mix of shards.
//
// The new directory is built as a hidden sibling `.NAME.ckpt-tmp-PID-N/`. On commit:
// - no target yet: rename(2) the sibling to the target;
// - an existing target: its files this output does not replace (and that are not stale
//   weights of an earlier conversion, `isStale`) are carried into the sibling as hard links
//   (copies where the file system has none; subdirectories recreated, symlinks recreated),
//   the sibling gets the target's permissions, then renameat2(RENAME_EXCHANGE) swaps the two
//   in one step and the old content, now under the sibling's name, is removed. Where the
//   file system cannot exchange (EINVAL), the old directory is renamed aside first: a crash
//   between the two renames leaves no target and the old content beside it (the next run
//   removes it as a dead process's leftover).
// A symlink given as the target is followed: the directory it names is replaced.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public struct AtomicDirectory: ~Copyable {
    public let target: String
    public let stagePath: String
    private var committed = false

    public init(target: String) throws(IOError) {
        var target = target
        if let resolved = Self.resolvedDirectoryLink(target) { target = resolved }
        self.target = target
        let url = URL(fileURLWithPath: target)
        let dir = url.deletingLastPathComponent().path
        TempFiles.removeStale(in: dir)
        var path = ""
        var r: Int32 = -1
        var error: Int32 = 0
        for _ in 0..<8 {
            path = TempFiles.tempName(dir: dir, name: url.lastPathComponent)
            (r, error) = TempFiles.shared.create(path) { mkdir($0, 0o755) }
            if r == 0 || error != EEXIST { break }
        }
        guard r == 0 else { throw .cannotCreate(path: target, errno: error) }
        self.stagePath = path
    }

    deinit {
        if !committed { TempFiles.shared.remove(stagePath) }
    }

    /// Where to write the file `name` of the output.
    public func path(for name: String) -> String { stagePath + "/" + name }

    /// Creates the subdirectory `name` (e.g. `1_Pooling`) of the output.
    public func makeDirectory(_ name: String) throws(IOError) {
        let p = path(for: name)
        let (r, error) = TempFiles.shared.guarded { () -> (Int32, Int32) in
            let r = mkdir(p, 0o755)
            return (r, errno)
        }
        guard r == 0 || error == EEXIST else { throw .cannotCreate(path: target + "/" + name, errno: error) }
    }

    /// Puts the new directory in place of the target (see the top of the file). Files of an
    /// existing target that match `isStale` (a top-level name) and that this output did not
    /// write are left out of the new directory.
    public consuming func commit(isStale: (String) -> Bool = { _ in false }) throws(IOError) {
        var st = stat()
        if lstat(target, &st) != 0 {
            let error = TempFiles.shared.publish(stagePath, as: target) { rename($0, $1) }
            guard error == 0 else { throw .cannotRename(from: stagePath, to: target, errno: error) }
            committed = true
            syncDirectory(of: target)
            return
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .notADirectory(path: target) }
        try carry(from: target, to: stagePath, isStale: isStale)
        _ = chmod(stagePath, st.st_mode & 0o7777)
        syncDirectory(of: stagePath + "/.")
        TempFiles.testPoint("carried")
        var error = TempFiles.shared.publish(stagePath, as: target, keepRegistered: true) { Self.exchange($0, $1) }
        if error == EINVAL || error == ENOSYS || error == ENOTSUP {
            // No exchange on this file system: old aside, new in (two steps).
            let aside = TempFiles.tempName(dir: URL(fileURLWithPath: target).deletingLastPathComponent().path,
                                          name: URL(fileURLWithPath: target).lastPathComponent)
            error = TempFiles.shared.publish(stagePath, as: target, keepRegistered: true) { stage, target in
                guard rename(target, aside) == 0 else { return -1 }
                guard rename(stage, target) == 0 else {
                    let e = errno
                    _ = rename(aside, target)
                    errno = e
                    return -1
                }
                // The stage name is free again: the old content goes there to be removed.
                return rename(aside, stage)
            }
        }
        guard error == 0 else { throw .cannotRename(from: stagePath, to: target, errno: error) }
        committed = true
        syncDirectory(of: target)
        TempFiles.testPoint("exchanged")
        // The old directory, now under the temporary name.
        TempFiles.shared.remove(stagePath)
    }

    /// Carries the entries of `old` that `new` lacks into `new`: files as hard links (or
    /// copies), directories recursively (merged when both have one), symlinks recreated.
    /// `isStale` applies to the top level only.
    private func carry(from old: String, to new: String, isStale: (String) -> Bool) throws(IOError) {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: old) } catch {
            throw .readFailed(path: old, errno: errno == 0 ? EIO : errno)
        }
        for name in names.sorted() {
            if isStale(name) { continue }
            let from = old + "/" + name, to = new + "/" + name
            var st = stat(), existing = stat()
            guard lstat(from, &st) == 0 else { continue }
            let exists = lstat(to, &existing) == 0
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                if exists {
                    // Both have it: merge when both are directories; else the new entry wins.
                    if (existing.st_mode & S_IFMT) == S_IFDIR { try carry(from: from, to: to, isStale: { _ in false }) }
                    continue
                }
                let (r, error) = TempFiles.shared.guarded { () -> (Int32, Int32) in (mkdir(to, st.st_mode & 0o7777), errno) }
                guard r == 0 else { throw .cannotCreate(path: to, errno: error) }
                try carry(from: from, to: to, isStale: { _ in false })
            case S_IFREG:
                if exists { continue }
                let (r, error) = TempFiles.shared.guarded { () -> (Int32, Int32) in (link(from, to), errno) }
                if r != 0 {
                    guard error == EXDEV || error == EPERM || error == EMLINK || error == ENOTSUP else {
                        throw .cannotCreate(path: to, errno: error)
                    }
                    try copyFile(from, to)
                }
            case S_IFLNK:
                if exists { continue }
                guard let dest = try? FileManager.default.destinationOfSymbolicLink(atPath: from) else { continue }
                let (r, error) = TempFiles.shared.guarded { () -> (Int32, Int32) in (symlink(dest, to), errno) }
                guard r == 0 else { throw .cannotCreate(path: to, errno: error) }
            default:
                continue  // FIFOs, sockets, devices: not part of a model directory
            }
        }
    }

    /// Copies a file's bytes (where hard links are not possible).
    private func copyFile(_ from: String, _ to: String) throws(IOError) {
        let source = try MappedFile(path: from)
        let (fd, error) = TempFiles.shared.guarded { () -> (Int32, Int32) in
            (open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644), errno)
        }
        guard fd >= 0 else { throw .cannotCreate(path: to, errno: error) }
        defer { close(fd) }
        let failure: Int32? = source.withBytes { b in
            var done = 0
            while done < b.count {
                let n = write(fd, b.baseAddress! + done, b.count - done)
                if n < 0 { if errno == EINTR { continue }; return errno }
                done += n
            }
            return fsync(fd) == 0 ? nil : errno
        }
        if let failure { throw .writeFailed(path: to, errno: failure) }
    }

    /// If `path` is a symlink to a directory, the directory's real path.
    static func resolvedDirectoryLink(_ path: String) -> String? {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK,
              stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR,
              let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }

    /// Atomically swaps two directory entries (renameat2 RENAME_EXCHANGE); -1 with errno
    /// EINVAL where that does not exist.
    static func exchange(_ a: String, _ b: String) -> Int32 {
        #if os(Linux)
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        // glibc ≥ 2.28 exports renameat2; looked up at run time as Glibc's module map does
        // not declare it (it is a GNU extension).
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else {
            errno = EINVAL
            return -1
        }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        return renameat2(AT_FDCWD, a, AT_FDCWD, b, 1 << 1 /* RENAME_EXCHANGE */)
        #else
        errno = EINVAL
        return -1
        #endif
    }
}

// AtomicFile: an output file that appears under its name only when complete.
//
// Bytes go to a hidden temporary file beside the target (same directory, so the final
// rename(2) is atomic on one file system). `commit()` flushes, fsyncs, renames and fsyncs
// the directory; if the value is dropped without a commit (an error was thrown), the
// temporary file is removed. A run killed by SIGINT/SIGTERM removes its temporary files
// through `TempFiles` (the CLI installs the handlers); only SIGKILL can leave one behind,
// and never under the target's name.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public struct AtomicFile: ~Copyable {
    public let target: String
    public let tempPath: String
    private var fd: Int32
    private var buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0
    private var committed = false
    /// Bytes written so far (the size of the finished file once committed).
    public private(set) var bytesWritten = 0

    /// Small writes are gathered up to this size; larger ones go straight to the kernel.
    static let bufferSize = 1 << 20

    public init(target: String) throws(IOError) {
        self.target = target
        let url = URL(fileURLWithPath: target)
        let dir = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        var path = ""
        var fd: Int32 = -1
        for _ in 0..<8 {
            path = dir + "/." + name + ".ckpt-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw .cannotCreate(path: target, errno: errno) }
        self.fd = fd
        self.tempPath = path
        self.buffer = .allocate(byteCount: Self.bufferSize, alignment: 64)
        TempFiles.shared.register(path)
    }

    deinit {
        if fd >= 0 { close(fd) }
        if !committed {
            unlink(tempPath)
        }
        TempFiles.shared.unregister(tempPath)
        buffer.deallocate()
    }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws(IOError) {
        guard bytes.count > 0 else { return }
        if buffered + bytes.count <= buffer.count {
            buffer.baseAddress!.advanced(by: buffered).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            buffered += bytes.count
        } else {
            try flush()
            if bytes.count < buffer.count {
                buffer.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                buffered = bytes.count
            } else {
                try writeAll(bytes)
            }
        }
        bytesWritten += bytes.count
    }

    public mutating func write(_ bytes: [UInt8]) throws(IOError) {
        for start in stride(from: 0, to: bytes.count, by: Self.bufferSize) {
            let chunk = bytes[start..<min(bytes.count, start + Self.bufferSize)]
            var failure: IOError?
            chunk.withUnsafeBytes { b in
                do throws(IOError) { try self.write(b) } catch { failure = error }
            }
            if let failure { throw failure }
        }
    }

    /// Writes `count` zero bytes (padding).
    public mutating func writeZeros(_ count: Int) throws(IOError) {
        try write([UInt8](repeating: 0, count: count))
    }

    private mutating func flush() throws(IOError) {
        guard buffered > 0 else { return }
        try writeAll(UnsafeRawBufferPointer(rebasing: buffer[0..<buffered]))
        buffered = 0
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws(IOError) {
        var done = 0
        while done < bytes.count {
            let n = posixWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: target, errno: errno)
            }
            done += n
        }
    }

    /// Makes the file durable and gives it its name. Replaces an existing file atomically.
    public consuming func commit() throws(IOError) {
        try flush()
        guard fsync(fd) == 0 else { throw .writeFailed(path: target, errno: errno) }
        close(fd)
        fd = -1
        guard rename(tempPath, target) == 0 else { throw .cannotRename(from: tempPath, to: target, errno: errno) }
        committed = true
        syncDirectory(of: target)
    }
}

/// fsync on the directory holding `path`, so a rename into it survives a crash.
func syncDirectory(of path: String) {
    let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
    let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
        _ = fsync(dfd)
        close(dfd)
    }
}

/// Temporary paths that must not outlive an interrupted run.
public final class TempFiles: @unchecked Sendable {
    public static let shared = TempFiles()
    private let lock = NSLock()
    private var paths: Set<String> = []

    func register(_ path: String) { lock.withLock { _ = paths.insert(path) } }
    func unregister(_ path: String) { lock.withLock { _ = paths.remove(path) } }

    /// Removes every registered temporary file or directory (called on SIGINT/SIGTERM).
    public func removeAll() {
        let all = lock.withLock { paths }
        for p in all { try? FileManager.default.removeItem(atPath: p) }
    }
}

#if canImport(Glibc)
private let posixWrite = Glibc.write
#else
private let posixWrite = Darwin.write
#endif

/// A directory output (sharded checkpoints) that appears only when complete: files are
/// written into a hidden staging directory beside the target, then moved in, JSON index
/// last, so a reader never sees an index pointing at missing shards.
public struct AtomicDirectory: ~Copyable {
    public let target: String
    public let stagePath: String
    private var committed = false

    public init(target: String) throws(IOError) {
        self.target = target
        let url = URL(fileURLWithPath: target)
        let stage = url.deletingLastPathComponent().path + "/." + url.lastPathComponent
            + ".ckpt-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(stage, 0o755) == 0 else { throw .cannotCreate(path: target, errno: errno) }
        self.stagePath = stage
        TempFiles.shared.register(stage)
    }

    deinit {
        if !committed { try? FileManager.default.removeItem(atPath: stagePath) }
        TempFiles.shared.unregister(stagePath)
    }

    /// Where to write the file `name` of the output.
    public func path(for name: String) -> String { stagePath + "/" + name }

    /// Moves the staged files into place. Into an existing directory, files are moved one by
    /// one (index last) and then files matching `isStale` that this output did not write are
    /// removed (old shards of an earlier conversion).
    public consuming func commit(isStale: (String) -> Bool = { _ in false }) throws(IOError) {
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: target, isDirectory: &isDir) {
            guard rename(stagePath, target) == 0 else {
                throw .cannotRename(from: stagePath, to: target, errno: errno)
            }
            committed = true
            syncDirectory(of: target)
            return
        }
        guard isDir.boolValue else { throw .notADirectory(path: target) }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: stagePath)) ?? [])
            .sorted { ($0.hasSuffix(".json") ? 1 : 0, $0) < ($1.hasSuffix(".json") ? 1 : 0, $1) }
        for name in names {
            let to = target + "/" + name
            guard rename(stagePath + "/" + name, to) == 0 else {
                throw .cannotRename(from: stagePath + "/" + name, to: to, errno: errno)
            }
        }
        let written = Set(names)
        for old in (try? FileManager.default.contentsOfDirectory(atPath: target)) ?? []
        where !written.contains(old) && isStale(old) {
            unlink(target + "/" + old)
        }
        committed = true
        rmdir(stagePath)
        syncDirectory(of: target + "/.")
    }
}

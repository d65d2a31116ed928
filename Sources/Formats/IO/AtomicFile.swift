// AtomicFile: an output file that appears under its name only when complete.
//
// Bytes go to a hidden temporary file beside the target (same directory, so the final
// rename(2) is atomic on one file system). `commit()` flushes, fsyncs, renames and fsyncs
// the directory; if the value is dropped without a commit (an error was thrown), the
// temporary file is removed.
//
// Interruption (SIGINT/SIGTERM): every step that creates a temporary path or renames one
// into place runs under `TempFiles`' lock; the CLI's handler takes that lock for good,
// removes the registered temporary paths and ends the process with _exit, so no output step
// can start or finish behind its back, and a path is either published (complete) or
// removed. Only SIGKILL (or a power cut) can leave a temporary path behind — never under the
// target's name — and the next run that writes into that directory removes those of dead
// processes (`TempFiles.removeStale`).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels
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
        TempFiles.removeStale(in: dir)
        var path = ""
        var fd: Int32 = -1
        var error: Int32 = 0
        for _ in 0..<8 {
            path = TempFiles.tempName(dir: dir, name: name)
            (fd, error) = TempFiles.shared.create(path) { open($0, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
            if fd >= 0 || error != EEXIST { break }
        }
        guard fd >= 0 else { throw .cannotCreate(path: target, errno: error) }
        self.fd = fd
        self.tempPath = path
        self.buffer = .allocate(byteCount: Self.bufferSize, alignment: 64)
    }

    deinit {
        if fd >= 0 { close(fd) }
        if !committed { TempFiles.shared.remove(tempPath) }
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
                TempFiles.testPoint("wrote")
            }
        }
        bytesWritten += bytes.count
    }

    /// Appends `bytes`, which are the `bytes.count` bytes of `source` at `offset` (a view of
    /// its mapping), copied inside the kernel (copy_file_range: no page faults on the mapping,
    /// no copy through user memory) where the file systems allow it; what the kernel does not
    /// copy is written from `bytes`. The file's contents are the same either way.
    public mutating func write(_ bytes: UnsafeRawBufferPointer, copyingFrom source: MappedFile, offset: Int) throws(IOError) {
        guard bytes.count >= Self.bufferSize, source.descriptor >= 0, !Self.kernelCopyFailed.value else { return try write(bytes) }
        try flush()
        var done = 0
        while done < bytes.count {
            let n = ck_copy_file_range(source.descriptor, Int64(offset + done), fd, bytes.count - done)
            // 0 or an error (no such call, file systems that cannot, anything else): the
            // rest goes through write(2), which reports any real write failure itself.
            if n <= 0 {
                if n != 0 { Self.kernelCopyFailed.value = true }
                break
            }
            done += Int(n)
        }
        if done < bytes.count { try writeAll(UnsafeRawBufferPointer(rebasing: bytes[done...])) }
        TempFiles.testPoint("wrote")
        bytesWritten += bytes.count
    }

    /// Set once copy_file_range has failed, so later copies go straight to write(2).
    private static let kernelCopyFailed = AtomicFlag()

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
        TempFiles.testPoint("wrote")
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
        let error = TempFiles.shared.publish(tempPath, as: target) { rename($0, $1) }
        guard error == 0 else { throw .cannotRename(from: tempPath, to: target, errno: error) }
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

/// A Bool shared between threads (a hint: a stale read only costs one more attempt).
private final class AtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var value: Bool {
        get { lock.withLock { flag } }
        set { lock.withLock { flag = newValue } }
    }
}

#if canImport(Glibc)
private let posixWrite = Glibc.write
#else
private let posixWrite = Darwin.write
#endif


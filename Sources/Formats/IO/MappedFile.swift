// MappedFile: a read-only, private memory mapping of a whole file, and views into it.
//
// Readers parse headers straight from the mapping and hand out tensors as views
// (zero-copy). Writers that stream a checkpoint call `releaseResidentPages()` after each
// tensor so the file's pages leave this process's resident set: peak memory then follows
// the largest tensor, not the checkpoint.
//
// SAFETY: the mapping lives as long as the MappedFile object; every view holds a strong
// reference to it, and no pointer escapes a `withBytes` call. If another process truncates
// the file while it is mapped, touching the lost pages raises SIGBUS: a view checks the
// file's current size (fstat) before handing out its bytes and throws `IOError.truncated`
// instead, so a file cut short between two reads of a streamed pass ends in an error, not a
// crash; only a truncation during the very read in progress still raises the signal.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CkptCore

public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let count: Int
    private let base: UnsafeRawPointer?
    /// The mapped file, kept open so writers can copy its bytes inside the kernel
    /// (`AtomicFile.write(_:copyingFrom:offset:)`) from the very file that was mapped;
    /// -1 for a heap copy.
    let descriptor: Int32
    /// True when `base` is a heap copy (`init(copying:path:)`), not a mapping.
    private let copied: Bool

    public init(path: String) throws(IOError) {
        self.path = path
        copied = false
        // O_NONBLOCK: opening a named pipe must not wait for a writer (it is refused just
        // below); on a regular file the flag changes nothing for mmap.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        descriptor = fd
        var keep = false
        defer { if !keep { close(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .cannotOpen(path: path, errno: errno) }
        if let kind = FileKind.describe(mode: st.st_mode) { throw .notAFile(path: path, kind: kind) }
        count = Int(st.st_size)
        if count == 0 {
            base = nil
            keep = true
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw .cannotMap(path: path, errno: errno) }
        base = UnsafeRawPointer(p)
        keep = true
    }

    /// A heap copy of `bytes` standing in for the file `path` (which is never opened): the
    /// fuzz targets hand each input to the readers this way, without a file per input.
    init(copying bytes: UnsafeRawBufferPointer, path: String) {
        self.path = path
        copied = true
        descriptor = -1
        count = bytes.count
        guard count > 0 else {
            base = nil
            return
        }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
        copy.copyMemory(from: bytes)
        base = UnsafeRawPointer(copy.baseAddress!)
    }

    deinit {
        if let base {
            if copied { UnsafeMutableRawPointer(mutating: base).deallocate() } else { munmap(UnsafeMutableRawPointer(mutating: base), count) }
        }
        if descriptor >= 0 { close(descriptor) }
    }

    /// The whole file. SAFETY: the pointer is valid only inside `body`.
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// A view of `count` bytes at `offset`; the range must lie inside the file.
    public func slice(offset: Int, count: Int) -> MappedSlice {
        precondition(offset >= 0 && count >= 0 && offset <= self.count - count, "slice outside the mapping")
        return MappedSlice(file: self, offset: offset, count: count)
    }

    /// Throws when the file on disk is now shorter than `end` bytes (truncated since it was
    /// mapped: touching the lost pages would raise SIGBUS).
    func checkSize(covering end: Int) throws(IOError) {
        guard descriptor >= 0 else { return }
        var st = stat()
        guard fstat(descriptor, &st) == 0 else { throw .readFailed(path: path, errno: errno) }
        if Int(st.st_size) < end { throw .truncated(path: path, size: Int(st.st_size), needed: end) }
    }

    /// Tells the kernel the pages of this byte range are not needed any more. They are
    /// dropped from the resident set and re-read from the file if touched again.
    func dontNeed(offset: Int, count: Int) {
        guard let base, !copied, count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        // Only whole pages inside the range: neighbours may still be in use.
        let start = (offset + page - 1) / page * page
        let end = (offset + count) / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
    }
}

public final class MappedSlice: ExternalBytes, @unchecked Sendable {
    public let file: MappedFile
    public let offset: Int
    public let count: Int

    init(file: MappedFile, offset: Int, count: Int) {
        self.file = file
        self.offset = offset
        self.count = count
    }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try file.checkSize(covering: offset + count)
        return try file.withBytes { all in
            // SAFETY: offset..<offset+count was checked against the mapping in `slice`.
            try body(UnsafeRawBufferPointer(rebasing: all[offset..<offset + count]))
        }
    }

    public func releaseResidentPages() { file.dontNeed(offset: offset, count: count) }

    public var origin: String { file.path }
}

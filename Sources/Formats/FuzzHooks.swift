// Entry points for the fuzz targets in Fuzz/ (issue 19) that public file-level APIs cannot
// reach: the .ckz index parser and chunk decoders sit behind checksums a mutated file almost
// never satisfies, and the unpickler behind torch's container checks. They are SPI
// (`@_spi(Fuzzing) import Formats`), not part of the library's API, and do nothing the
// readers do not do themselves.

import CDeflate
import CkptCore

@_spi(Fuzzing)
public enum FuzzHooks {
    /// `bytes` as the readers' `MappedFile` named `path`, copied to the heap instead of
    /// written to a file and mapped: a fuzz input then costs no file system calls.
    public static func file(_ bytes: UnsafeRawBufferPointer, path: String) -> MappedFile {
        MappedFile(copying: bytes, path: path)
    }

    /// `Npy.read(path:name:)` on an opened file.
    public static func npy(_ file: MappedFile, name: String) throws -> Tensor {
        let (dtype, shape, offset, count) = try file.withBytes { (b) throws(NpyError) in try Npy.parse(b) }
        return try Tensor(name: name, dtype: dtype, shape: shape, data: .external(file.slice(offset: offset, count: count)))
    }

    /// `Npz.read(path:)` on an opened file.
    public static func npz(_ file: MappedFile) throws -> WeightGraph { try Npz.read(file: file) }

    /// `CKZ.read(path:jobs:)` on an opened file.
    public static func ckz(_ file: MappedFile, jobs: Int) throws -> WeightGraph {
        try CKZArchive(file: file).graph(jobs: jobs)
    }

    /// Parses `bytes` as a .ckz index (docs/ckz.md, "Index"). True when it is valid.
    @discardableResult
    public static func ckzIndex(_ bytes: [UInt8]) -> Bool {
        (try? CKZIndex.parse(bytes)) != nil
    }

    /// Decodes one raw DEFLATE stream into exactly `outputCount` bytes with both of the
    /// .ckz reader's decoders, and traps if ckpt's literal-only fast path accepts a stream
    /// libdeflate rejects or decodes differently (the fast path may only ever make valid
    /// streams faster). `outputCount` is capped by the caller.
    public static func ckzInflate(_ input: UnsafeRawBufferPointer, outputCount: Int) {
        precondition(outputCount >= 0)
        let fast = UnsafeMutableRawBufferPointer.allocate(byteCount: max(outputCount, 1), alignment: 64)
        let slow = UnsafeMutableRawBufferPointer.allocate(byteCount: max(outputCount, 1), alignment: 64)
        defer { fast.deallocate(); slow.deallocate() }
        let fastOut = UnsafeMutableRawBufferPointer(rebasing: fast[0..<outputCount])
        let slowOut = UnsafeMutableRawBufferPointer(rebasing: slow[0..<outputCount])
        guard let decompressor = libdeflate_alloc_decompressor() else { return }
        defer { libdeflate_free_decompressor(decompressor) }
        let accepted = LiteralInflater.inflate(input, into: fastOut)
        let failure = ChunkCodec.inflate(input, into: slowOut, decompressor: decompressor)
        if accepted {
            guard failure == nil else { fatalError("fast inflater accepted a stream libdeflate refuses: \(failure!)") }
            guard fastOut.elementsEqual(slowOut) else { fatalError("fast inflater and libdeflate decode differently") }
        }
    }

    /// Runs the data-only unpickler over `bytes`, pickle after pickle (as a legacy torch.save
    /// file holds several), until the bytes are used up or one is refused.
    public static func unpickle(_ bytes: UnsafeRawBufferPointer) {
        var c = ByteCursor(bytes)
        var machine = PickleMachine()
        while c.remaining > 0 {
            let before = c.position
            guard (try? machine.run(&c)) != nil, c.position > before else { return }
        }
    }
}

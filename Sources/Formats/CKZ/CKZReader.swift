// .ckz: reading. Opening validates the whole structure before anything is trusted — header,
// trailer (and its CRC), index placement, index CRC, every record of the index, and that
// tensors tile the data section in order with zero padding between them — so that any
// flipped bit outside tensor chunks is reported at open, and any inside a chunk when that
// tensor is read (by the chunk's CRC32, naming tensor and chunk). Tensors are decoded lazily:
// a tensor's bytes exist only inside `withBytes`, decoded in parallel across its chunks; a
// tensor stored verbatim is handed out straight from the memory mapping after its CRCs pass.

import CDeflate
import CkptCore
import Foundation
import OrderedCollections

/// An opened, validated .ckz file.
public final class CKZArchive: Sendable {
    public let path: String
    let file: MappedFile
    let index: CKZIndex
    let indexOffset: Int
    /// Decode buffers handed back after use, so reading tensor after tensor reuses pages
    /// already faulted in instead of mapping (and zeroing) fresh ones each time.
    let buffers = BufferPool()

    public convenience init(path: String) throws {
        let file = try MappedFile(path: path)
        do { try self.init(file: file) } catch { throw FileError(path: path, error: error) }
    }

    init(file: MappedFile) throws(CKZError) {
        self.path = file.path
        self.file = file
        (index, indexOffset) = try file.withBytes { (b) throws(CKZError) in try Self.validate(b) }
    }

    public var provenance: CKZ.Provenance? { CKZ.Provenance.parse(index.provenance) }
    public var provenanceJSON: String { index.provenance }
    public var fileSize: Int { file.count }

    /// Per-tensor storage, in file order: (name, raw bytes, stored bytes).
    public var storage: [(name: String, raw: Int, stored: Int)] {
        index.tensors.map { ($0.name, $0.rawLength, $0.storedLength) }
    }

    // MARK: Validation

    static func checkZero(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) throws(CKZError) {
        for i in range where b[i] != 0 { throw .nonzeroPadding(offset: i) }
    }

    static func validate(_ b: UnsafeRawBufferPointer) throws(CKZError) -> (CKZIndex, Int) {
        let size = b.count
        let c = ByteCursor(b)
        guard size > 0 else { throw .emptyFile }
        let head = Array(b.prefix(CKZ.magic.count))
        guard head == Array(CKZ.magic.prefix(head.count)) else { throw .badMagic }
        guard size >= CKZ.headerSize + CKZ.trailerSize else {
            throw .truncated(size: size, reason: "too short for the 64-byte header and 32-byte trailer")
        }
        // SAFETY of the force-unwraps below: the header and trailer are there (checked above).
        let version = c.le(UInt32.self, at: 8)!
        guard version == CKZ.version else { throw .unsupportedVersion(version) }
        let flags = c.le(UInt32.self, at: 12)!
        guard flags == 0 else { throw .nonzeroFlags(where: "header", value: flags) }
        try checkZero(b, 16..<CKZ.headerSize)

        let t = size - CKZ.trailerSize
        guard c.matches(CKZ.endMagic, at: size - 4) else {
            throw .truncated(size: size, reason: "no trailer at the end (the file was cut short, or its writer did not finish)")
        }
        let trailerCRC = ChunkCodec.crc32(c.bytes(at: t, count: 24)!)
        let storedTrailerCRC = c.le(UInt32.self, at: t + 24)!
        guard storedTrailerCRC == trailerCRC else { throw .trailerChecksumMismatch(expected: storedTrailerCRC, actual: trailerCRC) }
        let trailerFlags = c.le(UInt32.self, at: t + 20)!
        guard trailerFlags == 0 else { throw .nonzeroFlags(where: "trailer", value: trailerFlags) }
        let indexOffset = c.le(UInt64.self, at: t)!, indexLength = c.le(UInt64.self, at: t + 8)!
        guard indexLength <= UInt64(CKZ.maxIndexLength) else { throw .indexTooLarge(length: indexLength) }
        let (indexEnd, overflow) = indexOffset.addingReportingOverflow(indexLength)
        guard !overflow, indexEnd == UInt64(t), indexOffset >= UInt64(CKZ.headerSize),
              indexOffset % UInt64(CKZ.alignment) == 0 else {
            throw .indexOutOfPlace(offset: indexOffset, length: indexLength, fileSize: size)
        }
        let io = Int(indexOffset)
        let indexBytes = c.bytes(at: io, count: t - io)!
        let indexCRC = ChunkCodec.crc32(indexBytes)
        let storedIndexCRC = c.le(UInt32.self, at: t + 16)!
        guard storedIndexCRC == indexCRC else { throw .indexChecksumMismatch(expected: storedIndexCRC, actual: indexCRC) }
        let index = try CKZIndex.parse(indexBytes)

        // Tensors follow each other from byte 64, each at the next multiple of 64, with zero
        // bytes between them and up to the index.
        var position = CKZ.headerSize
        for e in index.tensors {
            let expected = position + CKZ.padding(position)
            guard e.dataOffset == expected else {
                throw .invalidOffsets(tensor: e.name, offset: UInt64(e.dataOffset), expected: UInt64(expected))
            }
            let (end, overflow) = e.dataOffset.addingReportingOverflow(e.storedLength)
            guard !overflow, end <= io else {
                throw .dataPastEnd(tensor: e.name, end: UInt64(e.dataOffset) &+ UInt64(e.storedLength), limit: UInt64(io))
            }
            try checkZero(b, position..<expected)
            position = end
        }
        guard position + CKZ.padding(position) == io else {
            throw .malformedIndex("tensor data ends at \(position), but the index starts at \(io) (expected \(position + CKZ.padding(position)))")
        }
        try checkZero(b, position..<io)
        return (index, io)
    }

    // MARK: Weight graph

    public func graph(jobs: Int? = nil) throws -> WeightGraph {
        let jobs = max(1, jobs ?? ProcessInfo.processInfo.activeProcessorCount)
        var graph = WeightGraph()
        graph.metadata = index.metadata
        do {
            for e in index.tensors {
                try graph.add(Tensor(name: e.name, dtype: e.dtype, shape: e.shape,
                                     data: .external(CKZTensorBytes(archive: self, entry: e, jobs: jobs))))
            }
            for t in index.ties { try graph.tie(t.alias, to: t.target) }
            if let config = index.config { graph.config = try ModelConfig(jsonBytes: config) }
        } catch {
            throw FileError(path: path, error: error)
        }
        return graph
    }
}

extension CKZ {
    /// Opens a .ckz file as a weight graph; tensors are decoded when first used.
    public static func read(path: String, jobs: Int? = nil) throws -> WeightGraph {
        try CKZArchive(path: path).graph(jobs: jobs)
    }
}

/// One tensor of a .ckz file, decoded on demand.
public final class CKZTensorBytes: ExternalBytes, Sendable {
    let archive: CKZArchive
    let entry: CKZTensorEntry
    let jobs: Int

    init(archive: CKZArchive, entry: CKZTensorEntry, jobs: Int) {
        self.archive = archive
        self.entry = entry
        self.jobs = jobs
    }

    public var count: Int { entry.rawLength }
    /// Bytes the tensor takes in the file.
    public var storedCount: Int { entry.storedLength }
    public var origin: String { archive.path }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        do {
            return try archive.file.withBytes { file in
                let stored = UnsafeRawBufferPointer(rebasing: file[entry.dataOffset..<entry.dataOffset + entry.storedLength])
                if entry.isVerbatim {
                    try ChunkDecoder.verify(entry, stored: stored, jobs: jobs)
                    return try body(stored)
                }
                let out = archive.buffers.take(entry.rawLength)
                defer { archive.buffers.give(out) }
                try ChunkDecoder.decode(entry, stored: stored, into: out, jobs: jobs, pool: archive.buffers)
                return try body(UnsafeRawBufferPointer(out.range(0, entry.rawLength)))
            }
        } catch let e as CKZError {
            throw FileError(path: archive.path, error: e)
        }
    }

    public func releaseResidentPages() {
        archive.file.dontNeed(offset: entry.dataOffset, count: entry.storedLength)
    }

    /// Decodes every chunk and checks both CRC32s without materialising the tensor (as
    /// `gzip -t` does): each thread decodes into one chunk-sized buffer, reused.
    public func verify() throws {
        do {
            try archive.file.withBytes { file in
                let stored = UnsafeRawBufferPointer(rebasing: file[entry.dataOffset..<entry.dataOffset + entry.storedLength])
                if entry.isVerbatim { return try ChunkDecoder.verify(entry, stored: stored, jobs: jobs) }
                try ChunkDecoder.decode(entry, stored: stored, into: nil, jobs: jobs, pool: archive.buffers)
            }
        } catch let e as CKZError {
            throw FileError(path: archive.path, error: e)
        }
    }
}

enum ChunkDecoder {
    /// Start of each chunk inside the tensor's stored bytes (validated to tile them exactly).
    static func offsets(_ entry: CKZTensorEntry) -> [Int] {
        var offsets: [Int] = []
        offsets.reserveCapacity(entry.chunks.count)
        var o = 0
        for c in entry.chunks {
            offsets.append(o)
            o += c.storedLength
        }
        return offsets
    }

    /// CRC checks of a verbatim tensor (stored = raw), in parallel.
    static func verify(_ entry: CKZTensorEntry, stored: UnsafeRawBufferPointer, jobs: Int) throws(CKZError) {
        let offsets = offsets(entry)
        let errors = Slots<CKZError>(count: entry.chunks.count)
        Parallel.forEach(entry.chunks.count, jobs: jobs) { i in
            let c = entry.chunks[i]
            let crc = ChunkCodec.crc32(UnsafeRawBufferPointer(rebasing: stored[offsets[i]..<offsets[i] + c.storedLength]))
            if crc != c.storedCRC {
                errors[i] = .chunkChecksumMismatch(tensor: entry.name, chunk: i, expected: c.storedCRC, actual: crc)
            } else if crc != c.rawCRC {
                errors[i] = .rawChecksumMismatch(tensor: entry.name, chunk: i, expected: c.rawCRC, actual: crc)
            }
        }
        for i in 0..<errors.count { if let e = errors[i] { throw e } }
    }

    /// Decodes every chunk into `out` (rawLength bytes), `jobs` slices in parallel; with
    /// `out` nil, each slice decodes into one reused chunk buffer (checking only). The
    /// first failing chunk (lowest index) is reported, whatever the thread timing.
    static func decode(_ entry: CKZTensorEntry, stored: UnsafeRawBufferPointer, into out: AlignedBuffer?, jobs: Int,
                       pool: BufferPool = BufferPool()) throws(CKZError) {
        let offsets = offsets(entry)
        let errors = Slots<CKZError>(count: entry.chunks.count)
        let slices = max(1, min(jobs, entry.chunks.count))
        Parallel.forEach(slices, jobs: slices) { s in
            guard let decompressor = libdeflate_alloc_decompressor() else {
                errors[s * entry.chunks.count / slices] = .chunkDecodeFailed(tensor: entry.name, chunk: s * entry.chunks.count / slices, plane: 0, reason: "out of memory")
                return
            }
            defer { libdeflate_free_decompressor(decompressor) }
            // The largest chunk is the first: a tensor smaller than a chunk needs no more.
            let scratch = pool.take(entry.rawLength(ofChunk: 0))
            let sink = out == nil ? pool.take(entry.rawLength(ofChunk: 0)) : nil
            defer {
                pool.give(scratch)
                if let sink { pool.give(sink) }
            }
            for i in (s * entry.chunks.count / slices)..<((s + 1) * entry.chunks.count / slices) {
                let c = entry.chunks[i]
                let input = UnsafeRawBufferPointer(rebasing: stored[offsets[i]..<offsets[i] + c.storedLength])
                let output = out?.range(i * entry.chunkSize, entry.rawLength(ofChunk: i)) ?? sink!.range(0, entry.rawLength(ofChunk: i))
                do throws(CKZError) { try decodeChunk(entry, i, c, input, output, scratch, decompressor) } catch { errors[i] = error }
            }
        }
        for i in 0..<errors.count { if let e = errors[i] { throw e } }
    }

    static func decodeChunk(_ entry: CKZTensorEntry, _ i: Int, _ c: CKZChunk, _ input: UnsafeRawBufferPointer,
                            _ output: UnsafeMutableRawBufferPointer, _ scratch: AlignedBuffer,
                            _ decompressor: OpaquePointer) throws(CKZError) {
        let storedCRC = ChunkCodec.crc32(input)
        guard storedCRC == c.storedCRC else {
            throw .chunkChecksumMismatch(tensor: entry.name, chunk: i, expected: c.storedCRC, actual: storedCRC)
        }
        let planeRaw = output.count / c.planes.count
        var planePointers: [UnsafeRawPointer] = []
        var at = 0
        for (p, plane) in c.planes.enumerated() {
            let data = UnsafeRawBufferPointer(rebasing: input[at..<at + plane.length])
            at += plane.length
            // Filter 0 decodes straight into the output; filter 1 into the scratch planes.
            let target = c.filter == .none ? output : scratch.range(p * planeRaw, planeRaw)
            switch plane.codec {
            case .stored:
                if c.filter == .none {
                    target.copyMemory(from: data)
                } else if let base = data.baseAddress {
                    planePointers.append(base)
                    continue
                }
            case .deflate:
                // ckpt's own literal-only streams take the fast path; anything else, or
                // anything it doubts, goes to libdeflate (CKZHuffmanDecoderUnsafe.swift).
                if !LiteralInflater.inflate(data, into: target),
                   let reason = ChunkCodec.inflate(data, into: target, decompressor: decompressor) {
                    throw .chunkDecodeFailed(tensor: entry.name, chunk: i, plane: p, reason: reason)
                }
            }
            if let base = target.baseAddress { planePointers.append(UnsafeRawPointer(base)) }
        }
        if c.filter == .planes { ChunkCodec.joinPlanes(planePointers, into: output) }
        let rawCRC = ChunkCodec.crc32(UnsafeRawBufferPointer(output))
        guard rawCRC == c.rawCRC else {
            throw .rawChecksumMismatch(tensor: entry.name, chunk: i, expected: c.rawCRC, actual: rawCRC)
        }
    }
}

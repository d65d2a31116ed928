// .ckz: writing. Tensors are streamed in graph order into an AtomicFile: a batch of
// consecutive tensors (up to 64 MiB of raw bytes, or one larger tensor) is cut into chunks,
// the chunks are compressed in parallel into their own slots, and one sequential writer
// appends them in order. The index and trailer come last, so nothing is buffered but the
// batch: memory follows the largest tensor. Output is identical for any `jobs`.

import CDeflate
import CkptCore
import Foundation
import OrderedCollections

extension CKZ {
    public struct WriteOptions: Sendable {
        public var level: Level
        public var jobs: Int
        public var chunkSize: Int
        /// The provenance JSON object to embed; nil records only the writer.
        public var provenance: Provenance?

        public init(level: Level = .default, jobs: Int? = nil, chunkSize: Int = CKZ.defaultChunkSize, provenance: Provenance? = nil) {
            self.level = level
            self.jobs = max(1, jobs ?? ProcessInfo.processInfo.activeProcessorCount)
            self.chunkSize = chunkSize
            self.provenance = provenance
        }
    }

    /// Raw bytes gathered into one parallel pass.
    static let batchBytes = 64 << 20

    struct EncodedChunk {
        var record: CKZChunk
        var payload: [UInt8]
    }

    public static func write(_ graph: WeightGraph, to path: String, options: WriteOptions = .init(),
                             progress: (any ProgressSink)? = nil) throws {
        guard options.chunkSize >= chunkSizeGranule, options.chunkSize <= maxChunkSize,
              options.chunkSize % chunkSizeGranule == 0 else {
            throw CKZError.cannotWrite(tensor: "", reason: "chunk size \(options.chunkSize) must be a multiple of 64 in 64...\(maxChunkSize)")
        }
        let tensors = Array(graph.tensors.values)
        var index = CKZIndex()
        index.provenance = (options.provenance ?? Provenance()).json()
        index.metadata = graph.metadata
        if let config = graph.config {
            let bytes = config.serialized()
            guard bytes.count <= maxConfigLength else { throw CKZError.invalidConfig("larger than 16 MiB") }
            index.config = bytes
        }
        index.ties = graph.ties.map { ($0.key, $0.value) }
        for t in tensors {
            guard t.name.utf8.count <= maxNameLength else { throw CKZError.cannotWrite(tensor: t.name, reason: "name longer than 65,536 bytes") }
            guard t.shape.count <= maxRank else { throw CKZError.cannotWrite(tensor: t.name, reason: "rank above \(maxRank)") }
        }

        var file = try AtomicFile(target: path)
        var header = magic
        ByteWriter.appendU32(version, to: &header)
        ByteWriter.appendU32(0, to: &header)
        header += [UInt8](repeating: 0, count: headerSize - header.count)
        try file.write(header)

        var start = 0
        while start < tensors.count {
            var end = start + 1
            var batch = tensors[start].byteCount
            while end < tensors.count && batch + tensors[end].byteCount <= batchBytes {
                batch += tensors[end].byteCount
                end += 1
            }
            let slice = tensors[start..<end]
            let encoded = try withBytesOfAll(slice) { raws in
                try encodeBatch(Array(slice), raws: raws, options: options)
            }
            for (t, chunks) in zip(slice, encoded) {
                try file.writeZeros(padding(file.bytesWritten))
                let offset = file.bytesWritten
                for c in chunks { try file.write(c.payload) }
                index.tensors.append(CKZTensorEntry(
                    name: t.name, dtype: t.dtype, shape: t.shape, quantization: "",
                    dataOffset: offset, storedLength: file.bytesWritten - offset, rawLength: t.byteCount,
                    chunkSize: options.chunkSize, chunks: chunks.map(\.record)))
                t.data.releaseResidentPages()
                progress?.advance(bytes: t.byteCount)
            }
            start = end
        }

        try file.writeZeros(padding(file.bytesWritten))
        let indexOffset = file.bytesWritten
        let indexBytes = index.serialized()
        guard indexBytes.count <= maxIndexLength else {
            throw CKZError.cannotWrite(tensor: tensors.last?.name ?? "", reason: "index would exceed the 1 GiB cap")
        }
        try file.write(indexBytes)
        var trailer: [UInt8] = []
        ByteWriter.appendU64(UInt64(indexOffset), to: &trailer)
        ByteWriter.appendU64(UInt64(indexBytes.count), to: &trailer)
        ByteWriter.appendU32(indexBytes.withUnsafeBytes { ChunkCodec.crc32($0) }, to: &trailer)
        ByteWriter.appendU32(0, to: &trailer)
        ByteWriter.appendU32(trailer.withUnsafeBytes { ChunkCodec.crc32($0) }, to: &trailer)
        trailer += endMagic
        try file.write(trailer)
        try file.commit()
    }

    static func padding(_ offset: Int) -> Int { (alignment - offset % alignment) % alignment }

    /// Compresses every chunk of a batch of tensors, in parallel, into per-chunk slots.
    static func encodeBatch(_ tensors: [Tensor], raws: [UnsafeRawBufferPointer], options: WriteOptions) throws -> [[EncodedChunk]] {
        var jobs: [(tensor: Int, chunk: Int)] = []
        for (i, t) in tensors.enumerated() {
            let count = (t.byteCount + options.chunkSize - 1) / options.chunkSize
            for c in 0..<count { jobs.append((i, c)) }
        }
        let slots = Slots<EncodedChunk>(count: jobs.count)
        let size = options.chunkSize
        Parallel.forEach(jobs.count, jobs: options.jobs) { j in
            let (ti, ci) = jobs[j]
            let raw = raws[ti]
            let lo = ci * size, hi = min(raw.count, lo + size)
            slots[j] = encodeChunk(UnsafeRawBufferPointer(rebasing: raw[lo..<hi]),
                                   width: planeWidth(for: tensors[ti].dtype), level: options.level)
        }
        var out = [[EncodedChunk]](repeating: [], count: tensors.count)
        for (j, job) in jobs.enumerated() { out[job.tensor].append(slots[j]!) }
        return out
    }

    /// The smallest of the encodings `level` allows for one chunk.
    static func encodeChunk(_ raw: UnsafeRawBufferPointer, width: Int?, level: Level) -> EncodedChunk {
        let rawCRC = ChunkCodec.crc32(raw)
        func verbatim() -> EncodedChunk {
            EncodedChunk(record: CKZChunk(filter: .none, rawCRC: rawCRC, storedCRC: rawCRC,
                                          planes: [CKZPlane(codec: .stored, length: raw.count)]),
                         payload: Array(raw))
        }
        guard level.compresses, raw.count > 0 else { return verbatim() }
        var payload: [UInt8] = []
        var planes: [CKZPlane] = []
        let filter: Filter
        if let w = width, raw.count % w == 0 {
            filter = .planes
            var split = [UInt8](repeating: 0, count: raw.count)
            split.withUnsafeMutableBytes { ChunkCodec.splitPlanes(raw, width: w, into: $0) }
            let n = raw.count / w
            payload.reserveCapacity(raw.count)
            split.withUnsafeBytes { s in
                for j in 0..<w {
                    let plane = UnsafeRawBufferPointer(rebasing: s[j * n..<(j + 1) * n])
                    if let coded = encodePlane(plane, deflateLevel: level.deflateLevelAll, minimumSaving: level.minimumSaving) {
                        planes.append(CKZPlane(codec: .deflate, length: coded.count))
                        payload += coded
                    } else {
                        planes.append(CKZPlane(codec: .stored, length: n))
                        payload.append(contentsOf: plane)
                    }
                }
            }
            if planes.allSatisfy({ $0.codec == .stored }) { return verbatim() }
        } else {
            filter = .none
            guard let coded = encodePlane(raw, deflateLevel: level.deflateLevelUnfiltered, minimumSaving: level.minimumSaving) else {
                return verbatim()
            }
            planes = [CKZPlane(codec: .deflate, length: coded.count)]
            payload = coded
        }
        let storedCRC = payload.withUnsafeBytes { ChunkCodec.crc32($0) }
        return EncodedChunk(record: CKZChunk(filter: filter, rawCRC: rawCRC, storedCRC: storedCRC, planes: planes),
                            payload: payload)
    }

    /// A DEFLATE stream for `plane` if one saves at least `minimumSaving` of its size:
    /// Huffman-only (its size is known exactly before encoding), or LZ-matching DEFLATE at
    /// `deflateLevel` when that is smaller still. nil: store the plane.
    static func encodePlane(_ plane: UnsafeRawBufferPointer, deflateLevel: Int32?, minimumSaving: Double) -> [UInt8]? {
        let limit = Int(Double(plane.count) * (1 - minimumSaving))
        var best: [UInt8]?
        let plan = ChunkCodec.planHuffman(histogram: ChunkCodec.histogram(plane))
        if plan.byteCount <= limit {
            var out = [UInt8](repeating: 0, count: plan.byteCount + 8)
            let n = out.withUnsafeMutableBytes { ChunkCodec.encodeHuffman(plane, plan: plan, into: $0) }
            out.removeLast(out.count - n)
            best = out
        }
        if let deflateLevel, let d = ChunkCodec.deflate(plane, level: deflateLevel, limit: min(best?.count ?? limit + 1, limit + 1)) {
            best = d
        }
        return best
    }
}

extension ByteWriter {
    static func appendU32(_ v: UInt32, to bytes: inout [UInt8]) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    static func appendU64(_ v: UInt64, to bytes: inout [UInt8]) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
}

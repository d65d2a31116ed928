// .ckz: writing. Tensors are streamed in graph order into an AtomicFile: a batch of
// consecutive tensors (up to 64 MiB of raw bytes, or one larger tensor) is cut into chunks,
// the chunks are compressed in parallel, a 16 MiB window at a time, into their own regions
// of one reused arena, and one sequential writer appends them in order. The index and
// trailer come last, so nothing is buffered but a window: memory follows the largest tensor
// (whose bytes a lazy source computes whole). Output is identical for any `jobs`.

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
        /// A provenance still being computed (source hashes); wins over `provenance`.
        public var pendingProvenance: Provenance.Pending?

        public init(level: Level = .default, jobs: Int? = nil, chunkSize: Int = CKZ.defaultChunkSize, provenance: Provenance? = nil) {
            self.level = level
            self.jobs = max(1, jobs ?? ProcessInfo.processInfo.activeProcessorCount)
            self.chunkSize = chunkSize
            self.provenance = provenance
        }
    }

    /// Raw bytes gathered into one parallel pass.
    static let batchBytes = 64 << 20

    /// A chunk's record and where its stored bytes lie in the batch's arena.
    struct EncodedChunk {
        var record: CKZChunk
        var offset: Int
        var length: Int
    }

    /// Bytes each chunk's arena region has beyond its raw size (the Huffman encoder's 8-byte
    /// stores run past its end).
    static let regionSlack = 64

    public static func write(_ graph: WeightGraph, to path: String, options: WriteOptions = .init(),
                             progress: (any ProgressSink)? = nil) throws {
        guard options.chunkSize >= chunkSizeGranule, options.chunkSize <= maxChunkSize,
              options.chunkSize % chunkSizeGranule == 0 else {
            throw CKZError.cannotWrite(tensor: "", reason: "chunk size \(options.chunkSize) must be a multiple of 64 in 64...\(maxChunkSize)")
        }
        let tensors = Array(graph.tensors.values)
        var index = CKZIndex()
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

        // Chunks are compressed a window at a time (≤ windowBytes of raw bytes, possibly
        // part of one large tensor) into one arena reused window after window, so its pages
        // are faulted in once; each window is written before the next is encoded.
        // (Pages of the arena that no window reaches are never touched, so never faulted in.)
        let windowBytes = Self.windowBytes(options)
        let arena = AlignedBuffer(count: windowBytes + options.chunkSize + regionSlack)
        // Per-thread scratch, reused window after window: a plane's DEFLATE stream before it is
        // placed, and the Huffman writer's pair table.
        let scratch = (0..<options.jobs).map { _ in
            (plane: AlignedBuffer(count: options.chunkSize + regionSlack), pairs: AlignedBuffer(count: ChunkCodec.pairTableCount * 8))
        }
        var start = 0
        while start < tensors.count {
            var end = start + 1
            var batch = tensors[start].byteCount
            while end < tensors.count && batch + tensors[end].byteCount <= batchBytes {
                batch += tensors[end].byteCount
                end += 1
            }
            let group = Array(tensors[start..<end])
            try withBytesOfAll(tensors[start..<end]) { raws in
                var jobs: [(tensor: Int, chunk: Int)] = []
                for (i, t) in group.enumerated() {
                    for c in 0..<(t.byteCount + options.chunkSize - 1) / options.chunkSize { jobs.append((i, c)) }
                }
                var window: [EncodedChunk] = [], windowStart = 0
                func chunk(_ j: Int) -> EncodedChunk {
                    if j >= windowStart + window.count {
                        var hi = j, bytes = 0
                        while hi < jobs.count {
                            let t = group[jobs[hi].tensor]
                            // Region bytes: the first chunk always fits (chunkSize + slack).
                            let n = min(options.chunkSize, t.byteCount - jobs[hi].chunk * options.chunkSize) + regionSlack
                            if hi > j && bytes + n > windowBytes { break }
                            bytes += n
                            hi += 1
                        }
                        windowStart = j
                        window = encodeWindow(Array(jobs[j..<hi]), tensors: group, raws: raws, options: options, arena: arena,
                                                      scratch: scratch)
                    }
                    return window[j - windowStart]
                }
                var next = 0
                for (i, t) in group.enumerated() {
                    try file.writeZeros(padding(file.bytesWritten))
                    let offset = file.bytesWritten
                    var records: [CKZChunk] = []
                    while next < jobs.count && jobs[next].tensor == i {
                        let c = chunk(next)
                        try file.write(UnsafeRawBufferPointer(arena.range(c.offset, c.length)))
                        records.append(c.record)
                        next += 1
                    }
                    index.tensors.append(CKZTensorEntry(
                        name: t.name, dtype: t.dtype, shape: t.shape, quantization: "",
                        dataOffset: offset, storedLength: file.bytesWritten - offset, rawLength: t.byteCount,
                        chunkSize: options.chunkSize, chunks: records))
                    progress?.advance(bytes: t.byteCount)
                }
            }
            for t in group { t.data.releaseResidentPages() }
            start = end
        }

        // The provenance last: a pending one hashed its sources while the chunks were encoded.
        index.provenance = try (options.pendingProvenance?.wait() ?? options.provenance ?? Provenance()).json()
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

    /// Raw bytes compressed per window (see `write`): four chunks for every thread, at most
    /// 16 MiB. A small window keeps the arena (faulted in on first use) small with one thread.
    static func windowBytes(_ options: WriteOptions) -> Int {
        min(16 << 20, 4 * max(1, options.jobs) * options.chunkSize)
    }

    /// Compresses the chunks `window` lists (of `tensors`, whose bytes are `raws`), in
    /// parallel, each into its own region of `arena` (raw size + regionSlack bytes, in order).
    static func encodeWindow(_ window: [(tensor: Int, chunk: Int)], tensors: [Tensor], raws: [UnsafeRawBufferPointer],
                             options: WriteOptions, arena: AlignedBuffer,
                             scratch: [(plane: AlignedBuffer, pairs: AlignedBuffer)]) -> [EncodedChunk] {
        var jobs: [(tensor: Int, chunk: Int, region: Int)] = []
        var region = 0
        for (i, c) in window {
            jobs.append((i, c, region))
            region += min(options.chunkSize, tensors[i].byteCount - c * options.chunkSize) + regionSlack
        }
        precondition(region <= arena.count, "arena sized by the caller")
        let slots = Slots<EncodedChunk>(count: jobs.count)
        let size = options.chunkSize
        let slices = max(1, min(options.jobs, jobs.count, scratch.count))
        Parallel.forEach(slices, jobs: slices) { s in
            let (plane, pairTable) = scratch[s]
            // The pair table: every entry the Huffman writer reads, it fills first.
            let pairs = pairTable.bytes.baseAddress!.bindMemory(to: UInt64.self, capacity: ChunkCodec.pairTableCount)
            for j in (s * jobs.count / slices)..<((s + 1) * jobs.count / slices) {
                let (ti, ci, at) = jobs[j]
                let raw = raws[ti]
                let lo = ci * size, hi = min(raw.count, lo + size)
                let (record, length) = encodeChunk(UnsafeRawBufferPointer(rebasing: raw[lo..<hi]),
                                                   width: planeWidth(for: tensors[ti].dtype), level: options.level,
                                                   into: arena.range(at, hi - lo + regionSlack), scratch: plane.bytes, pairs: pairs)
                slots[j] = EncodedChunk(record: record, offset: at, length: length)
            }
        }
        return (0..<jobs.count).map { slots[$0]! }
    }

    /// The smallest of the encodings `level` allows for one chunk, written to `region`
    /// (raw.count + regionSlack bytes); returns its record and stored length.
    static func encodeChunk(_ raw: UnsafeRawBufferPointer, width: Int?, level: Level,
                            into region: UnsafeMutableRawBufferPointer, scratch: UnsafeMutableRawBufferPointer,
                            pairs: UnsafeMutablePointer<UInt64>? = nil) -> (CKZChunk, Int) {
        let rawCRC = ChunkCodec.crc32(raw)
        let dst = region.baseAddress!
        func verbatim() -> (CKZChunk, Int) {
            if raw.count > 0 { dst.copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
            return (CKZChunk(filter: .none, rawCRC: rawCRC, storedCRC: rawCRC,
                             planes: [CKZPlane(codec: .stored, length: raw.count)]), raw.count)
        }
        guard level.compresses, raw.count > 0 else { return verbatim() }
        var planes: [CKZPlane] = []
        let filter: Filter
        var at = 0
        // SAFETY: region holds raw.count + regionSlack bytes: the split planes fill
        // [0, raw.count); each plane's result goes to [at, at + length) with at ≤ its own
        // start and length < its size (or = for stored), so it never reaches a plane not yet
        // read; memmove handles the overlap with the plane being moved.
        if let w = width, raw.count % w == 0 {
            filter = .planes
            ChunkCodec.splitPlanes(raw, width: w, into: UnsafeMutableRawBufferPointer(rebasing: region[0..<raw.count]))
            let n = raw.count / w
            for j in 0..<w {
                let plane = UnsafeRawBufferPointer(rebasing: region[j * n..<(j + 1) * n])
                if let coded = encodePlane(plane, deflateLevel: level.deflateLevelAll, minimumSaving: level.minimumSaving, into: scratch, pairs: pairs) {
                    planes.append(CKZPlane(codec: .deflate, length: coded))
                    (dst + at).copyMemory(from: scratch.baseAddress!, byteCount: coded)
                    at += coded
                } else {
                    planes.append(CKZPlane(codec: .stored, length: n))
                    if at != j * n { memmove(dst + at, dst + j * n, n) }
                    at += n
                }
            }
            if planes.allSatisfy({ $0.codec == .stored }) { return verbatim() }
        } else {
            filter = .none
            guard let coded = encodePlane(raw, deflateLevel: level.deflateLevelUnfiltered, minimumSaving: level.minimumSaving, into: scratch, pairs: pairs) else {
                return verbatim()
            }
            planes = [CKZPlane(codec: .deflate, length: coded)]
            dst.copyMemory(from: scratch.baseAddress!, byteCount: coded)
            at = coded
        }
        let storedCRC = ChunkCodec.crc32(UnsafeRawBufferPointer(rebasing: region[0..<at]))
        return (CKZChunk(filter: filter, rawCRC: rawCRC, storedCRC: storedCRC, planes: planes), at)
    }

    /// Planes at least this long are Huffman-coded two bytes per lookup.
    static let pairThreshold = 32 << 10

    /// Planes at least this long are sampled before they are counted whole (see encodePlane).
    static let sampleThreshold = 64 << 10

    /// Writes a DEFLATE stream for `plane` into `out` (plane.count + regionSlack bytes) if
    /// one saves at least `minimumSaving` of its size: Huffman-only (its size is known
    /// exactly before encoding), or LZ-matching DEFLATE at `deflateLevel` when that is
    /// smaller still. Returns its length; nil: store the plane.
    static func encodePlane(_ plane: UnsafeRawBufferPointer, deflateLevel: Int32?, minimumSaving: Double,
                            into out: UnsafeMutableRawBufferPointer, pairs: UnsafeMutablePointer<UInt64>? = nil) -> Int? {
        let limit = Int(Double(plane.count) * (1 - minimumSaving))
        var best: Int?
        var counts = ChunkCodec.SampledHistogram(plane)
        if deflateLevel == nil, plane.count >= sampleThreshold {
            // Planes of trained weights' low mantissa bytes are close to random: when a
            // quarter of the plane (8 runs spread over it) saves less than half the minimum,
            // store it without counting the rest (~4 % of a bf16 compression's work).
            let (sample, n) = counts.sample
            if Double(ChunkCodec.planHuffman(histogram: sample).byteCount) > Double(n) * (1 - minimumSaving / 2) { return nil }
        }
        let plan = ChunkCodec.planHuffman(histogram: counts.complete())
        if plan.byteCount <= limit {
            // The pair table costs up to 65536 entries to fill: worth it on long planes only.
            best = ChunkCodec.encodeHuffman(plane, plan: plan, into: UnsafeMutableRawBufferPointer(rebasing: out[0..<(plan.byteCount + 8)]),
                                            pairs: plane.count >= pairThreshold ? pairs : nil)
        }
        if let deflateLevel, let d = ChunkCodec.deflate(plane, level: deflateLevel, limit: min(best ?? limit + 1, limit + 1)) {
            d.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: d.count) }
            best = d.count
        }
        return best
    }
}

extension ByteWriter {
    static func appendU32(_ v: UInt32, to bytes: inout [UInt8]) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    static func appendU64(_ v: UInt64, to bytes: inout [UInt8]) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
}

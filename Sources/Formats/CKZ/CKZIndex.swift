// .ckz index: the binary table at the end of the file (docs/ckz.md, "Index").
//
//   str  provenance                 UTF-8 JSON object
//   u32  metadata count, then (str key, str value) pairs
//   u8   has config (0/1), then if 1: u32 length + the config.json bytes, verbatim
//   u32  tie count, then (str alias, str target) pairs
//   u32  tensor count, then tensor entries:
//          str name, str dtype, u8 rank, u64 dims[rank], str quantization (JSON or ""),
//          u64 data offset, u64 stored length, u64 raw length, u32 chunk size, u32 chunk count,
//          chunk records: u8 filter, u8 plane count P, u32 crc32(raw), u32 crc32(stored),
//                         P × (u8 codec, u32 stored length)
//   (a str is a u32 byte length and that many UTF-8 bytes)
//
// Parsing follows STYLE.md's ritual: every length is capped, then checked against the bytes
// that remain, before anything is allocated or sliced; counts are checked against the
// smallest size their entries can have.

import CkptCore
import OrderedCollections

struct CKZPlane: Sendable, Equatable {
    var codec: CKZ.Codec
    var length: Int
}

struct CKZChunk: Sendable, Equatable {
    var filter: CKZ.Filter
    var rawCRC: UInt32
    var storedCRC: UInt32
    var planes: [CKZPlane]
    var storedLength: Int { planes.reduce(0) { $0 + $1.length } }
}

struct CKZTensorEntry: Sendable, Equatable {
    var name: String
    var dtype: DType
    var shape: [Int]
    var quantization: String
    var dataOffset: Int
    var storedLength: Int
    var rawLength: Int
    var chunkSize: Int
    var chunks: [CKZChunk]

    /// Every chunk stored verbatim and unfiltered: the data in the file *is* the tensor.
    var isVerbatim: Bool {
        chunks.allSatisfy { $0.filter == .none && $0.planes.count == 1 && $0.planes[0].codec == .stored }
    }

    func rawLength(ofChunk i: Int) -> Int { min(chunkSize, rawLength - i * chunkSize) }
}

struct CKZIndex: Sendable {
    var provenance: String = "{}"
    var metadata: OrderedDictionary<String, String> = [:]
    var config: [UInt8]?
    var ties: [(alias: String, target: String)] = []
    var tensors: [CKZTensorEntry] = []

    // MARK: Writing

    func serialized() -> [UInt8] {
        var w = ByteWriter()
        w.string(provenance)
        w.u32(UInt32(metadata.count))
        for (k, v) in metadata {
            w.string(k)
            w.string(v)
        }
        if let config {
            w.u8(1)
            w.u32(UInt32(config.count))
            w.bytes.append(contentsOf: config)
        } else {
            w.u8(0)
        }
        w.u32(UInt32(ties.count))
        for t in ties {
            w.string(t.alias)
            w.string(t.target)
        }
        w.u32(UInt32(tensors.count))
        for t in tensors {
            w.string(t.name)
            w.string(t.dtype.rawValue)
            w.u8(UInt8(t.shape.count))
            for d in t.shape { w.u64(UInt64(d)) }
            w.string(t.quantization)
            w.u64(UInt64(t.dataOffset))
            w.u64(UInt64(t.storedLength))
            w.u64(UInt64(t.rawLength))
            w.u32(UInt32(t.chunkSize))
            w.u32(UInt32(t.chunks.count))
            for c in t.chunks {
                w.u8(c.filter.rawValue)
                w.u8(UInt8(c.planes.count))
                w.u32(c.rawCRC)
                w.u32(c.storedCRC)
                for p in c.planes {
                    w.u8(p.codec.rawValue)
                    w.u32(UInt32(p.length))
                }
            }
        }
        return w.bytes
    }

    // MARK: Reading

    /// Smallest encodings, for checking counts against the bytes that remain.
    static let minTieSize = 8
    static let minMetadataSize = 8
    static let minTensorSize = 4 + 4 + 1 + 4 + 8 + 8 + 8 + 4 + 4
    static let minChunkSize = 1 + 1 + 4 + 4 + 5

    /// Parses the structure of an index and checks what can be checked without the file:
    /// caps, UTF-8, known dtypes, unique names, and the arithmetic that ties shapes, raw
    /// lengths, chunk sizes and plane lengths together. Offsets are checked by the reader.
    static func parse(_ bytes: [UInt8]) throws(CKZError) -> CKZIndex {
        // Array.withUnsafeBytes rethrows untyped: the result carries the typed error out.
        let result = bytes.withUnsafeBytes { b in Result { () throws(CKZError) in try parse(b) } }
        return try result.get()
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) throws(CKZError) -> CKZIndex {
        var r = ByteReader(bytes)
        var index = CKZIndex()
        index.provenance = try r.string(cap: CKZ.maxProvenanceLength, what: "provenance")
        guard case .object? = try? JSONValue.parse(index.provenance) else {
            throw .malformedIndex("provenance is not a JSON object")
        }

        let metaCount = try r.count(minEntrySize: minMetadataSize, what: "metadata")
        for _ in 0..<metaCount {
            let k = try r.string(cap: CKZ.maxMetadataLength, what: "metadata key")
            let v = try r.string(cap: CKZ.maxMetadataLength, what: "metadata value")
            guard index.metadata.updateValue(v, forKey: k) == nil else { throw .duplicateName(k) }
        }

        switch try r.u8(what: "config flag") {
        case 0: break
        case 1:
            let n = try r.u32(what: "config length")
            guard n <= CKZ.maxConfigLength else { throw .malformedIndex("config length \(n) exceeds the 16 MiB cap") }
            index.config = try r.take(Int(n), what: "config")
        case let f: throw .malformedIndex("config flag is \(f), expected 0 or 1")
        }

        let tieCount = try r.count(minEntrySize: minTieSize, what: "ties")
        var tieNames = Set<String>()
        for _ in 0..<tieCount {
            let alias = try r.string(cap: CKZ.maxNameLength, what: "tie alias")
            let target = try r.string(cap: CKZ.maxNameLength, what: "tie target")
            guard tieNames.insert(alias).inserted else { throw .duplicateName(alias) }
            index.ties.append((alias, target))
        }

        let tensorCount = try r.count(minEntrySize: minTensorSize, what: "tensors")
        var names = Set<String>()
        index.tensors.reserveCapacity(tensorCount)
        for _ in 0..<tensorCount {
            let t = try parseTensor(&r)
            guard names.insert(t.name).inserted else { throw .duplicateName(t.name) }
            index.tensors.append(t)
        }
        guard r.remaining == 0 else { throw .malformedIndex("\(r.remaining) bytes after the last tensor entry") }

        for t in index.ties {
            guard names.contains(t.target), !names.contains(t.alias) else { throw .invalidTie(alias: t.alias, target: t.target) }
        }
        return index
    }

    private static func parseTensor(_ r: inout ByteReader) throws(CKZError) -> CKZTensorEntry {
        let name = try r.string(cap: CKZ.maxNameLength, what: "tensor name")
        let dtypeName = try r.string(cap: CKZ.maxDTypeNameLength, what: "dtype of `\(name)`")
        guard let dtype = DType(rawValue: dtypeName) else { throw .unknownDType(tensor: name, dtype: dtypeName) }
        let rank = Int(try r.u8(what: "rank of `\(name)`"))
        guard rank <= CKZ.maxRank else { throw .invalidTensor(tensor: name, reason: "rank \(rank) exceeds the cap of \(CKZ.maxRank)") }
        var shape: [Int] = []
        for _ in 0..<rank {
            let d = try r.u64(what: "shape of `\(name)`")
            guard d <= UInt64(Int.max) else { throw .invalidTensor(tensor: name, reason: "dimension \(d) too large") }
            shape.append(Int(d))
        }
        let quantization = try r.string(cap: CKZ.maxQuantizationLength, what: "quantization of `\(name)`")
        // No block-quantized dtype exists in this version; parameters for a plain dtype are
        // something this reader cannot honour, so it refuses rather than ignore them.
        guard quantization.isEmpty else { throw .unsupportedQuantization(tensor: name, parameters: quantization) }
        let dataOffset = try r.u64(what: "data offset of `\(name)`")
        let stored = try r.u64(what: "stored length of `\(name)`")
        let raw = try r.u64(what: "raw length of `\(name)`")
        let chunkSize = Int(try r.u32(what: "chunk size of `\(name)`"))
        let chunkCount = try r.count(minEntrySize: minChunkSize, what: "chunks of `\(name)`")

        guard let expectedRaw = dtype.byteCount(shape: shape) else {
            throw .invalidTensor(tensor: name, reason: "shape \(shape) × \(dtype) size overflows or is not whole bytes")
        }
        guard raw == UInt64(expectedRaw) else {
            throw .invalidTensor(tensor: name, reason: "\(dtype) \(shape) needs \(expectedRaw) bytes, index records \(raw)")
        }
        guard chunkSize >= CKZ.chunkSizeGranule, chunkSize <= CKZ.maxChunkSize, chunkSize % CKZ.chunkSizeGranule == 0 else {
            throw .invalidTensor(tensor: name, reason: "chunk size \(chunkSize) is not a multiple of 64 in 64...\(CKZ.maxChunkSize)")
        }
        let expectedChunks = (expectedRaw + chunkSize - 1) / chunkSize  // no overflow: expectedRaw ≤ Int.max / 1, chunkSize ≥ 64
        guard chunkCount == expectedChunks else {
            throw .invalidTensor(tensor: name, reason: "\(chunkCount) chunks recorded, \(expectedChunks) needed for \(expectedRaw) bytes in \(chunkSize)-byte chunks")
        }
        guard dataOffset <= UInt64(Int.max), stored <= UInt64(Int.max) else {
            throw .invalidTensor(tensor: name, reason: "data offset or stored length too large")
        }

        var chunks: [CKZChunk] = []
        chunks.reserveCapacity(chunkCount)
        var storedSum = 0
        for i in 0..<chunkCount {
            let chunkRaw = min(chunkSize, expectedRaw - i * chunkSize)
            let c = try parseChunk(&r, tensor: name, index: i, rawLength: chunkRaw)
            let (sum, overflow) = storedSum.addingReportingOverflow(c.storedLength)
            guard !overflow else { throw .invalidTensor(tensor: name, reason: "stored lengths overflow") }
            storedSum = sum
            chunks.append(c)
        }
        guard UInt64(storedSum) == stored else {
            throw .invalidTensor(tensor: name, reason: "chunks hold \(storedSum) stored bytes, entry records \(stored)")
        }
        return CKZTensorEntry(name: name, dtype: dtype, shape: shape, quantization: quantization,
                              dataOffset: Int(dataOffset), storedLength: Int(stored), rawLength: expectedRaw,
                              chunkSize: chunkSize, chunks: chunks)
    }

    private static func parseChunk(_ r: inout ByteReader, tensor: String, index: Int, rawLength: Int) throws(CKZError) -> CKZChunk {
        let what = "chunk \(index) of `\(tensor)`"
        let filterByte = try r.u8(what: what)
        guard let filter = CKZ.Filter(rawValue: filterByte) else {
            throw .invalidChunk(tensor: tensor, chunk: index, reason: "unknown filter \(filterByte)")
        }
        let planeCount = Int(try r.u8(what: what))
        switch filter {
        case .none:
            guard planeCount == 1 else { throw .invalidChunk(tensor: tensor, chunk: index, reason: "filter 0 with \(planeCount) planes") }
        case .planes:
            guard [2, 4, 8].contains(planeCount), rawLength % planeCount == 0 else {
                throw .invalidChunk(tensor: tensor, chunk: index, reason: "filter 1 with \(planeCount) planes over \(rawLength) bytes")
            }
        }
        let rawCRC = try r.u32(what: what)
        let storedCRC = try r.u32(what: what)
        let planeRaw = rawLength / planeCount
        var planes: [CKZPlane] = []
        for p in 0..<planeCount {
            let codecByte = try r.u8(what: what)
            guard let codec = CKZ.Codec(rawValue: codecByte) else {
                throw .invalidChunk(tensor: tensor, chunk: index, reason: "plane \(p): unknown codec \(codecByte)")
            }
            let length = Int(try r.u32(what: what))
            switch codec {
            case .stored:
                guard length == planeRaw else {
                    throw .invalidChunk(tensor: tensor, chunk: index, reason: "plane \(p) is stored with \(length) bytes, expected \(planeRaw)")
                }
            case .deflate:
                // 1032:1 is DEFLATE's largest expansion; more means a corrupt record.
                guard length > 0, planeRaw <= length * CKZ.maxDeflateRatio else {
                    throw .invalidChunk(tensor: tensor, chunk: index, reason: "plane \(p): \(length) DEFLATE bytes cannot hold \(planeRaw) bytes")
                }
            }
            planes.append(CKZPlane(codec: codec, length: length))
        }
        return CKZChunk(filter: filter, rawCRC: rawCRC, storedCRC: storedCRC, planes: planes)
    }
}

// MARK: Byte helpers (safe: arrays and checked indices)

struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func string(_ s: String) {
        u32(UInt32(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }
}

/// The index's reads: ByteCursor's, each failure a `malformedIndex` naming what was read.
struct ByteReader {
    var cursor: ByteCursor
    var remaining: Int { cursor.remaining }

    /// SAFETY: `bytes` is borrowed (see ByteCursor); the reader lives inside its closure.
    init(_ bytes: UnsafeRawBufferPointer) { cursor = ByteCursor(bytes) }

    mutating func take(_ n: Int, what: String) throws(CKZError) -> [UInt8] {
        guard let a = cursor.array(n) else { throw .malformedIndex("\(what): needs \(n) bytes, \(remaining) left in the index") }
        return a
    }

    mutating func u8(what: String) throws(CKZError) -> UInt8 {
        guard let v = cursor.u8() else { throw .malformedIndex("\(what): index ends early") }
        return v
    }

    mutating func u32(what: String) throws(CKZError) -> UInt32 {
        guard let v = cursor.le(UInt32.self) else { throw .malformedIndex("\(what): index ends early") }
        return v
    }

    mutating func u64(what: String) throws(CKZError) -> UInt64 {
        guard let v = cursor.le(UInt64.self) else { throw .malformedIndex("\(what): index ends early") }
        return v
    }

    /// A count of entries, each at least `minEntrySize` bytes: more than could fit in what
    /// remains is malformed (and would otherwise make us reserve memory for it).
    mutating func count(minEntrySize: Int, what: String) throws(CKZError) -> Int {
        let n = Int(try u32(what: "\(what) count"))
        guard n <= remaining / minEntrySize else {
            throw .malformedIndex("\(what): count \(n) cannot fit in the \(remaining) bytes left")
        }
        return n
    }

    mutating func string(cap: Int, what: String) throws(CKZError) -> String {
        let n = Int(try u32(what: "\(what) length"))
        guard n <= cap else { throw .malformedIndex("\(what): length \(n) exceeds the cap of \(cap) bytes") }
        guard let s = cursor.utf8(n) else { throw .malformedIndex("\(what): needs \(n) bytes, \(remaining) left in the index") }
        guard let text = s else { throw .malformedIndex("\(what) is not valid UTF-8") }
        return text
    }
}

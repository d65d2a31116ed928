// .ckz: a table of malformed files, each built from bytes, each with the one error it must
// produce. Files are assembled with correct checksums unless the row is about a checksum,
// so each row reaches the check it is aimed at.

import CkptCore
import Foundation
import Testing
import TestSupport
@testable import Formats

/// Header + data (padded to 64) + index + trailer, with CRCs computed unless overridden.
func assembleCKZ(index: [UInt8], data: [UInt8] = [], version: UInt32 = 1, headerFlags: UInt32 = 0,
                 indexOffset: UInt64? = nil, indexLength: UInt64? = nil, indexCRC: UInt32? = nil,
                 trailerFlags: UInt32 = 0, trailerCRC: UInt32? = nil) -> [UInt8] {
    var out = CKZ.magic
    ByteWriter.appendU32(version, to: &out)
    ByteWriter.appendU32(headerFlags, to: &out)
    out += [UInt8](repeating: 0, count: 48)
    out += data
    out += [UInt8](repeating: 0, count: CKZ.padding(out.count))
    let io = out.count
    out += index
    var trailer: [UInt8] = []
    ByteWriter.appendU64(indexOffset ?? UInt64(io), to: &trailer)
    ByteWriter.appendU64(indexLength ?? UInt64(index.count), to: &trailer)
    ByteWriter.appendU32(indexCRC ?? index.withUnsafeBytes { ChunkCodec.crc32($0) }, to: &trailer)
    ByteWriter.appendU32(trailerFlags, to: &trailer)
    ByteWriter.appendU32(trailerCRC ?? trailer.withUnsafeBytes { ChunkCodec.crc32($0) }, to: &trailer)
    return out + trailer + CKZ.endMagic
}

/// One f32 [2] tensor stored verbatim at offset 64.
func oneTensorIndex(_ edit: (inout CKZIndex) -> Void = { _ in }) -> [UInt8] {
    var index = CKZIndex()
    let data: [UInt8] = [0, 0, 128, 63, 0, 0, 0, 64]
    let crc = data.withUnsafeBytes { ChunkCodec.crc32($0) }
    index.tensors = [CKZTensorEntry(name: "w", dtype: .f32, shape: [2], quantization: "", dataOffset: 64,
                                    storedLength: 8, rawLength: 8, chunkSize: 1 << 20,
                                    chunks: [CKZChunk(filter: .none, rawCRC: crc, storedCRC: crc, planes: [CKZPlane(codec: .stored, length: 8)])])]
    edit(&index)
    return index.serialized()
}
let oneTensorData: [UInt8] = [0, 0, 128, 63, 0, 0, 0, 64]

/// An index whose tensor count claims more entries than could fit.
func rawIndex(_ build: (inout ByteWriter) -> Void) -> [UInt8] {
    var w = ByteWriter()
    build(&w)
    return w.bytes
}

func emptyPrefix(_ w: inout ByteWriter) {
    w.string("{}")
    w.u32(0)  // metadata
    w.u8(0)   // no config
    w.u32(0)  // ties
}

struct MalformedCKZ: CustomStringConvertible, Sendable {
    var name: String
    var bytes: [UInt8]
    var expected: @Sendable (CKZError) -> Bool
    var description: String { name }
}

let malformedCKZ: [MalformedCKZ] = {
    var rows: [MalformedCKZ] = []
    func row(_ name: String, _ bytes: [UInt8], _ expected: @escaping @Sendable (CKZError) -> Bool) {
        rows.append(MalformedCKZ(name: name, bytes: bytes, expected: expected))
    }
    let good = assembleCKZ(index: oneTensorIndex(), data: oneTensorData)
    row("empty file", []) { $0 == .emptyFile }
    row("only the magic", Array(CKZ.magic.prefix(5))) { if case .truncated = $0 { true } else { false } }
    row("wrong magic", [0x89, 0x43, 0x4B, 0x59] + good.dropFirst(4)) { $0 == .badMagic }
    row("version 2", assembleCKZ(index: oneTensorIndex(), data: oneTensorData, version: 2)) { $0 == .unsupportedVersion(2) }
    row("header flags", assembleCKZ(index: oneTensorIndex(), data: oneTensorData, headerFlags: 1)) { $0 == .nonzeroFlags(where: "header", value: 1) }
    var padded = good
    padded[40] = 7
    row("nonzero header padding", padded) { $0 == .nonzeroPadding(offset: 40) }
    row("no trailer", Array(good.dropLast(32))) { if case .truncated = $0 { true } else { false } }
    row("trailer checksum", assembleCKZ(index: oneTensorIndex(), data: oneTensorData, trailerCRC: 1)) {
        if case .trailerChecksumMismatch = $0 { true } else { false }
    }
    row("trailer flags", assembleCKZ(index: oneTensorIndex(), data: oneTensorData, trailerFlags: 4)) { $0 == .nonzeroFlags(where: "trailer", value: 4) }
    row("index length above the cap", assembleCKZ(index: oneTensorIndex(), data: oneTensorData, indexLength: 1 << 40)) { $0 == .indexTooLarge(length: 1 << 40) }
    row("index offset + length overflows", assembleCKZ(index: oneTensorIndex(), data: oneTensorData, indexOffset: UInt64.max - 3)) {
        if case .indexOutOfPlace = $0 { true } else { false }
    }
    row("index offset not aligned", assembleCKZ(index: oneTensorIndex(), data: oneTensorData, indexOffset: 129, indexLength: UInt64(oneTensorIndex().count - 1))) {
        if case .indexOutOfPlace = $0 { true } else { false }
    }
    row("index checksum", assembleCKZ(index: oneTensorIndex(), data: oneTensorData, indexCRC: 0xDEAD)) {
        if case .indexChecksumMismatch = $0 { true } else { false }
    }
    row("tensor count beyond the index", assembleCKZ(index: rawIndex { emptyPrefix(&$0); $0.u32(0xFFFF_FFFF) })) {
        if case .malformedIndex(let m) = $0 { m.contains("cannot fit") } else { false }
    }
    row("string length beyond its cap", assembleCKZ(index: rawIndex { $0.u32(UInt32(CKZ.maxProvenanceLength + 1)) })) {
        if case .malformedIndex(let m) = $0 { m.contains("exceeds the cap") } else { false }
    }
    row("string past the index end", assembleCKZ(index: rawIndex { $0.u32(100); $0.bytes += Array("{}".utf8) })) {
        if case .malformedIndex(let m) = $0 { m.contains("left in the index") } else { false }
    }
    row("name not UTF-8", assembleCKZ(index: rawIndex { emptyPrefix(&$0); $0.u32(1); $0.u32(1); $0.u8(0xFF); $0.bytes += [UInt8](repeating: 0, count: 60) })) {
        if case .malformedIndex(let m) = $0 { m.contains("UTF-8") } else { false }
    }
    row("trailing bytes in the index", assembleCKZ(index: oneTensorIndex() + [0], data: oneTensorData)) {
        if case .malformedIndex(let m) = $0 { m.contains("after the last") } else { false }
    }
    row("duplicate tensor", assembleCKZ(index: oneTensorIndex { $0.tensors.append($0.tensors[0]) }, data: oneTensorData)) { $0 == .duplicateName("w") }
    row("duplicate metadata key", assembleCKZ(index: rawIndex { $0.string("{}"); $0.u32(2); for _ in 0..<2 { $0.string("k"); $0.string("v") }; $0.u8(0); $0.u32(0); $0.u32(0) })) {
        $0 == .duplicateName("k")
    }
    row("unknown dtype", assembleCKZ(index: rawIndex { emptyPrefix(&$0); $0.u32(1); $0.string("w"); $0.string("q3_x"); $0.bytes += [UInt8](repeating: 0, count: 60) })) {
        $0 == .unknownDType(tensor: "w", dtype: "q3_x")
    }
    row("quantization parameters", assembleCKZ(index: oneTensorIndex { $0.tensors[0].quantization = "{\"scheme\":\"q8_0\"}" }, data: oneTensorData)) {
        if case .unsupportedQuantization = $0 { true } else { false }
    }
    row("shape disagrees with raw length", assembleCKZ(index: oneTensorIndex { $0.tensors[0].shape = [3] }, data: oneTensorData)) {
        if case .invalidTensor(_, let r) = $0 { r.contains("needs 12 bytes") } else { false }
    }
    row("chunk size not a multiple of 64", assembleCKZ(index: oneTensorIndex { $0.tensors[0].chunkSize = 100 }, data: oneTensorData)) {
        if case .invalidTensor(_, let r) = $0 { r.contains("chunk size") } else { false }
    }
    row("too many chunks", assembleCKZ(index: oneTensorIndex { $0.tensors[0].chunks.append($0.tensors[0].chunks[0]); $0.tensors[0].storedLength = 16 }, data: oneTensorData + oneTensorData)) {
        if case .invalidTensor(_, let r) = $0 { r.contains("2 chunks recorded, 1 needed") } else { false }
    }
    row("stored plane of the wrong length", assembleCKZ(index: oneTensorIndex { $0.tensors[0].chunks[0].planes[0].length = 7; $0.tensors[0].storedLength = 7 }, data: oneTensorData)) {
        if case .invalidChunk(_, 0, let r) = $0 { r.contains("stored with 7 bytes") } else { false }
    }
    row("DEFLATE plane claiming more than 1032:1", assembleCKZ(index: oneTensorIndex {
        $0.tensors[0] = CKZTensorEntry(name: "z", dtype: .u8, shape: [2064], quantization: "", dataOffset: 64, storedLength: 1,
                                       rawLength: 2064, chunkSize: 1 << 20,
                                       chunks: [CKZChunk(filter: .none, rawCRC: 0, storedCRC: 0, planes: [CKZPlane(codec: .deflate, length: 1)])])
    }, data: [0])) {
        if case .invalidChunk(_, 0, let r) = $0 { r.contains("cannot hold") } else { false }
    }
    row("unknown filter", assembleCKZ(index: rawIndex { w in
        let i = oneTensorIndex()
        w.bytes = i
        // The chunk record starts 15 + 5 bytes before the end (filter byte first).
        w.bytes[i.count - 15] = 9
    }, data: oneTensorData)) {
        if case .invalidChunk(_, 0, let r) = $0 { r.contains("unknown filter 9") } else { false }
    }
    row("tensor data not where it should start", assembleCKZ(index: oneTensorIndex { $0.tensors[0].dataOffset = 72 }, data: oneTensorData)) {
        $0 == .invalidOffsets(tensor: "w", offset: 72, expected: 64)
    }
    row("tensor data running into the index", assembleCKZ(index: oneTensorIndex {
        $0.tensors[0].shape = [32]; $0.tensors[0].rawLength = 128; $0.tensors[0].storedLength = 128
        $0.tensors[0].chunks[0].planes[0].length = 128
    }, data: oneTensorData)) {
        if case .dataPastEnd = $0 { true } else { false }
    }
    row("gap between data and index", assembleCKZ(index: oneTensorIndex(), data: oneTensorData + [UInt8](repeating: 0, count: 64))) {
        if case .malformedIndex(let m) = $0 { m.contains("index starts at 192") } else { false }
    }
    var dirtyGap = assembleCKZ(index: oneTensorIndex(), data: oneTensorData)
    dirtyGap[64 + 8 + 3] = 1
    row("nonzero padding after tensor data", dirtyGap) { $0 == .nonzeroPadding(offset: 75) }
    row("tie to a missing tensor", assembleCKZ(index: oneTensorIndex { $0.ties = [("lm_head.weight", "nope")] }, data: oneTensorData)) {
        $0 == .invalidTie(alias: "lm_head.weight", target: "nope")
    }
    row("provenance not a JSON object", assembleCKZ(index: oneTensorIndex { $0.provenance = "[1]" }, data: oneTensorData)) {
        $0 == .malformedIndex("provenance is not a JSON object")
    }
    return rows
}()

@Suite struct CKZMalformedTests {
    @Test func theWellFormedBaseOpens() throws {
        let dir = TempDir()
        try writeFile(dir.file("ok.ckz"), assembleCKZ(index: oneTensorIndex(), data: oneTensorData))
        #expect(try readAll(dir.file("ok.ckz")) == ["w": oneTensorData])
    }

    @Test(arguments: malformedCKZ)
    func isRejected(_ row: MalformedCKZ) throws {
        let dir = TempDir()
        try writeFile(dir.file("bad.ckz"), row.bytes)
        do {
            _ = try readAll(dir.file("bad.ckz"))
            Issue.record("\(row.name): accepted")
        } catch let e as FileError {
            let inner = try #require(e.error as? CKZError, "\(row.name): \(e)")
            #expect(row.expected(inner), "\(row.name): got \(inner)")
            #expect(e.description.hasPrefix(dir.file("bad.ckz") + ": "))
        }
    }
}

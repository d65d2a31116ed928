// NumPy `.npz`: a zip archive of .npy members named `<array>.npy` (numpy.savez stores them,
// numpy.savez_compressed deflates them). Zip handling and its limits in Zip.swift.
//
// Reading maps the file; each member's .npy header is parsed up front (deflated members
// inflate only their first 10,240 bytes for it, enough for numpy's 10,000-byte header cap),
// and its data is read — inflated and CRC-checked — when a writer or the forward pass asks.
// Writing stores members (or deflates them, like savez_compressed) with numpy's names, so
// `numpy.load` returns each tensor under its ckpt name.

import CkptCore
import Foundation

public enum Npz {
    static let headPrefix = 10_240
    /// The member that carries the model config (Hugging Face config.json bytes), so a
    /// single .npz holds what the forward pass needs; `numpy.load` returns it as bytes.
    public static let configMember = "config.json"
    /// Cap on that member: configs are a few kB.
    static let maxConfigBytes = 16 << 20

    public static func read(path: String) throws -> WeightGraph {
        let file = try MappedFile(path: path)
        do {
            return try read(file: file)
        } catch {
            throw FileError(path: path, error: error)
        }
    }

    static func read(file: MappedFile) throws -> WeightGraph {
        let entries = try file.withBytes { (b) throws(ZipError) in try Zip.entries(b) }
        var graph = WeightGraph()
        for e in entries {
            if e.name == configMember {
                graph.config = try readConfig(file, e)
                continue
            }
            guard e.name.hasSuffix(".npy") else { throw ZipError.unsupported(member: e.name, reason: "not a .npy member") }
            let name = String(e.name.dropLast(4))
            let head: [UInt8] = try file.withBytes { (b) throws(ZipError) in
                let data = UnsafeRawBufferPointer(rebasing: b[e.dataOffset..<e.dataOffset + e.compressedSize])
                if e.method == 0 { return Array(data.prefix(headPrefix)) }
                return try Zip.inflate(data, size: min(e.size, headPrefix), member: e.name, prefixOnly: true)
            }
            let parsed: (dtype: DType, shape: [Int], dataOffset: Int, dataCount: Int)
            do {
                parsed = try head.withUnsafeBytes { h in try Npy.parse(head: h, fileSize: e.size) }
            } catch let error as NpyError {
                throw NpzError.member(name: e.name, error)
            }
            let bytes = NpzMemberBytes(file: file, entry: e, offset: parsed.dataOffset, count: parsed.dataCount)
            try graph.add(Tensor(name: name, dtype: parsed.dtype, shape: parsed.shape, data: .external(bytes)))
        }
        return graph
    }

    static func readConfig(_ file: MappedFile, _ e: ZipEntry) throws -> ModelConfig {
        guard e.size <= maxConfigBytes else { throw ZipError.unsupported(member: e.name, reason: "larger than 16 MiB") }
        let bytes: [UInt8] = try file.withBytes { (b) throws(ZipError) in
            let data = UnsafeRawBufferPointer(rebasing: b[e.dataOffset..<e.dataOffset + e.compressedSize])
            let out = e.method == 0 ? Array(data) : try Zip.inflate(data, size: e.size, member: e.name)
            guard out.withUnsafeBytes({ Zip.crc32($0) }) == e.crc else { throw .crcMismatch(member: e.name) }
            return out
        }
        do { return try ModelConfig(jsonBytes: bytes) } catch { throw NpzError.config(error.description) }
    }

    /// Writes every tensor as `<name>.npy`, then the model config as `config.json` when the
    /// graph has one; `deflate` compresses members as numpy.savez_compressed does. Tied
    /// aliases are left out (numpy has no ties).
    public static func write(_ graph: WeightGraph, to path: String, deflate: Bool = false, progress: (any ProgressSink)? = nil) throws {
        var file = try AtomicFile(target: path)
        var written: [Zip.Written] = []
        var offset = 0
        for t in graph.tensors.values {
            let npy: [UInt8]
            do {
                npy = try Npy.encode(dtype: t.dtype, shape: t.shape, data: t.data.load())
            } catch let e as NpyError {
                throw NpzError.cannotWrite(tensor: t.name, e)
            }
            t.data.releaseResidentPages()
            let member = t.name + ".npy"
            let crc = npy.withUnsafeBytes { Zip.crc32($0) }
            var payload: [UInt8]?
            if deflate { payload = try npy.withUnsafeBytes { b in try Zip.deflate(b, member: member) } }
            let w = Zip.Written(name: Array(member.utf8), method: deflate ? 8 : 0, crc: crc,
                                compressedSize: payload?.count ?? npy.count, size: npy.count, offset: offset)
            let header = Zip.localHeader(w)
            try file.write(header)
            try file.write(payload ?? npy)
            offset += header.count + w.compressedSize
            written.append(w)
            progress?.advance(bytes: t.byteCount)
        }
        if let config = graph.config {
            let bytes = config.serialized()
            let crc = bytes.withUnsafeBytes { Zip.crc32($0) }
            let payload = deflate ? try bytes.withUnsafeBytes { b in try Zip.deflate(b, member: configMember) } : bytes
            let w = Zip.Written(name: Array(configMember.utf8), method: deflate ? 8 : 0, crc: crc,
                                compressedSize: payload.count, size: bytes.count, offset: offset)
            let header = Zip.localHeader(w)
            try file.write(header)
            try file.write(payload)
            offset += header.count + w.compressedSize
            written.append(w)
        }
        try file.write(Zip.centralDirectory(written, start: offset))
        try file.commit()
    }
}

public enum NpzError: Error, Equatable, Sendable, CustomStringConvertible {
    case member(name: String, NpyError)
    case cannotWrite(tensor: String, NpyError)
    case config(String)

    public var description: String {
        switch self {
        case .member(let n, let e): return "member `\(n)`: \(e)"
        case .cannotWrite(let t, let e): return "tensor `\(t)`: \(e) (try --dtype f32, or --dequantize)"
        case .config(let m): return "member `\(Npz.configMember)`: \(m)"
        }
    }
}

/// A member's array data: stored members are views of the mapping, deflated ones are
/// inflated on each read; both are CRC-checked (stored ones on their first read).
final class NpzMemberBytes: ExternalBytes, @unchecked Sendable {
    let file: MappedFile
    let entry: ZipEntry
    /// The array data's range inside the (uncompressed) member.
    let offset: Int
    let count: Int
    private let lock = NSLock()
    private var verified = false

    init(file: MappedFile, entry: ZipEntry, offset: Int, count: Int) {
        self.file = file
        self.entry = entry
        self.offset = offset
        self.count = count
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try file.withBytes { all in
            // SAFETY: Zip.entries checked dataOffset + compressedSize against the file.
            let data = UnsafeRawBufferPointer(rebasing: all[entry.dataOffset..<entry.dataOffset + entry.compressedSize])
            if entry.method == 0 {
                let ok = lock.withLock { verified }
                if !ok {
                    guard Zip.crc32(data) == entry.crc else { throw FileError(path: file.path, error: ZipError.crcMismatch(member: entry.name)) }
                    lock.withLock { verified = true }
                }
                return try body(UnsafeRawBufferPointer(rebasing: data[offset..<offset + count]))
            }
            let inflated: [UInt8]
            do { inflated = try Zip.inflate(data, size: entry.size, member: entry.name) } catch { throw FileError(path: file.path, error: error) }
            guard inflated.withUnsafeBytes({ Zip.crc32($0) }) == entry.crc else { throw FileError(path: file.path, error: ZipError.crcMismatch(member: entry.name)) }
            return try inflated.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + count])) }
        }
    }

    func releaseResidentPages() { file.dontNeed(offset: entry.dataOffset, count: entry.compressedSize) }
    var origin: String { file.path + ":" + entry.name }
}

// llama.cpp's importance matrix files (`llama-imatrix -o FILE`, `llama-quantize --imatrix FILE`):
// per linear weight, the sum over calibration tokens of each input column's square, and the
// token count. Two layouts, both read and written here:
//
// GGUF (current llama.cpp, tools/imatrix/imatrix.cpp): no general.architecture;
//   general.type = "imatrix"; imatrix.datasets = [str]; imatrix.chunk_count, imatrix.chunk_size: u32
//   per weight W (llama.cpp's tensor name, e.g. blk.0.attn_q.weight):
//     W.in_sum2  f32 [nmat, n]   Σ x_j² per matrix (nmat = experts for stacked MoE weights, else 1)
//     W.counts   f32 [nmat, 1]   tokens that reached each matrix
//   (newer writers may add W.in_sum and W.stats; readers ignore other tensors, as llama.cpp does.)
//   llama-quantize uses in_sum2/count per matrix, and 1 for a matrix that saw no token.
// Legacy `.dat` (little-endian, no magic):
//   int32 entries; per entry: int32 name length, name bytes, int32 ncall, int32 nval,
//   f32 values[nval] = (Σx²/count)·ncall; then optionally int32 chunk count, int32 length,
//   dataset name. llama-quantize uses values/ncall (values as they are when ncall <= 0).
//   llama.cpp writes ncall = ⌈max count / chunk size⌉ and skips entries that saw no token.

import CkptCore
import Foundation
import Formats
import OrderedCollections
import Quantize

public struct ImportanceMatrixError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ path: String, _ what: String) { description = "\(path): \(what)" }
    init(_ error: IOError) { description = error.description }  // already names the file
}

public struct ImportanceMatrix: Sendable {
    public struct Entry: Sendable, Equatable {
        /// Σ x_j² per matrix, [nmat · n] (matrix-major).
        public var sums: [Float]
        /// Tokens per matrix (legacy files: ncall for every matrix, so sums/count is llama.cpp's reading).
        public var counts: [Float]
        public init(sums: [Float], counts: [Float]) {
            self.sums = sums
            self.counts = counts
        }
        public var columns: Int { counts.isEmpty ? 0 : sums.count / counts.count }

        /// The importance llama-quantize uses: in_sum2/count per matrix, 1 where count is 0.
        public var importance: [Float] {
            let n = columns
            var out = [Float](repeating: 1, count: sums.count)
            for m in counts.indices where counts[m] > 0 {
                for j in 0..<n { out[m * n + j] = sums[m * n + j] / counts[m] }
            }
            return out
        }
    }

    /// By llama.cpp tensor name, in file order.
    public var entries: OrderedDictionary<String, Entry> = [:]
    public var datasets: [String] = []
    public var chunkCount = 0
    public var chunkSize = 0

    public init(entries: OrderedDictionary<String, Entry> = [:], datasets: [String] = [], chunkCount: Int = 0, chunkSize: Int = 0) {
        self.entries = entries
        self.datasets = datasets
        self.chunkCount = chunkCount
        self.chunkSize = chunkSize
    }

    // MARK: Reading

    /// Reads either layout (GGUF by its magic, the legacy one otherwise).
    public static func read(path: String) throws -> ImportanceMatrix {
        let bytes: [UInt8]
        do {
            // MappedFile refuses a FIFO or device before it could block or never end.
            bytes = try MappedFile(path: path).withBytes { Array($0) }
        } catch {
            throw ImportanceMatrixError(error)
        }
        if bytes.starts(with: Array("GGUF".utf8)) { return try readGGUF(path: path) }
        return try readLegacy(bytes, path: path)
    }

    static func readGGUF(path: String) throws -> ImportanceMatrix {
        do {
            return try parseGGUF(path: path)
        } catch let e as ImportanceMatrixError {
            throw e
        } catch {
            throw ImportanceMatrixError(path, "\(error)")
        }
    }

    static func parseGGUF(path: String) throws -> ImportanceMatrix {
        let graph = try GGUF.read(path: path)
        let kvs = try GGUFMetadata.values(of: graph)
        var m = ImportanceMatrix()
        if case .string(let t)? = kvs["general.type"], t != "imatrix" {
            throw ImportanceMatrixError(path, "general.type is \"\(t)\", not an importance matrix")
        }
        if case .array(_, let list)? = kvs["imatrix.datasets"] {
            m.datasets = list.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
        }
        m.chunkCount = kvs["imatrix.chunk_count"]?.intValue ?? 0
        m.chunkSize = kvs["imatrix.chunk_size"]?.intValue ?? 0
        for t in graph.tensors.values where t.name.hasSuffix(".in_sum2") {
            let name = String(t.name.dropLast(".in_sum2".count))
            guard let c = graph.tensors[name + ".counts"] else {
                throw ImportanceMatrixError(path, "tensor `\(t.name)` has no `\(name).counts`")
            }
            guard (1...2).contains(t.shape.count), t.elementCount > 0, let sums = try Cast.floats(t), let counts = try Cast.floats(c) else {
                throw ImportanceMatrixError(path, "tensor `\(t.name)`: expected a non-empty f32 [matrices, columns] tensor, got \(t.dtype) \(t.shape)")
            }
            let nmat = t.shape.count == 2 ? t.shape[0] : 1
            guard counts.count == nmat else {
                throw ImportanceMatrixError(path, "tensor `\(c.name)`: \(counts.count) counts for \(nmat) matrices")
            }
            guard sums.allSatisfy({ $0.isFinite && $0 >= 0 }), counts.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw ImportanceMatrixError(path, "tensor `\(t.name)`: sums and counts must be finite and non-negative")
            }
            m.entries[name] = Entry(sums: sums, counts: counts)
        }
        for t in graph.tensors.keys where t.hasSuffix(".counts") && m.entries[String(t.dropLast(".counts".count))] == nil {
            throw ImportanceMatrixError(path, "tensor `\(t)` has no `\(t.dropLast(".counts".count)).in_sum2`")
        }
        guard !m.entries.isEmpty else { throw ImportanceMatrixError(path, "no importance matrix entries (no `<weight>.in_sum2` tensors)") }
        return m
    }

    static func readLegacy(_ b: [UInt8], path: String) throws -> ImportanceMatrix {
        var at = 0
        func i32(_ what: String) throws -> Int {
            guard at + 4 <= b.count else { throw ImportanceMatrixError(path, "truncated at byte \(at) reading \(what)") }
            defer { at += 4 }
            return Int(Int32(bitPattern: UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24))
        }
        let n = try i32("the entry count")
        // Each entry takes at least 12 bytes + one value: the count cannot exceed what remains.
        guard n >= 1, n <= (b.count - 4) / 16 else {
            throw ImportanceMatrixError(path, "not an importance matrix: \(n) entries in a \(b.count)-byte file (neither GGUF nor llama.cpp's legacy .dat)")
        }
        var m = ImportanceMatrix()
        for e in 0..<n {
            let len = try i32("the name length of entry \(e)")
            guard len > 0, len <= b.count - at else { throw ImportanceMatrixError(path, "entry \(e): name length \(len) is past the end of the file") }
            guard let name = String(validating: b[at..<at + len], as: UTF8.self) else {
                throw ImportanceMatrixError(path, "entry \(e): the name is not UTF-8")
            }
            at += len
            let ncall = try i32("ncall of `\(name)`")
            let nval = try i32("the value count of `\(name)`")
            guard nval >= 1, nval <= (b.count - at) / 4 else {
                throw ImportanceMatrixError(path, "tensor `\(name)`: \(nval) values, \(b.count - at) bytes left")
            }
            var values = [Float](repeating: 0, count: nval)
            for j in 0..<nval {
                let o = at + 4 * j
                values[j] = Float(bitPattern: UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24)
            }
            at += 4 * nval
            guard values.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw ImportanceMatrixError(path, "tensor `\(name)`: values must be finite and non-negative")
            }
            guard m.entries[name] == nil else { throw ImportanceMatrixError(path, "tensor `\(name)` appears twice") }
            // sums/count = values/ncall: llama-quantize's reading (values as they are if ncall <= 0).
            m.entries[name] = Entry(sums: values, counts: [Float(ncall > 0 ? ncall : 1)])
        }
        if at + 4 <= b.count {
            m.chunkCount = try i32("the chunk count")
            if at + 4 <= b.count {
                let len = try i32("the dataset name length")
                guard len >= 0, len <= b.count - at else { throw ImportanceMatrixError(path, "dataset name length \(len) is past the end of the file") }
                m.datasets = [String(decoding: b[at..<at + len], as: UTF8.self)]
                at += len
            }
        }
        guard at == b.count else { throw ImportanceMatrixError(path, "\(b.count - at) unexpected bytes after the dataset name") }
        return m
    }

    // MARK: Writing

    /// Writes llama.cpp's GGUF layout, or the legacy one when `legacy` (entries without any
    /// token are left out there, as llama-imatrix does).
    public func write(to path: String, legacy: Bool) throws {
        if legacy {
            var file = try AtomicFile(target: path)
            try file.write(legacyBytes())
            try file.commit()
            return
        }
        var g = WeightGraph()
        for name in entries.keys.sorted() {
            let e = entries[name]!
            let nmat = e.counts.count
            try g.add(Tensor(name: name + ".in_sum2", dtype: .f32, shape: [nmat, e.columns], data: .owned(e.sums.withUnsafeBytes { Array($0) })))
            try g.add(Tensor(name: name + ".counts", dtype: .f32, shape: [nmat, 1], data: .owned(e.counts.withUnsafeBytes { Array($0) })))
        }
        GGUFMetadata.set("general.type", .string("imatrix"), in: &g)
        GGUFMetadata.set("imatrix.datasets", .array(.string, datasets.map { .string($0) }), in: &g)
        GGUFMetadata.set("imatrix.chunk_count", .u32(UInt32(clamping: chunkCount)), in: &g)
        GGUFMetadata.set("imatrix.chunk_size", .u32(UInt32(clamping: chunkSize)), in: &g)
        try GGUF.write(g, to: path)
    }

    func legacyBytes() -> [UInt8] {
        var out: [UInt8] = []
        func i32(_ v: Int) { let u = UInt32(bitPattern: Int32(clamping: v)); out += [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: u >> $0) } }
        let names = entries.keys.sorted().filter { entries[$0]!.counts.contains { $0 > 0 } }
        let chunk = Float(max(1, chunkSize))
        i32(names.count)
        for name in names {
            let e = entries[name]!
            i32(name.utf8.count)
            out += Array(name.utf8)
            let ncall = Int(((e.counts.max() ?? 0) + chunk - 1) / chunk)
            i32(ncall)
            i32(e.sums.count)
            let n = e.columns
            for (i, s) in e.sums.enumerated() {
                var c = e.counts[i / n], v = s
                if c == 0 { c = 1; v = 1 }
                i32(Int(Int32(bitPattern: (v / c * Float(ncall)).bitPattern)))
            }
        }
        i32(chunkCount)
        let d = Array((datasets.last ?? "").utf8)
        i32(d.count)
        out += d
        return out
    }
}

// llama.cpp's importance matrix files: the committed fixtures in llama.cpp's GGUF and legacy
// layouts (tools/make_imatrix_fixtures.py) read to what llama-quantize reads from them; files
// we write read back by gguf-py's GGUFReader and by us; malformed legacy files are one-line
// errors.

import CkptCore
import Formats
import Foundation
import OrderedCollections
@testable import Pipeline
import Quantize
import Testing
import TestSupport

@Suite struct ImportanceMatrixTests {
    static let expected = try! JSONValue.parse(String(decoding: try! readFile(Repo.fixture("imatrix/expected.json")), as: UTF8.self))

    func floats(_ v: JSONValue?) -> [Float] { (v?.arrayValue ?? []).compactMap { $0.doubleValue.map(Float.init) } }

    @Test func readsLlamaCppGGUFImatrix() throws {
        let m = try ImportanceMatrix.read(path: Repo.fixture("imatrix/llamacpp.imatrix.gguf"))
        #expect(m.datasets == ["calibration.txt"])
        #expect(m.chunkCount == Self.expected["chunk_count"]?.intValue)
        #expect(m.chunkSize == Self.expected["chunk_size"]?.intValue)
        let want = try #require(Self.expected["gguf"]?.objectValue)
        #expect(Set(m.entries.keys) == Set(want.keys))
        for (name, e) in want {
            let got = try #require(m.entries[name])
            #expect(got.importance == floats(e["values"]), "\(name)")
            #expect(got.counts == floats(e["counts"]), "\(name)")
        }
        // The MoE entry: two matrices, the second never routed to (importance 1, as llama.cpp).
        #expect(m.entries["blk.1.ffn_up_exps.weight"]?.counts.count == 2)
    }

    @Test func readsLlamaCppLegacyImatrix() throws {
        let m = try ImportanceMatrix.read(path: Repo.fixture("imatrix/llamacpp.imatrix.dat"))
        #expect(m.datasets == ["calibration.txt"])
        #expect(m.chunkCount == Self.expected["chunk_count"]?.intValue)
        let want = try #require(Self.expected["dat"]?.objectValue)
        #expect(Set(m.entries.keys) == Set(want.keys))
        for (name, e) in want { #expect(m.entries[name]?.importance == floats(e["values"]), "\(name)") }
    }

    static func sample() -> ImportanceMatrix {
        var m = ImportanceMatrix(datasets: ["wiki.txt"], chunkCount: 4, chunkSize: 128)
        m.entries["blk.0.attn_q.weight"] = .init(sums: (0..<64).map { Float($0) * 1.5 + 0.25 }, counts: [512])
        m.entries["blk.0.ffn_down.weight"] = .init(sums: (0..<128).map { Float($0 % 7) * 3 }, counts: [500])
        m.entries["blk.1.ffn_up_exps.weight"] = .init(sums: (0..<64).map { Float($0) }, counts: [300, 0])
        return m
    }

    @Test func ourGGUFReadsBackInGGUFPyAndInUs() throws {
        let dir = TempDir()
        let path = dir.file("ours.imatrix.gguf")
        let m = Self.sample()
        try m.write(to: path, legacy: false)
        let back = try ImportanceMatrix.read(path: path)
        #expect(back.entries == OrderedDictionary(uniqueKeysWithValues: m.entries.sorted { $0.key < $1.key }))
        #expect(back.datasets == m.datasets && back.chunkCount == 4 && back.chunkSize == 128)
        let py = try Python.run("""
        import sys, json, gguf, numpy as np
        r = gguf.GGUFReader(sys.argv[1])
        f = r.fields
        out = {"keys": [k for k in f if not k.startswith("GGUF.")],
               "type": f["general.type"].contents(), "datasets": f["imatrix.datasets"].contents(),
               "chunk_count": f["imatrix.chunk_count"].contents(), "chunk_size": f["imatrix.chunk_size"].contents(),
               "tensors": {t.name: {"type": t.tensor_type.name, "shape": [int(d) for d in t.shape],
                                     "values": np.asarray(t.data, dtype=np.float32).reshape(-1).tolist()} for t in r.tensors}}
        print(json.dumps(out))
        """, [path])
        #expect(py.status == 0, "\(py.stderr)")
        let j = try JSONValue.parse(py.stdout)
        // llama.cpp writes no general.architecture; ckpt's GGUF writer always does ("unknown"
        // here), which llama-quantize and llama-imatrix ignore (they look keys up by name).
        #expect(j["keys"]?.arrayValue?.compactMap(\.stringValue).filter { $0 != "general.architecture" }
                == ["general.type", "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"])
        #expect(j["type"]?.stringValue == "imatrix")
        #expect(j["datasets"]?.arrayValue?.compactMap(\.stringValue) == ["wiki.txt"])
        #expect(j["chunk_count"]?.intValue == 4 && j["chunk_size"]?.intValue == 128)
        let tensors = try #require(j["tensors"]?.objectValue)
        #expect(tensors.count == 6)
        for (name, e) in m.entries {
            let sums = try #require(tensors[name + ".in_sum2"]), counts = try #require(tensors[name + ".counts"])
            // gguf-py lists dims innermost first: [columns, matrices] and [1, matrices].
            #expect(sums["shape"]?.arrayValue?.compactMap(\.intValue) == [e.columns, e.counts.count])
            #expect(counts["shape"]?.arrayValue?.compactMap(\.intValue) == [1, e.counts.count])
            #expect(sums["type"]?.stringValue == "F32")
            #expect(floats(sums["values"]) == e.sums)
            #expect(floats(counts["values"]) == e.counts)
        }
    }

    @Test func ourLegacyFileReadsBackAsLlamaQuantizeReadsIt() throws {
        let dir = TempDir()
        let path = dir.file("ours.dat")
        let m = Self.sample()
        var withEmpty = m
        withEmpty.entries["blk.2.ffn_up_exps.weight"] = .init(sums: [Float](repeating: 0, count: 8), counts: [0, 0])
        try withEmpty.write(to: path, legacy: true)
        let back = try ImportanceMatrix.read(path: path)
        // All three have tokens (the MoE one in one of its two matrices: its other matrix reads
        // as 1, as llama-imatrix writes it); the means survive the ·ncall/ncall round trip.
        #expect(Set(back.entries.keys) == Set(m.entries.keys))
        #expect(back.chunkCount == 4 && back.datasets == ["wiki.txt"])
        for (name, e) in back.entries {
            let want = m.entries[name]!.importance
            for (a, b) in zip(e.importance, want) { #expect(abs(a - b) <= 1e-6 * max(1, abs(b)), "\(name)") }
        }
    }

    @Test func malformedFilesAreOneLineErrors() throws {
        let dir = TempDir()
        let name = Array("blk.0.attn_q.weight".utf8)
        let good: [UInt8] = le32(1) + le32(UInt32(name.count)) + name + le32(1) + le32(2) + f32Bytes([1, 2])
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("no entries", le32(0)),
            ("huge entry count", le32(0x7FFF_FFFF) + [UInt8](repeating: 0, count: 64)),
            ("name past the end", le32(1) + le32(1000) + name),
            ("negative name length", le32(1) + le32(UInt32(bitPattern: -5)) + [UInt8](repeating: 0, count: 32)),
            ("huge value count", le32(1) + le32(UInt32(name.count)) + name + le32(1) + le32(0x4000_0000) + f32Bytes([1, 2])),
            ("truncated values", Array(good.dropLast(2))),
            ("negative value", le32(1) + le32(UInt32(name.count)) + name + le32(1) + le32(2) + f32Bytes([1, -2])),
            ("nan value", le32(1) + le32(UInt32(name.count)) + name + le32(1) + le32(2) + f32Bytes([1, .nan])),
            ("duplicate entry", le32(2) + Array(good.dropFirst(4)) + Array(good.dropFirst(4))),
            ("trailing bytes", good + le32(3) + le32(2) + Array("ab".utf8) + [1]),
            ("gguf without in_sum2", Array("GGUF".utf8) + le32(3) + [UInt8](repeating: 0, count: 16)),
        ]
        for (what, bytes) in cases {
            let path = dir.file(what.replacingOccurrences(of: " ", with: "_") + ".dat")
            try writeFile(path, bytes)
            do {
                _ = try ImportanceMatrix.read(path: path)
                Issue.record("\(what): read without an error")
            } catch {
                let text = "\(error)"
                #expect(text.contains(path), "\(what): \(text)")
                #expect(!text.contains("\n"), "\(what): \(text)")
            }
        }
        // The good one reads.
        try writeFile(dir.file("good.dat"), good)
        #expect(try ImportanceMatrix.read(path: dir.file("good.dat")).entries["blk.0.attn_q.weight"]?.importance == [1, 2])
    }
}

/// Stacked-MoE entries (llama-imatrix writes one per `blk.N.ffn_*_exps.weight`, a matrix and a
/// token count per expert): each expert of the stacked tensor is quantized with its own slice,
/// an expert never routed to with importance 1; a wrong-sized entry is a one-line error; and
/// the matrix ckpt collects and saves for a MoE model has that layout, its counts summing to
/// the routed tokens (2 experts per token here).
@Suite struct StackedExpertImatrixTests {
    static let model = Repo.fixture("models/mixtral-top2")

    func ggufTensorBytes(_ path: String, _ name: String) throws -> [UInt8] {
        let dir = TempDir()
        let py = try Python.run("""
        import sys, gguf, numpy as np
        r = gguf.GGUFReader(sys.argv[1])
        t = [t for t in r.tensors if t.name == sys.argv[2]][0]
        assert t.tensor_type.name == "Q4_0", t.tensor_type.name
        np.asarray(t.data).tofile(sys.argv[3])
        """, [path, name, dir.file("t.bin")])
        guard py.status == 0 else { throw SupportError("gguf-py: \(py.stderr)") }
        return try readFile(dir.file("t.bin"))
    }

    @Test func expertsUseTheirOwnSliceOfAStackedEntry() throws {
        let graph = try GGUFNaming.toGGUF(Checkpoint.openModel(Self.model))
        let name = "blk.0.ffn_up_exps.weight"
        let t = try #require(graph.tensors[name])
        #expect(t.shape == [4, 24, 32])
        let w = try #require(try Cast.floats(t))
        var m = ImportanceMatrix(datasets: ["x"], chunkCount: 1, chunkSize: 8)
        // Per expert a different spread over the 32 columns; expert 1 never routed to.
        let counts: [Float] = [10, 0, 7, 3]
        var sums = [Float]()
        for e in 0..<4 { for j in 0..<32 { sums.append(counts[e] * Float(1 + ((j * (e + 3)) % 11)) * (j % 8 == e ? 40 : 1)) } }
        m.entries[name] = .init(sums: sums, counts: counts)
        let dir = TempDir()
        try m.write(to: dir.file("im.gguf"), legacy: false)
        let r = try CkptBinary.run("quantize", Self.model, dir.file("out.gguf"), "--scheme", "q4_0", "--imatrix", dir.file("im.gguf"), "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let row = try JSONValue.parse(r.stdout)["tensors"]?.arrayValue?.first { $0["name"]?.stringValue == name }
        #expect(row?["calibration"]?["method"]?.stringValue == "imatrix")
        let got = try ggufTensorBytes(dir.file("out.gguf"), name)
        let importance = m.entries[name]!.importance
        #expect(importance[32..<64].allSatisfy { $0 == 1 })
        var want = [UInt8]()
        for e in 0..<4 {
            want += try w.withUnsafeBufferPointer { p in
                try ImportanceQuants.quantize(UnsafeBufferPointer(rebasing: p[(e * 768)..<((e + 1) * 768)]), rowLength: 32,
                                              importance: Array(importance[(e * 32)..<((e + 1) * 32)]), to: .q4_0)
            }
        }
        #expect(got == want)
        // Not what round-to-nearest or expert 0's importance for all would give.
        #expect(got != (try Quantizer.quantize(w, rowLength: 32, to: .q4_0)))
        let first = try w.withUnsafeBufferPointer { try ImportanceQuants.quantize($0, rowLength: 32, importance: Array(importance[0..<32]), to: .q4_0) }
        #expect(got != first)

        // An entry sized for three experts: one line naming the tensor, exit 2, no output.
        var bad = m
        bad.entries[name] = .init(sums: Array(sums.prefix(96)), counts: [10, 0, 7])
        try bad.write(to: dir.file("bad.gguf"), legacy: false)
        let b = try CkptBinary.run("quantize", Self.model, dir.file("bad-out.gguf"), "--scheme", "q4_0", "--imatrix", dir.file("bad.gguf"))
        #expect(b.status == 2 && b.stderr.contains(name) && b.stderr.split(separator: "\n").count == 1, "\(b.status) \(b.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("bad-out.gguf")))
    }

    @Test func collectedMatrixOfAMoEModelHasStackedEntries() throws {
        let dir = TempDir()
        var rng = SplitMix64(seed: 9)
        let lines = (0..<6).map { _ in (0..<16).map { _ in String(Int(rng.next() % 71)) }.joined(separator: " ") }
        try writeFile(dir.file("calib.txt"), Array(lines.joined(separator: "\n").utf8))
        let r = try CkptBinary.run("quantize", Self.model, dir.file("a.gguf"), "--scheme", "q4_0", "--calibrate", dir.file("calib.txt"),
                                   "--method", "imatrix", "--context", "16", "--save-imatrix", dir.file("im.gguf"), "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let m = try ImportanceMatrix.read(path: dir.file("im.gguf"))
        let e = try #require(m.entries["blk.0.ffn_gate_exps.weight"], "\(m.entries.keys.sorted())")
        #expect(e.counts.count == 4 && e.columns == 32)
        let routed: Float = e.counts.reduce(0, +)
        #expect(routed == Float(2 * 6 * 16))  // top-2 routing of 96 tokens
        #expect(!m.entries.keys.contains { $0.contains("experts") }, "\(m.entries.keys.sorted())")
        // The stacked tensors were quantized with it, and reusing the saved file gives the same bytes.
        let row = try JSONValue.parse(r.stdout)["tensors"]?.arrayValue?.first { $0["name"]?.stringValue == "blk.0.ffn_gate_exps.weight" }
        #expect(row?["calibration"]?["method"]?.stringValue == "imatrix")
        let b = try CkptBinary.run("quantize", Self.model, dir.file("b.gguf"), "--scheme", "q4_0", "--imatrix", dir.file("im.gguf"), "--quiet")
        #expect(b.status == 0, "\(b.stderr)")
        #expect(try ggufTensorBytes(dir.file("a.gguf"), "blk.0.ffn_gate_exps.weight") == ggufTensorBytes(dir.file("b.gguf"), "blk.0.ffn_gate_exps.weight"))
        // GPTQ (the default) has no per-expert Hessian for a stacked tensor: the experts take the
        // importance matrix instead of rounding to nearest; the other linears take GPTQ.
        for sequential in ["--sequential", "--no-sequential"] {
            let g = try CkptBinary.run("quantize", Self.model, dir.file("g.gguf"), "--scheme", "q4_0", "--calibrate", dir.file("calib.txt"),
                                       "--context", "16", sequential, "--json")
            #expect(g.status == 0, "\(sequential): \(g.stderr)")
            let rows = try #require(JSONValue.parse(g.stdout)["tensors"]?.arrayValue)
            func method(_ n: String) -> String? { rows.first { $0["name"]?.stringValue == n }?["calibration"]?["method"]?.stringValue }
            #expect(method("blk.0.ffn_gate_exps.weight") == "imatrix" && method("blk.0.attn_q.weight") == "gptq", "\(sequential)")
        }
    }
}

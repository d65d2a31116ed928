// GGUF: files written by gguf-py read correctly, gguf-py's GGUFReader reads what ckpt writes,
// and every malformed case modelled on llama.cpp's 2024 GGUF CVEs is refused with one line.

import CkptCore
@testable import Formats
import Foundation
import Quantize
import Testing
import TestSupport

/// Little-endian GGUF byte builder for malformed-input tests.
struct GGUFBytes {
    var b: [UInt8] = Array("GGUF".utf8)
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); b += Array(s.utf8) }
    mutating func pad(_ a: Int = 32) { while b.count % a != 0 { b.append(0) } }
    static func header(tensors: UInt64, kvs: UInt64, version: UInt32 = 3) -> GGUFBytes {
        var g = GGUFBytes()
        g.u32(version); g.u64(tensors); g.u64(kvs)
        return g
    }
    /// A tensor info: dims innermost first.
    mutating func tensor(_ name: String, dims: [UInt64], type: UInt32, offset: UInt64) {
        str(name); u32(UInt32(dims.count)); for d in dims { u64(d) }; u32(type); u64(offset)
    }
}

func parseGGUF(_ bytes: [UInt8]) -> GGUFError? {
    do {
        _ = try bytes.withUnsafeBytes { b in try GGUF.parseHeader(b) }
        return nil
    } catch { return error as? GGUFError }
}

@Suite struct GGUFReadTests {
    @Test func readsWhatGGUFPyWrote() throws {
        let graph = try GGUF.read(path: Repo.fixture("gguf/gguf_py.gguf"))
        let expected = try JSONValue.parse(readFile(Repo.fixture("gguf/gguf_py.expected.json")))
        let tensors = try #require(expected["tensors"]?.arrayValue)
        #expect(Array(graph.tensors.keys) == tensors.map { $0["name"]!.stringValue! })
        for e in tensors {
            let name = e["name"]!.stringValue!
            let t = try #require(graph.tensors[name])
            #expect(t.shape == e["shape"]!.arrayValue!.map { $0.intValue! }, "\(name)")
            #expect(t.dtype.rawValue == e["type"]!.stringValue!.lowercased(), "\(name)")
            #expect(try sha256(t.data.load()) == e["raw_sha256"]!.stringValue!, "\(name) raw bytes")
            if let v = e["values_sha256"]?.stringValue {
                let values = try #require(try Cast.floats(t))
                #expect(try sha256(values.withUnsafeBytes { Array($0) }) == v, "\(name) dequantized values")
            }
        }
        let kvs = try GGUFMetadata.values(of: graph)
        for (key, e) in try #require(expected["metadata"]?.objectValue) {
            let v = try #require(kvs[key], "\(key)")
            let types = e["types"]!.arrayValue!.map { $0.stringValue! }
            #expect(GGUFMetadata.typeName(v).uppercased().contains(types.last!.replacingOccurrences(of: "STRING", with: "STR").replacingOccurrences(of: "UINT", with: "U").replacingOccurrences(of: "INT", with: "I").replacingOccurrences(of: "FLOAT", with: "F")), "\(key)")
            #expect(GGUFMetadata.json(v) == Self.normalise(e["value"]!), "\(key): \(GGUFMetadata.json(v).serialized()) vs \(e["value"]!.serialized())")
        }
        #expect(kvs["test.f64"] == .f64(-1.5e300))
        #expect(kvs["test.u64"] == .u64(UInt64.max))
        #expect(kvs["test.nested"] == .array(.array, [.array(.i32, [.i32(1), .i32(2)]), .array(.i32, [.i32(3)])]))
        #expect(graph.config?.modelType == "llama")
    }

    /// JSON numbers as ckpt prints them (Python writes 0.25 and 1.5e+300; Swift 0.25 and 1.5e+300).
    static func normalise(_ v: JSONValue) -> JSONValue {
        switch v {
        case .number(let n): return n.contains(".") || n.contains("e") ? .number(Double(n)!.description) : v
        case .array(let a): return .array(a.map(normalise))
        default: return v
        }
    }

    @Test func versionTwoReadsLikeVersionThree() throws {
        var bytes = try readFile(Repo.fixture("gguf/gguf_py.gguf"))
        bytes[4] = 2
        #expect(parseGGUF(bytes) == nil)
    }

    /// One row per refusal; each modelled on a llama.cpp GGUF CVE or loader check.
    @Test func malformedFilesAreRefused() throws {
        var cases: [(String, [UInt8], (GGUFError) -> Bool)] = []
        cases.append(("bad magic", Array("GGUX".utf8) + [UInt8](repeating: 0, count: 20), { $0 == .notGGUF }))
        var g = GGUFBytes.header(tensors: 0, kvs: 0, version: 1)
        cases.append(("version 1", g.b, { $0 == .unsupportedVersion(1) }))
        g = GGUFBytes(); g.u32(0x0300_0000); g.u64(0); g.u64(0)
        cases.append(("big-endian", g.b, { $0 == .bigEndian }))
        // CVE-2024-25664-style: counts far beyond what the file holds.
        g = GGUFBytes.header(tensors: 1 << 40, kvs: 0)
        cases.append(("huge tensor count", g.b, { if case .tooMany = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 0, kvs: UInt64.max)
        cases.append(("huge kv count", g.b, { if case .tooMany = $0 { return true }; return false }))
        // CVE-2024-25665/25666: string and array lengths past the end.
        g = GGUFBytes.header(tensors: 0, kvs: 1); g.u64(UInt64.max - 3); g.b += [UInt8](repeating: 0, count: 40)
        cases.append(("key length overflow", g.b, { if case .stringTooLong = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 0, kvs: 1); g.str("k"); g.u32(8); g.u64(1 << 31)
        cases.append(("string value past end", g.b, { if case .stringTooLong = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 0, kvs: 1); g.str("k"); g.u32(9); g.u32(6); g.u64(1 << 60)
        cases.append(("array count past end", g.b, { if case .tooMany = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 0, kvs: 1); g.str("k"); g.u32(9); g.u32(8); g.u64(2); g.str("a"); g.u64(99)
        cases.append(("string in array past end", g.b, { if case .stringTooLong = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 0, kvs: 1); g.str("k")
        g.u32(9); g.u32(9); g.u64(1); g.u32(9); g.u64(1); g.u32(9); g.u64(1); g.u32(4); g.u64(1); g.u32(7)
        cases.append(("arrays nested 4 deep", g.b, { if case .arrayTooDeep = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 0, kvs: 1); g.str("k"); g.u32(13); g.u32(0)
        cases.append(("unknown value type", g.b, { $0 == .unknownValueType(key: "k", type: 13) }))
        g = GGUFBytes.header(tensors: 0, kvs: 2); g.str("k"); g.u32(4); g.u32(1); g.str("k"); g.u32(4); g.u32(2)
        cases.append(("duplicate key", g.b, { $0 == .duplicateKey("k") }))
        g = GGUFBytes.header(tensors: 0, kvs: 1); g.u64(2); g.b += [0xC3, 0x28]; g.u32(4); g.u32(1)
        cases.append(("key not UTF-8", g.b, { if case .invalidUTF8 = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 0, kvs: 1); g.str("general.alignment"); g.u32(4); g.u32(48)
        cases.append(("alignment not a power of two", g.b, { if case .invalidAlignment = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 0, kvs: 1); g.str("general.alignment"); g.u32(4); g.u32(0)
        cases.append(("alignment zero", g.b, { if case .invalidAlignment = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 0, kvs: 1); g.str("general.alignment"); g.u32(10); g.u64(32)
        cases.append(("alignment not u32", g.b, { if case .invalidAlignment = $0 { return true }; return false }))
        // Tensor infos (CVE-2024-25667/25668: sizes, dims, offsets).
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("t", dims: [1, 1, 1, 1, 1], type: 0, offset: 0)
        cases.append(("5 dims", g.b, { $0 == .tooManyDimensions(tensor: "t", count: 5) }))
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("t", dims: [UInt64.max], type: 0, offset: 0)
        cases.append(("negative dim", g.b, { if case .negativeDimension = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("t", dims: [1 << 40, 1 << 40], type: 0, offset: 0)
        cases.append(("element count × size overflows", g.b, { $0 == .sizeOverflow(tensor: "t") }))
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("t", dims: [4], type: 99, offset: 0)
        cases.append(("unknown type", g.b, { $0 == .unknownTensorType(tensor: "t", type: 99) }))
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("t", dims: [256], type: 16, offset: 0)
        cases.append(("unsupported type", g.b, { $0 == .unsupportedTensorType(tensor: "t", type: "IQ2_XXS") }))
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("t", dims: [48, 2], type: 2, offset: 0)
        cases.append(("row not whole blocks", g.b, { if case .rowNotWholeBlocks = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 2, kvs: 0); g.tensor("t", dims: [4], type: 0, offset: 0); g.tensor("t", dims: [4], type: 0, offset: 32)
        cases.append(("duplicate tensor", g.b, { $0 == .duplicateTensor("t") }))
        g = GGUFBytes.header(tensors: 2, kvs: 0); g.tensor("a", dims: [4], type: 0, offset: 0); g.tensor("b", dims: [4], type: 0, offset: 16)
        g.pad(); g.b += [UInt8](repeating: 0, count: 64)
        cases.append(("offset not the padded running total", g.b, { $0 == .invalidOffset(tensor: "b", offset: 16, expected: 32) }))
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("a", dims: [4], type: 0, offset: 0); g.pad(); g.b += [0, 0, 0]
        cases.append(("data truncated", g.b, { if case .dataPastEnd = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("a", dims: [4], type: 0, offset: 0); g.pad(); g.b += [UInt8](repeating: 0, count: 64)
        cases.append(("trailing bytes", g.b, { if case .trailingBytes = $0 { return true }; return false }))
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.str("a"); g.u32(4); g.u64(1); g.u64(1)
        cases.append(("truncated tensor info", g.b, { if case .truncated = $0 { return true }; return false }))
        // Found by the imatrix fuzz target: an empty tensor in a file that ends before the
        // data section's alignment padding (its view would start past the end: a trap).
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("e", dims: [0, 3], type: 0, offset: 0)
        cases.append(("empty tensor, file ends before the data", g.b, {
            if case .truncated(let what, _, _) = $0 { return what.contains("padding") }; return false
        }))

        for (label, bytes, check) in cases {
            let e = parseGGUF(bytes)
            #expect(e.map(check) == true, "\(label): got \(String(describing: e))")
            if let e { #expect(!e.description.contains("\n"), "\(label): one line") }
        }
        // A well-formed minimal file passes, so the rows above fail for their own reason.
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("a", dims: [4], type: 0, offset: 0); g.pad(); g.b += [UInt8](repeating: 0, count: 16)
        #expect(parseGGUF(g.b) == nil)
        g.b += [UInt8](repeating: 0, count: 16)  // with the final padding, as gguf-py writes it
        #expect(parseGGUF(g.b) == nil)
    }
}

@Suite struct GGUFWriteTests {
    /// Writes a graph with every GGUF-storable dtype and typed metadata, reads it back with
    /// ckpt and with gguf-py's GGUFReader.
    @Test func ggufPyReadsWhatCkptWrites() throws {
        let dir = TempDir()
        var g = WeightGraph()
        let x = (0..<(4 * 256)).map { Float(sin(Double($0) * 0.37)) }
        let f32 = x.withUnsafeBytes { Array($0) }
        try g.add(Tensor(name: "f32", dtype: .f32, shape: [4, 256], data: .owned(f32)))
        try g.add(Cast.cast(g.tensors["f32"]!, to: .f16).renamed("f16"))
        try g.add(Cast.cast(g.tensors["f32"]!, to: .bf16).renamed("bf16"))
        for t in [DType.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k] {
            try g.add(Tensor(name: t.rawValue, dtype: t, shape: [4, 256], data: .owned(Quantizer.quantize(x, rowLength: 256, to: t))))
        }
        try g.add(Tensor(name: "i32", dtype: .i32, shape: [3], data: .owned([1, 0, 0, 0, 2, 0, 0, 0, 255, 255, 255, 255])))
        try g.add(Tensor(name: "scalar", dtype: .f32, shape: [], data: .owned([0, 0, 128, 63])))
        GGUFMetadata.store([
            "general.architecture": .string("test"), "general.alignment": .u32(64),
            "u8": .u8(200), "i16": .i16(-300), "f32": .f32(0.1), "f64": .f64(.pi), "b": .bool(false),
            "s": .string("héllo"), "empty": .array(.u32, []), "strs": .array(.string, [.string("a"), .string("b c")]),
            "nested": .array(.array, [.array(.f32, [.f32(1.5)]), .array(.f32, [])]),
            "inf": .f32(.infinity), "i64": .i64(.min),
        ], into: &g)
        let path = dir.file("ours.gguf")
        try GGUF.write(g, to: path)
        #expect(dir.contents() == ["ours.gguf"])

        // ckpt reads it back exactly.
        let back = try GGUF.read(path: path)
        for t in g.tensors.values { #expect(try back.tensors[t.name]!.data.load() == t.data.load(), "\(t.name)") }
        let kb = try GGUFMetadata.values(of: back), kg = try GGUFMetadata.values(of: g)
        for (k, v) in kg where kb[k] != v { Issue.record("metadata \(k): wrote \(v), read \(String(describing: kb[k]))") }
        #expect(try Dictionary(uniqueKeysWithValues: GGUFMetadata.values(of: back).map { ($0.key, $0.value) })
                == Dictionary(uniqueKeysWithValues: GGUFMetadata.values(of: g).map { ($0.key, $0.value) }))

        // gguf-py reads it: names, types, shapes, dequantized values, metadata.
        let script = """
        import sys, json, numpy as np, gguf
        from gguf.quants import dequantize
        r = gguf.GGUFReader(sys.argv[1])
        out = {"alignment": int(r.alignment), "tensors": {}, "kv": {}}
        for t in r.tensors:
            v = dequantize(t.data, t.tensor_type) if t.tensor_type.name != "I32" else t.data
            out["tensors"][t.name] = {"type": t.tensor_type.name, "shape": [int(d) for d in reversed(t.shape.tolist())],
                                      "values": np.asarray(v, dtype=np.float64).reshape(-1)[:8].tolist(), "n": int(np.asarray(v).size)}
        for f in r.fields.values():
            if not f.name.startswith("GGUF."):
                c = f.contents()
                out["kv"][f.name] = [t.name for t in f.types] + [repr(c)]
        print(json.dumps(out))
        """
        let r = try Python.run(script, [path])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONValue.parse(r.stdout)
        #expect(j["alignment"]?.intValue == 64)
        for t in g.tensors.values {
            let e = try #require(j["tensors"]?[t.name], "\(t.name)")
            #expect(e["shape"] == .array(t.shape.map { .int($0) }) || (t.shape.isEmpty && e["shape"] == .array([.int(1)])), "\(t.name)")
            if t.dtype != .i32 {
                let ours = try Cast.floats(t)!.prefix(8).map { Double($0) }
                #expect(e["values"]!.arrayValue!.map { $0.doubleValue! } == ours, "\(t.name)")
            }
        }
        #expect(j["kv"]?["nested"]?.arrayValue?.first?.stringValue == "ARRAY")
        #expect(j["kv"]?["s"]?.arrayValue?.last?.stringValue == "'héllo'")
        #expect(j["kv"]?["i64"]?.arrayValue?.last?.stringValue == String(Int64.min))
    }

    @Test func ckptsOwnTypesAreRefusedWithAHint() throws {
        let dir = TempDir()
        var g = WeightGraph()
        try g.add(Tensor(name: "w", dtype: .i4_g32, shape: [1, 32], data: .owned([UInt8](repeating: 0, count: 18))))
        #expect { try GGUF.write(g, to: dir.file("x.gguf")) } throws: { "\($0)".contains("tensor `w`: dtype i4_g32 cannot be stored in GGUF") }
        #expect(dir.contents().isEmpty)
    }
}

extension Tensor {
    func renamed(_ n: String) -> Tensor {
        var t = self
        t.name = n
        return t
    }
}

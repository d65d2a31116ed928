import CkptCore
import Foundation
@testable import Formats
import OrderedCollections
import Testing
import TestSupport

/// Python: prints {file: {tensor: [dtype, shape, sha256(bytes)]}, "__metadata__": ...} as
/// the reference library reads the files given as arguments.
let pythonDigests = """
import hashlib, json, sys, safetensors
out = {}
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        data = f.read()
    tensors = {name: [info["dtype"], list(info["shape"]), hashlib.sha256(bytes(info["data"])).hexdigest()]
               for name, info in safetensors.deserialize(data)}
    with safetensors.safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    out[path] = {"tensors": tensors, "metadata": meta}
print(json.dumps(out))
"""

struct PythonFile: Decodable {
    var tensors: [String: [JSONish]]
    var metadata: [String: String]?
}

enum JSONish: Decodable, Equatable {
    case string(String), ints([Int])
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .string(s) } else { self = .ints(try c.decode([Int].self)) }
    }
}

func pythonRead(_ paths: [String]) throws -> [String: PythonFile] {
    let r = try Python.run(pythonDigests, paths)
    guard r.status == 0 else { throw SupportError("python failed: \(r.stderr)") }
    return try JSONDecoder().decode([String: PythonFile].self, from: Data(r.stdout.utf8))
}

func tensorBytes(_ dtype: DType, _ shape: [Int], seed: UInt8) -> [UInt8] {
    let n = dtype.byteCount(shape: shape)!
    return (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

@Suite struct SafetensorsWriterTests {
    @Test func rewritingAPythonWrittenFileGivesTheSameBytes() throws {
        let dir = TempDir()
        for fixture in ["safetensors/every_dtype.safetensors", "tiny-gpt2/model.safetensors"] {
            let graph = try Safetensors.read(path: Repo.fixture(fixture))
            let out = dir.file("out.safetensors")
            try Safetensors.write(graph, to: out)
            #expect(try readFile(out) == readFile(Repo.fixture(fixture)), "\(fixture)")
        }
    }

    @Test func thePythonLibraryReadsEveryDTypeCkptWrites() throws {
        // Built here, not read from a fixture: every DType, including F6 which the Python
        // library cannot write, plus a scalar, zero-size tensors and escaped names.
        var graph = WeightGraph()
        var expected: [String: (String, [Int], [UInt8])] = [:]
        for (i, dtype) in DType.elementTypes.enumerated() {
            let shape = dtype == .f6_e2m3 || dtype == .f6_e3m2 ? [2, 4] : [3, 2]
            let bytes = tensorBytes(dtype, shape, seed: UInt8(i))
            let name = "t.\(dtype.rawValue)"
            try graph.add(Tensor(name: name, dtype: dtype, shape: shape, data: .owned(bytes)))
            expected[name] = (SafetensorsDType.name(dtype)!, shape, bytes)
        }
        try graph.add(Tensor(name: "scalar", dtype: .f64, shape: [], data: .owned([UInt8](repeating: 1, count: 8))))
        try graph.add(Tensor(name: "empty", dtype: .bf16, shape: [0, 5], data: .owned([])))
        try graph.add(Tensor(name: "quote\"back\\slash\ttab/é", dtype: .u8, shape: [1], data: .owned([42])))
        expected["scalar"] = ("F64", [], [UInt8](repeating: 1, count: 8))
        expected["empty"] = ("BF16", [0, 5], [])
        expected["quote\"back\\slash\ttab/é"] = ("U8", [1], [42])
        graph.metadata = ["format": "pt", "note": "line\nbreak \"quoted\""]

        let dir = TempDir()
        let path = dir.file("all.safetensors")
        try Safetensors.write(graph, to: path)
        let py = try #require(try pythonRead([path])[path])
        #expect(py.metadata == ["format": "pt", "note": "line\nbreak \"quoted\""])
        #expect(Set(py.tensors.keys) == Set(expected.keys))
        for (name, (dtype, shape, bytes)) in expected {
            #expect(py.tensors[name] == [.string(dtype), .ints(shape), .string(try sha256(bytes))], "\(name)")
        }
        // And ckpt reads its own output back to the same bytes.
        let back = try Safetensors.read(path: path)
        for (name, (_, shape, bytes)) in expected {
            #expect(back.tensors[name]?.shape == shape)
            #expect(try back.tensors[name]?.data.load() == bytes)
        }
    }

    /// Tensors read from a file and written unchanged go file to file inside the kernel
    /// (copy_file_range) when they are large, unaligned to pages and at new offsets (a tensor
    /// left out shifts the rest): every byte lands where the format puts it.
    @Test func largeMappedTensorsAreCopiedExactly() throws {
        var graph = WeightGraph()
        let specs: [(String, DType, [Int])] = [("a", .f32, [700, 1031]), ("b", .u8, [13]), ("c", .bf16, [1500, 777]), ("d", .f16, [3])]
        for (i, (name, dtype, shape)) in specs.enumerated() {
            try graph.add(Tensor(name: name, dtype: dtype, shape: shape, data: .owned(tensorBytes(dtype, shape, seed: UInt8(i + 1)))))
        }
        let dir = TempDir()
        let first = dir.file("first.safetensors"), copy = dir.file("copy.safetensors"), fewer = dir.file("fewer.safetensors")
        try Safetensors.write(graph, to: first)
        let mapped = try Safetensors.read(path: first)
        try Safetensors.write(mapped, to: copy)
        #expect(try readFile(copy) == readFile(first))
        var smaller = mapped
        smaller.remove("a")
        try Safetensors.write(smaller, to: fewer)
        var expected = graph
        expected.remove("a")
        let reference = dir.file("reference.safetensors")
        try Safetensors.write(expected, to: reference)
        #expect(try readFile(fewer) == readFile(reference))
    }

    @Test func aFailedWriteLeavesNothingBehind() throws {
        final class FailingBytes: ExternalBytes, @unchecked Sendable {
            let count = 8
            func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R { throw SupportError("disk on fire") }
            func releaseResidentPages() {}
            var origin: String { "test" }
        }
        var graph = WeightGraph()
        try graph.add(Tensor(name: "ok", dtype: .f32, shape: [4], data: .owned([UInt8](repeating: 0, count: 16))))
        try graph.add(Tensor(name: "bad", dtype: .f32, shape: [2], data: .external(FailingBytes())))
        let dir = TempDir()
        #expect(throws: SupportError.self) { try Safetensors.write(graph, to: dir.file("out.safetensors")) }
        #expect(dir.contents().isEmpty)
        // A failure must not clobber an existing output either.
        try writeFile(dir.file("out.safetensors"), [1, 2, 3])
        #expect(throws: SupportError.self) { try Safetensors.write(graph, to: dir.file("out.safetensors")) }
        #expect(dir.contents() == ["out.safetensors"])
        #expect(try readFile(dir.file("out.safetensors")) == [1, 2, 3])
    }
}

@Suite struct ShardedTests {
    @Test func readsTransformersShardedOutputLikeTheSingleFile() throws {
        let sharded = try Checkpoint.open(Repo.fixture("tiny-gpt2-sharded")).graph
        let single = try Checkpoint.open(Repo.fixture("tiny-gpt2")).graph
        #expect(Set(sharded.tensors.keys) == Set(single.tensors.keys))
        for (name, t) in single.tensors {
            #expect(try sharded.tensors[name]?.data.load() == t.data.load())
        }
        #expect(sharded.config?.architecture == "GPT2LMHeadModel")
        #expect(sharded.ties["lm_head.weight"] == "transformer.wte.weight")
    }

    @Test func shardedWriteThenReadReproducesTheCheckpoint() throws {
        let source = try Checkpoint.open(Repo.fixture("tiny-gpt2")).graph
        let dir = TempDir()
        let out = dir.file("model")
        try ShardedSafetensors.write(source, toDirectory: out, maxShardSize: 30_000)
        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(files.contains(ShardedSafetensors.indexName) && files.contains("config.json"))
        let shards = files.filter { $0.hasSuffix(".safetensors") }
        #expect(shards.count >= 4)
        #expect(shards.allSatisfy { $0.hasPrefix("model-") && $0.hasSuffix("-of-0000\(shards.count).safetensors") })
        // Every shard respects the limit unless it holds a single oversized tensor.
        for s in shards {
            let g = try Safetensors.read(path: out + "/" + s)
            #expect(g.byteCount <= 30_000 || g.tensors.count == 1)
        }
        let back = try Checkpoint.open(out).graph
        #expect(back.tensors.keys.elements == source.tensors.keys.elements)
        for (name, t) in source.tensors {
            #expect(try back.tensors[name]?.data.load() == t.data.load())
            #expect(back.tensors[name]?.shape == t.shape && back.tensors[name]?.dtype == t.dtype)
        }
        #expect(try readFile(out + "/config.json") == readFile(Repo.fixture("tiny-gpt2/config.json")))
        #expect(back.metadata == source.metadata)
        // No staging directory left beside the output.
        #expect(dir.contents() == ["model"])
    }

    @Test func thePythonLibraryReadsCkptShardsAndIndex() throws {
        let source = try Checkpoint.open(Repo.fixture("tiny-gpt2")).graph
        let dir = TempDir()
        let out = dir.file("model")
        try ShardedSafetensors.write(source, toDirectory: out, maxShardSize: 40_000)
        let script = """
            import json, sys, os
            from safetensors import safe_open
            d = sys.argv[1]
            index = json.load(open(os.path.join(d, "model.safetensors.index.json")))
            total = 0
            for name, shard in index["weight_map"].items():
                with safe_open(os.path.join(d, shard), framework="numpy") as f:
                    total += f.get_tensor(name).nbytes
            assert total == index["metadata"]["total_size"], (total, index["metadata"])
            print(len(index["weight_map"]))
            """
        let r = try Python.run(script, [out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "\(source.tensors.count)")
    }

    func copyFixture(to dir: TempDir) throws -> String {
        let d = dir.file("sharded")
        try FileManager.default.copyItem(atPath: Repo.fixture("tiny-gpt2-sharded"), toPath: d)
        return d
    }

    func expectError(_ path: String, _ check: (SafetensorsError) -> Bool) {
        #expect {
            try Checkpoint.open(path)
        } throws: { error in
            guard let f = error as? FileError, let e = f.error as? SafetensorsError else { return false }
            return check(e)
        }
    }

    @Test func aMissingShardIsAClearError() throws {
        let dir = TempDir()
        let d = try copyFixture(to: dir)
        try FileManager.default.removeItem(atPath: d + "/model-00002-of-00004.safetensors")
        expectError(d) { $0 == .missingShard(file: "model-00002-of-00004.safetensors") }
    }

    @Test func aStaleIndexIsAClearError() throws {
        let dir = TempDir()
        let d = try copyFixture(to: dir)
        let indexPath = d + "/" + ShardedSafetensors.indexName
        let original = try JSONValue.parse(readFile(indexPath))
        func writeIndex(_ mutate: (inout OrderedDictionary<String, JSONValue>) -> Void) throws {
            var map = original["weight_map"]!.objectValue!
            mutate(&map)
            var top = original.objectValue!
            top["weight_map"] = .object(map)
            try writeFile(indexPath, Array(JSONValue.object(top).serialized().utf8))
        }
        // A tensor the index places in the wrong shard.
        let moved = try #require(original["weight_map"]?.objectValue?.first { $0.value.stringValue == "model-00004-of-00004.safetensors" }?.key)
        try writeIndex { $0[moved] = .string("model-00001-of-00004.safetensors") }
        expectError(d) { $0 == .tensorNotInShard(tensor: moved, shard: "model-00001-of-00004.safetensors") }
        // A tensor in a shard that the index does not list.
        try writeIndex { $0.removeValue(forKey: "transformer.ln_f.bias") }
        expectError(d) { if case .tensorNotInIndex("transformer.ln_f.bias", _) = $0 { return true } else { return false } }
        // A tensor the index lists that no shard holds.
        try writeIndex { $0["transformer.extra"] = .string("model-00001-of-00004.safetensors") }
        expectError(d) { $0 == .tensorNotInShard(tensor: "transformer.extra", shard: "model-00001-of-00004.safetensors") }
        // A shard name that tries to leave the directory.
        try writeIndex { $0["transformer.ln_f.bias"] = .string("../x.safetensors") }
        expectError(d) { if case .invalidIndex = $0 { return true } else { return false } }
    }

    @Test func aDirectoryWithSeveralFilesAndNoIndexIsRefused() throws {
        let dir = TempDir()
        try FileManager.default.copyItem(atPath: Repo.fixture("tiny-gpt2/model.safetensors"), toPath: dir.file("a.safetensors"))
        try FileManager.default.copyItem(atPath: Repo.fixture("tiny-gpt2/model.safetensors"), toPath: dir.file("b.safetensors"))
        #expect(throws: FileError.self) { try Checkpoint.open(dir.path) }
    }

    @Test func shardSizesParseLikeHuggingFace() throws {
        #expect(try Checkpoint.parseSize("5GB") == 5_000_000_000)
        #expect(try Checkpoint.parseSize("2GiB") == 2 << 30)
        #expect(try Checkpoint.parseSize("500MB") == 500_000_000)
        #expect(try Checkpoint.parseSize("40kb") == 40_000)
        #expect(try Checkpoint.parseSize("123") == 123)
        for bad in ["", "-1GB", "GB", "1.5XB", "0"] {
            #expect(throws: CheckpointError.self) { try Checkpoint.parseSize(bad) }
        }
    }

    @Test func splitsLikeHuggingFaceHub() throws {
        func t(_ name: String, _ n: Int) throws -> Tensor {
            try Tensor(name: name, dtype: .u8, shape: [n], data: .owned([UInt8](repeating: 0, count: n)))
        }
        let tensors = try [t("a", 4), t("b", 4), t("big", 20), t("c", 3), t("d", 6)]
        let shards = ShardedSafetensors.split(tensors, maxShardSize: 10)
        // huggingface_hub: an oversized tensor is its own shard, appended when met.
        #expect(shards.map { $0.map(\.name) } == [["big"], ["a", "b"], ["c", "d"]] || shards.map { $0.map(\.name) } == [["a", "b"], ["big"], ["c", "d"]])
    }
}

@Suite struct DetectionTests {
    @Test func detectsFormatsByMagicBytes() throws {
        let dir = TempDir()
        let cases: [(String, [UInt8], CheckpointFormat)] = [
            ("a.h5", [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0], .hdf5),
            ("a.gguf", Array("GGUF".utf8) + [3, 0, 0, 0], .gguf),
            ("a.npz", [0x50, 0x4B, 0x03, 0x04, 0, 0], .npz),
            ("pytorch_model.bin", [0x50, 0x4B, 0x03, 0x04, 0, 0], .pytorch),
            ("x.weights", safetensorsBytes(header: "{}"), .safetensors),
            // A header of 0x0C80 bytes: the first byte, 0x80, is also a pickle's PROTO opcode.
            ("y.weights", safetensorsBytes(header: "{}" + String(repeating: " ", count: 0x0C80 - 2)), .safetensors),
            ("legacy.pt", [0x80, 0x02, 0x7D, 0x71, 0x00, 0x2E], .pytorch),
        ]
        for (name, bytes, format) in cases {
            try writeFile(dir.file(name), bytes)
            #expect(try Checkpoint.detectFormat(path: dir.file(name)) == format, "\(name)")
        }
        try writeFile(dir.file("junk.bin2"), Array("hello world, not a model".utf8))
        #expect(throws: FileError.self) { try Checkpoint.detectFormat(path: dir.file("junk.bin2")) }
    }
}

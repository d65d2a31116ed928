// HDF5 writing: every dtype of the safetensors fixture through .h5 and back bit-exactly, the
// file read by h5py (the reference library) and accepted by h5dump, names that are not plain
// paths, compression, and clean failures.

import CkptCore
import Foundation
@testable import Formats
import Testing
import TestSupport

@Suite struct HDF5WriterTests {
    static let everyDType = Repo.fixture("safetensors/every_dtype.safetensors")

    @Test(arguments: [nil, 1, 9] as [Int?])
    func everyDTypeRoundTripsByteIdentically(gzipLevel: Int?) throws {
        let dir = TempDir()
        let source = try Safetensors.read(path: Self.everyDType)
        try HDF5.write(source, to: dir.file("m.h5"), options: .init(gzipLevel: gzipLevel))
        let back = try HDF5.read(path: dir.file("m.h5"))
        // HDF5 is a tree: tensors come back depth-first, each group's members in creation order.
        #expect(Set(back.tensors.keys) == Set(source.tensors.keys))
        for t in source.tensors.values {
            let u = try #require(back.tensors[t.name])
            #expect(u.dtype == t.dtype && u.shape == t.shape, "\(t.name)")
            #expect(try u.data.load() == t.data.load(), "\(t.name)")
        }
        #expect(back.metadata == source.metadata)
        try Safetensors.write(back, to: dir.file("back.safetensors"))
        #expect(try readFile(dir.file("back.safetensors")) == readFile(Self.everyDType))
        #expect(dir.contents() == ["back.safetensors", "m.h5"])  // no temporary file left
    }

    @Test func h5pyReadsTheSameValuesAndH5dumpAcceptsTheFile() throws {
        let dir = TempDir()
        try HDF5.write(try Safetensors.read(path: Self.everyDType), to: dir.file("m.h5"), options: .init(gzipLevel: 4))
        // h5py, the reference reader: every tensor's bytes against the safetensors fixture's
        // expected values (committed hex). Native types compare as h5py returns them; bf16 is a
        // custom 16-bit float that h5py widens to float32 exactly; the opaque 8/6/4-bit floats
        // come back as raw bytes.
        let script = #"""
        import hashlib, json, sys, h5py, numpy as np
        path, expected_path = sys.argv[1], sys.argv[2]
        expected = json.load(open(expected_path))["tensors"]
        bad = []
        with h5py.File(path, "r") as f:
            def find(name):
                for key, ds in walk(f):
                    if ds.attrs.get("ckpt:name", key.strip("/").replace("/", ".")) == name: return ds
            def walk(g, prefix=""):
                for k, v in g.items():
                    if isinstance(v, h5py.Dataset): yield prefix + "/" + k, v
                    else: yield from walk(v, prefix + "/" + k)
            for name, e in expected.items():
                ds = find(name)
                if ds is None: bad.append(name + ": missing"); continue
                dtype = e["dtype"]
                if dtype == "BF16":
                    assert ds.attrs["ckpt:dtype"] == "bf16"
                    wide = ds.astype("<f4")[()]
                    raw = np.asarray(wide).view("<u4") >> 16
                    got = raw.astype("<u2").tobytes()
                    # NaN payloads: HDF5's float conversion keeps NaN-ness, not every payload bit.
                    want = bytes.fromhex(e["hex"])
                    g16 = np.frombuffer(got, "<u2"); w16 = np.frombuffer(want, "<u2")
                    nan = (w16 & 0x7F80) == 0x7F80
                    nan &= (w16 & 0x7F) != 0
                    ok = np.array_equal(g16[~nan], w16[~nan]) and bool(np.all((g16[nan] & 0x7F80) == 0x7F80))
                    if not ok: bad.append(name)
                    # The exact bits, NaN payloads included: read with the file's own type.
                    exact = np.empty(ds.shape, "<u2")
                    ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, exact, mtype=ds.id.get_type())
                    if exact.tobytes() != want: bad.append(name + " (raw bits)")
                    continue
                data = ds[()]
                got = np.ascontiguousarray(data).tobytes()
                if hashlib.sha256(got).hexdigest() != e["sha256"]: bad.append(f"{name}: {got.hex()[:64]} != {e['hex']}")
                native = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "U64": "<u8", "I32": "<i4",
                          "U32": "<u4", "I16": "<i2", "U16": "<u2", "I8": "|i1", "U8": "|u1", "BOOL": "|b1", "C64": "<c8"}
                if dtype in native and ds.dtype.str != native[dtype]: bad.append(f"{name}: h5py dtype {ds.dtype.str}")
                if dtype in native and list(ds.shape) != e["shape"]: bad.append(f"{name}: shape {ds.shape}")
            if f.attrs["format"] != "pt": bad.append("metadata")
        print(json.dumps(bad))
        """#
        let r = try Python.run(script, [dir.file("m.h5"), Repo.fixture("safetensors/every_dtype.expected.json")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")

        let dump = try runProcess("/usr/bin/env", ["h5dump", "-H", dir.file("m.h5")])
        #expect(dump.status == 0, "\(dump.stderr)")
        #expect(dump.stdout.contains("DATASET \"special\""))
        let full = try runProcess("/usr/bin/env", ["h5dump", dir.file("m.h5")])
        #expect(full.status == 0 && full.stderr.isEmpty, "\(full.stderr)")
    }

    @Test func float16IsTheTypeH5pyWrites() throws {
        let dir = TempDir()
        var graph = WeightGraph()
        try graph.add(Tensor(name: "h", dtype: .f16, shape: [2], data: .owned([0x00, 0x3C, 0x01, 0x80])))
        try graph.add(Tensor(name: "b", dtype: .bf16, shape: [2], data: .owned([0x80, 0x3F, 0x00, 0xC0])))
        try HDF5.write(graph, to: dir.file("h.h5"))
        let script = #"""
        import sys, h5py, numpy as np
        with h5py.File(sys.argv[1], "w") as f: f["ref"] = np.zeros(1, np.float16)
        with h5py.File(sys.argv[1], "r") as ref, h5py.File(sys.argv[2], "r") as ours:
            a, b = ref["ref"].id.get_type(), ours["h"].id.get_type()
            same = a.get_fields() == b.get_fields() and a.get_ebias() == b.get_ebias() and a.get_size() == b.get_size() and a.get_order() == b.get_order()
            print(same, ours["h"].dtype, ours["b"].dtype, list(ours["b"][...]))
        """#
        let r = try Python.run(script, [dir.file("ref.h5"), dir.file("h.h5")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "True float16 float32 [np.float32(1.0), np.float32(-2.0)]")
    }

    @Test func namesThatAreNotPlainPathsRoundTrip() throws {
        let dir = TempDir()
        var graph = WeightGraph()
        let names = ["a.b.c", "a.b", "x..y", ".lead", "trail.", "s/l.a/sh", "s∕l.a∕sh", "ünï.cödé"]
        for (i, name) in names.enumerated() {
            try graph.add(Tensor(name: name, dtype: .u8, shape: [1], data: .owned([UInt8(i)])))
        }
        try graph.tie("alias.of.a", to: "a.b")
        try HDF5.write(graph, to: dir.file("n.h5"))
        let back = try HDF5.read(path: dir.file("n.h5"))
        #expect(Array(back.tensors.keys) == names)
        for (i, name) in names.enumerated() { #expect(try back.tensors[name]?.data.load() == [UInt8(i)], "\(name)") }
        #expect(back.ties == ["alias.of.a": "a.b"])
        // Both orders of a dataset/group clash give the same names back.
        var reversed = WeightGraph()
        try reversed.add(Tensor(name: "p.q", dtype: .u8, shape: [1], data: .owned([1])))
        try reversed.add(Tensor(name: "p.q.r", dtype: .u8, shape: [1], data: .owned([2])))
        try HDF5.write(reversed, to: dir.file("r.h5"))
        #expect(Array(try HDF5.read(path: dir.file("r.h5")).tensors.keys) == ["p.q", "p.q.r"])
    }

    @Test func theModelConfigTravelsInAnAttribute() throws {
        let dir = TempDir()
        var graph = try Safetensors.read(path: Repo.fixture("tiny-gpt2/model.safetensors"))
        graph.config = try Checkpoint.readConfig(Repo.fixture("tiny-gpt2/config.json"))
        graph.applyConfigTies()
        try HDF5.write(graph, to: dir.file("g.h5"))
        let back = try HDF5.read(path: dir.file("g.h5"))
        // Module by module, as a state dict lists them: the order survives exactly.
        #expect(Array(back.tensors.keys) == Array(graph.tensors.keys))
        #expect(back.config?.serialized() == graph.config?.serialized())
        #expect(back.ties == ["lm_head.weight": "transformer.wte.weight"])
        #expect(back.metadata == graph.metadata)
    }

    @Test func refusedInputsLeaveNoFile() throws {
        let dir = TempDir()
        var graph = WeightGraph()
        try graph.add(Tensor(name: "bad\u{0}name", dtype: .u8, shape: [1], data: .owned([1])))
        #expect(throws: HDF5Error.self) { try HDF5.write(graph, to: dir.file("x.h5")) }
        var reserved = WeightGraph()
        reserved.metadata["ckpt:config"] = "{}"
        #expect(throws: HDF5Error.reservedMetadataKey("ckpt:config")) { try HDF5.write(reserved, to: dir.file("x.h5")) }
        // A source that fails mid-write: the temporary file is removed.
        var failing = WeightGraph()
        try failing.add(Tensor(name: "ok", dtype: .f32, shape: [2], data: .owned([UInt8](repeating: 0, count: 8))))
        try failing.add(Tensor(name: "broken", dtype: .f32, shape: [4], data: .external(FailingBytes(count: 16))))
        #expect(throws: FailingBytes.Failure.self) { try HDF5.write(failing, to: dir.file("x.h5")) }
        #expect(dir.contents().isEmpty, "left behind: \(dir.contents())")
    }

    @Test func boolValuesOtherThanZeroOrOneAreAnError() throws {
        let dir = TempDir()
        var graph = WeightGraph()
        try graph.add(Tensor(name: "m", dtype: .bool, shape: [3], data: .owned([1, 0, 2])))
        try HDF5.write(graph, to: dir.file("b.h5"))
        let back = try HDF5.read(path: dir.file("b.h5"))
        #expect {
            _ = try back.tensors["m"]!.data.load()
        } throws: { error in
            // Errors found while reading data name the file too.
            guard let e = error as? FileError, e.path == dir.file("b.h5") else { return false }
            return e.error as? HDF5Error == .invalidBool(tensor: "m", index: 2, value: 2)
        }
    }

    @Test func slabbedWritesEqualOneWrite() throws {
        let dir = TempDir()
        let source = try Safetensors.read(path: Repo.fixture("tiny-gpt2/model.safetensors"))
        try HDF5.$slabBytes.withValue(100) {
            try HDF5.write(source, to: dir.file("s.h5"), options: .init(gzipLevel: 1))
        }
        let back = try HDF5.read(path: dir.file("s.h5"))
        for t in source.tensors.values { #expect(try back.tensors[t.name]!.data.load() == t.data.load()) }
    }

    /// The parallel chunk path (gather, shuffle, libdeflate, H5Dwrite_chunk) with edge chunks
    /// in every dimension, read by h5py and h5dump; the same values for 1 and 3 threads.
    @Test func parallelCompressedChunksAreReadByH5pyAndH5dump() throws {
        let dir = TempDir()
        var rng = SplitMix64(seed: 5)
        var graph = WeightGraph()
        func add(_ name: String, _ dtype: DType, _ shape: [Int]) throws {
            let count = dtype.byteCount(shape: shape)!
            try graph.add(Tensor(name: name, dtype: dtype, shape: shape,
                                 data: .owned((0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next() % 7) })))
        }
        try add("a", .f32, [3, 5, 100])   // chunk [1, 2, 100]: edge chunks along dim 1
        try add("b", .f32, [2, 700])      // chunk [1, 256]: partial rows, edge along dim 1
        try add("c", .f16, [1000])        // chunk [512]
        try add("d", .i8, [3, 5, 7])      // one byte per element: no shuffle
        try add("e", .f64, [1])
        try Safetensors.write(graph, to: dir.file("src.safetensors"))
        for jobs in [1, 3] {
            try HDF5.$chunkBytes.withValue(1024) {
                try HDF5.write(graph, to: dir.file("m\(jobs).h5"), options: .init(gzipLevel: 6, jobs: jobs))
            }
        }
        let script = #"""
        import json, sys, h5py, numpy as np
        from safetensors.numpy import load_file
        src = load_file(sys.argv[1])
        bad = []
        for path in sys.argv[2:]:
            with h5py.File(path, "r") as f:
                for name, want in src.items():
                    ds = f[name]
                    if ds.compression != "gzip" or not ds.shuffle and want.dtype.itemsize > 1: bad.append(f"{path} {name}: filters")
                    if ds[()].tobytes() != want.tobytes() or ds.shape != want.shape: bad.append(f"{path} {name}: values")
                    # A partial read goes through libhdf5's chunk cache and filters too.
                    if ds[tuple(slice(1, None) for _ in ds.shape)].tobytes() != want[tuple(slice(1, None) for _ in want.shape)].tobytes():
                        bad.append(f"{path} {name}: slice")
        print(json.dumps(bad))
        """#
        let r = try Python.run(script, [dir.file("src.safetensors"), dir.file("m1.h5"), dir.file("m3.h5")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
        let full = try runProcess("/usr/bin/env", ["h5dump", dir.file("m3.h5")])
        #expect(full.status == 0 && full.stderr.isEmpty, "\(full.stderr)")
        let back = try HDF5.read(path: dir.file("m3.h5"))
        for t in graph.tensors.values { #expect(try back.tensors[t.name]!.data.load() == t.data.load()) }
    }

    @Test func chunksAreAboutOneMebibyteOfWholeRows() {
        #expect(HDF5.chunkShape([50257, 768], elementSize: 4) == [341, 768])
        #expect(HDF5.chunkShape([10], elementSize: 4) == [10])
        #expect(HDF5.chunkShape([4, 1 << 20], elementSize: 4) == [1, 262_144])
        #expect(HDF5.chunkShape([0, 5], elementSize: 2) == [1, 5])
    }

    @Test func compressionOptionsParse() throws {
        #expect(try HDF5WriteOptions.parse(compression: "gzip") == .init(gzipLevel: 4))
        #expect(try HDF5WriteOptions.parse(compression: "gzip=9") == .init(gzipLevel: 9))
        #expect(throws: HDF5Error.invalidCompression("gzip=10")) { try HDF5WriteOptions.parse(compression: "gzip=10") }
        #expect(throws: HDF5Error.invalidCompression("zstd")) { try HDF5WriteOptions.parse(compression: "zstd") }
    }
}

/// External bytes whose read fails, to exercise error paths mid-write.
final class FailingBytes: ExternalBytes, @unchecked Sendable {
    struct Failure: Error {}
    let count: Int
    init(count: Int) { self.count = count }
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R { throw Failure() }
    func releaseResidentPages() {}
    var origin: String { "failing" }
}

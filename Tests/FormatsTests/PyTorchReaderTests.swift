// The PyTorch reader: files written by torch.save convert to exactly the bytes
// safetensors.torch.save_file writes from the same tensors, and malformed or malicious
// files (built byte by byte here) are refused with the right error.

import CkptCore
import Foundation
@testable import Formats
import Testing
import TestSupport

/// Writes bytes to a temporary file and reads it as a PyTorch checkpoint.
func readTorch(_ bytes: [UInt8]) throws -> WeightGraph {
    let dir = TempDir()
    let path = dir.file("t.pt")
    try writeFile(path, bytes)
    return try PyTorch.read(path: path)
}

/// The error a PyTorch read throws, as a PyTorchError.
func torchError(_ bytes: [UInt8]) -> PyTorchError? {
    do {
        _ = try readTorch(bytes)
        return nil
    } catch let e as PyTorchError {
        return e
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// A valid one-tensor archive: `w` = f32 [2, 3] from storage "0" of 6 elements.
func oneTensorArchive(zip64: Bool = false, archive: String = "archive") -> [UInt8] {
    ZipBytes.torch(pickle: PickleBytes.stateDict([("w", "FloatStorage", "0", 6, 0, [2, 3], [3, 1])]),
                   storages: [("0", f32Bytes([1, 2, 3, 4, 5, 6]))], archive: archive, zip64: zip64)
}

@Suite struct PyTorchFixtureTests {
    /// (torch file or model directory, expected safetensors file written by save_file).
    static let cases: [(String, String)] = [
        ("torch/dtypes.pt", "torch/dtypes.expected.safetensors"),
        ("torch/dtypes_proto4.pt", "torch/dtypes.expected.safetensors"),
        ("torch/views.pt", "torch/views.expected.safetensors"),
        ("torch/views_legacy.pt", "torch/views.expected.safetensors"),
        ("torch/parameters.pt", "torch/parameters.expected.safetensors"),
        ("torch/tiny-gpt2-bin/pytorch_model.bin", "torch/tiny-gpt2.expected.safetensors"),
        ("torch/tiny-gpt2-bin", "torch/tiny-gpt2.expected.safetensors"),
        ("torch/tiny-gpt2-bin-sharded", "torch/tiny-gpt2.expected.safetensors"),
    ]

    @Test(arguments: cases)
    func convertsToExactlyWhatSaveFileWrites(input: String, expected: String) throws {
        let (graph, format) = try Checkpoint.open(Repo.fixture(input))
        #expect(format == .pytorch)
        let dir = TempDir()
        try Safetensors.write(graph, to: dir.file("out.safetensors"))
        let out = try readFile(dir.file("out.safetensors"))
        let want = try readFile(Repo.fixture(expected))
        #expect(out == want, "\(input): \(out.count) bytes vs \(want.count) expected")
    }

    @Test func gpt2HeadIsTiedToTheEmbedding() throws {
        for input in ["torch/tiny-gpt2-bin/pytorch_model.bin", "torch/tiny-gpt2-bin-sharded"] {
            let graph = try Checkpoint.open(Repo.fixture(input), configPath: nil).graph
            #expect(graph.ties["lm_head.weight"] == "transformer.wte.weight", "\(input)")
            #expect(graph.tensors["lm_head.weight"] == nil)
            #expect(graph.tensors.count == 28)
        }
    }

    @Test func viewsAreZeroCopyWhenContiguousAndGatheredOtherwise() throws {
        let graph = try PyTorch.read(path: Repo.fixture("torch/views.pt"))
        guard case .external(let rows) = graph.tensors["rows"]!.data,
              case .external(let transposed) = graph.tensors["transposed"]!.data else {
            Issue.record("views should be external bytes")
            return
        }
        #expect(rows is MappedSlice)
        #expect(transposed is StridedBytes)
        // base is arange(60) as [6, 10]; its transpose's first row is 0, 10, 20, ..., 50.
        let t = try graph.tensors["transposed"]!.data.load()
        #expect(Array(t.prefix(24)) == f32Bytes([0, 10, 20, 30, 40, 50]))
        #expect(try graph.tensors["rows"]!.data.load() == f32Bytes((20..<40).map(Float.init)))
    }

    @Test func anyArchiveFolderNameAndZip64RecordsAreRead() throws {
        for bytes in [oneTensorArchive(), oneTensorArchive(zip64: true, archive: "my model")] {
            let g = try readTorch(bytes)
            #expect(g.tensors["w"]?.shape == [2, 3])
            #expect(try g.tensors["w"]!.data.load() == f32Bytes([1, 2, 3, 4, 5, 6]))
        }
    }

    @Test func theZip64BuilderWritesArchivesPythonReads() throws {
        // Control for the test above: the hand-made zip64 archive is a valid zip.
        let dir = TempDir()
        try writeFile(dir.file("a.zip"), oneTensorArchive(zip64: true, archive: "m"))
        let r = try Python.run("import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.testzip(), len(z.read('m/data/0')))", [dir.file("a.zip")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "None 24\n")
    }
}

@Suite struct PyTorchMalformedTests {
    static func archive(_ pickle: [UInt8], storages: [(String, [UInt8])] = [("0", f32Bytes([1, 2, 3, 4, 5, 6]))]) -> [UInt8] {
        ZipBytes.torch(pickle: pickle, storages: storages.map { (key: $0.0, bytes: $0.1) })
    }

    static func pickle(_ build: (inout PickleBytes) -> Void) -> [UInt8] {
        var p = PickleBytes()
        build(&p)
        return p.bytes
    }

    /// A state_dict holding one tensor with the given view of a 6-element FloatStorage.
    static func view(numel: Int = 6, offset: Int = 0, size: [Int], stride: [Int], type: String = "FloatStorage") -> [UInt8] {
        archive(PickleBytes.stateDict([("w", type, "0", numel, offset, size, stride)]))
    }

    static let payload = pickle { p in
        p.global("os", "system"); p.mark(); p.string("touch /tmp/ckpt-should-not-exist"); p.tuple(); p.reduce(); p.stop()
    }

    static let rows: [(String, [UInt8], PyTorchError)] = [
        ("os.system via REDUCE", archive(payload), .forbiddenGlobal("os.system")),
        ("builtins.eval", archive(pickle { p in
            p.global("builtins", "eval"); p.mark(); p.string("1+1"); p.tuple(); p.reduce(); p.stop()
        }), .forbiddenGlobal("builtins.eval")),
        ("STACK_GLOBAL to any module", archive(pickle { p in
            p.string("subprocess"); p.string("Popen"); p.raw(0x93); p.stop()
        }), .forbiddenGlobal("subprocess.Popen")),
        ("a torch global not on the list", archive(pickle { p in
            p.global("torch", "load"); p.stop()
        }), .forbiddenGlobal("torch.load")),
        ("INST", archive(pickle { p in
            p.mark(); p.raw(0x69); p.bytes += Array("os\nsystem\n".utf8); p.stop()
        }), .forbiddenOpcode(name: "INST", offset: 3)),
        ("OBJ", archive(pickle { p in
            p.mark(); p.global("collections", "OrderedDict"); p.raw(0x6F); p.stop()
        }), .forbiddenOpcode(name: "OBJ", offset: 28)),
        ("NEWOBJ", archive(pickle { p in
            p.global("collections", "OrderedDict"); p.emptyTuple(); p.raw(0x81); p.stop()
        }), .forbiddenOpcode(name: "NEWOBJ", offset: 28)),
        ("EXT1", archive(pickle { p in p.raw(0x82, 1); p.stop() }), .forbiddenOpcode(name: "EXT1", offset: 2)),
        ("calling a storage class", archive(pickle { p in
            p.global("torch", "FloatStorage"); p.emptyTuple(); p.reduce(); p.stop()
        }), .notCallable("torch.FloatStorage")),
        ("protocol 0", archive(Array("(dp0\n.".utf8)), .unsupportedProtocol(0)),
        ("protocol 6", archive([0x80, 6, 0x7D, 0x2E]), .unsupportedProtocol(6)),
        ("truncated pickle", archive(Array(PickleBytes.stateDict([("w", "FloatStorage", "0", 6, 0, [2, 3], [3, 1])]).dropLast(20))),
         .truncatedPickle(offset: 158, opcode: "GLOBAL")),
        ("BINGET of a missing memo entry", archive(pickle { p in p.raw(0x68, 9); p.stop() }),
         .malformedPickle("BINGET of memo entry 9 at byte 2, which was never stored")),
        ("too many nested marks", archive(pickle { p in for _ in 0..<1001 { p.mark() } }),
         .limitExceeded("more than 1000 nested marks")),
        ("not a dict", archive(pickle { p in p.raw(0x5D); p.stop() }), .notAStateDict("the pickled object is a list")),
        ("a non-tensor value", archive(pickle { p in
            p.emptyDict(); p.string("lr"); p.int(3); p.raw(0x73); p.stop()
        }), .notAStateDict("`lr` holds an int, not a tensor")),
        ("duplicate names", archive(PickleBytes.stateDict([("w", "FloatStorage", "0", 6, 0, [6], [1]), ("w", "FloatStorage", "0", 6, 0, [6], [1])])),
         .duplicateTensor("w")),
        ("storage larger than its member", view(numel: 1_000_000, size: [6], stride: [1]),
         .badStorage(key: "0", reason: "FloatStorage of 1000000 elements needs 4000000 bytes, zip member archive/data/0 has 24")),
        ("storage size overflows", view(numel: Int(Int64.max / 2), size: [6], stride: [1]),
         .badStorage(key: "0", reason: "size 4611686018427387903 × element size overflows")),
        ("view past the end of its storage", view(size: [2, 4], stride: [4, 1]),
         .badTensor(tensor: "w", reason: "view (offset 0, size [2, 4], stride [4, 1]) runs past the end of storage `0` (FloatStorage of 6, 24 bytes)")),
        ("offset past the end", view(offset: 7, size: [0], stride: [1]),
         .badTensor(tensor: "w", reason: "storage offset 7 lies past the end of storage `0` (FloatStorage of 6, 24 bytes)")),
        ("strided view past the end", view(offset: 1, size: [3, 2], stride: [2, 1]),
         .badTensor(tensor: "w", reason: "view (offset 1, size [3, 2], stride [2, 1]) runs past the end of storage `0` (FloatStorage of 6, 24 bytes)")),
        ("view arithmetic overflows", view(size: [2, 2], stride: [Int(Int64.max), 1]),
         .badTensor(tensor: "w", reason: "view of size [2, 2], stride [9223372036854775807, 1] overflows")),
        ("negative stride", view(size: [2], stride: [-1]), .badTensor(tensor: "w", reason: "negative stride [-1]")),
        ("one storage under two types", archive(PickleBytes.stateDict([("a", "FloatStorage", "0", 6, 0, [6], [1]), ("b", "IntStorage", "0", 6, 0, [6], [1])])),
         .badStorage(key: "0", reason: "referenced as both FloatStorage(6) and IntStorage(6)")),
        ("missing storage member", archive(PickleBytes.stateDict([("w", "FloatStorage", "7", 6, 0, [6], [1])])),
         .missingMember("archive/data/7")),
        ("big-endian", ZipBytes.torch(pickle: PickleBytes.stateDict([]), storages: [], byteorder: "big"), .bigEndian),
    ]

    @Test(arguments: rows.indices)
    func isRefused(_ i: Int) {
        let (name, bytes, expected) = Self.rows[i]
        #expect(torchError(bytes) == expected, "\(name)")
    }

    @Test func truncatedArchivesAreRefused() {
        let good = oneTensorArchive(zip64: true)
        // Cut anywhere: the end records are gone or point outside the file.
        for cut in [4, 10, 22, 60, good.count / 2, good.count - 1] {
            let e = torchError(Array(good.prefix(cut)))
            switch e {
            case .truncatedZip?, .badZip?: break
            default: Issue.record("cut at \(cut): \(String(describing: e))")
            }
        }
    }

    @Test func badCentralDirectoriesAreRefused() throws {
        let good = oneTensorArchive()
        let eocd = good.count - 22
        let cdOffset = Int(good[eocd + 16]) | Int(good[eocd + 17]) << 8
        var badSignature = good
        badSignature[cdOffset] = 0
        #expect(torchError(badSignature) == .badZip("central directory record 0 at byte \(cdOffset) has no valid signature"))

        var tooMany = good
        tooMany[eocd + 8] = 0xFF; tooMany[eocd + 10] = 0xFF
        #expect(torchError(tooMany) == .badZip("central directory claims 255 members but has room for only 5"))

        var pastEnd = good
        pastEnd[eocd + 16] &+= 40  // directory offset moved: it now runs past the end record
        if case .badZip? = torchError(pastEnd) {} else { Issue.record("directory past its end record accepted") }

        var localOffset = good
        localOffset[cdOffset + 42] = 0xF0  // first member's local header offset: garbage
        if case .badMember? = torchError(localOffset) {} else { Issue.record("bad local header offset accepted") }
    }

    @Test func compressedAndCorruptedMembersAreRefused() {
        let deflated = ZipBytes.build([ZipBytes.Member("archive/data.pkl", PickleBytes.stateDict([]), method: 8)])
        #expect(torchError(deflated) == .compressedMember(member: "archive/data.pkl", method: 8))

        var corrupted = oneTensorArchive()
        corrupted[50] ^= 0x01  // a byte of data.pkl, whose data starts at 30 + 16 (header + name)
        #expect(torchError(corrupted) == .badMember(member: "archive/data.pkl", reason: "CRC-32 mismatch (corrupted file?)"))

        let outside = ZipBytes.build([ZipBytes.Member("data.pkl", PickleBytes.stateDict([]))])
        #expect(torchError(outside) == .badMember(member: "data.pkl", reason: "not inside an archive folder (torch.save puts every member in one)"))

        let twice = ZipBytes.build([ZipBytes.Member("a/data.pkl", PickleBytes.stateDict([])), ZipBytes.Member("a/data.pkl", [])])
        #expect(torchError(twice) == .badMember(member: "a/data.pkl", reason: "appears twice in the central directory"))
    }

    @Test func truncatedLegacyStoragesAreRefused() throws {
        let good = try readFile(Repo.fixture("torch/views_legacy.pt"))
        let e = torchError(Array(good.prefix(good.count - 10)))
        guard case .badStorage(_, let reason)? = e, reason.contains("only") else {
            Issue.record("\(String(describing: e))")
            return
        }
    }

    @Test func objectCapIsEnforced() throws {
        // 20 empty tuples against a cap of 10 objects, run straight on the machine.
        var p = PickleBytes()
        p.raw(0x5D)  // EMPTY_LIST
        p.mark()
        for _ in 0..<20 { p.emptyTuple() }
        p.raw(0x65)  // APPENDS
        p.stop()
        var machine = PickleMachine(limits: .init(objects: 10))
        let result = p.bytes.withUnsafeBytes { b -> PyTorchError? in
            var c = ByteCursor(b)
            do { _ = try machine.run(&c); return nil } catch let e as PyTorchError { return e } catch { return nil }
        }
        #expect(result == .limitExceeded("more than 10 objects"))
    }

    @Test func deepNestingCostsNoRecursion() throws {
        // 200,000 nested one-tuples: values live in an arena, so nothing recurses.
        var p = PickleBytes()
        p.emptyTuple()
        for _ in 0..<200_000 { p.raw(0x85) }
        p.stop()
        #expect(torchError(Self.archive(p.bytes)) == .notAStateDict("the pickled object is a tuple"))
    }
}

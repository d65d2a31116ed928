import CkptCore
import Foundation
@testable import Formats
import Testing
import TestSupport

/// A format that is not ckpt's: "TOY1" and the f32 values of one tensor `x`. Added to a
/// registry beside the standard ones, it must be detected, named by its extension, listed in
/// help, read and written, with nothing else changed: the registry is the only list.
struct ToyHandler: FormatHandler {
    struct ToyError: Error, CustomStringConvertible { var description: String }
    var name: String { "toy" }
    var displayName: String { "Toy" }
    var extensions: [String] { ["toy"] }
    var isReadable: Bool { true }
    var isWritable: Bool { true }
    func sniff(_ p: FormatProbe) -> Bool { p.starts(with: Array("TOY1".utf8)) }
    func fallbackSniff(_ p: FormatProbe) -> Bool { p.hasExtension("toy") }
    func canHold(_ dtype: DType) -> Bool { dtype == .f32 }
    func read(path: String, options: ReadOptions) throws -> WeightGraph {
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        guard bytes.starts(with: Array("TOY1".utf8)) else { throw ToyError(description: "no TOY1 magic") }
        guard (bytes.count - 4) % 4 == 0 else { throw ToyError(description: "\(bytes.count - 4) data bytes, not whole f32 values") }
        var g = WeightGraph()
        try g.add(Tensor(name: "x", dtype: .f32, shape: [(bytes.count - 4) / 4], data: .owned(Array(bytes[4...]))))
        return g
    }
    func write(_ graph: WeightGraph, to target: String, directory: Bool, options: Checkpoint.WriteOptions) throws {
        guard let t = graph.tensors["x"] else { throw ToyError(description: "no tensor x") }
        try Data(Array("TOY1".utf8) + t.data.load()).write(to: URL(fileURLWithPath: target))
    }
}

/// Records which handlers detection asked, and answers no.
final class AskedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var asked: [String] = []
    func add(_ s: String) { lock.lock(); asked.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return asked }
}

struct SpyHandler: FormatHandler {
    var inner: any FormatHandler
    var log: AskedLog
    var name: String { inner.name }
    var displayName: String { inner.displayName }
    var extensions: [String] { inner.extensions }
    var isReadable: Bool { inner.isReadable }
    var isWritable: Bool { inner.isWritable }
    func sniff(_ p: FormatProbe) -> Bool { log.add("sniff " + name); return inner.sniff(p) }
    func fallbackSniff(_ p: FormatProbe) -> Bool { log.add("fallback " + name); return inner.fallbackSniff(p) }
}

@Suite struct FormatRegistryTests {
    let toyRegistry = FormatRegistry(FormatRegistry.standard.formats + [CheckpointFormat(ToyHandler())])
    var toy: CheckpointFormat { CheckpointFormat(ToyHandler()) }

    @Test func standardRegistryIsTheListOfFormats() {
        let standard = FormatRegistry.standard
        #expect(CheckpointFormat.allCases == standard.formats)
        #expect(standard.formats.map(\.rawValue) == ["safetensors", "hdf5", "ckz", "gguf", "npz", "npy", "keras", "torchscript", "pytorch"])
        for f in standard.formats {
            #expect(CheckpointFormat(rawValue: f.rawValue) == f)
            #expect(CheckpointFormat(rawValue: f.rawValue.uppercased()) == f)
            // Every extension a format claims leads back to it.
            for ext in f.handler.extensions {
                #expect(CheckpointFormat.forExtension(ext) == f, "\(ext)")
                #expect(CheckpointFormat.forExtension(ext.uppercased()) == f, "\(ext)")
            }
            // Every writable format is listed in help and in the unknown-name error; others are not.
            #expect(standard.writableNames.split(separator: ", ").contains(Substring(f.rawValue)) == f.isWritable, "\(f)")
        }
        #expect(standard.writableNames == "safetensors, hdf5, ckz, gguf, npz, npy")
        #expect(CheckpointFormat(rawValue: "toy") == nil)
        #expect(CheckpointFormat.forExtension("toy") == nil)
        // Switches over formats read as they would over an enum.
        switch CheckpointFormat.ckz { case .ckz: break; default: Issue.record("switch on a format") }
    }

    /// A file of every format, under a name that says nothing: its own structural sniff claims
    /// it, and no format listed before it does.
    @Test func everyFormatIsRecognisedByItsStructureWhateverItsName() throws {
        let dir = TempDir()
        var g = WeightGraph()
        try g.add(Tensor(name: "x", dtype: .f32, shape: [2], data: .owned([0, 0, 0x80, 0x3F, 0, 0, 0, 0x40])))
        try Checkpoint.write(g, to: dir.file("w.ckz"), format: .ckz, directory: false)
        try Checkpoint.write(g, to: dir.file("w.npy"), format: .npy, directory: false)
        let samples: [(String, CheckpointFormat)] = [
            (Repo.fixture("safetensors/every_dtype.safetensors"), .safetensors),
            (Repo.fixture("hdf5/h5py_mixed.h5"), .hdf5),
            (dir.file("w.ckz"), .ckz),
            (Repo.fixture("gguf/gguf_py.gguf"), .gguf),
            (Repo.fixture("npz/stored.npz"), .npz),
            (dir.file("w.npy"), .npy),
            (Repo.fixture("keras/tiny.keras"), .keras),
            (Repo.fixture("torch/scripted.pt"), .torchscript),
            (Repo.fixture("torch/views.pt"), .pytorch),
            (Repo.fixture("torch/views_legacy.pt"), .pytorch),
        ]
        let formats = FormatRegistry.standard.formats
        #expect(Set(samples.map(\.1)) == Set(formats), "a sample for every format")
        for (i, (path, format)) in samples.enumerated() {
            let neutral = dir.file("sample-\(i).dat")
            try FileManager.default.copyItem(atPath: path, toPath: neutral)
            let probe = try FormatProbe(path: neutral)
            #expect(FormatRegistry.standard.detect(probe) == format, "\(path)")
            #expect(format.handler.sniff(probe), "\(path)")
            #expect(!formats.prefix(while: { $0 != format }).contains { $0.handler.sniff(probe) }, "\(path)")
        }
    }

    @Test func detectionAsksEverySniffThenEveryFallbackInOrder() throws {
        let dir = TempDir()
        let log = AskedLog()
        let spied = FormatRegistry(FormatRegistry.standard.formats.map { CheckpointFormat(SpyHandler(inner: $0.handler, log: log)) })
        try writeFile(dir.file("junk.dat"), Array("hello world, not a model".utf8))
        #expect(throws: FileError.self) { try spied.detectFormat(path: dir.file("junk.dat")) }
        let names = FormatRegistry.standard.formats.map(\.rawValue)
        #expect(log.all == names.map { "sniff " + $0 } + names.map { "fallback " + $0 })
    }

    @Test func aNewFormatIsOneListEntry() throws {
        let dir = TempDir()
        // Help and validation.
        #expect(toyRegistry.writableNames == "safetensors, hdf5, ckz, gguf, npz, npy, toy")
        #expect(toyRegistry.writableSummary.contains("toy (.toy)"))
        #expect(toyRegistry.format(named: "TOY") == toy)
        #expect(try toyRegistry.outputFormat(for: dir.file("out.toy"), explicit: nil, maxShardSize: nil) == (toy, false))
        #expect(try toyRegistry.outputFormat(for: dir.file("out.bin2"), explicit: "toy", maxShardSize: nil) == (toy, false))
        do {
            _ = try toyRegistry.outputFormat(for: dir.file("out"), explicit: "nope", maxShardSize: nil)
            Issue.record("unknown --to accepted")
        } catch let e as CheckpointError {
            #expect(e.description == "unknown output format \"nope\" (one of: safetensors, hdf5, ckz, gguf, npz, npy, toy)")
        }
        // Write, detect (by structure, whatever the name), read.
        var g = WeightGraph()
        try g.add(Tensor(name: "x", dtype: .f32, shape: [2], data: .owned([0, 0, 0x80, 0x3F, 0, 0, 0, 0x40])))
        let out = dir.file("model.weights")
        try toyRegistry.write(g, to: out, format: toy, directory: false, options: .init())
        #expect(try toyRegistry.detectFormat(path: out) == toy)
        #expect(throws: FileError.self) { try FormatRegistry.standard.detectFormat(path: out) }
        let back = try toyRegistry.read(out, format: toy)
        #expect(try back.tensors["x"]?.data.load() == [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40])
        // A directory is not something the toy format writes.
        do {
            try toyRegistry.write(g, to: dir.file("d"), format: toy, directory: true, options: .init())
            Issue.record("directory output accepted")
        } catch let e as FileError {
            #expect(e.description == dir.file("d") + ": toy output is a single file: give a file name, without --max-shard-size")
        }
        // A broken file named .toy: the fallback picks the toy reader, whose error gets the path.
        let broken = dir.file("broken.toy")
        try writeFile(broken, Array("TOY?12345".utf8))
        #expect(try toyRegistry.detectFormat(path: broken) == toy)
        do {
            _ = try toyRegistry.read(broken, format: toy)
            Issue.record("broken file read")
        } catch let e as FileError {
            #expect(e.description == broken + ": no TOY1 magic")
        }
    }

    @Test func readersAndWritersErrorsNameTheFileOnce() throws {
        let dir = TempDir()
        let path = dir.file("bad.safetensors")
        try writeFile(path, safetensorsBytes(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}"))
        do {
            _ = try Checkpoint.open(path)
            Issue.record("truncated file opened")
        } catch let e as FileError {
            #expect(e.path == path)
            #expect(!(e.error is FileError))
        }
        // A format ckpt reads but does not write is refused when the output is chosen, before any work.
        for (name, explicit) in [("out.pt", nil), ("out.bin2", "pytorch"), ("out.h5", "KERAS")] as [(String, String?)] {
            do {
                _ = try Checkpoint.outputFormat(for: dir.file(name), explicit: explicit, maxShardSize: nil)
                Issue.record("\(name) accepted as an output")
            } catch let e as FileError {
                #expect(e.path == dir.file(name))
                #expect(ErrorText.line(e.error).hasPrefix("writing ") && ErrorText.line(e.error).hasSuffix(" is not supported yet"))
            }
        }
        // A format that cannot be written says so, with the output's name.
        var g = WeightGraph()
        try g.add(Tensor(name: "x", dtype: .f32, shape: [1], data: .owned([0, 0, 0, 0])))
        do {
            try Checkpoint.write(g, to: dir.file("out.pt"), format: .pytorch, directory: false)
            Issue.record("pytorch output written")
        } catch let e as FileError {
            #expect(e.description == dir.file("out.pt") + ": writing pytorch is not supported yet")
        }
    }
}

// HDF5 reading: files written by h5py and by real Keras 3, compared bit for bit with the
// values h5py reads back (fixtures/hdf5/expected.json, made by tools/make_hdf5_fixtures.py),
// and the files ckpt must refuse.

import CkptCore
import Foundation
@testable import Formats
import Testing
import TestSupport

struct HDF5ExpectedTensor: Decodable {
    var name: String
    var dtype: String
    var shape: [Int]
    var sha256: String
    var hex: String?
}

struct HDF5ExpectedFile: Decodable {
    var tensors: [HDF5ExpectedTensor]
    var ties: [String: String]
    var metadata: [String: String]
}

struct HDF5Expected: Decodable {
    var files: [String: HDF5ExpectedFile]
    static func load() throws -> HDF5Expected {
        try JSONDecoder().decode(HDF5Expected.self, from: Data(contentsOf: URL(fileURLWithPath: Repo.fixture("hdf5/expected.json"))))
    }
}

func hexString(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// Checks a graph against what h5py read from the file: names in order, dtypes, shapes,
/// bytes (digest by coreutils' sha256sum, and hex where committed), ties, metadata.
func expectMatches(_ graph: WeightGraph, _ expected: HDF5ExpectedFile, file: String) throws {
    #expect(Array(graph.tensors.keys) == expected.tensors.map(\.name), "\(file): tensor names or order")
    for e in expected.tensors {
        guard let t = graph.tensors[e.name] else { continue }
        #expect(t.dtype.rawValue == e.dtype, "\(file): \(e.name) dtype")
        #expect(t.shape == e.shape, "\(file): \(e.name) shape")
        let bytes = try t.data.load()
        #expect(try sha256(bytes) == e.sha256, "\(file): \(e.name) bytes")
        if let hex = e.hex { #expect(hexString(bytes) == hex, "\(file): \(e.name) hex") }
    }
    #expect(Dictionary(uniqueKeysWithValues: graph.ties.map { ($0.key, $0.value) }) == expected.ties, "\(file): ties")
    #expect(Dictionary(uniqueKeysWithValues: graph.metadata.map { ($0.key, $0.value) }) == expected.metadata, "\(file): metadata")
}

@Suite struct HDF5ReaderTests {
    @Test(arguments: ["h5py_mixed.h5", "keras3.weights.h5", "keras_legacy_model.h5", "keras_legacy_weights.h5"])
    func readsWhatPythonWroteBitForBit(file: String) throws {
        let expected = try #require(try HDF5Expected.load().files[file])
        let graph = try HDF5.read(path: Repo.fixture("hdf5/" + file))
        try expectMatches(graph, expected, file: file)
    }

    @Test func kerasNamesFollowTheLayers() throws {
        let k3 = try HDF5.read(path: Repo.fixture("hdf5/keras3.weights.h5"))
        // `layers/dense_1/vars/0` is the layer the user named "head"; nested layers join.
        #expect(k3.tensors["head.0"]?.shape == [6, 3])
        #expect(k3.tensors["block.inner_dense.0"]?.shape == [8, 6])
        #expect(k3.tensors["bn.3"]?.shape == [6])
        let legacy = try HDF5.read(path: Repo.fixture("hdf5/keras_legacy_model.h5"))
        #expect(Array(legacy.tensors.keys.prefix(2)) == ["embed.embeddings", "proj.kernel"])
        #expect(legacy.metadata["keras_version"] != nil && legacy.metadata["model_config"]?.hasPrefix("{") == true)
    }

    @Test func bigEndianAndGzipDataIsSwappedAndInflated() throws {
        let graph = try HDF5.read(path: Repo.fixture("hdf5/h5py_mixed.h5"))
        // The same values stored little- and big-endian read as the same bytes.
        for name in ["f16", "f64"] {
            #expect(try graph.tensors["bigendian.\(name)"]!.data.load() == graph.tensors["special.\(name)"]!.data.load())
        }
        #expect(try graph.tensors["bigendian.f32"]!.data.load() == graph.tensors["special.f32"]!.data.load())
        // Contiguous little-endian data is memory-mapped, filtered data is read on demand.
        #expect(graph.tensors["special.f32"]!.data.isMapped)
        #expect(!graph.tensors["encoder.layer0.mlp.weight"]!.data.isMapped)
        #expect(!graph.tensors["bigendian.f32"]!.data.isMapped)
    }

    @Test func slabbedReadsEqualOneRead() throws {
        let path = Repo.fixture("hdf5/h5py_mixed.h5")
        let whole = try HDF5.read(path: path)
        try HDF5.$slabBytes.withValue(40) {
            let slabbed = try HDF5.read(path: path)
            for (name, t) in whole.tensors {
                #expect(try slabbed.tensors[name]!.data.load() == t.data.load(), "\(name)")
            }
        }
    }

    @Test func concurrentReadsGoThroughTheLock() throws {
        let graph = try HDF5.read(path: Repo.fixture("hdf5/h5py_mixed.h5"))
        let tensors = Array(graph.tensors.values)
        let reference = try tensors.map { try $0.data.load() }
        let results = LockedResults()
        DispatchQueue.concurrentPerform(iterations: tensors.count * 8) { i in
            let bytes = try? tensors[i % tensors.count].data.load()
            results.set(i, bytes)
        }
        for i in 0..<tensors.count * 8 { #expect(results.get(i) == reference[i % tensors.count]) }
    }

    @Test(arguments: [
        ("external_link.h5", "external link"),
        ("external_storage.h5", "external storage"),
        ("virtual.h5", "virtual dataset"),
        ("lzf.h5", "filter 32000 (lzf) is not in ckpt's allow-list"),
        ("string.h5", "dataset `/notes`: datatype string"),
    ])
    func refusesWhatItMustNotOpen(file: String, message: String) throws {
        #expect {
            _ = try HDF5.read(path: Repo.fixture("hdf5/refused/" + file))
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func externalLinkTargetIsNeverOpened() throws {
        // Even with the target present beside it, the file is refused, not followed.
        #expect(FileManager.default.fileExists(atPath: Repo.fixture("hdf5/refused/target.h5")))
        #expect(throws: HDF5Error.externalLink(link: "/elsewhere")) {
            _ = try HDF5.read(path: Repo.fixture("hdf5/refused/external_link.h5"))
        }
    }

    @Test func malformedFilesGiveOneCleanError() throws {
        let dir = TempDir()
        let good = try readFile(Repo.fixture("hdf5/h5py_mixed.h5"))
        let cases: [(String, [UInt8])] = [
            ("truncated", Array(good.prefix(good.count / 2))),
            ("signature only", Array(good.prefix(8))),
            ("garbage after signature", Array(good.prefix(8)) + (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }),
            ("empty superblock area", Array(good.prefix(8)) + [UInt8](repeating: 0, count: 4096)),
        ]
        for (label, bytes) in cases {
            let path = dir.file(label.replacingOccurrences(of: " ", with: "_") + ".h5")
            try writeFile(path, bytes)
            #expect("\(label)", performing: { _ = try HDF5.read(path: path) }, throws: { error in
                guard let e = error as? HDF5Error, case .library = e else { return false }
                return !"\(e)".contains("\n")
            })
        }
    }

    @Test func implausibleSizesAreCheckedBeforeReading() {
        // A dataset may not claim more than its stored bytes can inflate to.
        #expect(HDF5Error.implausibleSize(dataset: "/w", declared: 1 << 40, stored: 10).description
            .contains("declares 1099511627776 bytes but stores only 10"))
    }

    @Test func naturalOrderSortsDigitNamesAsNumbers() {
        let names = ["10", "2", "b", "1a", "1", "a", "11", "9"].sorted(by: HDF5Naming.naturalOrder)
        #expect(names == ["1", "2", "9", "10", "11", "1a", "a", "b"])
    }
}

/// Results collected from concurrentPerform under a lock.
final class LockedResults: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: [UInt8]] = [:]
    func set(_ i: Int, _ v: [UInt8]?) { lock.withLock { values[i] = v } }
    func get(_ i: Int) -> [UInt8]? { lock.withLock { values[i] } }
}

extension TensorData {
    var isMapped: Bool {
        if case .external(let e) = self { return e is MappedSlice }
        return false
    }
}

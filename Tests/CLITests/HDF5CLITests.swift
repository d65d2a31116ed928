// End-to-end HDF5 runs of the built `ckpt` binary: conversions both ways, inspect, and
// malformed files (truncated, bit-flipped, garbage after the signature, one that crashes
// libhdf5 itself), each giving exit status 2 and one line.

import CkptCore
import Formats
import Foundation
import Testing
import TestSupport

@Suite struct HDF5CommandTests {
    @Test(arguments: [[], ["--compression", "gzip"], ["--compression", "gzip=9"]])
    func safetensorsToHDF5AndBackIsByteIdentical(options: [String]) throws {
        let dir = TempDir()
        let src = Repo.fixture("safetensors/every_dtype.safetensors")
        var r = try CkptBinary.run(["convert", src, dir.file("m.h5")] + options)
        #expect(r.status == 0, "\(r.stderr)")
        r = try CkptBinary.run("convert", dir.file("m.h5"), dir.file("back.safetensors"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try readFile(dir.file("back.safetensors")) == readFile(src))
        #expect(dir.contents() == ["back.safetensors", "m.h5"])
    }

    @Test func modelDirectoryWithConfigAndTiesThroughHDF5() throws {
        let dir = TempDir()
        var r = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("g.hdf5"))
        #expect(r.status == 0, "\(r.stderr)")
        r = try CkptBinary.run("inspect", dir.file("g.hdf5"), "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let v = try JSONValue.parse(r.stdout)
        #expect(v["format"]?.stringValue == "hdf5")
        #expect(v["config"]?["model_type"]?.stringValue == "gpt2")  // carried in `ckpt:config`
        #expect(v["ties"]?["lm_head.weight"]?.stringValue == "transformer.wte.weight")
        #expect(v["parameters"]?.intValue == 30_592)
        r = try CkptBinary.run("convert", dir.file("g.hdf5"), dir.file("out/"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try readFile(dir.file("out/model.safetensors")) == readFile(Repo.fixture("tiny-gpt2/model.safetensors")))
        #expect(try readFile(dir.file("out/config.json")) == readFile(Repo.fixture("tiny-gpt2/config.json")))
    }

    @Test func kerasWeightsInspectAndConvert() throws {
        let dir = TempDir()
        let r = try CkptBinary.run("inspect", Repo.fixture("hdf5/keras3.weights.h5"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("hdf5, 13 tensors") && r.stdout.contains("block.inner_dense.0"))
        let c = try CkptBinary.run("convert", Repo.fixture("hdf5/keras_legacy_model.h5"), dir.file("k.safetensors"), "--dtype", "bf16")
        #expect(c.status == 0, "\(c.stderr)")
        let back = try CkptBinary.run("inspect", dir.file("k.safetensors"), "--json")
        let names = try JSONValue.parse(back.stdout)["tensors"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(names.contains("head.kernel") && names.contains("bn.moving_variance"))
    }

    @Test func compressionOnlyForHDF5() throws {
        let dir = TempDir()
        let bad = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("x.safetensors"), "--compression", "gzip")
        #expect(bad.status == 2 && bad.stderr.contains("--compression applies to HDF5 output only"), "\(bad.stderr)")
        let level = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("x.h5"), "--compression", "gzip=11")
        #expect(level.status == 2 && level.stderr.contains("invalid compression"), "\(level.stderr)")
        #expect(dir.contents().isEmpty)
    }
}

/// Malformed HDF5 input: exit status 2, one line naming the file, nothing left behind,
/// never a crash of the CLI.
@Suite struct HDF5MalformedInputTests {
    func expectCleanFailure(_ input: String, mentions: [String], in dir: TempDir) throws {
        for args in [["inspect", input], ["convert", input, dir.file("out.safetensors")]] {
            let r = try CkptBinary.run(args)
            #expect(r.status == 2, "\(args): status \(r.status), stderr \(r.stderr)")
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(lines.count == 1, "\(r.stderr)")
            #expect(r.stderr.hasPrefix("ckpt: error: \(input): "), "\(r.stderr)")
            for m in mentions { #expect(r.stderr.contains(m), "\(r.stderr) should mention \(m)") }
            #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("crashed:"))
            #expect(!dir.contents().contains { $0.contains("out") }, "left behind: \(dir.contents())")
        }
    }

    func good() throws -> [UInt8] { try readFile(Repo.fixture("hdf5/h5py_mixed.h5")) }

    @Test func truncated() throws {
        let dir = TempDir()
        let bytes = try good()
        try writeFile(dir.file("cut.h5"), Array(bytes.prefix(bytes.count - 1000)))
        try expectCleanFailure(dir.file("cut.h5"), mentions: ["truncated file"], in: dir)
    }

    @Test func garbageAfterSignature() throws {
        let dir = TempDir()
        var rng = SystemRandomNumberGenerator()
        let garbage = (0..<8192).map { _ in UInt8.random(in: 0...255, using: &rng) }
        try writeFile(dir.file("garbage.h5"), Array(try good().prefix(8)) + garbage)
        try expectCleanFailure(dir.file("garbage.h5"), mentions: ["libhdf5"], in: dir)
    }

    @Test func bitFlippedMetadata() throws {
        let dir = TempDir()
        // Flip one bit in each 64-byte block of the first 2 KiB (superblock, root group,
        // object headers), leaving the signature alone.
        var bytes = try good()
        for i in stride(from: 40, to: 2048, by: 64) { bytes[i] ^= 0x10 }
        try writeFile(dir.file("flipped.h5"), bytes)
        try expectCleanFailure(dir.file("flipped.h5"), mentions: [], in: dir)
    }

    @Test func aFileThatCrashesLibhdf5IsReportedNotFatal() throws {
        // This file (random bit flips of a ckpt-written file) makes libhdf5 1.10.8 dereference
        // a bad pointer while walking it: the sandboxed probe dies, the CLI reports it.
        let dir = TempDir()
        try FileManager.default.copyItem(atPath: Repo.fixture("hdf5/malformed/crash-1.10.8.h5"), toPath: dir.file("crash.h5"))
        try expectCleanFailure(dir.file("crash.h5"), mentions: ["libhdf5 crashed (signal 11)", "sandboxed child process"], in: dir)
        // The probe really is what stands between the file and the CLI: run alone, it dies.
        let probe = try CkptBinary.run("__hdf5-probe", dir.file("crash.h5"))
        #expect(probe.status != 0 && probe.status != 2)
    }

    @Test func corruptCompressedDataIsAnErrorWhileConverting() throws {
        // The structure is intact, a gzip chunk is not: the error comes while reading data.
        let dir = TempDir()
        var bytes = try good()
        let probe = try Python.run(#"""
        import sys, h5py
        with h5py.File(sys.argv[1], "r") as f:
            ds = f["bigendian/gzip"]
            info = ds.id.get_chunk_info(0)
            print(info.byte_offset + info.size // 2)
        """#, [Repo.fixture("hdf5/h5py_mixed.h5")])
        let offset = try #require(Int(probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(probe.stderr)")
        bytes[offset] ^= 0xFF
        try writeFile(dir.file("bad-chunk.h5"), bytes)
        let r = try CkptBinary.run("convert", dir.file("bad-chunk.h5"), dir.file("out.safetensors"))
        #expect(r.status == 2)
        #expect(r.stderr == "ckpt: error: \(dir.file("bad-chunk.h5")): tensor `bigendian.gzip` (dataset `/bigendian/gzip`): libhdf5: can't read data: inflate() failed\n")
        #expect(dir.contents() == ["bad-chunk.h5"])
    }

    @Test func refusedFeaturesNameTheDataset() throws {
        let dir = TempDir()
        try expectCleanFailure(Repo.fixture("hdf5/refused/external_link.h5"), mentions: ["`/elsewhere`", "external link"], in: dir)
        try expectCleanFailure(Repo.fixture("hdf5/refused/lzf.h5"), mentions: ["dataset `/w`", "lzf"], in: dir)
    }
}

@Suite struct HDF5UserBlockTests {
    @Test func aFileWithAUserBlockIsRecognised() throws {
        // h5py writes a 512-byte user block on request (MATLAB v7.3 files have one too).
        let dir = TempDir()
        let script = #"""
        import sys, h5py, numpy as np
        with h5py.File(sys.argv[1], "w", userblock_size=512) as f:
            f["w"] = np.arange(6, dtype="<f4").reshape(2, 3)
        with open(sys.argv[1], "r+b") as f: f.write(b"MATLAB 7.3 MAT-file, a user block")
        """#
        let py = try Python.run(script, [dir.file("u.mat")])
        #expect(py.status == 0, "\(py.stderr)")
        let r = try CkptBinary.run("inspect", dir.file("u.mat"), "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let v = try JSONValue.parse(r.stdout)
        #expect(v["format"]?.stringValue == "hdf5")
        #expect(v["tensors"]?.arrayValue?.first?["shape"] == .array([.int(2), .int(3)]))
        // Data offsets count from the start of the file, user block included.
        let c = try CkptBinary.run("convert", dir.file("u.mat"), dir.file("u.safetensors"))
        #expect(c.status == 0, "\(c.stderr)")
        let w = try #require(try Safetensors.read(path: dir.file("u.safetensors")).tensors["w"])
        let expected: [Float] = [0, 1, 2, 3, 4, 5]
        #expect(try w.data.load() == expected.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
    }
}

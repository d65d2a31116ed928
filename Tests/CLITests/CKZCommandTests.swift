// End-to-end runs of `ckpt convert` / `ckpt inspect` with .ckz.

import CkptCore
import Foundation
import Testing
import TestSupport

@Suite struct CKZCommandTests {
    @Test func modelDirectoryToCKZAndBackIsByteIdentical() throws {
        let dir = TempDir()
        var r = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("m.ckz"))
        #expect(r.status == 0, "\(r.stderr)")
        r = try CkptBinary.run("convert", dir.file("m.ckz"), dir.file("back") + "/")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try readFile(dir.file("back/model.safetensors")) == readFile(Repo.fixture("tiny-gpt2/model.safetensors")))
        // The config travels inside the .ckz: out to a model directory, it is written verbatim.
        r = try CkptBinary.run("convert", dir.file("m.ckz"), dir.file("model") + "/")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try readFile(dir.file("model/config.json")) == readFile(Repo.fixture("tiny-gpt2/config.json")))
        let every = Repo.fixture("safetensors/every_dtype.safetensors")
        #expect(try CkptBinary.run("convert", every, dir.file("e.ckz"), "--level", "9").status == 0)
        #expect(try CkptBinary.run("convert", dir.file("e.ckz"), dir.file("e.safetensors")).status == 0)
        #expect(try readFile(dir.file("e.safetensors")) == readFile(every))
    }

    @Test func jobsDoNotChangeTheOutput() throws {
        let dir = TempDir()
        for jobs in ["1", "2"] {
            let r = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("j\(jobs).ckz"), "--jobs", jobs, "--dtype", "bf16")
            #expect(r.status == 0, "\(r.stderr)")
        }
        #expect(try readFile(dir.file("j1.ckz")) == readFile(dir.file("j2.ckz")))
    }

    @Test func inspectShowsStoredSizesProvenanceAndChecks() throws {
        let dir = TempDir()
        #expect(try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("m.ckz")).status == 0)
        let r = try CkptBinary.run("inspect", dir.file("m.ckz"), "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let v = try JSONValue.parse(r.stdout)
        #expect(v["format"]?.stringValue == "ckz")
        #expect(v["total_bytes"]?.intValue == 122_368)  // documented fields unchanged
        #expect(v["ties"]?["lm_head.weight"]?.stringValue == "transformer.wte.weight")
        let wte = try #require(v["tensors"]?.arrayValue?.first { $0["name"]?.stringValue == "transformer.wte.weight" })
        let stored = try #require(wte["stored_bytes"]?.intValue)
        #expect(stored > 0 && stored < 12288)
        #expect((v["file_bytes"]?.intValue ?? 0) == (try readFile(dir.file("m.ckz")).count))
        let source = v["provenance"]?["sources"]?.arrayValue?.first
        #expect(source?["file"]?.stringValue == "model.safetensors")
        #expect(source?["sha256"]?.stringValue == (try sha256(readFile(Repo.fixture("tiny-gpt2/model.safetensors")))))
        #expect(v["provenance"]?["recipe"]?.stringValue == "convert --level 2")
        let human = try CkptBinary.run("inspect", dir.file("m.ckz"), "--check")
        #expect(human.status == 0)
        #expect(human.stdout.contains("stored in") && human.stdout.contains("every chunk's CRC32 verified"))
    }

    @Test func levelZeroStoresTensorsVerbatim() throws {
        let dir = TempDir()
        #expect(try CkptBinary.run("convert", Repo.fixture("tiny-gpt2/model.safetensors"), dir.file("s.ckz"), "--level", "0").status == 0)
        let v = try JSONValue.parse(try CkptBinary.run("inspect", dir.file("s.ckz"), "--json").stdout)
        for t in v["tensors"]?.arrayValue ?? [] { #expect(t["stored_bytes"] == t["bytes"]) }
    }
}

/// Bad .ckz input: exit 2, one line naming the file (and tensor and chunk), no output left.
@Suite struct CKZErrorReportingTests {
    func expectCleanFailure(_ args: [String], mentions: [String], in dir: TempDir, sourceFiles: Set<String>) throws {
        let r = try CkptBinary.run(args)
        #expect(r.status == 2, "\(args): status \(r.status), stderr \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        for m in mentions { #expect(r.stderr.contains(m), "\(r.stderr) should mention \(m)") }
        #expect(Set(dir.contents()) == sourceFiles, "left behind: \(dir.contents())")
    }

    @Test func aFlippedBitInAChunkFailsTheConversion() throws {
        let dir = TempDir()
        #expect(try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("m.ckz")).status == 0)
        var bytes = try readFile(dir.file("m.ckz"))
        // The first tensor in file order starts at byte 64 (docs/ckz.md); flip a bit in it.
        let first = try #require(try JSONValue.parse(try CkptBinary.run("inspect", dir.file("m.ckz"), "--json").stdout)["tensors"]?.arrayValue?.first?["name"]?.stringValue)
        bytes[64 + 3] ^= 0x04
        try writeFile(dir.file("m.ckz"), bytes)
        try expectCleanFailure(["convert", dir.file("m.ckz"), dir.file("out.safetensors")],
                               mentions: [dir.file("m.ckz"), "tensor `\(first)`", "chunk 0", "checksum mismatch"],
                               in: dir, sourceFiles: ["m.ckz"])
        try expectCleanFailure(["inspect", dir.file("m.ckz"), "--check"], mentions: ["chunk 0"], in: dir, sourceFiles: ["m.ckz"])
    }

    @Test func aFlippedBitInTheIndexIsDetectedAtOpen() throws {
        let dir = TempDir()
        #expect(try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("m.ckz")).status == 0)
        var bytes = try readFile(dir.file("m.ckz"))
        bytes[bytes.count - 100] ^= 0x01
        try writeFile(dir.file("m.ckz"), bytes)
        try expectCleanFailure(["convert", dir.file("m.ckz"), dir.file("out.ckz")],
                               mentions: [dir.file("m.ckz"), "index checksum mismatch"], in: dir, sourceFiles: ["m.ckz"])
    }

    @Test func aTruncatedFileIsReportedAsTruncated() throws {
        let dir = TempDir()
        #expect(try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), dir.file("m.ckz")).status == 0)
        let bytes = try readFile(dir.file("m.ckz"))
        try writeFile(dir.file("m.ckz"), Array(bytes.prefix(bytes.count / 2)))
        try expectCleanFailure(["inspect", dir.file("m.ckz")], mentions: [dir.file("m.ckz"), "truncated"], in: dir, sourceFiles: ["m.ckz"])
    }

    @Test func badOptions() throws {
        let dir = TempDir()
        try expectCleanFailure(["convert", Repo.fixture("tiny-gpt2"), dir.file("m.ckz"), "--level", "12"], mentions: ["--level"], in: dir, sourceFiles: [])
        try expectCleanFailure(["convert", Repo.fixture("tiny-gpt2"), dir.file("m.safetensors"), "--level", "3"], mentions: [".ckz output only"], in: dir, sourceFiles: [])
        try expectCleanFailure(["convert", Repo.fixture("tiny-gpt2"), dir.file("m.ckz"), "--jobs", "0"], mentions: ["--jobs"], in: dir, sourceFiles: [])
    }
}

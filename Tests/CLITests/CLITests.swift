// End-to-end runs of the built `ckpt` binary.

import CkptCore
import Foundation
import Testing
import TestSupport

@Suite struct InspectCommandTests {
    @Test func jsonReportFollowsTheDocumentedSchema() throws {
        let r = try CkptBinary.run("inspect", Repo.fixture("tiny-gpt2"), "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let v = try JSONValue.parse(r.stdout)
        #expect(v["format"]?.stringValue == "safetensors")
        let tensors = try #require(v["tensors"]?.arrayValue)
        #expect(tensors.count == 28)
        let wte = try #require(tensors.first { $0["name"]?.stringValue == "transformer.wte.weight" })
        #expect(wte["dtype"]?.stringValue == "f32")
        #expect(wte["shape"] == .array([.int(96), .int(32)]))
        #expect(wte["bytes"]?.intValue == 96 * 32 * 4)
        #expect(v["metadata"]?["format"]?.stringValue == "pt")
        #expect(v["config"]?["model_type"]?.stringValue == "gpt2")
        #expect(v["ties"]?["lm_head.weight"]?.stringValue == "transformer.wte.weight")
        #expect(v["parameters"]?.intValue == 30_592)
        #expect(v["total_bytes"]?.intValue == 122_368)
    }

    @Test func humanReportNamesFormatTensorsAndConfig() throws {
        let r = try CkptBinary.run("inspect", Repo.fixture("safetensors/every_dtype.safetensors"))
        #expect(r.status == 0)
        #expect(r.stdout.contains("safetensors, 26 tensors"))
        #expect(r.stdout.contains("f8_e4m3fnuz"))
        #expect(r.stdout.contains("metadata: format = pt"))
    }

    @Test func anExplicitConfigIsUsed() throws {
        let dir = TempDir()
        try writeFile(dir.file("c.json"), Array(#"{"model_type": "gpt2", "n_layer": 7}"#.utf8))
        let r = try CkptBinary.run("inspect", Repo.fixture("tiny-gpt2/model.safetensors"), "--config", dir.file("c.json"), "--json")
        #expect(try JSONValue.parse(r.stdout)["config"]?["n_layer"]?.intValue == 7)
    }
}

@Suite struct ConvertCommandTests {
    @Test func safetensorsRoundTripIsByteIdentical() throws {
        let dir = TempDir()
        let src = Repo.fixture("safetensors/every_dtype.safetensors")
        let r = try CkptBinary.run("convert", src, dir.file("out.safetensors"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty)  // not a terminal: no progress bar
        #expect(try readFile(dir.file("out.safetensors")) == readFile(src))
    }

    @Test func castsMatchTorchBitForBit() throws {
        let dir = TempDir()
        for dtype in ["f16", "bf16"] {
            let out = dir.file("\(dtype).safetensors")
            let r = try CkptBinary.run("convert", Repo.fixture("safetensors/casts_f32.safetensors"), out, "--dtype", dtype)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try readFile(out) == readFile(Repo.fixture("safetensors/casts_\(dtype).safetensors")), "\(dtype)")
        }
    }

    @Test func modelDirectoryToShardsAndBack() throws {
        let dir = TempDir()
        let sharded = dir.file("sharded")
        var r = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), sharded, "--max-shard-size", "40KB")
        #expect(r.status == 0, "\(r.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: sharded).sorted()
        #expect(files.contains("model.safetensors.index.json") && files.contains("config.json"))
        r = try CkptBinary.run("convert", sharded, dir.file("single") + "/")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try readFile(dir.file("single/model.safetensors")) == readFile(Repo.fixture("tiny-gpt2/model.safetensors")))
        // Reconverting into the same directory with one shard replaces the old shards.
        r = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), sharded + "/")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sharded).sorted() == ["config.json", "model.safetensors"])
    }
}

/// Bad input: one line on stderr naming the file (and the tensor), exit status 2, no output.
@Suite struct ErrorReportingTests {
    func expectCleanFailure(_ args: [String], mentions: [String], in dir: TempDir, sourceFiles: Set<String> = []) throws {
        let r = try CkptBinary.run(args)
        #expect(r.status == 2, "\(args): status \(r.status), stderr \(r.stderr)")
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "\(r.stderr)")
        for m in mentions { #expect(r.stderr.contains(m), "\(r.stderr) should mention \(m)") }
        #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"))
        #expect(Set(dir.contents()) == sourceFiles, "left behind: \(dir.contents())")
    }

    @Test func truncatedFile() throws {
        let dir = TempDir()
        let full = try readFile(Repo.fixture("tiny-gpt2/model.safetensors"))
        try writeFile(dir.file("cut.safetensors"), Array(full.prefix(full.count - 100)))
        try expectCleanFailure(["convert", dir.file("cut.safetensors"), dir.file("out.safetensors")],
                               mentions: [dir.file("cut.safetensors"), "truncated", "`transformer.wte.weight`"],
                               in: dir, sourceFiles: ["cut.safetensors"])
    }

    @Test func duplicateTensorNames() throws {
        let dir = TempDir()
        let f32 = #"{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#
        try writeFile(dir.file("dup.safetensors"), safetensorsBytes(header: "{\"w\":\(f32),\"w\":\(f32)}", data: [0, 0, 0, 0]))
        try expectCleanFailure(["inspect", dir.file("dup.safetensors")], mentions: ["dup.safetensors", "`w`", "twice"],
                               in: dir, sourceFiles: ["dup.safetensors"])
    }

    @Test func emptyFile() throws {
        let dir = TempDir()
        try writeFile(dir.file("empty.safetensors"), [])
        try expectCleanFailure(["convert", dir.file("empty.safetensors"), dir.file("o.safetensors")],
                               mentions: ["empty.safetensors", "empty file"], in: dir, sourceFiles: ["empty.safetensors"])
    }

    @Test func hostileHeaderLength() throws {
        let dir = TempDir()
        try writeFile(dir.file("huge.safetensors"), safetensorsBytes(header: "{}", lengthOverride: 1 << 40))
        try expectCleanFailure(["inspect", dir.file("huge.safetensors")], mentions: ["huge.safetensors", "cap"],
                               in: dir, sourceFiles: ["huge.safetensors"])
    }

    @Test func missingInputAndUnknownFormat() throws {
        let dir = TempDir()
        try expectCleanFailure(["inspect", dir.file("nope.safetensors")], mentions: ["nope.safetensors"], in: dir)
        try writeFile(dir.file("notes.txt"), Array("just some text".utf8))
        try expectCleanFailure(["convert", dir.file("notes.txt"), dir.file("o.safetensors")],
                               mentions: ["notes.txt", "not a checkpoint format"], in: dir, sourceFiles: ["notes.txt"])
    }

    @Test func outputFormatsThatDoNotExistYetAreRefusedCleanly() throws {
        let dir = TempDir()
        try expectCleanFailure(["convert", Repo.fixture("tiny-gpt2"), dir.file("m.pt")], mentions: ["pytorch", "not supported yet"], in: dir)
        try expectCleanFailure(["convert", Repo.fixture("tiny-gpt2"), dir.file("m.weird")], mentions: ["--to"], in: dir)
    }

    @Test func missingShard() throws {
        let dir = TempDir()
        let d = dir.file("sharded")
        try FileManager.default.copyItem(atPath: Repo.fixture("tiny-gpt2-sharded"), toPath: d)
        try FileManager.default.removeItem(atPath: d + "/model-00003-of-00004.safetensors")
        try expectCleanFailure(["convert", d, dir.file("o.safetensors")],
                               mentions: ["model.safetensors.index.json", "model-00003-of-00004.safetensors", "missing"],
                               in: dir, sourceFiles: ["sharded"])
    }

    @Test func usageErrorsExitWithTwo() throws {
        let r = try CkptBinary.run("convert", "only-one-argument")
        #expect(r.status == 2)
        let bad = try CkptBinary.run("convert", Repo.fixture("tiny-gpt2"), "/tmp/x.safetensors", "--dtype", "int3")
        #expect(bad.status == 2 && bad.stderr.contains("--dtype"))
        let help = try CkptBinary.run("--help")
        #expect(help.status == 0 && help.stdout.contains("convert"))
    }
}

@Suite struct ForwardCommandTests {
    @Test func writesLogitsNumPyReadsAndMatchesPyTorch() throws {
        let dir = TempDir()
        let out = dir.file("logits.npy")
        let r = try CkptBinary.run("forward", Repo.fixture("models/gpt2-oddhead"), "--tokens", "3,1,4,1,5,9,2,6", "--output", out)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("GPT2LMHeadModel: logits [8, 101]"))
        // numpy reads the file ckpt wrote (values are checked by the reference-output tests).
        let py = try Python.run("import numpy as np, sys; a = np.load(sys.argv[1]); print(a.dtype, a.shape, int(np.isfinite(a).all()))", [out])
        #expect(py.status == 0, "\(py.stderr)")
        #expect(py.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "float32 (8, 101) 1")
    }

    @Test func seedEncoderTakesVectorsFromNumPy() throws {
        let dir = TempDir()
        let py = try Python.run("""
            import numpy as np, sys
            np.save(sys.argv[1], np.random.default_rng(0).standard_normal((5, 32)).astype(np.float32))
            """, [dir.file("x.npy")])
        #expect(py.status == 0, "\(py.stderr)")
        let r = try CkptBinary.run("forward", Repo.fixture("models/seed-encoder"), "--input", dir.file("x.npy"), "--output", dir.file("y.npy"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("SeedTransformer: hidden_state [5, 32]"))
    }

    @Test func badForwardInputsExitWithTwo() throws {
        for args in [["forward", Repo.fixture("models/gpt2-a"), "--tokens", "1,x"],
                     ["forward", Repo.fixture("models/gpt2-a"), "--tokens", "1,999"],
                     ["forward", Repo.fixture("models/seed-encoder"), "--tokens", "1,2"],
                     ["forward", Repo.fixture("safetensors/every_dtype.safetensors"), "--tokens", "1"]] {
            let r = try CkptBinary.run(args)
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
    }
}

@Suite struct VerifyDiffRunCommandTests {
    @Test func verifyExitCodesAndJSONReport() throws {
        let dir = TempDir()
        let same = try CkptBinary.run("verify", Repo.fixture("models/gpt2-a"), Repo.fixture("models/gpt2-a"), "--preset", "lossless")
        #expect(same.status == 0 && same.stdout.contains("PASS"), "\(same.stderr)")
        #expect(try CkptBinary.run("convert", Repo.fixture("models/gpt2-a"), dir.file("bf16") + "/", "--dtype", "bf16").status == 0)
        let r = try CkptBinary.run("verify", Repo.fixture("models/gpt2-a"), dir.file("bf16"), "--max-kl", "1e-9", "--json",
                                   "--report", dir.file("report.json"))
        #expect(r.status == 1, "\(r.stderr)")
        let report = try JSONValue.parse(r.stdout)
        #expect(report["passed"]?.boolValue == false)
        #expect((report["overall"]?["kl_mean"]?.doubleValue ?? 0) > 1e-9)
        #expect(report["gates"]?.arrayValue?.first?["name"]?.stringValue == "max_kl")
        #expect(try JSONValue.parse(readFile(dir.file("report.json"))) == report)
        let vocab = try CkptBinary.run("verify", Repo.fixture("models/llama-gqa"), Repo.fixture("models/gpt2-a"))
        #expect(vocab.status == 2 && vocab.stderr.contains("different vocabularies"))
        #expect(vocab.stderr.split(separator: "\n").count == 1)
    }

    @Test func diffExitCodes() throws {
        let same = try CkptBinary.run("diff", Repo.fixture("tiny-gpt2"), Repo.fixture("tiny-gpt2-sharded"))
        #expect(same.status == 0 && same.stdout.contains("28 identical"), "\(same.stdout)")
        let other = try CkptBinary.run("diff", Repo.fixture("models/gpt2-a"), Repo.fixture("models/gpt2-oddhead"), "--json")
        #expect(other.status == 1)
        #expect(try JSONValue.parse(other.stdout)["same"]?.boolValue == false)
    }

    @Test func runReportsAndCaches() throws {
        let dir = TempDir()
        try FileManager.default.copyItem(atPath: Repo.fixture("models/gpt2-a"), toPath: dir.file("model"))
        try writeFile(dir.file("p.yaml"), Array("""
            steps:
              - convert: {input: model, output: out/model.safetensors, dtype: f16}
              - verify: {reference: model, candidate: out/model.safetensors, preset: f16, sequences: 2, length: 16}
            """.utf8))
        let first = try CkptBinary.run("run", dir.file("p.yaml"), "--json")
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try JSONValue.parse(first.stdout)["steps"]?.arrayValue?.map { $0["status"]?.stringValue } == ["ran", "ran"])
        let second = try CkptBinary.run("run", dir.file("p.yaml"), "--json")
        #expect(try JSONValue.parse(second.stdout)["steps"]?.arrayValue?.map { $0["status"]?.stringValue } == ["cached", "cached"])
        try writeFile(dir.file("bad.yaml"), Array("steps:\n  - convert: {input: nowhere, output: x.safetensors}\n".utf8))
        let bad = try CkptBinary.run("run", dir.file("bad.yaml"))
        #expect(bad.status == 2 && bad.stderr.contains("nowhere"), "\(bad.stderr)")
        #expect(bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
    }
}

@Suite struct MainJobTests {
    /// The README's main job: pipeline.yaml on the bundled model, twice.
    @Test func theReadmePipelineRunsAndTheSecondRunDoesNoWork() throws {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.file("fixtures"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Repo.fixture("tiny-gpt2"), toPath: dir.file("fixtures/tiny-gpt2"))
        try FileManager.default.copyItem(atPath: Repo.root.appendingPathComponent("pipeline.yaml").path, toPath: dir.file("pipeline.yaml"))
        let first = try CkptBinary.run("run", dir.file("pipeline.yaml"), "--json")
        #expect(first.status == 0, "\(first.stderr)")
        let r1 = try JSONValue.parse(first.stdout)
        #expect(r1["steps"]?.arrayValue?.map { $0["kind"]?.stringValue } == ["convert", "quantize", "verify"])
        #expect(r1["steps"]?.arrayValue?.map { $0["status"]?.stringValue } == ["ran", "ran", "ran"])
        #expect(FileManager.default.fileExists(atPath: dir.file("build/tiny-gpt2-int8.ckz")))
        let second = try CkptBinary.run("run", dir.file("pipeline.yaml"), "--json")
        let r2 = try JSONValue.parse(second.stdout)
        #expect(r2["steps"]?.arrayValue?.map { $0["status"]?.stringValue } == ["cached", "cached", "cached"])
        #expect(r2["steps"]?.arrayValue?.first?["outputs"] == r1["steps"]?.arrayValue?.first?["outputs"])
    }

    @Test func int8PassesATightKLGateAndInt4FailsAnImpossibleOne() throws {
        let dir = TempDir()
        let model = Repo.fixture("models/gpt2-a")
        #expect(try CkptBinary.run("quantize", model, dir.file("int8.ckz"), "--scheme", "int8").status == 0)
        #expect(try CkptBinary.run("quantize", model, dir.file("int4.ckz"), "--scheme", "int4").status == 0)
        let pass = try CkptBinary.run("verify", model, dir.file("int8.ckz"), "--max-kl", "0.01", "--json")
        #expect(pass.status == 0, "\(pass.stderr)")
        let fail = try CkptBinary.run("verify", model, dir.file("int4.ckz"), "--max-kl", "1e-9", "--json")
        #expect(fail.status == 1, "\(fail.stderr)")
        let report = try JSONValue.parse(fail.stdout)
        let gate = report["gates"]?.arrayValue?.first
        #expect(gate?["name"]?.stringValue == "max_kl" && gate?["passed"]?.boolValue == false)
        #expect((report["overall"]?["kl_mean"]?.doubleValue ?? 0) > 1e-9 && report["overall"]?["kl_max"] != nil)
    }
}

@Suite struct ForwardUnusedWeightsCommandTests {
    /// `forward --config` with fewer layers than the weights: refused with one line naming the
    /// first unused tensor (exit 2), unless --allow-unused.
    @Test func fewerLayersInTheConfigIsRefusedUnlessAllowed() throws {
        let dir = TempDir()
        var config = try JSONValue.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: Repo.fixture("models/llama-gqa/config.json"))), as: UTF8.self)).objectValue!
        config["num_hidden_layers"] = .int(1)
        try Data(JSONValue.object(config).serialized().utf8).write(to: URL(fileURLWithPath: dir.file("config.json")))
        let weights = Repo.fixture("models/llama-gqa/model.safetensors")
        let r = try CkptBinary.run("forward", weights, "--config", dir.file("config.json"), "--tokens", "1,2,3")
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("tensor `model.layers.1.") && r.stderr.contains("--allow-unused"), "\(r.stderr)")
        #expect(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(r.stderr)")
        let ok = try CkptBinary.run("forward", weights, "--config", dir.file("config.json"), "--tokens", "1,2,3", "--allow-unused")
        #expect(ok.status == 0, "\(ok.stderr)")
    }
}

@Suite struct ForwardSentenceEmbeddingCommandTests {
    /// A sentence-transformers directory: forward also reports (and with --embedding writes)
    /// the pooled, normalised sentence embedding.
    @Test func sentenceTransformersDirectoryReportsItsEmbedding() throws {
        let dir = TempDir()
        let r = try CkptBinary.run("forward", Repo.fixture("models/st-bert-mean"), "--tokens", "5,17,3,9", "--embedding", dir.file("e.npy"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("sentence embedding [32] (mean, normalised)"), "\(r.stdout)")
        #expect(FileManager.default.fileExists(atPath: dir.file("e.npy")))
        let plain = try CkptBinary.run("forward", Repo.fixture("models/bert-a"), "--tokens", "5,17,3", "--embedding", dir.file("x.npy"))
        #expect(plain.status == 2 && plain.stderr.contains("sentence-transformers"), "\(plain.stderr)")
    }
}

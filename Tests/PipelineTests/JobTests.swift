// The job types (Pipeline/Jobs): decoding a step's options, the defaults the CLI shares, and
// the behaviour the pipeline used to lack (issue 21's drift list).

import CkptCore
import Foundation
import Formats
import OrderedCollections
import Pipeline
import Testing
import TestSupport

@Suite struct JobTests {
    @Test func leftOutKeysKeepTheCommandsDefaults() throws {
        let d = try DistillJob.decode(["input": .string("t.safetensors"), "output": .string("s.safetensors")])
        // Were 256/32 in the runner and 512/64 in `ckpt distill`: now one definition.
        #expect(d.sequences == 512 && d.evalSequences == 64 && d.steps == 300 && d.batch == 16)
        let q = try QuantizeJob.decode(["input": .string("a"), "output": .string("b.gguf"), "scheme": .string("q8_0")])
        #expect(q.fallback == "f16" && q.calibrationSamples == 128 && q.context == 512 && q.damp == 0.01)
        #expect(q.options() == QuantizeJob(input: "a", output: "b.gguf", scheme: "q8_0").options())
    }

    @Test func oneValueWhereAListIsExpectedIsAOneItemList() throws {
        let q = try QuantizeJob.decode(["input": .string("a"), "output": .string("b.gguf"), "scheme": .string("q4_0"),
                                        "keep": .string("norm"), "tensor_type": .string("output=q8_0")])
        #expect(q.keep == ["norm"] && q.tensorType == ["output=q8_0"])
        #expect(try q.recipe().overrides.map(\.scheme) == ["q8_0"])
    }

    @Test(arguments: [
        (["speed": JSONValue.int(3)], "unknown option `speed`"),
        (["min_cosine": .string("high")], "min_cosine must be a number"),
        (["max_kl": .string("low")], "max_kl must be a number"),
        (["preset": .string("q9")], "preset is unknown"),
        (["sequences": .int(0)], "sequences must be a positive integer"),
        (["context": .int(2)], "context must be an integer, at least 4"),
    ])
    func badValuesNameTheirKey(_ extra: [String: JSONValue], _ message: String) throws {
        var o: OrderedDictionary<String, JSONValue> = ["reference": .string("a"), "candidate": .string("b")]
        for (k, v) in extra { o[k] = v }
        #expect {
            try VerifyJob.decode(o).validate()
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func aNumberWhereTextIsExpectedIsCheckedAsText() throws {
        #expect {
            try PruneJob.decode(["input": .string("a"), "output": .string("b"), "nm": .int(24)]).validate()
        } throws: { error in
            (error as? JobError)?.flagDescription == "--nm must look like 2:4"
        }
    }

    @Test func gatePresetsAndLimitsResolveOnce() throws {
        var v = VerifyJob(reference: "a", candidate: "b")
        v.preset = "int8"
        v.minTop1 = 0.5
        let g = try v.gates.gates()
        #expect(g.maxKL == Gates.preset("int8")?.maxKL && g.minTop1 == 0.5)
        #expect(try PruneJob().gates.gates() == Gates.preset("prune"))
    }

    /// A pipeline's .ckz convert records its provenance as `ckpt convert` does (it did not).
    @Test func pipelineCKZConversionRecordsProvenance() throws {
        let dir = TempDir()
        let path = dir.file("p.yaml")
        try writeFile(path, Array("steps:\n  - convert: {input: \(Repo.fixture("tiny-gpt2")), output: m.ckz, level: 3}\n".utf8))
        let r = try PipelineRunner(path: path).run()
        #expect(r.exitCode == 0)
        let file = try CKZArchive(path: dir.file("m.ckz"))
        #expect(file.provenance?.recipe == "convert --level 3")
        #expect(file.provenance?.sources.map(\.file).contains("model.safetensors") == true)
    }

    @Test func jobsRunFromALibraryWithoutTheCLI() throws {
        let dir = TempDir()
        var job = ConvertJob(input: Repo.fixture("tiny-gpt2"), output: dir.file("m.safetensors"))
        job.dtype = "f16"
        job.exclude = ["ln_f"]
        let r = try job.run(progress: JobProgress())
        #expect(r.summary.excluded == ["transformer.ln_f.weight", "transformer.ln_f.bias"] || r.summary.excluded == ["transformer.ln_f.bias", "transformer.ln_f.weight"])
        #expect(r.json()["excluded"]?.arrayValue?.count == 2)
        let g = try Checkpoint.open(dir.file("m.safetensors")).graph
        #expect(g.tensors.values.allSatisfy { $0.dtype == .f16 } && g.tensors["transformer.ln_f.weight"] == nil)
    }

    /// A tokenize step writes the ids a later step calibrates on; its output is staged and
    /// published like any other.
    @Test func aTokenizeStepFeedsALaterStep() throws {
        let dir = TempDir()
        try writeFile(dir.file("corpus.txt"), Array("Hello world, this is a calibration text.\nAnd a second line of it.\n".utf8))
        let model = Repo.fixture("tokenizers/gpt2-model")
        try writeFile(dir.file("p.yaml"), Array("""
            steps:
              - tokenize: {model: \(model), file: corpus.txt, output: build/ids.txt, no_special: true}
              - prune: {input: \(model), output: build/p.safetensors, drop_layer_count: 1, calibration: build/ids.txt, length: 8}
            """.utf8))
        let r = try PipelineRunner(path: dir.file("p.yaml")).run()
        #expect(r.exitCode == 0 && r.published == ["build/ids.txt", "build/p.safetensors"])
        let ids = try String(contentsOfFile: dir.file("build/ids.txt"), encoding: .utf8)
        var job = TokenizeJob(model: model, text: "Hello world, this is a calibration text.")
        job.noSpecial = true
        let expected = try job.run(progress: JobProgress()).ids
        #expect(ids.split(separator: "\n").first.map { $0.split(separator: " ").compactMap { Int($0) } } == expected?.first)
        #expect(ids.split(separator: "\n").count == 2)
    }
}

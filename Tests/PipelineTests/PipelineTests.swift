import CkptCore
import Foundation
import Formats
import Pipeline
import Quantize
import Testing
import TestSupport
import Transformer

struct ExpectedMetrics: Decodable {
    struct Seq: Decodable {
        var max_abs, mean_abs, cosine, kl_mean, kl_max, top1, perplexity_reference, perplexity_candidate: Double
    }
    var sequences: [Seq]
}

@Suite struct MetricsTests {
    /// ckpt's metrics against numpy/scipy (tools/make_verify_fixtures.py) on committed logits.
    @Test func matchNumPyAndSciPy() throws {
        let g = try Safetensors.read(path: Repo.fixture("verify/logits.safetensors"))
        let expected = try JSONDecoder().decode(ExpectedMetrics.self, from: Data(contentsOf: URL(fileURLWithPath: Repo.fixture("verify/expected.json"))))
        for (s, e) in expected.sequences.enumerated() {
            let a = try #require(g.tensors["reference.\(s)"]), b = try #require(g.tensors["candidate.\(s)"])
            let t = try #require(g.tensors["tokens.\(s)"])
            let tb = try t.data.load()
            let tokens = (0..<t.elementCount).map { i in Int(tb[i * 8]) | Int(tb[i * 8 + 1]) << 8 }
            let m = Metrics.compare(reference: try #require(try Cast.floats(a)), candidate: try #require(try Cast.floats(b)),
                                    rows: a.shape[0], cols: a.shape[1], logits: true, tokens: tokens)
            func close(_ x: Double?, _ y: Double, _ what: String) {
                #expect(abs((x ?? .nan) - y) <= 1e-9 * max(1, abs(y)), "\(what): ckpt \(x ?? .nan), numpy \(y)")
            }
            close(m.maxAbs, e.max_abs, "max_abs")
            close(m.meanAbs, e.mean_abs, "mean_abs")
            close(m.cosine, e.cosine, "cosine")
            close(m.klMean, e.kl_mean, "kl_mean")
            close(m.klMax, e.kl_max, "kl_max")
            close(m.top1, e.top1, "top1")
            close(m.perplexityReference, e.perplexity_reference, "ppl ref")
            close(m.perplexityCandidate, e.perplexity_candidate, "ppl cand")
        }
    }
}

@Suite struct VerifierTests {
    func graph(_ name: String) throws -> WeightGraph { try Checkpoint.open(Repo.fixture("models/\(name)")).graph }

    @Test(arguments: ["gpt2-a", "bert-a", "llama-gqa", "seed-encoder"])
    func aModelAgainstItselfHasZeroDriftAndPasses(_ name: String) throws {
        let g = try graph(name)
        let inputs = try Verifier.randomInputs(for: g, count: 2, length: 9, seed: 3)
        let r = try Verifier.run(reference: g, candidate: g, inputs: inputs, gates: Gates.preset("lossless")!)
        #expect(r.passed)
        #expect(r.overall.maxAbs == 0 && r.overall.cosine == 1)
        if r.outputKind == .logits { #expect(r.overall.klMean == 0 && r.overall.top1 == 1) }
        #expect(r.layerDrift?.allSatisfy { $0 == 0 } == true)
    }

    @Test func aCastCandidateFailsATightKLGate() throws {
        var cand = try graph("llama-gqa")
        try Conversion.cast(&cand, to: .bf16)
        let ref = try graph("llama-gqa")
        let inputs = try Verifier.randomInputs(for: ref, count: 2, length: 16, seed: 1)
        let tight = try Verifier.run(reference: ref, candidate: cand, inputs: inputs, gates: Gates(maxKL: 1e-9))
        #expect(!tight.passed)
        #expect(tight.gates.first?.name == "max_kl" && (tight.gates.first?.value ?? 0) > 1e-9)
        let loose = try Verifier.run(reference: ref, candidate: cand, inputs: inputs, gates: Gates.preset("bf16")!)
        #expect(loose.passed)
    }

    @Test func modelsWithDifferentVocabulariesAreIncomparable() throws {
        let a = try graph("llama-gqa"), b = try graph("qwen2")
        #expect(throws: VerifyError.incomparable("different vocabularies (128 and 80 tokens)")) {
            try Verifier.run(reference: a, candidate: b, inputs: [.tokens([1, 2])], gates: Gates())
        }
    }

    @Test func randomInputsAreSeededAndBounded() throws {
        let g = try graph("gpt2-a")
        let a = try Verifier.randomInputs(for: g, count: 3, length: 500, seed: 7)
        let b = try Verifier.randomInputs(for: g, count: 3, length: 500, seed: 7)
        guard case .tokens(let ta) = a[0], case .tokens(let tb) = b[0] else { Issue.record("not tokens"); return }
        #expect(ta == tb && ta.count == 64 && ta.allSatisfy { $0 >= 0 && $0 < 96 })
    }

    @Test func tokenFilesParseTextLines() throws {
        let dir = TempDir()
        try writeFile(dir.file("t.txt"), Array("# prompts\n1, 2, 3\n\n4 5\t6 # trailing\n".utf8))
        let inputs = try Verifier.tokenFile(dir.file("t.txt"))
        guard inputs.count == 2, case .tokens(let a) = inputs[0], case .tokens(let b) = inputs[1] else { Issue.record("bad parse"); return }
        #expect(a == [1, 2, 3] && b == [4, 5, 6])
        try writeFile(dir.file("bad.txt"), Array("1, two\n".utf8))
        #expect(throws: FileError.self) { try Verifier.tokenFile(dir.file("bad.txt")) }
    }
}

@Suite struct DiffTests {
    @Test func identicalCastAndMissingTensors() throws {
        let a = try Checkpoint.open(Repo.fixture("models/gpt2-a")).graph
        #expect(try CheckpointDiff.diff(a, a).same)
        var b = a
        try Conversion.cast(&b, to: .f16)
        b.remove("transformer.ln_f.bias")
        let r = try CheckpointDiff.diff(a, b)
        #expect(!r.same)
        let wte = try #require(r.tensors.first { $0.name == "transformer.wte.weight" })
        #expect(wte.status == .differs && wte.dtypeB == .f16 && (wte.maxAbs ?? 0) > 0 && (wte.maxAbs ?? 1) < 1e-3)
        #expect(r.tensors.first { $0.name == "transformer.ln_f.bias" }?.status == .onlyInA)
        #expect(r.configChanges == ["dtype: \"float32\" -> \"float16\""])
        // A tolerance above the cast's error makes the values equal.
        var c = a
        try Conversion.cast(&c, to: .f16)
        #expect(try CheckpointDiff.diff(a, c, tolerance: 1e-3).tensors.allSatisfy { $0.status == .equal || $0.status == .identical })
    }
}

@Suite struct PipelineRunnerTests {
    func write(_ dir: TempDir, _ name: String, _ text: String) throws -> String {
        try writeFile(dir.file(name), Array(text.utf8))
        return dir.file(name)
    }

    @Test func runsPublishesAndSkipsUnchangedStepsTheSecondTime() throws {
        let dir = TempDir()
        try FileManager.default.copyItem(atPath: Repo.fixture("models/llama-gqa"), toPath: dir.file("model"))
        let path = try write(dir, "pipeline.yaml", """
            steps:
              - convert:
                  input: model
                  output: build/model-bf16.safetensors
                  dtype: bf16
              - verify:
                  reference: model
                  candidate: build/model-bf16.safetensors
                  preset: bf16
            """)
        let first = try PipelineRunner(path: path).run()
        #expect(first.exitCode == 0)
        #expect(first.steps.map(\.status) == [.ran, .ran])
        #expect(first.published == ["build/model-bf16.safetensors"])
        let produced = try readFile(dir.file("build/model-bf16.safetensors"))
        let mtime = try FileManager.default.attributesOfItem(atPath: dir.file("build/model-bf16.safetensors"))[.modificationDate] as? Date

        let second = try PipelineRunner(path: path).run()
        #expect(second.exitCode == 0)
        #expect(second.steps.map(\.status) == [.cached, .cached])
        #expect(try readFile(dir.file("build/model-bf16.safetensors")) == produced)
        let mtime2 = try FileManager.default.attributesOfItem(atPath: dir.file("build/model-bf16.safetensors"))[.modificationDate] as? Date
        #expect(mtime == mtime2)
        // The report records content digests of inputs and outputs.
        let digest = try #require(second.steps[0].outputs["build/model-bf16.safetensors"])
        #expect(digest == (try sha256(produced)))

        // Changing an option reruns that step.
        let changed = try write(dir, "pipeline.yaml", try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "dtype: bf16", with: "dtype: f16"))
        let third = try PipelineRunner(path: changed).run()
        #expect(third.steps.map(\.status) == [.ran, .ran])
    }

    @Test func pruneStepsRunAndAreVerified() throws {
        let dir = TempDir()
        try FileManager.default.copyItem(atPath: Repo.fixture("models/gpt2-a"), toPath: dir.file("model"))
        let path = try write(dir, "p.yaml", """
            steps:
              - prune: {input: model, output: small/, intermediate: 96, importance: activation, calibration_sequences: 2, length: 16}
              - verify: {reference: model, candidate: small/, preset: prune, sequences: 2, length: 16}
            """)
        let r = try PipelineRunner(path: path).run()
        #expect(r.exitCode == 0)
        #expect(r.steps[0].result?["parameters_after"]?.intValue ?? 0 < r.steps[0].result?["parameters_before"]?.intValue ?? 0)
        #expect(try Checkpoint.open(dir.file("small")).graph.config?["n_inner"]?.intValue == 96)
        #expect(try PipelineRunner(path: path).run().steps.map(\.status) == [.cached, .cached])
    }

    @Test func distillStepsTrainAStudentThatVerifyCompares() throws {
        let dir = TempDir()
        try FileManager.default.copyItem(atPath: Repo.fixture("models/gpt2-teacher4"), toPath: dir.file("teacher"))
        let path = try write(dir, "p.yaml", """
            steps:
              - distill: {input: teacher, output: student.ckz, layers: 2, steps: 20, batch: 4, sequences: 16, eval_sequences: 4, length: 16, lr: 0.003}
              - verify: {reference: teacher, candidate: student.ckz, sequences: 2, length: 16}
            """)
        let r = try PipelineRunner(path: path).run()
        let result = try #require(r.steps.first?.result)
        let before = try #require(result["held_out_kl_initial"]?.doubleValue), after = try #require(result["held_out_kl_final"]?.doubleValue)
        #expect(after < before, "KL \(before) -> \(after)")
        #expect(r.exitCode == 0)
        #expect(try Checkpoint.open(dir.file("student.ckz")).graph.config?.numLayers == 2)
        #expect(r.steps[1].result?["candidate"]?.stringValue?.contains("layers=2") == true)
    }

    /// A LLaMA teacher into a narrower student (the set-up `ckpt distill` uses, Train.DistillRecipe).
    @Test func distillStepsAcceptLlamaTeachers() throws {
        let dir = TempDir()
        try FileManager.default.copyItem(atPath: Repo.fixture("models/llama-teacher4"), toPath: dir.file("teacher"))
        let path = try write(dir, "p.yaml", """
            steps:
              - distill: {input: teacher, output: student/, hidden: 32, heads: 2, intermediate: 64, steps: 10, batch: 4, sequences: 16, eval_sequences: 4, length: 16, lr: 0.003}
              - verify: {reference: teacher, candidate: student/, sequences: 2, length: 16}
            """)
        let r = try PipelineRunner(path: path).run()
        let result = try #require(r.steps.first?.result)
        let before = try #require(result["held_out_kl_initial"]?.doubleValue), after = try #require(result["held_out_kl_final"]?.doubleValue)
        #expect(after < before, "KL \(before) -> \(after)")
        #expect(r.exitCode == 0)
        let config = try #require(try Checkpoint.open(dir.file("student")).graph.config)
        #expect(config.hiddenSize == 32 && config.numHeads == 2 && config["num_key_value_heads"]?.intValue == 1)
    }

    @Test func aFailingGatePublishesNothingAndExitsOne() throws {
        let dir = TempDir()
        try FileManager.default.copyItem(atPath: Repo.fixture("models/gpt2-a"), toPath: dir.file("model"))
        let path = try write(dir, "p.json", """
            {"steps": [
              {"convert": {"input": "model", "output": "out/", "dtype": "bf16"}},
              {"verify": {"reference": "model", "candidate": "out/", "max_kl": 1e-12, "sequences": 2, "length": 8}},
              {"convert": {"input": "out/", "output": "never.safetensors"}}
            ]}
            """)
        let r = try PipelineRunner(path: path).run()
        #expect(r.exitCode == 1)
        #expect(r.steps.map(\.status) == [.ran, .failed, .skipped])
        #expect(r.published.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.file("out")))
        #expect(!FileManager.default.fileExists(atPath: dir.file("never.safetensors")))
        let kl = r.steps[1].result?["gates"]?.arrayValue?.first
        #expect(kl?["name"]?.stringValue == "max_kl" && kl?["passed"]?.boolValue == false)
    }

    @Test(arguments: [
        ("steps: []", "non-empty"),
        ("steps:\n  - compress: {input: a, output: b}", "unknown step kind"),
        ("steps:\n  - convert: {input: a}", "missing `output`"),
        ("steps:\n  - convert: {input: a, output: b, speed: 3}", "unknown option `speed`"),
        ("steps:\n  - distill: {input: a, output: b, epochs: 3}", "unknown option `epochs`"),
        ("steps:\n  - distill: {input: a, output: b, layers: 2, lr: -1}", "lr must be positive"),
        ("steps:\n  - prune: {input: a, output: b, nm: 24}", "nm must look like"),
        ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nsteps: [*e]", "alias bomb"),
        ("steps:\n  - convert: {input: a, input: b, output: c}", "unique"),
    ])
    func badPipelinesAreRefusedBeforeAnyWork(_ text: String, _ mentions: String) throws {
        let dir = TempDir()
        let path = try write(dir, "p.yaml", text)
        #expect {
            try PipelineRunner(path: path).run()
        } throws: { error in
            "\(error)".contains(mentions) && "\(error)".contains("p.yaml")
        }
    }
}

// `ckpt distill` end to end: a 4-layer teacher into a 2-layer student, then the student through
// `ckpt forward`, `ckpt inspect` and `ckpt verify` against the teacher.

import CkptCore
import Foundation
import Testing
import TestSupport

@Suite struct DistillCommandTests {
    let teacher = Repo.fixture("models/gpt2-teacher4")

    func klMean(_ candidate: String, tokens: String) throws -> Double {
        let r = try CkptBinary.run("verify", teacher, candidate, "--tokens", tokens, "--json")
        #expect(r.status == 0, "\(r.stderr)")
        return try #require(try JSONValue.parse(r.stdout)["overall"]?["kl_mean"]?.doubleValue)
    }

    @Test func distilledStudentRunsAndVerifiesCloserThanTheInitialisedOne() throws {
        let dir = TempDir()
        let common = ["--layers", "2", "--sequences", "48", "--eval-sequences", "6", "--length", "16", "--batch", "8",
                      "--lr", "3e-3", "--seed", "1", "--verify-sequences", "2", "--quiet"]
        var r = try CkptBinary.run(["distill", teacher, dir.file("init/student.safetensors"), "--steps", "0",
                                    "--save-eval-tokens", dir.file("heldout.txt")] + common)
        #expect(r.status == 0, "\(r.stderr)")
        r = try CkptBinary.run(["distill", teacher, dir.file("dist/student.safetensors"), "--steps", "40"] + common)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("held-out KL(teacher ‖ student)"))
        #expect(r.stdout.contains("kl_mean"))  // the verify table
        #expect(FileManager.default.fileExists(atPath: dir.file("dist/config.json")))
        #expect(FileManager.default.fileExists(atPath: dir.file("dist/student.safetensors.distill-state.safetensors")))

        r = try CkptBinary.run("forward", dir.file("dist/student.safetensors"), "--tokens", "1,2,3,4")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("GPT2LMHeadModel: logits [4, 64]"))

        r = try CkptBinary.run("inspect", dir.file("dist/student.safetensors"), "--json")
        let info = try JSONValue.parse(r.stdout)
        #expect(info["config"]?["n_layer"]?.intValue == 2)
        let recipe = try JSONValue.parse(try #require(info["metadata"]?["ckpt_distill"]?.stringValue))
        #expect(recipe["teacher_layers"] == .array([.int(0), .int(3)]))

        let before = try klMean(dir.file("init/student.safetensors"), tokens: dir.file("heldout.txt"))
        let after = try klMean(dir.file("dist/student.safetensors"), tokens: dir.file("heldout.txt"))
        #expect(after < 0.8 * before, "verify KL on held-out sequences: \(before) -> \(after)")
    }

    @Test func tokenFileDataAndAStudentConfig() throws {
        let dir = TempDir()
        var rng = UInt64(7)
        let lines = (0..<12).map { _ in
            (0..<20).map { _ -> String in rng = rng &* 6364136223846793005 &+ 1442695040888963407; return String((rng >> 33) % 64) }
                .joined(separator: " ")
        }
        try writeFile(dir.file("tokens.txt"), Array((lines.joined(separator: "\n") + "\n").utf8))
        try writeFile(dir.file("student.json"), Array(#"{"n_inner": 96, "ckpt_teacher_layers": [1, 3]}"#.utf8))
        let r = try CkptBinary.run("distill", teacher, dir.file("out/"), "--student", dir.file("student.json"),
                                   "--data", dir.file("tokens.txt"), "--length", "16", "--steps", "3", "--batch", "2",
                                   "--verify-sequences", "1", "--quiet")
        #expect(r.status == 0, "\(r.stderr)")
        let info = try JSONValue.parse(try CkptBinary.run("inspect", dir.file("out"), "--json").stdout)
        #expect(info["config"]?["n_inner"]?.intValue == 96)
        #expect(info["config"]?["n_layer"]?.intValue == 2)
        let recipe = try JSONValue.parse(try #require(info["metadata"]?["ckpt_distill"]?.stringValue))
        #expect(recipe["data"]?.stringValue == dir.file("tokens.txt"))
        #expect(recipe["teacher_layers"] == .array([.int(1), .int(3)]))
    }

    @Test func resumeContinuesFromTheStateAndRefusesAnotherRecipe() throws {
        let dir = TempDir()
        let args = ["distill", teacher, dir.file("s.safetensors"), "--layers", "2", "--sequences", "8", "--eval-sequences", "2",
                    "--length", "8", "--batch", "2", "--steps", "4", "--save-every", "2", "--verify-sequences", "1"]
        var r = try CkptBinary.run(args)
        #expect(r.status == 0, "\(r.stderr)")
        let first = try readFile(dir.file("s.safetensors"))
        r = try CkptBinary.run(args + ["--resume"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("resumed at step 4"))
        #expect(try readFile(dir.file("s.safetensors")) == first)
        // A second run from scratch gives the same bytes (one process, one BLAS caller).
        r = try CkptBinary.run(["distill", teacher, dir.file("again/s.safetensors")] + Array(args.dropFirst(3)))
        #expect(r.status == 0, "\(r.stderr)")
        let again = try CkptBinary.run("diff", dir.file("s.safetensors"), dir.file("again/s.safetensors"))
        #expect(again.status == 0, "\(again.stdout)")  // every tensor identical
        r = try CkptBinary.run(args + ["--resume", "--lr", "0.01"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("different recipe"), "\(r.stderr)")
        r = try CkptBinary.run(["distill", teacher, dir.file("t.safetensors"), "--layers", "2", "--resume"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("no state file"), "\(r.stderr)")
    }

    @Test func badStudentSpecsExit2() throws {
        let dir = TempDir()
        for args in [["--layers", "9"], ["--layer-list", "3,1"], ["--intermediate", "100000", "--layers", "2"], []] {
            let r = try CkptBinary.run(["distill", teacher, dir.file("s.safetensors"), "--steps", "0"] + args)
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stderr.hasPrefix("ckpt: error:") || r.stderr.contains("Error"), "\(r.stderr)")
        }
        var r = try CkptBinary.run("distill", Repo.fixture("models/mixtral-top2"), dir.file("s.safetensors"), "--layers", "1")
        #expect(r.status == 2)
        #expect(r.stderr.contains("mixture of experts is not implemented in training"), "\(r.stderr)")
        r = try CkptBinary.run("distill", Repo.fixture("models/llama-teacher4"), dir.file("s.safetensors"), "--heads", "4", "--kv-heads", "1")
        #expect(r.status == 2)
        #expect(r.stderr.contains("query heads per key/value head"), "\(r.stderr)")
    }

    /// A LLaMA teacher into a student with half the hidden size and heads (and a student config
    /// naming the same sizes gives the same student).
    @Test func llamaWidthStudent() throws {
        let dir = TempDir()
        let teacher = Repo.fixture("models/llama-teacher4")
        let common = ["--sequences", "8", "--eval-sequences", "2", "--length", "16", "--batch", "2", "--verify-sequences", "1", "--quiet"]
        var r = try CkptBinary.run(["distill", teacher, dir.file("a/"), "--hidden", "32", "--heads", "2", "--intermediate", "64", "--steps", "3"] + common)
        #expect(r.status == 0, "\(r.stderr)")
        let info = try JSONValue.parse(try CkptBinary.run("inspect", dir.file("a"), "--json").stdout)
        #expect(info["config"]?["hidden_size"]?.intValue == 32)
        #expect(info["config"]?["num_attention_heads"]?.intValue == 2)
        #expect(info["config"]?["num_key_value_heads"]?.intValue == 1)
        #expect(info["config"]?["head_dim"]?.intValue == 16)
        try writeFile(dir.file("student.json"), Array(#"{"model_type": "llama", "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}"#.utf8))
        r = try CkptBinary.run(["distill", teacher, dir.file("b/"), "--student", dir.file("student.json"), "--steps", "3"] + common)
        #expect(r.status == 0, "\(r.stderr)")
        let same = try CkptBinary.run("diff", dir.file("a/model.safetensors"), dir.file("b/model.safetensors"))
        #expect(same.status == 0, "\(same.stdout)")
    }
}

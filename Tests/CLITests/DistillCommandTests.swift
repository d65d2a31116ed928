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

    @Test func badStudentSpecsExit2() throws {
        let dir = TempDir()
        for args in [["--layers", "9"], ["--layer-list", "3,1"], ["--intermediate", "100000", "--layers", "2"], []] {
            let r = try CkptBinary.run(["distill", teacher, dir.file("s.safetensors"), "--steps", "0"] + args)
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stderr.hasPrefix("ckpt: error:") || r.stderr.contains("Error"), "\(r.stderr)")
        }
        let r = try CkptBinary.run("distill", Repo.fixture("models/llama-gqa"), dir.file("s.safetensors"), "--layers", "1")
        #expect(r.status == 2)
        #expect(r.stderr.contains("only GPT-2"), "\(r.stderr)")
    }
}

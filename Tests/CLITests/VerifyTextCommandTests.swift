// `ckpt verify --text` end to end: a tiny GPT-2 trained with the gpt2 fixture tokenizer, the
// real all-MiniLM-L6-v2 (one line per sequence), saved reference outputs, `ckpt run`'s
// `text:`, and text as calibration/training data.

import CkptCore
import Foundation
import Testing
import TestSupport

@Suite struct VerifyTextCommandTests {
    static let model = Repo.fixture("tokenizers/gpt2-model")
    static let heldout = Repo.fixture("tokenizers/heldout.txt")

    func bf16Candidate(_ dir: TempDir) throws -> String {
        let out = dir.file("bf16.safetensors")
        let r = try CkptBinary.run("convert", Self.model, out, "--dtype", "bf16")
        #expect(r.status == 0, "\(r.stderr)")
        return out
    }

    @Test func savedReferenceGivesTheDirectFigures() throws {
        let dir = TempDir()
        let cand = try bf16Candidate(dir)
        let direct = try CkptBinary.run("verify", Self.model, cand, "--text", Self.heldout, "--context", "64", "--json",
                                        "--save-logits", dir.file("ref.logits"), "--preset", "bf16")
        #expect(direct.status == 0, "\(direct.stderr)")
        let a = try JSONValue.parse(direct.stdout)
        let windows = try #require(a["text"]?["windows"]?.intValue)
        #expect(windows >= 10 && a["text"]?["context"]?.intValue == 64 && a["text"]?["bos"] == .null)
        #expect(a["text"]?["scored"]?.intValue == windows * 31)
        // Today's shape: one `sequences` entry per window with the usual keys, and `overall`.
        let seqs = try #require(a["sequences"]?.arrayValue)
        #expect(seqs.count == windows)
        for key in ["positions", "max_abs", "mean_abs", "cosine", "kl_mean", "kl_max", "top1", "perplexity_reference", "perplexity_candidate"] {
            #expect(seqs[0][key] != nil && a["overall"]?[key] != nil, "\(key)")
        }
        #expect(a["overall"]?["kl_mean"] == a["text"]?["kl"]?["mean"])
        let saved = try CkptBinary.run("verify", Self.model, cand, "--reference-logits", dir.file("ref.logits"),
                                       "--text", Self.heldout, "--json")
        #expect(saved.status == 0, "\(saved.stderr)")
        let b = try JSONValue.parse(saved.stdout)
        let klA = try #require(a["text"]?["kl"]?["mean"]?.doubleValue), klB = try #require(b["text"]?["kl"]?["mean"]?.doubleValue)
        let bound = try #require(b["text"]?["kl_error_bound"]?.doubleValue)
        print("verify --text: KL direct \(klA), from saved reference \(klB), bound \(bound)")
        #expect(klB <= klA + 1e-12 && klA - klB <= bound + 1e-12)
        #expect(abs(klA - klB) <= 1e-6)
        for key in ["ppl_reference", "ppl_candidate", "same_top", "delta_p_rms"] {
            let x = try #require(a["text"]?[key]?.doubleValue), y = try #require(b["text"]?[key]?.doubleValue)
            #expect(abs(x - y) <= 1e-9 * max(1, abs(x)), "\(key): \(x) vs \(y)")
        }
        #expect(b["text"]?["tokens"] == a["text"]?["tokens"])
        // The saved file alone is enough: no text, and the reference checkpoint only for its config.
        let alone = try CkptBinary.run("verify", Self.model, cand, "--reference-logits", dir.file("ref.logits"), "--json")
        #expect(alone.status == 0, "\(alone.stderr)")
        #expect(try JSONValue.parse(alone.stdout)["text"]?["kl"]?["mean"]?.doubleValue == klB)
        // --tokenizer names the tokenizer when the reference is a bare weights file elsewhere.
        let bare = dir.file("ref.safetensors")
        try FileManager.default.copyItem(atPath: Self.model + "/model.safetensors", toPath: bare)
        try FileManager.default.copyItem(atPath: Self.model + "/config.json", toPath: dir.file("config.json"))
        let noTok = try CkptBinary.run("verify", bare, cand, "--text", Self.heldout, "--context", "64")
        #expect(noTok.status == 2 && noTok.stderr.contains("no tokenizer.json or vocab.txt"), "\(noTok.stderr)")
        let withTok = try CkptBinary.run("verify", bare, cand, "--text", Self.heldout, "--context", "64", "--json",
                                         "--tokenizer", Self.model + "/tokenizer.json")
        #expect(withTok.status == 0, "\(withTok.stderr)")
        #expect(try JSONValue.parse(withTok.stdout)["text"]?["kl"]?["mean"]?.doubleValue == klA)
        // The saved file must match the text it was made from.
        try writeFile(dir.file("other.txt"), Array("Something else entirely, said differently.\n".utf8))
        let mismatch = try CkptBinary.run("verify", Self.model, cand, "--reference-logits", dir.file("ref.logits"), "--text", dir.file("other.txt"))
        #expect(mismatch.status == 2 && mismatch.stderr.contains("does not tokenize to the tokens saved"))
        var bytes = try readFile(dir.file("ref.logits"))
        bytes[bytes.count - 20] ^= 0xFF
        bytes.removeLast(5)
        try writeFile(dir.file("cut.logits"), bytes)
        let cut = try CkptBinary.run("verify", Self.model, cand, "--reference-logits", dir.file("cut.logits"))
        #expect(cut.status == 2 && cut.stderr.contains("cut.logits"))
    }

    @Test func humanReportAndBadOptions() throws {
        let dir = TempDir()
        let cand = try bf16Candidate(dir)
        let r = try CkptBinary.run("verify", Self.model, cand, "--text", Self.heldout, "--context", "32", "--chunks", "5")
        #expect(r.status == 0, "\(r.stderr)")
        for line in ["5 windows of 32", "Mean PPL(Q)", "Mean    KLD:", "99.0%   KLD:", "Median  KLD:", "RMS Δp", "Same top p:"] {
            #expect(r.stdout.contains(line), "\(line)")
        }
        let long = try CkptBinary.run("verify", Self.model, cand, "--text", Self.heldout, "--context", "1000")
        #expect(long.status == 2 && long.stderr.contains("longer than the model's 128 positions"))
        let both = try CkptBinary.run("verify", Self.model, cand, "--text", Self.heldout, "--tokens", Self.heldout)
        #expect(both.status == 2)
    }

    /// A candidate saved by the safetensors library (no config inside, none beside it) is read
    /// with the reference's config, in token mode and in text mode alike, and the report says so.
    @Test func bareCandidateBorrowsTheReferenceConfig() throws {
        let dir = TempDir()
        let bare = dir.file("plain.safetensors")
        let w = try Python.run("""
            import sys
            from safetensors.numpy import load_file, save_file
            save_file(load_file(sys.argv[1]), sys.argv[2])
            """, [Self.model + "/model.safetensors", bare])
        #expect(w.status == 0, "\(w.stderr)")
        for extra in [[String](), ["--text", Self.heldout]] {
            let r = try CkptBinary.run(["verify", Self.model, bare, "--json"] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            let v = try JSONValue.parse(r.stdout)
            #expect(v["candidate"]?.stringValue?.hasSuffix("(config from the reference)") == true, "\(extra): \(r.stdout.prefix(300))")
            #expect(v["reference"]?.stringValue?.contains("config from") == false)
            #expect(v["overall"]?["max_abs"]?.doubleValue == 0)
        }
    }

    @Test func encoderLinesOnRealMiniLM() throws {
        let minilm = try Python.miniLMDirectory()
        let dir = TempDir()
        let cand = dir.file("q.safetensors")
        #expect(try CkptBinary.run("convert", minilm, cand, "--dtype", "bf16").status == 0)
        let corpus = Repo.fixture("tokenizers/corpus.txt")
        let r = try CkptBinary.run("verify", minilm, cand, "--text", corpus, "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let v = try JSONValue.parse(r.stdout)
        let lines = try String(contentsOfFile: corpus, encoding: .utf8).split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }
        #expect(v["text"]?["mode"]?.stringValue == "lines")
        #expect(v["sequences"]?.arrayValue?.count == lines.count)
        let cos = try #require(v["overall"]?["cosine"]?.doubleValue)
        #expect(cos > 0.99 && cos < 1)
    }

    @Test func runStepsTakeText() throws {
        let dir = TempDir()
        try FileManager.default.copyItem(atPath: Self.model, toPath: dir.file("model"))
        try FileManager.default.copyItem(atPath: Self.heldout, toPath: dir.file("heldout.txt"))
        try writeFile(dir.file("p.yaml"), Array("""
            steps:
              - convert: {input: model, output: out/model.safetensors, dtype: bf16}
              - verify: {reference: model, candidate: out/model.safetensors, preset: bf16, text: heldout.txt, context: 32, chunks: 4}
            """.utf8))
        let r = try CkptBinary.run("run", dir.file("p.yaml"), "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let step = try #require(JSONValue.parse(r.stdout)["steps"]?.arrayValue?.last)
        #expect(step["result"]?["text"]?["windows"]?.intValue == 4)
    }

    @Test func textIsCalibrationAndTrainingData() throws {
        let dir = TempDir()
        let p = try CkptBinary.run("prune", Self.model, dir.file("pruned.safetensors"), "--intermediate", "64",
                                   "--importance", "activation", "--calibration", Self.heldout, "--length", "32")
        #expect(p.status == 0, "\(p.stderr)")
        let d = try CkptBinary.run(["distill", Self.model, dir.file("student.safetensors"), "--layers", "1", "--steps", "2",
                                    "--batch", "2", "--length", "16", "--data", Self.heldout, "--quiet"])
        #expect(d.status == 0, "\(d.stderr)")
        // A file of ids stays a file of ids.
        try writeFile(dir.file("ids.txt"), Array("1 2 3 4 5 6 7 8\n9, 10, 11, 12, 13, 14, 15, 16\n".utf8))
        let ids = try CkptBinary.run("prune", Self.model, dir.file("p2.safetensors"), "--intermediate", "64",
                                     "--importance", "activation", "--calibration", dir.file("ids.txt"))
        #expect(ids.status == 0, "\(ids.stderr)")
    }
}

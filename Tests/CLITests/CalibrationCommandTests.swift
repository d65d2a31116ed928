// `ckpt quantize --calibrate`: GPTQ end to end on the tiny GPT-2 that has a real tokenizer
// (calibrated on one text, judged on another), the file gguf-py reads, and bad options.

import CkptCore
import Foundation
import Testing
import TestSupport

@Suite struct CalibrationCommandTests {
    static let model = Repo.fixture("tokenizers/gpt2-model")
    static let corpus = Repo.fixture("tokenizers/corpus.txt")
    static let heldout = Repo.fixture("tokenizers/heldout.txt")

    @Test func gptqOnTextWritesAStandardFileWithLessLayerError() throws {
        let dir = TempDir()
        let out = dir.file("gptq.gguf")
        let r = try CkptBinary.run("quantize", Self.model, out, "--scheme", "q4_0", "--calibrate", Self.corpus,
                                   "--context", "64", "--calibration-samples", "16", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONValue.parse(r.stdout)
        #expect(report["calibration"]?["method"]?.stringValue == "gptq")
        #expect((report["calibration"]?["sequences"]?.intValue ?? 0) > 1)
        let tensors = try #require(report["tensors"]?.arrayValue)
        let calibrated = tensors.filter { $0["calibration"] != nil }
        // Two blocks × (qkv, attention output, fc, projection).
        #expect(calibrated.count == 8, "\(calibrated.map { $0["name"]?.stringValue ?? "" })")
        var before = 0.0, after = 0.0
        for t in calibrated {
            let b = try #require(t["calibration"]?["output_error_rtn"]?.doubleValue)
            let a = try #require(t["calibration"]?["output_error"]?.doubleValue)
            #expect(a.isFinite && b > 0)
            before += b; after += a
        }
        #expect(after < 0.9 * before, "mean layer output error: GPTQ \(after / 8) vs RTN \(before / 8)")
        // gguf-py reads the calibrated tensors as q4_0.
        let py = try Python.run("""
        import sys, gguf
        r = gguf.GGUFReader(sys.argv[1])
        print(' '.join(t.name + '=' + t.tensor_type.name for t in r.tensors if 'blk.' in t.name and t.name.endswith('.weight') and len(t.shape) == 2))
        """, [out])
        #expect(py.status == 0, "\(py.stderr)")
        let types = py.stdout.split(whereSeparator: \.isWhitespace).map { $0.split(separator: "=").last.map(String.init) ?? "" }
        #expect(types.count == 8 && types.allSatisfy { $0 == "Q4_0" }, "\(py.stdout)")
        // Our verify runs on it against held-out text.
        let v = try CkptBinary.run("verify", Self.model, out, "--text", Self.heldout, "--context", "64", "--json")
        #expect(v.status == 0 || v.status == 1, "\(v.stderr)")
        let kl = try JSONValue.parse(v.stdout)["text"]?["kl"]?["mean"]?.doubleValue
        #expect(kl.map { $0.isFinite && $0 >= 0 } == true)
    }

    @Test func rtnMethodEqualsPlainQuantize() throws {
        let dir = TempDir()
        #expect(try CkptBinary.run("quantize", Self.model, dir.file("a.gguf"), "--scheme", "q4_0", "--quiet").status == 0)
        let r = try CkptBinary.run("quantize", Self.model, dir.file("b.gguf"), "--scheme", "q4_0", "--quiet",
                                   "--calibrate", Self.corpus, "--method", "rtn", "--context", "64")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try readFile(dir.file("a.gguf")) == readFile(dir.file("b.gguf")))
    }

    @Test func badOptionsExitTwo() throws {
        let dir = TempDir()
        for args in [["--method", "gptq"], ["--calibrate", Self.corpus, "--method", "bogus"],
                     ["--calibrate", Self.corpus, "--context", "1"], ["--calibrate", dir.file("missing.txt")]] {
            let r = try CkptBinary.run(["quantize", Self.model, dir.file("x.gguf"), "--scheme", "q4_0"] + args)
            #expect(r.status == 2, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.file("x.gguf")))
        }
    }
}

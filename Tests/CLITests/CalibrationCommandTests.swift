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

    /// GPTQ on the k-quants through a llama.cpp-style preset on the real all-MiniLM-L6-v2: its
    /// 1536-wide FFN output projections are k-quant tensors (the 384-wide rows are not whole
    /// super-blocks and fall back to a 32-block type, which GPTQ calibrates too); gguf-py reads
    /// the k-quant types, every calibrated layer's output error is below round-to-nearest's,
    /// and our verify runs on the file.
    @Test func gptqOnKQuantPresetOnRealMiniLM() throws {
        let minilm = try Python.miniLMDirectory()
        let dir = TempDir()
        let out = dir.file("q4km.gguf")
        let r = try CkptBinary.run("quantize", minilm, out, "--scheme", "q4_k_m", "--calibrate", Self.corpus, "--method", "gptq",
                                   "--context", "32", "--calibration-samples", "4", "--no-sequential", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONValue.parse(r.stdout)
        let tensors = try #require(report["tensors"]?.arrayValue)
        let kquant = tensors.filter { ["q4_k", "q6_k"].contains($0["to"]?.stringValue ?? "") && $0["calibration"] != nil }
        #expect(kquant.count == 6, "\(tensors.map { ($0["name"]?.stringValue ?? "") + ":" + ($0["to"]?.stringValue ?? "") })")
        for t in tensors where t["calibration"] != nil {
            #expect(t["calibration"]?["method"]?.stringValue == "gptq")
            let b = try #require(t["calibration"]?["output_error_rtn"]?.doubleValue)
            let a = try #require(t["calibration"]?["output_error"]?.doubleValue)
            #expect(a < b, "\(t["name"]?.stringValue ?? ""): GPTQ \(a) vs RTN \(b)")
        }
        let py = try Python.run("""
        import sys, gguf
        r = gguf.GGUFReader(sys.argv[1])
        print(' '.join(sorted({t.tensor_type.name for t in r.tensors if 'ffn_down' in t.name and t.name.endswith('.weight')})))
        """, [out])
        #expect(py.status == 0, "\(py.stderr)")
        let types = Set(py.stdout.split(whereSeparator: \.isWhitespace).map(String.init))
        #expect(!types.isEmpty && types.isSubset(of: ["Q4_K", "Q6_K"]), "\(py.stdout)")
        let v = try CkptBinary.run("verify", minilm, out, "--text", Self.heldout, "--json")
        #expect(v.status == 0 || v.status == 1, "\(v.stderr)")
        let cos = try JSONValue.parse(v.stdout)["overall"]?["cosine"]?.doubleValue
        #expect(cos.map { $0 > 0.95 } == true, "\(v.stdout.prefix(300))")
    }

    /// AWQ with its clipping search never reports a layer worse than round-to-nearest, and
    /// awq+gptq writes a standard q4_0 file that verify runs on.
    @Test func awqClippingAndAwqPlusGPTQ() throws {
        let dir = TempDir()
        for method in ["awq", "awq+gptq"] {
            let out = dir.file("\(method).gguf")
            let r = try CkptBinary.run("quantize", Self.model, out, "--scheme", "q4_0", "--calibrate", Self.corpus, "--method", method,
                                       "--context", "64", "--calibration-samples", "16", "--json")
            #expect(r.status == 0, "\(method): \(r.stderr)")
            let report = try JSONValue.parse(r.stdout)
            #expect(report["calibration"]?["method"]?.stringValue == method)
            let calibrated = try #require(report["tensors"]?.arrayValue).filter { $0["calibration"] != nil }
            #expect(calibrated.count >= 6, "\(method): \(calibrated.count) calibrated layers")
            // (The scale search minimises a group's total, so one layer of a group may lose a
            // little; the clipping never makes a layer worse than its scaled rounding.)
            var before = 0.0, after = 0.0
            for t in calibrated {
                #expect(t["calibration"]?["method"]?.stringValue == method)
                before += try #require(t["calibration"]?["output_error_rtn"]?.doubleValue)
                after += try #require(t["calibration"]?["output_error"]?.doubleValue)
            }
            #expect(after < before, "\(method): mean layer output error \(before / Double(calibrated.count)) -> \(after / Double(calibrated.count))")
            let py = try Python.run("""
            import sys, gguf
            r = gguf.GGUFReader(sys.argv[1])
            print(' '.join(sorted({t.tensor_type.name for t in r.tensors if 'blk.' in t.name and t.name.endswith('.weight') and len(t.shape) == 2})))
            """, [out])
            #expect(py.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "Q4_0", "\(method): \(py.stdout) \(py.stderr)")
            let v = try CkptBinary.run("verify", Self.model, out, "--text", Self.heldout, "--context", "64", "--json")
            #expect(v.status == 0 || v.status == 1, "\(v.stderr)")
        }
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

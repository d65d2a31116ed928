// `ckpt quantize --method imatrix`, `--save-imatrix FILE` and `--imatrix FILE` end to end on the
// tiny GPT-2 with a real tokenizer: the collected matrix is written in llama.cpp's layout
// (gguf-py reads it under llama.cpp's tensor names), and quantizing with the saved file gives
// the same bytes as quantizing with the collected statistics.

import CkptCore
import Foundation
import Testing
import TestSupport

@Suite struct ImatrixCommandTests {
    static let model = Repo.fixture("tokenizers/gpt2-model")
    static let corpus = Repo.fixture("tokenizers/corpus.txt")

    @Test func collectSaveAndReuseAnImportanceMatrix() throws {
        let dir = TempDir()
        let r = try CkptBinary.run("quantize", Self.model, dir.file("a.gguf"), "--scheme", "q4_1", "--calibrate", Self.corpus,
                                   "--method", "imatrix", "--save-imatrix", dir.file("im.gguf"),
                                   "--context", "64", "--calibration-samples", "16", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONValue.parse(r.stdout)
        #expect(report["calibration"]?["method"]?.stringValue == "imatrix")
        let calibrated = try #require(report["tensors"]?.arrayValue).filter { $0["calibration"] != nil }
        #expect(calibrated.count == 8, "\(calibrated.map { $0["name"]?.stringValue ?? "" })")
        var before = 0.0, after = 0.0
        for t in calibrated {
            #expect(t["calibration"]?["method"]?.stringValue == "imatrix")
            before += t["calibration"]?["output_error_rtn"]?.doubleValue ?? .nan
            after += t["calibration"]?["output_error"]?.doubleValue ?? .nan
        }
        #expect(after < before, "mean layer output error: imatrix \(after / 8) vs RTN \(before / 8)")

        // gguf-py reads our imatrix: llama.cpp's names, one matrix per weight, tokens counted.
        let py = try Python.run("""
        import sys, gguf
        r = gguf.GGUFReader(sys.argv[1])
        assert r.fields["general.type"].contents() == "imatrix"
        print(r.fields["imatrix.chunk_size"].contents())
        for t in r.tensors: print(t.name, t.tensor_type.name, *[int(d) for d in t.shape], float(t.data.reshape(-1)[0]))
        """, [dir.file("im.gguf")])
        #expect(py.status == 0, "\(py.stderr)")
        let lines = py.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "64")
        let names = Set(lines.dropFirst().map { String($0.split(separator: " ")[0]) })
        #expect(names.contains("blk.0.attn_qkv.weight.in_sum2") && names.contains("blk.1.ffn_down.weight.counts"), "\(names.sorted())")
        #expect(names.count == 16, "\(names.sorted())")
        for line in lines.dropFirst() where line.contains(".counts ") {
            let f = line.split(separator: " ")
            #expect(f[1] == "F32" && f[2] == "1" && f[3] == "1" && (Double(f[4]) ?? 0) > 0, "\(line)")
        }

        // The saved file (GGUF, then legacy .dat) without a calibration run: the same bytes for
        // GGUF, since llama-quantize's reading of it is what the collected statistics gave.
        let b = try CkptBinary.run("quantize", Self.model, dir.file("b.gguf"), "--scheme", "q4_1", "--imatrix", dir.file("im.gguf"), "--json")
        #expect(b.status == 0, "\(b.stderr)")
        #expect(try JSONValue.parse(b.stdout)["tensors"]?.arrayValue?.filter { $0["calibration"] != nil }.count == 8)
        #expect(try readFile(dir.file("a.gguf")) == readFile(dir.file("b.gguf")))
        #expect(try readFile(dir.file("a.gguf")) != readFile(dir.file("rtn.gguf", quantizeRTN: true)))

        let d = try CkptBinary.run("quantize", Self.model, dir.file("c.gguf"), "--scheme", "q4_1", "--calibrate", Self.corpus,
                                   "--context", "64", "--calibration-samples", "16", "--method", "imatrix",
                                   "--save-imatrix", dir.file("im.dat"), "--quiet")
        #expect(d.status == 0, "\(d.stderr)")
        let e = try CkptBinary.run("quantize", Self.model, dir.file("e.gguf"), "--scheme", "q4_1", "--imatrix", dir.file("im.dat"), "--json")
        #expect(e.status == 0, "\(e.stderr)")
        #expect(try JSONValue.parse(e.stdout)["tensors"]?.arrayValue?.filter { $0["calibration"] != nil }.count == 8)
    }

    /// Without --method: GPTQ where it has the type's grid (the k-quants too), and the text
    /// report says which.
    @Test func defaultMethodPerScheme() throws {
        for (scheme, method) in [("q4_0", "gptq"), ("q4_k", "gptq"), ("q6_k", "gptq"), ("q4_k_m", "gptq")] {
            let r = try CkptBinary.run("quantize", Self.model, TempDir().file("x.gguf"), "--scheme", scheme, "--calibrate", Self.corpus,
                                       "--context", "64", "--dry-run")
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("method: \(method) (the default for \(scheme)"), "\(scheme): \(r.stdout)")
        }
    }

    @Test func badImatrixOptionsExitTwo() throws {
        let dir = TempDir()
        try writeFile(dir.file("junk.dat"), Array("not an imatrix at all".utf8))
        for args in [["--save-imatrix", dir.file("x.imatrix")], ["--imatrix", dir.file("missing.gguf")],
                     ["--imatrix", dir.file("junk.dat")], ["--imatrix", Repo.fixture("imatrix/llamacpp.imatrix.gguf"), "--method", "gptq"]] {
            let r = try CkptBinary.run(["quantize", Self.model, dir.file("x.gguf"), "--scheme", "q4_0"] + args)
            #expect(r.status == 2, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.file("x.gguf")))
        }
        // llama.cpp's fixture on a LLaMA of hidden 64: its blk.0.attn_q.weight entry has 32 columns.
        do {
            let r = try CkptBinary.run("quantize", Repo.fixture("models/llama-mha-tied"), dir.file("x.gguf"), "--scheme", "q4_0",
                                       "--imatrix", Repo.fixture("imatrix/llamacpp.imatrix.gguf"))
            #expect(r.status == 2 && r.stderr.contains("blk.0.attn_q.weight") && r.stderr.contains("32 columns"), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.file("x.gguf")))
        }
    }
}

extension TempDir {
    /// `name` quantized by plain round-to-nearest (q4_1) from the tiny GPT-2.
    func file(_ name: String, quantizeRTN: Bool) throws -> String {
        let path = file(name)
        let r = try CkptBinary.run("quantize", ImatrixCommandTests.model, path, "--scheme", "q4_1", "--quiet")
        guard r.status == 0 else { throw SupportError(r.stderr) }
        return path
    }
}

@Suite struct AWQCommandTests {
    @Test func awqWritesAStandardFileAndReportsEachGroup() throws {
        let dir = TempDir()
        let out = dir.file("awq.gguf")
        let r = try CkptBinary.run("quantize", ImatrixCommandTests.model, out, "--scheme", "q4_0", "--calibrate", ImatrixCommandTests.corpus,
                                   "--method", "awq", "--context", "64", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONValue.parse(r.stdout)
        #expect(report["calibration"]?["method"]?.stringValue == "awq")
        // ln_1 -> qkv, v -> attention output, ln_2 -> fc per block are scaled (GELU's fc -> proj
        // is not foldable); the clipping search also covers proj (not the fused qkv, as AutoAWQ).
        let calibrated = try #require(report["tensors"]?.arrayValue).filter { $0["calibration"]?["method"]?.stringValue == "awq" }
        #expect(calibrated.count == 8, "\(calibrated.map { $0["name"]?.stringValue ?? "" })")
        let py = try Python.run("""
        import sys, gguf
        r = gguf.GGUFReader(sys.argv[1])
        print(' '.join(t.tensor_type.name for t in r.tensors if t.name.startswith('blk.') and len(t.shape) == 2))
        """, [out])
        #expect(py.status == 0, "\(py.stderr)")
        #expect(py.stdout.split(whereSeparator: \.isWhitespace).allSatisfy { $0 == "Q4_0" } && !py.stdout.isEmpty, "\(py.stdout)")
        let v = try CkptBinary.run("verify", ImatrixCommandTests.model, out, "--text", Repo.fixture("tokenizers/heldout.txt"), "--context", "64", "--json")
        #expect(v.status == 0 || v.status == 1, "\(v.stderr)")
        #expect(try JSONValue.parse(v.stdout)["text"]?["kl"]?["mean"]?.doubleValue.map { $0.isFinite } == true)
    }
}

// Issue 13's workflows: pipelines checked before any work, --dtype and --exclude, head
// pruning only where transformers can load the result, whole model directories, wrapped
// PyTorch checkpoints.

import CkptCore
import Foundation
import Testing
import TestSupport

@Suite struct PipelineUpFrontTests {
    func run(_ yaml: String, in dir: TempDir) throws -> ProcessResult {
        try writeFile(dir.file("p.yaml"), Array(yaml.utf8))
        return try CkptBinary.run("run", dir.file("p.yaml"))
    }

    /// Nothing ran: no output, no staging area, no state.
    func nothingRan(_ dir: TempDir, _ outputs: [String]) -> Bool {
        !FileManager.default.fileExists(atPath: dir.file(".ckpt-run")) && outputs.allSatisfy { !FileManager.default.fileExists(atPath: dir.file($0)) }
    }

    @Test func twoStepsWritingOnePathAreRefusedBeforeAnyWork() throws {
        let dir = TempDir()
        let model = Repo.fixture("models/gpt2-a")
        for _ in 0..<2 {  // the second run must not find anything "cached" either
            let r = try run("""
                steps:
                  - convert: {input: \(model), output: same.h5}
                  - convert: {input: \(model), output: ./same.h5, dtype: f16}
                """, in: dir)
            #expect(r.status == 2 && r.stderr.contains("step 1 already writes"), "\(r.stderr)")
            #expect(!r.stderr.contains("Domain=") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(nothingRan(dir, ["same.h5"]))
        }
    }

    @Test(arguments: [
        ("  - quantize: {input: a.safetensors, output: q.gguf, scheme: q9}", "q9"),
        ("  - prune: {input: a.safetensors, output: p.safetensors, sparsity: 1.5}", "sparsity"),
        ("  - convert: {input: a.safetensors, output: c.out, to: xyz}", "xyz"),
        ("  - convert: {input: a.safetensors, output: c.weird}", "cannot tell the format"),
        ("  - verify: {reference: a.safetensors, candidate: a.safetensors, min_cosine: high}", "min_cosine"),
    ])
    func everyStepsValuesAreCheckedBeforeTheFirstStepRuns(_ step: String, _ mentions: String) throws {
        let dir = TempDir()
        let r = try run("steps:\n  - convert: {input: \(Repo.fixture("models/gpt2-a")), output: a.safetensors}\n" + step + "\n", in: dir)
        #expect(r.status == 2 && r.stderr.contains("step 2") && r.stderr.contains(mentions), "\(r.stderr)")
        #expect(nothingRan(dir, ["a.safetensors"]))
    }

    @Test func aMissingInputIsOneLineWithoutFoundationInternals() throws {
        let dir = TempDir()
        let r = try run("steps:\n  - convert: {input: nowhere.safetensors, output: b.safetensors}\n", in: dir)
        #expect(r.status == 2 && r.stderr.contains("nowhere.safetensors"), "\(r.stderr)")
        #expect(!r.stderr.contains("Domain=") && !r.stderr.contains("NSCocoa") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }
}

@Suite struct CastAndExcludeTests {
    /// Every f8 code (e4m3fn, e5m2), bool, u64 and i32 written by torch: `--dtype f32`
    /// widens the floats exactly and casts what the output cannot hold; torch's `.float()`
    /// is the reference, and gguf-py / numpy read the outputs.
    @Test func dtypeCastsWhatTheHintPromises() throws {
        let dir = TempDir()
        let src = Repo.fixture("safetensors/castable.safetensors")
        var r = try CkptBinary.run("convert", src, dir.file("refused.gguf"))
        #expect(r.status == 2 && r.stderr.contains("--dtype f32") && r.stderr.contains("--exclude"), "\(r.stderr)")
        for ext in ["gguf", "npz", "safetensors"] {
            r = try CkptBinary.run("convert", src, dir.file("c.\(ext)"), "--dtype", "f32")
            #expect(r.status == 0, "\(ext): \(r.stderr)")
        }
        #expect(r.stdout.isEmpty, "safetensors holds bool and u64: nothing else to cast: \(r.stdout)")
        let py = try Python.run("""
            import sys, numpy as np, gguf
            from safetensors.numpy import load_file
            exp = load_file(sys.argv[1])
            st = load_file(sys.argv[2]); npz = np.load(sys.argv[3])
            gg = {t.name: np.array(t.data).reshape(-1) for t in gguf.GGUFReader(sys.argv[4]).tensors}
            same = lambda a, b: np.array_equal(a.astype(np.float32), b, equal_nan=True)
            print(all(same(st[k], exp[k]) and same(npz[k], exp[k]) and same(gg[k], exp[k]) for k in exp),
                  str(st["f8_e4m3"].dtype), str(st["mask"].dtype), str(gg["mask"].dtype), str(gg["ids_i32"].dtype))
            """, [Repo.fixture("safetensors/castable.expected_f32.safetensors"), dir.file("c.safetensors"),
                  dir.file("c.npz"), dir.file("c.gguf")])
        #expect(py.stdout == "True float32 bool float32 int32\n", "\(py.stdout) \(py.stderr)")
    }

    @Test func excludeLeavesTensorsOutAndSaysSo() throws {
        let dir = TempDir()
        let src = Repo.fixture("safetensors/castable.safetensors")
        var r = try CkptBinary.run("convert", src, dir.file("e.gguf"), "--exclude", "^ids_u64$", "--exclude", "mask|f8_")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("left out 4 tensor(s)") && r.stdout.contains("ids_u64") && r.stdout.contains("mask"), "\(r.stdout)")
        let py = try Python.run("import sys, gguf; print([t.name for t in gguf.GGUFReader(sys.argv[1]).tensors])", [dir.file("e.gguf")])
        #expect(py.stdout == "['ids_i32']\n", "\(py.stdout) \(py.stderr)")
        r = try CkptBinary.run("quantize", Repo.fixture("models/gpt2-a"), dir.file("q.gguf"), "--scheme", "q8_0",
                               "--exclude", "^lm_head", "--exclude", "attn\\.bias$", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let excluded = try JSONValue.parse(r.stdout)["excluded"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(!excluded.isEmpty && excluded.allSatisfy { $0.hasSuffix("attn.bias") || $0.hasPrefix("lm_head") }, "\(excluded)")
        r = try CkptBinary.run("convert", src, dir.file("x.gguf"), "--exclude", ".")
        #expect(r.status == 2 && r.stderr.contains("no tensor"), "\(r.stderr)")
        r = try CkptBinary.run("convert", src, dir.file("x.gguf"), "--exclude", "(")
        #expect(r.status == 2 && r.stderr.contains("not a valid regular expression"), "\(r.stderr)")
    }
}

@Suite struct HeadPruningTests {
    /// GPT-2 and BERT derive the head size from hidden_size / heads and transformers 5 has
    /// no pruned_heads: head removal there is refused up front, saying what works instead.
    @Test(arguments: ["gpt2-a", "bert-a"])
    func gpt2AndBertHeadRemovalIsRefusedUpFront(_ model: String) throws {
        let dir = TempDir()
        for args in [["--heads", "1"], ["--drop-heads", "0:1"]] {
            let r = try CkptBinary.run(["prune", Repo.fixture("models/\(model)"), dir.file("p") + "/"] + args)
            #expect(r.status == 2 && r.stderr.contains("transformers 5") && r.stderr.contains("--intermediate"), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1)
            #expect(!FileManager.default.fileExists(atPath: dir.file("p")))
        }
    }
}

@Suite struct WholeProjectTests {
    @Test func directoryOutputsCarryEveryOtherFileByteForByte() throws {
        let dir = TempDir()
        let src = dir.file("model")
        try FileManager.default.copyItem(atPath: try Python.miniLMDirectory(), toPath: src)
        // An export of the original weights is not carried (it would be stale).
        try FileManager.default.createDirectory(atPath: src + "/onnx", withIntermediateDirectories: false)
        try writeFile(src + "/onnx/model.onnx", [1, 2, 3])
        let carried = ["1_Pooling", "README.md", "config_sentence_transformers.json", "data_config.json", "modules.json",
                       "sentence_bert_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
        let r = try CkptBinary.run("convert", src, dir.file("out") + "/", "--dtype", "f16")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("carried from") && carried.allSatisfy { r.stdout.contains($0) }, "\(r.stdout)")
        let out = try FileManager.default.contentsOfDirectory(atPath: dir.file("out")).sorted()
        #expect(out == (carried + ["config.json", "model.safetensors"]).sorted(), "\(out)")
        for name in carried where name != "1_Pooling" {
            #expect(try readFile(dir.file("out/" + name)) == readFile(src + "/" + name), "\(name)")
        }
        #expect(try readFile(dir.file("out/1_Pooling/config.json")) == readFile(src + "/1_Pooling/config.json"))
        // Converting into the same directory again replaces the carried folder too.
        let again = try CkptBinary.run("convert", src, dir.file("out") + "/")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("out")).sorted() == out)
        #expect(try readFile(dir.file("out/1_Pooling/config.json")) == readFile(src + "/1_Pooling/config.json"))
        // Quantize and prune to a directory carry them too.
        let p = try CkptBinary.run("prune", src, dir.file("pruned") + "/", "--intermediate", "1024")
        #expect(p.status == 0 && p.stdout.contains("carried from") && p.stdout.contains("tokenizer.json"), "\(p.stdout) \(p.stderr)")
        #expect(try readFile(dir.file("pruned/tokenizer.json")) == readFile(src + "/tokenizer.json"))
    }

    @Test(arguments: [("wrapped_model.pt", "model"), ("wrapped_state_dict.pt", "state_dict"), ("wrapped_nested.pt", "ckpt.ema")])
    func wrappedTorchCheckpointsNeedKeyAndTheRefusalSuggestsIt(_ file: String, _ key: String) throws {
        let dir = TempDir()
        let input = Repo.fixture("torch/" + file)
        var r = try CkptBinary.run("convert", input, dir.file("out") + "/")
        #expect(r.status == 2 && r.stderr.contains("--key \(key)"), "\(r.stderr)")
        r = try CkptBinary.run("convert", input, dir.file("out") + "/", "--key", key)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try readFile(dir.file("out/model.safetensors")) == readFile(Repo.fixture("torch/wrapped.expected.safetensors")))
        r = try CkptBinary.run("inspect", input, "--key", key + ".nothing")
        #expect(r.status == 2 && r.stderr.contains("--key"), "\(r.stderr)")
        r = try CkptBinary.run("inspect", Repo.fixture("models/gpt2-a"), "--key", "model")
        #expect(r.status == 2 && r.stderr.contains("PyTorch"), "\(r.stderr)")
    }
}

// What llama.cpp's loader reads, checked with gguf-py's reader on files ckpt writes: the
// architecture keys and types convert_hf_to_gguf.py writes, tokenizer keys, f32 norms for
// f16/bf16 and quantized files, llama-quantize's file type for a preset, and the plan's
// reasons in --dry-run. (llama.cpp itself runs in `make test-llamacpp`.)

import CkptCore
import Foundation
import Testing
import TestSupport

@Suite struct GGUFLlamaCppTests {
    /// fixtures/models/llama-gqa with the Llama-3 tokenizer fixture beside it.
    func modelWithTokenizer(_ dir: TempDir, model: String = "llama-gqa") throws -> String {
        let m = dir.file("model")
        try FileManager.default.createDirectory(atPath: m, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] { try FileManager.default.copyItem(atPath: Repo.fixture("models/\(model)/\(f)"), toPath: m + "/" + f) }
        try FileManager.default.copyItem(atPath: Repo.fixture("tokenizers/llama3/tokenizer.json"), toPath: m + "/tokenizer.json")
        try #"{"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "chat_template": "{{ messages }}"}"#
            .write(toFile: m + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        return m
    }

    static let check = """
    import sys, json, gguf
    r = gguf.GGUFReader(sys.argv[1])
    f = r.fields
    def v(k): return f[k].contents() if k in f else None
    def t(k): return f[k].types[-1].name if k in f else None
    out = {k: [v(k), t(k)] for k in ["general.architecture", "general.file_type", "general.quantization_version", "general.name", "general.size_label",
        "llama.context_length", "llama.embedding_length", "llama.block_count", "llama.feed_forward_length", "llama.attention.head_count",
        "llama.attention.head_count_kv", "llama.attention.key_length", "llama.attention.value_length", "llama.rope.dimension_count",
        "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.model", "tokenizer.ggml.pre",
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.chat_template"]}
    out["n_tokens"] = len(f["tokenizer.ggml.tokens"].data) if "tokenizer.ggml.tokens" in f else 0
    out["n_merges"] = len(f["tokenizer.ggml.merges"].data) if "tokenizer.ggml.merges" in f else 0
    out["tensors"] = {x.name: x.tensor_type.name for x in r.tensors}
    print(json.dumps(out))
    """

    func read(_ path: String) throws -> JSONValue {
        let r = try Python.run(Self.check, [path])
        #expect(r.status == 0, "\(r.stderr)")
        return try JSONValue.parse(Array(r.stdout.utf8))
    }

    /// all-MiniLM-L6-v2 (test venv) for llama.cpp's bert: the sentence-transformers Pooling
    /// module becomes bert.pooling_type (mean = 1), the token type count is written, and the
    /// position/token-type tables stay f32 in an f16 file (llama.cpp adds them to f32 rows).
    @Test func sentenceTransformersBertKeys() throws {
        let dir = TempDir()
        let minilm = try Python.miniLMDirectory()
        let out = dir.file("minilm.gguf")
        let r = try CkptBinary.run("convert", minilm, out, "--dtype", "f16")
        #expect(r.status == 0, "\(r.stderr)")
        let q = try Python.run("""
            import sys, json, gguf
            r = gguf.GGUFReader(sys.argv[1])
            f = r.fields
            print(json.dumps({"pooling": int(f["bert.pooling_type"].contents()) if "bert.pooling_type" in f else None,
                              "types": int(f["tokenizer.ggml.token_type_count"].contents()) if "tokenizer.ggml.token_type_count" in f else None,
                              "tensors": {x.name: x.tensor_type.name for x in r.tensors}}))
            """, [out])
        #expect(q.status == 0, "\(q.stderr)")
        let j = try JSONValue.parse(Array(q.stdout.utf8))
        #expect(j["pooling"]?.intValue == 1)
        #expect(j["types"]?.intValue == 2)
        #expect(j["tensors"]?["position_embd.weight"]?.stringValue == "F32" && j["tensors"]?["token_types.weight"]?.stringValue == "F32")
        #expect(j["tensors"]?["blk.0.attn_q.weight"]?.stringValue == "F16")
    }

    @Test func convertWritesWhatLlamaCppReads() throws {
        let dir = TempDir()
        let m = try modelWithTokenizer(dir)
        let cfg = try JSONValue.parse(try readFile(m + "/config.json"))
        for dtype in ["f16", "bf16"] {
            let out = dir.file("\(dtype).gguf")
            let r = try CkptBinary.run("convert", m, out, "--dtype", dtype)
            #expect(r.status == 0, "\(r.stderr)")
            let j = try read(out)
            func val(_ k: String) -> JSONValue? { j[k]?.arrayValue?.first }
            func type(_ k: String) -> String? { j[k]?.arrayValue?.last?.stringValue }
            #expect(val("general.architecture")?.stringValue == "llama")
            #expect(val("general.file_type")?.intValue == (dtype == "f16" ? 1 : 32))
            #expect(val("general.quantization_version")?.intValue == 2 && val("general.size_label")?.stringValue != nil)
            #expect(val("llama.embedding_length")?.intValue == cfg["hidden_size"]?.intValue)
            #expect(val("llama.block_count")?.intValue == cfg["num_hidden_layers"]?.intValue)
            #expect(val("llama.feed_forward_length")?.intValue == cfg["intermediate_size"]?.intValue)
            #expect(val("llama.attention.head_count_kv")?.intValue == cfg["num_key_value_heads"]?.intValue)
            for k in ["llama.context_length", "llama.block_count", "llama.attention.head_count", "llama.attention.key_length", "llama.rope.dimension_count"] {
                #expect(type(k) == "UINT32", "\(k): \(type(k) ?? "missing")")
            }
            #expect(type("llama.attention.layer_norm_rms_epsilon") == "FLOAT32" && type("llama.rope.freq_base") == "FLOAT32")
            #expect(val("tokenizer.ggml.model")?.stringValue == "gpt2" && val("tokenizer.ggml.pre")?.stringValue == "llama-bpe")
            #expect(val("tokenizer.ggml.bos_token_id")?.intValue != nil && val("tokenizer.ggml.eos_token_id")?.intValue != nil)
            #expect(val("tokenizer.chat_template")?.stringValue == "{{ messages }}")
            #expect((j["n_tokens"]?.intValue ?? 0) > 256 && (j["n_merges"]?.intValue ?? 0) > 0)
            let tensors = j["tensors"]?.objectValue ?? [:]
            #expect(tensors.keys.allSatisfy { $0.hasPrefix("blk.") || ["token_embd.weight", "output_norm.weight", "output.weight"].contains($0) }, "\(tensors.keys)")
            for (name, t) in tensors where name.hasSuffix("norm.weight") { #expect(t.stringValue == "F32", "\(dtype): \(name) is \(t)") }
        }
    }

    @Test func q4KMPresetAndDryRunPlan() throws {
        let dir = TempDir()
        // Hidden size 32: rows fit q5_0 (q4_k's fallback), so the file is quantized.
        let m = try modelWithTokenizer(dir, model: "llama-yarn")
        let out = dir.file("q.gguf")
        let r = try CkptBinary.run("quantize", m, out, "--scheme", "q4_k_m", "--no-errors", "--quiet", "--tensor-type", "output=f16")
        #expect(r.status == 0, "\(r.stderr)")
        let j = try read(out)
        #expect(j["general.file_type"]?.arrayValue?.first?.intValue == 15)
        let tensors = j["tensors"]?.objectValue ?? [:]
        // `output` is anchored at name-part boundaries: output.weight, not blk.N.attn_output.weight.
        #expect(tensors["output.weight"]?.stringValue == "F16")
        #expect(tensors.filter { $0.key.contains("attn_output") }.allSatisfy { $0.value.stringValue == "Q5_0" }, "\(tensors)")
        for (name, t) in tensors where name.hasSuffix("norm.weight") { #expect(t.stringValue == "F32") }
        let plan = try CkptBinary.run("quantize", m, dir.file("p.gguf"), "--scheme", "q4_k_m", "--dry-run", "--tensor-type", "output=f16")
        #expect(plan.status == 0 && plan.stdout.contains("--tensor-type output=f16") && plan.stdout.contains("fallback"), "\(plan.stdout)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("p.gguf")))
    }

    /// GGUF -> model directory: the tokenizer comes back as tokenizer.json/tokenizer_config.json
    /// built from the tokenizer.ggml.* keys, and `tokenizers` encodes with it as with the original.
    @Test func ggufToDirectoryWritesTheTokenizerBack() throws {
        let dir = TempDir()
        let m = try modelWithTokenizer(dir)
        let g = dir.file("m.gguf"), back = dir.file("back") + "/"
        var r = try CkptBinary.run("convert", m, g)
        #expect(r.status == 0, "\(r.stderr)")
        r = try CkptBinary.run("convert", g, back)
        #expect(r.status == 0, "\(r.stderr)")
        let config = try JSONValue.parse(try readFile(back + "tokenizer_config.json"))
        #expect(config["bos_token"]?.stringValue == "<|begin_of_text|>" && config["eos_token"]?.stringValue == "<|end_of_text|>")
        #expect(config["chat_template"]?.stringValue == "{{ messages }}")
        let script = """
        import sys
        from tokenizers import Tokenizer
        a, b = Tokenizer.from_file(sys.argv[1]), Tokenizer.from_file(sys.argv[2])
        lines = [l for l in open(sys.argv[3], encoding="utf-8").read().splitlines() if l.strip()]
        print(sum(a.encode(l).ids != b.encode(l).ids for l in lines), len(lines))
        """
        let p = try Python.run(script, [m + "/tokenizer.json", back + "tokenizer.json", Repo.fixture("tokenizers/heldout.txt")])
        #expect(p.status == 0 && p.stdout.hasPrefix("0 "), "\(p.stdout) \(p.stderr)")
        // And to GGUF again: the same tokenizer keys.
        r = try CkptBinary.run("convert", back, dir.file("again.gguf"))
        #expect(r.status == 0, "\(r.stderr)")
        let a = try read(g), b = try read(dir.file("again.gguf"))
        for k in ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                  "tokenizer.ggml.add_bos_token", "tokenizer.chat_template", "n_tokens", "n_merges"] {
            #expect(a[k] == b[k], "\(k): \(a[k].map { $0.serialized() } ?? "nil") vs \(b[k].map { $0.serialized() } ?? "nil")")
        }
    }

    /// XLM-RoBERTa as llama.cpp's converter writes it: bert names (position rows before
    /// padding_idx + 1 dropped) and a t5 vocabulary, read by gguf-py with the key types
    /// llama.cpp's loader asserts (precompiled_charsmap a UINT8 array); and back to a directory,
    /// a tokenizer.json that `tokenizers` encodes with as with the original.
    @Test func xlmRobertaIsBertWithT5Vocabulary() throws {
        let dir = TempDir()
        let m = dir.file("model")
        try FileManager.default.createDirectory(atPath: m, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] { try FileManager.default.copyItem(atPath: Repo.fixture("models/xlm-roberta/\(f)"), toPath: m + "/" + f) }
        try FileManager.default.copyItem(atPath: Repo.fixture("tokenizers/xlmr/tokenizer.json"), toPath: m + "/tokenizer.json")
        let g = dir.file("x.gguf")
        var r = try CkptBinary.run("convert", m, g)
        // (The pooler is left out with a warning, as for BERT.)
        #expect(r.status == 0 && !r.stderr.contains("token") && !r.stderr.contains("Hugging Face names"), "\(r.stderr)")
        let q = try Python.run("""
            import sys, json, base64, gguf
            r = gguf.GGUFReader(sys.argv[1])
            f = r.fields
            tok = json.load(open(sys.argv[2]))
            cm = f["tokenizer.ggml.precompiled_charsmap"]
            want = base64.b64decode(tok["normalizer"]["normalizers"][0]["precompiled_charsmap"])
            print(json.dumps({"arch": f["general.architecture"].contents(), "model": f["tokenizer.ggml.model"].contents(),
                "charsmap_type": cm.types[-1].name, "charsmap_same": bytes(cm.contents()) == want,
                "scores_same": [round(x, 5) for x in f["tokenizer.ggml.scores"].contents()] == [round(s, 5) for _, s in tok["model"]["vocab"]],
                "scores_type": f["tokenizer.ggml.scores"].types[-1].name,
                "flags": [f[k].contents() for k in ["tokenizer.ggml.add_space_prefix", "tokenizer.ggml.remove_extra_whitespaces",
                                                    "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"]],
                "ids": [int(f[k].contents()) for k in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                                       "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"]],
                "positions": [int(x) for x in next(t.shape for t in r.tensors if t.name == "position_embd.weight")],
                "names": sorted(t.name for t in r.tensors if not t.name.startswith("blk."))}))
            """, [g, Repo.fixture("tokenizers/xlmr/tokenizer.json")])
        #expect(q.status == 0, "\(q.stderr)")
        let j = try JSONValue.parse(Array(q.stdout.utf8))
        #expect(j["arch"]?.stringValue == "bert" && j["model"]?.stringValue == "t5")
        #expect(j["charsmap_type"]?.stringValue == "UINT8" && j["charsmap_same"] == .bool(true) && j["scores_same"] == .bool(true))
        #expect(j["scores_type"]?.stringValue == "FLOAT32")
        #expect(j["flags"] == .array([.bool(true), .bool(true), .bool(true), .bool(true)]))
        #expect(j["ids"] == .array([.int(0), .int(2), .int(3), .int(1)]), "\(q.stdout)")
        // 34 positions, padding_idx 1: the first two rows are dropped ([width, rows] in gguf-py).
        #expect(j["positions"]?.arrayValue?.last == .int(32), "\(q.stdout)")
        #expect(j["names"]?.arrayValue?.contains(.string("token_embd.weight")) == true)
        let back = dir.file("back") + "/"
        r = try CkptBinary.run("convert", g, back)
        #expect(r.status == 0 && !r.stderr.contains("warning"), "\(r.stderr)")
        let script = """
        import sys
        from tokenizers import Tokenizer
        a, b = Tokenizer.from_file(sys.argv[1]), Tokenizer.from_file(sys.argv[2])
        lines = [l for p in sys.argv[3:] for l in open(p, encoding="utf-8").read().splitlines() if l.strip() and l.strip(" ") == l]
        print(sum(a.encode(l).ids != b.encode(l).ids for l in lines), len(lines))
        """
        let p = try Python.run(script, [m + "/tokenizer.json", back + "tokenizer.json", Repo.fixture("tokenizers/heldout.txt")])
        #expect(p.status == 0 && p.stdout.hasPrefix("0 "), "\(p.stdout) \(p.stderr)")
    }
}

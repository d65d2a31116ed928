// Every family fixture through GGUF: Hugging Face directory -> ckpt's GGUF (llama.cpp's names,
// layouts and keys, from the architecture description) -> read back -> forward pass equal to
// PyTorch's outputs (1e-4 relative). Families llama.cpp can run must come out fully renamed,
// with llama.cpp's architecture name and 1-D tensors in f32; the others keep their names.

import CkptCore
import Foundation
import Formats
import Quantize
import Testing
import TestSupport
import Transformer

@Suite struct GGUFFamilyTests {
    /// Fixtures whose family llama.cpp runs (LlamaCpp.architectures) and ckpt names in full.
    static let mapped: Set<String> = [
        "llama-yarn", "llama-dynamic", "llama-linear-bias", "llama-base", "mistral-swa", "qwen2-swa", "qwen3", "qwen3-base",
        "gemma", "gemma2-softcap", "gemma3-text", "phi3", "phi3-longrope", "gpt-neox", "gpt-neox-seq-base",
        "falcon-new", "falcon-mq", "stablelm", "stablelm-parallel", "olmo2", "starcoder2", "granite", "bert-gelunew", "st-bert-mean", "roberta", "distilbert", "xlm-roberta", "modernbert",
        "mixtral-top2", "qwen2-moe", "qwen3-moe",
    ]

    @Test(arguments: FamilyFixture.supported)
    func roundTripsThroughGGUF(_ f: FamilyFixture) throws {
        let dir = TempDir()
        let path = dir.file("m.gguf")
        let source = try Checkpoint.open(Repo.fixture("models/\(f.name)")).graph
        try GGUF.write(source, to: path)
        let raw = try GGUF.read(path: path)
        let kvs = try GGUFMetadata.values(of: raw)
        if Self.mapped.contains(f.name) {
            let arch = try #require(LlamaCpp.architectures[f.modelType]).name
            #expect(kvs["general.architecture"] == .string(arch), "\(f.name)")
            let foreign = raw.tensors.keys.filter { !$0.hasPrefix("blk.") && !["token_embd", "position_embd", "token_types", "token_embd_norm", "output_norm", "output", "rope_freqs", "rope_factors_long", "rope_factors_short"].contains($0.split(separator: ".").first.map(String.init) ?? "") }
            #expect(foreign.isEmpty, "\(f.name): tensors not in llama.cpp's names: \(foreign)")
            #expect(kvs["\(arch).block_count"] != nil && kvs["\(arch).embedding_length"] != nil && kvs["\(arch).attention.head_count"] != nil)
            #expect(kvs["general.quantization_version"] == .u32(2) && kvs["general.size_label"] != nil && kvs["general.name"] != nil)
        }
        for t in raw.tensors.values where t.shape.count < 2 { #expect(t.dtype == .f32, "\(f.name): \(t.name) is \(t.dtype)") }
        let graph = try Checkpoint.openModel(path)
        let (out, expected) = try runFixture(f.name, graph: graph)
        let (rel, maxAbs) = relativeError(out.values, try expected.floats("output"))
        print("\(f.name) via GGUF (\(kvs["general.architecture"].map { GGUFMetadata.text($0) } ?? "?")): max abs error \(maxAbs), relative \(rel)")
        #expect(rel <= 1e-4, "\(f.name): relative error \(rel) after GGUF")
    }

    /// ModernBERT as llama.cpp's modern-bert: fused Wqkv/Wi kept, layer 0 without attn_norm,
    /// the local layers' window (|i - j| <= local_attention / 2 = sliding_window / 2), the global
    /// period and both rope thetas, as convert_hf_to_gguf.py writes them.
    @Test func modernBertKeys() throws {
        let dir = TempDir()
        let path = dir.file("m.gguf")
        try GGUF.write(try Checkpoint.open(Repo.fixture("models/modernbert")).graph, to: path)
        let raw = try GGUF.read(path: path)
        let kvs = try GGUFMetadata.values(of: raw)
        #expect(kvs["general.architecture"] == .string("modern-bert"))
        #expect(kvs["modern-bert.attention.sliding_window"] == .u32(8) && kvs["modern-bert.attention.sliding_window_pattern"] == .u32(2))
        #expect(kvs["modern-bert.rope.freq_base"] == .f32(160_000) && kvs["modern-bert.rope.freq_base_swa"] == .f32(10_000))
        #expect(kvs["modern-bert.attention.causal"] == .bool(false))
        #expect(raw.tensors["blk.0.attn_norm.weight"] == nil && raw.tensors["blk.1.attn_norm.weight"] != nil)
        let C = 32
        #expect(raw.tensors["blk.0.attn_qkv.weight"]?.shape.last == C && raw.tensors["blk.0.attn_qkv.weight"]?.shape.first == 3 * C)
        #expect(raw.tensors["blk.0.ffn_up.weight"]?.shape.first == 2 * (kvs["modern-bert.feed_forward_length"]?.intValue ?? 0))
        // A norm bias llama.cpp's modern-bert cannot hold: warned, Hugging Face names kept.
        var g = try Checkpoint.open(Repo.fixture("models/modernbert")).graph
        var config = try #require(g.config)
        config.json["norm_bias"] = .bool(true)
        g.config = config
        let plan = LlamaCpp.plan(try LlamaCpp.describeNames(g), config: config)
        #expect(plan.arch == nil && plan.warnings.contains { $0.contains("no biases") })
    }

    /// Experts stacked per layer as llama.cpp's converter writes them ([E, I, C] gate/up,
    /// [E, C, I] down), with the expert keys; the router in f32; per-head norms stacked too.
    @Test func expertsAndPerHeadNormsAreStacked() throws {
        let dir = TempDir()
        for (name, E, k) in [("mixtral-top2", 4, 2), ("qwen2-moe", 4, 2), ("qwen3-moe", 4, 2)] {
            let source = try Checkpoint.open(Repo.fixture("models/\(name)")).graph
            var cast = WeightGraph()
            cast.config = source.config
            for t in source.tensors.values { try cast.add(t.dtype == .f32 ? Cast.lazyCast(t, to: .f16) : t) }
            let path = dir.file("\(name).gguf")
            try GGUF.write(cast, to: path)
            let raw = try GGUF.read(path: path)
            let kvs = try GGUFMetadata.values(of: raw)
            let arch = try #require(kvs["general.architecture"]?.stringValue)
            #expect(kvs["\(arch).expert_count"] == .u32(UInt32(E)) && kvs["\(arch).expert_used_count"] == .u32(UInt32(k)), "\(name)")
            let C = try #require(source.config?.hiddenSize)
            let gate = try #require(raw.tensors["blk.0.ffn_gate_exps.weight"], "\(name)")
            let down = try #require(raw.tensors["blk.0.ffn_down_exps.weight"], "\(name)")
            #expect(gate.shape.count == 3 && gate.shape[0] == E && gate.shape[2] == C && down.shape == [E, C, gate.shape[1]], "\(name)")
            #expect(raw.tensors["blk.0.ffn_gate_inp.weight"]?.dtype == .f32, "\(name): router")
            #expect(gate.dtype == .f16)
            // Slice e of the stack is expert e.
            let expert1 = try #require(source.tensors.values.first { $0.name.contains("layers.0.") && $0.name.contains("experts.1.") && ($0.name.hasSuffix("w1.weight") || $0.name.hasSuffix("gate_proj.weight")) })
            let half = try Cast.lazyCast(expert1, to: .f16).data.load()
            let stacked = try gate.data.load()
            #expect(Array(stacked[half.count..<(2 * half.count)]) == half, "\(name)")
        }
        // qwen2-moe's dense layer 1 keeps ffn_gate/up/down.
        let q = try GGUF.read(path: dir.file("qwen2-moe.gguf"))
        #expect(q.tensors["blk.1.ffn_up.weight"] != nil && q.tensors["blk.0.ffn_up_shexp.weight"] != nil && q.tensors["blk.0.ffn_gate_inp_shexp.weight"] != nil)
        // StableLM 2's per-head q/k LayerNorms: one [heads, head_dim] tensor each.
        let s = try Checkpoint.open(Repo.fixture("models/stablelm")).graph
        var s16 = WeightGraph()
        s16.config = s.config
        for t in s.tensors.values { try s16.add(t.dtype == .f32 ? Cast.lazyCast(t, to: .f16) : t) }
        try GGUF.write(s16, to: dir.file("s.gguf"))
        let sr = try GGUF.read(path: dir.file("s.gguf"))
        let heads = try #require(s.config?.numHeads), hs = try #require(s.config?.hiddenSize) / heads
        #expect(sr.tensors["blk.0.attn_q_norm.weight"]?.shape == [heads, hs], "\(sr.tensors.keys.sorted())")
        // Norms stay f32 in an f16 file (llama.cpp aborts on f16 norms), stacked ones too.
        #expect(sr.tensors["blk.0.attn_q_norm.weight"]?.dtype == .f32)
    }

    /// A Mixtral GGUF as llama.cpp's converter writes it (no ckpt.hf_names / hf_config): the
    /// config is rebuilt from the keys, the stacked experts split back, and the forward pass
    /// equals PyTorch's.
    @Test func mixtralFromElsewhereReadsBack() throws {
        let dir = TempDir()
        let path = dir.file("m.gguf")
        try GGUF.write(try Checkpoint.open(Repo.fixture("models/mixtral-top2")).graph, to: path)
        var raw = try GGUF.read(path: path)
        raw.metadata.removeValue(forKey: GGUFNaming.hfNamesKey)
        raw.metadata.removeValue(forKey: GGUFNaming.hfConfigKey)
        raw.config = nil
        let graph = try GGUFNaming.toHF(raw)
        #expect(graph.config?.modelType == "mixtral")
        #expect(graph.tensors["model.layers.1.block_sparse_moe.experts.3.w2.weight"] != nil)
        let (out, expected) = try runFixture("mixtral-top2", graph: graph)
        let (rel, _) = relativeError(out.values, try expected.floats("output"))
        #expect(rel <= 1e-4, "relative error \(rel)")
    }

    /// f16 / bf16 checkpoints keep their norms and biases in f32 (llama.cpp aborts otherwise).
    @Test func halfPrecisionNormsAreF32() throws {
        let dir = TempDir()
        var g = try Checkpoint.open(Repo.fixture("models/qwen2-swa")).graph
        for t in g.tensors.values { try g.replace(Cast.cast(t, to: .bf16)) }
        try GGUF.write(g, to: dir.file("h.gguf"))
        let raw = try GGUF.read(path: dir.file("h.gguf"))
        for t in raw.tensors.values {
            #expect(t.dtype == (t.shape.count < 2 ? .f32 : .bf16), "\(t.name): \(t.dtype)")
        }
    }

    /// RoBERTa as llama.cpp's bert: the position rows before padding_idx + 1 dropped (the
    /// round trip above puts them back as zeros), position/token-type tables in f32, and the
    /// token type count llama.cpp's bert requires.
    @Test func robertaPositionsStartAtZero() throws {
        let dir = TempDir()
        var source = try Checkpoint.open(Repo.fixture("models/roberta")).graph
        for t in source.tensors.values { try source.replace(Cast.cast(t, to: .f16)) }
        try GGUF.write(source, to: dir.file("r.gguf"))
        let raw = try GGUF.read(path: dir.file("r.gguf"))
        let kvs = try GGUFMetadata.values(of: raw)
        #expect(kvs["general.architecture"] == .string("bert"))
        #expect(kvs["tokenizer.ggml.token_type_count"] == .u32(1))
        let hf = try #require(source.tensors["embeddings.position_embeddings.weight"] ?? source.tensors["roberta.embeddings.position_embeddings.weight"])
        let pos = try #require(raw.tensors["position_embd.weight"])
        let pad = try #require(source.config?["pad_token_id"]?.intValue)
        #expect(pos.shape == [hf.shape[0] - pad - 1, hf.shape[1]] && pos.dtype == .f32)
        #expect(raw.tensors["token_types.weight"]?.dtype == .f32)
        let a = try #require(try Cast.floats(hf)), b = try #require(try Cast.floats(pos))
        #expect(Array(a[((pad + 1) * hf.shape[1])...]) == b)
        #expect(kvs["bert.context_length"] == .u32(UInt32(hf.shape[0] - pad - 1)))
    }

    /// The q/k permutation for LLaMA's rotary, and Gemma's 1 + w, as llama.cpp's converter writes them.
    @Test func llamaAndGemmaRearrangements() throws {
        let dir = TempDir()
        for (name, arch) in [("llama-yarn", "llama"), ("gemma", "gemma")] {
            let source = try Checkpoint.open(Repo.fixture("models/\(name)")).graph
            try GGUF.write(source, to: dir.file("\(name).gguf"))
            let raw = try GGUF.read(path: dir.file("\(name).gguf"))
            #expect(raw.metadata["general.architecture"] == arch)
            if arch == "llama" {
                let q = try #require(source.tensors["model.layers.0.self_attn.q_proj.weight"])
                let gq = try #require(raw.tensors["blk.0.attn_q.weight"])
                let hf = try #require(try Cast.floats(q)), gg = try #require(try Cast.floats(gq))
                let heads = try #require(source.config?.numHeads), rows = q.shape
                let hs = rows[0] / heads, cols = rows[1]
                // GGUF row 1 of head 0 is Hugging Face row hs/2.
                #expect(Array(gg[cols..<2 * cols]) == Array(hf[(hs / 2) * cols..<(hs / 2 + 1) * cols]))
            } else {
                let n = try #require(source.tensors["model.norm.weight"]), gn = try #require(raw.tensors["output_norm.weight"])
                let hf = try #require(try Cast.floats(n)), gg = try #require(try Cast.floats(gn))
                #expect(zip(hf, gg).allSatisfy { $1 == $0 + 1 })
            }
        }
    }
}

func runFixture(_ name: String, graph: WeightGraph) throws -> (ForwardOutput, Expected) {
    let expected = try Expected(Repo.fixture("models/\(name).expected.safetensors"))
    let model = try Transformers.load(graph)
    let input: ModelInput
    if let shape = expected.tensors["input"]?.shape {
        input = .vectors(try expected.floats("input"), rows: shape[0])
    } else {
        input = .tokens(try expected.ints("tokens"))
    }
    return (try model.forward(input, collectHidden: false), expected)
}

import CkptCore
import Foundation
import Formats
import Pipeline
@testable import Prune
import Quantize
import Testing
import TestSupport
import Transformer

func model(_ name: String) throws -> WeightGraph { try Checkpoint.open(Repo.fixture("models/\(name)")).graph }

func floatsOf(_ g: WeightGraph, _ name: String) throws -> [Float] {
    let t = try #require(g.tensors[name])
    return try #require(try Cast.floats(t))
}

func logits(_ g: WeightGraph, _ tokens: [Int]) throws -> [Float] {
    try Transformers.load(g).forward(.tokens(tokens), collectHidden: false).values
}

func maxRelDiff(_ a: [Float], _ b: [Float]) -> Double {
    let scale = b.map { Double(abs($0)) }.max() ?? 1
    return (zip(a, b).map { Double(abs($0 - $1)) }.max() ?? 0) / scale
}

let someTokens = [5, 17, 3, 90, 42, 0, 61, 64, 8, 1]

@Suite struct StructuredPruningTests {
    @Test func halfTheGPT2MLPNeuronsGivesAConsistentSmallerModel() throws {
        let source = try model("gpt2-a")
        var o = PruneOptions()
        o.intermediate = 64
        let result = try Pruner.prune(source, o)
        let (pruned, report) = (result.graph, result.report)
        #expect(pruned.config?["n_inner"]?.intValue == 64)
        for i in 0..<2 {
            #expect(pruned.tensors["transformer.h.\(i).mlp.c_fc.weight"]?.shape == [32, 64])
            #expect(pruned.tensors["transformer.h.\(i).mlp.c_fc.bias"]?.shape == [64])
            #expect(pruned.tensors["transformer.h.\(i).mlp.c_proj.weight"]?.shape == [64, 32])
        }
        #expect(report.bytesAfter < report.bytesBefore && pruned.byteCount == report.bytesAfter)
        #expect(try logits(pruned, someTokens).count == someTokens.count * 96)
        // Written and read back, it still runs.
        let dir = TempDir()
        try Checkpoint.write(pruned, to: dir.file("out"), format: .safetensors, directory: true)
        #expect(try logits(Checkpoint.open(dir.file("out")).graph, someTokens) == logits(pruned, someTokens))
    }

    /// Removing a unit is the same function as zeroing its contribution to the output
    /// projection: an independent check that every slice is consistent.
    @Test func removingAHeadOrNeuronEqualsZeroingItsOutput() throws {
        let source = try model("gpt2-a")
        // GPT-2 heads: refused up front (the head size is n_embd / n_head in transformers, and
        // transformers 5 ignores pruned_heads). Heads of a multi-head LLaMA (each head its own
        // key/value group): removing them equals zeroing their columns of o_proj.
        var refused = PruneOptions()
        refused.dropHeads = [0: [1], 1: [3]]
        #expect(throws: PruneError.self) { try Pruner.prune(source, refused) }
        let mha = try model("llama-mha-tied")  // 8 heads of 8, C = 64
        var o = PruneOptions()
        // transformers' LlamaConfig refuses a head count that does not divide hidden_size.
        o.dropHeads = [0: [1, 6], 1: [0, 3]]
        #expect(throws: PruneError.self) { try Pruner.prune(mha, o) }
        o.dropHeads = [0: [1, 2, 5, 6], 1: [0, 3, 4, 7]]
        let result = try Pruner.prune(mha, o)
        let (noHeads, _) = (result.graph, result.report)
        #expect(noHeads.config?.numHeads == 4 && noHeads.config?["num_key_value_heads"]?.intValue == 4)
        var zeroed = mha
        for (layer, heads) in [(0, [1, 2, 5, 6]), (1, [0, 3, 4, 7])] {
            let name = "model.layers.\(layer).self_attn.o_proj.weight"  // [C, NH·hs]: columns are the attention width
            var mask = [Bool](repeating: false, count: 64 * 64)
            for h in heads { for r in 0..<64 { for c in h * 8..<(h + 1) * 8 { mask[r * 64 + c] = true } } }
            try zeroed.replace(Slicing.zeroing(zeroed.tensors[name]!, mask: mask))
        }
        let few = [5, 17, 3, 9, 42, 0, 61, 64, 8, 1]  // vocabulary 90
        #expect(maxRelDiff(try logits(noHeads, few), try logits(zeroed, few)) < 1e-5)

        var n = PruneOptions()
        n.intermediate = 100
        let narrowed = try Pruner.prune(source, n)
        let (narrow, _) = (narrowed.graph, narrowed.report)
        // Which neurons survived: match the pruned c_fc bias values back to the original.
        var zeroedMLP = source
        for layer in 0..<2 {
            let keptBias = try floatsOf(narrow, "transformer.h.\(layer).mlp.c_fc.bias")
            let allBias = try floatsOf(source, "transformer.h.\(layer).mlp.c_fc.bias")
            let kept = Set(keptBias.map { b in allBias.firstIndex(of: b)! })
            #expect(kept.count == 100)
            var mask = [Bool](repeating: false, count: 128 * 32)
            for r in 0..<128 where !kept.contains(r) { for c in 0..<32 { mask[r * 32 + c] = true } }
            let name = "transformer.h.\(layer).mlp.c_proj.weight"
            try zeroedMLP.replace(Slicing.zeroing(zeroedMLP.tensors[name]!, mask: mask))
        }
        #expect(maxRelDiff(try logits(narrow, someTokens), try logits(zeroedMLP, someTokens)) < 1e-5)
    }

    @Test func llamaHeadsGoInWholeGroups() throws {
        var o = PruneOptions()
        o.headsPerLayer = 2
        let result = try Pruner.prune(try model("llama-gqa"), o)
        let (pruned, _) = (result.graph, result.report)
        #expect(pruned.config?.numHeads == 2 && pruned.config?.numKeyValueHeads == 1)
        o.headsPerLayer = 1
        #expect(throws: PruneError.self) { try Pruner.prune(try model("llama-gqa"), o) }
        var bad = PruneOptions()
        bad.dropHeads = [0: [1, 2], 1: [0, 1]]  // heads 1 and 2 straddle two groups
        #expect(throws: PruneError.self) { try Pruner.prune(try model("llama-gqa"), bad) }
    }

    @Test func droppingLayersRenumbersTheRest() throws {
        let source = try model("llama-mqa-rope3")
        var o = PruneOptions()
        o.dropLayers = [0]
        let result = try Pruner.prune(source, o)
        let (pruned, report) = (result.graph, result.report)
        #expect(report.droppedLayers == [0])
        #expect(pruned.config?.numLayers == 2)
        #expect(try pruned.tensors["model.layers.0.mlp.up_proj.weight"]!.data.load() == source.tensors["model.layers.1.mlp.up_proj.weight"]!.data.load())
        #expect(pruned.tensors["model.layers.2.mlp.up_proj.weight"] == nil)
        #expect(try logits(pruned, [1, 2, 3]).count == 3 * 70)
    }

    @Test func activationImportanceNeedsCalibrationAndPicksLayersByInfluence() throws {
        let source = try model("bert-a")
        var o = PruneOptions()
        o.dropLayerCount = 1
        #expect(throws: PruneError.self) { try Pruner.prune(source, o) }
        o.calibration = try Verifier.randomInputs(for: source, count: 2, length: 16, seed: 0)
        o.importance = .activation
        o.intermediate = 40
        let result = try Pruner.prune(source, o)
        let (pruned, report) = (result.graph, result.report)
        #expect(report.droppedLayers.count == 1 && pruned.config?.numLayers == 1)
        #expect(pruned.config?["intermediate_size"]?.intValue == 40)
        _ = try Transformers.load(pruned).forward(.tokens([1, 2, 3]), collectHidden: false)
        #expect(pruned.metadata["ckpt.prune"]?.contains("activation") == true)
    }

    /// A result the family's config cannot describe is refused, not written: ModernBERT's
    /// first layer has no attention norm, so another layer cannot become layer 0.
    @Test func aResultTheConfigCannotDescribeIsRefused() throws {
        var o = PruneOptions()
        o.dropLayers = [0]
        #expect(throws: PruneError.self) { try Pruner.prune(try model("modernbert"), o) }
        o.dropLayers = [1]
        let result = try Pruner.prune(try model("modernbert"), o)
        let (pruned, _) = (result.graph, result.report)
        // The implied local/global pattern is written out for the layers that remain.
        #expect(pruned.config?["layer_types"] == .array([.string("full_attention"), .string("full_attention")]))
    }

    @Test func unknownArchitecturesAreRefusedForStructuredPruning() throws {
        var o = PruneOptions()
        o.intermediate = 4
        #expect(throws: PruneError.unsupportedArchitecture("seed_transformer")) { try Pruner.prune(try model("seed-encoder"), o) }
    }

    /// Families whose transformers code derives the head size from hidden_size / heads cannot
    /// load fewer heads; mixtures of experts are not narrowed. Each refusal is one line.
    @Test(arguments: [("gpt-neox", "heads"), ("opt-pre", "heads"), ("falcon-new", "heads"), ("bert-a", "heads"),
                      ("distilbert", "heads"), ("stablelm", "heads"), ("mixtral-top2", "neurons"), ("qwen2-moe", "neurons")])
    func refusedUnits(_ name: String, _ unit: String) throws {
        var o = PruneOptions()
        if unit == "heads" { o.dropHeads = [0: [0]] } else { o.intermediate = 8 }
        do {
            _ = try Pruner.prune(try model(name), o)
            Issue.record("\(name): \(unit) pruning was not refused")
        } catch let e as PruneError {
            #expect(!e.description.contains("\n"))
            #expect(e.description.contains(unit == "heads" ? "hidden_size / heads" : "mixture of experts"), "\(e)")
        }
    }
}

/// ckpt's structured pruning against transformers: tools/make_prune_fixtures.py slices each
/// family fixture in PyTorch by the indices recorded in the fixture's metadata, loads the result
/// with from_pretrained and records its logits; ckpt prunes with the same indices.
@Suite struct PruneAgainstTransformersTests {
    static let cases = ["llama-gqa-heads", "qwen3-heads-neurons", "gemma2-layers-neurons", "gemma3-layers-heads",
                        "phi3-heads-neurons", "olmo2-heads", "mixtral-layers-heads", "gpt-neox-layers-neurons",
                        "opt-layers-neurons", "falcon-layers-neurons", "gpt2-layers-neurons", "bert-layers-neurons",
                        "distilbert-layers-neurons", "modernbert-layers-neurons", "qwen2-heads-neurons", "mistral-heads",
                        "llama-mha-heads", "granite-layers-heads", "starcoder2-layers-neurons"]

    @Test(arguments: cases)
    func matchesTransformers(_ name: String) throws {
        let expected = try Safetensors.read(path: Repo.fixture("prune/\(name).expected.safetensors"))
        let meta = expected.metadata
        let tb = try expected.tensors["tokens"]!.data.load()
        let tokens = (0..<tb.count / 8).map { Int(tb[$0 * 8]) }
        var o = PruneOptions()
        if let d = meta["drop_layers"], !d.isEmpty { o.dropLayers = d.split(separator: ",").map { Int($0)! } }
        if let h = meta["drop_heads"], !h.isEmpty { o.dropHeads = PruneOptions.parseDropHeads(h) }
        if let n = meta["keep_neurons"], let obj = try JSONValue.parse(n).objectValue, !obj.isEmpty {
            o.keepNeurons = Dictionary(uniqueKeysWithValues: obj.map { (Int($0.key)!, $0.value.arrayValue!.compactMap(\.intValue)) })
        }
        let source = try #require(meta["model"])
        let result = try Pruner.prune(try model(source), o)
        let (pruned, _) = (result.graph, result.report)
        // The written config has the sizes transformers was given.
        let configText = try #require(meta["config"])
        let changes = try #require(try JSONValue.parse(configText).objectValue)
        for (key, value) in changes { #expect(pruned.config?[key] == value, "\(name): config \(key)") }
        // Written and read back as a directory, as a user would hand it to transformers.
        let dir = TempDir()
        try Checkpoint.write(pruned, to: dir.file("out"), format: .safetensors, directory: true)
        let reread = try Checkpoint.open(dir.file("out")).graph
        let rel = maxRelDiff(try logits(reread, tokens), try floatsOf(expected, "output"))
        print("prune \(name) vs transformers: max relative error \(rel)")
        #expect(rel < 1e-4)
    }
}

@Suite struct SparsityTests {
    @Test(arguments: ["gpt2-a", "llama-gqa"])
    func twoFourKeepsExactlyTwoOfEveryFourAlongTheInput(_ name: String) throws {
        for importance in PruneOptions.Importance.allCases {
            let source = try model(name)
            var o = PruneOptions()
            o.nm = (2, 4)
            o.importance = importance
            o.calibration = try Verifier.randomInputs(for: source, count: 2, length: 8, seed: 1)
            let result = try Pruner.prune(source, o)
            let (pruned, report) = (result.graph, result.report)
            #expect(!report.sparsity.isEmpty)
            for tensorName in report.sparsity.keys {
                let t = try #require(pruned.tensors[tensorName])
                let w = try #require(try Cast.floats(t))
                let (rows, cols) = (t.shape[0], t.shape[1])
                let conv1D = name.hasPrefix("gpt2")  // GPT-2 stores [in, out]: the input runs down the rows
                let (outputs, inputs) = conv1D ? (cols, rows) : (rows, cols)
                for out in 0..<outputs {
                    for start in stride(from: 0, to: inputs, by: 4) {
                        let nonzero = (start..<start + 4).filter { i in w[conv1D ? i * cols + out : out * cols + i] != 0 }.count
                        #expect(nonzero == 2, "\(tensorName) output \(out) group \(start)")
                    }
                }
            }
        }
    }

    @Test func unstructuredSparsityHitsItsTarget() throws {
        let source = try model("llama-gqa")
        var o = PruneOptions()
        o.sparsity = 0.6
        o.keep = ["mlp\\.down_proj"]
        let result = try Pruner.prune(source, o)
        let (pruned, report) = (result.graph, result.report)
        for (name, s) in report.sparsity { #expect(abs(s - 0.6) < 0.01, "\(name): \(s)") }
        #expect(report.sparsity.keys.allSatisfy { !$0.contains("down_proj") })
        #expect(try pruned.tensors["model.layers.0.mlp.down_proj.weight"]!.data.load() == source.tensors["model.layers.0.mlp.down_proj.weight"]!.data.load())
        // Embeddings and the head are left alone by default.
        #expect(report.sparsity["model.embed_tokens.weight"] == nil && report.sparsity["lm_head.weight"] == nil)
        var g = PruneOptions()
        g.sparsity = 0.5
        g.globalSparsity = true
        let globalResult = try Pruner.prune(source, g)
        let (_, global) = (globalResult.graph, globalResult.report)
        let total = try global.sparsity.keys.reduce(0) { $0 + (try model("llama-gqa").tensors[$1]!.elementCount) }
        let zeros = global.sparsity.reduce(0.0) { acc, kv in acc + kv.value * Double((try? model("llama-gqa").tensors[kv.key]!.elementCount) ?? 0) }
        #expect(abs(zeros / Double(total) - 0.5) < 0.001)
    }

    @Test func wandaPrunesTheSameCountInEveryOutputRow() throws {
        let source = try model("llama-gqa")
        var o = PruneOptions()
        o.sparsity = 0.25
        o.importance = .activation
        o.calibration = try Verifier.randomInputs(for: source, count: 2, length: 16, seed: 2)
        let result = try Pruner.prune(source, o)
        let (pruned, _) = (result.graph, result.report)
        let t = try #require(pruned.tensors["model.layers.1.self_attn.q_proj.weight"])  // [48, 48]
        let w = try #require(try Cast.floats(t))
        for r in 0..<48 { #expect((0..<48).filter { w[r * 48 + $0] == 0 }.count == 12) }
    }
}

@Suite struct PruneCommandTests {
    @Test func failingVerificationWritesNothing() throws {
        let dir = TempDir()
        let r = try CkptBinary.run("prune", Repo.fixture("models/gpt2-a"), dir.file("out") + "/", "--sparsity", "0.9", "--verify",
                                   "--max-kl", "1e-9", "--json")
        #expect(r.status == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("out")))
        #expect(try JSONValue.parse(r.stdout)["written"]?.boolValue == false)
        let ok = try CkptBinary.run("prune", Repo.fixture("models/gpt2-a"), dir.file("ok") + "/", "--intermediate", "96")
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(try CkptBinary.run("forward", dir.file("ok"), "--tokens", "1,2,3").status == 0)
        let bad = try CkptBinary.run("prune", Repo.fixture("models/seed-encoder"), dir.file("x") + "/", "--heads", "1")
        #expect(bad.status == 2 && bad.stderr.contains("structured pruning of seed_transformer is not supported"))
    }
}

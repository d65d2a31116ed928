// The architecture description as its consumers see it: parameter slots that account for
// every stored tensor, prunable units, and block-by-block execution (what a streaming
// executor does) giving the same output as the whole forward pass.

import CkptCore
import Foundation
import Formats
import Testing
import TestSupport
@testable import Transformer

@Suite struct DescriptionTests {
    static let fixtures = ["gpt2-a", "gpt2-oddhead", "bert-a", "llama-gqa", "llama-mqa-rope3", "qwen2", "mistral-window", "seed-encoder"]
        + FamilyFixture.supported.map(\.name)

    @Test(arguments: fixtures)
    func slotsAccountForEveryTensor(_ name: String) throws {
        let graph = try Checkpoint.open(Repo.fixture("models/\(name)")).graph
        let d = try Transformers.describe(graph)
        let slots = d.slots()
        #expect(Set(slots.map(\.name)).count == slots.count, "\(name): a slot is listed twice")
        for s in slots where s.required { #expect(graph.tensor(named: s.name) != nil, "\(name): \(s.name)") }
        let extra = d.unusedTensors(in: graph)
        #expect(extra.isEmpty, "\(name): stored but not described: \(extra)")
        // Every block's slots are under its prefix, except parameters shared by all blocks.
        for b in d.blocks {
            for s in b.slots() where s.layer == b.index {
                #expect(s.name.hasPrefix(b.prefix) || d.modelType == "seed_transformer", "\(s.name) outside \(b.prefix)")
            }
        }
        let units = d.prunableUnits
        #expect(units.layers == d.blocks.count)
        for h in units.heads { #expect(h.heads % h.kvHeads == 0 && h.groupSize >= 1) }
    }

    @Test(arguments: ["gpt2-oddhead", "llama-gqa", "gemma2-softcap", "mixtral-top2", "bert-a"])
    func blockByBlockEqualsTheWholeForwardPass(_ name: String) throws {
        let graph = try Checkpoint.open(Repo.fixture("models/\(name)")).graph
        let model = try #require(try Transformers.load(graph) as? DescribedModel)
        let tokens = try Expected(Repo.fixture("models/\(name).expected.safetensors")).ints("tokens")
        let whole = try model.forward(.tokens(tokens), collectHidden: false)
        // Each block's weights read only when it runs.
        let weights = WeightStore(graph: graph)
        var x = try model.embed(.tokens(tokens))
        let ctx = ForwardContext(T: tokens.count, stats: nil)
        for spec in model.description.blocks {
            let block = try Block(spec: spec, weights: weights)
            try block.forward(&x, ctx)
        }
        #expect(model.finish(x).values == whole.values)
    }

    @Test func registryIsKeyedByModelType() {
        #expect(Set(Architectures.modelTypes).isSuperset(of: ["gpt2", "bert", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text",
                                                               "phi3", "gpt_neox", "opt", "seed_transformer"]))
        #expect(Architectures.family(for: "t5") == nil)
        #expect(Architectures.family(for: nil) == nil)
    }

    @Test func rolesNameWhatConsumersNeed() throws {
        let d = try Transformers.describe(try Checkpoint.open(Repo.fixture("models/llama-gqa")).graph)
        let roles = Set(d.slots().filter { $0.layer == 0 }.map(\.role))
        #expect(roles == [.attentionNorm, .query, .key, .value, .attentionOutput, .mlpNorm, .gate, .up, .down])
        let gpt2 = try Transformers.describe(try Checkpoint.open(Repo.fixture("models/gpt2-a")).graph)
        let qkv = try #require(gpt2.slots().first { $0.role == .qkv && !$0.isBias })
        #expect(qkv.name == "transformer.h.0.attn.c_attn.weight" && qkv.shape == [32, 96])  // Conv1D: [in, out]
    }
}

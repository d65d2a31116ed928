// Stored tensors the configured architecture does not read are refused (a config with fewer
// layers than the weights would otherwise run a truncated model silently), except known
// buffers; and tie_word_embeddings, when a config leaves it out, defaults per family.

import CkptCore
import Formats
import Testing
import TestSupport
@testable import Transformer

@Suite struct UnusedWeightsTests {
    func open(_ name: String) throws -> WeightGraph { try Checkpoint.open(Repo.fixture("models/\(name)")).graph }

    /// The stored tensors and config of `name`, without tie_word_embeddings and without ties.
    func withoutTieKey(_ name: String) throws -> WeightGraph {
        let source = try open(name)
        var g = WeightGraph()
        for t in source.tensors.values { try g.add(t) }
        g.config = source.config
        g.config?.json["tie_word_embeddings"] = nil
        return g
    }

    @Test func fewerLayersThanTheWeightsIsRefusedNamingTheFirstUnusedTensor() throws {
        var g = try open("llama-gqa")
        g.config?.json["num_hidden_layers"] = .int(1)
        do {
            _ = try Transformers.load(g)
            Issue.record("a config with fewer layers than the weights was accepted")
        } catch let e as TransformerError {
            guard case .unusedTensor(let name, _, let layers) = e else { Issue.record("\(e)"); return }
            #expect(name.hasPrefix("model.layers.1.") && layers == 1)
            #expect(e.description.contains("--allow-unused") && !e.description.contains("\n"))
        }
        let model = try Transformers.load(g, allowUnused: true)
        #expect(model.layerCount == 1)
    }

    @Test func anUnknownTensorIsRefusedAndBuffersAreNot() throws {
        var g = try open("llama-gqa")
        try g.add(Tensor(name: "model.layers.0.self_attn.rotary_emb.inv_freq", dtype: .f32, shape: [6], data: .owned([UInt8](repeating: 0, count: 24))))
        _ = try Transformers.load(g)  // a rotary buffer is not a weight
        try g.add(Tensor(name: "model.extra.weight", dtype: .f32, shape: [2], data: .owned([UInt8](repeating: 0, count: 8))))
        #expect(throws: TransformerError.unusedTensor("model.extra.weight", modelType: "llama", layers: 2)) { try Transformers.load(g) }
        // BERT's pooler is not part of the last hidden state: exempt for BERT.
        let bert = try open("bert-a")
        #expect(bert.tensors.keys.contains { $0.contains("pooler.") })
        _ = try Transformers.load(bert)
    }

    @Test func tieDefaultsComeFromTheFamily() throws {
        // LLaMA's config class defaults tie_word_embeddings to false: without the key and
        // without lm_head, the head is missing. Gemma's defaults to true.
        let tokens = [1, 2, 3]
        _ = try Transformers.load(try open("llama-mha-tied")).forward(.tokens(tokens), collectHidden: false)
        let llama = try withoutTieKey("llama-mha-tied")
        #expect(throws: TransformerError.missingTensor("lm_head.weight")) { try Transformers.load(llama) }
        let want = try Transformers.load(try open("gemma")).forward(.tokens(tokens), collectHidden: false).values
        let gemma = try withoutTieKey("gemma")
        #expect(try Transformers.load(gemma).forward(.tokens(tokens), collectHidden: false).values == want)
    }
}

// Hostile model configs (issue 19): every size is validated against the architecture's rules
// and the tensors present before anything is allocated from it; each refusal is
// TransformerError.invalidConfig (one line, exit 2 from the CLI), never a trap, a huge
// allocation or NaN logits.

import CkptCore
import Foundation
import Formats
import Testing
import TestSupport
import Transformer

@Suite struct ConfigValidationTests {
    /// The fixture's graph with `edit` applied to its config.json.
    func load(_ name: String, _ edit: (inout [String: Any]) -> Void) throws -> any TransformerModel {
        var graph = try Checkpoint.open(Repo.fixture("models/\(name)")).graph
        let data = try Data(contentsOf: URL(fileURLWithPath: Repo.fixture("models/\(name)/config.json")))
        var json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        edit(&json)
        graph.config = try ModelConfig(jsonBytes: Array(try JSONSerialization.data(withJSONObject: json)))
        return try Transformers.load(graph)
    }

    func expectInvalid(_ name: String, mentioning key: String, _ edit: (inout [String: Any]) -> Void) {
        do {
            _ = try load(name, edit)
            Issue.record("\(name): config accepted, expected a refusal naming \(key)")
        } catch let e as TransformerError {
            guard case .invalidConfig(let message) = e else { Issue.record("\(name): \(e), expected invalidConfig"); return }
            #expect(message.contains(key), "\(message)")
            #expect(!e.description.contains("\n"))
        } catch {
            Issue.record("\(name): \(error)")
        }
    }

    @Test func negativeSlidingWindow() {
        expectInvalid("mistral-window", mentioning: "sliding_window") { $0["sliding_window"] = -3 }
    }

    @Test func hiddenSizeNearTwoToThe62() {
        expectInvalid("gpt2-a", mentioning: "n_embd") { $0["n_embd"] = 1 << 62 }
        expectInvalid("llama-gqa", mentioning: "hidden_size") { $0["hidden_size"] = (1 << 62) + 4 }
    }

    @Test func headsTimesHeadDimOverflow() {
        expectInvalid("llama-gqa", mentioning: "head_dim") { $0["head_dim"] = 1 << 61 }
        // Each factor fits, the product does not.
        expectInvalid("llama-gqa", mentioning: "num_attention_heads × head_dim") { $0["num_attention_heads"] = 1 << 20; $0["num_key_value_heads"] = 1 << 20; $0["head_dim"] = 1 << 20 }
    }

    @Test func absurdLayerCounts() {
        expectInvalid("llama-gqa", mentioning: "num_hidden_layers") { $0["num_hidden_layers"] = 1_000_000_000 }
        expectInvalid("llama-gqa", mentioning: "num_hidden_layers") { $0["num_hidden_layers"] = Int.max }
        expectInvalid("gpt2-a", mentioning: "n_layer") { $0["n_layer"] = 0 }
        expectInvalid("bert-a", mentioning: "num_hidden_layers") { $0["num_hidden_layers"] = -1 }
    }

    @Test func absurdExpertCounts() {
        expectInvalid("mixtral-top2", mentioning: "num_local_experts") { $0["num_local_experts"] = 1_000_000_000 }
        expectInvalid("mixtral-top2", mentioning: "num_experts_per_tok") { $0["num_experts_per_tok"] = 5 }
        expectInvalid("qwen2-moe", mentioning: "num_experts") { $0["num_experts"] = 0 }
    }

    @Test func layerCountBeyondTheTensorsIsAMissingTensor() throws {
        // Plausible but wrong: one more layer than stored names the first missing tensor.
        #expect(throws: TransformerError.missingTensor("model.layers.2.input_layernorm.weight")) {
            try load("llama-gqa") { $0["num_hidden_layers"] = 3 }
        }
    }

    @Test func hugeHeadDim() {
        expectInvalid("llama-gqa", mentioning: "head_dim") { $0["head_dim"] = 1 << 40 }
        // 2·10⁹ fits 32 bits on its own; with 4 heads it does not, and nothing is allocated.
        expectInvalid("llama-gqa", mentioning: "head_dim") { $0["head_dim"] = 2_000_000_000 }
    }

    @Test func headDimDisagreeingWithTheTensorsCostsNothing() throws {
        // One head of 2·10⁹: sizes fit, the tensors do not; refused before the rotary table.
        #expect(throws: TransformerError.self) {
            try load("llama-gqa") { $0["num_attention_heads"] = 1; $0["num_key_value_heads"] = 1; $0["head_dim"] = 2_000_000_000 }
        }
    }

    @Test func nonPositiveRopeTheta() {
        expectInvalid("llama-gqa", mentioning: "rope_theta") { $0["rope_parameters"] = ["rope_type": "default", "rope_theta": -1] }
        expectInvalid("llama-gqa", mentioning: "rope_theta") { $0["rope_parameters"] = nil; $0["rope_theta"] = 0 }
    }

    @Test func zeroLlama3Factor() {
        expectInvalid("llama-mqa-rope3", mentioning: "factor") { json in
            var p = json["rope_parameters"] as! [String: Any]
            p["factor"] = 0
            json["rope_parameters"] = p
        }
    }

    @Test func negativeEpsilon() {
        expectInvalid("llama-gqa", mentioning: "rms_norm_eps") { $0["rms_norm_eps"] = -1e-6 }
        expectInvalid("gpt2-a", mentioning: "layer_norm_epsilon") { $0["layer_norm_epsilon"] = -1 }
        expectInvalid("bert-a", mentioning: "layer_norm_eps") { $0["layer_norm_eps"] = -1e-12 }
    }

    @Test func zeroWhereItDivides() {
        expectInvalid("gpt2-a", mentioning: "n_head") { $0["n_head"] = 0 }
        expectInvalid("llama-gqa", mentioning: "num_key_value_heads") { $0["num_key_value_heads"] = 0 }
        expectInvalid("bert-a", mentioning: "num_attention_heads") { $0["num_attention_heads"] = -4 }
    }

    @Test func unsupportedComputationIsRefusedByName() {
        expectInvalid("llama-gqa", mentioning: "rope type") { $0["rope_parameters"] = ["rope_type": "mrope", "rope_theta": 10000] }
        expectInvalid("bert-a", mentioning: "position_embedding_type") { $0["position_embedding_type"] = "relative_key" }
        expectInvalid("gpt2-a", mentioning: "scale_attn_by_inverse_layer_idx") { $0["scale_attn_by_inverse_layer_idx"] = true }
        expectInvalid("llama-gqa", mentioning: "hidden_act") { $0["hidden_act"] = "mish" }
    }

    @Test func cliRefusesAHostileConfigWithExitTwo() throws {
        let dir = TempDir()
        var json = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: Repo.fixture("models/mistral-window/config.json")))) as? [String: Any])
        json["sliding_window"] = -3
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir.file("config.json")))
        let r = try CkptBinary.run("forward", Repo.fixture("models/mistral-window"), "--config", dir.file("config.json"), "--tokens", "1,2,3")
        #expect(r.status == 2)
        #expect(r.stderr.contains("sliding_window"), "\(r.stderr)")
        #expect(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(r.stderr)")
    }
}

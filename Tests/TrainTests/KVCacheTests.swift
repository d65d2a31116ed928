// The key/value cache of teacher sampling against the full forward: every position's logits from
// one-token decode steps equal the full forward's within 1e-5 relative on each family training
// loads, and sampling through the cache writes the same tokens as the full-prefix path.

import CkptCore
import Formats
import Foundation
import Testing
import TestSupport
import Transformer
@testable import Train

@Suite struct KVCacheTests {
    static func ids(_ V: Int, B: Int, T: Int) -> [Int] {
        var rng = SplitMix64(seed: 11)
        return (0..<B * T).map { _ in rng.next(below: V) }
    }

    @Test(arguments: ["gpt2-a", "llama-gqa", "llama-mha-tied", "llama-mqa-rope3", "llama-yarn", "llama-linear-bias",
                      "qwen2", "gpt2-teacher4", "llama-teacher4"])
    func decodeStepsMatchTheFullForward(_ name: String) throws {
        let m = try TrainModel(graph: try Checkpoint.open(Repo.fixture("models/\(name)")).graph)
        let B = 2, T = min(12, m.shape.maxT), V = m.shape.V
        #expect(m.canCache(T: T))
        let ids = Self.ids(V, B: B, T: T)
        let full = m.forward(ids: ids, B: B, T: T).logits.slice(0, B * T * V)
        let cache = m.makeCache(B: B, capacity: T)
        var worst = 0.0
        for t in 0..<T {
            let step = m.decode((0..<B).map { ids[$0 * T + t] }, cache: cache)
            for b in 0..<B {
                let ref = Array(full[(b * T + t) * V..<(b * T + t + 1) * V])
                let scale = Double(ref.map { abs($0) }.max()!)
                let diff = (0..<V).map { Double(abs(step[b * V + $0] - ref[$0])) }.max()!
                worst = max(worst, diff / max(scale, 1e-30))
            }
        }
        #expect(worst <= 1e-5, "\(name): worst relative difference \(worst)")
    }

    @Test(arguments: ["gpt2-teacher4", "llama-teacher4"])
    func cachedSamplingWritesTheSameTokens(_ name: String) throws {
        let m = try TrainModel(graph: try Checkpoint.open(Repo.fixture("models/\(name)")).graph)
        var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42)
        let cached = TokenData.sample(m, count: 5, T: 24, prompt: 2, rng: &a)
        let full = TokenData.sample(m, count: 5, T: 24, prompt: 2, rng: &b, fullPrefix: true)
        #expect(cached == full)
        #expect(cached.allSatisfy { $0.count == 24 })
    }

    /// Dynamic NTK scaling past the original context changes every position's angles with the
    /// length: the cache would not be exact, so sampling runs the full prefix instead.
    @Test func lengthDependentRopeFallsBackToTheFullPrefix() throws {
        let m = try TrainModel(graph: try Checkpoint.open(Repo.fixture("models/llama-dynamic")).graph)
        guard case .dynamic(_, let original)? = m.blocks.first?.rope?.scaling else { Issue.record("not dynamic"); return }
        #expect(m.canCache(T: original))
        #expect(!m.canCache(T: original + 1))
    }

    /// Sliding windows and soft-capping are refused by training, so no windowed teacher reaches
    /// the cache (which implements plain causal attention).
    @Test func windowedModelsAreNotTeachers() throws {
        #expect(throws: TrainError.self) { try TrainModel(graph: try Checkpoint.open(Repo.fixture("models/mistral-window")).graph) }
    }
}

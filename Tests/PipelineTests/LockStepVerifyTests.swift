// verify streamed (reference and candidate in lock step, block by block) reports exactly what
// verify in memory reports: the same outputs, metrics and per-layer drift.

import CkptCore
import Foundation
import Formats
import Pipeline
import Quantize
import Testing
import TestSupport
import Transformer

@Suite struct LockStepVerifyTests {
    func graph(_ name: String) throws -> WeightGraph { try Checkpoint.open(Repo.fixture("models/\(name)")).graph }

    @Test(arguments: ["llama-gqa", "gpt2-a", "bert-a", "mixtral-top2", "seed-encoder"])
    func streamedEqualsInMemory(_ name: String) throws {
        let ref = try graph(name)
        var cand = ref
        try Conversion.cast(&cand, to: .bf16)
        let inputs = try Verifier.randomInputs(for: ref, count: 3, length: 11, seed: 5)
        let a = try Verifier.run(reference: ref, candidate: cand, inputs: inputs, gates: Gates.preset("bf16")!,
                                 execution: ExecutionOptions(execution: .inMemory))
        let b = try Verifier.run(reference: ref, candidate: cand, inputs: inputs, gates: Gates.preset("bf16")!,
                                 execution: ExecutionOptions(execution: .streamed))
        #expect(a.execution == .inMemory && b.execution == .streamed)
        #expect(a.overall.maxAbs > 0, "\(name): the bf16 candidate should differ a little")
        #expect(a.sequences == b.sequences)
        #expect(a.overall == b.overall)
        #expect(a.layerDrift == b.layerDrift && a.layerDrift?.isEmpty == false)
        #expect(a.gates == b.gates)
        #expect((b.peakMemory ?? 0) > 0)
    }

    /// Different depths (a layer-pruned candidate): no drift, outputs still compared.
    @Test func differentDepthsRunInLockStepToo() throws {
        let ref = try graph("llama-gqa")
        var cand = ref
        cand.config?.json["num_hidden_layers"] = .int(1)
        for name in Array(cand.tensors.keys) where name.hasPrefix("model.layers.1.") { cand.remove(name) }
        let inputs = try Verifier.randomInputs(for: ref, count: 2, length: 7, seed: 1)
        let a = try Verifier.run(reference: ref, candidate: cand, inputs: inputs, gates: Gates(), execution: ExecutionOptions(execution: .inMemory))
        let b = try Verifier.run(reference: ref, candidate: cand, inputs: inputs, gates: Gates(), execution: ExecutionOptions(execution: .streamed))
        #expect(a.layerDrift == nil && b.layerDrift == nil)
        #expect(a.sequences == b.sequences && a.overall.maxAbs > 0)
    }
}

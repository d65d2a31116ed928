// The whole GPT-2 backward pass against PyTorch autograd (tools/make_train_fixtures.py), and the
// training forward pass against the reference forward pass of Sources/Transformer.

import CkptCore
import Formats
import Foundation
import Quantize
import Testing
import TestSupport
import Transformer
@testable import Train

func floats(_ g: WeightGraph, _ name: String) throws -> [Float] {
    let t = try #require(g.tensors[name], "\(name) missing")
    return try #require(try Cast.floats(t))
}

func int64s(_ g: WeightGraph, _ name: String) throws -> [Int] {
    let t = try #require(g.tensors[name])
    let bytes = try t.data.load()
    return (0..<t.elementCount).map { i in
        Int(Int64(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[i * 8 + $1]) << (8 * UInt64($1)) }))
    }
}

/// max |a - b| / max |b|, the measure the issue bounds by 1e-4.
func relativeError(_ got: [Float], _ want: [Float]) -> Double {
    let diff = zip(got, want).map { Double(abs($0 - $1)) }.max() ?? 0
    return diff / max(want.map { Double(abs($0)) }.max() ?? 0, 1e-30)
}

@Suite struct GPT2GradientTests {
    init() { singleThreadedBLAS }

    @Test func everyParameterGradientMatchesPyTorchAutograd() throws {
        let fx = try Safetensors.read(path: Repo.fixture("train/gpt2-a-grads.safetensors"))
        let model = try GPT2Train(graph: try Checkpoint.open(Repo.fixture("models/gpt2-a")).graph)
        let s = model.shape
        let tokens = try int64s(fx, "tokens")
        let B = 2, T = 8, N = B * T
        let tau = try #require(Float(fx.metadata["tau"] ?? "")), alpha = try #require(Float(fx.metadata["alpha"] ?? ""))
        let teacherLogits = FloatBuffer(try floats(fx, "teacher_logits"))

        let a = model.forward(ids: tokens, B: B, T: T)
        let d = model.beginBackward()
        var loss = TrainKernels.distillationLoss(dlogits: d.logits.p, student: a.logits.p, teacher: teacherLogits.p,
                                                 N: N, V: s.V, tau: tau)
        var targets: [FloatBuffer] = []
        for l in 0..<s.L {
            targets.append(FloatBuffer(try floats(fx, "hidden_target.\(l)")))
            loss += TrainKernels.meanSquaredError(dh: d.blocks[l].res3.p, h: a.blocks[l].res3.p, target: targets[l].p,
                                                  count: N * s.C, weight: alpha / Float(s.L))
        }
        model.backward(ids: tokens, B: B, T: T)
        withExtendedLifetime((teacherLogits, targets)) {}  // their pointers were used above

        let wantLoss = Double(try floats(fx, "loss")[0])
        #expect(abs(loss - wantLoss) / wantLoss < 1e-5, "loss \(loss) vs PyTorch \(wantLoss)")
        var worst = 0.0
        for slot in model.layout.slots {
            let got = try #require(model.gradient(slot.name))
            let want = try floats(fx, "grad." + slot.name)
            let err = relativeError(got, want)
            worst = max(worst, err)
            #expect(err < 1e-4, "\(slot.name): relative error \(err)")
        }
        print("GPT-2 gradients vs PyTorch autograd (float64): worst relative error \(worst) over \(model.layout.slots.count) tensors")
    }

    @Test func trainingForwardMatchesTheReferenceForward() throws {
        let graph = try Checkpoint.open(Repo.fixture("models/gpt2-oddhead")).graph
        let model = try GPT2Train(graph: graph)
        let reference = try Transformers.load(graph)
        let ids = [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]]
        model.forward(ids: ids.flatMap { $0 }, B: 2, T: 8)
        let logits = model.logits(B: 2, T: 8)
        for (b, seq) in ids.enumerated() {
            let want = try reference.forward(.tokens(seq), collectHidden: false).values
            let got = Array(logits[b * 8 * model.shape.V..<(b + 1) * 8 * model.shape.V])
            #expect(relativeError(got, want) < 1e-5)
        }
    }

    @Test func exportRoundTripsThroughTheReferenceForward() throws {
        let graph = try Checkpoint.open(Repo.fixture("models/gpt2-a")).graph
        let model = try GPT2Train(graph: graph)
        let exported = try model.weightGraph(config: try #require(graph.config))
        #expect(exported.ties["lm_head.weight"] == "transformer.wte.weight")
        let a = try Transformers.load(graph).forward(.tokens([1, 2, 3]), collectHidden: false).values
        let b = try Transformers.load(exported).forward(.tokens([1, 2, 3]), collectHidden: false).values
        #expect(a == b)
    }

    @Test func untiedAndNonGPT2ModelsAreRefused() throws {
        let llama = try Checkpoint.open(Repo.fixture("models/llama-gqa")).graph
        #expect(throws: TrainError.self) { try GPT2Train(graph: llama) }
    }
}

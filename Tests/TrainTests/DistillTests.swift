// AdamW and its schedule, student initialisation, and short distillation runs: the loss goes
// down, a run is deterministic, and a resumed run continues exactly.

import CkptCore
import Formats
import Foundation
import Testing
import TestSupport
import Transformer
@testable import Train

@Suite struct AdamWTests {
    @Test func scheduleWarmsUpLinearlyThenDecaysByCosine() {
        var c = AdamWConfig()
        c.learningRate = 1e-2
        c.warmupSteps = 4
        c.minLRFraction = 0.1
        #expect(learningRate(step: 1, total: 20, c) == 2.5e-3)
        #expect(learningRate(step: 4, total: 20, c) == 1e-2)
        #expect(abs(learningRate(step: 12, total: 20, c) - 5.5e-3) < 1e-7)  // half-way: (lr + min) / 2
        #expect(abs(learningRate(step: 20, total: 20, c) - 1e-3) < 1e-9)
    }

    @Test func oneStepMatchesTheFormula() throws {
        // A 1-layer GPT-2 whose parameters we can set; check two coordinates by hand.
        let s = GPT2Shape(V: 3, maxT: 2, L: 1, NH: 1, C: 2, I: 2)
        let n = ParameterLayout(s).total
        let model = GPT2Train(shape: s, parameters: [Float](repeating: 0.5, count: n))
        var c = AdamWConfig()
        c.weightDecay = 0.1
        c.clipNorm = nil
        let opt = AdamW(config: c, parameterCount: n)
        for i in 0..<n { model.grads[i] = i == 0 ? 0.2 : 0 }
        opt.update(model, lr: 0.01)
        // wte[0] decays: m̂ = g, v̂ = g², step = lr·(g/(|g| + ε) + λ·θ)
        #expect(abs(model.params[0] - (0.5 - 0.01 * (1 + 0.1 * 0.5))) < 1e-6)
        // ln_1.weight has a zero gradient and no decay: unchanged.
        let ln = try #require(model.layout.slot("transformer.h.0.ln_1.weight"))
        #expect(model.params[ln.offset] == 0.5)
    }

    @Test func clippingScalesTheGlobalNorm() {
        let s = GPT2Shape(V: 3, maxT: 2, L: 1, NH: 1, C: 2, I: 2)
        let n = ParameterLayout(s).total
        let model = GPT2Train(shape: s, parameters: [Float](repeating: 0, count: n))
        for i in 0..<n { model.grads[i] = 3 }
        var c = AdamWConfig()
        c.clipNorm = 1
        let norm = AdamW(config: c, parameterCount: n).update(model, lr: 0.1)
        #expect(abs(norm - 3 * Double(n).squareRoot()) < 1e-3)
    }
}

@Suite struct StudentTests {
    let teacherPath = Repo.fixture("models/gpt2-teacher4")

    @Test func layerSelection() {
        #expect(StudentSpec.evenlySpaced(2, of: 4) == [0, 3])
        #expect(StudentSpec.evenlySpaced(3, of: 12) == [0, 6, 11])
        #expect(StudentSpec.everyKth(2, of: 4) == [0, 2])
        #expect(StudentSpec(layers: [0, 2]).teacherLayerMap(teacherLayers: 4) == [1, 3])
        #expect(StudentSpec(layers: [0, 3]).teacherLayerMap(teacherLayers: 4) == [2, 3])
        #expect(throws: TrainError.self) { try StudentSpec(layers: [2, 1]).validate(teacher: GPT2Shape(V: 2, maxT: 2, L: 4, NH: 1, C: 2, I: 2)) }
    }

    @Test func keepingEveryLayerReproducesTheTeacher() throws {
        let teacher = try GPT2Train(graph: try Checkpoint.open(teacherPath).graph)
        let student = try Student.make(teacher: teacher, spec: StudentSpec(layers: Array(0..<teacher.shape.L)))
        #expect(student.parameters == teacher.parameters)
    }

    @Test func narrowerMLPKeepsTheHighestMagnitudeUnits() throws {
        let teacher = try GPT2Train(graph: try Checkpoint.open(teacherPath).graph)
        let t = teacher.shape, I2 = 50
        let student = try Student.make(teacher: teacher, spec: StudentSpec(layers: [1, 3], intermediate: I2))
        #expect(student.shape.I == I2 && student.shape.L == 2)
        let scores = MagnitudeImportance().mlpUnitScores(teacher, layer: 3)
        let kept = Student.topUnits(scores, I2)
        #expect(kept.count == I2 && kept == kept.sorted())
        #expect(Set(kept).allSatisfy { j in scores[j] >= scores.enumerated().filter { !kept.contains($0.offset) }.map(\.element).max()! })
        let tfc = try #require(teacher.parameter("transformer.h.3.mlp.c_fc.weight"))   // [C, I]
        let sfc = try #require(student.parameter("transformer.h.1.mlp.c_fc.weight"))   // [C, I2]
        let tproj = try #require(teacher.parameter("transformer.h.3.mlp.c_proj.weight")) // [I, C]
        let sproj = try #require(student.parameter("transformer.h.1.mlp.c_proj.weight")) // [I2, C]
        for c in [0, t.C - 1] {
            for (jj, j) in kept.enumerated() {
                #expect(sfc[c * I2 + jj] == tfc[c * t.I + j])
                #expect(sproj[jj * t.C + c] == tproj[j * t.C + c])
            }
        }
        #expect(student.parameter("transformer.h.0.attn.c_attn.weight") == teacher.parameter("transformer.h.1.attn.c_attn.weight"))
        let config = Student.config(teacher: try #require(try Checkpoint.open(teacherPath).graph.config), spec: StudentSpec(layers: [1, 3], intermediate: I2))
        #expect(config.numLayers == 2 && config.intermediateSize == I2)
    }
}

/// One BLAS thread for the whole test process. The test suites run concurrently in one process,
/// and when several threads call a multi-threaded OpenBLAS at once its thread pool is shared:
/// runs were then occasionally not bit-reproducible (and minutes slow from contention), which
/// the determinism checks below would report. Single-threaded calls run on the caller's thread.
/// (The CLI calls BLAS from one thread only; its determinism is checked in CLITests.)
let singleThreadedBLAS: Void = Transformers.setThreads(1)

@Suite struct DistillRunTests {
    init() { singleThreadedBLAS }

    static func distiller(seed: UInt64 = 3, steps: Int = 12) throws -> Distiller {
        let teacher = try GPT2Train(graph: try Checkpoint.open(Repo.fixture("models/gpt2-teacher4")).graph)
        let spec = StudentSpec(layers: [0, 3])
        let student = try Student.make(teacher: teacher, spec: spec)
        let data = try TokenData.sampled(from: teacher, train: 24, eval: 6, T: 16, seed: seed)
        var o = DistillOptions()
        o.steps = steps
        o.batch = 4
        o.seed = seed
        o.hiddenWeight = 0.1
        o.optimizer.learningRate = 3e-3
        o.optimizer.warmupSteps = 2
        return try Distiller(teacher: teacher, student: student, spec: spec, data: data, options: o)
    }

    @Test func lossDecreasesAndRunsAreDeterministic() throws {
        let a = try Self.distiller(), b = try Self.distiller()
        let before = a.evaluate()
        let la = (0..<12).map { _ in a.trainStep().loss }
        let lb = (0..<12).map { _ in b.trainStep().loss }
        let after = a.evaluate()
        #expect(la == lb, "same seed, same loss trajectory")
        #expect(a.student.parameters == b.student.parameters)
        #expect(after < before * 0.9, "held-out KL \(before) -> \(after)")
        #expect(la.suffix(4).reduce(0, +) < la.prefix(4).reduce(0, +))
        // Held-out sequences are not training sequences.
        #expect(Set(a.data.eval).isDisjoint(with: Set(a.data.train)))
    }

    @Test func aResumedRunContinuesExactly() throws {
        let dir = TempDir()
        let straight = try Self.distiller(steps: 6)
        for _ in 0..<6 { straight.trainStep() }
        let first = try Self.distiller(steps: 6)
        for _ in 0..<3 { first.trainStep() }
        try first.saveState(to: dir.file("state.safetensors"), recipe: "r")
        let second = try Self.distiller(steps: 6)
        #expect(throws: TrainError.self) { try second.loadState(from: dir.file("state.safetensors"), recipe: "other") }
        #expect(try second.loadState(from: dir.file("state.safetensors"), recipe: "r") == 3)
        for _ in 0..<3 { second.trainStep() }
        #expect(second.student.parameters == straight.student.parameters)
        #expect(second.optimizer.moments.m == straight.optimizer.moments.m)
    }

    @Test func tokenStreamWindowsHoldOutTheTail() throws {
        let d = try TokenData.windows(of: Array(0..<100), T: 10)
        #expect(d.train.count == 9 && d.eval == [Array(90..<100)])
        #expect(throws: TrainError.self) { try TokenData.windows(of: Array(0..<15), T: 10) }
    }
}

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
        // A GPT-2 whose parameters we set; check two coordinates by hand.
        let model = try TrainModel(graph: try Checkpoint.open(Repo.fixture("models/gpt2-a")).graph)
        let n = model.parameterCount
        model.setParameters([Float](repeating: 0.5, count: n))
        #expect(model.layout.slots[0].name == "transformer.wte.weight" && model.layout.slots[0].offset == 0)
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

    @Test func clippingScalesTheGlobalNorm() throws {
        let model = try TrainModel(graph: try Checkpoint.open(Repo.fixture("models/gpt2-a")).graph)
        let n = model.parameterCount
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
        let t = StudentSpec.TeacherSizes(L: 4, C: 64, NH: 4, NKV: 2, I: 128)
        #expect(throws: TrainError.self) { try StudentSpec(layers: [2, 1]).validate(teacher: t) }
        #expect(throws: TrainError.self) { try StudentSpec(layers: [0], heads: 4, kvHeads: 1).validate(teacher: t) }  // 4 per group > 2
        #expect(throws: TrainError.self) { try StudentSpec(layers: [0], hidden: 65).validate(teacher: t) }
        #expect(throws: Never.self) { try StudentSpec(layers: [0], heads: 2).validate(teacher: t) }  // kv 1, ratio kept
        #expect(StudentSpec(layers: [0], heads: 2).studentKV(t) == 1)
    }

    @Test(arguments: ["gpt2-teacher4", "llama-teacher4"])
    func keepingEveryLayerReproducesTheTeacher(_ name: String) throws {
        let teacher = try TrainModel(graph: try Checkpoint.open(Repo.fixture("models/\(name)")).graph)
        let student = try Student.make(teacher: teacher, spec: StudentSpec(layers: Array(0..<teacher.shape.L)))
        #expect(student.parameters == teacher.parameters)
    }

    static func calibration(_ V: Int) -> [[Int]] {
        var rng = SplitMix64(seed: 5)
        return (0..<4).map { _ in (0..<16).map { _ in rng.next(below: V) } }
    }

    @Test func narrowerMLPKeepsTheMostImportantNeurons() throws {
        let graph = try Checkpoint.open(teacherPath).graph
        let teacher = try TrainModel(graph: graph)
        let C = teacher.shape.C, I = 4 * C, I2 = 50
        let cal = Self.calibration(teacher.shape.V)
        let imp = Importance.measure(teacher, sequences: cal)
        let student = try Student.make(teacher: teacher, spec: StudentSpec(layers: [1, 3], intermediate: I2), importance: imp)
        #expect(student.shape.L == 2 && student.config.intermediateSize == I2 && student.config.numLayers == 2)
        let scores = imp.neurons[3]
        let kept = scores.indices.sorted { scores[$0] > scores[$1] }.prefix(I2).sorted()
        let tfc = try #require(teacher.parameter("transformer.h.3.mlp.c_fc.weight"))   // [C, I]
        let sfc = try #require(student.parameter("transformer.h.1.mlp.c_fc.weight"))   // [C, I2]
        let tproj = try #require(teacher.parameter("transformer.h.3.mlp.c_proj.weight")) // [I, C]
        let sproj = try #require(student.parameter("transformer.h.1.mlp.c_proj.weight")) // [I2, C]
        for c in [0, C - 1] {
            for (jj, j) in kept.enumerated() {
                #expect(sfc[c * I2 + jj] == tfc[c * I + j])
                #expect(sproj[jj * C + c] == tproj[j * C + c])
            }
        }
        #expect(student.parameter("transformer.h.0.attn.c_attn.weight") == teacher.parameter("transformer.h.1.attn.c_attn.weight"))
        // The same student from the calibration sequences directly.
        let again = try Student.make(teacher: teacher, spec: StudentSpec(layers: [1, 3], intermediate: I2), calibration: cal)
        #expect(again.parameters == student.parameters)
    }

    /// Half the hidden size and heads of the LLaMA teacher: the kept channels and heads are the
    /// most important, consistently in every tensor, and the student's config describes it.
    @Test func narrowerLlamaKeepsChannelsAndHeadsConsistently() throws {
        let teacher = try TrainModel(graph: try Checkpoint.open(Repo.fixture("models/llama-teacher4")).graph)
        let imp = Importance.measure(teacher, sequences: Self.calibration(teacher.shape.V))
        let spec = StudentSpec(layers: [0, 1, 2, 3], intermediate: 64, heads: 2, hidden: 32)
        let student = try Student.make(teacher: teacher, spec: spec, importance: imp)
        let cfg = student.config
        #expect(cfg.hiddenSize == 32 && cfg.numHeads == 2 && cfg["num_key_value_heads"]?.intValue == 1 && cfg.intermediateSize == 64)
        #expect(cfg["head_dim"]?.intValue == 16)
        let H = imp.hidden.indices.sorted { imp.hidden[$0] > imp.hidden[$1] }.prefix(32).sorted()
        let temb = try #require(teacher.parameter("model.embed_tokens.weight")), semb = try #require(student.parameter("model.embed_tokens.weight"))
        for v in [0, 63] { for (i, c) in H.enumerated() { #expect(semb[v * 32 + i] == temb[v * 64 + c]) } }
        let tn = try #require(teacher.parameter("model.norm.weight")), sn = try #require(student.parameter("model.norm.weight"))
        #expect(sn == H.map { tn[$0] })
        // Layer 2: the better of the two key/value groups (query heads 2g, 2g+1), whole: 2 heads
        // over 1 key/value head keep the teacher's 2 query heads per group.
        let hsc = imp.heads[2]
        let g = hsc[0] + hsc[1] >= hsc[2] + hsc[3] ? 0 : 1
        let tk = try #require(teacher.parameter("model.layers.2.self_attn.k_proj.weight"))   // [2·16, 64]
        let sk = try #require(student.parameter("model.layers.2.self_attn.k_proj.weight"))   // [16, 32]
        let tq = try #require(teacher.parameter("model.layers.2.self_attn.q_proj.weight"))   // [4·16, 64]
        let sq = try #require(student.parameter("model.layers.2.self_attn.q_proj.weight"))   // [2·16, 32]
        let to = try #require(teacher.parameter("model.layers.2.self_attn.o_proj.weight"))   // [64, 4·16]
        let so = try #require(student.parameter("model.layers.2.self_attn.o_proj.weight"))   // [32, 2·16]
        for d in [0, 15] {
            for (i, c) in H.enumerated() {
                #expect(sk[d * 32 + i] == tk[(g * 16 + d) * 64 + c])
                for j in 0..<2 {
                    #expect(sq[(j * 16 + d) * 32 + i] == tq[((2 * g + j) * 16 + d) * 64 + c])
                    #expect(so[i * 32 + j * 16 + d] == to[c * 64 + (2 * g + j) * 16 + d])
                }
            }
        }
        // 2 heads over 2 key/value heads: one query head from each group, the better one.
        let mqa = try Student.make(teacher: teacher, spec: StudentSpec(layers: [2], heads: 2, kvHeads: 2), importance: imp)
        let q0 = hsc[0] >= hsc[1] ? 0 : 1, q1 = hsc[2] >= hsc[3] ? 2 : 3
        let mq = try #require(mqa.parameter("model.layers.0.self_attn.q_proj.weight"))  // [2·16, 64]
        #expect(Array(mq[0..<16 * 64]) == Array(tq[q0 * 16 * 64..<(q0 + 1) * 16 * 64]))
        #expect(Array(mq[16 * 64..<32 * 64]) == Array(tq[q1 * 16 * 64..<(q1 + 1) * 16 * 64]))
    }

    @Test func gpt2HeadsCannotChangeAlone() throws {
        let teacher = try TrainModel(graph: try Checkpoint.open(teacherPath).graph)
        #expect(throws: TrainError.self) { try Student.make(teacher: teacher, spec: StudentSpec(layers: [0], heads: 2)) }
        // Hidden size and heads halved together keep GPT-2's head size.
        let s = try Student.make(teacher: teacher, spec: StudentSpec(layers: [0, 3], heads: 2, hidden: 24), calibration: Self.calibration(64))
        #expect(s.config.hiddenSize == 24 && s.config.numHeads == 2)
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
        let teacher = try TrainModel(graph: try Checkpoint.open(Repo.fixture("models/gpt2-teacher4")).graph)
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

/// Students load in transformers and match ckpt's forward: fixtures/train/llama-student-* are the
/// `ckpt distill --steps 0` outputs, their expected logits come from transformers
/// (tools/make_llama_train_fixtures.py students). The same recipe rebuilds them bit for bit.
@Suite struct StudentInteropTests {
    init() { singleThreadedBLAS }

    @Test(arguments: [("llama-student-width", DistillRecipe.width), ("llama-student-depth", DistillRecipe.depth)])
    func studentsMatchTransformers(_ name: String, _ recipe: DistillRecipe) throws {
        let teacher = try TrainModel(graph: try Checkpoint.open(Repo.fixture("models/llama-teacher4")).graph)
        let rebuilt = try recipe.prepare(teacher: teacher, tokens: nil).distiller.student
        let graph = try Checkpoint.open(Repo.fixture("train/\(name)")).graph
        let saved = try TrainModel(graph: graph)
        #expect(rebuilt.parameters == saved.parameters, "the committed student is what the recipe makes")
        #expect(rebuilt.config.json == saved.config.json.filter { $0.key != "ckpt_distill" })

        let fx = try Safetensors.read(path: Repo.fixture("train/\(name).expected.safetensors"))
        let tokens = try int64s(fx, "tokens"), want = try floats(fx, "logits")
        saved.forward(ids: tokens, B: 2, T: 12)
        let err = relativeError(saved.logits(B: 2, T: 12), want)
        #expect(err < 1e-5, "\(name): training forward vs transformers, relative error \(err)")
        let reference = try Transformers.load(graph)
        for b in 0..<2 {
            let got = try reference.forward(.tokens(Array(tokens[b * 12..<(b + 1) * 12])), collectHidden: false).values
            #expect(relativeError(got, Array(want[b * 12 * 64..<(b + 1) * 12 * 64])) < 1e-5)
        }
    }
}

extension DistillRecipe {
    /// The recipes of the committed students (`ckpt distill --sequences 16 --eval-sequences 4 --length 32`).
    static func small(_ f: (inout DistillRecipe) -> Void) -> DistillRecipe {
        var r = DistillRecipe()
        (r.sequences, r.evalSequences, r.length) = (16, 4, 32)
        r.options.steps = 0
        f(&r)
        return r
    }
    static let width = small { ($0.hidden, $0.heads, $0.intermediate) = (32, 2, 64) }
    static let depth = small { ($0.layers, $0.heads, $0.kvHeads) = (2, 2, 2) }
}

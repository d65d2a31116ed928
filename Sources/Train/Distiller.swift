// Distillation: train a student (any family TrainModel implements) to match a teacher's next-token distributions.
//
//   loss = τ² · mean over positions of KL(softmax(teacher/τ) ‖ softmax(student/τ))
//        + α · mean over student blocks i of mean((h_i - h_teacher[map(i)])²)   (optional, α > 0)
//
// Data: fixed-length token sequences, either windows of a token stream (a file) or sequences the
// teacher samples itself from seeded random prompts. A held-out set, never trained on, measures
// KL(teacher ‖ student) at τ = 1 (what `ckpt verify` reports).
//
// Determinism: everything random (prompts, sampling, batch order) comes from SplitMix64 streams
// seeded from `seed`; sums run in a fixed order. The loss trajectory is the same on every run
// with the same seed and BLAS thread count (OpenBLAS promises nothing across thread counts,
// though 1 and 2 gave identical weights in bench/distill_bench.py), provided no other thread of
// the process calls a multi-threaded OpenBLAS at the same time (concurrent callers share its
// thread pool and were seen to change the rounding; TrainTests run BLAS single-threaded for
// that reason). A state file holds the
// weights, AdamW's moments, the step and the batch RNG, so a resumed run continues exactly.

import CkptCore
import Formats
import Foundation

public struct DistillOptions: Sendable, Equatable {
    public var steps = 300
    public var batch = 16
    /// Temperature τ of the KL term.
    public var temperature: Float = 2
    /// α, the weight of hidden-state matching (0: off).
    public var hiddenWeight: Float = 0
    public var seed: UInt64 = 0
    public var optimizer = AdamWConfig()
    public init() {}
}

/// Training and held-out sequences, each of the same length T.
public struct TokenData: Sendable, Equatable {
    public var train: [[Int]]
    public var eval: [[Int]]
    /// Tokens per sequence.
    public var sequenceLength: Int { T }
    var T: Int { train.first?.count ?? 0 }

    public init(train: [[Int]], eval: [[Int]]) throws(TrainError) {
        guard let T = train.first?.count, T >= 2 else { throw .badData("no training sequences of at least 2 tokens") }
        guard !eval.isEmpty else { throw .badData("no held-out sequences") }
        guard (train + eval).allSatisfy({ $0.count == T }) else { throw .badData("sequences of different lengths") }
        self.train = train
        self.eval = eval
    }

    /// Non-overlapping windows of `T` tokens cut from a stream; the last `evalFraction` of the
    /// windows (at least one) are held out, so evaluation text is never trained on.
    public static func windows(of stream: [Int], T: Int, evalFraction: Double = 0.1) throws(TrainError) -> TokenData {
        let n = stream.count / T
        guard n >= 2 else { throw .badData("\(stream.count) tokens make fewer than 2 windows of \(T)") }
        let all = (0..<n).map { Array(stream[$0 * T..<($0 + 1) * T]) }
        let nEval = min(n - 1, max(1, Int((Double(n) * evalFraction).rounded())))
        return try TokenData(train: Array(all.prefix(n - nEval)), eval: Array(all.suffix(nEval)))
    }

    /// Sequences the teacher writes itself: a random prompt of `promptLength` tokens, then
    /// sampling from softmax(logits) one token at a time. Held-out sequences come from a
    /// separate stream of the seed.
    public static func sampled(from teacher: TrainModel, train: Int, eval: Int, T: Int, seed: UInt64,
                               promptLength: Int = 2) throws(TrainError) -> TokenData {
        guard T >= 2, T <= teacher.shape.maxT else { throw .badData("sequence length \(T) must be in 2...\(teacher.shape.maxT)") }
        guard train > 0, eval > 0 else { throw .badData("need at least one training and one held-out sequence") }
        var trainRNG = SplitMix64(seed: seed ^ 0x7472_6169_6E00_0000)  // "train"
        var evalRNG = SplitMix64(seed: seed ^ 0x6576_616C_0000_0000)   // "eval"
        return try TokenData(train: sample(teacher, count: train, T: T, prompt: promptLength, rng: &trainRNG),
                             eval: sample(teacher, count: eval, T: T, prompt: promptLength, rng: &evalRNG))
    }

    /// Each chunk of sequences is decoded one position at a time through a key/value cache
    /// (`TrainModel.decode`), so a token costs one position's work; models whose rotary angles
    /// depend on the length (dynamic NTK, longrope past the original context) run the full
    /// prefix for every token instead (`fullPrefix: true` forces that path).
    static func sample(_ m: TrainModel, count: Int, T: Int, prompt: Int, rng: inout SplitMix64, fullPrefix: Bool = false) -> [[Int]] {
        let V = m.shape.V, chunk = 64
        let cached = !fullPrefix && m.canCache(T: T)
        var out: [[Int]] = []
        var start = 0
        while start < count {
            let B = min(chunk, count - start)
            var seqs = (0..<B).map { _ in (0..<min(prompt, T)).map { _ in rng.next(below: V) } }
            let cache = cached ? m.makeCache(B: B, capacity: T) : nil
            var t = seqs[0].count
            while t < T {
                let logits: UnsafePointer<Float>, rowOf: (Int) -> Int
                if let cache {
                    var last: UnsafePointer<Float>?
                    while cache.length < t { last = m.decode(seqs.map { $0[cache.length] }, cache: cache) }
                    logits = last!
                    rowOf = { $0 * V }
                } else {
                    m.forward(ids: seqs.flatMap { $0 }, B: B, T: t)
                    logits = UnsafePointer(m.acts!.logits.p)
                    rowOf = { [t] b in (b * t + t - 1) * V }  // the last position's logits
                }
                for b in 0..<B {
                    let row = rowOf(b)
                    var mx = -Float.infinity
                    for v in 0..<V { mx = max(mx, logits[row + v]) }
                    var p = [Double](repeating: 0, count: V), sum = 0.0
                    for v in 0..<V { p[v] = Foundation.exp(Double(logits[row + v] - mx)); sum += p[v] }
                    var u = rng.nextUnit() * sum, k = 0
                    while k < V - 1, u >= p[k] { u -= p[k]; k += 1 }
                    seqs[b].append(k)
                }
                t += 1
            }
            out += seqs
            start += B
        }
        return out
    }
}

public struct StepResult: Sendable {
    public var step: Int
    public var loss: Double
    public var kl: Double
    public var hidden: Double
    public var gradNorm: Double
    public var learningRate: Float
}

/// Knowledge distillation on CPU: a student learns the teacher's softened next-token
/// distributions (KL at `temperature`) with AdamW. Create one with the teacher, a student built
/// from a `StudentSpec`, and token data; call ``trainStep()`` until done and ``evaluate()`` for
/// the held-out KL.
public final class Distiller {
    public let teacher: TrainModel
    public let student: TrainModel
    public let spec: StudentSpec
    public let options: DistillOptions
    public let data: TokenData
    public let optimizer: AdamW
    /// Chooses the training batches.
    public private(set) var rng: SplitMix64
    let layerMap: [Int]
    private var evalTeacherLogits: [Float]?

    public init(teacher: TrainModel, student: TrainModel, spec: StudentSpec, data: TokenData, options: DistillOptions) throws {
        guard teacher.shape.V == student.shape.V else {
            throw TrainError.invalidConfig("teacher and student must share the vocabulary")
        }
        guard options.hiddenWeight == 0 || teacher.shape.C == student.shape.C else {
            throw TrainError.invalidConfig("hidden-state matching needs the teacher's hidden size (the student's is \(student.shape.C))")
        }
        guard data.T <= student.shape.maxT, data.T <= teacher.shape.maxT else {
            throw TrainError.badData("sequences of \(data.T) tokens are longer than the model's positions")
        }
        for s in data.train + data.eval {
            for tok in s where tok < 0 || tok >= teacher.shape.V {
                throw TrainError.badData("token \(tok) is outside the vocabulary (0..<\(teacher.shape.V))")
            }
        }
        self.teacher = teacher
        self.student = student
        self.spec = spec
        self.data = data
        self.options = options
        optimizer = AdamW(config: options.optimizer, parameterCount: student.parameterCount)
        rng = SplitMix64(seed: options.seed ^ 0x6261_7463_6800_0000)  // "batch"
        layerMap = spec.teacherLayerMap(teacherLayers: teacher.shape.L)
    }

    public var step: Int { optimizer.step }

    /// One optimisation step on a batch of training sequences.
    @discardableResult
    public func trainStep() -> StepResult {
        let B = options.batch, T = data.T, N = B * T
        let ids = (0..<B).flatMap { _ in data.train[rng.next(below: data.train.count)] }
        let ta = teacher.forward(ids: ids, B: B, T: T)
        let sa = student.forward(ids: ids, B: B, T: T)
        let d = student.beginBackward()
        let kl = TrainKernels.distillationLoss(dlogits: d.logits.p, student: sa.logits.p, teacher: ta.logits.p,
                                               N: N, V: student.shape.V, tau: options.temperature)
        var hidden = 0.0
        if options.hiddenWeight > 0 {
            let w = options.hiddenWeight / Float(layerMap.count)
            for (i, tl) in layerMap.enumerated() {
                hidden += TrainKernels.meanSquaredError(dh: d.blocks[i].res3.p, h: sa.blocks[i].res3.p,
                                                        target: ta.blocks[tl].res3.p, count: N * student.shape.C, weight: w)
            }
        }
        student.backward(ids: ids, B: B, T: T)
        let lr = learningRate(step: optimizer.step + 1, total: options.steps, options.optimizer)
        let norm = optimizer.update(student, lr: lr)
        return StepResult(step: optimizer.step, loss: kl + hidden, kl: kl, hidden: hidden, gradNorm: norm, learningRate: lr)
    }

    /// Mean KL(teacher ‖ student) at τ = 1 over every position of the held-out sequences (nats).
    public func evaluate() -> Double {
        let T = data.T, V = student.shape.V, chunk = 16
        if evalTeacherLogits == nil {
            var all: [Float] = []
            for start in stride(from: 0, to: data.eval.count, by: chunk) {
                let seqs = Array(data.eval[start..<min(start + chunk, data.eval.count)])
                teacher.forward(ids: seqs.flatMap { $0 }, B: seqs.count, T: T)
                all += teacher.logits(B: seqs.count, T: T)
            }
            evalTeacherLogits = all
        }
        var total = 0.0
        for start in stride(from: 0, to: data.eval.count, by: chunk) {
            let seqs = Array(data.eval[start..<min(start + chunk, data.eval.count)])
            let sa = student.forward(ids: seqs.flatMap { $0 }, B: seqs.count, T: T)
            let N = seqs.count * T
            // SAFETY: the teacher logits hold eval.count·T·V floats; this chunk's start at start·T·V.
            total += evalTeacherLogits!.withUnsafeBufferPointer { tl in
                TrainKernels.distillationLoss(dlogits: nil, student: sa.logits.p, teacher: tl.baseAddress! + start * T * V,
                                              N: N, V: V, tau: 1) * Double(N)
            }
        }
        return total / Double(data.eval.count * T)
    }

    // MARK: state (resume)

    /// Writes weights, AdamW moments, the step and the batch RNG to a safetensors state file
    /// (atomically). `recipe` identifies the run; resuming checks it.
    public func saveState(to path: String, recipe: String) throws {
        var g = WeightGraph()
        let (m, v) = optimizer.moments
        for (name, values) in [("student", student.parameters), ("adam.m", m), ("adam.v", v)] {
            try g.add(Tensor(name: name, dtype: .f32, shape: [values.count], data: .owned(values.withUnsafeBytes { Array($0) })))
        }
        g.metadata = ["format": "ckpt-distill-state", "step": String(optimizer.step), "rng": String(rng.state), "recipe": recipe]
        try Safetensors.write(g, to: path)
    }

    /// Restores a state written by `saveState` for the same recipe. Returns the step reached.
    public func loadState(from path: String, recipe: String) throws -> Int {
        let g = try Safetensors.read(path: path)
        guard g.metadata["format"] == "ckpt-distill-state" else { throw TrainError.badState("\(path) is not a ckpt distill state file") }
        guard g.metadata["recipe"] == recipe else {
            throw TrainError.badState("\(path) was written by a different recipe (teacher, student, data or hyper-parameters differ)")
        }
        guard let step = g.metadata["step"].flatMap({ Int($0) }), step >= 0, step <= options.steps,
              let r = g.metadata["rng"].flatMap({ UInt64($0) }) else {
            throw TrainError.badState("\(path): missing or invalid step/rng")
        }
        func floats(_ name: String) throws -> [Float] {
            guard let t = g.tensors[name], t.dtype == .f32, t.shape == [student.parameterCount] else {
                throw TrainError.badState("\(path): tensor `\(name)` missing or not f32 [\(student.parameterCount)]")
            }
            let bytes = try t.data.load()
            // SAFETY: `bytes` holds count·4 bytes (checked by the reader against the shape).
            return bytes.withUnsafeBytes { raw in
                (0..<student.parameterCount).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            }
        }
        student.setParameters(try floats("student"))
        optimizer.restore(m: try floats("adam.m"), v: try floats("adam.v"), step: step)
        rng = SplitMix64(seed: r)
        return step
    }
}

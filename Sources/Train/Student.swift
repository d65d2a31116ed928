// Student configs: a smaller GPT-2 initialised from the teacher's own weights.
//
// Depth: the student keeps a subset of the teacher's blocks (DistilBERT, Sanh et al. 2019, took
// every other layer), copied whole, with the embeddings and final LayerNorm. `--layers N` keeps
// N blocks evenly spaced from the first to the last (round(i·(L-1)/(N-1))): the first block reads
// the embeddings and the last feeds the head, so keeping both disturbs the interfaces least.
//
// Width of the MLP: the student keeps the `I'` hidden units with the highest importance, in their
// original order: c_fc columns, c_fc bias entries and c_proj rows of those units. The default
// importance is the unit's weight magnitude, ‖c_fc[:, j]‖₂ · ‖c_proj[j, :]‖₂ (how much signal can
// pass through it). `UnitImportance` is the seam for better scores (activation statistics from
// the structured-pruning work).
//
// Not done here: fewer heads (the attention width of a GPT-2 is n_embd, so dropping heads needs
// per-layer head counts in the config and the forward pass) and a narrower hidden size.

import CkptCore

/// Scores the MLP hidden units of one teacher block; higher = more important.
public protocol UnitImportance {
    /// Scores [I] of block `layer`'s MLP units.
    func mlpUnitScores(_ teacher: GPT2Train, layer: Int) -> [Float]
}

/// ‖c_fc[:, j]‖₂ · ‖c_proj[j, :]‖₂ for each hidden unit j.
public struct MagnitudeImportance: UnitImportance {
    public init() {}
    public func mlpUnitScores(_ teacher: GPT2Train, layer: Int) -> [Float] {
        let s = teacher.shape, o = teacher.layout.blocks[layer], P = teacher.params.p
        return (0..<s.I).map { j in
            var a: Float = 0, b: Float = 0
            for c in 0..<s.C { let w = P[o.fcW + c * s.I + j]; a += w * w }      // c_fc [C, I], column j
            for c in 0..<s.C { let w = P[o.fcProjW + j * s.C + c]; b += w * w }  // c_proj [I, C], row j
            return a.squareRoot() * b.squareRoot()
        }
    }
}

/// What to keep of the teacher.
public struct StudentSpec: Sendable, Equatable {
    /// Teacher block indices, in order (each kept block is copied whole).
    public var layers: [Int]
    /// MLP width of the student (nil: the teacher's).
    public var intermediate: Int?

    public init(layers: [Int], intermediate: Int? = nil) {
        self.layers = layers
        self.intermediate = intermediate
    }

    /// `count` blocks evenly spaced over a teacher of `teacherLayers`, first and last included.
    public static func evenlySpaced(_ count: Int, of teacherLayers: Int) -> [Int] {
        guard count > 1 else { return count == 1 ? [teacherLayers - 1] : [] }
        return (0..<count).map { i in Int((Double(i * (teacherLayers - 1)) / Double(count - 1)).rounded()) }
    }

    /// Every k-th block from the first: 0, k, 2k, …
    public static func everyKth(_ k: Int, of teacherLayers: Int) -> [Int] {
        Array(stride(from: 0, to: teacherLayers, by: max(1, k)))
    }

    /// Checks the spec against a teacher.
    public func validate(teacher s: GPT2Shape) throws(TrainError) {
        guard !layers.isEmpty else { throw .invalidConfig("the student needs at least one layer") }
        for l in layers where l < 0 || l >= s.L {
            throw .invalidConfig("layer \(l) is not a teacher layer (0..<\(s.L))")
        }
        guard zip(layers, layers.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw .invalidConfig("layers must be increasing and distinct: \(layers)")
        }
        if let i = intermediate, i <= 0 || i > s.I {
            throw .invalidConfig("intermediate size \(i) must be in 1...\(s.I) (the teacher's)")
        }
    }

    /// For hidden-state matching: the teacher block whose output student block i imitates. A
    /// student block stands for the teacher blocks from its own up to the next kept one, so it
    /// is matched to the output of the last of them (the final student block to the teacher's
    /// final block).
    public func teacherLayerMap(teacherLayers: Int) -> [Int] {
        layers.indices.map { i in i + 1 < layers.count ? layers[i + 1] - 1 : teacherLayers - 1 }
    }
}

public enum Student {
    /// The student's config: the teacher's with n_layer and n_inner changed.
    public static func config(teacher: ModelConfig, spec: StudentSpec) -> ModelConfig {
        var json = teacher.json
        json["n_layer"] = .int(spec.layers.count)
        if let i = spec.intermediate { json["n_inner"] = .int(i) }
        return ModelConfig(json: json)
    }

    /// A student initialised from the teacher: kept blocks copied (MLPs sliced to the most
    /// important units), embeddings and ln_f copied.
    public static func make(teacher: GPT2Train, spec: StudentSpec,
                            importance: any UnitImportance = MagnitudeImportance()) throws -> GPT2Train {
        let t = teacher.shape
        try spec.validate(teacher: t)
        var s = t
        s.L = spec.layers.count
        s.I = spec.intermediate ?? t.I
        let sl = ParameterLayout(s), tl = teacher.layout
        var flat = [Float](repeating: 0, count: sl.total)
        let P = teacher.params.p
        func copy(_ from: Int, _ to: Int, _ n: Int) {
            for i in 0..<n { flat[to + i] = P[from + i] }
        }
        copy(tl.wte, sl.wte, t.V * t.C)
        copy(tl.wpe, sl.wpe, t.maxT * t.C)
        copy(tl.lnfw, sl.lnfw, t.C)
        copy(tl.lnfb, sl.lnfb, t.C)
        for (i, l) in spec.layers.enumerated() {
            let to = sl.blocks[i], from = tl.blocks[l]
            copy(from.ln1w, to.ln1w, t.C); copy(from.ln1b, to.ln1b, t.C)
            copy(from.attnW, to.attnW, t.C * 3 * t.C); copy(from.attnB, to.attnB, 3 * t.C)
            copy(from.projW, to.projW, t.C * t.C); copy(from.projB, to.projB, t.C)
            copy(from.ln2w, to.ln2w, t.C); copy(from.ln2b, to.ln2b, t.C)
            copy(from.fcProjB, to.fcProjB, t.C)
            let keep = s.I == t.I ? Array(0..<t.I) : topUnits(importance.mlpUnitScores(teacher, layer: l), s.I)
            for c in 0..<t.C {
                for (jj, j) in keep.enumerated() { flat[to.fcW + c * s.I + jj] = P[from.fcW + c * t.I + j] }
            }
            for (jj, j) in keep.enumerated() {
                flat[to.fcB + jj] = P[from.fcB + j]
                for c in 0..<t.C { flat[to.fcProjW + jj * t.C + c] = P[from.fcProjW + j * t.C + c] }
            }
        }
        return GPT2Train(shape: s, parameters: flat)
    }

    /// Indices of the `k` highest scores (ties: the lower index), in increasing index order.
    static func topUnits(_ scores: [Float], _ k: Int) -> [Int] {
        let ranked = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        return ranked.prefix(k).sorted()
    }
}

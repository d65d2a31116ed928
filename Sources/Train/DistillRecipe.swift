// The set-up of a distillation run, shared by `ckpt distill` and `ckpt run`'s distill step: the
// student spec from sizes or a student config, the data (a token stream cut into windows, or
// teacher samples), the options with their defaults, and the initialised student.

import CkptCore

public struct DistillRecipe: Sendable {
    /// Which teacher blocks to keep: at most one of these (or the student config's).
    public var layers: Int?
    public var layerList: [Int]?
    public var every: Int?
    public var intermediate, heads, kvHeads, hidden: Int?
    /// A student config.json: its layer count (or `ckpt_teacher_layers`), intermediate, hidden
    /// and head sizes; the explicit sizes above win.
    public var studentConfig: ModelConfig?
    /// Teacher-sampled training and held-out sequences (when no token stream is given).
    public var sequences = 512
    public var evalSequences = 64
    /// Tokens per sequence (default: min(64, the model's positions)).
    public var length: Int?
    /// Warmup steps (default: 5 % of the steps, at least 1).
    public var warmup: Int?
    public var options = DistillOptions()

    public init() {}

    /// The student spec for this teacher.
    public func studentSpec(teacher t: TrainModel) throws(TrainError) -> StudentSpec {
        let L = t.shape.L
        var layerIndices: [Int]?
        var (inner, nh, nkv, c) = (intermediate, heads, kvHeads, hidden)
        if let cfg = studentConfig {
            if let list = cfg["ckpt_teacher_layers"]?.arrayValue {
                let ints = list.compactMap(\.intValue)
                guard ints.count == list.count else { throw .invalidConfig("student config: ckpt_teacher_layers must be a list of integers") }
                layerIndices = ints
            } else if let n = cfg.numLayers {
                guard n >= 1, n <= L else { throw .invalidConfig("student config: \(n) layers, the teacher has \(L)") }
                layerIndices = StudentSpec.evenlySpaced(n, of: L)
            }
            let ts = Student.sizes(t)
            if inner == nil, let i = cfg.intermediateSize, i != ts.I { inner = i }
            if c == nil, let h = cfg.hiddenSize, h != ts.C { c = h }
            if nh == nil, let h = cfg.numHeads, h != ts.NH { nh = h }
            if nkv == nil, let h = cfg["num_key_value_heads"]?.intValue, h != ts.NKV { nkv = h }
        }
        guard [layers != nil, layerList != nil, every != nil].filter({ $0 }).count <= 1 else {
            throw .invalidConfig("give at most one of layers, layer list, every")
        }
        if let layers {
            guard layers >= 1, layers <= L else { throw .invalidConfig("layers must be in 1...\(L)") }
            layerIndices = StudentSpec.evenlySpaced(layers, of: L)
        }
        if let layerList { layerIndices = layerList }
        if let every {
            guard every >= 1 else { throw .invalidConfig("every must be at least 1") }
            layerIndices = StudentSpec.everyKth(every, of: L)
        }
        // Width-only students keep every block.
        if layerIndices == nil, inner != nil || nh != nil || nkv != nil || c != nil { layerIndices = Array(0..<L) }
        guard let layerIndices else {
            throw .invalidConfig("say what the student keeps: layers, intermediate, heads, kv-heads, hidden or a student config")
        }
        let spec = StudentSpec(layers: layerIndices, intermediate: inner, heads: nh, kvHeads: nkv, hidden: c)
        try spec.validate(teacher: Student.sizes(t))
        return spec
    }

    /// The sequence length for this teacher.
    public func sequenceLength(teacher t: TrainModel) -> Int { min(length ?? 64, t.shape.maxT) }

    /// The data: windows of `tokens` (the last 10 % held out), or teacher samples.
    public func data(teacher t: TrainModel, tokens: [Int]?) throws(TrainError) -> TokenData {
        let T = sequenceLength(teacher: t)
        if let tokens { return try TokenData.windows(of: tokens, T: T) }
        return try TokenData.sampled(from: t, train: sequences, eval: evalSequences, T: T, seed: options.seed)
    }

    /// The options with the defaults that depend on the step count filled in.
    public var resolvedOptions: DistillOptions {
        var o = options
        o.optimizer.warmupSteps = warmup ?? max(1, o.steps / 20)
        return o
    }

    /// Spec, data, the student initialised from the teacher (importance measured on training
    /// sequences) and a distiller, ready to train.
    public func prepare(teacher t: TrainModel, tokens: [Int]?) throws -> (spec: StudentSpec, data: TokenData, distiller: Distiller) {
        let spec = try studentSpec(teacher: t)
        let data = try data(teacher: t, tokens: tokens)
        let student = try Student.make(teacher: t, spec: spec, calibration: data.train)
        let distiller = try Distiller(teacher: t, student: student, spec: spec, data: data, options: resolvedOptions)
        return (spec, data, distiller)
    }
}

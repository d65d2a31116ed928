// Students: a smaller model of the teacher's family, initialised from the teacher's own weights
// by structured pruning (Minitron: Muralidharan et al. 2024, "Compact Language Models via
// Pruning and Knowledge Distillation").
//
// Depth: the student keeps a subset of the teacher's blocks (DistilBERT took every other layer),
// copied whole. `--layers N` keeps N blocks evenly spaced from the first to the last
// (round(i·(L-1)/(N-1))): the first block reads the embeddings and the last feeds the head, so
// keeping both disturbs the interfaces least.
//
// Width, each by activation importance on calibration sequences run through the teacher
// (Minitron's width pruning; the teacher's own training forward pass supplies the activations):
//   - MLP width: neuron j's score is Σ over tokens of |m_j|, m the MLP's hidden state (the
//     input of down); the student keeps the highest, in their original order.
//   - heads: head h's score is ‖attention output of h‖₂ over tokens; key/value groups are kept
//     by the sum of their query heads' scores, then the best query heads inside each kept group
//     (so GQA stays GQA: NH'/NKV' ≤ NH/NKV).
//   - hidden size: channel c's score is Σ over tokens of |norm output c| summed over every norm
//     (each block's two and the final one); embeddings, norms and every projection keep the
//     same channels.
// The student's config is the teacher's with the sizes changed, and its description comes from
// the same registry as the teacher's (the architecture is never restated here).

import CkptCore
import OrderedCollections
import Transformer

/// What to keep of the teacher.
public struct StudentSpec: Sendable, Equatable {
    /// Teacher block indices, in order.
    public var layers: [Int]
    /// MLP width (nil: the teacher's).
    public var intermediate: Int?
    /// Query heads and key/value heads per block (nil: the teacher's; kvHeads defaults to the
    /// teacher's ratio).
    public var heads: Int?
    public var kvHeads: Int?
    /// Hidden size (nil: the teacher's).
    public var hidden: Int?

    public init(layers: [Int], intermediate: Int? = nil, heads: Int? = nil, kvHeads: Int? = nil, hidden: Int? = nil) {
        self.layers = layers
        self.intermediate = intermediate
        self.heads = heads
        self.kvHeads = kvHeads
        self.hidden = hidden
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

    /// The teacher's sizes the spec is checked against (first block's).
    struct TeacherSizes: Sendable, Equatable {
        var L, C, NH, NKV, I: Int
        init(L: Int, C: Int, NH: Int, NKV: Int, I: Int) { (self.L, self.C, self.NH, self.NKV, self.I) = (L, C, NH, NKV, I) }
    }

    /// The student's key/value heads: as given, or the teacher's ratio kept.
    func studentKV(_ t: TeacherSizes) -> Int {
        if let kvHeads { return kvHeads }
        guard let heads else { return t.NKV }
        return max(1, t.NKV * heads / t.NH)
    }

    /// Checks the spec against a teacher.
    func validate(teacher t: TeacherSizes) throws(TrainError) {
        guard !layers.isEmpty else { throw .invalidConfig("the student needs at least one layer") }
        for l in layers where l < 0 || l >= t.L {
            throw .invalidConfig("layer \(l) is not a teacher layer (0..<\(t.L))")
        }
        guard zip(layers, layers.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw .invalidConfig("layers must be increasing and distinct: \(layers)")
        }
        if let i = intermediate, i <= 0 || i > t.I { throw .invalidConfig("intermediate size \(i) must be in 1...\(t.I) (the teacher's)") }
        if let c = hidden, c <= 0 || c > t.C { throw .invalidConfig("hidden size \(c) must be in 1...\(t.C) (the teacher's)") }
        if let h = heads, h <= 0 || h > t.NH { throw .invalidConfig("heads \(h) must be in 1...\(t.NH) (the teacher's)") }
        let nh = heads ?? t.NH, nkv = studentKV(t)
        guard nkv >= 1, nkv <= t.NKV, nh % nkv == 0, nh / nkv <= t.NH / t.NKV else {
            throw .invalidConfig("\(nh) heads over \(nkv) key/value heads: need a divisor of the heads, at most the teacher's \(t.NKV), with at most \(t.NH / t.NKV) query heads per key/value head")
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

/// Per-unit importance of a teacher, from activations on calibration sequences.
public struct Importance: Sendable {
    /// [C]
    public var hidden: [Double]
    /// Per block: [NH] heads, [I] MLP neurons.
    public var heads: [[Double]]
    public var neurons: [[Double]]

    /// Runs the teacher over `sequences` (each of the same length, ≤ 16 used) and scores units.
    public static func measure(_ m: TrainModel, sequences: [[Int]]) -> Importance {
        let seqs = Array(sequences.prefix(16)), B = seqs.count, T = seqs.first?.count ?? 0
        let C = m.shape.C
        var r = Importance(hidden: [Double](repeating: 0, count: C), heads: m.blocks.map { [Double](repeating: 0, count: $0.NH) },
                           neurons: m.blocks.map { [Double](repeating: 0, count: $0.I) })
        guard B > 0, T > 0 else { return r }
        let a = m.forward(ids: seqs.flatMap { $0 }, B: B, T: T)
        let N = B * T
        func absSum(_ buf: FloatBuffer, width: Int, into s: inout [Double]) {
            for n in 0..<N { for j in 0..<width { s[j] += Double(abs(buf[n * width + j])) } }
        }
        for (l, o) in m.blocks.enumerated() {
            let b = a.blocks[l]
            absSum(b.ln1, width: C, into: &r.hidden)
            absSum(b.ln2, width: C, into: &r.hidden)
            absSum(b.act, width: o.I, into: &r.neurons[l])
            let CQ = o.NH * o.hs
            for h in 0..<o.NH {
                var ss = 0.0
                for n in 0..<N { for j in 0..<o.hs { let v = Double(b.atty[n * CQ + h * o.hs + j]); ss += v * v } }
                r.heads[l][h] = ss.squareRoot()
            }
        }
        absSum(a.lnf, width: C, into: &r.hidden)
        return r
    }
}

public enum Student {
    /// The teacher's sizes a spec is checked against.
    static func sizes(_ t: TrainModel) -> StudentSpec.TeacherSizes {
        let b = t.blocks.first
        return .init(L: t.shape.L, C: t.shape.C, NH: b?.NH ?? 1, NKV: b?.NKV ?? 1, I: b?.I ?? 1)
    }

    /// Sets the first of `keys` the config has (even as null), else the first.
    static func set(_ json: inout OrderedDictionary<String, JSONValue>, _ keys: [String], _ v: Int) {
        json[keys.first { json[$0] != nil } ?? keys[0]] = .int(v)
    }

    /// The student's config: the teacher's with the sizes changed (per-layer lists cut to the
    /// kept layers).
    public static func config(teacher t: TrainModel, spec: StudentSpec) -> ModelConfig {
        var json = t.config.json
        let ts = sizes(t)
        set(&json, ["num_hidden_layers", "n_layer", "num_layers"], spec.layers.count)
        if let i = spec.intermediate { set(&json, ["intermediate_size", "n_inner", "ffn_dim"], i) }
        if let c = spec.hidden { set(&json, ["hidden_size", "n_embd", "d_model"], c) }
        if let h = spec.heads { set(&json, ["num_attention_heads", "n_head", "num_heads"], h) }
        let nkv = spec.studentKV(ts)
        if nkv != ts.NKV || json["num_key_value_heads"] != nil { set(&json, ["num_key_value_heads"], nkv) }
        // The head size stays the teacher's; written when the default (hidden / heads) would differ.
        if let hs = t.blocks.first?.hs, spec.hidden != nil || spec.heads != nil || json["head_dim"] != nil,
           json["head_dim"] != nil || (spec.hidden ?? ts.C) / (spec.heads ?? ts.NH) != hs {
            json["head_dim"] = .int(hs)
        }
        for (k, v) in json {
            if let list = v.arrayValue, list.count == ts.L, ts.L > 1, k != "architectures" {
                json[k] = .array(spec.layers.map { list[$0] })
            }
        }
        return ModelConfig(json: json)
    }

    /// A student initialised from the teacher: kept blocks, with heads, MLP neurons and hidden
    /// channels chosen by `importance` (measured on `calibration` when nil).
    public static func make(teacher t: TrainModel, spec: StudentSpec, calibration: [[Int]] = [],
                            importance given: Importance? = nil) throws -> TrainModel {
        let ts = sizes(t)
        try spec.validate(teacher: ts)
        let cfg = config(teacher: t, spec: spec)
        // The student's description, from the registry: the family looks names up, so it gets
        // the teacher's tensor names renumbered to the kept blocks (contents do not matter).
        let td = t.description
        func studentName(_ name: String) -> String? {
            for (i, l) in spec.layers.enumerated() where name.hasPrefix(td.blocks[l].prefix) {
                return td.blocks[i].prefix + name.dropFirst(td.blocks[l].prefix.count)
            }
            return td.blocks.contains { name.hasPrefix($0.prefix) } ? nil : name
        }
        var placeholder = WeightGraph()
        for s in t.layout.slots { if let n = studentName(s.name) { try placeholder.add(Tensor(name: n, dtype: .f32, shape: [1], data: .owned([0, 0, 0, 0]))) } }
        placeholder.config = cfg
        guard let family = Architectures.family(for: cfg.modelType) else { throw TrainError.unsupported("model_type \(cfg.modelType ?? "?")") }
        let sd: ModelDescription
        do { sd = try family.describe(ConfigReader(cfg, graph: placeholder)) } catch {
            throw TrainError.invalidConfig("the student config is not valid for \(cfg.modelType ?? "?"): \(error)")
        }
        guard sd.blocks.count == spec.layers.count, zip(sd.blocks, spec.layers).allSatisfy({ $0.attention.headDim == td.blocks[$1].attention.headDim }) else {
            throw TrainError.unsupported("\(td.modelType) ties the head size to hidden size / heads: --heads and --hidden must keep hidden/heads = \(td.blocks[0].attention.headDim)")
        }
        let optional = Set(t.optionalParameters.compactMap(studentName))
        let student = try TrainModel(description: sd, config: cfg, parameters: nil, include: { optional.contains($0) })

        let imp = given ?? Importance.measure(t, sequences: calibration)
        func top(_ scores: [Double], _ k: Int) -> [Int] {
            let ranked = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
            return ranked.prefix(k).sorted()
        }
        let C2 = sd.hiddenSize
        let H = C2 == ts.C ? Array(0..<ts.C) : top(imp.hidden, C2)
        let P = t.params.p, S = student.params.p
        /// student tensor[i0, i1] = teacher tensor[keep0[i0], keep1[i1]] (stored axes; nil: all).
        func copy(_ sName: String, _ tName: String, _ keep: [[Int]?]) {
            guard let ss = student.layout.slot(sName), let st = t.layout.slot(tName) else { return }
            if st.shape.count == 1 {
                let k0 = keep[0] ?? Array(0..<st.shape[0])
                for (i, j) in k0.enumerated() { S[ss.offset + i] = P[st.offset + j] }
            } else {
                let k0 = keep[0] ?? Array(0..<st.shape[0]), k1 = keep[1] ?? Array(0..<st.shape[1])
                let tc = st.shape[1], sc = k1.count
                for (i, r) in k0.enumerated() { for (j, c) in k1.enumerated() { S[ss.offset + i * sc + j] = P[st.offset + r * tc + c] } }
            }
        }
        func linear(_ s: LinearSpec, _ tl: LinearSpec, out: [Int]?, in inp: [Int]?) {
            copy(s.weightName, tl.weightName, s.layout == .linear ? [out, inp] : [inp, out])
            copy(s.biasName, tl.biasName, [out])
        }
        func norm(_ s: NormSpec?, _ tn: NormSpec?) {
            guard let s, let tn else { return }
            copy(s.name + ".weight", tn.name + ".weight", [H])
            copy(s.name + ".bias", tn.name + ".bias", [H])
        }
        if let e = sd.embedding.tokens, let te = td.embedding.tokens { copy(e.name, te.name, [nil, H]) }
        if let e = sd.embedding.positions, let te = td.embedding.positions { copy(e.name, te.name, [nil, H]) }
        norm(sd.head.finalNorm, td.head.finalNorm)
        if case .logits(let l) = sd.head.output, case .logits(let tl) = td.head.output { linear(l, tl, out: nil, in: H) }
        for (i, l) in spec.layers.enumerated() {
            let sb = sd.blocks[i], tb = td.blocks[l]
            let sa = sb.attention, ta = tb.attention, hs = ta.headDim
            norm(sb.attentionNorm, tb.attentionNorm)
            norm(sb.mlpNorm, tb.mlpNorm)
            // Heads: the best key/value groups, then the best query heads inside each.
            let group = ta.heads / ta.kvHeads, group2 = sa.heads / sa.kvHeads
            let scores = imp.heads[l]
            let groups = sa.kvHeads == ta.kvHeads ? Array(0..<ta.kvHeads)
                : top((0..<ta.kvHeads).map { g in (0..<group).reduce(0) { $0 + scores[g * group + $1] } }, sa.kvHeads)
            var qHeads: [Int] = []
            for g in groups {
                let members = (0..<group).map { g * group + $0 }
                qHeads += group2 == group ? members : top(members.map { scores[$0] }, group2).map { members[$0] }
            }
            func channels(_ heads: [Int]) -> [Int] { heads.flatMap { h in (h * hs)..<(h * hs + hs) } }
            let qKeep = channels(qHeads), kvKeep = channels(groups)
            switch (sa.projections, ta.projections) {
            case (.split(let q, let k, let v), .split(let tq, let tk, let tv)):
                linear(q, tq, out: qKeep, in: H)
                linear(k, tk, out: kvKeep, in: H)
                linear(v, tv, out: kvKeep, in: H)
            case (.fused(let w, _), .fused(let tw, _)):
                let CQ = ta.heads * hs, CK = ta.kvHeads * hs
                linear(w, tw, out: qKeep + kvKeep.map { CQ + $0 } + kvKeep.map { CQ + CK + $0 }, in: H)
            default: break
            }
            linear(sa.output, ta.output, out: H, in: qKeep)
            guard let sm = sb.mlp, let tm = tb.mlp else { continue }
            let I2 = sm.width
            let nKeep = I2 == tm.width ? Array(0..<tm.width) : top(imp.neurons[l], I2)
            switch (sm.projections, tm.projections) {
            case (.plain(let u), .plain(let tu)): linear(u, tu, out: nKeep, in: H)
            case (.gated(let g, let u), .gated(let tg, let tu)):
                linear(g, tg, out: nKeep, in: H)
                linear(u, tu, out: nKeep, in: H)
            default: break
            }
            linear(sm.down, tm.down, out: H, in: nKeep)
        }
        return student
    }
}

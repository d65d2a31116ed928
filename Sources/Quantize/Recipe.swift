// Recipes: which tensors get which scheme.
//
// Rules, in order (the first that applies decides):
//   1. tensors that are not floating point (ids, masks) are kept as they are;
//   2. tensors with fewer than 2 dimensions (norms, biases, scalars) stay in float;
//   3. `--keep REGEX` keeps matching tensors in their float type;
//   4. `--tensor-type REGEX=SCHEME` gives matching tensors that scheme (the first matching
//      override wins; llama-quantize lets the last one win);
//   5. everything else gets `--scheme` — for a llama-quantize preset (q4_k_m, q8_0, ...;
//      LlamaPresets.swift) writing GGUF, the type llama-quantize's rules pick per tensor.
// `--keep` patterns are searched anywhere in the name. `--tensor-type` patterns must match at
// name-part boundaries (`\b(?:REGEX)\b`, `_` and digits being word characters): `output`
// matches `output.weight` but not `blk.0.attn_output.weight` (llama-quantize searches
// anywhere, so there it hits both). With GGUF output the names are llama.cpp's
// (`blk.0.attn_q.weight`) and a pattern may match either that or the Hugging Face name.
//
// When a tensor's rows are not a whole number of the scheme's blocks it falls back, and the
// plan says so: k-quants as llama.cpp's llama-quantize falls back (q2_k, q3_k -> q4_0;
// q4_k -> q5_0; q5_k -> q5_1; q6_k -> q8_0), anything that still does not fit, and the
// 32-value and group types, -> `fallback` (f16 unless --fallback says otherwise).

import CkptCore
import Foundation

public enum Scheme {
    /// Resolves a scheme name for a row of `rowLength` values: nil when it cannot apply
    /// (rows not a whole number of its blocks). Throws on names it does not know.
    public static func resolve(_ name: String, groupSize: Int?, rowLength: Int) throws(QuantizeError) -> DType? {
        let n = name.lowercased()
        if let g = groupSize, ![32, 64, 128, 256].contains(g) { throw .invalidGroupSize(g) }
        func group(_ prefix: String, _ g: Int) -> DType? {
            rowLength % g == 0 ? DType(rawValue: "\(prefix)_g\(g)") : nil
        }
        switch n {
        case "f32", "f16", "bf16": return DType(rawValue: n)
        case "int8", "i8":
            if let g = groupSize { return group("i8", g) }
            // Per output channel as far as the block types allow: the largest group dividing the row.
            return [256, 128, 64, 32].lazy.compactMap { group("i8", $0) }.first
        case "int4", "int4-sym", "i4": return group("i4", groupSize ?? 32)
        case "int4-asym", "uint4", "u4": return group("u4", groupSize ?? 32)
        default:
            if let p = LlamaPreset(rawValue: n), p.base.rawValue != n { return try resolve(p.base.rawValue, groupSize: groupSize, rowLength: rowLength) }
            guard let d = DType(rawValue: n), d.isQuantized || d == .f16 || d == .bf16 || d == .f32 else { throw .unknownScheme(name) }
            if case .block(let v, _) = d.layout, rowLength % v != 0 { return nil }
            return d
        }
    }

    /// llama-quantize's fallback for k-quants on rows that are not multiples of 256.
    static func kQuantFallback(_ name: String) -> String? {
        switch name.lowercased() {
        case "q2_k", "q3_k": return "q4_0"
        case "q4_k": return "q5_0"
        case "q5_k": return "q5_1"
        case "q6_k": return "q8_0"
        default: return nil
        }
    }
}

public struct QuantizeRecipe: Sendable {
    public var scheme: String
    public var groupSize: Int?
    public var keep: [String]
    public var overrides: [(pattern: String, scheme: String)]
    public var fallback: String
    /// The model llama-quantize's preset rules look at (set for GGUF output, whose tensors
    /// carry llama.cpp's names); without it a preset gives every tensor its main type.
    public var presetModel: LlamaPreset.Model? = nil

    /// The llama-quantize preset `scheme` names (q4_k_m, q8_0, ...), if any.
    public var preset: LlamaPreset? { LlamaPreset(rawValue: scheme.lowercased()) }

    public init(scheme: String, groupSize: Int? = nil, keep: [String] = [], overrides: [(pattern: String, scheme: String)] = [], fallback: String = "f16") {
        self.scheme = scheme
        self.groupSize = groupSize
        self.keep = keep
        self.overrides = overrides
        self.fallback = fallback
    }

    /// Checks the scheme names and compiles the patterns.
    public func validate() throws(QuantizeError) -> [NSRegularExpression] {
        for s in [scheme, fallback] + overrides.map(\.scheme) { _ = try Scheme.resolve(s, groupSize: groupSize, rowLength: 256 * 7) }
        var out: [NSRegularExpression] = []
        for p in keep {
            guard let r = try? NSRegularExpression(pattern: p) else { throw .invalidPattern(p) }
            out.append(r)
        }
        for p in overrides.map(\.pattern) {
            guard let r = try? NSRegularExpression(pattern: Self.anchored(p)) else { throw .invalidPattern(p) }
            out.append(r)
        }
        return out
    }

    public struct Decision: Sendable, Equatable {
        /// nil: keep the tensor as it is.
        public var target: DType?
        /// Why (for the plan and the report): "1-D", "not float", "--keep", "--tensor-type", "scheme".
        public var reason: String
        /// The scheme asked for, when the tensor fell back to another.
        public var fellBackFrom: String?
    }

    /// A --tensor-type pattern matches at name-part boundaries: not inside a longer word
    /// (`_` and digits count as word characters), so `output` matches `output.weight` but not
    /// `blk.0.attn_output.weight`, and `blk\.1\.` not `blk.11.`.
    static func anchored(_ pattern: String) -> String { "\\b(?:" + pattern + ")\\b" }

    static func matches(_ pattern: String, _ names: [String]) -> Bool {
        guard let r = try? NSRegularExpression(pattern: pattern) else { return false }
        return names.contains { r.firstMatch(in: $0, range: NSRange($0.startIndex..., in: $0)) != nil }
    }

    /// What happens to a tensor `names[0]` (other names: aliases patterns may match too).
    public func decide(names: [String], dtype: DType, shape: [Int]) throws(QuantizeError) -> Decision {
        guard dtype.isFloatingPoint || dtype.isQuantized, dtype != .c64 else { return Decision(target: nil, reason: "not float") }
        guard shape.count >= 2 else { return Decision(target: nil, reason: "1-D") }
        if keep.contains(where: { Self.matches($0, names) }) { return Decision(target: nil, reason: "--keep") }
        var asked = scheme, reason = "scheme"
        let row = shape.last ?? 1
        if let o = overrides.first(where: { Self.matches(Self.anchored($0.pattern), names) }) {
            asked = o.scheme
            reason = "--tensor-type \(o.pattern)=\(o.scheme)"
        } else if let p = preset, let m = presetModel, let name = names.first {
            return try presetDecision(p, model: m, name: name, dtype: dtype, shape: shape)
        }
        if let d = try Scheme.resolve(asked, groupSize: groupSize, rowLength: row) {
            return Decision(target: d == dtype ? nil : d, reason: reason)
        }
        if let k = Scheme.kQuantFallback(asked), let d = try Scheme.resolve(k, groupSize: groupSize, rowLength: row) {
            return Decision(target: d, reason: reason, fellBackFrom: asked)
        }
        let d = try Scheme.resolve(fallback, groupSize: groupSize, rowLength: row) ?? .f16
        return Decision(target: d == dtype ? nil : d, reason: reason, fellBackFrom: asked)
    }

    /// llama-quantize's choice for one GGUF tensor (LlamaPresets.swift).
    func presetDecision(_ p: LlamaPreset, model m: LlamaPreset.Model, name: String, dtype: DType, shape: [Int]) throws(QuantizeError) -> Decision {
        guard LlamaPreset.quantizes(name, rank: shape.count) else { return Decision(target: nil, reason: "\(p.rawValue) keeps it") }
        let row = shape.last ?? 1
        let (t, why) = p.rule(for: name, rowLength: row, model: m)
        if row % LlamaPreset.blockSize(t) == 0 { return Decision(target: t == dtype ? nil : t, reason: why) }
        if let f = LlamaPreset.fallback(t), row % LlamaPreset.blockSize(f.type) == 0 {
            return Decision(target: f.type, reason: why + (f.substituted ? "; llama-quantize: iq4_nl, which ckpt does not write" : ""), fellBackFrom: t.rawValue)
        }
        let d = try Scheme.resolve(fallback, groupSize: groupSize, rowLength: row) ?? .f16
        return Decision(target: d == dtype ? nil : d, reason: why, fellBackFrom: t.rawValue)
    }

    /// The recipe as JSON text, recorded in the output's metadata.
    public var json: String {
        var o: [String] = ["\"scheme\":\"\(scheme)\""]
        if let g = groupSize { o.append("\"group_size\":\(g)") }
        func quote(_ s: String) -> String {
            "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        o.append("\"keep\":[" + keep.map(quote).joined(separator: ",") + "]")
        o.append("\"tensor_types\":[" + overrides.map { quote($0.pattern + "=" + $0.scheme) }.joined(separator: ",") + "]")
        o.append("\"fallback\":\(quote(fallback))")
        return "{" + o.joined(separator: ",") + "}"
    }
}

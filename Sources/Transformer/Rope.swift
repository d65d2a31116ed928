// Rotary position embeddings: reading `rope_parameters` / `rope_scaling` (every rope_type
// transformers defines for decoder LMs: default, linear, dynamic, yarn, longrope, llama3), and
// the inverse frequencies and cos/sin tables, computed in f32 as PyTorch does.
//
// transformers ≥ 5 writes `rope_parameters` with `rope_theta` inside; older configs have
// `rope_theta` at the top and `rope_scaling` ({"type" | "rope_type", "factor", ...}).

import CkptCore
import Foundation


extension ConfigReader {
    /// The rotary embedding of heads of size `headDim`, rotating `partial` of each head
    /// (`partial_rotary_factor`). `parameters` overrides where the rope parameters live
    /// (Gemma 3's per-layer-type dictionaries).
    public func rope(headDim: Int, partial explicitPartial: Double? = nil, parameters: JSONObject? = nil) throws -> RopeSpec {
        let params = parameters ?? (config["rope_parameters"]?.objectValue ?? config["rope_scaling"]?.objectValue).map(JSONObject.init)
        func p(_ key: String) -> JSONValue? { params?[key] }
        func positiveParam(_ key: String, default d: Double? = nil) throws -> Double {
            guard let v = p(key), v != .null else {
                if let d { return d }
                throw invalid("rope parameter \(key) is missing")
            }
            guard let x = v.doubleValue, x.isFinite, x > 0 else { throw invalid("rope parameter \(key) \(v) must be a positive number") }
            return x
        }
        let theta: Double
        if let v = p("rope_theta") {
            guard let x = v.doubleValue, x.isFinite, x > 0 else { throw invalid("rope_theta \(v) must be a positive number") }
            theta = x
        } else {
            theta = try positive("rope_theta", "rotary_emb_base", default: 10000)  // GPT-NeoX's older name
        }
        let partial: Double
        if let explicitPartial {
            partial = explicitPartial
        } else if let v = p("partial_rotary_factor"), v != .null {
            guard let x = v.doubleValue else { throw invalid("rope parameter partial_rotary_factor \(v) is not a number") }
            partial = x
        } else {
            partial = try number("partial_rotary_factor", "rotary_pct", default: 1)
        }
        guard partial > 0, partial <= 1 else { throw invalid("partial_rotary_factor \(partial) must be in (0, 1]") }
        let dim = Int(Double(headDim) * partial)
        guard dim >= 2, dim % 2 == 0 else { throw invalid("rotary dimension \(dim) (head size \(headDim) × partial_rotary_factor) must be even and at least 2") }
        let type = p("rope_type")?.stringValue ?? p("type")?.stringValue ?? "default"
        let maxPositions = try optionalSize("max_position_embeddings")
        func originalMax() throws -> Int {
            if let v = p("original_max_position_embeddings"), v != .null {
                guard let n = v.intValue, n > 0, n <= ConfigReader.maxSize else { throw invalid("rope parameter original_max_position_embeddings \(v) must be a positive integer") }
                return n
            }
            if let n = try optionalSize("original_max_position_embeddings") { return n }
            guard let maxPositions else { throw invalid("rope type \(type) needs max_position_embeddings") }
            return maxPositions
        }
        var spec = RopeSpec(theta: theta, rotaryDim: dim)
        switch type {
        case "default":
            break
        case "linear":
            spec.scaling = .linear(factor: try positiveParam("factor"))
        case "dynamic":
            spec.scaling = .dynamic(factor: try positiveParam("factor"), originalMax: try originalMax())
        case "llama3":
            let low = try positiveParam("low_freq_factor"), high = try positiveParam("high_freq_factor")
            guard high != low else { throw invalid("llama3 rope: high_freq_factor equals low_freq_factor") }
            spec.scaling = .llama3(factor: try positiveParam("factor"), lowFreqFactor: low, highFreqFactor: high, originalMax: try originalMax())
        case "yarn":
            var factor = try positiveParam("factor")
            let original = try originalMax()
            // transformers derives the factor from the two context lengths when both are given.
            if p("original_max_position_embeddings") != nil, let maxPositions { factor = Double(maxPositions) / Double(original) }
            func mscale(_ scale: Double, _ m: Double = 1) -> Double { scale <= 1 ? 1 : 0.1 * m * log(scale) + 1 }
            let attention: Double
            if let a = p("attention_factor"), a != .null {
                attention = try positiveParam("attention_factor")
            } else if let m = p("mscale")?.doubleValue, let mAll = p("mscale_all_dim")?.doubleValue, m != 0, mAll != 0 {
                attention = mscale(factor, m) / mscale(factor, mAll)
            } else {
                attention = mscale(factor)
            }
            spec.scaling = .yarn(factor: factor, originalMax: original, betaFast: try positiveParam("beta_fast", default: 32),
                                 betaSlow: try positiveParam("beta_slow", default: 1), attentionFactor: attention,
                                 truncate: p("truncate")?.boolValue ?? true)
        case "longrope":
            guard let short = p("short_factor")?.arrayValue?.compactMap(\.doubleValue), let long = p("long_factor")?.arrayValue?.compactMap(\.doubleValue),
                  short.count == dim / 2, long.count == dim / 2, (short + long).allSatisfy({ $0.isFinite && $0 > 0 })
            else { throw invalid("longrope: short_factor and long_factor must be \(dim / 2) positive numbers each") }
            let original = try originalMax()
            let factor = Double(maxPositions ?? original) / Double(original)
            let attention: Double
            if let a = p("attention_factor"), a != .null {
                attention = try positiveParam("attention_factor")
            } else {
                attention = factor <= 1 ? 1 : (1 + log(factor) / log(Double(original))).squareRoot()
            }
            spec.scaling = .longrope(short: short, long: long, originalMax: original, attentionFactor: attention)
        default:
            throw invalid("rope type \(type) is not supported (default, linear, dynamic, yarn, longrope, llama3)")
        }
        return spec
    }
}

/// A read-only JSON object (rope parameters may come from different places).
public struct JSONObject: Sendable {
    let object: [String: JSONValue]
    init(_ o: some Sequence<(key: String, value: JSONValue)>) { object = Dictionary(o.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }) }
    subscript(key: String) -> JSONValue? { object[key] }
}

extension RopeSpec {
    /// θ^(-2i/d) for i < d/2 in f32, as transformers computes them, scaled by the rope type,
    /// for a sequence of T tokens (dynamic and longrope depend on it); and the factor applied
    /// to cos and sin (yarn, longrope).
    func inverseFrequencies(T: Int) -> (inv: [Float], attentionScaling: Float) {
        let d = rotaryDim
        func base(_ theta: Double) -> [Float] {
            (0..<d / 2).map { i in Float(1) / powf(Float(theta), Float(2 * i) / Float(d)) }
        }
        switch scaling {
        case .none:
            return (base(theta), 1)
        case .linear(let factor):
            return (base(theta).map { $0 / Float(factor) }, 1)
        case .dynamic(let factor, let original):
            guard T > original else { return (base(theta), 1) }
            let scaled = theta * pow(factor * Double(T) / Double(original) - (factor - 1), Double(d) / Double(d - 2))
            return (base(scaled), 1)
        case .llama3(let factor, let low, let high, let original):
            let (f, lo, hi, oldCtx) = (Float(factor), Float(low), Float(high), Float(original))
            let lowWavelen = oldCtx / lo, highWavelen = oldCtx / hi
            return (base(theta).map { freq in
                let wavelen = 2 * Float.pi / freq
                if wavelen < highWavelen { return freq }
                if wavelen > lowWavelen { return freq / f }
                let smooth = (oldCtx / wavelen - lo) / (hi - lo)
                return (1 - smooth) * freq / f + smooth * freq
            }, 1)
        case .yarn(let factor, let original, let betaFast, let betaSlow, let attention, let truncate):
            func correctionDim(_ rotations: Double) -> Double {
                Double(d) * log(Double(original) / (rotations * 2 * Double.pi)) / (2 * log(theta))
            }
            var low = correctionDim(betaFast), high = correctionDim(betaSlow)
            if truncate { low = low.rounded(.down); high = high.rounded(.up) }
            low = max(low, 0); high = min(high, Double(d - 1))
            if low == high { high += 0.001 }
            let (lowF, highF) = (Float(low), Float(high))
            let inv = (0..<d / 2).map { i -> Float in
                let pos = powf(Float(theta), Float(2 * i) / Float(d))
                let extrapolation = 1 / pos, interpolation = 1 / (Float(factor) * pos)
                let ramp = min(max((Float(i) - lowF) / (highF - lowF), 0), 1)
                let extrapolationFactor = 1 - ramp
                return interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor
            }
            return (inv, Float(attention))
        case .longrope(let short, let long, let original, let attention):
            let ext = T > original ? long : short
            let inv = (0..<d / 2).map { i in 1 / (Float(ext[i]) * powf(Float(theta), Float(2 * i) / Float(d))) }
            return (inv, Float(attention))
        }
    }

    /// Whether the angles of a position change with the sequence length, for sequences of up
    /// to T tokens (dynamic NTK past the original context; longrope's short/long switch): then
    /// keys rotated for a shorter prefix differ from the full forward's, and a key/value cache
    /// is not exact.
    public func anglesDependOnLength(upTo T: Int) -> Bool {
        switch scaling {
        case .dynamic(_, let original): return T > original
        case .longrope(_, _, let original, _): return T > original
        default: return false
        }
    }

    /// cos and sin tables [T, rotaryDim/2].
    public func tables(T: Int) -> (cos: [Float], sin: [Float]) {
        let (inv, scaling) = inverseFrequencies(T: T)
        return Kernels.ropeTables(T: T, invFreq: inv, attentionScaling: scaling)
    }
}

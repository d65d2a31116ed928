// Activation-aware weight quantization (AWQ, Lin et al. 2023, "AWQ: Activation-aware Weight
// Quantization for LLM Compression and Acceleration"): the scale search for a group of linear
// layers that share one input x (e.g. q, k, v after the attention norm).
//
// Input channel j of every weight in the group is multiplied by s_j before rounding and the
// producer of x (a norm, or the previous linear's output rows) divides its channel j by s_j,
// so the float function is unchanged while the channels that carry large activations get
// finer levels. s = mean|x|^α (clamped at 1e-4), normalised by sqrt(max s · min s), for α on a
// grid of 20 in [0, 1); the α whose rounded weights give the smallest output error
//   Σ_layers tr(ΔW·G·ΔWᵀ),   ΔW = Q(W·diag s)·diag(1/s) − W,   G = Σ x·xᵀ
// wins (α = 0, s = 1, is round-to-nearest, so the search never does worse by this measure).
// W is [rows = output features, cols = input features], blocks along each row.

import CkptCore
import COpenBLAS
import Foundation

public enum AWQ {
    /// AutoAWQ's grid: α = i/20, i = 0..<20.
    public static let gridSize = 20

    public struct Layer: Sendable {
        public var weight: [Float]
        public var rows: Int
        public var target: DType
        public init(weight: [Float], rows: Int, target: DType) {
            self.weight = weight
            self.rows = rows
            self.target = target
        }
    }

    public struct Result: Sendable {
        public var scales: [Float]
        public var alpha: Double
        /// Per layer: ‖ΔW·X‖/‖W·X‖ with round-to-nearest (s = 1), and with the chosen scales.
        public var errorBefore: [Double]
        public var errorAfter: [Double]
    }

    /// The scales for s = mean|x|^α.
    public static func scales(meanAbs: [Double], alpha: Double) -> [Float] {
        var s = meanAbs.map { Swift.max(pow(Swift.max($0, 1e-4), alpha), 1e-4) }
        let lo = s.min() ?? 1, hi = s.max() ?? 1
        let norm = (lo * hi).squareRoot()
        if norm > 0 { s = s.map { $0 / norm } }
        return s.map(Float.init)
    }

    /// Quantized-then-unscaled weights: Q(W·diag s)·diag(1/s).
    static func roundTrip(_ w: [Float], rows: Int, cols: Int, scales s: [Float], target: DType) throws -> [Float] {
        var ws = w
        for r in 0..<rows { for c in 0..<cols { ws[r * cols + c] *= s[c] } }
        let q = try Quantizer.quantize(ws, rowLength: cols, to: target, jobs: 1)
        var v = try q.withUnsafeBytes { try Quantizer.dequantize($0, dtype: target, count: ws.count, jobs: 1) }
        for r in 0..<rows { for c in 0..<cols { v[r * cols + c] /= s[c] } }
        return v
    }

    /// tr(M·G·Mᵀ) for M [rows, cols] (f64), G [cols, cols].
    static func energy(_ m: [Double], rows: Int, cols: Int, gram g: [Double]) -> Double {
        var mg = [Double](repeating: 0, count: rows * cols)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(cols), Int32(cols), 1, m, Int32(cols),
                    g, Int32(cols), 0, &mg, Int32(cols))
        var s = 0.0
        for i in 0..<m.count { s += mg[i] * m[i] }
        return Swift.max(0, s)
    }

    /// Searches α for `layers` sharing an input of `cols` channels with Gram matrix `gram`
    /// ([cols, cols], row-major) and per-channel mean |x| `meanAbs`.
    public static func search(_ layers: [Layer], cols: Int, gram: [Double], meanAbs: [Double]) throws -> Result {
        precondition(gram.count == cols * cols && meanAbs.count == cols && layers.allSatisfy { $0.weight.count == $0.rows * cols })
        let totals = layers.map { l in energy(l.weight.map(Double.init), rows: l.rows, cols: cols, gram: gram) }
        func errors(_ s: [Float]) throws -> [Double] {
            try layers.map { l in
                let v = try roundTrip(l.weight, rows: l.rows, cols: cols, scales: s, target: l.target)
                var d = [Double](repeating: 0, count: v.count)
                for i in 0..<v.count { d[i] = Double(v[i]) - Double(l.weight[i]) }
                return energy(d, rows: l.rows, cols: cols, gram: gram)
            }
        }
        let ones = [Float](repeating: 1, count: cols)
        let base = try errors(ones)
        var best = (alpha: 0.0, scales: ones, errors: base, total: base.reduce(0, +))
        for i in 1..<gridSize {
            let alpha = Double(i) / Double(gridSize)
            let s = scales(meanAbs: meanAbs, alpha: alpha)
            let e = try errors(s)
            let total = e.reduce(0, +)
            if total < best.total { best = (alpha, s, e, total) }
        }
        func relative(_ e: [Double]) -> [Double] { zip(e, totals).map { $1 > 0 ? ($0 / $1).squareRoot() : 0 } }
        return Result(scales: best.scales, alpha: best.alpha, errorBefore: relative(base), errorAfter: relative(best.errors))
    }
}

// MARK: clipping (AutoAWQ's auto_clip)

extension AWQ {
    /// AutoAWQ's grid of clipping thresholds: max|w| of a group times 1 − i/20, i = 0..<10.
    public static let clipGrid = 20
    public static let clipSteps = 10

    public struct Clip: Sendable {
        /// Per row and block of the target type: the largest |w| kept (.infinity: not clipped).
        public var maxima: [Float]
        /// Values per block (the group the thresholds apply to).
        public var group: Int
        /// ‖ΔW·X‖/‖W·X‖ of the rounded layer without and with the clipping.
        public var errorBefore: Double
        public var errorAfter: Double
        public var clips: Bool { maxima.contains { $0.isFinite } }
    }

    /// `w` [rows, cols] with every block's values clamped to ±maxima[row, block].
    public static func clipped(_ w: [Float], cols: Int, clip: Clip) -> [Float] {
        var out = w
        let groups = cols / clip.group
        for i in out.indices {
            let m = clip.maxima[(i / cols) * groups + (i % cols) / clip.group]
            if m.isFinite { out[i] = Swift.min(m, Swift.max(-m, out[i])) }
        }
        return out
    }

    /// The clipping search: per row and block of `target` (the unit its encoder rounds
    /// independently), the threshold among max|w|·(1 − i/20), i = 0..<10, whose rounded block
    /// gives the smallest output error on the block's own inputs, Δw_gᵀ·G_gg·Δw_g against the
    /// unclipped weights (AutoAWQ measures each group's output the same way). The cross-block
    /// terms of G are left out of the search, so the whole layer's error tr(ΔW·G·ΔWᵀ) is then
    /// checked against no clipping and the clipping dropped if it did not lower it: the search
    /// never makes the layer's measured output error worse.
    public static func clipSearch(weight w: [Float], rows: Int, cols: Int, gram: [Double], target: DType) throws -> Clip {
        guard case .block(let g, _) = target.layout, cols % g == 0, w.count == rows * cols, gram.count == cols * cols else {
            throw QuantizeError.notABlockType(target)
        }
        let groups = cols / g
        var amax = [Float](repeating: 0, count: rows * groups)
        for i in w.indices { amax[(i / cols) * groups + (i % cols) / g] = Swift.max(amax[(i / cols) * groups + (i % cols) / g], abs(w[i])) }
        // The diagonal blocks of G, each [g, g] contiguous.
        var blocks = [Double](repeating: 0, count: groups * g * g)
        for gi in 0..<groups { for a in 0..<g { for b in 0..<g { blocks[(gi * g + a) * g + b] = gram[(gi * g + a) * cols + gi * g + b] } } }
        var best = [Double](repeating: .infinity, count: rows * groups)
        var maxima = [Float](repeating: .infinity, count: rows * groups)
        var d = [Double](repeating: 0, count: rows * g), m = [Double](repeating: 0, count: rows * g)
        for step in 0..<clipSteps {
            let shrink = 1 - Float(step) / Float(clipGrid)
            let candidate = Clip(maxima: step == 0 ? [Float](repeating: .infinity, count: rows * groups) : amax.map { $0 * shrink },
                                 group: g, errorBefore: 0, errorAfter: 0)
            let c = clipped(w, cols: cols, clip: candidate)
            let q = try Quantizer.quantize(c, rowLength: cols, to: target, jobs: 1)
            let v = try q.withUnsafeBytes { try Quantizer.dequantize($0, dtype: target, count: w.count, jobs: 1) }
            for gi in 0..<groups {
                for r in 0..<rows { for j in 0..<g { d[r * g + j] = Double(v[r * cols + gi * g + j]) - Double(w[r * cols + gi * g + j]) } }
                blocks.withUnsafeBufferPointer { bp in
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(g), Int32(g), 1, d, Int32(g),
                                bp.baseAddress! + gi * g * g, Int32(g), 0, &m, Int32(g))
                }
                for r in 0..<rows {
                    var e = 0.0
                    for j in 0..<g { e += m[r * g + j] * d[r * g + j] }
                    if e < best[r * groups + gi] {
                        best[r * groups + gi] = e
                        maxima[r * groups + gi] = candidate.maxima[r * groups + gi]
                    }
                }
            }
        }
        var clip = Clip(maxima: maxima, group: g, errorBefore: 0, errorAfter: 0)
        let total = energy(w.map(Double.init), rows: rows, cols: cols, gram: gram)
        func error(_ c: Clip) throws -> Double {
            let q = try Quantizer.quantize(clipped(w, cols: cols, clip: c), rowLength: cols, to: target, jobs: 1)
            let v = try q.withUnsafeBytes { try Quantizer.dequantize($0, dtype: target, count: w.count, jobs: 1) }
            var dd = [Double](repeating: 0, count: w.count)
            for i in w.indices { dd[i] = Double(v[i]) - Double(w[i]) }
            return total > 0 ? (energy(dd, rows: rows, cols: cols, gram: gram) / total).squareRoot() : 0
        }
        let none = Clip(maxima: [Float](repeating: .infinity, count: rows * groups), group: g, errorBefore: 0, errorAfter: 0)
        clip.errorBefore = try error(none)
        clip.errorAfter = clip.clips ? try error(clip) : clip.errorBefore
        if clip.errorAfter > clip.errorBefore {
            clip.maxima = none.maxima
            clip.errorAfter = clip.errorBefore
        }
        return clip
    }
}

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

// How far a candidate model's outputs are from a reference's, on the same inputs.
//
// All sums are in Double. For one sequence with outputs a (reference) and b (candidate),
// row-major [T, N]:
//   max_abs, mean_abs   over all T·N values of |a - b|
//   cosine              a·b / (|a| |b|) over the flattened outputs (1 when both are zero)
// Language models (N = V, logits), per position t, with p = softmax(a_t), q = softmax(b_t):
//   kl(t)               KL(p ‖ q) = Σ p·(log p − log q), computed from log-softmax, in nats
//   top1                fraction of positions where argmax a_t = argmax b_t
//   perplexity          exp(−mean over t < T−1 of log softmax(x_t)[token_{t+1}]), for a and b
// Per-layer drift (same depth): ‖h_b − h_a‖ / ‖h_a‖ of each block's input.

import Foundation

public struct SequenceMetrics: Sendable, Equatable {
    public var maxAbs: Double
    public var meanAbs: Double
    public var cosine: Double
    public var klMean: Double?
    public var klMax: Double?
    public var top1: Double?
    public var perplexityReference: Double?
    public var perplexityCandidate: Double?
    public var positions: Int
    /// Per position along the sequence (for the HTML report; not in the JSON): KL(p ‖ q) for
    /// language models (nats), else the cosine of the two output rows.
    public var positionKL: [Double]? = nil
    public var positionCosine: [Double]? = nil
}

public enum Metrics {
    public static func compare(reference a: [Float], candidate b: [Float], rows: Int, cols: Int,
                               logits: Bool, tokens: [Int]? = nil) -> SequenceMetrics {
        precondition(a.count == rows * cols && b.count == rows * cols, "output sizes differ")
        var maxAbs = 0.0, sumAbs = 0.0, dot = 0.0, na = 0.0, nb = 0.0
        let identical = a == b
        for i in 0..<a.count {
            let x = Double(a[i]), y = Double(b[i])
            let d = abs(x - y)
            if d > maxAbs || d.isNaN { maxAbs = d.isNaN ? .nan : d }
            sumAbs += d
            dot += x * y
            na += x * x
            nb += y * y
        }
        // Identical outputs have cosine exactly 1 (the division can round to 1 - 1e-16).
        let cosine = identical || (na == 0 && nb == 0) ? 1 : min(1, dot / (na.squareRoot() * nb.squareRoot()))
        var m = SequenceMetrics(maxAbs: maxAbs, meanAbs: a.isEmpty ? 0 : sumAbs / Double(a.count), cosine: cosine,
                                klMean: nil, klMax: nil, top1: nil, perplexityReference: nil, perplexityCandidate: nil,
                                positions: rows)
        guard logits, rows > 0 else {
            if rows > 0, cols > 0 { m.positionCosine = (0..<rows).map { rowCosine(a, b, $0 * cols, cols) } }
            return m
        }
        var klSum = 0.0, klMax = 0.0, agree = 0
        var perPosition: [Double] = []
        perPosition.reserveCapacity(rows)
        var nllA = 0.0, nllB = 0.0
        for t in 0..<rows {
            let ra = a[t * cols..<(t + 1) * cols], rb = b[t * cols..<(t + 1) * cols]
            let la = logSoftmax(ra), lb = logSoftmax(rb)
            var kl = 0.0
            for j in 0..<cols where la[j] > -.infinity {
                kl += Foundation.exp(la[j]) * (la[j] - lb[j])
            }
            kl = max(kl, 0)  // rounding can leave a tiny negative
            klSum += kl
            klMax = max(klMax, kl)
            perPosition.append(kl)
            if argmax(ra) == argmax(rb) { agree += 1 }
            if let tokens, t + 1 < tokens.count {
                nllA -= la[tokens[t + 1]]
                nllB -= lb[tokens[t + 1]]
            }
        }
        m.positionKL = perPosition
        m.klMean = klSum / Double(rows)
        m.klMax = klMax
        m.top1 = Double(agree) / Double(rows)
        if let tokens, tokens.count > 1 {
            let n = Double(min(rows, tokens.count) - 1)
            m.perplexityReference = Foundation.exp(nllA / n)
            m.perplexityCandidate = Foundation.exp(nllB / n)
        }
        return m
    }

    /// Cosine of a[start..<start+n] and b[start..<start+n] (1 when both are zero or equal).
    static func rowCosine(_ a: [Float], _ b: [Float], _ start: Int, _ n: Int) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0, same = true
        for i in start..<(start + n) {
            let x = Double(a[i]), y = Double(b[i])
            dot += x * y
            na += x * x
            nb += y * y
            if a[i] != b[i] { same = false }
        }
        return same || (na == 0 && nb == 0) ? 1 : min(1, dot / (na.squareRoot() * nb.squareRoot()))
    }

    static func logSoftmax(_ row: ArraySlice<Float>) -> [Double] {
        var mx = -Double.infinity
        for v in row { mx = max(mx, Double(v)) }
        var sum = 0.0
        for v in row { sum += Foundation.exp(Double(v) - mx) }
        let lse = mx + Foundation.log(sum)
        return row.map { Double($0) - lse }
    }

    static func argmax(_ row: ArraySlice<Float>) -> Int {
        var best = row.startIndex
        for i in row.indices where row[i] > row[best] { best = i }
        return best - row.startIndex
    }

    /// ‖b − a‖ / ‖a‖ (0 when both are zero).
    public static func relativeRMS(reference a: [Float], candidate b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) {
            num += (Double(y) - Double(x)) * (Double(y) - Double(x))
            den += Double(x) * Double(x)
        }
        if den == 0 { return num == 0 ? 0 : .infinity }
        return (num / den).squareRoot()
    }
}

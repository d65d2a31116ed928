// `ckpt verify --text`: compare two models on real text, in llama-perplexity's way.
//
// Language models: the whole text is tokenized once (with the tokenizer's leading special
// tokens, e.g. BOS) and cut into non-overlapping windows of N tokens (`--context`); window i
// holds tokens [i·N, (i+1)·N) with its first token replaced by BOS when the tokenizer adds
// one. Each window runs through both models; positions j in [N/2, N−1) are scored, each
// predicting token j+1 of the window — the first half is context only. Per scored position,
// with p = softmax(reference), q = softmax(candidate) and t the next token:
//   KL(p ‖ q) = Σ p (log p − log q)      nll = −log p_t, −log q_t      Δp = q_t − p_t
//   same top = argmax p == argmax q
// and over all positions the statistics llama-perplexity prints (mean ± uncertainty of
// KL, Δp; percentiles with its interpolation; PPL of both, their ratio and correlation).
// Encoders: every non-empty line is one sequence (with the post-processor's special tokens),
// compared by the usual output metrics (cosine of the last hidden state).
//
// Saved reference outputs (`--save-logits F`, reused by `--reference-logits F`): per scored
// position the reference's largest log-probabilities (until their mass reaches 1 − 1e-6, at
// most `top_k` of them) in float64, and log p of the next token. The KL against a candidate is
// then computed with the reference's remaining tail (mass r) merged into one outcome: that is
// never above the full KL, and is below it by at most a bound computed per position (the tail's
// largest possible contribution given that no tail probability exceeds the smallest kept one),
// reported as `kl_error_bound`.

import CkptCore
import Formats
import Foundation
import HeapModule
import OrderedCollections
import Tokenizer
import Transformer

public struct TextVerifyOptions: Sendable {
    /// Window length in tokens (llama-perplexity's -c); nil: min(512, the model's positions).
    public var context: Int?
    /// At most this many windows (llama-perplexity's --chunks).
    public var chunks: Int?
    public var saveLogits: String?
    public var referenceLogits: String?
    /// Most reference log-probabilities kept per position in a saved file.
    public var topK: Int = 256
    public init(context: Int? = nil, chunks: Int? = nil, saveLogits: String? = nil, referenceLogits: String? = nil, topK: Int = 256) {
        self.context = context
        self.chunks = chunks
        self.saveLogits = saveLogits
        self.referenceLogits = referenceLogits
        self.topK = topK
    }
}

/// Percentiles and mean of one per-position quantity.
public struct Distribution: Sendable, Equatable {
    public var mean: Double, uncertainty: Double
    public var max: Double, min: Double, median: Double
    /// (fraction, value) for 0.999, 0.99, 0.95, 0.90, 0.75, 0.25, 0.10, 0.05, 0.01, 0.001
    public var percentiles: [(Double, Double)]

    public static func == (a: Distribution, b: Distribution) -> Bool {
        a.mean == b.mean && a.max == b.max && a.min == b.min && a.median == b.median
    }

    static let fractions = [0.999, 0.99, 0.95, 0.90, 0.75, 0.25, 0.10, 0.05, 0.01, 0.001]

    init(_ values: [Double], sum: Double, sum2: Double) {
        let s = values.sorted()
        let n = s.count
        (mean, uncertainty) = TextStats.meanAndUncertainty(sum, sum2, n)
        max = s.last ?? 0
        min = s.first ?? 0
        median = n == 0 ? 0 : (n % 2 == 0 ? 0.5 * (s[n / 2] + s[n / 2 - 1]) : s[n / 2])
        percentiles = Distribution.fractions.map { ($0, Distribution.percentile(s, $0)) }
    }

    /// llama-perplexity's percentile: linear interpolation at fraction·(n−1).
    static func percentile(_ s: [Double], _ f: Double) -> Double {
        guard let first = s.first, let last = s.last else { return 0 }
        if f <= 0 { return first }
        if f >= 1 { return last }
        var p = f * Double(s.count - 1)
        let ip = Int(p)
        p -= Double(ip)
        return (1 - p) * s[ip] + p * s[Swift.min(ip + 1, s.count - 1)]
    }

    static func key(_ f: Double) -> String {
        // 0.999 -> "p99_9", 0.99 -> "p99", 0.001 -> "p0_1"
        let pct = (f * 1000).rounded() / 10
        let text = pct == pct.rounded() ? String(Int(pct)) : String(format: "%.1f", pct).replacingOccurrences(of: ".", with: "_")
        return "p" + text
    }

    func json(scale: Double = 1) -> JSONValue {
        var o: OrderedDictionary<String, JSONValue> = [
            "mean": .double(mean * scale), "uncertainty": .double(uncertainty * scale), "max": .double(max * scale),
        ]
        for (f, v) in percentiles where f > 0.5 { o[Distribution.key(f)] = .double(v * scale) }
        o["median"] = .double(median * scale)
        for (f, v) in percentiles where f < 0.5 { o[Distribution.key(f)] = .double(v * scale) }
        o["min"] = .double(min * scale)
        return .object(o)
    }
}

/// The text-mode part of a verify report.
public struct TextStats: Sendable {
    public enum Mode: String, Sendable { case windows, lines }
    public var mode: Mode
    public var tokens: Int
    public var context: Int?
    public var windows: Int
    public var scored: Int
    public var bos: Int?
    public var referenceSource: String
    // Language models only:
    public var pplReference: Double?, pplReferenceUncertainty: Double?
    public var pplCandidate: Double?, pplCandidateUncertainty: Double?
    public var pplCorrelation: Double?
    public var lnPplRatio: Double?, lnPplRatioUncertainty: Double?
    public var pplRatio: Double?, pplRatioUncertainty: Double?
    public var pplDifference: Double?, pplDifferenceUncertainty: Double?
    public var kl: Distribution?
    public var deltaP: Distribution?
    public var deltaPRMS: Double?, deltaPRMSUncertainty: Double?
    public var sameTop: Double?, sameTopUncertainty: Double?
    /// Saved-reference path: the mean and largest per-position bound on how far the KL may be
    /// below the full KL, and the largest tail mass merged.
    public var klErrorBound: Double?
    public var klErrorBoundMax: Double?
    public var tailMassMax: Double?
    /// Encoders: lines longer than the model's positions, cut to fit.
    public var truncatedLines: Int?

    static func meanAndUncertainty(_ sum: Double, _ sum2: Double, _ count: Int) -> (Double, Double) {
        if count < 1 { return (0, 0) }
        let f = sum / Double(count)
        var df = sum2 / Double(count) - f * f
        df = df > 0 && count > 10 ? (df / Double(count - 1)).squareRoot() : 0
        return (f, df)
    }

    static func covariance(_ a: Double, _ b: Double, _ ab: Double, _ count: Int) -> Double {
        if count < 10 { return 0 }
        let n = Double(count)
        return (ab / n - (a / n) * (b / n)) / (n - 1)
    }

    public func json() -> JSONValue {
        var o: OrderedDictionary<String, JSONValue> = [
            "mode": .string(mode.rawValue), "tokens": .int(tokens), "context": context.map { .int($0) } ?? .null,
            "windows": .int(windows), "scored": .int(scored), "bos": bos.map { .int($0) } ?? .null,
            "reference_logits": .string(referenceSource),
        ]
        func d(_ v: Double?) -> JSONValue { v.map { .double($0) } ?? .null }
        if mode == .windows {
            o["ppl_reference"] = d(pplReference)
            o["ppl_reference_uncertainty"] = d(pplReferenceUncertainty)
            o["ppl_candidate"] = d(pplCandidate)
            o["ppl_candidate_uncertainty"] = d(pplCandidateUncertainty)
            o["ppl_correlation"] = d(pplCorrelation)
            o["ln_ppl_ratio"] = d(lnPplRatio)
            o["ln_ppl_ratio_uncertainty"] = d(lnPplRatioUncertainty)
            o["ppl_ratio"] = d(pplRatio)
            o["ppl_ratio_uncertainty"] = d(pplRatioUncertainty)
            o["ppl_difference"] = d(pplDifference)
            o["ppl_difference_uncertainty"] = d(pplDifferenceUncertainty)
            o["kl"] = kl?.json() ?? .null
            o["delta_p"] = deltaP?.json() ?? .null
            o["delta_p_rms"] = d(deltaPRMS)
            o["delta_p_rms_uncertainty"] = d(deltaPRMSUncertainty)
            o["same_top"] = d(sameTop)
            o["same_top_uncertainty"] = d(sameTopUncertainty)
            o["kl_error_bound"] = d(klErrorBound)
            o["kl_error_bound_max"] = d(klErrorBoundMax)
            o["tail_mass_max"] = d(tailMassMax)
        } else {
            o["truncated_lines"] = .int(truncatedLines ?? 0)
        }
        return .object(o)
    }

    /// llama-perplexity's summary blocks.
    public func table() -> String {
        var l = ["text: \(tokens) tokens, " + (mode == .windows
            ? "\(windows) windows of \(context ?? 0), \(scored) positions scored" + (bos.map { ", BOS \($0)" } ?? "")
                + ", reference logits \(referenceSource)"
            : "\(windows) lines" + ((truncatedLines ?? 0) > 0 ? " (\(truncatedLines!) cut to the model's positions)" : ""))]
        guard mode == .windows, let kl, let deltaP else { return l.joined(separator: "\n") }
        func f(_ v: Double?) -> String { String(format: "%10.6f", v ?? .nan) }
        l.append("====== Perplexity statistics ======")
        l.append("Mean PPL(Q)                   : \(f(pplCandidate)) ± \(f(pplCandidateUncertainty))")
        l.append("Mean PPL(base)                : \(f(pplReference)) ± \(f(pplReferenceUncertainty))")
        l.append(String(format: "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%", 100 * (pplCorrelation ?? .nan)))
        l.append("Mean ln(PPL(Q)/PPL(base))     : \(f(lnPplRatio)) ± \(f(lnPplRatioUncertainty))")
        l.append("Mean PPL(Q)/PPL(base)         : \(f(pplRatio)) ± \(f(pplRatioUncertainty))")
        l.append("Mean PPL(Q)-PPL(base)         : \(f(pplDifference)) ± \(f(pplDifferenceUncertainty))")
        l.append("====== KL divergence statistics ======")
        l.append("Mean    KLD: \(f(kl.mean)) ± \(f(kl.uncertainty))")
        l.append("Maximum KLD: \(f(kl.max))")
        func label(_ fr: Double) -> String { String(format: "%4.1f%%", fr * 100).padding(toLength: 8, withPad: " ", startingAt: 0) }
        for (fr, v) in kl.percentiles where fr > 0.5 && fr != 0.75 { l.append("\(label(fr))KLD: \(f(v))") }
        l.append("Median  KLD: \(f(kl.median))")
        for (fr, v) in kl.percentiles where fr < 0.5 && fr != 0.25 { l.append("\(label(fr))KLD: \(f(v))") }
        l.append("Minimum KLD: \(f(kl.min))")
        if let b = klErrorBound { l.append(String(format: "KLD from saved reference: at most %.3g below the full KL (mean), %.3g (worst position)", b, klErrorBoundMax ?? 0)) }
        l.append("====== Token probability statistics ======")
        l.append(String(format: "Mean    Δp: %6.3f ± %5.3f %%", 100 * deltaP.mean, 100 * deltaP.uncertainty))
        l.append(String(format: "Maximum Δp: %6.3f%%", 100 * deltaP.max))
        for (fr, v) in deltaP.percentiles where fr > 0.5 { l.append("\(label(fr))Δp: " + String(format: "%6.3f%%", 100 * v)) }
        l.append(String(format: "Median  Δp: %6.3f%%", 100 * deltaP.median))
        for (fr, v) in deltaP.percentiles where fr < 0.5 { l.append("\(label(fr))Δp: " + String(format: "%6.3f%%", 100 * v)) }
        l.append(String(format: "Minimum Δp: %6.3f%%", 100 * deltaP.min))
        l.append(String(format: "RMS Δp    : %6.3f ± %5.3f %%", 100 * (deltaPRMS ?? .nan), 100 * (deltaPRMSUncertainty ?? .nan)))
        l.append(String(format: "Same top p: %6.3f ± %5.3f %%", 100 * (sameTop ?? .nan), 100 * (sameTopUncertainty ?? .nan)))
        return l.joined(separator: "\n")
    }
}

/// One scored position.
struct PositionScore {
    var kl: Double
    var nllReference: Double
    var nllCandidate: Double
    var sameTop: Bool
    var deltaP: Double
    var klBound: Double = 0
    var tailMass: Double = 0
}

/// What the reference contributes at one position when its logits come from a file.
struct ReferenceRecord {
    var logpTarget: Double
    var ids: [Int]
    var logps: [Double]
}

public enum TextVerifier {
    // MARK: Per-position scores

    static func logSoftmax(_ row: ArraySlice<Float>) -> [Double] { Metrics.logSoftmax(row) }

    static func argmax(_ row: ArraySlice<Float>) -> Int { Metrics.argmax(row) }

    static func score(reference a: ArraySlice<Float>, candidate b: ArraySlice<Float>, target: Int) -> PositionScore {
        let la = logSoftmax(a), lb = logSoftmax(b)
        var kl = 0.0
        for j in 0..<la.count where la[j] > -.infinity { kl += Foundation.exp(la[j]) * (la[j] - lb[j]) }
        return PositionScore(kl: kl, nllReference: -la[target], nllCandidate: -lb[target], sameTop: argmax(a) == argmax(b),
                             deltaP: Foundation.exp(lb[target]) - Foundation.exp(la[target]))
    }

    /// The reference's record for a saved file: its largest log-probabilities (ties by lower
    /// id) until their mass reaches 1 − 1e-6, at most `topK`.
    static func record(reference a: ArraySlice<Float>, target: Int, topK: Int) -> ReferenceRecord {
        let la = logSoftmax(a)
        // The topK largest (ties: lower id first) by a bounded min-heap, O(V log K).
        struct Entry: Comparable {
            var lp: Double, id: Int
            static func < (x: Entry, y: Entry) -> Bool { x.lp != y.lp ? x.lp < y.lp : x.id > y.id }
        }
        let k = max(1, topK)
        var heap = Heap<Entry>()
        for (i, lp) in la.enumerated() {
            let e = Entry(lp: lp, id: i)
            if heap.count < k { heap.insert(e) } else if let m = heap.min, m < e { _ = heap.replaceMin(with: e) }
        }
        let order = heap.unordered.sorted(by: >).map(\.id)
        var ids: [Int] = [], logps: [Double] = []
        var mass = 0.0
        for i in order {
            if ids.count >= max(1, topK) || mass >= 1 - 1e-6 { break }
            ids.append(i)
            logps.append(la[i])
            mass += Foundation.exp(la[i])
        }
        return ReferenceRecord(logpTarget: la[target], ids: ids, logps: logps)
    }

    static func score(record r: ReferenceRecord, candidate b: ArraySlice<Float>, target: Int) -> PositionScore {
        let lb = logSoftmax(b)
        var kept = [Bool](repeating: false, count: lb.count)
        var kl = 0.0, keptMass = 0.0
        for (i, lp) in zip(r.ids, r.logps) {
            kept[i] = true
            let p = Foundation.exp(lp)
            keptMass += p
            kl += p * (lp - lb[i])
        }
        // Every id kept: whatever 1 − mass is left is rounding, not a tail.
        let tail = r.ids.count >= lb.count ? 0 : max(0, 1 - keptMass)
        var bound = 0.0
        if tail > 0 {
            // The tail as one outcome: r log(r / q_tail), q_tail by log-sum-exp over the tail.
            var tailLogQ: [Double] = []
            tailLogQ.reserveCapacity(lb.count - r.ids.count)
            for j in 0..<lb.count where !kept[j] { tailLogQ.append(lb[j]) }
            let m = tailLogQ.max() ?? -.infinity
            let logQTail = m == -.infinity ? -Double.infinity : m + Foundation.log(tailLogQ.reduce(0.0) { $0 + Foundation.exp($1 - m) })
            let merged = tail * (Foundation.log(tail) - logQTail)
            kl += merged
            // Largest tail contribution: tail probabilities are at most the smallest kept one;
            // Σ p log(p/q) is largest putting that much on the tail's least likely candidates.
            let cap = Foundation.exp(r.logps.last ?? 0)
            // Only the ceil(tail / cap) least likely candidates can receive tail mass.
            let needed = min(tailLogQ.count, Int(min(Double(tailLogQ.count), (tail / max(cap, .leastNormalMagnitude)).rounded(.up))) + 1)
            var smallest: [Double]
            if needed * 8 < tailLogQ.count {
                var h = Heap<Double>()
                for lq in tailLogQ {
                    if h.count < needed { h.insert(lq) } else if let m = h.max, lq < m { _ = h.replaceMax(with: lq) }
                }
                smallest = h.unordered.sorted()
            } else {
                smallest = tailLogQ.sorted()
            }
            var left = tail, upper = 0.0
            for lq in smallest where left > 0 {
                let p = min(cap, left)
                upper += p * (Foundation.log(p) - lq)
                left -= p
            }
            bound = max(0, upper - merged)
        }
        let refTop = r.ids.first ?? 0
        return PositionScore(kl: kl, nllReference: -r.logpTarget, nllCandidate: -lb[target], sameTop: refTop == argmax(b),
                             deltaP: Foundation.exp(lb[target]) - Foundation.exp(r.logpTarget), klBound: bound, tailMass: tail)
    }

    // MARK: Windows

    /// Number of windows: every whole window of `context` tokens, at most `chunks`.
    public static func windowCount(tokens: Int, context: Int, chunks: Int?) -> Int {
        let n = tokens / context
        return chunks.map { min($0, n) } ?? n
    }

    /// Window i as the model sees it (first token replaced by BOS when there is one).
    public static func window(_ tokens: [Int], _ i: Int, context: Int, bos: Int?) -> [Int] {
        var w = Array(tokens[(i * context)..<((i + 1) * context)])
        if let bos { w[0] = bos }
        return w
    }

    enum ReferenceSource {
        case model(([Int]) throws -> [Float])
        case saved(LogitsFile)
    }

    /// Scores every window. `candidate` and a model reference map a window to logits [N, V].
    static func scoreWindows(tokens: [Int], context n: Int, windows: Int, bos: Int?, vocab: Int,
                             reference: ReferenceSource, candidate: ([Int]) throws -> [Float],
                             save: LogitsFile?, topK: Int, progress: ((Int) -> Void)? = nil) throws
        -> (sequences: [SequenceMetrics], positions: [PositionScore], overallAbs: (Double, Double, Double)) {
        let first = n / 2
        var sequences: [SequenceMetrics] = []
        var all: [PositionScore] = []
        var maxAbs = 0.0, sumAbs = 0.0, countAbs = 0
        var minCos = 1.0
        for i in 0..<windows {
            let w = window(tokens, i, context: n, bos: bos)
            let b = try candidate(w)
            guard b.count == n * vocab else { throw VerifyError.incomparable("candidate logits have \(b.count / max(n, 1)) columns, vocabulary \(vocab)") }
            var scores: [PositionScore] = []
            var m = SequenceMetrics(maxAbs: .nan, meanAbs: .nan, cosine: .nan, klMean: nil, klMax: nil, top1: nil,
                                    perplexityReference: nil, perplexityCandidate: nil, positions: n - 1 - first)
            switch reference {
            case .model(let run):
                let a = try run(w)
                guard a.count == b.count else { throw VerifyError.incomparable("the models' logits differ in size") }
                var recs: [ReferenceRecord] = []
                for j in first..<(n - 1) {
                    let target = tokens[i * n + j + 1]
                    let ra = a[(j * vocab)..<((j + 1) * vocab)], rb = b[(j * vocab)..<((j + 1) * vocab)]
                    scores.append(score(reference: ra, candidate: rb, target: target))
                    if save != nil { recs.append(record(reference: ra, target: target, topK: topK)) }
                }
                save?.append(window: Array(tokens[(i * n)..<((i + 1) * n)]), records: recs)
                let lo = first * vocab, hi = (n - 1) * vocab
                let c = Metrics.compare(reference: Array(a[lo..<hi]), candidate: Array(b[lo..<hi]), rows: n - 1 - first, cols: vocab, logits: false)
                m.maxAbs = c.maxAbs
                m.meanAbs = c.meanAbs
                m.cosine = c.cosine
                maxAbs = max(maxAbs, c.maxAbs)
                sumAbs += c.meanAbs * Double(hi - lo)
                countAbs += hi - lo
                minCos = min(minCos, c.cosine)
            case .saved(let file):
                guard Array(tokens[(i * n)..<((i + 1) * n)]) == file.windowTokens(i) else {
                    throw VerifyError.badInputs("window \(i) of the text differs from the saved reference's tokens")
                }
                let recs = try file.records(window: i)
                for (k, j) in (first..<(n - 1)).enumerated() {
                    let target = tokens[i * n + j + 1]
                    scores.append(score(record: recs[k], candidate: b[(j * vocab)..<((j + 1) * vocab)], target: target))
                }
            }
            m.positionKL = scores.map(\.kl)
            m.klMean = scores.reduce(0.0) { $0 + $1.kl } / Double(max(scores.count, 1))
            m.klMax = scores.map(\.kl).max() ?? 0
            m.top1 = Double(scores.filter(\.sameTop).count) / Double(max(scores.count, 1))
            m.perplexityReference = Foundation.exp(scores.reduce(0.0) { $0 + $1.nllReference } / Double(max(scores.count, 1)))
            m.perplexityCandidate = Foundation.exp(scores.reduce(0.0) { $0 + $1.nllCandidate } / Double(max(scores.count, 1)))
            sequences.append(m)
            all += scores
            progress?(i + 1)
        }
        let fromModel: Bool
        if case .model = reference { fromModel = true } else { fromModel = false }
        return (sequences, all, fromModel ? (maxAbs, countAbs > 0 ? sumAbs / Double(countAbs) : 0, minCos) : (.nan, .nan, .nan))
    }

    /// The llama-perplexity statistics of the scored positions.
    static func statistics(_ s: [PositionScore], into t: inout TextStats) {
        let n = s.count
        var nll = 0.0, nll2 = 0.0, base = 0.0, base2 = 0.0, cross = 0.0, kl = 0.0, kl2 = 0.0
        var dp = 0.0, dp2 = 0.0, dp4 = 0.0, same = 0
        for x in s {
            nll += x.nllCandidate; nll2 += x.nllCandidate * x.nllCandidate
            base += x.nllReference; base2 += x.nllReference * x.nllReference
            cross += x.nllCandidate * x.nllReference
            kl += x.kl; kl2 += x.kl * x.kl
            dp += x.deltaP; dp2 += x.deltaP * x.deltaP; dp4 += x.deltaP * x.deltaP * x.deltaP * x.deltaP
            if x.sameTop { same += 1 }
        }
        let (lq, lqu) = TextStats.meanAndUncertainty(nll, nll2, n)
        let (lb, lbu) = TextStats.meanAndUncertainty(base, base2, n)
        let cov = TextStats.covariance(nll, base, cross, n)
        let pq = Foundation.exp(lq), pb = Foundation.exp(lb)
        t.pplCandidate = pq; t.pplCandidateUncertainty = pq * lqu
        t.pplReference = pb; t.pplReferenceUncertainty = pb * lbu
        t.pplCorrelation = cov / (lqu * lbu)
        t.lnPplRatio = lq - lb
        t.lnPplRatioUncertainty = (lqu * lqu + lbu * lbu - 2 * cov).squareRoot()
        t.pplRatio = Foundation.exp(lq - lb)
        t.pplRatioUncertainty = t.pplRatio! * t.lnPplRatioUncertainty!
        t.pplDifference = pq - pb
        t.pplDifferenceUncertainty = ((pq * lqu) * (pq * lqu) + (pb * lbu) * (pb * lbu) - 2 * pq * pb * cov).squareRoot()
        t.kl = Distribution(s.map(\.kl), sum: kl, sum2: kl2)
        t.deltaP = Distribution(s.map(\.deltaP), sum: dp, sum2: dp2)
        let (mse, mseu) = TextStats.meanAndUncertainty(dp2, dp4, n)
        t.deltaPRMS = mse.squareRoot()
        t.deltaPRMSUncertainty = 0.5 / mse.squareRoot() * mseu
        let p = Double(same) / Double(max(n, 1))
        t.sameTop = p
        t.sameTopUncertainty = n > 1 ? (p * (1 - p) / Double(n - 1)).squareRoot() : 0
    }

    // MARK: Entry point

    /// Compares the models on `text`. `reference` may be nil when `options.referenceLogits`
    /// supplies its outputs (then `referenceConfig` names it in the report).
    public static func run(reference: WeightGraph, candidate: WeightGraph, tokenizer: Tokenizer, text: String?,
                           options: TextVerifyOptions, gates: Gates, progress: ((Int) -> Void)? = nil) throws -> VerifyReport {
        var candidate = candidate
        let borrowed = Verifier.borrowConfig(&candidate, from: reference)
        let cand = try Transformers.load(candidate)
        if cand.outputKind == .hiddenState {
            guard options.saveLogits == nil, options.referenceLogits == nil else {
                throw VerifyError.badInputs("--save-logits and --reference-logits are for language models; \(cand.architecture) outputs hidden states")
            }
            guard let text else { throw VerifyError.badInputs("--text is required") }
            let maxT = reference.config?.maxPositions
            var truncated = 0
            var inputs: [ModelInput] = []
            let lines = text.utf8.split(separator: UInt8(ascii: "\n")).map { String(decoding: $0.last == 13 ? $0.dropLast() : $0, as: UTF8.self) }
            var count = 0
            for line in lines where !line.allSatisfy({ $0.isWhitespace }) {
                var ids = try tokenizer.encode(line)
                count += ids.count
                if let maxT, ids.count > maxT {
                    truncated += 1
                    ids = Array(ids.prefix(maxT))
                }
                if !ids.isEmpty { inputs.append(.tokens(ids)) }
            }
            guard !inputs.isEmpty else { throw VerifyError.badInputs("the text has no non-empty lines") }
            var report = try Verifier.run(reference: reference, candidate: candidate, inputs: inputs, gates: gates,
                                          progress: progress)
            report.candidateConfig += borrowed
            report.text = TextStats(mode: .lines, tokens: count, context: nil, windows: inputs.count, scored: inputs.count,
                                    bos: nil, referenceSource: "computed", truncatedLines: truncated)
            return report
        }
        guard let vocab = cand.vocabSize else { throw VerifyError.incomparable("\(cand.architecture) has no vocabulary") }
        guard tokenizer.vocabularySize <= vocab else {
            throw VerifyError.incomparable("the tokenizer has \(tokenizer.vocabularySize) tokens, the model \(vocab)")
        }
        let bos = tokenizer.specialPrefix.first
        // Reference outputs: the model, or a saved file.
        var source: ReferenceSource
        var saved: LogitsFile? = nil
        var tokens: [Int]
        var n: Int, windows: Int
        let refDescription: String
        if let path = options.referenceLogits {
            let file = try LogitsFile.read(path)
            guard file.vocab == vocab else { throw VerifyError.incomparable("\(path) holds a vocabulary of \(file.vocab), the candidate \(vocab)") }
            n = file.context
            windows = file.windows
            tokens = file.allTokens
            if let text {
                let fresh = tokenizer.specialPrefix + (try tokenizer.encode(text, addSpecialTokens: false))
                guard fresh.count >= tokens.count, Array(fresh.prefix(tokens.count)) == tokens else {
                    throw VerifyError.badInputs("the text does not tokenize to the tokens saved in \(path)")
                }
            }
            source = .saved(file)
            refDescription = file.reference
        } else {
            guard let text else { throw VerifyError.badInputs("--text is required") }
            let ref = try Transformers.load(reference)
            guard ref.outputKind == .logits, ref.vocabSize == vocab else {
                throw VerifyError.incomparable("reference outputs \(ref.outputKind.rawValue) with \(ref.vocabSize ?? 0) tokens, candidate logits with \(vocab)")
            }
            tokens = tokenizer.specialPrefix + (try tokenizer.encode(text, addSpecialTokens: false))
            let maxT = reference.config?.maxPositions ?? 512
            if let c = options.context {
                guard c >= 4 else { throw VerifyError.badInputs("--context must be at least 4") }
                guard c <= maxT else { throw VerifyError.badInputs("--context \(c) is longer than the model's \(maxT) positions") }
                guard tokens.count >= c else { throw VerifyError.badInputs("the text has \(tokens.count) tokens, fewer than one window of \(c)") }
                n = c
            } else {
                n = min(512, maxT, tokens.count)
                guard n >= 4 else { throw VerifyError.badInputs("the text has only \(tokens.count) tokens") }
            }
            windows = windowCount(tokens: tokens.count, context: n, chunks: options.chunks)
            source = .model { try ref.forward(.tokens($0), collectHidden: false).values }
            refDescription = Verifier.describe(ref.architecture, reference.config)
            if options.saveLogits != nil {
                saved = LogitsFile(vocab: vocab, context: n, windows: windows, bos: bos, topK: options.topK, reference: refDescription)
                saved?.textTokens = tokens.count
            }
        }
        guard windows >= 1 else { throw VerifyError.badInputs("no window to score") }
        let result = try scoreWindows(tokens: tokens, context: n, windows: windows, bos: bos, vocab: vocab, reference: source,
                                      candidate: { try cand.forward(.tokens($0), collectHidden: false).values },
                                      save: saved, topK: options.topK, progress: progress)
        if let saved, let path = options.saveLogits { try saved.write(to: path) }
        var textTokens = tokens.count
        if case .saved(let f) = source { textTokens = f.textTokens }
        var stats = TextStats(mode: .windows, tokens: textTokens, context: n, windows: windows, scored: result.positions.count,
                              bos: bos, referenceSource: options.referenceLogits ?? "computed")
        statistics(result.positions, into: &stats)
        if options.referenceLogits != nil {
            stats.klErrorBound = result.positions.reduce(0.0) { $0 + $1.klBound } / Double(max(result.positions.count, 1))
            stats.klErrorBoundMax = result.positions.map(\.klBound).max() ?? 0
            stats.tailMassMax = result.positions.map(\.tailMass).max() ?? 0
        }
        let ps = result.positions
        var overall = SequenceMetrics(maxAbs: result.overallAbs.0, meanAbs: result.overallAbs.1, cosine: result.overallAbs.2,
                                      klMean: stats.kl?.mean, klMax: stats.kl?.max, top1: stats.sameTop,
                                      perplexityReference: stats.pplReference, perplexityCandidate: stats.pplCandidate,
                                      positions: ps.count)
        if options.referenceLogits != nil { overall.cosine = .nan }
        var results: [GateResult] = []
        if let l = gates.maxKL { results.append(GateResult(name: "max_kl", limit: l, value: overall.klMean ?? 0, passed: (overall.klMean ?? 0) <= l)) }
        // Logit-level gates need the reference's logits, which a saved file does not hold.
        if options.referenceLogits == nil {
            if let l = gates.minCosine { results.append(GateResult(name: "min_cosine", limit: l, value: overall.cosine, passed: overall.cosine >= l)) }
        }
        if let l = gates.minTop1 { results.append(GateResult(name: "min_top1", limit: l, value: overall.top1 ?? 1, passed: (overall.top1 ?? 1) >= l)) }
        if options.referenceLogits == nil, let l = gates.maxAbs {
            results.append(GateResult(name: "max_abs", limit: l, value: overall.maxAbs, passed: overall.maxAbs <= l))
        }
        var report = VerifyReport(referenceConfig: refDescription,
                                  candidateConfig: Verifier.describe(cand.architecture, candidate.config) + borrowed,
                                  outputKind: .logits, sequences: result.sequences, overall: overall, layerDrift: nil, gates: results)
        report.text = stats
        return report
    }
}

// MARK: Saved reference outputs

/// `--save-logits` files: "CKPTLOGT", u32 version 1, u32 header length, a JSON header
/// {vocab, context, windows, bos, top_k, reference}, the windows' tokens (i32 each,
/// windows × context), then per scored position: u32 count k, f64 log p of the next token,
/// k × (u32 id, f64 log p). All little-endian.
final class LogitsFile: @unchecked Sendable {
    let vocab: Int, context: Int, windows: Int, bos: Int?, topK: Int, reference: String
    /// Tokens of the whole text (the windows hold the first windows × context of them).
    var textTokens = 0
    private var tokens: [Int] = []
    private var bytes: [UInt8] = []
    /// Byte offset of each window's records (reading).
    private var offsets: [Int] = []
    static let magic = Array("CKPTLOGT".utf8)

    init(vocab: Int, context: Int, windows: Int, bos: Int?, topK: Int, reference: String) {
        self.vocab = vocab; self.context = context; self.windows = windows; self.bos = bos; self.topK = topK; self.reference = reference
    }

    var allTokens: [Int] { tokens }
    func windowTokens(_ i: Int) -> [Int] { Array(tokens[(i * context)..<((i + 1) * context)]) }

    func append(window: [Int], records: [ReferenceRecord]) {
        tokens += window
        for r in records {
            put32(UInt32(r.ids.count))
            put64(r.logpTarget.bitPattern)
            for (id, lp) in zip(r.ids, r.logps) {
                put32(UInt32(id))
                put64(lp.bitPattern)
            }
        }
    }

    private func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    private func put64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }

    func write(to path: String) throws {
        let header = JSONValue.object([
            "vocab": .int(vocab), "context": .int(context), "windows": .int(windows), "bos": bos.map { .int($0) } ?? .null,
            "top_k": .int(topK), "reference": .string(reference), "text_tokens": .int(textTokens),
        ]).serialized()
        var out = LogitsFile.magic
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        u32(1)
        u32(UInt32(header.utf8.count))
        out += Array(header.utf8)
        for t in tokens { u32(UInt32(bitPattern: Int32(t))) }
        out += bytes
        var f = try AtomicFile(target: path)
        try f.write(out)
        try f.commit()
    }

    static func read(_ path: String) throws -> LogitsFile {
        let b: [UInt8]
        do { b = try MappedFile(path: path).withBytes { Array($0) } } catch { throw VerifyError.badInputs("\(error)") }
        func bad(_ m: String) -> VerifyError { VerifyError.badInputs("\(path): \(m)") }
        var pos = 0
        func u32() throws -> UInt32 {
            guard pos + 4 <= b.count else { throw bad("truncated") }
            defer { pos += 4 }
            return b[pos..<(pos + 4)].enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) }
        }
        func u64() throws -> UInt64 {
            guard pos + 8 <= b.count else { throw bad("truncated") }
            defer { pos += 8 }
            return b[pos..<(pos + 8)].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) }
        }
        guard b.count >= 16, Array(b[0..<8]) == magic else { throw bad("not a ckpt saved-logits file") }
        pos = 8
        guard try u32() == 1 else { throw bad("unsupported version") }
        let hlen = Int(try u32())
        guard hlen <= 1 << 20, pos + hlen <= b.count else { throw bad("bad header length") }
        let header: JSONValue
        do { header = try JSONValue.parse(b[pos..<(pos + hlen)]) } catch { throw bad("bad header: \(error)") }
        pos += hlen
        guard let vocab = header["vocab"]?.intValue, vocab > 0, vocab < 1 << 24,
              let context = header["context"]?.intValue, context >= 4, context < 1 << 20,
              let windows = header["windows"]?.intValue, windows >= 1, windows < 1 << 24,
              let topK = header["top_k"]?.intValue, topK >= 1, topK <= vocab else { throw bad("bad header fields") }
        let bos = header["bos"]?.intValue
        let file = LogitsFile(vocab: vocab, context: context, windows: windows, bos: bos, topK: topK,
                              reference: header["reference"]?.stringValue ?? "")
        file.textTokens = header["text_tokens"]?.intValue ?? windows * context
        let (count, overflow) = windows.multipliedReportingOverflow(by: context)
        guard !overflow, count * 4 <= b.count - pos else { throw bad("truncated tokens") }
        file.tokens = try (0..<count).map { _ in
            let t = Int(Int32(bitPattern: try u32()))
            guard t >= 0, t < vocab else { throw bad("token \(t) is outside the vocabulary") }
            return t
        }
        // Walk the records once: check every count and id, note where each window starts.
        let perWindow = context - 1 - context / 2
        let start = pos
        for _ in 0..<windows {
            file.offsets.append(pos - start)
            for _ in 0..<perWindow {
                let k = Int(try u32())
                guard k >= 1, k <= topK else { throw bad("a position keeps \(k) log-probabilities (1...\(topK))") }
                _ = try u64()
                guard pos + k * 12 <= b.count else { throw bad("truncated") }
                for _ in 0..<k {
                    guard Int(try u32()) < vocab else { throw bad("an id is outside the vocabulary") }
                    _ = try u64()
                }
            }
        }
        guard pos == b.count else { throw bad("\(b.count - pos) bytes after the last record") }
        file.bytes = Array(b[start...])
        return file
    }

    func records(window i: Int) throws -> [ReferenceRecord] {
        var pos = offsets[i]
        let b = bytes
        func u32() -> UInt32 { defer { pos += 4 }; return b[pos..<(pos + 4)].enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) } }
        func f64() -> Double { defer { pos += 8 }; return Double(bitPattern: b[pos..<(pos + 8)].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) }) }
        return (0..<(context - 1 - context / 2)).map { _ in
            let k = Int(u32())
            let target = f64()
            var ids: [Int] = [], lps: [Double] = []
            for _ in 0..<k { ids.append(Int(u32())); lps.append(f64()) }
            return ReferenceRecord(logpTarget: target, ids: ids, logps: lps)
        }
    }
}

// verify --text: the window arithmetic and llama-perplexity's statistics against a NumPy
// reimplementation (same windows, same formulas, float64), on a deterministic stand-in model
// whose logits NumPy computes from each window's tokens as well.

import CkptCore
import Foundation
@testable import Pipeline
@testable import Verify
import TestSupport
import Testing

/// logits[t, v] = 3 sin(0.05 (v+1) (acc_t mod 29 + 1)) (+ 0.05 cos(v (t+1)) for the candidate),
/// acc_t = Σ_{s≤t} ((7 w_s + 3 s) mod 13), rounded to float32.
func standInLogits(_ w: [Int], vocab: Int, candidate: Bool) -> [Float] {
    var out: [Float] = []
    var acc = 0
    for (t, tok) in w.enumerated() {
        acc += (7 * tok + 3 * t) % 13
        for v in 0..<vocab {
            var x = 3 * sin(0.05 * Double(v + 1) * Double(acc % 29 + 1))
            if candidate { x += 0.05 * cos(Double(v * (t + 1))) }
            out.append(Float(x))
        }
    }
    return out
}

let numpyWindows = #"""
import json, sys
import numpy as np
tokens, vocab, n, chunks, bos = json.loads(sys.argv[1])
def logits(w, cand):
    acc = np.cumsum([(7 * tok + 3 * t) % 13 for t, tok in enumerate(w)])
    v = np.arange(vocab)
    x = 3 * np.sin(0.05 * (v[None, :] + 1) * ((acc % 29 + 1)[:, None]).astype(np.float64))
    if cand:
        x = x + 0.05 * np.cos((v[None, :] * (np.arange(len(w))[:, None] + 1)).astype(np.float64))
    return x.astype(np.float32).astype(np.float64)
def log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))
windows = len(tokens) // n
if chunks is not None: windows = min(windows, chunks)
first = n // 2
kl, nq, nb, same, dp, per = [], [], [], [], [], []
for i in range(windows):
    orig = tokens[i * n:(i + 1) * n]
    w = list(orig)
    if bos is not None: w[0] = bos
    a, b = logits(w, False), logits(w, True)
    la, lb = log_softmax(a), log_softmax(b)
    k0 = len(kl)
    for j in range(first, n - 1):
        t = orig[j + 1]
        kl.append(float((np.exp(la[j]) * (la[j] - lb[j])).sum()))
        nb.append(-la[j, t]); nq.append(-lb[j, t])
        same.append(int(np.argmax(a[j]) == np.argmax(b[j])))
        dp.append(float(np.exp(lb[j, t]) - np.exp(la[j, t])))
    per.append({"kl_mean": float(np.mean(kl[k0:])), "kl_max": float(np.max(kl[k0:])), "top1": float(np.mean(same[k0:])),
                "perplexity_reference": float(np.exp(np.mean(nb[k0:]))), "perplexity_candidate": float(np.exp(np.mean(nq[k0:])))})
kl, nq, nb, dp = map(np.array, (kl, nq, nb, dp))
c = len(kl)
def mu(x):
    f = x.sum() / c; d = (x * x).sum() / c - f * f
    return f, (np.sqrt(d / (c - 1)) if d > 0 and c > 10 else 0.0)
def pct(s, f):
    if f <= 0: return s[0]
    if f >= 1: return s[-1]
    p = f * (len(s) - 1); i = int(p); p -= i
    return (1 - p) * s[i] + p * s[min(i + 1, len(s) - 1)]
def dist(x):
    s = np.sort(x); f, u = mu(x)
    med = 0.5 * (s[c // 2] + s[c // 2 - 1]) if c % 2 == 0 else s[c // 2]
    out = {"mean": f, "uncertainty": u, "max": s[-1], "median": med, "min": s[0]}
    for fr, key in [(0.999, "p99_9"), (0.99, "p99"), (0.95, "p95"), (0.90, "p90"), (0.75, "p75"), (0.25, "p25"),
                    (0.10, "p10"), (0.05, "p5"), (0.01, "p1"), (0.001, "p0_1")]:
        out[key] = pct(s, fr)
    return {k: float(v) for k, v in out.items()}
lq, lqu = mu(nq); lb_, lbu = mu(nb)
cov = ((nq * nb).sum() / c - (nq.sum() / c) * (nb.sum() / c)) / (c - 1) if c >= 10 else 0.0
pq, pb = np.exp(lq), np.exp(lb_)
mse, mseu = mu(dp * dp)
p = float(np.mean(same))
out = {"windows": windows, "scored": c, "ppl_candidate": pq, "ppl_candidate_uncertainty": pq * lqu,
       "ppl_reference": pb, "ppl_reference_uncertainty": pb * lbu, "ppl_correlation": cov / (lqu * lbu),
       "ln_ppl_ratio": lq - lb_, "ln_ppl_ratio_uncertainty": np.sqrt(lqu**2 + lbu**2 - 2 * cov),
       "ppl_ratio": np.exp(lq - lb_), "ppl_difference": pq - pb,
       "ppl_difference_uncertainty": np.sqrt((pq * lqu)**2 + (pb * lbu)**2 - 2 * pq * pb * cov),
       "kl": dist(kl), "delta_p": dist(dp), "delta_p_rms": np.sqrt(mse), "delta_p_rms_uncertainty": 0.5 / np.sqrt(mse) * mseu,
       "same_top": p, "same_top_uncertainty": np.sqrt(p * (1 - p) / (c - 1)), "per_window": per}
print(json.dumps({k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in out.items()}))
"""#

@Suite struct TextVerificationTests {
    func close(_ a: Double?, _ b: Double?, _ what: String) {
        guard let a, let b else { Issue.record("\(what): missing (\(String(describing: a)) vs \(String(describing: b)))"); return }
        #expect(abs(a - b) <= 1e-6 * max(1, abs(b)), "\(what): \(a) vs NumPy \(b)")
    }

    @Test(arguments: [(64, nil as Int?, 1 as Int?), (50, 7, nil), (9, 3, 2)])
    func windowsAndStatisticsMatchNumPy(context: Int, chunks: Int?, bos: Int?) throws {
        var rng = SplitMix64(seed: 7)
        let vocab = 40
        let tokens = (0..<1003).map { _ in Int(rng.next() % UInt64(vocab)) }
        let windows = TextVerifier.windowCount(tokens: tokens.count, context: context, chunks: chunks)
        let r = try TextVerifier.scoreWindows(tokens: tokens, context: context, windows: windows, bos: bos, vocab: vocab,
                                              reference: .model { standInLogits($0, vocab: vocab, candidate: false) },
                                              candidate: { standInLogits($0, vocab: vocab, candidate: true) },
                                              save: nil, topK: 8)
        var stats = TextStats(mode: .windows, tokens: tokens.count, context: context, windows: windows,
                              scored: r.positions.count, bos: bos, referenceSource: "computed")
        TextVerifier.statistics(r.positions, into: &stats)
        let arg = JSONValue.array([.array(tokens.map { .int($0) }), .int(vocab), .int(context),
                                   chunks.map { .int($0) } ?? .null, bos.map { .int($0) } ?? .null]).serialized()
        let py = try Python.run(numpyWindows, [arg])
        #expect(py.status == 0, "\(py.stderr)")
        let want = try JSONValue.parse(py.stdout)
        let got = stats.json()
        #expect(want["windows"]?.intValue == windows && want["scored"]?.intValue == r.positions.count)
        for key in ["ppl_candidate", "ppl_candidate_uncertainty", "ppl_reference", "ppl_reference_uncertainty", "ppl_correlation",
                    "ln_ppl_ratio", "ln_ppl_ratio_uncertainty", "ppl_ratio", "ppl_difference", "ppl_difference_uncertainty",
                    "delta_p_rms", "delta_p_rms_uncertainty", "same_top", "same_top_uncertainty"] {
            close(got[key]?.doubleValue, want[key]?.doubleValue, key)
        }
        for group in ["kl", "delta_p"] {
            for (k, v) in want[group]!.objectValue! { close(got[group]?[k]?.doubleValue, v.doubleValue, "\(group).\(k)") }
        }
        let per = want["per_window"]!.arrayValue!
        #expect(per.count == r.sequences.count)
        for (m, w) in zip(r.sequences, per) {
            close(m.klMean, w["kl_mean"]?.doubleValue, "window kl_mean")
            close(m.klMax, w["kl_max"]?.doubleValue, "window kl_max")
            close(m.top1, w["top1"]?.doubleValue, "window top1")
            close(m.perplexityReference, w["perplexity_reference"]?.doubleValue, "window ppl ref")
            close(m.perplexityCandidate, w["perplexity_candidate"]?.doubleValue, "window ppl cand")
        }
    }

    /// The saved-reference path: KL below the full KL by no more than its reported bound, and
    /// equal (1e-6) when the kept log-probabilities cover the distribution.
    @Test func savedReferenceMatchesDirect() throws {
        var rng = SplitMix64(seed: 3)
        let vocab = 40
        let tokens = (0..<300).map { _ in Int(rng.next() % UInt64(vocab)) }
        for topK in [vocab, 6] {
            let file = LogitsFile(vocab: vocab, context: 32, windows: 9, bos: 1, topK: topK, reference: "stand-in")
            let ref: ([Int]) -> [Float] = { standInLogits($0, vocab: vocab, candidate: false) }
            let cand: ([Int]) -> [Float] = { standInLogits($0, vocab: vocab, candidate: true) }
            let direct = try TextVerifier.scoreWindows(tokens: tokens, context: 32, windows: 9, bos: 1, vocab: vocab,
                                                       reference: .model(ref), candidate: cand, save: file, topK: topK)
            let dir = TempDir()
            try file.write(to: dir.file("ref.logits"))
            let loaded = try LogitsFile.read(dir.file("ref.logits"))
            let saved = try TextVerifier.scoreWindows(tokens: tokens, context: 32, windows: 9, bos: 1, vocab: vocab,
                                                      reference: .saved(loaded), candidate: cand, save: nil, topK: topK)
            #expect(direct.positions.count == saved.positions.count)
            for (d, s) in zip(direct.positions, saved.positions) {
                #expect(s.kl <= d.kl + 1e-12 && d.kl <= s.kl + s.klBound + 1e-12, "kl \(s.kl) bound \(s.klBound) full \(d.kl)")
                if topK == vocab { #expect(abs(s.kl - d.kl) <= 1e-6) }
                #expect(abs(s.nllReference - d.nllReference) <= 1e-12 && s.nllCandidate == d.nllCandidate && s.sameTop == d.sameTop)
            }
            // A damaged file is refused, not read.
            var bytes = try readFile(dir.file("ref.logits"))
            bytes.removeLast(3)
            try writeFile(dir.file("cut.logits"), bytes)
            #expect(throws: VerifyError.self) { try LogitsFile.read(dir.file("cut.logits")) }
        }
    }
}

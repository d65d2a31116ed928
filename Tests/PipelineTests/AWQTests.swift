// AWQ: the scaled model computes the same function as the original before rounding (scales
// folded into the norms and the producing linears), the scales are not trivial, and the
// rounded layers' output error on the calibration activations does not grow.

import CkptCore
import Formats
import Foundation
@testable import Pipeline
import Quantize
import Testing
import TestSupport
import Transformer

@Suite struct AWQTests {
    /// (model, calibration file or nil for token ids, held-out tokens)
    static let models: [String] = ["tokenizers/gpt2-model", "models/llama-mha-tied", "models/llama-base", "models/bert-a"]

    @Test(arguments: models)
    func scaledModelEqualsTheOriginalBeforeRounding(_ fixture: String) throws {
        let path = Repo.fixture(fixture)
        let graph = try Checkpoint.openModel(path)
        let model = try Transformers.load(graph)
        let vocab = try #require(model.vocabSize)
        let dir = TempDir()
        var rng = SplitMix64(seed: 5)
        // Calibration tokens: 8 lines of 24 ids (a token-id file).
        let lines = (0..<8).map { _ in (0..<24).map { _ in String(Int(rng.next() % UInt64(vocab))) }.joined(separator: " ") }
        try writeFile(dir.file("calib.txt"), Array(lines.joined(separator: "\n").utf8))
        let calibration = try Calibration.collect(graph, checkpoint: path, options: CalibrationOptions(file: dir.file("calib.txt"), method: "awq", context: 24))
        let scaled = try calibration.applyAWQ(graph) { _, shape in shape[1] % 32 == 0 ? .q4_0 : nil }
        // Something was scaled (α > 0 for at least one group), and tensors changed.
        #expect(calibration.awqAlphas.values.contains { $0 > 0 }, "\(calibration.awqAlphas)")
        let changed = graph.tensors.keys.filter { name in
            (try? Cast.floats(graph.tensors[name]!)) != (try? Cast.floats(scaled.tensors[name]!))
        }
        #expect(!changed.isEmpty)
        // The same function: logits (or hidden states) within 1e-6 of the largest magnitude.
        let other = try Transformers.load(scaled)
        let ids = (0..<20).map { _ in Int(rng.next() % UInt64(vocab)) }
        let a = try model.forward(.tokens(ids), collectHidden: false), b = try other.forward(.tokens(ids), collectHidden: false)
        let scale = a.values.map { abs($0) }.max() ?? 1
        let diff = zip(a.values, b.values).map { abs($0 - $1) }.max() ?? 0
        #expect(diff <= 1e-6 * scale, "\(fixture): max |Δ| \(diff), max |y| \(scale), scaled \(changed.sorted())")
    }

    /// A layer whose inputs have a few loud channels: the search picks α > 0 and the rounded
    /// layer's output error drops below round-to-nearest's (α = 0 is always a candidate).
    @Test func searchLowersTheOutputErrorOnOutlierChannels() throws {
        let rows = 64, cols = 128, tokens = 256
        var rng = SplitMix64(seed: 11)
        func u() -> Double { Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1 }
        let w = (0..<rows * cols).map { _ in Float(u() * 0.1) }
        var x = [Double](repeating: 0, count: tokens * cols)
        for t in 0..<tokens { for j in 0..<cols { x[t * cols + j] = u() * (j % 16 == 3 ? 20 : 1) } }
        var g = [Double](repeating: 0, count: cols * cols), meanAbs = [Double](repeating: 0, count: cols)
        for t in 0..<tokens {
            for i in 0..<cols {
                meanAbs[i] += abs(x[t * cols + i]) / Double(tokens)
                for j in 0..<cols { g[i * cols + j] += x[t * cols + i] * x[t * cols + j] }
            }
        }
        for target in [DType.q4_0, .q4_1] {
            let r = try AWQ.search([AWQ.Layer(weight: w, rows: rows, target: target)], cols: cols, gram: g, meanAbs: meanAbs)
            #expect(r.alpha > 0)
            #expect(r.errorAfter[0] < 0.9 * r.errorBefore[0], "\(target): \(r.errorBefore[0]) -> \(r.errorAfter[0]) at α \(r.alpha)")
        }
    }

    /// The clipping search on a fixture layer with heavy-tailed weights (a few large values per
    /// row) and correlated inputs: the layer's output error, measured independently on the raw
    /// activations, never grows against rounding without clipping, and drops for the 4-bit types.
    @Test(arguments: [DType.q4_0, .q4_1, .q5_0, .q4_k, .q6_k, DType(rawValue: "i4_g64")!])
    func clipSearchNeverIncreasesTheOutputError(_ target: DType) throws {
        let rows = 32, cols = 512, tokens = 300
        var rng = SplitMix64(seed: 23)
        func u() -> Double { Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1 }
        let w = (0..<rows * cols).map { i in Float(u() * 0.05 + (i % 61 == 0 ? u() * 0.6 : 0)) }
        var x = [Double](repeating: 0, count: tokens * cols)
        for t in 0..<tokens {
            let f = u()
            for j in 0..<cols { x[t * cols + j] = u() + 0.5 * f * Double(j % 5) }
        }
        var g = [Double](repeating: 0, count: cols * cols)
        for t in 0..<tokens { for i in 0..<cols { for j in 0..<cols { g[i * cols + j] += x[t * cols + i] * x[t * cols + j] } } }
        let clip = try AWQ.clipSearch(weight: w, rows: rows, cols: cols, gram: g, target: target)
        func measured(_ v: [Float]) throws -> Double {
            let q = try Quantizer.quantize(v, rowLength: cols, to: target)
            let d = try q.withUnsafeBytes { try Quantizer.dequantize($0, dtype: target, count: v.count) }
            var num = 0.0, den = 0.0
            for t in 0..<tokens {
                for r in 0..<rows {
                    var a = 0.0, b = 0.0
                    for j in 0..<cols { a += Double(w[r * cols + j]) * x[t * cols + j]; b += Double(d[r * cols + j]) * x[t * cols + j] }
                    num += (a - b) * (a - b)
                    den += a * a
                }
            }
            return (num / den).squareRoot()
        }
        let before = try measured(w), after = try measured(AWQ.clipped(w, cols: cols, clip: clip))
        print("AWQ clip \(target): output error \(before) -> \(after) (search's own: \(clip.errorBefore) -> \(clip.errorAfter)), \(clip.maxima.filter(\.isFinite).count) of \(clip.maxima.count) blocks clipped")
        #expect(after <= before * (1 + 1e-9), "\(target): \(before) -> \(after)")
        #expect(abs(before - clip.errorBefore) < 1e-6 && abs(after - clip.errorAfter) < 1e-6)
        if [DType.q4_0, .q4_1, DType(rawValue: "i4_g64")!].contains(target) {
            #expect(clip.clips && after < 0.97 * before, "\(target): \(before) -> \(after)")
        }
    }

    @Test func scalesFollowTheActivations() {
        let s = AWQ.scales(meanAbs: [1, 4, 16], alpha: 0.5)
        // s ∝ sqrt(mean|x|), normalised so that max·min = 1.
        #expect(abs(s[0] - 0.5) < 1e-6 && abs(s[1] - 1) < 1e-6 && abs(s[2] - 2) < 1e-6, "\(s)")
        #expect(AWQ.scales(meanAbs: [1, 4, 16], alpha: 0) == [1, 1, 1])
    }
}

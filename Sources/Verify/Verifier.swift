// `ckpt verify`: run a reference and a candidate model on the same inputs, measure the drift,
// and apply the gates. Exit status is the caller's: 0 pass, 1 a gate failed, 2 the models
// cannot be compared (VerifyError).

import CkptCore
import Formats
import Foundation
import OrderedCollections
import Quantize
import Transformer

public enum VerifyError: Error, Equatable, Sendable, CustomStringConvertible {
    case incomparable(String)
    case badInputs(String)

    public var description: String {
        switch self {
        case .incomparable(let m): return "models cannot be compared: \(m)"
        case .badInputs(let m): return "inputs: \(m)"
        }
    }
}

/// Thresholds a candidate must meet. A nil gate is not checked.
public struct Gates: Sendable, Equatable {
    /// Mean KL(reference ‖ candidate) of next-token distributions over all positions (nats).
    public var maxKL: Double?
    /// Smallest per-sequence cosine similarity of the outputs.
    public var minCosine: Double?
    /// Fraction of positions whose top-1 token agrees.
    public var minTop1: Double?
    /// Largest absolute difference of any output value.
    public var maxAbs: Double?

    public init(maxKL: Double? = nil, minCosine: Double? = nil, minTop1: Double? = nil, maxAbs: Double? = nil) {
        self.maxKL = maxKL
        self.minCosine = minCosine
        self.minTop1 = minTop1
        self.maxAbs = maxAbs
    }

    public var isEmpty: Bool { maxKL == nil && minCosine == nil && minTop1 == nil && maxAbs == nil }

    /// Defaults by how the candidate was made (README, "Verification, diff and pipelines"): loose enough for
    /// the scheme's expected drift on real models, tight enough to catch a broken conversion.
    /// The preset names `preset(_:)` knows.
    public static let presetNames = ["lossless", "f16", "bf16", "int8", "q8_0", "q6_k", "q5_0", "q5_1", "q5_k",
                                     "int4", "q4_0", "q4_1", "q4_k", "prune", "distill"]

    public static func preset(_ name: String) -> Gates? {
        switch name.lowercased() {
        case "lossless": return Gates(maxKL: 1e-9, minCosine: 0.999999, minTop1: 1, maxAbs: 1e-5)
        case "f16", "bf16": return Gates(maxKL: 1e-3, minCosine: 0.9999, minTop1: 0.98)
        case "int8", "q8_0": return Gates(maxKL: 1e-2, minCosine: 0.999, minTop1: 0.95)
        case "q6_k", "q5_0", "q5_1", "q5_k": return Gates(maxKL: 3e-2, minCosine: 0.995, minTop1: 0.9)
        case "int4", "q4_0", "q4_1", "q4_k": return Gates(maxKL: 0.1, minCosine: 0.98, minTop1: 0.8)
        case "prune", "distill": return Gates(maxKL: 0.5, minCosine: 0.9, minTop1: 0.6)
        default: return nil
        }
    }
}

public struct GateResult: Sendable, Equatable {
    public var name: String
    public var limit: Double
    public var value: Double
    public var passed: Bool
}

public struct VerifyReport: Sendable {
    public var referenceConfig: String
    public var candidateConfig: String
    public var outputKind: ForwardOutput.Kind
    public var sequences: [SequenceMetrics]
    public var overall: SequenceMetrics
    /// Relative RMS drift of each block's input, averaged over sequences (same depth only).
    public var layerDrift: [Double]?
    public var gates: [GateResult]
    /// `verify --text`: the windows (or lines) and llama-perplexity's statistics.
    public var text: TextStats? = nil
    public var passed: Bool { gates.allSatisfy(\.passed) }
    /// How the models ran, the memory estimate for that, and the process's peak resident set.
    public var execution: Execution?
    public var estimatedMemory: Int?
    public var peakMemory: Int?

    public func json() -> JSONValue {
        func metrics(_ m: SequenceMetrics) -> JSONValue {
            var o: OrderedDictionary<String, JSONValue> = [
                "positions": .int(m.positions), "max_abs": .double(m.maxAbs), "mean_abs": .double(m.meanAbs),
                "cosine": .double(m.cosine),
            ]
            if let v = m.klMean { o["kl_mean"] = .double(v) }
            if let v = m.klMax { o["kl_max"] = .double(v) }
            if let v = m.top1 { o["top1"] = .double(v) }
            if let v = m.perplexityReference { o["perplexity_reference"] = .double(v) }
            if let v = m.perplexityCandidate { o["perplexity_candidate"] = .double(v) }
            return .object(o)
        }
        var out: OrderedDictionary<String, JSONValue> = [
            "passed": .bool(passed),
            "reference": .string(referenceConfig),
            "candidate": .string(candidateConfig),
            "output": .string(outputKind.rawValue),
            "overall": metrics(overall),
            "sequences": .array(sequences.map(metrics)),
            "layer_drift": layerDrift.map { .array($0.map { .double($0) }) } ?? .null,
            "execution": execution.map { .string($0.rawValue) } ?? .null,
            "estimated_memory_bytes": estimatedMemory.map { .int($0) } ?? .null,
            "peak_memory_bytes": peakMemory.map { .int($0) } ?? .null,
            "gates": .array(gates.map { g in
                .object(["name": .string(g.name), "limit": .double(g.limit), "value": .double(g.value), "passed": .bool(g.passed)])
            }),
        ]
        if let text { out["text"] = text.json() }
        return .object(out)
    }

    /// A short human table.
    public func table() -> String {
        var lines = ["reference: \(referenceConfig)", "candidate: \(candidateConfig)"]
        let lm = outputKind == .logits
        var header = "  seq  positions     max_abs    mean_abs      cosine"
        if lm { header += "     kl_mean      kl_max   top1   ppl(ref)  ppl(cand)" }
        lines.append(header)
        func row(_ label: String, _ m: SequenceMetrics) -> String {
            var s = label.padding(toLength: 5, withPad: " ", startingAt: 0)
                + String(format: " %10d  %10.3g  %10.3g  %10.7f", m.positions, m.maxAbs, m.meanAbs, m.cosine)
            if lm {
                s += String(format: "  %10.3g  %10.3g  %5.3f  %9.3f  %9.3f", m.klMean ?? 0, m.klMax ?? 0, m.top1 ?? 0,
                            m.perplexityReference ?? .nan, m.perplexityCandidate ?? .nan)
            }
            return s
        }
        for (i, m) in sequences.enumerated() { lines.append(row("  \(i)", m)) }
        lines.append(row("  all", overall))
        if let text { lines.append(text.table()) }
        if let d = layerDrift {
            lines.append("layer drift (relative RMS of each block's input): " + d.map { String(format: "%.3g", $0) }.joined(separator: " "))
        }
        if let execution, let peakMemory {
            lines.append("execution \(execution.rawValue), peak memory \(Memory.format(peakMemory))"
                         + (estimatedMemory.map { " (estimate \(Memory.format($0)))" } ?? ""))
        }
        for g in gates {
            lines.append(String(format: "gate %@ %@ %.6g: %.6g  %@", g.name, g.name.hasPrefix("max") ? "<=" : ">=",
                                g.limit, g.value, g.passed ? "pass" : "FAIL"))
        }
        lines.append(gates.isEmpty ? "no gates" : (passed ? "PASS" : "FAIL"))
        return lines.joined(separator: "\n")
    }
}

public enum Verifier {
    /// Compares two models on the inputs. Throws VerifyError when they cannot be compared.
    /// - Parameters:
    ///   - reference: The model taken as correct (a graph with a config).
    ///   - candidate: The model under test; without a config it borrows the reference's.
    ///   - inputs: The sequences both models run: ``randomInputs(for:count:length:seed:)``,
    ///     ``tokenFile(_:)``, or token ids from a `Tokenizer`.
    ///   - gates: Thresholds to apply; ``Gates/preset(_:)`` gives the documented defaults.
    ///   - progress: Called with the number of sequences done.
    /// - Returns: Per-sequence and overall metrics, per-layer drift and the gate results
    ///   (``VerifyReport/passed``); ``VerifyHTMLReport`` turns it into a page.
    /// - Throws: ``VerifyError`` when the models cannot be compared (different outputs or vocabularies).
    public static func run(reference: WeightGraph, candidate: WeightGraph, inputs: [ModelInput], gates: Gates,
                           execution: ExecutionOptions = ExecutionOptions(), progress: ((Int) -> Void)? = nil) throws -> VerifyReport {
        var candidate = candidate
        let borrowed = borrowConfig(&candidate, from: reference)
        // How the two models run (in memory, or streamed in lock step): PairedExecution.swift.
        let run = try PairedExecution.run(reference: reference, candidate: candidate, inputs: inputs, options: execution,
                                          progress: progress)
        let outputKind = run.referenceDescription.outputKind
        var sequences: [SequenceMetrics] = []
        var overallTokens: [Int] = []
        var allA: [Float] = [], allB: [Float] = []
        var cols = 0
        for (i, input) in inputs.enumerated() {
            let a = run.reference[i], b = run.candidate[i]
            var tokens: [Int]?
            if case .tokens(let t) = input { tokens = t }
            sequences.append(Metrics.compare(reference: a.values, candidate: b.values, rows: a.rows, cols: a.cols,
                                             logits: a.kind == .logits, tokens: tokens))
            allA += a.values
            allB += b.values
            overallTokens += tokens ?? []
            cols = a.cols
        }
        // Overall: recompute over all positions at once (perplexity from the summed NLL).
        var overall = Metrics.compare(reference: allA, candidate: allB, rows: allA.count / max(cols, 1), cols: cols,
                                      logits: outputKind == .logits)
        overall.cosine = sequences.map(\.cosine).min() ?? 1
        if outputKind == .logits {
            let n = sequences.reduce(0.0) { $0 + Double(max($1.positions - 1, 0)) }
            if n > 0 {
                func pooled(_ f: (SequenceMetrics) -> Double?) -> Double {
                    Foundation.exp(sequences.reduce(0.0) { $0 + Foundation.log(f($1) ?? 1) * Double(max($1.positions - 1, 0)) } / n)
                }
                overall.perplexityReference = pooled(\.perplexityReference)
                overall.perplexityCandidate = pooled(\.perplexityCandidate)
            }
        }
        var results: [GateResult] = []
        if let l = gates.maxKL {
            let v = overall.klMean ?? 0
            results.append(GateResult(name: "max_kl", limit: l, value: v, passed: v <= l))
        }
        if let l = gates.minCosine { results.append(GateResult(name: "min_cosine", limit: l, value: overall.cosine, passed: overall.cosine >= l)) }
        if let l = gates.minTop1 {
            let v = overall.top1 ?? 1
            results.append(GateResult(name: "min_top1", limit: l, value: v, passed: v >= l))
        }
        if let l = gates.maxAbs { results.append(GateResult(name: "max_abs", limit: l, value: overall.maxAbs, passed: overall.maxAbs <= l)) }
        var report = VerifyReport(referenceConfig: describe(run.referenceDescription.architecture, reference.config),
                                  candidateConfig: describe(run.candidateDescription.architecture, candidate.config) + borrowed,
                                  outputKind: outputKind, sequences: sequences, overall: overall,
                                  layerDrift: run.layerDrift, gates: results)
        report.execution = run.execution
        report.estimatedMemory = run.execution == .inMemory ? run.estimate.inMemory : run.estimate.streamed
        report.peakMemory = Memory.peakResident
        return report
    }

    /// A candidate written as a bare weights file (no config.json beside it) is read with the
    /// reference's config; its tensors' shapes are still checked against it. Returns what the
    /// report appends to the candidate's description ("" when the candidate has its own config).
    static func borrowConfig(_ candidate: inout WeightGraph, from reference: WeightGraph) -> String {
        guard candidate.config == nil, let c = reference.config else { return "" }
        candidate.config = c
        candidate.applyConfigTies()
        return " (config from the reference)"
    }

    static func describe(_ architecture: String, _ c: ModelConfig?) -> String {
        "\(architecture) " + (c?.summary.split(separator: " ").dropFirst().joined(separator: " ") ?? "")
    }

    // MARK: Inputs

    /// `count` sequences of `length` tokens (or vectors, for a vector-input model), from a
    /// SplitMix64 generator seeded with `seed`: the same on every machine.
    public static func randomInputs(for graph: WeightGraph, count: Int, length: Int, seed: UInt64) throws -> [ModelInput] {
        let model = try Transformers.describe(graph)  // reads no weights
        var rng = SplitMix64(seed: seed)
        let maxT = graph.config?.maxPositions ?? length
        let T = max(1, min(length, maxT))
        if let vocab = model.vocabSize {
            return (0..<count).map { _ in .tokens((0..<T).map { _ in Int(rng.next() % UInt64(vocab)) }) }
        }
        let width = graph.config?["d_model"]?.intValue ?? graph.config?.hiddenSize ?? 0
        guard width > 0 else { throw VerifyError.badInputs("cannot tell the input width of \(model.architecture)") }
        return (0..<count).map { _ in .vectors((0..<T * width).map { _ in rng.nextGaussian() }, rows: T) }
    }

    /// Token sequences from a file: text with one sequence per line (ids separated by commas
    /// or spaces; '#' starts a comment), or a 2-D integer .npy [sequences, tokens].
    public static func tokenFile(_ path: String) throws -> [ModelInput] {
        if path.hasSuffix(".npy") {
            let t = try Npy.read(path: path)
            guard t.shape.count == 2, [.i64, .i32, .u16, .u32, .i16].contains(t.dtype) else {
                throw FileError(path: path, error: VerifyError.badInputs("expected a 2-D integer array, got \(t.dtype) \(t.shape)"))
            }
            let values = try t.integerValues()!.map { Int($0) }
            return stride(from: 0, to: values.count, by: t.shape[1]).map { .tokens(Array(values[$0..<$0 + t.shape[1]])) }
        }
        try RegularFile.check(path)  // a FIFO would block
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw IOError.cannotOpen(path: path, errno: ENOENT)
        }
        var out: [ModelInput] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let body = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let parts = body.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" || $0 == "\r" })
            if parts.isEmpty { continue }
            let ids = parts.compactMap { Int($0) }
            guard ids.count == parts.count else {
                throw FileError(path: path, error: VerifyError.badInputs("line \(n + 1) holds something other than token ids"))
            }
            out.append(.tokens(ids))
        }
        guard !out.isEmpty else { throw FileError(path: path, error: VerifyError.badInputs("no token sequences")) }
        return out
    }
}

// `ckpt prune` and the pipeline's prune step.

import CkptCore
import Foundation
import Formats
import Prune
import Transformer

/// Prunes a model: unstructured, N:M, or whole heads, MLP neurons and layers into a smaller config.
public struct PruneJob: Job, GateLimits {
    public static let name = "prune"
    public var input = ""
    public var output = ""
    /// Unstructured sparsity, 0...1.
    public var sparsity: Double?
    /// One magnitude threshold over all tensors instead of per tensor.
    public var globalSparsity = false
    /// N:M semi-structured sparsity along the input dimension, e.g. "2:4".
    public var nm: String?
    /// Regular expressions of tensors to leave alone.
    public var keep: [String] = []
    /// REGEX=SPARSITY for matching tensors.
    public var override: [String] = []
    /// Remove this many attention heads from every layer.
    public var heads: Int?
    /// Remove exactly these heads, e.g. "0:1,2;3:0" (layer:heads).
    public var dropHeads: String?
    /// Narrow every MLP to this many neurons.
    public var intermediate: Int?
    /// Drop these layers.
    public var dropLayers: [Int] = []
    /// Drop the N layers with the least block influence.
    public var dropLayerCount: Int?
    /// magnitude or activation.
    public var importance = "magnitude"
    /// Calibration data: a text file or token ids.
    public var calibration: String?
    /// Random calibration sequences when no calibration file.
    public var calibrationSequences = 8
    /// Length of calibration sequences.
    public var length = 64
    /// Seed of random calibration sequences.
    public var seed: UInt64 = 0
    /// Verify the result against the original; write it only if the gates pass.
    public var verify = false
    /// Gate preset for `verify`.
    public var preset = "prune"
    /// Gates for `verify` (replacing the preset's).
    public var maxKl, minCosine, minTop1, maxAbs: Double?
    /// A config.json to use instead of the one beside the input.
    public var config: String?
    /// Output format (default: from the extension).
    public var to: String?
    /// Single-file output: also write the new config as config.json beside it.
    public var writeConfig = false

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case input, output, sparsity, globalSparsity = "global", nm, keep, override, heads, dropHeads = "drop_heads"
        case intermediate, dropLayers = "drop_layers", dropLayerCount = "drop_layer_count", importance, calibration
        case calibrationSequences = "calibration_sequences", length, seed, verify, preset
        case maxKl = "max_kl", minCosine = "min_cosine", minTop1 = "min_top1", maxAbs = "max_abs", config, to
        case writeConfig = "write_config"
    }
    public static let requiredKeys: [CodingKeys] = [.input, .output]
    public static let inputKeys: [CodingKeys] = [.input, .config, .calibration]
    public static let outputKeys: [CodingKeys] = [.output]

    public init() {}
    public init(input: String, output: String) {
        (self.input, self.output) = (input, output)
    }

    public struct Report: JobReport {
        public var prune: PruneReport
        /// The verification (when `verify`).
        public var verify: VerifyReport?
        /// Whether the output was written (not when a gate failed).
        public var written: Bool
        public var carried: [String]

        public var passed: Bool { verify?.passed ?? true }
        public func json() -> JSONValue {
            var r = prune.json().objectValue ?? [:]
            r["verify"] = verify?.json() ?? .null
            r["written"] = .bool(written)
            r["carried"] = .array(carried.map { .string($0) })
            if verify != nil { r["passed"] = .bool(passed) }
            return .object(r)
        }
        public var logLines: [String] { verify.map { [$0.table()] } ?? [] }
    }

    public var gates: GateOptions { GateOptions(preset: preset, maxKl: maxKl, minCosine: minCosine, minTop1: minTop1, maxAbs: maxAbs) }

    /// The pruning options (calibration inputs are added by `run`).
    public func pruneOptions() throws -> PruneOptions {
        var o = PruneOptions()
        if let sparsity, !(0...1).contains(sparsity) { throw JobError("sparsity", "must be a number in 0...1") }
        o.sparsity = sparsity
        o.globalSparsity = globalSparsity
        if let nm {
            guard let v = PruneOptions.parseNM(nm) else { throw JobError("nm", "must look like 2:4") }
            o.nm = v
        }
        o.keep = keep
        o.overrides = try override.map { spec in
            guard let eq = spec.lastIndex(of: "="), let v = Double(spec[spec.index(after: eq)...]) else {
                throw JobError("override", "must look like REGEX=0.3")
            }
            return (String(spec[..<eq]), v)
        }
        o.headsPerLayer = heads
        if let dropHeads {
            guard let map = PruneOptions.parseDropHeads(dropHeads) else { throw JobError("drop_heads", "must look like \"0:1,2;3:0\"") }
            o.dropHeads = map
        }
        o.intermediate = intermediate
        o.dropLayers = dropLayers.isEmpty ? nil : dropLayers
        o.dropLayerCount = dropLayerCount
        guard let imp = PruneOptions.Importance(rawValue: importance) else { throw JobError("importance", "must be magnitude or activation") }
        o.importance = imp
        guard !o.isEmpty else {
            throw JobError(nil, "nothing to do: give sparsity, nm, heads, drop_heads, intermediate, drop_layers or drop_layer_count")
        }
        return o
    }

    public func validate() throws {
        for (v, k) in [(heads, "heads"), (intermediate, "intermediate"), (dropLayerCount, "drop_layer_count"),
                       (calibrationSequences, "calibration_sequences"), (length, "length")] { try Self.positive(v, k) }
        _ = try pruneOptions()
        if verify { _ = try gates.gates() }
    }

    public func run(progress: JobProgress) throws -> Report {
        try validate()
        var o = try pruneOptions()
        let source = try Checkpoint.openModel(input, configPath: config)
        if o.needsCalibration {
            o.calibration = try calibration.map { try TextFiles.tokenInputs($0, model: input, length: min(length, source.config?.maxPositions ?? length)) }
                ?? Verifier.randomInputs(for: source, count: calibrationSequences, length: length, seed: seed)
        }
        let pruned: PruneResult
        do { pruned = try Pruner.prune(source, o) } catch let e as PruneError {
            throw FileError(path: input, error: e)
        } catch let e as TransformerError {
            throw FileError(path: input, error: e)
        }
        var verifyReport: VerifyReport?
        if verify {
            let inputs = try Verifier.randomInputs(for: source, count: 4, length: 32, seed: seed &+ 1)
            verifyReport = try Verifier.run(reference: source, candidate: pruned.graph, inputs: inputs, gates: try gates.gates())
        }
        let passed = verifyReport?.passed ?? true
        var carried: [String] = []
        if passed {
            let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: to, maxShardSize: nil)
            let companions = directory ? Conversion.companionSource(input) : nil
            try Checkpoint.write(pruned.graph, to: output, format: format, directory: directory,
                                 options: .init(configBeside: writeConfig, companionsFrom: companions))
            carried = companions.map { Companions.list(in: $0).map(\.name) } ?? []
        }
        return Report(prune: pruned.report, verify: verifyReport, written: passed, carried: carried)
    }
}

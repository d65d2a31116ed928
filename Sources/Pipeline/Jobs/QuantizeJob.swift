// `ckpt quantize` and the pipeline's quantize step.
//
// A new quantize option is a field here (with its CodingKey), one `@Option` in
// Sources/ckpt/Quantize.swift assigning it, and whatever `run` does with it.

import CkptCore
import Foundation
import Formats
import Quantize

/// Quantizes a checkpoint's weights (GGUF block types, int8/int4 groups, f16/bf16).
public struct QuantizeJob: Job {
    public static let name = "quantize"
    public var input = ""
    public var output = ""
    /// The scheme (or llama-quantize preset) for 2-D weights.
    public var scheme = ""
    /// Group size for int8/int4: 32, 64, 128 or 256.
    public var groupSize: Int?
    /// Keep tensors whose name matches these regular expressions in float.
    public var keep: [String] = []
    /// REGEX=SCHEME: a different scheme for matching tensors (first match wins).
    public var tensorType: [String] = []
    /// Scheme for tensors whose rows do not fit the scheme's blocks.
    public var fallback = "f16"
    /// Output format (default: from the output's extension).
    public var to: String?
    /// PyTorch checkpoints that wrap their state_dict: its dotted key.
    public var key: String?
    /// A config.json to use instead of the one beside the input.
    public var config: String?
    /// Write block-quantized tensors the output format cannot hold as f32.
    public var dequantize = false
    /// Leave out tensors whose name matches these regular expressions.
    public var exclude: [String] = []
    /// Single-file output: also write config.json beside it.
    public var writeConfig = false
    /// Plan only: write nothing.
    public var dryRun = false
    /// Worker threads (default: all cores).
    public var jobs: Int?
    /// Skip measuring each tensor's error.
    public var noErrors = false
    /// Calibrate on this text or token file.
    public var calibrate: String?
    /// Calibration method (default: by scheme).
    public var method: String?
    /// Calibration sequences used (at most).
    public var calibrationSamples = 128
    /// Tokens per calibration sequence.
    public var context = 512
    /// GPTQ dampening (fraction of the Hessian's mean diagonal).
    public var damp = 0.01
    /// GPTQ: columns in order of decreasing activation energy.
    public var actOrder = false
    /// A llama.cpp importance matrix (GGUF or legacy .dat) for method imatrix; needs no calibration file.
    public var imatrix: String?
    /// Write the importance matrix collected from `calibrate` here (llama.cpp's GGUF layout, legacy if `.dat`).
    public var saveImatrix: String?
    /// Calibrate block by block, each from the already-quantized blocks' output (nil: for GPTQ).
    public var sequential: Bool?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case input, output, scheme, groupSize = "group_size", keep, tensorType = "tensor_type", fallback, to, key, config
        case dequantize, exclude, writeConfig = "write_config", dryRun = "dry_run", jobs, noErrors = "no_errors"
        case calibrate, method, calibrationSamples = "calibration_samples", context, damp, actOrder = "act_order"
        case imatrix, saveImatrix = "save_imatrix", sequential
    }
    public static let requiredKeys: [CodingKeys] = [.input, .output, .scheme]
    public static let inputKeys: [CodingKeys] = [.input, .config, .calibrate, .imatrix]
    public static let outputKeys: [CodingKeys] = [.output, .saveImatrix]

    public init() {}
    public init(input: String, output: String, scheme: String) {
        (self.input, self.output, self.scheme) = (input, output, scheme)
    }

    public struct Report: JobReport {
        public var rows: [QuantizePlanRow]
        public var errors: QuantizationReport
        public var recipe: QuantizeRecipe
        public var calibration: Calibration?
        public var excluded: [String]
        public var carried: [String]
        public var input: String
        public var output: String
        public var dryRun: Bool

        public func json() -> JSONValue {
            var r = Quantization.jsonReport(rows, report: errors, recipe: recipe, input: input, output: output, dryRun: dryRun,
                                            tool: "ckpt \(CkptInfo.version)", calibration: calibration).objectValue ?? [:]
            r["excluded"] = .array(excluded.map { .string($0) })
            r["carried"] = .array(carried.map { .string($0) })
            return .object(r)
        }
    }

    /// The recipe: scheme, groups, kept tensors, per-tensor overrides, fallback.
    public func recipe() throws -> QuantizeRecipe {
        var overrides: [(pattern: String, scheme: String)] = []
        for t in tensorType {
            guard let eq = t.lastIndex(of: "=") else { throw JobError("tensor_type", "must be REGEX=SCHEME, got \"\(t)\"") }
            overrides.append((String(t[..<eq]), String(t[t.index(after: eq)...])))
        }
        let recipe = QuantizeRecipe(scheme: scheme, groupSize: groupSize, keep: keep, overrides: overrides, fallback: fallback)
        _ = try recipe.validate()
        return recipe
    }

    public func validate() throws {
        _ = try recipe()
        if let jobs, jobs < 1 { throw JobError("jobs", "must be at least 1") }
        if calibrate == nil, imatrix == nil, method != nil || actOrder {
            throw JobError(nil, "method and act_order need calibrate (a calibration file) or imatrix")
        }
        if calibrate == nil, sequential == true { throw JobError("sequential", "needs calibrate (a calibration file)") }
        if sequential == true, method?.lowercased().hasPrefix("awq") == true {
            throw JobError("sequential", "applies to gptq and imatrix; awq searches its scales on the float model's block inputs")
        }
        if calibrate == nil, saveImatrix != nil { throw JobError("save_imatrix", "needs calibrate (a calibration file)") }
        if calibrate == nil, imatrix != nil, let m = method?.lowercased(), m != "imatrix", m != "rtn" {
            throw JobError("method", "\(m) needs calibrate (a calibration file); imatrix brings only what method imatrix uses")
        }
        guard damp > 0, damp.isFinite else { throw JobError("damp", "must be a positive number") }
        try Self.positive(calibrationSamples, "calibration_samples")
        try Self.positive(context, "context")
    }

    public func run(progress: JobProgress) throws -> Report {
        try validate()
        let recipe = try recipe()
        let jobs = max(1, self.jobs ?? Quantizer.defaultJobs)
        let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: to, maxShardSize: nil)
        guard format.isWritable || format == .ckz else { throw JobError(nil, "\(output): writing \(format) is not supported") }

        let patterns = try Conversion.compile(exclude)
        var (source, _) = try Checkpoint.open(input, configPath: config, key: key)
        let excluded = try Conversion.exclude(&source, patterns, path: input)
        let companions = directory ? Conversion.companionSource(input) : nil
        let errors = QuantizationReport(measures: !noErrors)
        let calibration = try (calibrate ?? imatrix.map { _ in "" }).map { file in
            let method = self.method?.lowercased() ?? (imatrix != nil ? "imatrix" : nil)
            var options = CalibrationOptions(file: file, method: method, samples: calibrationSamples, context: context, percdamp: damp,
                                             actOrder: actOrder, imatrix: imatrix, saveImatrix: saveImatrix)
            options.sequential = sequential ?? (imatrix == nil && Calibration.defaultSequential(scheme: scheme, groupSize: groupSize, method: method))
            let ggufNames = options.sequential ? GGUFNaming.hfNames(of: try GGUFNaming.toGGUF(source)) : [:]
            let hfToGGUF = Dictionary(ggufNames.map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            return try Calibration.collect(source, checkpoint: input, options: options, target: { name, shape in
                try? recipe.decide(names: format == .gguf ? [hfToGGUF[name], name].compactMap { $0 } : [name], dtype: .f32, shape: shape).target
            }, ggufOutput: format == .gguf)
        }
        let quantized = try Quantization.apply(source, recipe: recipe, scheme: scheme, format: format, output: output,
                                                   jobs: jobs, dequantize: dequantize, report: errors,
                                                   tool: "ckpt \(CkptInfo.version)", calibration: calibration)
        let (graph, rows) = (quantized.graph, quantized.rows)
        if !dryRun {
            progress.bytes?.start(total: graph.byteCount)
            try Checkpoint.write(graph, to: output, format: format, directory: directory,
                                 options: .init(progress: progress.bytes, dequantize: dequantize, configBeside: writeConfig,
                                                companionsFrom: companions,
                                                tokenizerFrom: format == .gguf ? GGUFTokenizer.source(for: input) : nil))
        }
        return Report(rows: rows, errors: errors, recipe: recipe, calibration: calibration, excluded: excluded,
                      carried: dryRun ? [] : companions.map { Companions.list(in: $0).map(\.name) } ?? [],
                      input: progress.displayPath(input), output: progress.displayPath(output), dryRun: dryRun)
    }
}

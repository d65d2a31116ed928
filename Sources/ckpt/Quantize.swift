import ArgumentParser
import CkptCore
import Formats
import Pipeline
import Foundation
import OrderedCollections
import Quantize

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize a checkpoint's weights (GGUF block types, int8/int4 groups, f16/bf16).",
        discussion: """
            Schemes: q8_0 q4_0 q4_1 q5_0 q5_1 (byte-identical to llama.cpp/gguf-py), q2_k q3_k \
            q4_k q5_k q6_k (ggml's reference algorithm), int8 (symmetric, groups of up to 256 \
            along each output row), int4 / int4-asym (groups of --group-size, default 32), \
            f16, bf16. llama-quantize's presets q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s \
            q5_k_m q6_k q4_0 q4_1 q5_0 q5_1 q8_0 pick each GGUF tensor's type as llama-quantize \
            does (attn_v/ffn_down/attn_output/attn_qkv rules by layer, output.weight Q6_K) and \
            set general.file_type to the preset's llama_ftype; other formats get the preset's \
            main type throughout. 1-D tensors stay float. Rows that are not a whole number of blocks fall \
            back (reported). The output format follows OUT's extension: .gguf holds GGUF's \
            types; .ckz holds all; .safetensors holds none (use --dequantize to write the \
            quantized values as f32). Recipe and tool version go into the output's metadata.
            """
    )

    @Argument(help: "Input checkpoint file or Hugging Face model directory.")
    var input: String

    @Argument(help: "Output file (.gguf, .ckz, or .safetensors with --dequantize).")
    var output: String

    @Option(help: "The scheme for 2-D weights.")
    var scheme: String

    @Option(help: "Group size for int8/int4: 32, 64, 128 or 256.")
    var groupSize: Int?

    @Option(help: "Keep tensors whose name matches this regular expression in float (repeatable).")
    var keep: [String] = []

    @Option(help: "REGEX=SCHEME: a different scheme for matching tensors (repeatable; first match wins). REGEX must match at name-part boundaries: `output` hits output.weight, not attn_output; --dry-run shows what matched.")
    var tensorType: [String] = []

    @Option(help: "Scheme for tensors whose rows do not fit the scheme's blocks (after llama.cpp's k-quant fallbacks).")
    var fallback: String = "f16"

    @Option(help: "Output format (default: from OUT's extension).")
    var to: String?

    @Option(help: "PyTorch checkpoints that wrap their state_dict ({'model': sd}): its dotted key, e.g. model or state_dict.")
    var key: String?

    @Option(help: "A Hugging Face config.json to use instead of the one beside the input.")
    var config: String?

    @Flag(help: "Write block-quantized tensors the output format cannot hold as f32 (their quantized values).")
    var dequantize = false

    @Option(help: "Leave out tensors whose name matches this regular expression (repeatable).")
    var exclude: [String] = []

    @Flag(help: "Single-file output: also write the model config as config.json beside it (it always travels inside the file too).")
    var writeConfig = false

    @Flag(help: "Print the plan with sizes before and after; write nothing.")
    var dryRun = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "Worker threads for quantization (default: all cores).")
    var jobs: Int?

    @Flag(help: "Skip measuring each tensor's error (the report then has sizes only).")
    var noErrors = false

    @Flag(help: "No progress bar.")
    var quiet = false

    @Option(help: "Calibrate on this text (tokenized with the model's tokenizer) or token file (.npy, or lines of ids).")
    var calibrate: String?

    @Option(help: "Calibration method: gptq, awq (activation-aware scales folded into the preceding norm/linear, then round-to-nearest), imatrix (llama.cpp's importance-weighted search) or rtn (default: gptq for q8_0/q4_0/q4_1/q5_0/q5_1/int8/int4, imatrix for the k-quants; imatrix with --imatrix).")
    var method: String?

    @Option(help: "Use this llama.cpp importance matrix (llama-imatrix's GGUF or legacy .dat) for --method imatrix; needs no --calibrate.")
    var imatrix: String?

    @Option(help: "Write the importance matrix collected by --calibrate, in llama.cpp's GGUF layout (legacy layout if FILE ends in .dat), for llama-quantize --imatrix.")
    var saveImatrix: String?

    @Option(help: "Calibration sequences used (at most).")
    var calibrationSamples: Int = 128

    @Option(help: "Tokens per calibration sequence.")
    var context: Int = 512

    @Option(help: "GPTQ dampening: this fraction of the Hessian's mean diagonal is added to it.")
    var damp: Double = 0.01

    @Flag(help: "GPTQ: quantize columns in order of decreasing activation energy (grids fixed first).")
    var actOrder = false

    func run() throws {
        var overrides: [(pattern: String, scheme: String)] = []
        for t in tensorType {
            guard let eq = t.lastIndex(of: "=") else { throw CLIError("--tensor-type must be REGEX=SCHEME, got \"\(t)\"") }
            overrides.append((String(t[..<eq]), String(t[t.index(after: eq)...])))
        }
        let recipe = QuantizeRecipe(scheme: scheme, groupSize: groupSize, keep: keep, overrides: overrides, fallback: fallback)
        _ = try recipe.validate()
        let jobs = max(1, self.jobs ?? Quantizer.defaultJobs)
        let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: to, maxShardSize: nil)
        guard format.isWritable || format == .ckz else { throw CLIError("\(output): writing \(format) is not supported") }

        let patterns = try Conversion.compile(exclude)
        var (source, _) = try Checkpoint.open(input, configPath: config, key: key)
        let excluded = try Conversion.exclude(&source, patterns, path: input)
        let companions = directory ? Conversion.companionSource(input) : nil
        let report = QuantizationReport(measures: !noErrors)
        if calibrate == nil, imatrix == nil, method != nil || actOrder { throw CLIError("--method and --act-order need --calibrate FILE (or --imatrix FILE)") }
        if calibrate == nil, saveImatrix != nil { throw CLIError("--save-imatrix needs --calibrate FILE") }
        if calibrate == nil, imatrix != nil, let m = method?.lowercased(), m != "imatrix", m != "rtn" {
            throw CLIError("--method \(m) needs --calibrate FILE (--imatrix FILE brings only what --method imatrix uses)")
        }
        guard damp > 0, damp.isFinite else { throw CLIError("--damp must be a positive number") }
        let calibration = try (calibrate ?? imatrix.map { _ in "" }).map { file in
            try Calibration.collect(source, checkpoint: input, options: CalibrationOptions(
                file: file, method: method?.lowercased() ?? (imatrix != nil ? "imatrix" : nil), samples: calibrationSamples, context: context,
                percdamp: damp, actOrder: actOrder, imatrix: imatrix, saveImatrix: saveImatrix))
        }
        if let calibration, !json {
            if let m = imatrix { print("importance matrix: \(m)") }
            if !calibration.options.file.isEmpty { print("calibration: \(calibration.sequences) sequence(s), \(calibration.tokens) tokens from \(calibration.options.file) "
                  + String(format: "(%.2f s)", calibration.collectSeconds)) }
            print("method: \(calibration.method(forScheme: scheme, groupSize: groupSize))" + (method == nil && imatrix == nil ? " (the default for \(scheme); --method to choose)" : ""))
        }
        let (graph, rows) = try Quantization.apply(source, recipe: recipe, scheme: scheme, format: format, output: output,
                                                   jobs: jobs, dequantize: dequantize, report: report,
                                                   tool: "ckpt \(Ckpt.version)", calibration: calibration)

        if !dryRun {
            let progress = ProgressBar.make(label: "quantize", quiet: quiet || json)
            progress?.start(total: graph.byteCount)
            try Checkpoint.write(graph, to: output, format: format, directory: directory,
                                 options: .init(progress: progress, dequantize: dequantize, configBeside: writeConfig,
                                                companionsFrom: companions,
                                                tokenizerFrom: format == .gguf ? GGUFTokenizer.source(for: input) : nil))
            progress?.finish()
        }
        var summary = ConversionSummary()
        summary.excluded = excluded
        summary.carried = dryRun ? [] : companions.map { Companions.list(in: $0).map(\.name) } ?? []
        if json {
            var r = Quantization.jsonReport(rows, report: report, recipe: recipe, input: input, output: output, dryRun: dryRun,
                                            tool: "ckpt \(Ckpt.version)", calibration: calibration).objectValue ?? [:]
            r["excluded"] = .array(excluded.map { JSONValue.string($0) })
            r["carried"] = .array(summary.carried.map { JSONValue.string($0) })
            print(JSONValue.object(r).prettyPrinted())
        } else {
            printReport(rows, report: report)
            if let calibration { printCalibration(rows, calibration) }
            for line in summary.lines(input: input) { print(line) }
        }
    }

    func printCalibration(_ rows: [QuantizePlanRow], _ c: Calibration) {
        let layers = rows.compactMap { r in c.layer(r.name).map { (r.name, $0) } }
        guard !layers.isEmpty else { print("  calibration: no layer calibrated (round-to-nearest everywhere)"); return }
        print("  output error on the calibration activations, ‖WX − ŴX‖/‖WX‖ (rtn -> calibrated):")
        for (name, l) in layers { print(String(format: "    %@  %.4e -> %.4e  (%@)", name, l.errorBefore, l.errorAfter, l.method)) }
    }

    func printReport(_ rows: [QuantizePlanRow], report: QuantizationReport) {
        let width = min(48, rows.map(\.name.count).max() ?? 0)
        print((dryRun ? "plan" : "quantized") + ": \(input) -> \(output), scheme \(scheme)")
        print("  " + "tensor".padding(toLength: width, withPad: " ", startingAt: 0)
              + "  from   to       bytes before -> after    rmse       max err    SQNR dB")
        for r in rows {
            let to = r.decision.target?.rawValue ?? "keep"
            var line = "  " + r.name.padding(toLength: max(width, r.name.count), withPad: " ", startingAt: 0)
                + "  " + r.before.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)
                + "  " + to.padding(toLength: 7, withPad: " ", startingAt: 0)
                + "  " + String(format: "%10d -> %-10d", r.bytesBefore, r.bytesAfter)
            if let e = report.error(for: r.name) {
                line += String(format: "  %.3e  %.3e  %7.2f", e.rmse, e.maxAbs, e.sqnrDB)
            }
            if let from = r.decision.fellBackFrom {
                line += "  (fallback: rows of \(r.shape.last ?? 0) do not fit \(from)"
                    + (r.decision.reason == "scheme" ? ")" : "; \(r.decision.reason))")
            } else if r.decision.target == nil || r.decision.reason != "scheme" {
                line += "  (\(r.decision.reason))"
            }
            print(line)
        }
        let before = rows.reduce(0) { $0 + $1.bytesBefore }, after = rows.reduce(0) { $0 + $1.bytesAfter }
        let fallbacks = rows.filter { $0.decision.fellBackFrom != nil }.count
        print(String(format: "  total %@ -> %@ (%.1f%%)", formatBytes(before), formatBytes(after), before > 0 ? 100 * Double(after) / Double(before) : 0)
              + (fallbacks > 0 ? ", \(fallbacks) tensor(s) fell back" : ""))
    }
}

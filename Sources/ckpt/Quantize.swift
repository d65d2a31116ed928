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
    var fallback: String = QuantizeJob().fallback

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

    @OptionGroup var calibration: CalibrationFlags

    /// The job these flags describe.
    var job: QuantizeJob {
        var job = QuantizeJob(input: input, output: output, scheme: scheme)
        (job.groupSize, job.keep, job.tensorType, job.fallback, job.to, job.key, job.config) = (groupSize, keep, tensorType, fallback, to, key, config)
        (job.dequantize, job.exclude, job.writeConfig, job.dryRun, job.jobs, job.noErrors) = (dequantize, exclude, writeConfig, dryRun, jobs, noErrors)
        calibration.apply(to: &job)
        return job
    }

    func run() throws {
        let progress = dryRun ? nil : ProgressBar.make(label: "quantize", quiet: quiet || json)
        let r = try job.run(progress: .cli(quiet: quiet || json, bytes: progress))
        progress?.finish()
        if json {
            print(r.json().prettyPrinted())
        } else {
            if let c = r.calibration {
                if let m = c.options.imatrix { print("importance matrix: \(m)") }
                if !c.options.file.isEmpty {
                    print("calibration: \(c.sequences) sequence(s), \(c.tokens) tokens from \(c.options.file) "
                          + String(format: "(%.2f s)", c.collectSeconds)
                          + (c.options.sequential ? ", sequential (each block from the quantized blocks before it)" : ", one pass over the float model"))
                }
                let chosen = calibration.method == nil && calibration.imatrix == nil
                print("method: \(c.method(forScheme: scheme, groupSize: groupSize))"
                      + (chosen ? " (the default for \(scheme); --method to choose)" : ""))
            }
            printReport(r.rows, report: r.errors)
            if let c = r.calibration { printCalibration(r.rows, c) }
            var summary = ConversionSummary()
            (summary.excluded, summary.carried) = (r.excluded, r.carried)
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

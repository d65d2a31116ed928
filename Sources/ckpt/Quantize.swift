import ArgumentParser
import CkptCore
import Formats
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
            f16, bf16. 1-D tensors stay float. Rows that are not a whole number of blocks fall \
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

    @Option(help: "REGEX=SCHEME: a different scheme for matching tensors (repeatable; first match wins).")
    var tensorType: [String] = []

    @Option(help: "Scheme for tensors whose rows do not fit the scheme's blocks (after llama.cpp's k-quant fallbacks).")
    var fallback: String = "f16"

    @Option(help: "Output format (default: from OUT's extension).")
    var to: String?

    @Option(help: "A Hugging Face config.json to use instead of the one beside the input.")
    var config: String?

    @Flag(help: "Write block-quantized tensors the output format cannot hold as f32 (their quantized values).")
    var dequantize = false

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

    struct Row {
        var name: String
        var shape: [Int]
        var before: DType
        var decision: QuantizeRecipe.Decision
        var bytesBefore: Int
        var bytesAfter: Int
    }

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

        let (source, _) = try Checkpoint.open(input, configPath: config)
        // GGUF output: rename to llama.cpp's layout first, so GPT-2's Conv1D weights are
        // transposed while still float and blocks run along each output row.
        let renamed = format == .gguf ? try GGUFNaming.toGGUF(source) : try GGUFNaming.toHF(source)
        var hfNames: [String: String] = [:]
        if format == .gguf, !GGUFNaming.isGGUFNamed(source) {
            let back = try GGUFNaming.toHF(renamed)
            for (a, b) in zip(renamed.tensors.keys, back.tensors.keys) { hfNames[a] = b }
        }

        var rows: [Row] = []
        var graph = renamed
        let report = QuantizationReport(measures: !noErrors)
        for t in renamed.tensors.values {
            let names = [t.name] + (hfNames[t.name].map { [$0] } ?? [])
            let d = try recipe.decide(names: names, dtype: t.dtype, shape: t.shape)
            var after = t.byteCount
            if let target = d.target {
                if target.isQuantized, !format.canHold(target), !dequantize {
                    let hint = format == .gguf
                        ? "use a GGUF scheme (q8_0, q4_0, q4_k, ...) or write .ckz, which holds ckpt's int8/int4 types"
                        : "write .gguf\(GGUF.canHold(target) ? "" : " with a GGUF scheme") or .ckz, or pass --dequantize to store its quantized values as f32"
                    throw CLIError("\(output): tensor `\(t.name)`: \(format) cannot hold \(target); \(hint)")
                }
                after = target.byteCount(shape: t.shape) ?? 0
                if target.isQuantized, !format.canHold(target) { after = t.elementCount * 4 }
                try graph.replace(Quantizer.lazyQuantize(t, to: target, jobs: jobs, report: report))
            }
            rows.append(Row(name: t.name, shape: t.shape, before: t.dtype, decision: d, bytesBefore: t.byteCount, bytesAfter: after))
        }

        // Recipe and tool version in the output's metadata.
        graph.metadata["ckpt.quantize.recipe"] = recipe.json
        graph.metadata["general.quantized_by"] = "ckpt \(Ckpt.version)"
        if format == .gguf {
            GGUFMetadata.set("general.quantization_version", .u32(2), in: &graph)
            if let ft = Self.llamaFileType(scheme) { GGUFMetadata.set("general.file_type", .u32(ft), in: &graph) }
        }

        if !dryRun {
            let progress = ProgressBar.make(label: "quantize", quiet: quiet || json)
            progress?.start(total: graph.byteCount)
            try Checkpoint.write(graph, to: output, format: format, directory: directory,
                                 options: .init(progress: progress, dequantize: dequantize))
            progress?.finish()
        }
        if json {
            print(Self.jsonReport(rows, report: report, recipe: recipe, input: input, output: output, dryRun: dryRun).prettyPrinted())
        } else {
            printReport(rows, report: report)
        }
    }

    /// llama.cpp's `llama_ftype` for a recipe's main scheme (llama.h), so llama.cpp tools
    /// describe the file as they would their own.
    static func llamaFileType(_ scheme: String) -> UInt32? {
        ["f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q2_k": 10,
         "q3_k": 11, "q4_k": 14, "q5_k": 16, "q6_k": 18, "bf16": 32][scheme.lowercased()]
    }

    func printReport(_ rows: [Row], report: QuantizationReport) {
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
                line += "  (fallback: rows of \(r.shape.last ?? 0) do not fit \(from))"
            } else if r.decision.target == nil {
                line += "  (\(r.decision.reason))"
            }
            print(line)
        }
        let before = rows.reduce(0) { $0 + $1.bytesBefore }, after = rows.reduce(0) { $0 + $1.bytesAfter }
        let fallbacks = rows.filter { $0.decision.fellBackFrom != nil }.count
        print(String(format: "  total %@ -> %@ (%.1f%%)", formatBytes(before), formatBytes(after), before > 0 ? 100 * Double(after) / Double(before) : 0)
              + (fallbacks > 0 ? ", \(fallbacks) tensor(s) fell back" : ""))
    }

    static func jsonNumber(_ d: Double) -> JSONValue { d.isFinite ? .double(d) : .string(d > 0 ? "inf" : "-inf") }

    static func jsonReport(_ rows: [Row], report: QuantizationReport, recipe: QuantizeRecipe, input: String, output: String, dryRun: Bool) -> JSONValue {
        let tensors: [JSONValue] = rows.map { r in
            var o: OrderedDictionaryShim = [
                ("name", .string(r.name)),
                ("shape", .array(r.shape.map { .int($0) })),
                ("from", .string(r.before.rawValue)),
                ("to", .string(r.decision.target?.rawValue ?? r.before.rawValue)),
                ("action", .string(r.decision.target == nil ? "keep" : "quantize")),
                ("reason", .string(r.decision.reason)),
                ("bytes_before", .int(r.bytesBefore)),
                ("bytes_after", .int(r.bytesAfter)),
            ]
            if let f = r.decision.fellBackFrom { o.append(("fallback_from", .string(f))) }
            if let e = report.error(for: r.name) {
                o.append(("rmse", jsonNumber(e.rmse)))
                o.append(("max_abs_error", jsonNumber(e.maxAbs)))
                o.append(("sqnr_db", jsonNumber(e.sqnrDB)))
                o.append(("relative_rmse", jsonNumber(e.relativeRMSE)))
            }
            return .object(.init(uniqueKeysWithValues: o))
        }
        let before = rows.reduce(0) { $0 + $1.bytesBefore }, after = rows.reduce(0) { $0 + $1.bytesAfter }
        let recipeJSON = (try? JSONValue.parse(recipe.json)) ?? .null
        return .object([
            "input": .string(input),
            "output": .string(output),
            "dry_run": .bool(dryRun),
            "tool": .string("ckpt \(Ckpt.version)"),
            "recipe": recipeJSON,
            "tensors": .array(tensors),
            "bytes_before": .int(before),
            "bytes_after": .int(after),
            "fallbacks": .int(rows.filter { $0.decision.fellBackFrom != nil }.count),
            "quantize_seconds": .double(report.quantizeSeconds),
        ])
    }
}

typealias OrderedDictionaryShim = [(String, JSONValue)]

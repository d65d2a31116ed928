// Quantization as a library call: what `ckpt quantize` and the `quantize` pipeline step do
// to a weight graph (the numerics live in the Quantize module).

import CkptCore
import Formats
import Foundation
import OrderedCollections
import Quantize

public struct QuantizePlanRow: Sendable {
    public var name: String
    public var shape: [Int]
    public var before: DType
    public var decision: QuantizeRecipe.Decision
    public var bytesBefore: Int
    public var bytesAfter: Int
}

public struct QuantizeJobError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// What `Quantization.apply` returns: the graph to write and the plan, one row per tensor.
public struct QuantizedGraph: Sendable {
    /// The quantized graph (tensors quantized lazily, when first read or written).
    public var graph: WeightGraph
    /// What happened to each tensor: its decision and its size before and after.
    public var rows: [QuantizePlanRow]

    public init(graph: WeightGraph, rows: [QuantizePlanRow]) {
        self.graph = graph
        self.rows = rows
    }
}

public enum Quantization {
    /// The graph with the recipe applied lazily (tensors are quantized as they are written),
    /// named for `format` (GGUF names for .gguf), with the recipe and tool in its metadata;
    /// and one row per tensor for the report.
    public static func apply(_ source: WeightGraph, recipe: QuantizeRecipe, scheme: String, format: CheckpointFormat,
                             output: String, jobs: Int, dequantize: Bool, report: QuantizationReport,
                             tool: String, calibration: Calibration? = nil) throws -> QuantizedGraph {
        // AWQ: per-channel scales folded into the float weights first (the function is unchanged).
        var source = source
        if let calibration, calibration.usesAWQ {
            source = try calibration.applyAWQ(source) { name, shape in
                try? recipe.decide(names: [calibration.ggufNames[name], name].compactMap { $0 }, dtype: .f32, shape: shape).target
            }
        }
        // GGUF output: rename to llama.cpp's layout first, so GPT-2's Conv1D weights are
        // transposed while still float and blocks run along each output row.
        let renamed = format == .gguf ? try GGUFNaming.toGGUF(source) : try GGUFNaming.toHF(source)
        let hfNames = format == .gguf ? GGUFNaming.hfNames(of: renamed) : [:]
        var recipe = recipe
        if format == .gguf, recipe.preset != nil { recipe.presetModel = presetModel(renamed) }
        var rows: [QuantizePlanRow] = []
        var graph = renamed
        for t in renamed.tensors.values {
            let names = [t.name] + (hfNames[t.name].map { [$0] } ?? [])
            let d = try recipe.decide(names: names, dtype: t.dtype, shape: t.shape)
            var after = t.byteCount
            if let target = d.target {
                if target.isQuantized, !format.canHold(target), !dequantize {
                    let hint = format == .gguf
                        ? "use a GGUF scheme (q8_0, q4_0, q4_k, ...) or write .ckz, which holds ckpt's int8/int4 types"
                        : "write .gguf\(GGUF.canHold(target) ? "" : " with a GGUF scheme") or .ckz, or pass --dequantize to store its quantized values as f32"
                    throw QuantizeJobError(description: "\(output): tensor `\(t.name)`: \(format) cannot hold \(target); \(hint)")
                }
                after = target.byteCount(shape: t.shape) ?? 0
                if target.isQuantized, !format.canHold(target) { after = t.elementCount * 4 }
                if target.isQuantized, let calibration,
                   let q = try calibration.quantize(t, modelName: hfNames[t.name] ?? t.name, target: target,
                                                    transposed: format == .gguf, report: report) {
                    try graph.replace(q)
                } else {
                    try graph.replace(Quantizer.lazyQuantize(t, to: target, jobs: jobs, report: report))
                }
            }
            rows.append(QuantizePlanRow(name: t.name, shape: t.shape, before: t.dtype, decision: d,
                                        bytesBefore: t.byteCount, bytesAfter: after))
        }
        // Recipe and tool version in the output's metadata.
        graph.metadata["ckpt.quantize.recipe"] = recipe.json
        graph.metadata["general.quantized_by"] = tool
        if format == .gguf {
            GGUFMetadata.set("general.quantization_version", .u32(2), in: &graph)
            if let ft = llamaFileType(scheme) { GGUFMetadata.set("general.file_type", .u32(ft), in: &graph) }
        }
        return QuantizedGraph(graph: graph, rows: rows)
    }

    /// What llama-quantize's preset rules read from a GGUF-named graph's keys.
    static func presetModel(_ g: WeightGraph) -> LlamaPreset.Model? {
        guard let kvs = try? GGUFMetadata.values(of: g), case .string(let arch)? = kvs["general.architecture"] else { return nil }
        let layers = kvs[arch + ".block_count"]?.intValue ?? g.tensors.keys.compactMap { LlamaPreset.layerIndex($0) }.max().map { $0 + 1 } ?? 0
        let heads = kvs[arch + ".attention.head_count"]?.intValue ?? 1
        let kv = kvs[arch + ".attention.head_count_kv"]?.intValue ?? heads
        return LlamaPreset.Model(layers: layers, gqa: kv > 0 ? heads / kv : 1, experts: kvs[arch + ".expert_count"]?.intValue ?? 0,
                                 hasOutput: g.tensors["output.weight"] != nil, falcon: arch == "falcon")
    }

    /// llama.cpp's `llama_ftype` for a recipe's main scheme (llama.h), so llama.cpp tools
    /// describe the file as they would their own.
    public static func llamaFileType(_ scheme: String) -> UInt32? {
        if let p = LlamaPreset(rawValue: scheme.lowercased()) { return p.fileType }
        return ["f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q2_k": 10,
         "q3_k": 11, "q4_k": 14, "q5_k": 16, "q6_k": 18, "bf16": 32][scheme.lowercased()]
    }

    static func number(_ d: Double) -> JSONValue { d.isFinite ? .double(d) : .string(d > 0 ? "inf" : "-inf") }

    /// The per-tensor report as JSON (`ckpt quantize --json`, pipeline step results).
    public static func jsonReport(_ rows: [QuantizePlanRow], report: QuantizationReport, recipe: QuantizeRecipe,
                                  input: String, output: String, dryRun: Bool, tool: String,
                                  calibration: Calibration? = nil) -> JSONValue {
        let tensors: [JSONValue] = rows.map { r in
            var o: OrderedDictionary<String, JSONValue> = [
                "name": .string(r.name),
                "shape": .array(r.shape.map { .int($0) }),
                "from": .string(r.before.rawValue),
                "to": .string(r.decision.target?.rawValue ?? r.before.rawValue),
                "action": .string(r.decision.target == nil ? "keep" : "quantize"),
                "reason": .string(r.decision.reason),
                "bytes_before": .int(r.bytesBefore),
                "bytes_after": .int(r.bytesAfter),
            ]
            if let f = r.decision.fellBackFrom { o["fallback_from"] = .string(f) }
            if let e = report.error(for: r.name) {
                o["rmse"] = number(e.rmse)
                o["max_abs_error"] = number(e.maxAbs)
                o["sqnr_db"] = number(e.sqnrDB)
                o["relative_rmse"] = number(e.relativeRMSE)
            }
            if let c = calibration?.layer(r.name) {
                o["calibration"] = .object([
                    "method": .string(c.method),
                    "output_error_rtn": number(c.errorBefore),
                    "output_error": number(c.errorAfter),
                ])
            }
            return .object(o)
        }
        let before = rows.reduce(0) { $0 + $1.bytesBefore }, after = rows.reduce(0) { $0 + $1.bytesAfter }
        var o: OrderedDictionary<String, JSONValue> = [
            "input": .string(input),
            "output": .string(output),
            "dry_run": .bool(dryRun),
            "tool": .string(tool),
            "recipe": (try? JSONValue.parse(recipe.json)) ?? .null,
            "tensors": .array(tensors),
            "bytes_before": .int(before),
            "bytes_after": .int(after),
            "fallbacks": .int(rows.filter { $0.decision.fellBackFrom != nil }.count),
            "quantize_seconds": .double(report.quantizeSeconds),
        ]
        if let c = calibration {
            o["calibration"] = .object([
                "file": .string(c.options.file),
                "method": .string(c.method(forScheme: recipe.scheme, groupSize: recipe.groupSize)),
                "sequences": .int(c.sequences),
                "tokens": .int(c.tokens),
                "context": .int(c.options.context),
                "sequential": .bool(c.options.sequential),
                "collect_seconds": .double(c.collectSeconds),
                "calibrated_quantize_seconds": .double(c.quantizeSeconds),
                "layers": .int(rows.filter { c.layer($0.name) != nil }.count),
                "imatrix": c.options.imatrix.map { .string($0) } ?? .null,
                "saved_imatrix": c.options.saveImatrix.map { .string($0) } ?? .null,
            ])
        }
        return .object(o)
    }
}

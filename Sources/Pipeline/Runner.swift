// `ckpt run PIPELINE`: a build pipeline's checkpoint job as one declarative file.
//
//   steps:                                   # YAML or JSON; paths relative to this file
//     - convert:  {input: model/, output: build/model.ckz}
//     - quantize: {input: build/model.ckz, output: build/model-int8.ckz, scheme: int8}
//     - verify:   {reference: model/, candidate: build/model-int8.ckz, preset: int8}
//
// Semantics:
//   - Steps run in order. A step's outputs are written to a staging area
//     (.ckpt-run/stage/ beside the pipeline file) and published to their paths only when the
//     whole pipeline has run and every verify gate passed: a failed gate leaves no output.
//   - Each step has a key: SHA-256 of its kind, its options (canonical JSON) and the content
//     digests of its inputs. `.ckpt-run/state.json` remembers each key's output digests and
//     result; a step whose key is known and whose outputs still hold those digests is not
//     redone ("cached"), so a second run with unchanged inputs does no work.
//   - Exit: 0 all gates passed, 1 the first failing gate (later steps are skipped), 2 a bad
//     pipeline or input.

import CkptCore
import Foundation
import Formats
import OrderedCollections
import Prune
import Quantize
import Train
import Tokenizer
import Transformer
import Yams

public enum PipelineError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalid(String)
    case step(Int, String, String)

    public var description: String {
        switch self {
        case .invalid(let m): return "pipeline: \(m)"
        case .step(let i, let kind, let m): return "pipeline step \(i + 1) (\(kind)): \(m)"
        }
    }
}

public struct PipelineStep: Sendable {
    public enum Kind: String, Sendable, CaseIterable { case convert, quantize, prune, distill, verify }
    public var kind: Kind
    public var options: OrderedDictionary<String, JSONValue>

    /// Option keys each kind accepts; `required` must be present.
    static let allowed: [Kind: (required: [String], optional: [String])] = [
        .convert: (["input", "output"], ["to", "dtype", "max_shard_size", "config"]),
        .verify: (["reference", "candidate"], ["tokens", "sequences", "length", "seed", "preset",
                                               "max_kl", "min_cosine", "min_top1", "max_abs",
                                               "text", "context", "chunks", "tokenizer", "report"]),
        .quantize: (["input", "output", "scheme"], ["group_size", "keep", "tensor_type", "fallback", "dequantize", "to", "config"]),
        .distill: (["input", "output"], ["layers", "layer_list", "intermediate", "heads", "kv_heads", "hidden", "steps", "batch", "lr", "temperature",
                                         "seed", "sequences", "eval_sequences", "length", "data", "to"]),
        .prune: (["input", "output"], ["sparsity", "global", "nm", "heads", "drop_heads", "intermediate", "drop_layers",
                                       "drop_layer_count", "importance", "calibration", "calibration_sequences",
                                       "length", "seed", "keep", "to", "config"]),
    ]
    /// Kinds this version can run (the others arrive with their commands).
    public static let available: Set<Kind> = [.convert, .quantize, .verify, .prune, .distill]

    var inputs: [String] {
        switch kind {
        case .verify:
            return [options["reference"]?.stringValue, options["candidate"]?.stringValue, options["text"]?.stringValue].compactMap { $0 }
        default: return [options["input"]?.stringValue].compactMap { $0 }
        }
    }
    var outputs: [String] { [options["output"]?.stringValue].compactMap { $0 } }
}

public struct PipelineSpec: Sendable {
    public var steps: [PipelineStep]
    /// The directory the pipeline's relative paths start from.
    public var base: String

    /// Reads a pipeline file (.yaml/.yml/.json; YAML is a superset of JSON, so anything else
    /// is read as YAML too).
    public static func load(path: String) throws -> PipelineSpec {
        // A pipeline is a few kB; special files (a FIFO would block) are refused.
        guard let text = String(validating: try RegularFile.read(path, cap: 16 << 20), as: UTF8.self) else {
            throw FileError(path: path, error: PipelineError.invalid("not UTF-8 text"))
        }
        let root: JSONValue
        do {
            if path.hasSuffix(".json") {
                root = try JSONValue.parse(text)
            } else {
                guard let node = try Yams.compose(yaml: text) else { throw PipelineError.invalid("empty file") }
                var budget = maxNodes
                root = try json(from: node, budget: &budget)
            }
        } catch let e as PipelineError {
            throw FileError(path: path, error: e)
        } catch {
            throw FileError(path: path, error: PipelineError.invalid("not valid \(path.hasSuffix(".json") ? "JSON" : "YAML"): \(error)"))
        }
        do {
            let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
            let steps = try parse(root)
            try checkOutputsDistinct(steps, base: base)
            return PipelineSpec(steps: steps, base: base)
        } catch { throw FileError(path: path, error: error) }
    }

    /// Two steps may not write one path (the second would overwrite the first's output,
    /// and the cache could not tell them apart): refused before any work.
    static func checkOutputsDistinct(_ steps: [PipelineStep], base: String) throws {
        var writer: [String: Int] = [:]
        for (i, step) in steps.enumerated() {
            for out in step.outputs {
                let trimmed = out.count > 1 && out.hasSuffix("/") ? String(out.dropLast()) : out
                let key = URL(fileURLWithPath: trimmed, relativeTo: URL(fileURLWithPath: base + "/")).standardizedFileURL.path
                if let first = writer[key] {
                    throw PipelineError.step(i, step.kind.rawValue, "writes `\(out)`, which step \(first + 1) already writes; give each step its own output")
                }
                writer[key] = i
            }
        }
    }

    static func parse(_ root: JSONValue) throws -> [PipelineStep] {
        guard let top = root.objectValue else { throw PipelineError.invalid("top level must be a mapping with `steps`") }
        for key in top.keys where !["steps", "version"].contains(key) { throw PipelineError.invalid("unknown key `\(key)`") }
        guard let list = top["steps"]?.arrayValue, !list.isEmpty else { throw PipelineError.invalid("`steps` must be a non-empty list") }
        return try list.enumerated().map { i, item in
            guard let o = item.objectValue, o.count == 1, let (name, value) = o.elements.first else {
                throw PipelineError.invalid("step \(i + 1) must be a mapping with one key, the step kind")
            }
            guard let kind = PipelineStep.Kind(rawValue: name) else {
                throw PipelineError.step(i, name, "unknown step kind (\(PipelineStep.Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard PipelineStep.available.contains(kind), let rules = PipelineStep.allowed[kind] else {
                throw PipelineError.step(i, name, "`\(name)` steps are not available in this version of ckpt")
            }
            guard let options = value.objectValue else { throw PipelineError.step(i, name, "options must be a mapping") }
            for key in options.keys where !rules.required.contains(key) && !rules.optional.contains(key) {
                throw PipelineError.step(i, name, "unknown option `\(key)`")
            }
            for key in rules.required where options[key]?.stringValue == nil {
                throw PipelineError.step(i, name, "missing `\(key)` (a path)")
            }
            if let problem = validate(kind, options) { throw PipelineError.step(i, name, problem) }
            return PipelineStep(kind: kind, options: options)
        }
    }

    /// Option values that can be checked before any work is done: every step's are checked
    /// when the pipeline is read, before the first step runs.
    static func validate(_ kind: PipelineStep.Kind, _ o: OrderedDictionary<String, JSONValue>) -> String? {
        func positiveInt(_ key: String) -> String? {
            guard let v = o[key] else { return nil }
            return (v.intValue ?? 0) >= 1 ? nil : "\(key) must be a positive integer"
        }
        switch kind {
        case .convert:
            if let d = o["dtype"], d.stringValue.flatMap(Conversion.castTarget) == nil { return "dtype must be f32, f16 or bf16" }
            if let v = o["max_shard_size"], v.intValue.map({ $0 < 1 }) ?? (v.stringValue.flatMap { try? Checkpoint.parseSize($0) } == nil) {
                return "max_shard_size must be a size (examples: 5GB, 500MB, 2GiB, 1000000)"
            }
        case .quantize:
            if let v = o["group_size"], v.intValue == nil { return "group_size must be an integer" }
            do { _ = try PipelineRunner.quantizeRecipe(o) } catch { return ErrorText.line(error) }
        case .prune:
            if let v = o["sparsity"], !(v.doubleValue.map { (0...1).contains($0) } ?? false) { return "sparsity must be a number in 0...1" }
            for key in ["heads", "intermediate", "drop_layer_count", "calibration_sequences", "length"] {
                if let problem = positiveInt(key) { return problem }
            }
            if let v = o["drop_layers"], !(v.arrayValue?.allSatisfy { $0.intValue != nil } ?? false) {
                return "drop_layers must be a list of layer indices"
            }
            if let nm = o["nm"], nm.stringValue.flatMap(PruneOptions.parseNM) == nil { return "nm must look like \"2:4\"" }
            if let dh = o["drop_heads"], dh.stringValue.flatMap(PruneOptions.parseDropHeads) == nil {
                return "drop_heads must look like \"0:1,2;3:0\""
            }
            if let imp = o["importance"], imp.stringValue.flatMap(PruneOptions.Importance.init(rawValue:)) == nil {
                return "importance must be magnitude or activation"
            }
        case .verify:
            if let p = o["preset"], p.stringValue.flatMap(Gates.preset) == nil { return "unknown preset" }
            for key in ["max_kl", "min_cosine", "min_top1", "max_abs"] where o[key] != nil && o[key]?.doubleValue == nil {
                return "\(key) must be a number"
            }
            for key in ["sequences", "length"] { if let problem = positiveInt(key) { return problem } }
            if let v = o["context"], !((v.intValue ?? 0) >= 4) { return "context must be an integer, at least 4" }
            if let v = o["chunks"], !((v.intValue ?? 0) >= 1) { return "chunks must be a positive integer" }
            if let v = o["report"], v.stringValue?.isEmpty ?? true { return "report must be the path of the HTML page to write" }
        case .distill:
            // The same bounds as `ckpt distill`.
            for key in ["lr", "temperature"] where o[key] != nil && !((o[key]?.doubleValue ?? 0) > 0) { return "\(key) must be positive" }
            if let v = o["steps"], !((v.intValue ?? -1) >= 0) { return "steps must be an integer, not negative" }
            if let v = o["batch"], !((v.intValue ?? 0) >= 1) { return "batch must be at least 1" }
        }
        return validateOutput(kind, o)
    }

    /// The output's format must be one ckpt writes: `to:` if given, else the extension
    /// (a directory output, "name/", is a safetensors model directory).
    static func validateOutput(_ kind: PipelineStep.Kind, _ o: OrderedDictionary<String, JSONValue>) -> String? {
        guard let out = o["output"]?.stringValue else { return nil }
        let writable = CheckpointFormat.allCases.filter(\.isWritable).map(\.rawValue)
        if let to = o["to"] {
            guard let name = to.stringValue, let f = CheckpointFormat(rawValue: name.lowercased()), f.isWritable else {
                return "unknown `to:` \(to.stringValue.map { "\"\($0)\"" } ?? to.serialized()) (one of: \(writable.joined(separator: ", ")))"
            }
            return nil
        }
        if out.hasSuffix("/") || o["max_shard_size"] != nil { return nil }
        guard let f = CheckpointFormat.forExtension(URL(fileURLWithPath: out).pathExtension), f.isWritable else {
            return "cannot tell the format of output `\(out)` from its extension; add `to:` (one of: \(writable.joined(separator: ", ")))"
        }
        return nil
    }

    /// Cap on the values a pipeline file may expand to: YAML aliases can make a small file
    /// expand exponentially ("billion laughs"); real pipelines hold a few dozen.
    static let maxNodes = 100_000

    /// YAML node -> JSON value, refusing duplicate keys and expansions past `maxNodes`.
    static func json(from node: Node, budget: inout Int) throws -> JSONValue {
        budget -= 1
        guard budget >= 0 else { throw PipelineError.invalid("expands to more than \(maxNodes) values (YAML alias bomb?)") }
        switch node {
        case .scalar(let s):
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case Tag.Name.null: return .null
            case Tag.Name.bool: return node.bool.map { .bool($0) } ?? .string(s.string)
            case Tag.Name.int: return node.int.map { .int($0) } ?? .string(s.string)
            case Tag.Name.float: return node.float.map { .double($0) } ?? .string(s.string)
            default: return .string(s.string)
            }
        case .mapping(let m):
            var o = OrderedDictionary<String, JSONValue>()
            for (k, v) in m {
                guard let key = k.string else { throw PipelineError.invalid("mapping keys must be strings") }
                guard o[key] == nil else { throw PipelineError.invalid("duplicate key `\(key)`") }
                o[key] = try json(from: v, budget: &budget)
            }
            return .object(o)
        case .sequence(let seq):
            var out: [JSONValue] = []
            for item in seq { out.append(try json(from: item, budget: &budget)) }
            return .array(out)
        case .alias:
            throw PipelineError.invalid("unresolved YAML alias")
        }
    }
}

public struct StepRecord: Sendable {
    public enum Status: String, Sendable { case ran, cached, failed, skipped }
    public var kind: PipelineStep.Kind
    public var status: Status
    public var seconds: Double
    public var inputs: OrderedDictionary<String, String>
    public var outputs: OrderedDictionary<String, String>
    public var options: OrderedDictionary<String, JSONValue>
    public var result: JSONValue?
}

public struct PipelineReport: Sendable {
    public var pipeline: String
    public var steps: [StepRecord]
    public var published: [String]
    public var exitCode: Int32

    public func json() -> JSONValue {
        .object([
            "pipeline": .string(pipeline),
            "passed": .bool(exitCode == 0),
            "exit_code": .int(Int(exitCode)),
            "published": .array(published.map { .string($0) }),
            "steps": .array(steps.map { s in
                .object([
                    "kind": .string(s.kind.rawValue),
                    "status": .string(s.status.rawValue),
                    "seconds": .double((s.seconds * 1000).rounded() / 1000),
                    "options": .object(s.options),
                    "inputs": .object(s.inputs.mapValues { .string($0) }),
                    "outputs": .object(s.outputs.mapValues { .string($0) }),
                    "result": s.result ?? .null,
                ])
            }),
        ])
    }
}

public final class PipelineRunner {
    public let spec: PipelineSpec
    public let pipelinePath: String
    let workDir: String
    var log: (String) -> Void

    public init(path: String, log: @escaping (String) -> Void = { _ in }) throws {
        spec = try PipelineSpec.load(path: path)
        pipelinePath = path
        workDir = spec.base + "/.ckpt-run"
        self.log = log
    }

    /// The path relative to the pipeline file, without a trailing '/' (directory outputs are
    /// named "out/" in pipelines; the slash only selects the directory layout).
    func absolute(_ p: String) -> String {
        let trimmed = p.count > 1 && p.hasSuffix("/") ? String(p.dropLast()) : p
        return trimmed.hasPrefix("/") ? trimmed : spec.base + "/" + trimmed
    }

    /// Where a step output is written before it is published.
    func stagedPath(_ output: String) -> String {
        let trimmed = output.hasSuffix("/") ? String(output.dropLast()) : output
        return workDir + "/stage/" + String(Digest.sha256(absolute(trimmed)).prefix(16)) + "/" + URL(fileURLWithPath: trimmed).lastPathComponent
    }

    public func run(force: Bool = false) throws -> PipelineReport {
        try FileManager.default.createDirectory(atPath: workDir + "/stage", withIntermediateDirectories: true)
        let statePath = workDir + "/state.json"
        var state: OrderedDictionary<String, JSONValue> = [:]
        if !force, let bytes = try? Data(contentsOf: URL(fileURLWithPath: statePath)),
           let parsed = try? JSONValue.parse([UInt8](bytes)).objectValue {
            state = parsed
        }
        // Where each declared output's current content lives (staged or published).
        var location: [String: String] = [:]
        var records: [StepRecord] = []
        var exitCode: Int32 = 0

        for (i, step) in spec.steps.enumerated() {
            if exitCode != 0 {
                records.append(StepRecord(kind: step.kind, status: .skipped, seconds: 0, inputs: [:], outputs: [:], options: step.options))
                continue
            }
            let start = Date()
            var inputs = OrderedDictionary<String, String>()
            for p in step.inputs {
                let where_ = location[p] ?? absolute(p)
                do { inputs[p] = try Digest.sha256(path: where_) } catch {
                    throw PipelineError.step(i, step.kind.rawValue, "input \(p): \(ErrorText.line(error))")
                }
            }
            let key = Digest.sha256(step.kind.rawValue + "\n" + JSONValue.object(step.options).serialized() + "\n"
                                    + inputs.map { "\($0.key)=\($0.value)" }.joined(separator: "\n") + "\nckpt-run-v1")
            // Cached: every output still holds the recorded digest, published or staged.
            if let saved = state[key]?.objectValue, let savedOutputs = saved["outputs"]?.objectValue {
                var found: [String: String] = [:]
                for (p, digest) in savedOutputs {
                    for candidate in [absolute(p), stagedPath(p)] where (try? Digest.sha256(path: candidate)) == digest.stringValue {
                        found[p] = candidate
                        break
                    }
                }
                if found.count == savedOutputs.count {
                    for (p, at) in found { location[p] = at }
                    let result = saved["result"]
                    if result?["passed"]?.boolValue == false { exitCode = 1 }
                    records.append(StepRecord(kind: step.kind, status: exitCode == 0 ? .cached : .failed,
                                              seconds: Date().timeIntervalSince(start), inputs: inputs,
                                              outputs: savedOutputs.mapValues { $0.stringValue ?? "" },
                                              options: step.options, result: result))
                    log("[\(i + 1)/\(spec.steps.count)] \(step.kind.rawValue): cached")
                    continue
                }
            }
            log("[\(i + 1)/\(spec.steps.count)] \(step.kind.rawValue): running")
            var outputs = OrderedDictionary<String, String>()
            var result: JSONValue?
            do {
                result = try execute(step, index: i, location: location, outputs: &outputs, staged: &location)
            } catch let e as PipelineError {
                throw e
            } catch {
                throw PipelineError.step(i, step.kind.rawValue, ErrorText.line(error))
            }
            if result?["passed"]?.boolValue == false { exitCode = 1 }
            state[key] = .object(["outputs": .object(outputs.mapValues { .string($0) }), "result": result ?? .null])
            records.append(StepRecord(kind: step.kind, status: exitCode == 0 ? .ran : .failed,
                                      seconds: Date().timeIntervalSince(start), inputs: inputs, outputs: outputs,
                                      options: step.options, result: result))
        }
        try writeState(state, to: statePath)

        var published: [String] = []
        if exitCode == 0 {
            for step in spec.steps {
                for p in step.outputs {
                    guard let at = location[p] else { continue }
                    let final = absolute(p)
                    if at != final { try publish(at, to: final) }
                    published.append(p)
                }
            }
        }
        return PipelineReport(pipeline: pipelinePath, steps: records, published: published, exitCode: exitCode)
    }

    /// Runs one step; outputs go to their staged paths.
    func execute(_ step: PipelineStep, index i: Int, location: [String: String],
                 outputs: inout OrderedDictionary<String, String>, staged: inout [String: String]) throws -> JSONValue? {
        func path(_ key: String) -> String? {
            guard let p = step.options[key]?.stringValue else { return nil }
            return location[p] ?? absolute(p)
        }
        switch step.kind {
        case .convert:
            let out = step.options["output"]!.stringValue!
            let target = try prepareStaged(out)
            var dtype: DType?
            if let d = step.options["dtype"]?.stringValue {
                guard let t = Conversion.castTarget(d) else { throw PipelineError.step(i, "convert", "dtype must be f32, f16 or bf16") }
                dtype = t
            }
            let shard = try step.options["max_shard_size"].map { v -> Int in
                if let n = v.intValue { return n }
                guard let s = v.stringValue else { throw PipelineError.step(i, "convert", "max_shard_size must be a size") }
                return try Checkpoint.parseSize(s)
            }
            try Conversion.convert(path("input")!, to: target + (out.hasSuffix("/") ? "/" : ""),
                                   options: .init(to: step.options["to"]?.stringValue, dtype: dtype, maxShardSize: shard,
                                                  config: path("config")))
            outputs[out] = try Digest.sha256(path: target)
            staged[out] = target
            return nil
        case .verify:
            let reference = try Checkpoint.openModel(path("reference")!)
            let candidate = try Checkpoint.openModel(path("candidate")!)
            var gates = Gates()
            if let p = step.options["preset"]?.stringValue {
                guard let g = Gates.preset(p) else { throw PipelineError.step(i, "verify", "unknown preset `\(p)`") }
                gates = g
            }
            if let v = step.options["max_kl"]?.doubleValue { gates.maxKL = v }
            if let v = step.options["min_cosine"]?.doubleValue { gates.minCosine = v }
            if let v = step.options["min_top1"]?.doubleValue { gates.minTop1 = v }
            if let v = step.options["max_abs"]?.doubleValue { gates.maxAbs = v }
            // `report: page.html`: the HTML page, written whether or not the gates pass (it is
            // not a staged output: a failing candidate is when it is read most).
            func writeHTML(_ report: VerifyReport) throws {
                guard let out = step.options["report"]?.stringValue else { return }
                var page = try VerifyHTMLReport.make(report: report, referencePath: path("reference")!, reference: reference,
                                                     candidatePath: path("candidate")!, candidate: candidate,
                                                     command: "ckpt run \(pipelinePath) (step \(i + 1))")
                page.models[0].path = step.options["reference"]?.stringValue ?? page.models[0].path
                page.models[1].path = step.options["candidate"]?.stringValue ?? page.models[1].path
                try page.write(to: absolute(out))
            }
            if let textPath = path("text") {
                // Real text, scored as `ckpt verify --text` does.
                let tokenizer = try Tokenizer.load(path("tokenizer") ?? TextFiles.tokenizerLocation(path("reference")!))
                let report = try TextVerifier.run(reference: reference, candidate: candidate, tokenizer: tokenizer,
                                                  text: try TextFiles.read(textPath),
                                                  options: TextVerifyOptions(context: step.options["context"]?.intValue,
                                                                             chunks: step.options["chunks"]?.intValue),
                                                  gates: gates)
                log(report.table())
                try writeHTML(report)
                return report.json()
            }
            let inputs: [ModelInput]
            if let t = path("tokens") {
                inputs = try Verifier.tokenFile(t)
            } else {
                inputs = try Verifier.randomInputs(for: reference, count: step.options["sequences"]?.intValue ?? 4,
                                                   length: step.options["length"]?.intValue ?? 32,
                                                   seed: UInt64(step.options["seed"]?.intValue ?? 0))
            }
            let report = try Verifier.run(reference: reference, candidate: candidate, inputs: inputs, gates: gates)
            log(report.table())
            try writeHTML(report)
            return report.json()
        case .prune:
            let out = step.options["output"]!.stringValue!
            let target = try prepareStaged(out)
            let o = step.options
            var p = PruneOptions()
            p.sparsity = o["sparsity"]?.doubleValue
            p.globalSparsity = o["global"]?.boolValue ?? false
            if let nm = o["nm"]?.stringValue {
                guard let v = PruneOptions.parseNM(nm) else { throw PipelineError.step(i, "prune", "nm must look like 2:4") }
                p.nm = v
            }
            p.headsPerLayer = o["heads"]?.intValue
            if let dh = o["drop_heads"]?.stringValue {
                guard let v = PruneOptions.parseDropHeads(dh) else { throw PipelineError.step(i, "prune", "drop_heads must look like \"0:1,2;3:0\"") }
                p.dropHeads = v
            }
            p.intermediate = o["intermediate"]?.intValue
            if let layers = o["drop_layers"]?.arrayValue { p.dropLayers = layers.compactMap(\.intValue) }
            p.dropLayerCount = o["drop_layer_count"]?.intValue
            if let imp = o["importance"]?.stringValue {
                guard let v = PruneOptions.Importance(rawValue: imp) else { throw PipelineError.step(i, "prune", "importance must be magnitude or activation") }
                p.importance = v
            }
            p.keep = o["keep"]?.arrayValue?.compactMap(\.stringValue) ?? o["keep"]?.stringValue.map { [$0] } ?? []
            guard !p.isEmpty else { throw PipelineError.step(i, "prune", "nothing to do") }
            let source = try Checkpoint.openModel(path("input")!, configPath: path("config"))
            if p.needsCalibration {
                p.calibration = try path("calibration").map {
                    try TextFiles.tokenInputs($0, model: path("input")!, length: min(o["length"]?.intValue ?? 64, source.config?.maxPositions ?? 64))
                }
                    ?? Verifier.randomInputs(for: source, count: o["calibration_sequences"]?.intValue ?? 8,
                                             length: o["length"]?.intValue ?? 64, seed: UInt64(o["seed"]?.intValue ?? 0))
            }
            let (pruned, report) = try Pruner.prune(source, p)
            let (format, directory) = try Checkpoint.outputFormat(for: target + (out.hasSuffix("/") ? "/" : ""),
                                                                 explicit: o["to"]?.stringValue, maxShardSize: nil)
            try Checkpoint.write(pruned, to: target, format: format, directory: directory,
                                 options: .init(companionsFrom: directory ? Conversion.companionSource(path("input")!) : nil))
            outputs[out] = try Digest.sha256(path: target)
            staged[out] = target
            return report.json()
        case .quantize:
            let out = step.options["output"]!.stringValue!
            let target = try prepareStaged(out)
            let o = step.options
            let scheme = o["scheme"]!.stringValue!
            let recipe = try Self.quantizeRecipe(o)
            let (format, directory) = try Checkpoint.outputFormat(for: target + (out.hasSuffix("/") ? "/" : ""),
                                                                 explicit: o["to"]?.stringValue, maxShardSize: nil)
            let source = try Checkpoint.open(path("input")!, configPath: path("config")).graph
            let report = QuantizationReport(measures: true)
            let dequantize = o["dequantize"]?.boolValue ?? false
            let (graph, rows) = try Quantization.apply(source, recipe: recipe, scheme: scheme, format: format, output: out,
                                                       jobs: Quantizer.defaultJobs, dequantize: dequantize, report: report,
                                                       tool: "ckpt \(CkptInfo.version)")
            try Checkpoint.write(graph, to: target, format: format, directory: directory,
                                 options: .init(dequantize: dequantize, companionsFrom: directory ? Conversion.companionSource(path("input")!) : nil,
                                                tokenizerFrom: format == .gguf ? GGUFTokenizer.source(for: path("input")!) : nil))
            outputs[out] = try Digest.sha256(path: target)
            staged[out] = target
            return Quantization.jsonReport(rows, report: report, recipe: recipe, input: step.options["input"]!.stringValue!,
                                           output: out, dryRun: false, tool: "ckpt \(CkptInfo.version)")
        case .distill:
            // The same set-up as `ckpt distill` (Train.DistillRecipe): any family Train implements.
            let out = step.options["output"]!.stringValue!
            let target = try prepareStaged(out)
            let o = step.options
            let teacher = try TrainModel(graph: try Checkpoint.open(path("input")!).graph)
            var r = DistillRecipe()
            r.layers = o["layers"]?.intValue
            r.layerList = o["layer_list"]?.arrayValue?.compactMap(\.intValue)
            (r.intermediate, r.heads, r.kvHeads, r.hidden) = (o["intermediate"]?.intValue, o["heads"]?.intValue, o["kv_heads"]?.intValue, o["hidden"]?.intValue)
            r.length = o["length"]?.intValue
            if let n = o["sequences"]?.intValue { r.sequences = n }
            if let n = o["eval_sequences"]?.intValue { r.evalSequences = n }
            r.options.seed = UInt64(o["seed"]?.intValue ?? 0)
            if let n = o["steps"]?.intValue { r.options.steps = n }
            if let n = o["batch"]?.intValue { r.options.batch = n }
            if let lr = o["lr"]?.doubleValue { r.options.optimizer.learningRate = Float(lr) }
            if let t = o["temperature"]?.doubleValue { r.options.temperature = Float(t) }
            let tokens = try path("data").map { file in
                try TextFiles.tokenInputs(file, model: path("input")!, length: r.sequenceLength(teacher: teacher)).flatMap { input -> [Int] in
                    if case .tokens(let t) = input { return t } else { return [] }
                }
            }
            let (spec, _, distiller) = try r.prepare(teacher: teacher, tokens: tokens)
            let student = distiller.student
            let layers = spec.layers
            let initialKL = distiller.evaluate()
            while distiller.step < distiller.options.steps { _ = distiller.trainStep() }
            let finalKL = distiller.evaluate()
            log(String(format: "held-out KL(teacher ‖ student): %.5f -> %.5f after %d steps", initialKL, finalKL, distiller.options.steps))
            let recipe = JSONValue.object(o.merging(["held_out_kl_initial": .double(initialKL),
                                                     "held_out_kl_final": .double(finalKL)]) { $1 })
            let graph = try student.weightGraph(metadata: [("ckpt_distill", recipe.serialized())])
            let (format, directory) = try Checkpoint.outputFormat(for: target + (out.hasSuffix("/") ? "/" : ""),
                                                                 explicit: o["to"]?.stringValue, maxShardSize: nil)
            try Checkpoint.write(graph, to: target, format: format, directory: directory)
            outputs[out] = try Digest.sha256(path: target)
            staged[out] = target
            return .object(["held_out_kl_initial": .double(initialKL), "held_out_kl_final": .double(finalKL),
                            "steps": .int(distiller.options.steps), "teacher_layers": .array(layers.map { .int($0) })])
        }
    }

    /// A quantize step's recipe.
    static func quantizeRecipe(_ o: OrderedDictionary<String, JSONValue>) throws -> QuantizeRecipe {
        let list = { (key: String) -> [String] in o[key]?.arrayValue?.compactMap(\.stringValue) ?? o[key]?.stringValue.map { [$0] } ?? [] }
        var overrides: [(pattern: String, scheme: String)] = []
        for t in list("tensor_type") {
            guard let eq = t.lastIndex(of: "=") else { throw PipelineError.invalid("tensor_type must be REGEX=SCHEME, got \"\(t)\"") }
            overrides.append((String(t[..<eq]), String(t[t.index(after: eq)...])))
        }
        let recipe = QuantizeRecipe(scheme: o["scheme"]!.stringValue!, groupSize: o["group_size"]?.intValue, keep: list("keep"),
                                    overrides: overrides, fallback: o["fallback"]?.stringValue ?? "f16")
        _ = try recipe.validate()
        return recipe
    }

    /// The staged path for an output, emptied and with its directory created.
    func prepareStaged(_ output: String) throws -> String {
        let target = stagedPath(output)
        try? FileManager.default.removeItem(atPath: target)
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: target).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        return target
    }

    func publish(_ from: String, to final: String) throws {
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: final).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: final, isDirectory: &isDir)
        if exists && isDir.boolValue {
            let old = final + ".ckpt-old-\(getpid())"
            try FileManager.default.moveItem(atPath: final, toPath: old)
            try FileManager.default.moveItem(atPath: from, toPath: final)
            try? FileManager.default.removeItem(atPath: old)
        } else if rename(from, final) != 0 {
            // Another file system: copy beside the target, then rename into place.
            let bytes = try Data(contentsOf: URL(fileURLWithPath: from))
            var f = try AtomicFile(target: final)
            try f.write([UInt8](bytes))
            try f.commit()
            try? FileManager.default.removeItem(atPath: from)
        }
    }

    func writeState(_ state: OrderedDictionary<String, JSONValue>, to path: String) throws {
        var f = try AtomicFile(target: path)
        try f.write(Array((JSONValue.object(state).prettyPrinted() + "\n").utf8))
        try f.commit()
    }
}

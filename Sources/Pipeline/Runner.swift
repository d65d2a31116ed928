// `ckpt run PIPELINE`: a build pipeline's checkpoint job as one declarative file.
//
//   steps:                                   # YAML or JSON; paths relative to this file
//     - convert:  {input: model/, output: build/model.ckz}
//     - quantize: {input: build/model.ckz, output: build/model-int8.ckz, scheme: int8}
//     - verify:   {reference: model/, candidate: build/model-int8.ckz, preset: int8}
//
// Semantics:
//   - A step is a job (Jobs/): its mapping decodes into the job type the command of the same
//     name runs, with that command's defaults; unknown keys and bad values are refused when
//     the file is read, before the first step runs.
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
    /// The step kinds: one job type each (Jobs/). A step's options are its job's keys.
    public enum Kind: String, Sendable, CaseIterable {
        case convert, quantize, prune, distill, verify, tokenize

        /// The job a step of this kind runs.
        public var job: any Job.Type {
            switch self {
            case .convert: return ConvertJob.self
            case .quantize: return QuantizeJob.self
            case .prune: return PruneJob.self
            case .distill: return DistillJob.self
            case .verify: return VerifyJob.self
            case .tokenize: return TokenizeJob.self
            }
        }
    }
    public var kind: Kind
    public var options: OrderedDictionary<String, JSONValue>

    var inputs: [String] { kind.job.inputKeyNames.compactMap { options[$0]?.stringValue } }
    var outputs: [String] { kind.job.outputKeyNames.compactMap { options[$0]?.stringValue } }
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
                // UTF-8 named, not Yams' `.default`: that one reads YAMS_DEFAULT_ENCODING from the
                // environment on every parse and prints a line to stdout when it is set.
                guard let node = try Yams.compose(yaml: text, .default, .default, .utf8) else { throw PipelineError.invalid("empty file") }
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
            guard let options = value.objectValue else { throw PipelineError.step(i, name, "options must be a mapping") }
            do {
                try check(kind.job, options)
            } catch let e as PipelineError {
                throw e
            } catch {
                throw PipelineError.step(i, name, ErrorText.line(error))
            }
            return PipelineStep(kind: kind, options: options)
        }
    }

    /// Option values that can be checked before any work is done: every step's are checked
    /// when the pipeline is read, before the first step runs (the job's own checks, and the
    /// output's format).
    static func check<J: Job>(_ type: J.Type, _ o: OrderedDictionary<String, JSONValue>) throws {
        let known = Set(J.keys)
        for key in o.keys where !known.contains(key) { throw JobError(nil, "unknown option `\(key)`") }
        let paths = Set(J.inputKeyNames + J.outputKeyNames)
        for key in J.requiredKeys.map(\.stringValue) where o[key]?.stringValue == nil {
            throw JobError(nil, "missing `\(key)`" + (paths.contains(key) ? " (a path)" : ""))
        }
        let job = try J.decode(o)
        try job.validate()
        if o["dry_run"]?.boolValue == true { throw JobError("dry_run", "writes nothing: not in a pipeline") }
        for key in J.outputKeyNames where J.writesCheckpoints {
            guard let out = o[key]?.stringValue else { continue }
            try JobOutput.check(out, to: o["to"]?.stringValue, maxShardSize: o["max_shard_size"] != nil)
        }
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
    let log: @Sendable (String) -> Void

    public init(path: String, log: @escaping @Sendable (String) -> Void = { _ in }) throws {
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
        try execute(step.kind.job, step, index: i, location: location, outputs: &outputs, staged: &staged)
    }

    /// Runs a step's job on resolved paths: inputs where their content is now (staged or
    /// published), outputs at their staged paths, other files beside the pipeline file.
    func execute<J: Job>(_ type: J.Type, _ step: PipelineStep, index i: Int, location: [String: String],
                         outputs: inout OrderedDictionary<String, String>, staged: inout [String: String]) throws -> JSONValue {
        var o = step.options
        var shown: [String: String] = [:]  // resolved path -> as the pipeline names it
        for key in J.inputKeyNames {
            guard let p = o[key]?.stringValue else { continue }
            let resolved = location[p] ?? absolute(p)
            o[key] = .string(resolved)
            shown[resolved] = p
        }
        for key in J.sideFileKeys.map(\.stringValue) {
            guard let p = o[key]?.stringValue else { continue }
            o[key] = .string(absolute(p))
            shown[absolute(p)] = p
        }
        var targets: [(output: String, staged: String)] = []
        for key in J.outputKeyNames {
            guard let out = o[key]?.stringValue else { continue }
            let target = try prepareStaged(out)
            let argument = target + (out.hasSuffix("/") ? "/" : "")
            o[key] = .string(argument)
            (shown[argument], shown[target]) = (out, out)
            targets.append((out, target))
        }
        let job = try J.decode(o)
        let names = shown
        let report = try job.run(progress: JobProgress(log: log, displayPath: { names[$0] ?? $0 },
                                                       command: "ckpt run \(pipelinePath) (step \(i + 1))"))
        for line in report.logLines { log(line) }
        // A job whose gate failed writes no output (prune with verify).
        if report.passed {
            for t in targets {
                outputs[t.output] = try Digest.sha256(path: t.staged)
                staged[t.output] = t.staged
            }
        }
        return report.json()
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

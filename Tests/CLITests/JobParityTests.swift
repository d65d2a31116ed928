// CLI/pipeline parity (issue 21): every command's flags are its job's keys with the same
// defaults, and every flag reaches the job. Derived from the commands themselves
// (ArgumentParser's --experimental-dump-help and parsing), so a new flag or key cannot escape.

import CkptCore
import Foundation
import OrderedCollections
import Pipeline
import Testing
import TestSupport
@testable import ckpt
import ArgumentParser

/// One command and its job: flags that are presentation only (they have no pipeline key) and
/// flags whose key is spelled differently (kept for existing scripts and pipelines).
struct ParityCase: CustomTestStringConvertible, Sendable {
    var command: String
    var cliOnly: Set<String>
    var renamed: [String: String]
    /// Required arguments (in order) and a way to build the job from arguments.
    var required: [String]
    var job: @Sendable ([String]) throws -> OrderedDictionary<String, JSONValue>
    var keys: [String]
    var defaults: OrderedDictionary<String, JSONValue>
    var decode: @Sendable (OrderedDictionary<String, JSONValue>) throws -> OrderedDictionary<String, JSONValue>
    var testDescription: String { command }

    static func make<J: Job>(_ command: String, _ type: J.Type, cliOnly: Set<String>, renamed: [String: String] = [:],
                             required: [String], job: @escaping @Sendable ([String]) throws -> J) -> ParityCase {
        ParityCase(command: command, cliOnly: cliOnly.union(["help", "version"]), renamed: renamed, required: required,
                   job: { try job($0).options() }, keys: J.keys, defaults: J.defaults(),
                   decode: { try J.decode($0).options() })
    }
}

let parityCases: [ParityCase] = [
    .make("convert", ConvertJob.self, cliOnly: ["quiet"], required: ["in.safetensors", "out.safetensors"]) {
        try Convert.parse($0).job
    },
    .make("quantize", QuantizeJob.self, cliOnly: ["json", "quiet"], renamed: ["no-sequential": "sequential"], required: ["in.safetensors", "out.gguf", "--scheme", "q8_0"]) {
        try QuantizeCommand.parse($0).job
    },
    .make("prune", PruneJob.self, cliOnly: ["json"], required: ["in.safetensors", "out.safetensors"]) {
        try PruneCommand.parse($0).job
    },
    .make("distill", DistillJob.self, cliOnly: ["quiet"], renamed: ["teacher": "input"], required: ["in.safetensors", "out.safetensors"]) {
        try Distill.parse($0).job
    },
    .make("verify", VerifyJob.self, cliOnly: ["json", "report"], renamed: ["random-tokens": "sequences", "html": "report"],
          required: ["a.safetensors", "b.safetensors"]) {
        try VerifyCommand.parse($0).job
    },
    .make("tokenize", TokenizeJob.self, cliOnly: [], required: ["model"]) {
        try TokenizeCommand.parse($0).job
    },
]

struct Flag {
    var name: String
    var kind: String
    var cliDefault: String?
    var optional: Bool
}

func flags(of command: String) throws -> [Flag] {
    let r = try CkptBinary.run(command, "--experimental-dump-help")
    let json = try JSONValue.parse(r.stdout)
    return (json["command"]?["arguments"]?.arrayValue ?? []).compactMap { a in
        let kind = a["kind"]?.stringValue ?? ""
        let name = kind == "positional" ? a["valueName"]?.stringValue
            : a["names"]?.arrayValue?.first { $0["kind"]?.stringValue == "long" }?["name"]?.stringValue
        return name.map { Flag(name: $0, kind: kind, cliDefault: a["defaultValue"]?.stringValue, optional: a["isOptional"]?.boolValue ?? false) }
    }
}

func key(_ flag: String, _ c: ParityCase) -> String { c.renamed[flag] ?? flag.replacingOccurrences(of: "-", with: "_") }

@Suite struct JobParityTests {
    @Test(arguments: parityCases)
    func everyFlagIsAJobKeyWithTheSameDefault(_ c: ParityCase) throws {
        let all = try flags(of: c.command)
        #expect(all.count > 3)
        var covered = Set<String>()
        for f in all where !c.cliOnly.contains(f.name) {
            let k = key(f.name, c)
            covered.insert(k)
            #expect(c.keys.contains(k), "ckpt \(c.command) --\(f.name) has no pipeline key `\(k)`")
            let d = c.defaults[k]
            if let cli = f.cliDefault {
                let same: Bool
                switch d {
                case .number(let n)?: same = Double(n) == Double(cli)
                case .string(let s)?: same = s == cli
                case .bool(let b)?: same = String(b) == cli
                default: same = false
                }
                #expect(same, "ckpt \(c.command) --\(f.name) defaults to \(cli), the job's `\(k)` to \(d?.serialized() ?? "nothing")")
            } else if f.optional {
                // No default on the command line: not given, i.e. absent, false or empty.
                #expect(d == nil || d == .bool(false) || d == .array([]),
                        "ckpt \(c.command) --\(f.name) has no default, the job's `\(k)` has \(d?.serialized() ?? "")")
            }
        }
        for k in c.keys { #expect(covered.contains(k), "job key `\(k)` of \(c.command) has no command-line flag") }
    }

    /// The command with only its required arguments builds the job a pipeline step with only
    /// its paths decodes to; and each flag, given, changes the job (so none is dropped).
    @Test(arguments: parityCases)
    func everyFlagReachesTheJob(_ c: ParityCase) throws {
        let base = try c.job(c.required)
        var step = OrderedDictionary<String, JSONValue>()
        let positional = c.required.filter { !$0.hasPrefix("--") }
        let names = try flags(of: c.command)
        for (f, v) in zip(names.filter { $0.kind == "positional" }, positional) { step[key(f.name, c)] = .string(v) }
        if let i = c.required.firstIndex(of: "--scheme") { step["scheme"] = .string(c.required[i + 1]) }
        let decoded = try c.decode(step)
        #expect(decoded == base, "ckpt \(c.command) and its pipeline step differ: \(JSONValue.object(base).serialized()) vs \(JSONValue.object(decoded).serialized())")

        for f in names where !c.cliOnly.contains(f.name) && f.kind != "positional" {
            let k = key(f.name, c)
            var changed: OrderedDictionary<String, JSONValue>?
            let candidates = f.kind == "flag" ? [[String]()] : [["7"], ["1,2"], ["streamed"]]
            for value in candidates where changed == nil {
                let args = c.required.filter { $0 != "--\(f.name)" } + ["--\(f.name)"] + value
                if f.name == "scheme" { break }
                changed = try? c.job(args)
            }
            if f.name == "scheme" { continue }
            let after = try #require(changed, "ckpt \(c.command) --\(f.name): no test value parses")
            #expect(after[k] != base[k], "ckpt \(c.command) --\(f.name) does not reach the job's `\(k)`")
        }
    }
}

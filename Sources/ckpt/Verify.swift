import ArgumentParser
import CkptCore
import Formats
import Foundation
import Pipeline
import Tokenizer
import Transformer
import Verify

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Compare a candidate model's outputs with a reference's and apply gates.",
        discussion: """
            Runs both forward passes on the same inputs (--tokens FILE, or seeded random \
            sequences) and reports max/mean abs error and cosine of the outputs; for language \
            models also KL(reference ‖ candidate) of next-token distributions, top-1 agreement \
            and each model's perplexity; and per-layer drift when both have the same depth. \
            --text FILE scores real text instead, tokenized with the reference's tokenizer, as \
            llama-perplexity does: windows of --context tokens, the second half of each scored \
            (KL, top-1 agreement, Δp, perplexity of both); for encoders each line is one sequence. \
            Exit status: 0 every gate passed, 1 a gate failed, 2 the models cannot be compared.
            """
    )

    @Argument(help: "The reference checkpoint (file or model directory).") var reference: String
    @Argument(help: "The candidate checkpoint.") var candidate: String
    @Option(help: "Token sequences: a text file (one sequence per line) or a 2-D integer .npy.") var tokens: String?
    @Option(help: "Number of seeded random sequences (when no --tokens).") var randomTokens: Int = 4
    @Option(help: "Length of each random sequence (capped by the model's positions).") var length: Int = 32
    @Option(help: "Seed of the random sequences.") var seed: UInt64 = 0
    @Option(help: ArgumentHelp("Gate presets: \(Gates.presetNames.joined(separator: ", ")).")) var preset: String?
    @OptionGroup var gates: GateFlags
    @Option(help: "Config for the reference (default: beside it).") var referenceConfig: String?
    @Option(help: "Config for the candidate (default: beside it).") var candidateConfig: String?
    @Option(help: "Score this UTF-8 text (tokenized with the reference's tokenizer) instead of token ids.") var text: String?
    @Option(help: "With --text: tokens per window (default min(512, the model's positions)).") var context: Int?
    @Option(help: "With --text: at most this many windows.") var chunks: Int?
    @Option(help: "With --text: save the reference's outputs (top log-probabilities) to this file.") var saveLogits: String?
    @Option(help: "With --text: take the reference's outputs from a --save-logits file instead of running it.") var referenceLogits: String?
    @Option(help: "With --save-logits: most log-probabilities kept per position.") var logitsTopK: Int = 256
    @Option(help: "With --text: the tokenizer (model directory or tokenizer.json; default: the reference's directory).") var tokenizer: String?
    @Flag(help: "Print the report as JSON on stdout.") var json = false
    @Option(help: "Also write the JSON report to this file.") var report: String?
    @OptionGroup var executionFlags: ExecutionFlags
    @Option(help: "Also write the report as one self-contained HTML page (charts inline, nothing fetched).") var html: String?

    /// The job these flags describe.
    var job: VerifyJob {
        var job = VerifyJob(reference: reference, candidate: candidate)
        (job.tokens, job.randomTokens, job.length, job.seed, job.preset) = (tokens, randomTokens, length, seed, preset)
        gates.apply(to: &job)
        (job.referenceConfig, job.candidateConfig, job.text, job.context, job.chunks) = (referenceConfig, candidateConfig, text, context, chunks)
        (job.saveLogits, job.referenceLogits, job.logitsTopK, job.tokenizer) = (saveLogits, referenceLogits, logitsTopK, tokenizer)
        (job.execution, job.maxMemory, job.html) = (executionFlags.execution.rawValue, executionFlags.maxMemory, html)
        return job
    }

    func run() throws {
        let result = try job.run(progress: .cli(quiet: true)).verify
        let text = result.json().prettyPrinted() + "\n"
        if let report { try writeText(text, to: report) }
        if json { print(text, terminator: "") } else { print(result.table()) }
        if !result.passed { throw ExitCode(1) }
    }
}

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two checkpoints tensor by tensor, across formats.",
        discussion: "Exit status: 0 same tensors and values (within --atol), 1 they differ, 2 bad input."
    )

    @Argument(help: "Checkpoint A.") var a: String
    @Argument(help: "Checkpoint B.") var b: String
    @Option(help: "Values within this absolute difference count as equal.") var atol: Double = 0
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "List identical tensors too.") var all = false

    func run() throws {
        let ga = try Checkpoint.openModel(a), gb = try Checkpoint.openModel(b)
        let report = try CheckpointDiff.diff(ga, gb, tolerance: atol)
        if json {
            print(report.json().prettyPrinted())
        } else {
            var counts: [TensorDiff.Status: Int] = [:]
            for d in report.tensors {
                counts[d.status, default: 0] += 1
                guard all || (d.status != .identical && d.status != .equal) else { continue }
                var line = "\(d.status.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0)) \(d.name)"
                if let x = d.dtypeA, let y = d.dtypeB, x != y { line += "  dtype \(x) -> \(y)" }
                if let x = d.shapeA, let y = d.shapeB, x != y { line += "  shape \(x) -> \(y)" }
                if let m = d.maxAbs, d.status != .identical { line += String(format: "  max_abs %.4g  max_rel %.4g", m, d.maxRel ?? 0) }
                print(line)
            }
            for c in report.metadataChanges { print("metadata      \(c)") }
            for c in report.configChanges { print("config        \(c)") }
            let summary = [TensorDiff.Status.identical, .equal, .differs, .shapeChanged, .onlyInA, .onlyInB]
                .compactMap { s in counts[s].map { "\($0) \(s.rawValue)" } }.joined(separator: ", ")
            print("\(report.tensors.count) tensors: \(summary)" + (report.same ? " — same" : " — DIFFERENT"))
        }
        if !report.same { throw ExitCode(1) }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a pipeline file (YAML or JSON): convert, verify with gates; outputs only when every gate passes.",
        discussion: """
            Steps whose inputs and options are unchanged since the last run are not redone \
            (state in .ckpt-run/ beside the pipeline file). Exit status: 0 all gates passed, \
            1 a gate failed (nothing published), 2 bad pipeline or input.
            """
    )

    @Argument(help: "The pipeline file.") var pipeline: String
    @Flag(help: "Print the JSON report on stdout.") var json = false
    @Option(help: "Write the JSON report to this file.") var report: String?
    @Flag(help: "Ignore cached results and redo every step.") var force = false
    @Flag(help: "No progress messages.") var quiet = false

    func run() throws {
        let quiet = self.quiet || json
        let runner = try PipelineRunner(path: pipeline) { line in
            if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        let result = try runner.run(force: force)
        let text = result.json().prettyPrinted() + "\n"
        if let report { try writeText(text, to: report) }
        if json {
            print(text, terminator: "")
        } else {
            for (i, s) in result.steps.enumerated() {
                print(String(format: "step %d %@: %@ (%.2f s)", i + 1, s.kind.rawValue, s.status.rawValue, s.seconds))
            }
            print(result.exitCode == 0 ? "passed; published: \(result.published.joined(separator: ", "))"
                                       : "a gate failed: nothing published")
        }
        if result.exitCode != 0 { throw ExitCode(result.exitCode) }
    }
}

func writeText(_ text: String, to path: String) throws {
    var f = try AtomicFile(target: path)
    try f.write(Array(text.utf8))
    try f.commit()
}

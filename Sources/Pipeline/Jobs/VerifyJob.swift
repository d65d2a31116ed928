// `ckpt verify` and the pipeline's verify step.

import CkptCore
import Foundation
import Formats
import Tokenizer
import Transformer

/// Compares a candidate model's outputs with a reference's and applies gates.
public struct VerifyJob: Job, GateLimits {
    public static let name = "verify"
    public var reference = ""
    public var candidate = ""
    /// Token sequences: a text file (one sequence per line) or a 2-D integer .npy.
    public var tokens: String?
    /// Seeded random sequences when no `tokens` (`--random-tokens`, pipeline key `sequences`).
    public var randomTokens = 4
    /// Length of each random sequence (capped by the model's positions).
    public var length = 32
    public var seed: UInt64 = 0
    /// Gate preset, and limits replacing the preset's.
    public var preset: String?
    public var maxKl, minCosine, minTop1, maxAbs: Double?
    /// Configs for the reference and the candidate (default: beside them).
    public var referenceConfig: String?
    public var candidateConfig: String?
    /// Score this UTF-8 text instead of token ids.
    public var text: String?
    /// With `text`: tokens per window, and at most this many windows.
    public var context: Int?
    public var chunks: Int?
    /// With `text`: save the reference's top log-probabilities, or read them instead of running it.
    public var saveLogits: String?
    public var referenceLogits: String?
    /// With `save_logits`: most log-probabilities kept per position.
    public var logitsTopK = 256
    /// With `text`: the tokenizer (default: the reference's directory).
    public var tokenizer: String?
    /// How the models run: auto, streamed, in-memory.
    public var execution = "auto"
    /// Memory cap for the forward passes' estimate, e.g. 8G.
    public var maxMemory: String?
    /// Also write the report as one self-contained HTML page (`--html`, pipeline key `report`).
    public var html: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case reference, candidate, tokens, randomTokens = "sequences", length, seed, preset
        case maxKl = "max_kl", minCosine = "min_cosine", minTop1 = "min_top1", maxAbs = "max_abs"
        case referenceConfig = "reference_config", candidateConfig = "candidate_config", text, context, chunks
        case saveLogits = "save_logits", referenceLogits = "reference_logits", logitsTopK = "logits_top_k", tokenizer
        case execution, maxMemory = "max_memory", html = "report"
    }
    public static let requiredKeys: [CodingKeys] = [.reference, .candidate]
    public static let inputKeys: [CodingKeys] = [.reference, .candidate, .tokens, .text, .referenceConfig, .candidateConfig,
                                                 .referenceLogits, .tokenizer]
    public static let outputKeys: [CodingKeys] = []
    public static let sideFileKeys: [CodingKeys] = [.html, .saveLogits]

    public init() {}
    public init(reference: String, candidate: String) {
        (self.reference, self.candidate) = (reference, candidate)
    }

    public struct Report: JobReport {
        public var verify: VerifyReport
        public var passed: Bool { verify.passed }
        public func json() -> JSONValue { verify.json() }
        public var logLines: [String] { [verify.table()] }
    }

    public var gates: GateOptions { GateOptions(preset: preset, maxKl: maxKl, minCosine: minCosine, minTop1: minTop1, maxAbs: maxAbs) }

    public func executionOptions() throws -> ExecutionOptions {
        guard let e = Execution(rawValue: execution) else {
            throw JobError("execution", "must be one of: \(Execution.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let maxMemory else { return ExecutionOptions(execution: e) }
        guard let bytes = Memory.parse(maxMemory) else { throw JobError("max_memory", "\(maxMemory): expected a size such as 8G, 512M or 1073741824") }
        return ExecutionOptions(execution: e, maxMemory: bytes)
    }

    public func validate() throws {
        _ = try gates.gates()
        try Self.positive(randomTokens, "sequences")
        try Self.positive(length, "length")
        if let context, context < 4 { throw JobError("context", "must be an integer, at least 4") }
        try Self.positive(chunks, "chunks")
        if let html, html.isEmpty { throw JobError("report", "must be the path of the HTML page to write") }
        if text != nil || referenceLogits != nil {
            guard tokens == nil else { throw JobError(nil, "give text or tokens, not both") }
            guard logitsTopK >= 1 else { throw JobError("logits_top_k", "must be at least 1") }
        }
        _ = try executionOptions()
    }

    public func run(progress: JobProgress) throws -> Report {
        try validate()
        let gates = try gates.gates()
        let ref = try Checkpoint.openModel(reference, configPath: referenceConfig)
        let cand = try Checkpoint.openModel(candidate, configPath: candidateConfig)
        let name = progress.displayPath
        let result: VerifyReport
        do {
            if text != nil || referenceLogits != nil {
                // Real text, scored as llama-perplexity does.
                let tok = try Tokenizer.load(tokenizer ?? TextFiles.tokenizerLocation(reference))
                let body = try text.map { try TextFiles.read($0) }
                result = try TextVerifier.run(reference: ref, candidate: cand, tokenizer: tok, text: body,
                                              options: TextVerifyOptions(context: context, chunks: chunks, saveLogits: saveLogits,
                                                                         referenceLogits: referenceLogits, topK: logitsTopK),
                                              gates: gates)
            } else {
                let inputs = try tokens.map { try Verifier.tokenFile($0) }
                    ?? Verifier.randomInputs(for: ref, count: randomTokens, length: length, seed: seed)
                result = try Verifier.run(reference: ref, candidate: cand, inputs: inputs, gates: gates,
                                          execution: try executionOptions())
            }
        } catch let e as TransformerError {
            throw JobError(nil, "\(name(reference)) vs \(name(candidate)): \(e)")
        } catch let e as VerifyError {
            throw JobError(nil, "\(name(reference)) vs \(name(candidate)): \(e)")
        }
        // The HTML page, written whether or not the gates pass (a failing candidate is when it
        // is read most).
        if let html {
            var page = try VerifyHTMLReport.make(report: result, referencePath: reference, reference: ref,
                                                 candidatePath: candidate, candidate: cand, command: progress.command)
            page.models[0].path = name(reference)
            page.models[1].path = name(candidate)
            try page.write(to: html)
        }
        return Report(verify: result)
    }
}

// How the commands hand their flags to the library's jobs (Sources/Pipeline/Jobs): each
// command builds its job from its flags, and option sets several commands share are
// `@OptionGroup`s here. A flag's name is its job key in kebab-case (`--max-kl` is `max_kl`);
// Tests/CLITests/JobParityTests checks every flag against its job's keys and defaults.

import ArgumentParser
import CkptCore
import Foundation
import Pipeline

extension JobProgress {
    /// Progress lines on stderr unless quiet; notices always; a progress bar when given.
    static func cli(quiet: Bool, bytes: (any ProgressSink)? = nil) -> JobProgress {
        JobProgress(log: { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } },
                    notice: { line in FileHandle.standardError.write(Data("ckpt: notice: \(line)\n".utf8)) },
                    bytes: bytes,
                    command: (["ckpt"] + CommandLine.arguments.dropFirst()).joined(separator: " "))
    }
}

/// Verification gates given one by one (each replaces its preset's limit).
struct GateFlags: ParsableArguments {
    @Option(help: "Gate: maximum mean KL divergence (nats).") var maxKl: Double?
    @Option(help: "Gate: minimum cosine similarity of the outputs (worst sequence).") var minCosine: Double?
    @Option(help: "Gate: minimum top-1 agreement (0..1).") var minTop1: Double?
    @Option(help: "Gate: maximum absolute difference of any output value.") var maxAbs: Double?

    func apply<J: GateLimits>(to job: inout J) {
        (job.maxKl, job.minCosine, job.minTop1, job.maxAbs) = (maxKl, minCosine, minTop1, maxAbs)
    }
}

/// Calibration data and method for `ckpt quantize` (QuantizeJob's calibration fields).
struct CalibrationFlags: ParsableArguments {
    @Option(help: "Calibrate on this text (tokenized with the model's tokenizer) or token file (.npy, or lines of ids).")
    var calibrate: String?

    @Option(help: "Calibration method: gptq (on the k-quants with each super-block's scales fixed first), awq (activation-aware scales folded into the preceding norm/linear, clipping searched, then round-to-nearest), awq+gptq (the scales, then GPTQ), imatrix (llama.cpp's importance-weighted search) or rtn (default: gptq for every GGUF block type and int8/int4 groups; imatrix with --imatrix).")
    var method: String?

    @Option(help: "Use this llama.cpp importance matrix (llama-imatrix's GGUF or legacy .dat) for --method imatrix; needs no --calibrate.")
    var imatrix: String?

    @Option(help: "Write the importance matrix collected by --calibrate, in llama.cpp's GGUF layout (legacy layout if FILE ends in .dat), for llama-quantize --imatrix.")
    var saveImatrix: String?

    @Option(help: "Calibration sequences used (at most).")
    var calibrationSamples: Int = QuantizeJob().calibrationSamples

    @Option(help: "Tokens per calibration sequence.")
    var context: Int = QuantizeJob().context

    @Option(help: "GPTQ dampening: this fraction of the Hessian's mean diagonal is added to it.")
    var damp: Double = QuantizeJob().damp

    @Flag(help: "GPTQ: quantize columns in order of decreasing activation energy (grids fixed first).")
    var actOrder = false

    @Flag(inversion: .prefixedNo, help: "Calibrate block by block on the layer-streamed engine, each block's inputs from the blocks before it already quantized (default: on for gptq, off for imatrix and awq).")
    var sequential: Bool?

    func apply(to job: inout QuantizeJob) {
        (job.calibrate, job.method, job.calibrationSamples, job.context, job.damp, job.actOrder) =
            (calibrate, method, calibrationSamples, context, damp, actOrder)
        (job.imatrix, job.saveImatrix, job.sequential) = (imatrix, saveImatrix, sequential)
    }
}

import ArgumentParser
import CkptCore
import Formats
import Foundation
import Pipeline
import Prune
import Transformer

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Prune a model: unstructured, N:M, or whole heads, MLP neurons and layers into a smaller config.",
        discussion: """
            Structured pruning (--heads, --drop-heads, --intermediate, --drop-layers, \
            --drop-layer-count) works on every registered architecture (see `ckpt forward --help`) \
            and writes the new sizes into the config where the family keeps them; heads only \
            where the config states head_dim (LLaMA, Qwen, Gemma, Phi-3, Mixtral...), in whole \
            key/value groups. --importance activation runs the forward pass on calibration inputs \
            (--calibration FILE, or seeded random sequences). With --verify, the result is \
            compared with the original and written only if the gates pass (exit 1 otherwise).
            """
    )

    @Argument(help: "The model (file or Hugging Face directory).") var input: String
    @Argument(help: "The output (any format ckpt writes; a directory gets config.json).") var output: String
    @Option(help: "Unstructured sparsity, 0..1.") var sparsity: Double?
    @Flag(name: .customLong("global"), help: "One magnitude threshold over all tensors instead of per tensor.") var globalSparsity = false
    @Option(help: "N:M semi-structured sparsity along the input dimension, e.g. 2:4.") var nm: String?
    @Option(help: "Regex of tensors to leave alone (repeatable).") var keep: [String] = []
    @Option(help: "REGEX=SPARSITY for matching tensors (repeatable).") var override: [String] = []
    @Option(help: "Remove this many attention heads from every layer (whole key/value groups).") var heads: Int?
    @Option(help: "Remove exactly these heads, e.g. \"0:1,2;3:0\" (layer:heads).") var dropHeads: String?
    @Option(help: "Narrow every MLP to this many neurons.") var intermediate: Int?
    @Option(help: "Drop these layers, e.g. 3,5.") var dropLayers: String?
    @Option(help: "Drop the N layers with the least block influence.") var dropLayerCount: Int?
    @Option(help: "magnitude or activation.") var importance: String = PruneJob().importance
    @Option(help: "Calibration data: a text file (tokenized with the model's tokenizer, cut into --length sequences), or token ids (lines of ids, or a 2-D integer .npy).") var calibration: String?
    @Option(help: "Random calibration sequences when no --calibration.") var calibrationSequences: Int = PruneJob().calibrationSequences
    @Option(help: "Length of random calibration sequences.") var length: Int = PruneJob().length
    @Option(help: "Seed of random calibration sequences.") var seed: UInt64 = 0
    @Flag(help: "Verify the result against the original; write it only if the gates pass.") var verify = false
    @Option(help: "Gate preset for --verify.") var preset: String = PruneJob().preset
    @OptionGroup(title: "Gates for --verify") var gates: GateFlags
    @Option(help: "A config.json to use instead of the one beside the input.") var config: String?
    @Option(help: "Output format (default: from the extension).") var to: String?
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "Single-file output: also write the new config as config.json beside it (it always travels inside the file too).") var writeConfig = false

    /// The job these flags describe.
    var job: PruneJob {
        get throws {
            var job = PruneJob(input: input, output: output)
            (job.sparsity, job.globalSparsity, job.nm, job.keep, job.override) = (sparsity, globalSparsity, nm, keep, override)
            (job.heads, job.dropHeads, job.intermediate, job.dropLayerCount) = (heads, dropHeads, intermediate, dropLayerCount)
            if let dropLayers {
                let ids = dropLayers.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard ids.allSatisfy({ $0 != nil }) else { throw CLIError("--drop-layers must be comma-separated integers") }
                job.dropLayers = ids.map { $0! }
            }
            (job.importance, job.calibration, job.calibrationSequences, job.length, job.seed) = (importance, calibration, calibrationSequences, length, seed)
            (job.verify, job.preset, job.config, job.to, job.writeConfig) = (verify, preset, config, to, writeConfig)
            gates.apply(to: &job)
            return job
        }
    }

    func run() throws {
        let r = try job.run(progress: .cli(quiet: json))
        let report = r.prune
        if json {
            print(r.json().prettyPrinted())
        } else {
            for op in report.operations { print(op) }
            print("parameters \(report.parametersBefore) -> \(report.parametersAfter), bytes \(report.bytesBefore) -> \(report.bytesAfter)")
            if !report.sparsity.isEmpty {
                let mean = report.sparsity.values.reduce(0, +) / Double(report.sparsity.count)
                print(String(format: "sparsity: mean %.3f over %d tensors", mean, report.sparsity.count))
            }
            if let v = r.verify { print(v.table()) }
            if !r.passed { print("verification failed: \(output) not written") }
            var summary = ConversionSummary()
            summary.carried = r.carried
            for line in summary.lines(input: input) { print(line) }
        }
        if !r.passed { throw ExitCode(1) }
    }
}

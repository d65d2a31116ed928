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
    @Option(help: "magnitude or activation.") var importance: String = "magnitude"
    @Option(help: "Calibration data: a text file (tokenized with the model's tokenizer, cut into --length sequences), or token ids (lines of ids, or a 2-D integer .npy).") var calibration: String?
    @Option(help: "Random calibration sequences when no --calibration.") var calibrationSequences: Int = 8
    @Option(help: "Length of random calibration sequences.") var length: Int = 64
    @Option(help: "Seed of random calibration sequences.") var seed: UInt64 = 0
    @Flag(help: "Verify the result against the original; write it only if the gates pass.") var verify = false
    @Option(help: "Gate preset for --verify (default: prune).") var preset: String = "prune"
    @Option(help: "Gate for --verify: maximum mean KL.") var maxKl: Double?
    @Option(help: "Gate for --verify: minimum cosine.") var minCosine: Double?
    @Option(help: "A config.json to use instead of the one beside the input.") var config: String?
    @Option(help: "Output format (default: from the extension).") var to: String?
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "Single-file output: also write the new config as config.json beside it (it always travels inside the file too).") var writeConfig = false

    func run() throws {
        var o = PruneOptions()
        o.sparsity = sparsity
        o.globalSparsity = globalSparsity
        if let nm {
            guard let v = PruneOptions.parseNM(nm) else { throw CLIError("--nm must look like 2:4") }
            o.nm = v
        }
        o.keep = keep
        o.overrides = try override.map { spec in
            guard let eq = spec.lastIndex(of: "="), let v = Double(spec[spec.index(after: eq)...]) else {
                throw CLIError("--override must look like REGEX=0.3")
            }
            return (String(spec[..<eq]), v)
        }
        o.headsPerLayer = heads
        if let dropHeads {
            guard let map = PruneOptions.parseDropHeads(dropHeads) else { throw CLIError("--drop-heads must look like \"0:1,2;3:0\"") }
            o.dropHeads = map
        }
        o.intermediate = intermediate
        if let dropLayers {
            let ids = dropLayers.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard ids.allSatisfy({ $0 != nil }) else { throw CLIError("--drop-layers must be comma-separated integers") }
            o.dropLayers = ids.map { $0! }
        }
        o.dropLayerCount = dropLayerCount
        guard let imp = PruneOptions.Importance(rawValue: importance) else { throw CLIError("--importance must be magnitude or activation") }
        o.importance = imp
        guard !o.isEmpty else {
            throw CLIError("nothing to do: give --sparsity, --nm, --heads, --drop-heads, --intermediate, --drop-layers or --drop-layer-count")
        }

        let source = try Checkpoint.openModel(input, configPath: config)
        if o.needsCalibration {
            o.calibration = try calibration.map { try TextFiles.tokenInputs($0, model: input, length: min(length, source.config?.maxPositions ?? length)) }
                ?? Verifier.randomInputs(for: source, count: calibrationSequences, length: length, seed: seed)
        }
        let (pruned, report): (WeightGraph, PruneReport)
        do { (pruned, report) = try Pruner.prune(source, o) } catch let e as PruneError {
            throw FileError(path: input, error: e)
        } catch let e as TransformerError {
            throw FileError(path: input, error: e)
        }

        var verifyReport: VerifyReport?
        if verify {
            guard var gates = Gates.preset(preset) else { throw CLIError("unknown --preset \(preset)") }
            if let maxKl { gates.maxKL = maxKl }
            if let minCosine { gates.minCosine = minCosine }
            let inputs = try Verifier.randomInputs(for: source, count: 4, length: 32, seed: seed &+ 1)
            verifyReport = try Verifier.run(reference: source, candidate: pruned, inputs: inputs, gates: gates)
        }
        let passed = verifyReport?.passed ?? true
        var summary = ConversionSummary()
        if passed {
            let (format, directory) = try Checkpoint.outputFormat(for: output, explicit: to, maxShardSize: nil)
            let companions = directory ? Conversion.companionSource(input) : nil
            try Checkpoint.write(pruned, to: output, format: format, directory: directory,
                                 options: .init(configBeside: writeConfig, companionsFrom: companions))
            summary.carried = companions.map { Companions.list(in: $0).map(\.name) } ?? []
        }
        if json {
            var r = report.json().objectValue!
            r["verify"] = verifyReport?.json() ?? .null
            r["written"] = .bool(passed)
            r["carried"] = .array(summary.carried.map { JSONValue.string($0) })
            print(JSONValue.object(r).prettyPrinted())
        } else {
            for op in report.operations { print(op) }
            print("parameters \(report.parametersBefore) -> \(report.parametersAfter), bytes \(report.bytesBefore) -> \(report.bytesAfter)")
            if !report.sparsity.isEmpty {
                let mean = report.sparsity.values.reduce(0, +) / Double(report.sparsity.count)
                print(String(format: "sparsity: mean %.3f over %d tensors", mean, report.sparsity.count))
            }
            if let v = verifyReport { print(v.table()) }
            if !passed { print("verification failed: \(output) not written") }
            for line in summary.lines(input: input) { print(line) }
        }
        if !passed { throw ExitCode(1) }
    }
}

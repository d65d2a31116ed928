// An app's view of ckpt: load a checkpoint, quantize it in memory, check the quantized model
// against the original with the verifier, and write it — no CLI, no subprocess.
//
//   swift run --package-path Examples QuantizeAndVerify [MODEL] [OUTPUT] [SCHEME]
//   (defaults: fixtures/tiny-gpt2, build/example/tiny-gpt2-q8_0.ckz, q8_0)
//
// Exit status: 0 the quantized model passed the scheme's gates and was written, 1 it did not
// (nothing written), 2 an error.

import CkptKit
import Foundation

let args = CommandLine.arguments.dropFirst()
let model = URL(fileURLWithPath: args.first ?? "fixtures/tiny-gpt2", isDirectory: true)
let output = URL(fileURLWithPath: args.dropFirst().first ?? "build/example/tiny-gpt2-q8_0.ckz")
let scheme = args.dropFirst(2).first ?? "q8_0"

do {
    // 1. Load: tensors stay on disk (memory-mapped) until used.
    let original = try Checkpoint.openModel(model)
    print("loaded \(model.path): \(original.tensors.count) tensors, \(original.parameterCount) parameters")

    // 2. Quantize in memory. The recipe decides per tensor (2-D weights get the scheme, norms
    //    and biases stay float); tensors are quantized lazily, when first read.
    let recipe = QuantizeRecipe(scheme: scheme)
    let errors = QuantizationReport()
    let result = try Quantization.apply(
        original, recipe: recipe, scheme: scheme, format: .ckz, output: output.path,
        jobs: ProcessInfo.processInfo.activeProcessorCount, dequantize: false, report: errors, tool: "QuantizeAndVerify")
    let (quantized, plan) = (result.graph, result.rows)
    let changed = plan.filter { $0.decision.target != nil }
    let before = plan.reduce(0) { $0 + $1.bytesBefore }, after = plan.reduce(0) { $0 + $1.bytesAfter }
    print("quantized \(changed.count) of \(plan.count) tensors to \(scheme): \(before) -> \(after) bytes")

    // 3. Verify: both models on the same seeded random sequences, with the scheme's gates.
    let inputs = try Verifier.randomInputs(for: original, count: 4, length: 32, seed: 0)
    let gates = Gates.preset(scheme) ?? Gates(maxKL: 0.1)
    let report = try Verifier.run(reference: original, candidate: quantized, inputs: inputs, gates: gates)
    print(report.table())
    for row in changed.prefix(3) {
        if let e = errors.error(for: row.name) {
            print(String(format: "  %@: relative RMSE %.3f%%", row.name, 100 * e.relativeRMSE))
        }
    }
    guard report.passed else {
        print("the quantized model failed its gates; nothing written")
        exit(1)
    }

    // 4. Write, atomically: the file appears complete or not at all.
    try FileManager.default.createDirectory(at: output.deletingLastPathComponent(), withIntermediateDirectories: true)
    try Checkpoint.write(quantized, to: output)
    let reread = try Checkpoint.openModel(output)
    print("wrote \(output.path): \(reread.tensors.values.filter { $0.dtype.isQuantized }.count) quantized tensors")
} catch {
    FileHandle.standardError.write(Data("QuantizeAndVerify: \(error)\n".utf8))
    exit(2)
}

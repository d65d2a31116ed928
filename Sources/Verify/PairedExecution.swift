// The execution side of `verify`: how a reference and a candidate model are run on the same
// inputs (which inputs is the caller's business). In memory, each model is widened to f32
// once and runs sequence by sequence; streamed, the two run in lock step, block by block —
// block i of the reference on every sequence, then block i of the candidate — so neither
// model is ever whole in memory, and each block's input drift is measured as it goes.

import CkptCore
import Transformer

struct PairedRun {
    var referenceDescription: ModelDescription
    var candidateDescription: ModelDescription
    /// Per input sequence.
    var reference: [ForwardOutput]
    var candidate: [ForwardOutput]
    /// Relative RMS drift of each block's input, averaged over sequences; nil for different depths.
    var layerDrift: [Double]?
    var execution: Execution
    var estimate: MemoryEstimate
}

enum PairedExecution {
    static func run(reference: WeightGraph, candidate: WeightGraph, inputs: [ModelInput], options: ExecutionOptions,
                    progress: ((Int) -> Void)?) throws -> PairedRun {
        let rd = try Transformers.describe(reference)
        let cd = try Transformers.describe(candidate)
        guard rd.outputKind == cd.outputKind else {
            throw VerifyError.incomparable("reference outputs \(rd.outputKind.rawValue), candidate \(cd.outputKind.rawValue)")
        }
        if let rv = rd.vocabSize, let cv = cd.vocabSize, rv != cv {
            throw VerifyError.incomparable("different vocabularies (\(rv) and \(cv) tokens)")
        }
        guard !inputs.isEmpty else { throw VerifyError.badInputs("no input sequences") }
        let longest = inputs.map(\.length).max() ?? 0
        let estimate = Memory.estimate([rd, cd], storedBytes: [reference, candidate], sequences: inputs.count, tokens: longest)
        let execution = try Memory.choose(options, estimate)
        let sameDepth = rd.blocks.count == cd.blocks.count
        var run = PairedRun(referenceDescription: rd, candidateDescription: cd, reference: [], candidate: [],
                            layerDrift: sameDepth ? [Double](repeating: 0, count: rd.blocks.count) : nil,
                            execution: execution, estimate: estimate)
        func addDrift(_ l: Int, _ a: [Float], _ b: [Float]) {
            guard sameDepth, a.count == b.count else { return }
            run.layerDrift![l] += Metrics.relativeRMS(reference: a, candidate: b) / Double(inputs.count)
        }
        if execution == .inMemory {
            let ref = try Transformers.load(reference)
            let cand = try Transformers.load(candidate)
            for (i, input) in inputs.enumerated() {
                let a = try ref.forward(input, collectHidden: sameDepth)
                let b = try cand.forward(input, collectHidden: sameDepth)
                try checkSizes(a, b)
                if a.hiddenStates.count == b.hiddenStates.count {
                    for l in a.hiddenStates.indices { addDrift(l, a.hiddenStates[l], b.hiddenStates[l]) }
                }
                run.reference.append(a)
                run.candidate.append(b)
                progress?(i + 1)
            }
        } else {
            let ref = try StreamedModel(reference)
            let cand = try StreamedModel(candidate)
            var a = try ref.embed(inputs)
            var b = try cand.embed(inputs)
            for l in 0..<max(ref.layerCount, cand.layerCount) {
                if sameDepth { for s in inputs.indices { addDrift(l, a.x[s], b.x[s]) } }
                if l < ref.layerCount { try ref.runBlock(&a) }
                if l < cand.layerCount { try cand.runBlock(&b) }
            }
            run.reference = try ref.finish(a)
            run.candidate = try cand.finish(b)
            for (x, y) in zip(run.reference, run.candidate) { try checkSizes(x, y) }
            progress?(inputs.count)
        }
        return run
    }

    static func checkSizes(_ a: ForwardOutput, _ b: ForwardOutput) throws {
        guard a.cols == b.cols, a.rows == b.rows else {
            throw VerifyError.incomparable("output sizes differ: [\(a.rows), \(a.cols)] and [\(b.rows), \(b.cols)]")
        }
    }
}

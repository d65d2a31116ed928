// Calibrated quantization (`ckpt quantize --calibrate FILE`): run the float model on
// calibration text or tokens, collect each linear layer's input statistics, then quantize the
// layers that have them with the chosen method instead of round-to-nearest.
//
// Statistics come from the in-memory reference forward pass (ActivationStats): per linear
// weight Σ x·xᵀ (GPTQ's Hessian), Σ x² (an importance matrix) and Σ |x|. They are gathered
// either on the float model in one pass (every layer is then quantized against its float
// inputs), or sequentially on the layer-streamed engine, as the GPTQ paper, AutoGPTQ and
// llm-compressor do: for each block, its linear layers' inputs are collected from the output
// of the blocks before it *already quantized*, the block's weights are quantized with the
// method, and the block is run again with those weights (widened to f32) to produce the next
// block's inputs. The granularity is the block, as llm-compressor's sequential pipeline: all
// linears of block i see the float block i's internal activations (AutoGPTQ's
// "true sequential" also re-runs the block between q/k/v, o and the MLP; not done here).
// Only one block's weights and the activations of all sequences are in memory at a time.
// Sequential is the default for GPTQ; imatrix, AWQ and AWQ+GPTQ default to one pass
// (llama-imatrix and AutoAWQ collect on the float model), imatrix may ask for `--sequential`.
// GPTQ reaches every GGUF block type (the k-quants with their scales frozen first) and is the
// default method; stacked MoE expert tensors take the importance matrix (AWQScaling.swift has
// AWQ, its clipping search and AWQ+GPTQ).
//
// imatrix (llama.cpp's importance matrix): the per-column mean of x² from the same pass (or
// from a llama.cpp imatrix file, `--imatrix FILE`) weights the scale/min search of the block
// types that use one (Quantize/ImportanceQuants.swift, byte-identical to llama-quantize given
// the same matrix); `--save-imatrix FILE` writes ours in llama.cpp's layout, under llama.cpp's
// tensor names, for llama-quantize.
//
// Each calibrated layer's output error on the calibration activations is measured both for
// round-to-nearest and for the method, from the Gram matrix G = Σ x·xᵀ:
//   ‖(W − Ŵ)X‖ / ‖WX‖ = sqrt(tr(ΔW·G·ΔWᵀ) / tr(W·G·Wᵀ)).

import CkptCore
import COpenBLAS
import Formats
import Foundation
import Quantize
import Transformer

public struct CalibrationOptions: Sendable {
    public var file: String
    /// gptq, awq, imatrix, rtn or awq+gptq (nil: the best this build has for the scheme).
    public var method: String?
    public var samples: Int
    public var context: Int
    public var percdamp: Double
    public var actOrder: Bool
    /// Tokenizer location (default: beside the checkpoint).
    public var tokenizer: String?
    /// A llama.cpp importance matrix to use (GGUF or legacy .dat) instead of the collected one.
    public var imatrix: String?
    /// Where to write the collected importance matrix (llama.cpp's GGUF layout; `.dat`: legacy).
    public var saveImatrix: String?
    /// Collect block by block on the streamed engine from the quantized earlier blocks.
    public var sequential = false

    /// `file` may be empty when `imatrix` brings the statistics (nothing is run then).
    public init(file: String, method: String? = nil, samples: Int = 128, context: Int = 512, percdamp: Double = 0.01,
                actOrder: Bool = false, tokenizer: String? = nil, imatrix: String? = nil, saveImatrix: String? = nil) {
        self.imatrix = imatrix
        self.saveImatrix = saveImatrix
        self.file = file
        self.method = method
        self.samples = samples
        self.context = context
        self.percdamp = percdamp
        self.actOrder = actOrder
        self.tokenizer = tokenizer
    }

    /// Methods accepted by `--method` (awq+gptq: AWQ's scales folded, then GPTQ on them).
    public static let methods = ["gptq", "awq", "imatrix", "rtn", "awq+gptq"]
}

/// One calibrated layer's output error on the calibration activations.
public struct CalibratedLayer: Sendable {
    public var method: String
    /// ‖WX − ŴX‖ / ‖WX‖ with round-to-nearest, and with the method.
    public var errorBefore: Double
    public var errorAfter: Double
}

public final class Calibration: @unchecked Sendable {
    public let options: CalibrationOptions
    public let stats: ActivationStats
    public let sequences: Int
    public let tokens: Int
    public internal(set) var collectSeconds: Double
    /// Weight name (the model's own) -> layout.
    let linears: [String: LinearSpec]
    let lock = NSLock()
    var layers: [String: CalibratedLayer] = [:]
    var quantizeTime = 0.0
    /// The model's blocks (AWQ's groups come from them; empty when nothing ran).
    let blocks: [BlockSpec]
    /// AWQ: the α chosen per group (consumer weight names joined by commas).
    var awqAlphas: [String: Double] = [:]
    /// AWQ: the scales folded into each consumer's input columns (model weight name; α > 0 only).
    var awqScales: [String: [Float]] = [:]
    /// AWQ: the clipping thresholds searched for each linear weight (model weight name), in the
    /// scaled weights' units; applied before rounding to nearest.
    var awqClips: [String: AWQ.Clip] = [:]
    /// Per weight (llama.cpp's name where there is one), the importance: Σx²/tokens per column.
    var importance: [String: [Float]]
    /// The model's weight names -> llama.cpp's (plain tensors; experts stacked into one
    /// llama.cpp tensor are in `expertStacks`).
    let ggufNames: [String: String]
    /// llama.cpp's stacked expert tensors (`blk.N.ffn_*_exps.weight`) -> the model's weight
    /// name of each slice, in order. Their importance (file or collected) is one entry of
    /// experts × columns, with one token count per expert, as llama-imatrix writes it.
    var expertStacks: [String: [String]] = [:]

    init(options: CalibrationOptions, stats: ActivationStats, sequences: Int, tokens: Int, seconds: Double, linears: [String: LinearSpec],
         importance: [String: [Float]] = [:], ggufNames: [String: String] = [:], blocks: [BlockSpec] = []) {
        self.blocks = blocks
        self.importance = importance
        self.ggufNames = ggufNames
        self.options = options
        self.stats = stats
        self.sequences = sequences
        self.tokens = tokens
        self.collectSeconds = seconds
        self.linears = linears
    }

    /// The method used for `dtype` when none is asked for: GPTQ wherever it has the type's grid
    /// (the 32-blocks, int groups, and the k-quants on their frozen scales: on the real
    /// all-MiniLM-L6-v2 it leaves less held-out error than the importance matrix on q4_k and
    /// q4_k_m, BENCHMARKS.md), round-to-nearest otherwise.
    public static func method(for dtype: DType, asked: String?) -> String {
        if let asked { return asked }
        return GPTQ.supports(dtype) ? "gptq" : "rtn"
    }

    /// The method for the recipe's main scheme (for the report line "calibrated with ...").
    public func method(forScheme scheme: String, groupSize: Int?) -> String {
        guard let d = try? Scheme.resolve(scheme, groupSize: groupSize, rowLength: 256 * 7), d.isQuantized else { return options.method ?? "rtn" }
        return Self.method(for: d, asked: options.method)
    }

    /// Whether calibration runs sequentially when not asked: for GPTQ (the paper's and
    /// AutoGPTQ's/llm-compressor's way), not for imatrix (llama-imatrix collects on the float
    /// model) nor AWQ (AutoAWQ searches on the float blocks' inputs).
    public static func defaultSequential(scheme: String, groupSize: Int?, method asked: String?) -> Bool {
        guard let d = try? Scheme.resolve(scheme, groupSize: groupSize, rowLength: 256 * 7), d.isQuantized else { return asked == "gptq" }
        return method(for: d, asked: asked) == "gptq"
    }

    /// Runs the model over the calibration data. `checkpoint` locates the tokenizer.
    /// Sequential runs quantize each block as they go: `target(modelName, shape)` is the
    /// recipe's type for a weight (shape as it will be quantized), `ggufOutput` whether Conv1D
    /// weights are transposed first, as `Quantization.apply` will quantize them.
    public static func collect(_ graph: WeightGraph, checkpoint: String, options: CalibrationOptions,
                               target: ((String, [Int]) -> DType?)? = nil, ggufOutput: Bool = false) throws -> Calibration {
        if let m = options.method, !CalibrationOptions.methods.contains(m) {
            throw QuantizeJobError(description: "--method \(m): this build calibrates with \(CalibrationOptions.methods.joined(separator: ", "))")
        }
        let sequential = options.sequential && !options.file.isEmpty
        if sequential, options.method?.hasPrefix("awq") == true || options.imatrix != nil {
            throw QuantizeJobError(description: "--sequential applies to gptq and imatrix collected from --calibrate (awq searches on the float model's inputs)")
        }
        guard options.samples > 0 else { throw QuantizeJobError(description: "--calibration-samples must be positive") }
        guard options.context > 1 else { throw QuantizeJobError(description: "--context must be at least 2") }
        let start = DispatchTime.now().uptimeNanoseconds
        // With only an imatrix file nothing runs (and the family need not be one ckpt runs).
        let model = options.file.isEmpty || sequential ? nil : try Transformers.load(graph)
        let description = options.file.isEmpty ? try? Transformers.describe(graph) : try Transformers.describe(graph)
        var inputs: [ModelInput] = []
        if !options.file.isEmpty {
            inputs = try TextFiles.tokenInputs(options.file, model: checkpoint, length: options.context, tokenizer: options.tokenizer)
            inputs = Array(inputs.prefix(options.samples))
        }
        let stats = ActivationStats(collectGram: options.method != "rtn")
        var tokens = 0
        // Token files may hold longer rows than --context: cut them.
        inputs = inputs.map { input in
            guard case .tokens(let ids) = input else { return input }
            tokens += min(ids.count, options.context)
            return .tokens(Array(ids.prefix(options.context)))
        }
        for input in inputs { _ = try model?.forward(input, collectHidden: false, stats: stats) }
        var linears: [String: LinearSpec] = [:]
        for b in description?.blocks ?? [] {
            var all = b.attention.linears + (b.mlp?.linears ?? [])
            if let moe = b.moe { all += moe.linears }
            for l in all { linears[l.weightName] = l }
        }
        // llama.cpp's names of the model's weights (its imatrix files use them).
        var ggufNames: [String: String] = [:], stacks: [String: [String]] = [:]
        let needsNames = options.imatrix != nil || options.saveImatrix != nil || options.method?.hasPrefix("awq") == true || sequential
        // MoE models: the stacked expert tensors' names, for their importance entries.
        let moe = description?.blocks.contains(where: { $0.moe != nil }) == true
        if let renamed = needsNames ? try GGUFNaming.toGGUF(graph) : moe ? try? GGUFNaming.toGGUF(graph) : nil {
            for (gguf, hfs) in GGUFNaming.hfNameLists(of: renamed) {
                if hfs.count == 1 { ggufNames[hfs[0]] = gguf } else { stacks[gguf] = hfs }
            }
        }
        let calibration = Calibration(options: options, stats: stats, sequences: inputs.count, tokens: tokens, seconds: 0, linears: linears,
                                      importance: [:], ggufNames: ggufNames, blocks: description?.blocks ?? [])
        calibration.expertStacks = stacks
        if sequential {
            try calibration.runSequential(graph, inputs: inputs, target: target ?? { _, _ in nil }, ggufOutput: ggufOutput)
        }
        calibration.importance = importanceFromStats(stats, ggufNames, stacks: stacks)
        if let path = options.saveImatrix {
            var m = ImportanceMatrix(datasets: options.file.isEmpty ? [] : [options.file], chunkCount: inputs.count, chunkSize: options.context)
            let stacked = Set(stacks.values.joined())
            for (name, sums) in stats.inputSquares where !stacked.contains(name) {
                guard let n = stats.inputTokens[name], n > 0 else { continue }
                m.entries[ggufNames[name] ?? name] = .init(sums: sums.map(Float.init), counts: [Float(n)])
            }
            // Stacked experts: one entry, a matrix and a token count per expert (0 if never routed to).
            for (name, experts) in stacks {
                guard let cols = experts.lazy.compactMap({ stats.inputSquares[$0]?.count }).first else { continue }
                var sums = [Float](), counts = [Float]()
                for e in experts {
                    let n = stats.inputTokens[e] ?? 0
                    sums += n > 0 ? (stats.inputSquares[e] ?? []).map(Float.init) : [Float](repeating: 0, count: cols)
                    counts.append(Float(n))
                }
                if sums.count == cols * experts.count, counts.contains(where: { $0 > 0 }) { m.entries[name] = .init(sums: sums, counts: counts) }
            }
            guard !m.entries.isEmpty else { throw QuantizeJobError(description: "--save-imatrix: the calibration run collected no linear layer's inputs") }
            try m.write(to: path, legacy: path.lowercased().hasSuffix(".dat"))
        }
        if let path = options.imatrix {
            calibration.importance = [:]
            let m = try ImportanceMatrix.read(path: path)
            for (name, e) in m.entries { calibration.importance[name] = e.importance }
        }
        calibration.collectSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return calibration
    }

    /// Per weight (llama.cpp's name where there is one), Σx²/tokens per column.
    /// Stacked experts: experts × columns under the stacked tensor's name, 1 for an expert
    /// never routed to (llama-quantize's reading of a count of 0).
    static func importanceFromStats(_ stats: ActivationStats, _ ggufNames: [String: String], stacks: [String: [String]] = [:]) -> [String: [Float]] {
        var importance: [String: [Float]] = [:]
        for (name, sums) in stats.inputSquares {
            guard let n = stats.inputTokens[name], n > 0 else { continue }
            // In f32 as llama-quantize computes it from a saved file (in_sum2 / counts): the same bytes.
            importance[ggufNames[name] ?? name] = sums.map { Float($0) / Float(n) }
        }
        for (name, experts) in stacks {
            guard let cols = experts.lazy.compactMap({ stats.inputSquares[$0]?.count }).first,
                  experts.contains(where: { (stats.inputTokens[$0] ?? 0) > 0 }) else { continue }
            var q = [Float]()
            for e in experts {
                let n = stats.inputTokens[e] ?? 0
                if n > 0, let sums = stats.inputSquares[e], sums.count == cols {
                    q += sums.map { Float($0) / Float(n) }
                } else {
                    q += [Float](repeating: 1, count: cols)
                }
            }
            importance[name] = q
        }
        return importance
    }

    /// The sequential collection on the streamed engine: per block, observe its linears'
    /// inputs (from the quantized blocks before it), quantize its weights, run it with them.
    func runSequential(_ graph: WeightGraph, inputs: [ModelInput], target: (String, [Int]) -> DType?, ggufOutput: Bool) throws {
        let model = try StreamedModel(graph, allowUnused: true)
        var state = try model.embed(inputs, stats: stats)
        for spec in model.description.blocks {
            try model.observeBlock(state, stats: stats)
            importance = Self.importanceFromStats(stats, ggufNames, stacks: expertStacks)
            var all = spec.attention.linears + (spec.mlp?.linears ?? [])
            if let moe = spec.moe { all += moe.linears }
            let replaced = try all.compactMap { try quantizedFloats($0, graph, target: target, ggufOutput: ggufOutput) }
            try model.runBlock(&state, replacing: replaced)
        }
        // The quantization proper (and its report) is `Quantization.apply`'s: it recomputes
        // each layer from the same statistics, so the file holds what the next block saw.
        lock.withLock {
            layers = [:]
            quantizeTime = 0
        }
    }

    /// A linear weight as `Quantization.apply` will store it, widened back to f32 in the
    /// model's layout (nil: it stays float).
    func quantizedFloats(_ spec: LinearSpec, _ graph: WeightGraph, target: (String, [Int]) -> DType?, ggufOutput: Bool) throws -> Tensor? {
        guard let t = graph.tensor(named: spec.weightName), t.shape.count >= 2 else { return nil }
        let transpose = spec.layout == .conv1d && ggufOutput && t.shape.count == 2
        let shape = transpose ? [t.shape[1], t.shape[0]] : t.shape
        guard let dtype = target(spec.weightName, shape), dtype != t.dtype, var w = try Cast.floats(t) else { return nil }
        if transpose { w = Self.transposed(w, rows: t.shape[0], cols: t.shape[1]) }
        let f = try Tensor(name: t.name, dtype: .f32, shape: shape, data: .owned(w.withUnsafeBytes { Array($0) }))
        let q: Tensor
        // An expert that GGUF will stack is quantized there with the importance matrix (see
        // `quantize`): the same here, from its slice of the same statistics.
        let stackedExpert = ggufOutput && expertStacks.values.contains { $0.contains(spec.weightName) }
        if !dtype.isQuantized {
            q = try Cast.cast(f, to: dtype)
        } else if stackedExpert, let c = try quantizeImportance(f, modelName: spec.weightName, target: dtype, transposed: transpose,
                                                                 report: QuantizationReport(measures: false)) {
            q = c
        } else if let c = try quantize(f, modelName: spec.weightName, target: dtype, transposed: transpose,
                                       report: QuantizationReport(measures: false)) {
            q = c
        } else {
            q = try Quantizer.quantize(f, to: dtype, jobs: 1).tensor
        }
        guard var values = try Cast.floats(q) else { return nil }
        if transpose { values = Self.transposed(values, rows: shape[0], cols: shape[1]) }
        return try Tensor(name: spec.weightName, dtype: .f32, shape: t.shape, data: .owned(values.withUnsafeBytes { Array($0) }))
    }

    static func transposed(_ m: [Float], rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: m.count)
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = m[r * cols + c] } }
        return out
    }

    public func layer(_ name: String) -> CalibratedLayer? { lock.withLock { layers[name] } }
    /// Whether the graph is rescaled (AWQ) before quantization.
    public var usesAWQ: Bool { options.method?.hasPrefix("awq") == true }
    public var quantizeSeconds: Double { lock.withLock { quantizeTime } }

    /// `tensor` quantized to `target` with the calibration method, or nil when this layer has
    /// no statistics or the method does not apply (the caller rounds to nearest).
    /// `modelName` is the tensor's name in the model's own naming; `transposed`: the tensor was
    /// turned from Conv1D [in, out] into [out, in] on the way to GGUF.
    func quantize(_ tensor: Tensor, modelName: String, target: DType, transposed: Bool, report: QuantizationReport) throws -> Tensor? {
        let method = Self.method(for: target, asked: options.method)
        switch method {
        case "gptq", "awq+gptq":
            // Stacked MoE experts (one [experts, rows, cols] tensor in GGUF) have no per-expert
            // Hessian here: they take the importance matrix, which has their per-expert entries.
            if tensor.shape.count == 3 { return try quantizeImportance(tensor, modelName: modelName, target: target, transposed: transposed, report: report) }
            return try quantizeGPTQ(tensor, modelName: modelName, target: target, transposed: transposed, report: report)
        case "awq": return try quantizeClipped(tensor, modelName: modelName, target: target, transposed: transposed, report: report)
        case "imatrix": return try quantizeImportance(tensor, modelName: modelName, target: target, transposed: transposed, report: report)
        default: return nil
        }
    }

    /// The importance vector for a weight: the file's (by llama.cpp's name, the tensor's own
    /// name, or the model's) or the collected one; only when it runs along the tensor's rows.
    /// A file's entry whose length is not the tensor's row length is an error (llama-quantize
    /// refuses it too).
    /// A stacked expert tensor [experts, rows, cols] takes its own name's entry of experts ×
    /// cols values (llama-quantize requires exactly that size too).
    func importance(for tensor: Tensor, modelName: String, transposed: Bool) throws -> [Float]? {
        if let spec = linears[modelName], !(spec.layout == .linear || transposed) { return nil }  // Conv1D [in, out] rows
        if tensor.shape.count == 3 {
            guard let q = importance[tensor.name] else { return nil }
            guard q.count == tensor.shape[0] * tensor.shape[2] else {
                throw QuantizeJobError(description: "\(options.imatrix ?? "importance matrix"): tensor `\(tensor.name)`: the importance matrix has \(q.count) values, the \(tensor.shape[0]) stacked matrices' rows \(tensor.shape[2]) each")
            }
            return q
        }
        let keys = [tensor.name, ggufNames[modelName], modelName].compactMap { $0 }
        guard tensor.shape.count == 2, let q = keys.lazy.compactMap({ self.importance[$0] }).first else { return nil }
        guard q.count == tensor.shape[1] else {
            throw QuantizeJobError(description: "\(options.imatrix ?? "importance matrix"): tensor `\(tensor.name)`: the importance matrix has \(q.count) columns, the weight's rows \(tensor.shape[1])")
        }
        return q
    }

    func quantizeImportance(_ tensor: Tensor, modelName: String, target: DType, transposed: Bool, report: QuantizationReport) throws -> Tensor? {
        guard ImportanceQuants.supports(target), let q = try importance(for: tensor, modelName: modelName, transposed: transposed) else { return nil }
        guard let w = try Cast.floats(tensor) else { return nil }
        // Stacked experts: each matrix with its own slice of the importance.
        let cols = tensor.shape.last ?? 1, nmat = q.count / cols, rows = w.count / cols
        let perMatrix = w.count / nmat
        let start = DispatchTime.now().uptimeNanoseconds
        var bytes: [UInt8] = []
        for m in 0..<nmat {
            bytes += try w.withUnsafeBufferPointer { p in
                try ImportanceQuants.quantize(UnsafeBufferPointer(rebasing: p[(m * perMatrix)..<((m + 1) * perMatrix)]), rowLength: cols,
                                              importance: Array(q[(m * cols)..<((m + 1) * cols)]), to: target, name: tensor.name)
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let values = try bytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: target, count: w.count) }
        try record(tensor, modelName: modelName, method: "imatrix", w: w, values: values, target: target, rows: rows, cols: cols,
                   importance: q, seconds: seconds, report: report)
        return try Tensor(name: tensor.name, dtype: target, shape: tensor.shape, data: .owned(bytes))
    }

    /// Records a calibrated layer's output error before (round-to-nearest) and after, from the
    /// Gram matrix when the run collected it, else from its diagonal (the importance vector).
    func record(_ tensor: Tensor, modelName: String, method: String, w: [Float], values: [Float], target: DType, rows: Int, cols: Int,
                importance: [Float], seconds: Double, report: QuantizationReport) throws {
        let rtn = try Quantizer.quantize(w, rowLength: cols, to: target, name: tensor.name)
        let rtnValues = try rtn.withUnsafeBytes { try Quantizer.dequantize($0, dtype: target, count: w.count) }
        let before: Double, after: Double
        if importance.count == cols, let g = stats.gram(modelName), g.count == cols * cols {
            before = Self.outputError(w, rtnValues, gram: g, rows: rows, cols: cols)
            after = Self.outputError(w, values, gram: g, rows: rows, cols: cols)
        } else {
            before = Self.diagonalError(w, rtnValues, importance: importance, cols: cols)
            after = Self.diagonalError(w, values, importance: importance, cols: cols)
        }
        lock.withLock {
            layers[tensor.name] = CalibratedLayer(method: method, errorBefore: before, errorAfter: after)
            quantizeTime += seconds
        }
        if report.measures { report.recordCalibrated(tensor.name, QuantizationError.measure(original: w, reconstructed: values)) }
    }

    /// sqrt(Σ q_j·ΔW_ij² / Σ q_j·W_ij²): the output error when input channels are uncorrelated.
    /// `q` may hold one vector per stacked matrix (experts × columns).
    static func diagonalError(_ w: [Float], _ v: [Float], importance q: [Float], cols: Int) -> Double {
        let perMatrix = w.count / Swift.max(1, q.count / cols)
        var num = 0.0, den = 0.0
        for i in w.indices {
            let qi = Double(q[(i / perMatrix) * cols + i % cols]), d = Double(v[i]) - Double(w[i])
            num += qi * d * d
            den += qi * Double(w[i]) * Double(w[i])
        }
        return den > 0 ? (num / den).squareRoot() : 0
    }

    func quantizeGPTQ(_ tensor: Tensor, modelName: String, target: DType, transposed: Bool, report: QuantizationReport) throws -> Tensor? {
        guard GPTQ.supports(target), let spec = linears[modelName] else { return nil }
        guard spec.layout == .linear || transposed, tensor.shape == [spec.outFeatures, spec.inFeatures] else { return nil }
        guard var g = stats.gram(modelName), let n = stats.inputTokens[modelName], n > 0 else { return nil }
        guard let w = try Cast.floats(tensor) else { return nil }
        let start = DispatchTime.now().uptimeNanoseconds
        let rows = spec.outFeatures, cols = spec.inFeatures
        // AWQ's scales folded in (awq+gptq): the layer's inputs are x/s, so G' = diag(1/s)·G·diag(1/s).
        if let s = lock.withLock({ awqScales[modelName] }), s.count == cols {
            for i in 0..<cols { for j in 0..<cols { g[i * cols + j] /= Double(s[i]) * Double(s[j]) } }
        }
        let h = g.map { 2 * $0 / Double(n) }
        let result: (bytes: [UInt8], values: [Float])
        do {
            result = try GPTQ.quantize(weight: w, rows: rows, cols: cols, hessian: h, to: target,
                                       options: GPTQOptions(percdamp: options.percdamp, actOrder: options.actOrder))
        } catch {
            throw QuantizeJobError(description: "tensor `\(tensor.name)`: \(error)")
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let rtn = try Quantizer.quantize(w, rowLength: cols, to: target, name: tensor.name, jobs: 1)
        let rtnValues = try rtn.withUnsafeBytes { try Quantizer.dequantize($0, dtype: target, count: w.count, jobs: 1) }
        let before = Self.outputError(w, rtnValues, gram: g, rows: rows, cols: cols)
        let after = Self.outputError(w, result.values, gram: g, rows: rows, cols: cols)
        lock.withLock {
            layers[tensor.name] = CalibratedLayer(method: usesAWQ ? "awq+gptq" : "gptq", errorBefore: before, errorAfter: after)
            quantizeTime += seconds
        }
        if report.measures { report.recordCalibrated(tensor.name, QuantizationError.measure(original: w, reconstructed: result.values)) }
        return try Tensor(name: tensor.name, dtype: target, shape: tensor.shape, data: .owned(result.bytes))
    }

    /// sqrt(tr(ΔW·G·ΔWᵀ) / tr(W·G·Wᵀ)).
    static func outputError(_ w: [Float], _ q: [Float], gram g: [Double], rows: Int, cols: Int) -> Double {
        func energy(_ m: [Double]) -> Double {
            var mg = [Double](repeating: 0, count: rows * cols)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(cols), Int32(cols), 1, m, Int32(cols),
                        g, Int32(cols), 0, &mg, Int32(cols))
            var s = 0.0
            for i in 0..<m.count { s += mg[i] * m[i] }
            return s
        }
        let wd = w.map(Double.init)
        var dd = [Double](repeating: 0, count: w.count)
        for i in 0..<w.count { dd[i] = Double(q[i]) - wd[i] }
        let total = energy(wd)
        return total > 0 ? (max(0, energy(dd)) / total).squareRoot() : 0
    }
}

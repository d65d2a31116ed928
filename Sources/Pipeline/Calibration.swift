// Calibrated quantization (`ckpt quantize --calibrate FILE`): run the float model on
// calibration text or tokens, collect each linear layer's input statistics, then quantize the
// layers that have them with the chosen method instead of round-to-nearest.
//
// Statistics come from the in-memory reference forward pass (ActivationStats): per linear
// weight Σ x·xᵀ (GPTQ's Hessian), Σ x² (an importance matrix) and Σ |x|. They are gathered
// on the float model in one pass; GPTQ then quantizes every layer against its float inputs
// (not the sequential variant that feeds block i's quantized output to block i+1: that needs
// the layer-streamed engine of issue 17, which should drive this collection once it lands).
//
// Each calibrated layer's output error on the calibration activations is measured both for
// round-to-nearest and for the method, from the Gram matrix G = Σ x·xᵀ:
//   ‖(W − Ŵ)X‖ / ‖WX‖ = sqrt(tr(ΔW·G·ΔWᵀ) / tr(W·G·Wᵀ)).

import CkptCore
import COpenBLAS
import Foundation
import Quantize
import Transformer

public struct CalibrationOptions: Sendable {
    public var file: String
    /// gptq, rtn (nil: the best this build has for the scheme).
    public var method: String?
    public var samples: Int
    public var context: Int
    public var percdamp: Double
    public var actOrder: Bool
    /// Tokenizer location (default: beside the checkpoint).
    public var tokenizer: String?

    public init(file: String, method: String? = nil, samples: Int = 128, context: Int = 512, percdamp: Double = 0.01,
                actOrder: Bool = false, tokenizer: String? = nil) {
        self.file = file
        self.method = method
        self.samples = samples
        self.context = context
        self.percdamp = percdamp
        self.actOrder = actOrder
        self.tokenizer = tokenizer
    }

    /// Methods accepted by `--method`.
    public static let methods = ["gptq", "rtn"]
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
    public let collectSeconds: Double
    /// Weight name (the model's own) -> layout.
    let linears: [String: LinearSpec]
    private let lock = NSLock()
    private var layers: [String: CalibratedLayer] = [:]
    private var quantizeTime = 0.0

    init(options: CalibrationOptions, stats: ActivationStats, sequences: Int, tokens: Int, seconds: Double, linears: [String: LinearSpec]) {
        self.options = options
        self.stats = stats
        self.sequences = sequences
        self.tokens = tokens
        self.collectSeconds = seconds
        self.linears = linears
    }

    /// The method used for `dtype` when none is asked for, and whether the asked one applies.
    public static func method(for dtype: DType, asked: String?) -> String {
        if let asked { return asked }
        return GPTQ.supports(dtype) ? "gptq" : "rtn"
    }

    /// The method for the recipe's main scheme (for the report line "calibrated with ...").
    public func method(forScheme scheme: String, groupSize: Int?) -> String {
        guard let d = try? Scheme.resolve(scheme, groupSize: groupSize, rowLength: 256 * 7), d.isQuantized else { return options.method ?? "rtn" }
        return Self.method(for: d, asked: options.method)
    }

    /// Runs the float model over the calibration data. `checkpoint` locates the tokenizer.
    public static func collect(_ graph: WeightGraph, checkpoint: String, options: CalibrationOptions) throws -> Calibration {
        if let m = options.method, !CalibrationOptions.methods.contains(m) {
            throw QuantizeJobError(description: "--method \(m): this build calibrates with \(CalibrationOptions.methods.joined(separator: ", "))")
        }
        guard options.samples > 0 else { throw QuantizeJobError(description: "--calibration-samples must be positive") }
        guard options.context > 1 else { throw QuantizeJobError(description: "--context must be at least 2") }
        let start = DispatchTime.now().uptimeNanoseconds
        let model = try Transformers.load(graph)
        let description = try Transformers.describe(graph)
        var inputs = try TextFiles.tokenInputs(options.file, model: checkpoint, length: options.context, tokenizer: options.tokenizer)
        inputs = Array(inputs.prefix(options.samples))
        let stats = ActivationStats(collectGram: options.method != "rtn")
        var tokens = 0
        for input in inputs {
            if case .tokens(let ids) = input {
                // Token files may hold longer rows than --context: cut them.
                let cut = ModelInput.tokens(Array(ids.prefix(options.context)))
                _ = try model.forward(cut, collectHidden: false, stats: stats)
                tokens += min(ids.count, options.context)
            } else {
                _ = try model.forward(input, collectHidden: false, stats: stats)
            }
        }
        var linears: [String: LinearSpec] = [:]
        for b in description.blocks {
            var all = b.attention.linears + (b.mlp?.linears ?? [])
            if let moe = b.moe { all += moe.linears }
            for l in all { linears[l.weightName] = l }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Calibration(options: options, stats: stats, sequences: inputs.count, tokens: tokens, seconds: seconds, linears: linears)
    }

    public func layer(_ name: String) -> CalibratedLayer? { lock.withLock { layers[name] } }
    public var quantizeSeconds: Double { lock.withLock { quantizeTime } }

    /// `tensor` quantized to `target` with the calibration method, or nil when this layer has
    /// no statistics or the method does not apply (the caller rounds to nearest).
    /// `modelName` is the tensor's name in the model's own naming; `transposed`: the tensor was
    /// turned from Conv1D [in, out] into [out, in] on the way to GGUF.
    func quantize(_ tensor: Tensor, modelName: String, target: DType, transposed: Bool, report: QuantizationReport) throws -> Tensor? {
        let method = Self.method(for: target, asked: options.method)
        guard method == "gptq", GPTQ.supports(target), let spec = linears[modelName] else { return nil }
        guard spec.layout == .linear || transposed, tensor.shape == [spec.outFeatures, spec.inFeatures] else { return nil }
        guard let g = stats.gram(modelName), let n = stats.inputTokens[modelName], n > 0 else { return nil }
        guard let w = try Cast.floats(tensor) else { return nil }
        let start = DispatchTime.now().uptimeNanoseconds
        let rows = spec.outFeatures, cols = spec.inFeatures
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
            layers[tensor.name] = CalibratedLayer(method: method, errorBefore: before, errorAfter: after)
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

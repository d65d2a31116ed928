// The public face of the reference forward pass: pick the architecture from the model config,
// load its weights as f32 (whatever their stored dtype), and run a sequence.

import CkptCore
import Foundation
import COpenBLAS
import Dispatch
import Quantize

public enum TransformerError: Error, Equatable, Sendable, CustomStringConvertible {
    case missingConfig(String)
    case unsupportedArchitecture(String)
    case invalidConfig(String)
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], actual: [Int])
    case unsupportedDType(tensor: String, dtype: DType)
    case tokenOutOfRange(position: Int, token: Int, vocab: Int)
    case sequenceTooLong(length: Int, max: Int)
    case badInput(String)
    /// A stored tensor no parameter slot accounts for (model type, layer count).
    case unusedTensor(String, modelType: String, layers: Int)
    case memory(String)
    /// A tensor's bytes could not be read when a streamed block needed them (the reason).
    case unreadableTensor(String, String)

    public var description: String {
        switch self {
        case .missingConfig(let m): return "no model config: \(m)"
        case .unsupportedArchitecture(let a): return "architecture \(a) is not supported by the forward pass (supported: \(Architectures.modelTypes.joined(separator: ", ")))"
        case .invalidConfig(let m): return "model config: \(m)"
        case .missingTensor(let t): return "tensor `\(t)`: required by the architecture but missing"
        case .shapeMismatch(let t, let e, let a): return "tensor `\(t)`: shape \(a) does not match the config, expected \(e)"
        case .unsupportedDType(let t, let d): return "tensor `\(t)`: dtype \(d) cannot be used by the forward pass"
        case .tokenOutOfRange(let p, let tok, let v): return "token \(tok) at position \(p) is outside the vocabulary (0..<\(v))"
        case .sequenceTooLong(let n, let m): return "sequence of \(n) tokens is longer than the model's \(m) positions"
        case .badInput(let m): return m
        case .unusedTensor(let t, let type, let layers):
            return "tensor `\(t)`: stored but not used by the \(type) architecture as configured (\(layers) layers); pass --allow-unused to run without it"
        case .memory(let m): return m
        case .unreadableTensor(let t, let why): return "tensor `\(t)`: cannot be read: \(why)"
        }
    }
}

/// What a model consumes: token ids, or (the seed encoder) d_model-wide vectors [T, C].
public enum ModelInput: Sendable {
    case tokens([Int])
    case vectors([Float], rows: Int)

    public var length: Int {
        switch self {
        case .tokens(let t): return t.count
        case .vectors(_, let rows): return rows
        }
    }
}

public struct ForwardOutput: Sendable {
    public enum Kind: String, Sendable { case logits, hiddenState = "hidden_state" }
    public var kind: Kind
    /// Row-major [rows, cols]: logits [T, V] or last hidden state [T, C].
    public var values: [Float]
    public var rows: Int
    public var cols: Int
    /// The input of each block, [T, C] each (when asked for): for per-layer drift.
    public var hiddenStates: [[Float]]
}

public protocol TransformerModel: Sendable {
    /// e.g. "GPT2LMHeadModel"
    var architecture: String { get }
    var outputKind: ForwardOutput.Kind { get }
    var layerCount: Int { get }
    /// Number of distinct token ids the model accepts (nil for vector input).
    var vocabSize: Int? { get }
    /// Floating-point operations for one sequence of `T` tokens (matrix products dominate).
    func flops(tokens T: Int) -> Double
    /// Runs one sequence. With `stats`, also accumulates activation statistics into it.
    /// - Parameters:
    ///   - input: Token ids (or, for the seed encoder, input vectors), at most the model's positions.
    ///   - collectHidden: Also return each block's input (for per-layer drift).
    ///   - stats: Accumulates activation statistics (for activation-aware pruning) when given.
    /// - Returns: Logits `[T, V]` for language models, the last hidden state `[T, C]` for encoders.
    /// - Throws: ``TransformerError`` for a token outside the vocabulary or a sequence too long.
    func forward(_ input: ModelInput, collectHidden: Bool, stats: ActivationStats?) throws -> ForwardOutput
    /// The output for the last position only ([1, V] or [1, C]), as llama.cpp computes a
    /// prompt's logits: every block still runs on all T positions (attention needs them),
    /// but the final norm and the head only on the last one. Equals the last row of `forward`.
    func forwardLastPosition(_ input: ModelInput) throws -> ForwardOutput
}

extension TransformerModel {
    public func forward(_ input: ModelInput, collectHidden: Bool) throws -> ForwardOutput {
        try forward(input, collectHidden: collectHidden, stats: nil)
    }

    /// Runs one sequence of token ids: `try model([15496, 995])` gives its logits (language
    /// models, `[T, V]`) or last hidden state (encoders, `[T, C]`).
    public func callAsFunction(_ tokens: [Int]) throws -> ForwardOutput {
        try forward(.tokens(tokens), collectHidden: false, stats: nil)
    }
}

public enum Transformers {
    /// Builds the forward pass for a checkpoint from its config, through the family registered
    /// for its `model_type` (Registry.swift).
    /// Every stored tensor must be read by the description (or be one of its known buffers),
    /// unless `allowUnused`: weights the config does not account for (more layers than it
    /// says, a head it does not know) are refused rather than silently dropped.
    /// - Parameters:
    ///   - graph: A checkpoint with a config (``Checkpoint/openModel(_:configPath:key:)`` in
    ///     Formats gives one); weights of any float or block type are widened to f32.
    ///   - allowUnused: Accept tensors the description does not read.
    /// - Returns: A model whose ``TransformerModel/forward(_:collectHidden:)`` runs sequences.
    /// - Throws: ``TransformerError`` when the config is missing or unsupported, or a tensor is
    ///   missing, unused or has the wrong shape.
    public static func load(_ graph: WeightGraph, allowUnused: Bool = false) throws -> any TransformerModel {
        let description = try describe(graph)
        try requireAllUsed(description, graph, allowUnused: allowUnused)
        _ = BLAS.core  // choose fast kernels before the first matrix product
        return try DescribedModel(description, weights: WeightStore(graph: graph))
    }

    /// Refuses a stored tensor the description does not read (or know as a buffer), unless
    /// `allowUnused`: shared by the in-memory and the streamed model.
    static func requireAllUsed(_ description: ModelDescription, _ graph: WeightGraph, allowUnused: Bool) throws {
        if !allowUnused, let name = description.unusedTensors(in: graph).first {
            throw TransformerError.unusedTensor(name, modelType: description.modelType, layers: description.blocks.count)
        }
    }

    /// The architecture description of a checkpoint: its blocks, parameter slots and prunable
    /// units, validated against the config and the tensors present. Reads no weights.
    /// The architecture description of a checkpoint (its family, shapes and tensor names), without
    /// loading any weights. Throws ``TransformerError`` as ``load(_:)`` does for the config.
    public static func describe(_ graph: WeightGraph) throws -> ModelDescription {
        guard let config = graph.config else {
            throw TransformerError.missingConfig("put a Hugging Face config.json beside the weights or pass --config")
        }
        guard let family = Architectures.family(for: config.modelType) else {
            throw TransformerError.unsupportedArchitecture(config.modelType ?? config.architecture ?? "(no model_type in config)")
        }
        let description = try family.describe(ConfigReader(config, graph: graph))
        try WeightStore(graph: graph).check(description.slots())
        return description
    }

    /// Sets the number of threads for matrix products (OpenBLAS's and the integer kernels').
    public static func setThreads(_ n: Int) {
        _ = BLAS.core
        openblas_set_num_threads(Int32(n))
        threads = max(1, n)
    }

    /// Threads the integer products use (`setThreads`; default: all cores).
    nonisolated(unsafe) public static var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Linear layers of the `integerProductTypes` multiply in integers, with the activations
    /// quantized to 8 bits per block of 32 as llama.cpp does (PackedLinear.swift), instead of
    /// widening the weights to f32. On by default; CKPT_F32_PRODUCTS=1 in the environment turns
    /// it off. Set it before loading a model, not while one runs.
    nonisolated(unsafe) public static var integerProducts = getenv("CKPT_F32_PRODUCTS").map { String(cString: $0) != "1" } ?? true

    /// The stored types an integer kernel multiplies (`IntegerProducts.kernelType`), for help
    /// texts and reports.
    public static var integerProductTypes: [DType] { DType.allCases.filter { IntegerProducts.kernelType($0) != nil } }
}

/// Access to a checkpoint's weights as f32, with shape checks against the config.
struct WeightStore: Sendable {
    let graph: WeightGraph
    /// Linear layers keep their stored dtype and widen a panel at a time (PackedLinear.swift).
    var packed = false
    /// A streamed block's weights: integer-product weights are read from the checkpoint
    /// for each product instead of copied (PackedWeights).
    var streamed = false

    func has(_ name: String) -> Bool { graph.tensor(named: name) != nil }

    /// Every required slot present, every present slot of the described shape: checked
    /// before any weight is read or any buffer sized.
    func check(_ slots: [ParamSlot]) throws {
        for s in slots {
            guard let t = graph.tensor(named: s.name) else {
                if s.required { throw TransformerError.missingTensor(s.name) }
                continue
            }
            guard t.shape == s.shape else { throw TransformerError.shapeMismatch(tensor: s.name, expected: s.shape, actual: t.shape) }
        }
    }

    /// `body`, with a failure to read `t`'s bytes (an I/O or decoding error of the format's
    /// reader) reported as `unreadableTensor`, so the message names the tensor.
    static func reading<R>(_ t: Tensor, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let e as TransformerError {
            throw e
        } catch {
            throw TransformerError.unreadableTensor(t.name, "\(error)")
        }
    }

    /// The tensor `name` as f32, checked to have `shape`.
    func floats(_ name: String, _ shape: [Int]) throws -> [Float] {
        guard let t = graph.tensor(named: name) else { throw TransformerError.missingTensor(name) }
        guard t.shape == shape else { throw TransformerError.shapeMismatch(tensor: name, expected: shape, actual: t.shape) }
        let values = try Self.reading(t) { try widen(t) }
        t.data.releaseResidentPages()  // widened: the mapped file's pages need not stay resident
        return values
    }

    /// A tensor's values as f32. Half-precision tensors are widened on every core (the
    /// conversion, not the file, bounds a streamed pass); others through Cast.
    func widen(_ t: Tensor) throws -> [Float] {
        let n = t.elementCount
        guard t.dtype == .bf16 || t.dtype == .f16, n >= 1 << 16 else {
            guard let values = try Cast.floats(t) else { throw TransformerError.unsupportedDType(tensor: t.name, dtype: t.dtype) }
            return values
        }
        let jobs = min(Quantizer.defaultJobs, 16), bf16 = t.dtype == .bf16
        return try [Float](unsafeUninitializedCapacity: n) { buffer, count in
            try t.data.withBytes { src in
                let dst = UnsafeMutableRawBufferPointer(buffer)
                // SAFETY: worker j converts values [lo, hi) only: disjoint parts of both buffers.
                nonisolated(unsafe) let (s, d) = (src, dst)
                DispatchQueue.concurrentPerform(iterations: jobs) { j in
                    let lo = n * j / jobs, hi = n * (j + 1) / jobs
                    FloatBits.convertToF32(UnsafeRawBufferPointer(rebasing: s[2 * lo..<2 * hi]),
                                           to: UnsafeMutableRawBufferPointer(rebasing: d[4 * lo..<4 * hi]), bf16: bf16)
                }
            }
            count = n
        }
    }

    func optionalFloats(_ name: String, _ shape: [Int]) throws -> [Float]? {
        has(name) ? try floats(name, shape) : nil
    }

}

func checkTokens(_ input: ModelInput, vocab: Int, maxPositions: Int?) throws -> [Int] {
    guard case .tokens(let ids) = input else { throw TransformerError.badInput("this model takes token ids, not vectors") }
    guard !ids.isEmpty else { throw TransformerError.badInput("empty token sequence") }
    if let maxPositions, ids.count > maxPositions { throw TransformerError.sequenceTooLong(length: ids.count, max: maxPositions) }
    for (p, id) in ids.enumerated() where id < 0 || id >= vocab {
        throw TransformerError.tokenOutOfRange(position: p, token: id, vocab: vocab)
    }
    return ids
}

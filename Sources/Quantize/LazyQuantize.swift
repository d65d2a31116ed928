// Tensors quantized when their bytes are read, so a writer streaming a checkpoint holds one
// tensor's values at a time; each one's error against the original is measured then.

import CkptCore
import Foundation

/// Collects per-tensor errors as lazily quantized tensors are produced.
public final class QuantizationReport: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [String: QuantizationError] = [:]
    /// false: skip the dequantize-and-compare pass (benchmarks of the quantizer alone).
    public let measures: Bool

    public init(measures: Bool = true) { self.measures = measures }

    private var seconds: Double = 0

    func record(_ name: String, _ e: QuantizationError) { lock.withLock { errors[name] = e } }
    func addTime(_ s: Double) { lock.withLock { seconds += s } }
    /// Wall-clock seconds spent in the quantization kernels (not reading, measuring or writing).
    public var quantizeSeconds: Double { lock.withLock { seconds } }
    public func error(for name: String) -> QuantizationError? { lock.withLock { errors[name] } }
}

final class LazyQuantizedBytes: ExternalBytes {
    let source: Tensor
    let target: DType
    let jobs: Int
    let report: QuantizationReport
    let count: Int

    init(source: Tensor, target: DType, jobs: Int, report: QuantizationReport) {
        self.source = source
        self.target = target
        self.jobs = jobs
        self.report = report
        self.count = target.byteCount(shape: source.shape) ?? 0
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        // Without error measurement, block types are quantized straight from the source
        // bytes (f32 read in place, f16/bf16 widened a slice at a time inside the kernel's
        // workers): no whole-tensor f32 copy.
        if !report.measures, target.isQuantized, [DType.f32, .f16, .bf16].contains(source.dtype) {
            let start = DispatchTime.now().uptimeNanoseconds
            let bytes = try source.data.withBytes { src in
                try Quantizer.quantize(bytes: src, dtype: source.dtype, rowLength: source.shape.last ?? 1, to: target,
                                       name: source.name, jobs: jobs)
            }
            report.addTime(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            source.data.releaseResidentPages()
            return try bytes.withUnsafeBytes(body)
        }
        guard let original = try Cast.floats(source) else { throw QuantizeError.notFloat(tensor: source.name, dtype: source.dtype) }
        source.data.releaseResidentPages()
        let bytes: [UInt8]
        let start = DispatchTime.now().uptimeNanoseconds
        defer { report.addTime(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        if target.isQuantized {
            bytes = try Quantizer.quantize(original, rowLength: source.shape.last ?? 1, to: target, name: source.name, jobs: jobs)
        } else {
            bytes = try Cast.cast(Tensor(name: source.name, dtype: .f32, shape: source.shape, data: .owned(original.withUnsafeBytes { Array($0) })), to: target).data.load()
        }
        if report.measures {
            let restored = try Cast.floats(Tensor(name: source.name, dtype: target, shape: source.shape, data: .owned(bytes))) ?? []
            report.record(source.name, QuantizationError.measure(original: original, reconstructed: restored))
        }
        return try bytes.withUnsafeBytes(body)
    }

    func releaseResidentPages() { source.data.releaseResidentPages() }
    var origin: String { "`\(source.name)` quantized to \(target)" }
}

extension Quantizer {
    /// `tensor` as `target` (a block type or f32/f16/bf16), computed when read; its error
    /// goes into `report`.
    public static func lazyQuantize(_ tensor: Tensor, to target: DType, jobs: Int = defaultJobs, report: QuantizationReport) throws -> Tensor {
        if case .block(let per, _) = target.layout, (tensor.shape.last ?? 0) % per != 0 || tensor.shape.isEmpty {
            throw QuantizeError.rowNotWholeBlocks(tensor: tensor.name, rowLength: tensor.shape.last ?? 0, dtype: target, blockValues: per)
        }
        return try Tensor(name: tensor.name, dtype: target, shape: tensor.shape,
                          data: .external(LazyQuantizedBytes(source: tensor, target: target, jobs: jobs, report: report)))
    }
}

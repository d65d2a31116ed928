// Casts between floating-point dtypes: f32/f64 <-> f16/bf16, round-to-nearest-even.
//
// This is the simplest "quantization": `ckpt convert --dtype bf16` halves a checkpoint.
// Only float tensors are cast; integer and bool tensors are kept as they are.

import CKernels
import CkptCore

public enum Cast {
    public static let supportedTargets: [DType] = [.f32, .f16, .bf16]

    /// Whether `cast(_:to:)` changes this tensor.
    public static func applies(to tensor: Tensor, target: DType) -> Bool {
        tensor.dtype != target && [.f64, .f32, .f16, .bf16].contains(tensor.dtype)
    }

    /// The tensor converted to `target` (f32, f16 or bf16). Reads the source bytes.
    public static func cast(_ tensor: Tensor, to target: DType) throws -> Tensor {
        precondition(supportedTargets.contains(target), "unsupported cast target \(target)")
        guard applies(to: tensor, target: target) else { return tensor }
        let n = tensor.elementCount
        let size = target == .f32 ? 4 : 2
        let out = try [UInt8](unsafeUninitializedCapacity: n * size) { buffer, count in
            try tensor.data.withBytes { src in convert(src, from: tensor.dtype, to: target, count: n, into: UnsafeMutableRawBufferPointer(buffer)) }
            count = n * size
        }
        return try Tensor(name: tensor.name, dtype: target, shape: tensor.shape, data: .owned(out))
    }

    /// Elements per block when a cast goes through f32 (f64 sources, f16 <-> bf16): 64 KiB
    /// of f32, so no whole-tensor intermediate exists.
    static let castBlock = 16_384

    /// `n` floats of `source` dtype in `src` written as `target` (f32, f16, bf16) into `dst`.
    /// Direct C kernels (SIMD where the CPU has it) for f32 -> f16/bf16, bf16 -> f16 and the
    /// widenings; other pairs widen a block at a time into f32 and narrow it. Every path
    /// rounds exactly as FloatBits does (tested against it).
    static func convert(_ src: UnsafeRawBufferPointer, from source: DType, to target: DType, count n: Int,
                        into dst: UnsafeMutableRawBufferPointer) {
        guard n > 0, let s = src.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let d = dst.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        // SAFETY: src holds n elements of `source`, dst n of `target` (sized by the callers).
        switch (source, target) {
        case (.f32, .f16): ck_f32_to_f16(s, n, d)
        case (.f32, .bf16): ck_f32_to_bf16(s, n, d)
        case (.bf16, .f16): ck_bf16_to_f16(s, n, d)
        case (_, .f32): decode(src, source, into: dst, count: n)
        default:
            let inSize = source.elementSize ?? 4, outSize = 2
            withUnsafeTemporaryAllocation(byteCount: castBlock * 4, alignment: 64) { block in
                var i = 0
                while i < n {
                    let m = min(castBlock, n - i)
                    decode(UnsafeRawBufferPointer(rebasing: src[(i * inSize)..<((i + m) * inSize)]), source,
                           into: block, count: m)
                    let b = UnsafeRawPointer(block.baseAddress!).assumingMemoryBound(to: UInt8.self)
                    if target == .f16 { ck_f32_to_f16(b, m, d + i * outSize) } else { ck_f32_to_bf16(b, m, d + i * outSize) }
                    i += m
                }
            }
        }
    }

    /// The tensor's values as f32 (f64 rounds to nearest even; f16/bf16 widen exactly; block
    /// types are dequantized exactly as ggml does). nil for integer and other dtypes.
    public static func floats(_ tensor: Tensor) throws -> [Float]? {
        if tensor.dtype.isQuantized {
            return try tensor.data.withBytes { try Quantizer.dequantize($0, dtype: tensor.dtype, count: tensor.elementCount) }
        }
        guard [.f64, .f32, .f16, .bf16].contains(tensor.dtype) else { return nil }
        let n = tensor.elementCount
        return try [Float](unsafeUninitializedCapacity: n) { buffer, count in
            try tensor.data.withBytes { src in decode(src, tensor.dtype, into: UnsafeMutableRawBufferPointer(buffer), count: n) }
            count = n
        }
    }

    /// Writes `n` f32 values (little-endian) decoded from `src` holding f64/f32/f16/bf16.
    static func decode(_ src: UnsafeRawBufferPointer, _ dtype: DType, into dst: UnsafeMutableRawBufferPointer, count n: Int) {
        switch dtype {
        case .f32: dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<n * 4]))
        case .f16, .bf16:
            // SAFETY: src holds n 16-bit values and dst n f32 (checked by the callers).
            precondition(src.count >= n * 2 && dst.count >= n * 4, "buffers sized by the caller")
            guard n > 0 else { return }
            let s = src.baseAddress!.assumingMemoryBound(to: UInt8.self), d = dst.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if dtype == .bf16 { ck_bf16_to_f32(s, n, d) } else { ck_f16_to_f32(s, n, d) }
        case .f64:
            for i in 0..<n {
                let d = Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
                dst.storeBytes(of: Float(d).bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
            }
        default: preconditionFailure("not a float dtype")
        }
    }
}

extension Cast {
    /// The tensor as `target`, converted only when its bytes are read. Writers stream such
    /// tensors one at a time, so casting a checkpoint needs memory for one tensor, not all.
    public static func lazyCast(_ tensor: Tensor, to target: DType) throws -> Tensor {
        precondition(supportedTargets.contains(target), "unsupported cast target \(target)")
        guard applies(to: tensor, target: target) else { return tensor }
        let bytes = LazyCastBytes(source: tensor, target: target)
        return try Tensor(name: tensor.name, dtype: target, shape: tensor.shape, data: .external(bytes))
    }
}

final class LazyCastBytes: ExternalBytes {
    let source: Tensor
    let target: DType
    let count: Int

    init(source: Tensor, target: DType) {
        self.source = source
        self.target = target
        self.count = target.byteCount(shape: source.shape) ?? 0
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        // One output buffer of the target's size; the cast streams through it in blocks.
        let converted = try Cast.cast(source, to: target)
        source.data.releaseResidentPages()
        return try converted.data.withBytes(body)
    }

    func releaseResidentPages() { source.data.releaseResidentPages() }

    var origin: String { "`\(source.name)` cast to \(target)" }
}

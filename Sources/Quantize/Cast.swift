// Casts between floating-point dtypes: f32/f64 <-> f16/bf16, round-to-nearest-even.
//
// This is the simplest "quantization": `ckpt convert --dtype bf16` halves a checkpoint.
// Only float tensors are cast; integer and bool tensors are kept as they are.

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
        let f32 = try toF32(tensor)
        let out: [UInt8]
        if target == .f32 {
            out = f32
        } else {
            var bytes = [UInt8](repeating: 0, count: n * 2)
            f32.withUnsafeBytes { src in
                bytes.withUnsafeMutableBytes { dst in FloatBits.convertF32(src, to: dst, bf16: target == .bf16) }
            }
            out = bytes
        }
        return try Tensor(name: tensor.name, dtype: target, shape: tensor.shape, data: .owned(out))
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

    /// Little-endian f32 bytes of a float tensor.
    static func toF32(_ tensor: Tensor) throws -> [UInt8] {
        let n = tensor.elementCount
        var out = [UInt8](repeating: 0, count: n * 4)
        try tensor.data.withBytes { src in
            out.withUnsafeMutableBytes { decode(src, tensor.dtype, into: $0, count: n) }
        }
        return out
    }

    /// Writes `n` f32 values (little-endian) decoded from `src` holding f64/f32/f16/bf16.
    static func decode(_ src: UnsafeRawBufferPointer, _ dtype: DType, into dst: UnsafeMutableRawBufferPointer, count n: Int) {
        switch dtype {
        case .f32: dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<n * 4]))
        case .f16, .bf16: FloatBits.convertToF32(UnsafeRawBufferPointer(rebasing: src[0..<n * 2]), to: dst, bf16: dtype == .bf16)
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
        let converted = try Cast.cast(source, to: target)
        source.data.releaseResidentPages()
        return try converted.data.withBytes(body)
    }

    func releaseResidentPages() { source.data.releaseResidentPages() }

    var origin: String { "`\(source.name)` cast to \(target)" }
}

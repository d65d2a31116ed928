// Casts between floating-point dtypes: f32/f64 <-> f16/bf16, round-to-nearest-even.
//
// This is the simplest "quantization": `ckpt convert --dtype bf16` halves a checkpoint.
// Float tensors are cast (8-bit floats widen exactly: every f8 value is an f16, bf16 and
// f32 value); integer and bool tensors are kept as they are unless the output format cannot
// hold them, when `castAny` turns them into the target float (bool 0/1, integers rounded
// to nearest, exact up to 2^24 in f32).

import CKernels
import CkptCore

public enum Cast {
    public static let supportedTargets: [DType] = [.f32, .f16, .bf16]

    /// Float dtypes `--dtype` casts.
    public static let floatSources: Set<DType> = [.f64, .f32, .f16, .bf16, .f8_e4m3, .f8_e5m2, .f8_e4m3fnuz, .f8_e5m2fnuz]
    /// Integer and bool dtypes that can be cast when the output cannot hold them.
    public static let integerSources: Set<DType> = [.bool, .u8, .i8, .u16, .i16, .u32, .i32, .u64, .i64]

    /// Whether `cast(_:to:)` changes this tensor.
    public static func applies(to tensor: Tensor, target: DType) -> Bool {
        tensor.dtype != target && floatSources.contains(tensor.dtype)
    }

    /// Whether the tensor can be cast to a float at all (floats, integers, bool).
    public static func canCast(_ dtype: DType) -> Bool { floatSources.contains(dtype) || integerSources.contains(dtype) }

    /// The tensor converted to `target` (f32, f16 or bf16). Reads the source bytes.
    /// `integers`: integer and bool tensors too (else they are returned as they are).
    public static func cast(_ tensor: Tensor, to target: DType, integers: Bool = false) throws -> Tensor {
        precondition(supportedTargets.contains(target), "unsupported cast target \(target)")
        guard applies(to: tensor, target: target) || (integers && integerSources.contains(tensor.dtype)) else { return tensor }
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

    /// The C casts' name for f32, f16 and bf16.
    static func ckFloat(_ dtype: DType) -> ck_float? {
        switch dtype {
        case .f32: return CK_F32
        case .f16: return CK_F16
        case .bf16: return CK_BF16
        default: return nil
        }
    }

    /// `n` floats of `source` dtype in `src` written as `target` (f32, f16, bf16) into `dst`.
    /// Direct C kernels (SIMD where the CPU has it) for f32 -> f16/bf16, bf16 -> f16 and the
    /// widenings; other pairs widen a block at a time into f32 and narrow it. Every path
    /// rounds exactly as FloatBits does (tested against it).
    static func convert(_ src: UnsafeRawBufferPointer, from source: DType, to target: DType, count n: Int,
                        into dst: UnsafeMutableRawBufferPointer) {
        guard n > 0, let s = src.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let d = dst.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        // SAFETY: src holds n elements of `source`, dst n of `target` (sized by the callers).
        if let from = ckFloat(source), let to = ckFloat(target), ck_cast(from, to, s, n, d) == 1 { return }
        switch target {
        case .f32: decode(src, source, into: dst, count: n)
        default:
            let inSize = source.elementSize ?? 4, outSize = 2
            withUnsafeTemporaryAllocation(byteCount: castBlock * 4, alignment: 64) { block in
                var i = 0
                while i < n {
                    let m = min(castBlock, n - i)
                    decode(UnsafeRawBufferPointer(rebasing: src[(i * inSize)..<((i + m) * inSize)]), source,
                           into: block, count: m)
                    let b = UnsafeRawPointer(block.baseAddress!).assumingMemoryBound(to: UInt8.self)
                    ck_cast(CK_F32, target == .f16 ? CK_F16 : CK_BF16, b, m, d + i * outSize)
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
        guard floatSources.contains(tensor.dtype) else { return nil }
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
            ck_cast(dtype == .bf16 ? CK_BF16 : CK_F16, CK_F32, s, n, d)
        case .f64:
            for i in 0..<n {
                let d = Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
                dst.storeBytes(of: Float(d).bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
            }
        case .f8_e4m3, .f8_e5m2, .f8_e4m3fnuz, .f8_e5m2fnuz:
            let table = F8.table(dtype)
            for i in 0..<n { dst.storeBytes(of: table[Int(src[i])].bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        case .bool, .u8:
            for i in 0..<n { dst.storeBytes(of: Float(src[i]).bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        case .i8:
            for i in 0..<n { dst.storeBytes(of: Float(Int8(bitPattern: src[i])).bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        case .u16: integers(src, UInt16.self, dst, n)
        case .i16: integers(src, Int16.self, dst, n)
        case .u32: integers(src, UInt32.self, dst, n)
        case .i32: integers(src, Int32.self, dst, n)
        case .u64: integers(src, UInt64.self, dst, n)
        case .i64: integers(src, Int64.self, dst, n)
        default: preconditionFailure("not a castable dtype")
        }
    }

    static func integers<T: FixedWidthInteger>(_ src: UnsafeRawBufferPointer, _: T.Type, _ dst: UnsafeMutableRawBufferPointer, _ n: Int) {
        for i in 0..<n {
            let v = T(littleEndian: src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
            dst.storeBytes(of: Float(v).bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
        }
    }
}

/// 8-bit floats: every code's exact value (the OCP FP8 formats, E4M3 "fn" without
/// infinities and E5M2 with them, and the FNUZ variants with one NaN at 0x80, no -0 and an
/// exponent bias one larger).
enum F8 {
    static let e4m3 = table(exponentBits: 4, bias: 7, fnuz: false)
    static let e5m2 = table(exponentBits: 5, bias: 15, fnuz: false)
    static let e4m3fnuz = table(exponentBits: 4, bias: 8, fnuz: true)
    static let e5m2fnuz = table(exponentBits: 5, bias: 16, fnuz: true)

    static func table(_ dtype: DType) -> [Float] {
        switch dtype {
        case .f8_e4m3: return e4m3
        case .f8_e5m2: return e5m2
        case .f8_e4m3fnuz: return e4m3fnuz
        default: return e5m2fnuz
        }
    }

    static func table(exponentBits e: Int, bias: Int, fnuz: Bool) -> [Float] {
        let m = 7 - e
        return (0..<256).map { code -> Float in
            let sign: Float = code & 0x80 != 0 ? -1 : 1
            let exponent = (code >> m) & ((1 << e) - 1)
            let mantissa = code & ((1 << m) - 1)
            if fnuz && code == 0x80 { return .nan }
            if !fnuz && e == 5 && exponent == 31 { return mantissa == 0 ? sign * .infinity : .nan }  // E5M2: IEEE specials
            if !fnuz && e == 4 && exponent == 15 && mantissa == 7 { return .nan }                     // E4M3fn: S.1111.111
            if exponent == 0 { return sign * Float(mantissa) * Float(sign: .plus, exponent: 1 - bias - m, significand: 1) }
            return sign * (1 + Float(mantissa) / Float(1 << m)) * Float(sign: .plus, exponent: exponent - bias, significand: 1)
        }
    }
}

extension Cast {
    /// The tensor as `target`, converted only when its bytes are read. Writers stream such
    /// tensors one at a time, so casting a checkpoint needs memory for one tensor, not all.
    public static func lazyCast(_ tensor: Tensor, to target: DType, integers: Bool = false) throws -> Tensor {
        precondition(supportedTargets.contains(target), "unsupported cast target \(target)")
        guard applies(to: tensor, target: target) || (integers && integerSources.contains(tensor.dtype)) else { return tensor }
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
        let converted = try Cast.cast(source, to: target, integers: true)
        source.data.releaseResidentPages()
        return try converted.data.withBytes(body)
    }

    func releaseResidentPages() { source.data.releaseResidentPages() }

    var origin: String { "`\(source.name)` cast to \(target)" }
}

// The C kernels (Sources/CKernels) against ckpt's Swift reference code: the same bytes on
// random values and on the edge cases (NaN, ±inf, ±0, all-zero blocks, subnormals, ties,
// huge and tiny magnitudes), with the SIMD paths on and off (CKPT_NO_SIMD's switch).

import CKernels
import CkptCore
import Foundation
@testable import Quantize
import Testing
import TestSupport

/// f32 values that exercise every branch: random normals at many scales, edge patterns,
/// all-zero and ±0 blocks, signed-max ties, blocks with NaN or inf among normal values.
func edgeFloats(blocks: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    var x = [Float]()
    let specials: [Float] = [0, -0.0, .nan, -.nan, .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNormalMagnitude,
                             .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 1e-39, 0.5, -0.5, 1.5, 2.5, 65504, 65520, 1e-8]
    for b in 0..<blocks {
        var block = (0..<32).map { _ in rng.nextGaussian() }
        let scale = Float(pow(2.0, Double(rng.next(below: 80)) - 40))
        block = block.map { $0 * scale }
        switch b % 12 {
        case 0: block = [Float](repeating: 0, count: 32)
        case 1: block = (0..<32).map { $0 % 3 == 0 ? -0.0 : 0 }
        case 2: block[rng.next(below: 32)] = specials[rng.next(below: specials.count)]
        case 3: block[5] = 3; block[9] = -3; block[20] = 3      // |max| ties, first wins
        case 4: block = block.map { ($0 * 4).rounded() / 2 + 0.25 }  // halves: rounding ties
        case 5: block = block.map { $0 * 1e-36 }                     // tiny scales
        case 6: block = block.map { $0 * 1e33 }                      // huge scales
        case 7: block[0] = -0.0; block[31] = 0                       // signed zeros as min/max
        case 8: block = (0..<32).map { Float($0) * 0.5 - 8 }; block[0] = 127   // d = 1: exact .5 ties
        case 9: block = (0..<32).map { Float($0 % 16) * 0.5 - 4 }; block[3] = -8  // q4_0 d = 1
        default: break
        }
        x += block
    }
    return x
}

@Suite struct QuantKernelTests {
    typealias Kernel = (UnsafePointer<Float>, UnsafeMutableRawPointer, Int) -> Void

    static var cases: [(String, Int, Kernel, Kernel)] {
        GGML.blockTypes.map { t in
            guard case .block(_, let size) = t.dtype.layout else { preconditionFailure() }
            return (t.dtype.rawValue, size, t.encode, t.encodeReference)
        }
    }

    @Test func everyGGMLBlockTypeIsListed() {
        // Every ggml 32-value block type (ckpt's own groups, i8_g32 etc., are not ggml's).
        let ggml32 = DType.allCases.filter { d in
            guard d.isQuantized, d.groupSize == nil, case .block(32, _) = d.layout else { return false }
            return true
        }
        #expect(GGML.blockTypes.map(\.dtype) == ggml32)
        #expect(ggml32 == [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1])
    }

    @Test(arguments: 0..<5)
    func simdKernelGivesTheReferenceBytes(which: Int) {
        let (name, size, kernel, reference) = Self.cases[which]
        for seed: UInt64 in [1, 2, 3] {
            let x = edgeFloats(blocks: 600, seed: seed)
            let blocks = x.count / 32
            func run(_ k: Kernel) -> [UInt8] {
                var y = [UInt8](repeating: 0xAA, count: blocks * size)
                x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBytes { k(xs.baseAddress!, $0.baseAddress!, blocks) } }
                return y
            }
            let expected = run(reference)
            let got = withBothPaths { run(kernel) }
            #expect(got.scalar == expected, "\(name): scalar dispatch differs")
            let firstBad = (0..<blocks).first { b in got.simd[(b * size)..<((b + 1) * size)] != expected[(b * size)..<((b + 1) * size)] }
            #expect(firstBad == nil, "\(name): SIMD block \(firstBad ?? -1) differs, input \(firstBad.map { Array(x[($0 * 32)..<($0 * 32 + 32)]) } ?? [])")
        }
    }
}

/// Super-blocks of 256 for the k-quant kernels: edgeFloats' 32-value blocks (every scale from
/// 2^-40 to 2^40, NaN, ±inf, ±0, ties) mixed inside super-blocks, plus whole super-blocks that
/// are zero, constant, one-signed, all-NaN, or with zero 16-value sub-blocks.
func kquantEdgeFloats(superBlocks: Int, seed: UInt64) -> [Float] {
    var x = edgeFloats(blocks: superBlocks * 8, seed: seed)
    var rng = SplitMix64(seed: seed &+ 1)
    for b in 0..<superBlocks {
        let s = 256 * b
        switch b % 10 {
        case 0: for i in 0..<256 { x[s + i] = 0 }
        case 1: for i in 0..<256 { x[s + i] = 0.5 }
        case 2: for i in 0..<256 { x[s + i] = abs(rng.nextGaussian()) }
        case 3: for i in 0..<256 { x[s + i] = -abs(rng.nextGaussian()) * 1e-3 }
        case 4: for i in 0..<256 { x[s + i] = rng.nextGaussian() }; for i in 0..<16 { x[s + 16 * rng.next(below: 16) + i] = 0 }
        case 5: for i in 0..<256 { x[s + i] = .nan }
        case 6: for i in 0..<256 { x[s + i] = rng.nextGaussian() * 0.02 }
        default: break
        }
    }
    return x
}

@Suite struct KQuantKernelTests {
    typealias Kernel = (UnsafePointer<Float>, UnsafeMutableRawPointer, Int) -> Void

    static var cases: [(String, Int, Kernel, Kernel)] { [
        ("q2_k", 84, KQuants.quantizeQ2K, KQuants.quantizeQ2KReference),
        ("q3_k", 110, KQuants.quantizeQ3K, KQuants.quantizeQ3KReference),
        ("q4_k", 144, { KQuants.quantizeQ45K(bits: 4, $0, $1, blocks: $2) }, { KQuants.quantizeQ45KReference(bits: 4, $0, $1, blocks: $2) }),
        ("q5_k", 176, { KQuants.quantizeQ45K(bits: 5, $0, $1, blocks: $2) }, { KQuants.quantizeQ45KReference(bits: 5, $0, $1, blocks: $2) }),
        ("q6_k", 210, KQuants.quantizeQ6K, KQuants.quantizeQ6KReference),
    ] }

    /// The AVX2 kernels (one sub-block per vector lane) give the Swift reference's bytes on
    /// every super-block, edge cases included; with SIMD off the dispatch runs the reference.
    @Test(arguments: 0..<5)
    func simdKernelGivesTheReferenceBytes(which: Int) {
        let (name, size, kernel, reference) = Self.cases[which]
        for seed: UInt64 in [1, 2] {
            let x = kquantEdgeFloats(superBlocks: 120, seed: seed)
            let blocks = x.count / 256
            func run(_ k: Kernel) -> [UInt8] {
                var y = [UInt8](repeating: 0xAA, count: blocks * size)
                x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBytes { k(xs.baseAddress!, $0.baseAddress!, blocks) } }
                return y
            }
            let expected = run(reference)
            let got = withBothPaths { run(kernel) }
            #expect(got.scalar == expected, "\(name): scalar dispatch differs")
            let firstBad = (0..<blocks).first { b in got.simd[(b * size)..<((b + 1) * size)] != expected[(b * size)..<((b + 1) * size)] }
            #expect(firstBad == nil, "\(name): SIMD super-block \(firstBad ?? -1) differs")
        }
    }
}

@Suite struct CastKernelTests {
    /// Every 16-bit pattern and a spread of f32 patterns (NaNs with and without payload,
    /// subnormals, rounding ties, overflow to inf).
    static let f32Patterns: [UInt32] = {
        var rng = SplitMix64(seed: 7)
        var v: [UInt32] = [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001, 0xFF80_2000, 0x7F80_1FFF,
                           0x0000_0001, 0x8000_0001, 0x3380_0000, 0x3380_0001, 0x477F_F000, 0x477F_EFFF, 0x7F7F_FFFF,
                           0x3F80_8000, 0x3F81_8000, 0x3F80_1000, 0x3F80_3000, 0x7F7F_8000]
        for _ in 0..<50_000 { v.append(UInt32(truncatingIfNeeded: rng.next())) }
        for _ in 0..<50_000 { v.append(UInt32(truncatingIfNeeded: rng.next()) & 0x87FF_FFFF | 0x3800_0000) }  // near f16 range
        return v
    }()
    static let halfPatterns: [UInt16] = (0...0xFFFF).map { UInt16($0) }

    func bytes<T>(_ a: [T]) -> [UInt8] { a.withUnsafeBytes { Array($0) } }

    func run(_ src: [UInt8], count: Int, outSize: Int, _ f: (UnsafePointer<UInt8>, Int, UnsafeMutablePointer<UInt8>) -> Void) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count * outSize)
        src.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { f(s.baseAddress!, count, $0.baseAddress!) } }
        return out
    }

    /// ck_cast for one pair, which must be one it supports.
    func cast(_ from: ck_float, _ to: ck_float) -> (UnsafePointer<UInt8>, Int, UnsafeMutablePointer<UInt8>) -> Void {
        { #expect(ck_cast(from, to, $0, $1, $2) == 1) }
    }

    @Test func unsupportedCastPairsWriteNothing() {
        let src = [UInt8](repeating: 0x3C, count: 64)
        for (from, to) in [(CK_F32, CK_F32), (CK_F16, CK_F16), (CK_BF16, CK_BF16), (CK_F16, CK_BF16)] {
            let out = run(src, count: 16, outSize: 4) { #expect(ck_cast(from, to, $0, $1, $2) == 0) }
            #expect(out == [UInt8](repeating: 0, count: 64))
        }
    }

    @Test func narrowingMatchesFloatBits() {
        let p = Self.f32Patterns, src = bytes(p)
        let f16 = bytes(p.map { FloatBits.f32ToF16($0).littleEndian })
        let bf16 = bytes(p.map { FloatBits.f32ToBF16($0).littleEndian })
        let a = withBothPaths { run(src, count: p.count, outSize: 2, cast(CK_F32, CK_F16)) }
        #expect(a.scalar == f16 && a.simd == f16)
        let b = withBothPaths { run(src, count: p.count, outSize: 2, cast(CK_F32, CK_BF16)) }
        #expect(b.scalar == bf16 && b.simd == bf16)
    }

    @Test func sixteenBitCastsMatchFloatBitsOnEveryPattern() {
        let h = Self.halfPatterns, src = bytes(h)
        let bf16ToF16 = bytes(h.map { FloatBits.f32ToF16(FloatBits.bf16ToF32($0)).littleEndian })
        let f16ToF32 = bytes(h.map { FloatBits.f16ToF32($0).littleEndian })
        let bf16ToF32 = bytes(h.map { FloatBits.bf16ToF32($0).littleEndian })
        let a = withBothPaths { run(src, count: h.count, outSize: 2, cast(CK_BF16, CK_F16)) }
        #expect(a.scalar == bf16ToF16 && a.simd == bf16ToF16)
        let b = withBothPaths { run(src, count: h.count, outSize: 4, cast(CK_F16, CK_F32)) }
        #expect(b.scalar == f16ToF32 && b.simd == f16ToF32)
        let c = withBothPaths { run(src, count: h.count, outSize: 4, cast(CK_BF16, CK_F32)) }
        #expect(c.scalar == bf16ToF32 && c.simd == bf16ToF32)
    }

    /// The streaming cast (blocks through f32 where no direct kernel exists) gives what the
    /// element-wise FloatBits conversions give, for every source/target pair.
    @Test(arguments: [DType.f64, .f32, .f16, .bf16], [DType.f32, .f16, .bf16])
    func castOfATensorMatchesElementWise(source: DType, target: DType) throws {
        var rng = SplitMix64(seed: 11)
        let n = Cast.castBlock * 2 + 37
        let specials: [Double] = [.nan, .infinity, -0.0, 1e-40, 7e4]
        var values: [Double] = []
        for i in 0..<n {
            let scale: Double = pow(2, Double(i % 40) - 20)
            values.append(i % 97 == 0 ? specials[i / 97 % 5] : Double(rng.nextGaussian()) * scale)
        }
        var src: [UInt8] = []
        for v in values {
            switch source {
            case .f64: withUnsafeBytes(of: v.bitPattern.littleEndian) { src += $0 }
            case .f32: withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { src += $0 }
            case .f16: withUnsafeBytes(of: FloatBits.f32ToF16(Float(v).bitPattern).littleEndian) { src += $0 }
            default: withUnsafeBytes(of: FloatBits.f32ToBF16(Float(v).bitPattern).littleEndian) { src += $0 }
            }
        }
        let t = try Tensor(name: "t", dtype: source, shape: [n], data: .owned(src))
        let got = try Cast.cast(t, to: target).data.load()
        // Expected: decode to f32 element-wise, then narrow element-wise.
        let f32: [UInt32] = (0..<n).map { i in
            src.withUnsafeBytes { b in
                switch source {
                case .f64: return Float(Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))).bitPattern
                case .f32: return UInt32(littleEndian: b.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                case .f16: return FloatBits.f16ToF32(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                default: return FloatBits.bf16ToF32(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                }
            }
        }
        let expected: [UInt8]
        switch target {
        case .f32: expected = source == .f32 ? src : bytes(f32.map { $0.littleEndian })
        case .f16: expected = source == .f16 ? src : bytes(f32.map { FloatBits.f32ToF16($0).littleEndian })
        default: expected = source == .bf16 ? src : bytes(f32.map { FloatBits.f32ToBF16($0).littleEndian })
        }
        #expect(got == expected)
    }
}

@Suite struct StreamingQuantizeTests {
    /// Quantizing raw f32/f16/bf16 bytes (in place, unaligned, or widened a slice at a time)
    /// gives the bytes of quantizing the tensor's f32 values.
    @Test(arguments: [DType.f32, .f16, .bf16], [DType.q8_0, .q4_0, .q4_k, .i4_g32])
    func quantizingSourceBytesEqualsQuantizingFloats(source: DType, target: DType) throws {
        let x = edgeFloats(blocks: 1024, seed: 9).map { $0.isFinite ? $0 : 1 }  // 32,768 values: several slices
        var raw: [UInt8] = []
        for v in x {
            switch source {
            case .f32: withUnsafeBytes(of: v.bitPattern.littleEndian) { raw += $0 }
            case .f16: withUnsafeBytes(of: FloatBits.f32ToF16(v.bitPattern).littleEndian) { raw += $0 }
            default: withUnsafeBytes(of: FloatBits.f32ToBF16(v.bitPattern).littleEndian) { raw += $0 }
            }
        }
        let t = try Tensor(name: "t", dtype: source, shape: [x.count / 256, 256], data: .owned(raw))
        let expected = try Quantizer.quantize(try Cast.floats(t)!, rowLength: 256, to: target, jobs: 1)
        for jobs in [1, 3] {
            let got = try raw.withUnsafeBytes { try Quantizer.quantize(bytes: $0, dtype: source, rowLength: 256, to: target, jobs: jobs) }
            #expect(got == expected)
        }
        // Unaligned f32 source: copied a slice at a time.
        let shifted = [0] + raw
        let got = try shifted.withUnsafeBytes {
            try Quantizer.quantize(bytes: UnsafeRawBufferPointer(rebasing: $0[1...]), dtype: source, rowLength: 256, to: target, jobs: 2)
        }
        #expect(got == expected)
    }
}

// k-quants: gguf-py can dequantize but not quantize them, so the reference is ggml's own
// algorithm. Checked here: gguf-py's dequantizer reads ckpt's bytes to exactly ckpt's values,
// the round-trip error on Gaussian rows is at or below the documented figures for the
// reference algorithm, and (when CKPT_GGML_REF points at bench/ggml_ref's harness built from
// ggml's C sources without FMA contraction) the bytes equal ggml's `quantize_row_*_ref`.

import CkptCore
import Foundation
@testable import Quantize
import Testing
import TestSupport

/// Deterministic standard-normal rows (Box-Muller on a SplitMix64 stream).
func gaussianRows(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed
    func next() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Double(z >> 11) + 0.5) / Double(1 << 53)
    }
    return (0..<count).map { _ in Float((-2 * log(next())).squareRoot() * cos(2 * Double.pi * next())) }
}

@Suite struct KQuantTests {
    static let types: [DType] = [.q2_k, .q3_k, .q4_k, .q5_k, .q6_k]

    @Test(arguments: types)
    func ggufPyDequantizesOurBytesToOurValues(_ type: DType) throws {
        var x = gaussianRows(256 * 64, seed: 42)
        // A few scaled and degenerate super-blocks too.
        for i in 0..<256 { x[i] *= 1e-3; x[256 + i] = 0; x[512 + i] = abs(x[512 + i]); x[768 + i] = 0.5 }
        let bytes = try Quantizer.quantize(x, rowLength: 1024, to: type)
        let ours = try bytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: type, count: x.count) }
        let theirs = try ggufDequantize(bytes, type: type)
        #expect(bitsEqual(ours, theirs) == nil, "\(type): first differing value at \(bitsEqual(ours, theirs) ?? 0)")
    }

    /// Relative RMSE of ggml's C reference (`quantize_row_*_ref`, built by bench/ggml_ref
    /// without FMA contraction) on these 65,536 standard-normal values, rounded up in the
    /// fourth digit. The bound allows 0.5 % on top. (FACTS.md's figures on real weights:
    /// q4_k 7.2 %, q6_k 1.8 %.)
    static let referenceRelativeRMSE: [DType: Double] = [
        .q2_k: 0.2988, .q3_k: 0.1519, .q4_k: 0.0715, .q5_k: 0.0362, .q6_k: 0.01787,
    ]

    @Test(arguments: types)
    func errorMatchesTheReferenceAlgorithm(_ type: DType) throws {
        let x = gaussianRows(256 * 256, seed: 7)
        let bytes = try Quantizer.quantize(x, rowLength: 4096, to: type)
        let y = try bytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: type, count: x.count) }
        let e = QuantizationError.measure(original: x, reconstructed: y)
        print("\(type): relative RMSE \(e.relativeRMSE), SQNR \(e.sqnrDB) dB")
        #expect(e.relativeRMSE <= Self.referenceRelativeRMSE[type]! * 1.005)
    }

    @Test(arguments: types)
    func bytesEqualGGMLsCReference(_ type: DType) throws {
        guard let ref = ProcessInfo.processInfo.environment["CKPT_GGML_REF"] else { return }
        let dir = TempDir()
        var x = gaussianRows(256 * 512, seed: 99)
        for i in stride(from: 0, to: x.count, by: 7) { x[i] *= 4 }
        try writeFile(dir.file("x.f32"), x.withUnsafeBytes { Array($0) })
        let r = try runProcess(ref, [type.rawValue, dir.file("x.f32"), dir.file("y.bin")])
        #expect(r.status == 0, "\(r.stderr)")
        let theirs = try readFile(dir.file("y.bin"))
        let ours = try Quantizer.quantize(x, rowLength: 256, to: type)
        guard case .block(_, let size) = type.layout else { return }
        let differing = stride(from: 0, to: ours.count, by: size).filter { ours[$0..<$0 + size] != theirs[$0..<$0 + size] }
        print("\(type): \(differing.count) of \(ours.count / size) super-blocks differ from ggml's C reference")
        #expect(differing.isEmpty)
    }
}

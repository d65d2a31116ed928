// Integer products of Q8_0 weights (PackedLinear.swift, CKernels/dot.c): every kernel path
// gives the same bits, and the result is the f32 product up to the rounding of the
// activations to 8 bits, within a bound computed per output from that rounding.

import CkptCore
import Foundation
import Quantize
import Testing
@testable import Transformer

@Suite(.serialized) struct IntegerProductTests {
    /// A Q8_0 weight [OC, C] and its widened values.
    func weights(_ OC: Int, _ C: Int, seed: UInt64) throws -> (PackedWeights, [Float]) {
        var w = randomFloats(OC * C, seed: seed)
        for i in stride(from: 0, to: w.count, by: 97) { w[i] *= 8 }  // a few larger weights per row
        let src = try Tensor(name: "w", dtype: .f32, shape: [OC, C], data: .owned(w.withUnsafeBytes { Array($0) }))
        let t = try Quantizer.quantize(src, to: .q8_0).tensor
        return (try #require(try PackedWeights(t)), try #require(try Cast.floats(t)))
    }

    /// Every path of the kernel (AVX-512 VNNI, AVX2, scalar; those this CPU has) gives the
    /// same bits, on shapes with partial tiles: 37 rows (not a multiple of 4), 3 blocks per
    /// row (an odd count: a padded pair), 6 tokens (not a multiple of 4).
    @Test func everyPathGivesTheSameBits() throws {
        let OC = 37, C = 96, T = 6
        let (packed, _) = try weights(OC, C, seed: 11)
        let x = randomFloats(T * C, seed: 12), bias = randomFloats(OC, seed: 13)
        defer { unsetenv("CKPT_Q8_PATH") }
        unsetenv("CKPT_Q8_PATH")
        let best = packed.multiply(x, T: T, bias: bias, integer: true)
        setenv("CKPT_Q8_PATH", "avx2", 1)
        let avx2 = packed.multiply(x, T: T, bias: bias, integer: true)
        setenv("CKPT_Q8_PATH", "scalar", 1)
        let scalar = packed.multiply(x, T: T, bias: bias, integer: true)
        #expect(best == scalar)
        #expect(avx2 == scalar)
        // The threads split the rows differently; each output is computed the same way.
        unsetenv("CKPT_Q8_PATH")
        let threads = Transformers.threads
        defer { Transformers.threads = threads }
        Transformers.threads = 1
        #expect(packed.multiply(x, T: T, bias: bias, integer: true) == best)
        Transformers.threads = 3
        #expect(packed.multiply(x, T: T, bias: bias, integer: true) == best)
    }

    /// The product equals Σ_i w_i·x_i up to the activations' rounding: with x quantized per
    /// block of 32 to a step of d = max|x|/127, each x_i moves by at most d/2, so output (t, r)
    /// moves by at most Σ_i |w_ri|·d(t, block of i)/2 (plus f32 summation, 1e-5 of Σ|w·x|).
    /// And, measured: the error is a small fraction of that worst case.
    @Test func equalsTheF32ProductUpToTheActivationsRounding() throws {
        let OC = 64, C = 256, T = 9
        let (packed, w) = try weights(OC, C, seed: 21)
        let x = randomFloats(T * C, seed: 22)
        let got = packed.multiply(x, T: T, bias: nil, integer: true)
        let exactF32 = packed.multiply(x, T: T, bias: nil, integer: false)
        var sumSquares = 0.0, sumSquaredErrors = 0.0
        for t in 0..<T {
            for r in 0..<OC {
                var want = 0.0, bound = 0.0, magnitude = 0.0
                for b in 0..<C / 32 {
                    let block = x[t * C + 32 * b..<t * C + 32 * b + 32]
                    let step = Double(block.map { abs($0) }.max()!) / 127
                    for i in 32 * b..<32 * b + 32 {
                        want += Double(w[r * C + i]) * Double(x[t * C + i])
                        bound += abs(Double(w[r * C + i])) * step / 2
                        magnitude += abs(Double(w[r * C + i]) * Double(x[t * C + i]))
                    }
                }
                let err = abs(Double(got[t * OC + r]) - want)
                #expect(err <= bound + 1e-5 * magnitude, "output (\(t), \(r)): error \(err) over the bound \(bound)")
                #expect(abs(Double(exactF32[t * OC + r]) - want) <= 1e-5 * magnitude)
                sumSquares += want * want
                sumSquaredErrors += err * err
            }
        }
        // Rounding errors of independent values mostly cancel: the relative RMS error here
        // is ~0.3 %, far below the worst case; a wrong scale or block would be ~100 %.
        let relRMS = (sumSquaredErrors / sumSquares).squareRoot()
        #expect(relRMS < 0.01, "relative RMS error \(relRMS)")
    }

    /// Non-finite activations give NaN in every output they enter, not a silent zero.
    @Test func nonFiniteInputsGiveNaN() throws {
        let OC = 8, C = 64, T = 2
        let (packed, _) = try weights(OC, C, seed: 31)
        var x = randomFloats(T * C, seed: 32)
        x[C + 40] = .infinity                                     // token 1, second block
        let y = packed.multiply(x, T: T, bias: nil, integer: true)
        #expect(y[0..<OC].allSatisfy { $0.isFinite })
        #expect(y[OC..<2 * OC].allSatisfy { $0.isNaN })
    }

    /// With integer products off, a Q8_0 layer is the widened f32 product (panels).
    @Test func offMeansTheWidenedProduct() throws {
        let OC = 12, C = 64, T = 3
        let (packed, w) = try weights(OC, C, seed: 41)
        let x = randomFloats(T * C, seed: 42)
        let want = Kernels.linear(x, T: T, Matrix(data: w, inFeatures: C, outFeatures: OC, layout: .outIn), bias: nil)
        #expect(packed.multiply(x, T: T, bias: nil, integer: false) == want)
        #expect(packed.multiply(x, T: T, bias: nil, integer: true) != want)
    }
}

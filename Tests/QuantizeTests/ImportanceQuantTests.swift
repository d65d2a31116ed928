// Importance-weighted quantization against llama.cpp: fixtures/imatrix/<type>.bin are the bytes
// of libggml's `ggml_quantize_chunk(type, W, imatrix)` (llama.cpp built from source, called by
// tools/make_imatrix_fixtures.py) for the committed W and importance vector. Rows include an
// all-positive row, an all-zero super-block and a constant block.

import CkptCore
import Foundation
@testable import Quantize
import Testing
import TestSupport

@Suite struct ImportanceQuantTests {
    static let rows = 8, cols = 512

    static func floats(_ name: String) throws -> [Float] {
        let b = try readFile(Repo.fixture("imatrix/" + name))
        return b.withUnsafeBytes { raw in (0..<b.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
    }

    static let weighted: [DType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k]

    @Test(arguments: weighted)
    func bytesEqualLlamaCpp(_ type: DType) throws {
        let w = try Self.floats("weights.f32"), q = try Self.floats("importance.f32")
        #expect(w.count == Self.rows * Self.cols && q.count == Self.cols)
        let ours = try w.withUnsafeBufferPointer { try ImportanceQuants.quantize($0, rowLength: Self.cols, importance: q, to: type, jobs: 1) }
        let theirs = try readFile(Repo.fixture("imatrix/\(type.rawValue).bin"))
        #expect(ours.count == theirs.count)
        let first = zip(ours, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(first == nil, "\(type): first differing byte \(first ?? -1) of \(ours.count)")
        // The importance changes the result (the check above is not RTN against RTN).
        let rtn = try Quantizer.quantize(w, rowLength: Self.cols, to: type, jobs: 1)
        #expect(rtn != theirs, "\(type): llama.cpp's imatrix bytes equal round-to-nearest")
        // Any number of workers gives the same bytes.
        let parallel = try w.withUnsafeBufferPointer { try ImportanceQuants.quantize($0, rowLength: Self.cols, importance: q, to: type, jobs: 4) }
        #expect(parallel == ours)
    }

    /// llama.cpp's q8_0 ignores the importance: its bytes are round-to-nearest.
    @Test func q8_0IgnoresTheImportanceAsLlamaCppDoes() throws {
        let w = try Self.floats("weights.f32")
        #expect(!ImportanceQuants.supports(.q8_0))
        #expect(try Quantizer.quantize(w, rowLength: Self.cols, to: .q8_0, jobs: 1) == readFile(Repo.fixture("imatrix/q8_0.bin")))
    }

    /// The weighted search lowers the importance-weighted error Σ_j q_j·(w − ŵ)² (the quantity
    /// the imatrix stands for: the layer's output error on inputs with those second moments).
    @Test(arguments: weighted)
    func weightedErrorIsLowerThanRoundToNearest(_ type: DType) throws {
        let n = 16 * 1024
        let w = gaussianRows(n, seed: 7)
        let raw = gaussianRows(1024, seed: 8)
        let q = raw.map { exp(1.5 * $0) }
        func err(_ bytes: [UInt8]) throws -> Double {
            let v = try bytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: type, count: n) }
            var s = 0.0
            for i in 0..<n { let d = Double(v[i] - w[i]); s += Double(q[i % 1024]) * d * d }
            return s
        }
        let weighted = try err(w.withUnsafeBufferPointer { try ImportanceQuants.quantize($0, rowLength: 1024, importance: q, to: type) })
        let rtn = try err(Quantizer.quantize(w, rowLength: 1024, to: type))
        #expect(weighted < 0.97 * rtn, "\(type): weighted error \(weighted) vs round-to-nearest \(rtn)")
    }

    @Test func badShapesAreErrors() {
        let w = [Float](repeating: 1, count: 64)
        #expect(throws: QuantizeError.self) { try w.withUnsafeBufferPointer { try ImportanceQuants.quantize($0, rowLength: 64, importance: [1], to: .q4_0) } }
        #expect(throws: QuantizeError.self) { try w.withUnsafeBufferPointer { try ImportanceQuants.quantize($0, rowLength: 64, importance: .init(repeating: 1, count: 64), to: .q8_0) } }
        #expect(throws: QuantizeError.self) { try w.withUnsafeBufferPointer { try ImportanceQuants.quantize($0, rowLength: 64, importance: .init(repeating: 1, count: 64), to: .q4_k) } }
    }
}

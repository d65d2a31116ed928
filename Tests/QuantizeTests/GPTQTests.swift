// GPTQ against tools/gptq_reference.py, an independent float64 NumPy version of the same
// algorithm on the same grids (run with the test venv's Python), on a fixture layer with
// correlated inputs and a dead input column.

import CkptCore
import Foundation
@testable import Quantize
import Testing
import TestSupport

/// A deterministic layer: W [rows, cols] and H = 2/N·XᵀX of inputs with correlated channels
/// (a few shared factors plus noise, uneven channel scales) and column 5 never active.
enum GPTQFixture {
    static let rows = 24, cols = 256, tokens = 600

    static func make(rows: Int = rows, cols: Int = cols) -> (w: [Float], h: [Double], x: [Double]) {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Double {  // splitmix64 -> uniform in (-1, 1)
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Double(z >> 11) / Double(1 << 52) - 1
        }
        var w = [Float](repeating: 0, count: rows * cols)
        for i in w.indices { w[i] = Float(next() * 0.1 + (i % 17 == 0 ? next() * 0.3 : 0)) }
        let factors = 6
        var mix = [Double](repeating: 0, count: factors * cols)
        for i in mix.indices { mix[i] = next() }
        var x = [Double](repeating: 0, count: tokens * cols)
        for t in 0..<tokens {
            var f = [Double](repeating: 0, count: factors)
            for k in 0..<factors { f[k] = next() * 2 }
            for j in 0..<cols {
                var v = 0.3 * next()
                for k in 0..<factors { v += f[k] * mix[k * cols + j] }
                x[t * cols + j] = j == 5 ? 0 : v * (1 + Double(j % 7))
            }
        }
        var h = [Double](repeating: 0, count: cols * cols)
        for t in 0..<tokens {
            for i in 0..<cols {
                let a = x[t * cols + i]
                if a == 0 { continue }
                for j in 0..<cols { h[i * cols + j] += 2 * a * x[t * cols + j] / Double(tokens) }
            }
        }
        return (w, h, x)
    }

    static let layer = make()
    /// Two super-blocks per row, for the k-quants.
    static let kRows = 16, kCols = 512
    static let kLayer = make(rows: kRows, cols: kCols)
}

/// The NumPy reference on a k-quant grid with the frozen headers of `headers`: its blocks, and
/// the weights at each super-block's start.
func referenceKQuantGPTQ(_ w: [Float], _ h: [Double], rows: Int, cols: Int, dtype: DType, actOrder: Bool,
                         headers: [UInt8]) throws -> (bytes: [UInt8], starts: [Float]) {
    let dir = TempDir()
    try writeFile(dir.file("w.f32"), w.withUnsafeBytes { Array($0) })
    try writeFile(dir.file("h.f64"), h.withUnsafeBytes { Array($0) })
    try writeFile(dir.file("headers.bin"), headers)
    let script = Repo.root.appendingPathComponent("tools/gptq_reference.py").path
    let r = try runProcess(Python.path, [script, dir.file("w.f32"), dir.file("h.f64"), "\(rows)", "\(cols)", dtype.rawValue,
                                         actOrder ? "1" : "0", dir.file("out.bin"), dir.file("headers.bin"), dir.file("starts.f32")])
    guard r.status == 0 else { throw SupportError("gptq_reference.py failed: \(r.stderr)") }
    let starts = try readFile(dir.file("starts.f32")).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    return (try readFile(dir.file("out.bin")), starts)
}

/// The byte ranges of a k-quant block that hold its scales (everything but the values).
func kquantHeader(_ dtype: DType) -> [Range<Int>] {
    switch dtype {
    case .q2_k: return [0..<16, 80..<84]
    case .q3_k: return [96..<110]
    case .q6_k: return [192..<210]
    default: return [0..<16]
    }
}

func referenceGPTQ(_ w: [Float], _ h: [Double], rows: Int, cols: Int, dtype: DType, actOrder: Bool) throws -> [UInt8] {
    let dir = TempDir()
    try writeFile(dir.file("w.f32"), w.withUnsafeBytes { Array($0) })
    try writeFile(dir.file("h.f64"), h.withUnsafeBytes { Array($0) })
    let script = Repo.root.appendingPathComponent("tools/gptq_reference.py").path
    let r = try runProcess(Python.path, [script, dir.file("w.f32"), dir.file("h.f64"), "\(rows)", "\(cols)", dtype.rawValue,
                                         actOrder ? "1" : "0", dir.file("out.bin")])
    guard r.status == 0 else { throw SupportError("gptq_reference.py failed: \(r.stderr)") }
    return try readFile(dir.file("out.bin"))
}

/// ‖(W − Ŵ)X‖ / ‖WX‖ over the fixture's inputs.
func outputError(_ w: [Float], _ q: [Float], _ x: [Double], rows: Int, cols: Int, tokens: Int) -> Double {
    var num = 0.0, den = 0.0
    for t in 0..<tokens {
        for r in 0..<rows {
            var a = 0.0, b = 0.0
            for j in 0..<cols {
                a += Double(w[r * cols + j]) * x[t * cols + j]
                b += Double(q[r * cols + j]) * x[t * cols + j]
            }
            num += (a - b) * (a - b)
            den += a * a
        }
    }
    return (num / den).squareRoot()
}

@Suite struct GPTQTests {
    static let cases: [(DType, Bool)] = [
        (.q4_0, false), (.q4_1, false), (.q5_0, false), (.q5_1, false), (.q8_0, false),
        (DType(rawValue: "i4_g64")!, false), (DType(rawValue: "u4_g32")!, false), (DType(rawValue: "i8_g256")!, false),
        (.q4_0, true), (.q4_1, true),
    ]

    @Test(arguments: cases)
    func bytesEqualNumPyReference(_ dtype: DType, _ actOrder: Bool) throws {
        let (w, h, x) = GPTQFixture.layer
        let (rows, cols) = (GPTQFixture.rows, GPTQFixture.cols)
        let ours = try GPTQ.quantize(weight: w, rows: rows, cols: cols, hessian: h, to: dtype, options: GPTQOptions(actOrder: actOrder))
        let reference = try referenceGPTQ(w, h, rows: rows, cols: cols, dtype: dtype, actOrder: actOrder)
        #expect(ours.bytes.count == reference.count)
        print("GPTQ \(dtype) act order \(actOrder): bytes \(ours.bytes == reference ? "identical to" : "differ from") the NumPy reference")
        if ours.bytes != reference {
            // Ties may round differently between the two: then the errors must agree to 1e-6.
            let refValues = try reference.withUnsafeBytes { try Quantizer.dequantize($0, dtype: dtype, count: w.count) }
            let a = outputError(w, ours.values, x, rows: rows, cols: cols, tokens: GPTQFixture.tokens)
            let b = outputError(w, refValues, x, rows: rows, cols: cols, tokens: GPTQFixture.tokens)
            #expect(abs(a - b) <= 1e-6, "\(dtype) act order \(actOrder): bytes differ and errors \(a) vs \(b)")
        }
    }

    @Test(arguments: [DType.q4_0, .q4_1, .q5_0, DType(rawValue: "i4_g64")!])
    func beatsRoundToNearest(_ dtype: DType) throws {
        let (w, h, x) = GPTQFixture.layer
        let (rows, cols) = (GPTQFixture.rows, GPTQFixture.cols)
        let gptq = try GPTQ.quantize(weight: w, rows: rows, cols: cols, hessian: h, to: dtype)
        let rtnBytes = try Quantizer.quantize(w, rowLength: cols, to: dtype)
        let rtn = try rtnBytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: dtype, count: w.count) }
        let eg = outputError(w, gptq.values, x, rows: rows, cols: cols, tokens: GPTQFixture.tokens)
        let er = outputError(w, rtn, x, rows: rows, cols: cols, tokens: GPTQFixture.tokens)
        #expect(eg < 0.8 * er, "\(dtype): GPTQ \(eg) vs RTN \(er)")
        // The dead column is zero in the output.
        for r in 0..<rows { #expect(gptq.values[r * cols + 5] == 0 || dtype == .q4_1) }
    }

    @Test func refusesTypesWithoutAGrid() {
        #expect(throws: GPTQError.self) { try GPTQ.quantize(weight: [Float](repeating: 0, count: 256), rows: 1, cols: 256, hessian: [Double](repeating: 0, count: 256 * 256), to: .f16) }
    }

    static let kCases: [(DType, Bool, KQuantScales)] = [
        (.q4_k, false, .importance), (.q5_k, false, .importance), (.q6_k, false, .importance),
        (.q3_k, false, .importance), (.q2_k, false, .importance),
        (.q4_k, false, .plain), (.q6_k, false, .plain), (.q4_k, true, .importance),
    ]

    /// k-quants: the NumPy reference rounds onto the frozen grids of our headers; its blocks
    /// equal ours, and the type's encoder applied to the weights the reference had at each
    /// super-block's start gives exactly our headers (so the scales were chosen from the right
    /// weights, after the error feedback of the super-blocks before).
    @Test(arguments: kCases)
    func kquantBytesEqualNumPyReference(_ dtype: DType, _ actOrder: Bool, _ scales: KQuantScales) throws {
        let (w, h, x) = GPTQFixture.kLayer
        let (rows, cols) = (GPTQFixture.kRows, GPTQFixture.kCols)
        let ours = try GPTQ.quantize(weight: w, rows: rows, cols: cols, hessian: h, to: dtype,
                                     options: GPTQOptions(actOrder: actOrder, kquantScales: scales))
        let reference = try referenceKQuantGPTQ(w, h, rows: rows, cols: cols, dtype: dtype, actOrder: actOrder, headers: ours.bytes)
        guard case .block(_, let blockBytes) = dtype.layout else { Issue.record("not a block type"); return }
        #expect(reference.bytes.count == ours.bytes.count)
        let importance = (0..<cols).map { Float(h[$0 * cols + $0] / 2) }
        var block = [UInt8](repeating: 0, count: blockBytes)
        var headersDiffer = 0
        for r in 0..<rows {
            for sb in 0..<cols / 256 {
                let start = Array(reference.starts[(r * cols + sb * 256)..<(r * cols + sb * 256 + 256)])
                block.withUnsafeMutableBytes { y in
                    start.withUnsafeBufferPointer { xp in
                        importance.withUnsafeBufferPointer { q in
                            KQuantGrids.encode(dtype, xp.baseAddress!, importance: scales == .importance ? q.baseAddress! + sb * 256 : nil,
                                               into: y.baseAddress!)
                        }
                    }
                }
                let at = (r * cols / 256 + sb) * blockBytes
                for range in kquantHeader(dtype) where Array(block[range]) != Array(ours.bytes[(at + range.lowerBound)..<(at + range.upperBound)]) {
                    headersDiffer += 1
                }
            }
        }
        #expect(headersDiffer == 0, "\(dtype): \(headersDiffer) super-block headers are not the encoder's on the reference's weights")
        print("GPTQ \(dtype) (\(scales) scales, act order \(actOrder)): bytes \(ours.bytes == reference.bytes ? "identical to" : "differ from") the NumPy reference")
        if ours.bytes != reference.bytes {
            let refValues = try reference.bytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: dtype, count: w.count) }
            let a = outputError(w, ours.values, x, rows: rows, cols: cols, tokens: GPTQFixture.tokens)
            let b = outputError(w, refValues, x, rows: rows, cols: cols, tokens: GPTQFixture.tokens)
            #expect(abs(a - b) <= 1e-6, "\(dtype): bytes differ and errors \(a) vs \(b)")
        }
    }

    /// On correlated inputs GPTQ on a k-quant grid leaves less output error than both
    /// round-to-nearest and the importance-weighted search alone.
    @Test(arguments: [DType.q4_k, .q5_k, .q6_k, .q3_k, .q2_k])
    func kquantBeatsRoundToNearestAndImatrix(_ dtype: DType) throws {
        let (w, h, x) = GPTQFixture.kLayer
        let (rows, cols) = (GPTQFixture.kRows, GPTQFixture.kCols)
        let gptq = try GPTQ.quantize(weight: w, rows: rows, cols: cols, hessian: h, to: dtype)
        let rtnBytes = try Quantizer.quantize(w, rowLength: cols, to: dtype)
        let rtn = try rtnBytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: dtype, count: w.count) }
        let importance = (0..<cols).map { Float(h[$0 * cols + $0] / 2) }
        let imBytes = try w.withUnsafeBufferPointer { try ImportanceQuants.quantize($0, rowLength: cols, importance: importance, to: dtype) }
        let im = try imBytes.withUnsafeBytes { try Quantizer.dequantize($0, dtype: dtype, count: w.count) }
        let eg = outputError(w, gptq.values, x, rows: rows, cols: cols, tokens: GPTQFixture.tokens)
        let er = outputError(w, rtn, x, rows: rows, cols: cols, tokens: GPTQFixture.tokens)
        let ei = outputError(w, im, x, rows: rows, cols: cols, tokens: GPTQFixture.tokens)
        print("\(dtype): output error RTN \(er), imatrix \(ei), GPTQ \(eg)")
        #expect(eg < 0.9 * er && eg < ei, "\(dtype): GPTQ \(eg) vs RTN \(er), imatrix \(ei)")
    }
}

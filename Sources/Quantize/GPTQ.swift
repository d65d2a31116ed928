// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers") on the target scheme's own grid, so the output is a standard block
// of that type (q8_0, q4_0, q4_1, q5_0, q5_1, i8_g*, i4_g*, u4_g*; and q2_k...q6_k, whose
// super-block scales are chosen first and frozen: GPTQKQuants.swift).
//
// W is [rows = output features, cols = input features]; blocks run along each row (the input
// dimension), so a block is one group of GPTQ's group-wise variant. H = 2/N·Σ x·xᵀ over the
// layer's calibration inputs x (the scale of H does not matter: damping is relative).
//
//   dead columns (H_jj = 0): H_jj = 1, W[:, j] = 0
//   act order (optional): columns in order of decreasing H_jj
//   H += percdamp · mean(diag H) · I;  U = chol(H⁻¹) upper (LAPACK dpotrf, dpotri, dpotrf)
//   for each batch of 128 columns (or one group, if larger), for each column i:
//       at the first column of a group: the group's grid (scale, minimum) from the group's
//           current (error-updated) weights, exactly as the scheme's round-to-nearest encoder
//           derives it (f32 arithmetic, stored as f16);
//       q = nearest level of the grid;  e = (w − q) / U_ii
//       W[:, i+1..<batchEnd] −= e ⊗ U[i, i+1..<batchEnd]
//   then the columns after the batch get −E · U[batch, after] in one matrix product.
// With act order the grids cannot follow the processing order (a block is contiguous in the
// file), so every group's grid is fixed first from the original weights (GPTQ's "static
// groups").
//
// tools/gptq_reference.py is an independent float64 NumPy version of exactly this; the tests
// compare bytes with it.

import CkptCore
import COpenBLAS
import Foundation

public enum GPTQError: Error, CustomStringConvertible, Sendable {
    case unsupported(DType)
    case shape(String)
    case factorisation(Int32)

    public var description: String {
        switch self {
        case .unsupported(let d): return "GPTQ has no grid for \(d) (it supports q8_0, q4_0, q4_1, q5_0, q5_1, q2_k...q6_k, int8 and int4 groups)"
        case .shape(let s): return s
        case .factorisation(let i): return "the damped Hessian is not positive definite (LAPACK info \(i))"
        }
    }
}

public struct GPTQOptions: Sendable {
    public var percdamp: Double = 0.01
    public var blockSize: Int = 128
    public var actOrder: Bool = false
    /// How a k-quant super-block's frozen scales are chosen (GPTQKQuants.swift).
    public var kquantScales: KQuantScales = .importance
    public init(percdamp: Double = 0.01, blockSize: Int = 128, actOrder: Bool = false, kquantScales: KQuantScales = .importance) {
        self.percdamp = percdamp
        self.blockSize = blockSize
        self.actOrder = actOrder
        self.kquantScales = kquantScales
    }
}

/// A block's quantization grid: value = k·d + m for integer k in lo...hi (d, m as stored).
struct QuantGrid {
    var d: Double
    var m: Double
    var lo: Int
    var hi: Int

    @inline(__always)
    func level(_ w: Double) -> Int {
        guard d != 0, w.isFinite else { return d == 0 ? Swift.max(lo, Swift.min(hi, 0)) : 0 }
        let r = ((w - m) / d).rounded(.toNearestOrAwayFromZero)
        return Int(Swift.max(Double(lo), Swift.min(Double(hi), r)))
    }

    @inline(__always)
    func value(_ k: Int) -> Double { Double(Float(k) * Float(d) + Float(m)) }
}

/// The grids and byte packing of the types GPTQ can target (the schemes' own encoders decide
/// the grid; levels are chosen by GPTQ).
enum GPTQGrids {
    static func supports(_ dtype: DType) -> Bool {
        switch dtype {
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1: return true
        default: return dtype.groupSize != nil
        }
    }

    static func groupSize(_ dtype: DType) -> Int {
        if case .block(let v, _) = dtype.layout { return v }
        return 32
    }

    static func stored(_ x: Float) -> Double { Double(GGML.float(GGML.half(x))) }

    /// The grid the scheme's round-to-nearest encoder would choose for these values.
    static func grid(_ dtype: DType, _ x: [Float]) -> QuantGrid {
        let n = x.count
        return x.withUnsafeBufferPointer { p -> QuantGrid in
            let b = p.baseAddress!
            switch dtype {
            case .q8_0:
                var amax: Float = 0
                for j in 0..<n { amax = max(amax, abs(b[j])) }
                return QuantGrid(d: stored(amax / 127), m: 0, lo: -128, hi: 127)
            case .q4_0: return QuantGrid(d: stored(GGML.signedAbsMax(b, n) / -8), m: 0, lo: -8, hi: 7)
            case .q5_0: return QuantGrid(d: stored(GGML.signedAbsMax(b, n) / -16), m: 0, lo: -16, hi: 15)
            case .q4_1, .q5_1:
                let (lo, hi) = GGML.minMax(b, n)
                let top = dtype == .q4_1 ? 15 : 31
                return QuantGrid(d: stored((hi - lo) / Float(top)), m: stored(lo), lo: 0, hi: top)
            default:
                switch dtype.rawValue.prefix(2) {
                case "i8":
                    var amax: Float = 0
                    for j in 0..<n { amax = max(amax, abs(b[j])) }
                    return QuantGrid(d: stored(amax / 127), m: 0, lo: -127, hi: 127)
                case "i4": return QuantGrid(d: stored(GGML.signedAbsMax(b, n) / -8), m: 0, lo: -8, hi: 7)
                default:
                    let (lo, hi) = GGML.minMax(b, n)
                    return QuantGrid(d: stored((hi - lo) / 15), m: stored(lo), lo: 0, hi: 15)
                }
            }
        }
    }

    /// One block's bytes for levels `k` on `grid`.
    static func pack(_ dtype: DType, _ grid: QuantGrid, _ k: [Int], into y: UnsafeMutableRawPointer) {
        let g = k.count
        GGML.storeHalf(Float(grid.d), y, 0)
        switch dtype {
        case .q8_0:
            for j in 0..<32 { y.storeBytes(of: Int8(k[j]), toByteOffset: 2 + j, as: Int8.self) }
        case .q4_0, .q4_1:
            let off = dtype == .q4_0 ? 2 : 4, bias = dtype == .q4_0 ? 8 : 0
            if dtype == .q4_1 { GGML.storeHalf(Float(grid.m), y, 2) }
            for j in 0..<16 {
                let a = UInt8(k[j] + bias), b = UInt8(k[j + 16] + bias)
                y.storeBytes(of: a | b << 4, toByteOffset: off + j, as: UInt8.self)
            }
        case .q5_0, .q5_1:
            let off = dtype == .q5_0 ? 6 : 8, hOff = dtype == .q5_0 ? 2 : 4, bias = dtype == .q5_0 ? 16 : 0
            if dtype == .q5_1 { GGML.storeHalf(Float(grid.m), y, 2) }
            var qh: UInt32 = 0
            for j in 0..<16 {
                let a = UInt8(k[j] + bias), b = UInt8(k[j + 16] + bias)
                y.storeBytes(of: (a & 0x0F) | (b & 0x0F) << 4, toByteOffset: off + j, as: UInt8.self)
                qh |= UInt32(a >> 4) << UInt32(j)
                qh |= UInt32(b >> 4) << UInt32(j + 16)
            }
            y.storeBytes(of: qh.littleEndian, toByteOffset: hOff, as: UInt32.self)
        default:
            switch dtype.rawValue.prefix(2) {
            case "i8":
                for j in 0..<g { y.storeBytes(of: Int8(k[j]), toByteOffset: 2 + j, as: Int8.self) }
            case "i4":
                for i in 0..<g / 2 {
                    y.storeBytes(of: UInt8(k[2 * i] + 8) | UInt8(k[2 * i + 1] + 8) << 4, toByteOffset: 2 + i, as: UInt8.self)
                }
            default:
                GGML.storeHalf(Float(grid.m), y, 2)
                for i in 0..<g / 2 {
                    y.storeBytes(of: UInt8(k[2 * i]) | UInt8(k[2 * i + 1]) << 4, toByteOffset: 4 + i, as: UInt8.self)
                }
            }
        }
    }
}

public enum GPTQ {
    public static func supports(_ dtype: DType) -> Bool { GPTQGrids.supports(dtype) || KQuantGrids.supports(dtype) }

    /// U = upper Cholesky factor of the inverse of the (damped) Hessian, row-major [n, n].
    static func inverseCholesky(_ h: [Double], n: Int) throws(GPTQError) -> [Double] {
        var a = h  // symmetric: row- and column-major agree
        var nn = Int32(n), info: Int32 = 0
        var lower = Int8(UInt8(ascii: "L")), upper = Int8(UInt8(ascii: "U"))
        dpotrf_(&lower, &nn, &a, &nn, &info, 1)
        guard info == 0 else { throw .factorisation(info) }
        dpotri_(&lower, &nn, &a, &nn, &info, 1)
        guard info == 0 else { throw .factorisation(info) }
        // Column-major lower triangle (row-major upper) holds H⁻¹: symmetrise.
        for c in 0..<n { for r in c + 1..<n { a[r * n + c] = a[c * n + r] } }
        dpotrf_(&upper, &nn, &a, &nn, &info, 1)
        guard info == 0 else { throw .factorisation(info) }
        // Column-major upper U(i, j) = a[i + j·n], i <= j  ->  row-major u[i·n + j].
        var u = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in i..<n { u[i * n + j] = a[i + j * n] } }
        return u
    }

    /// Quantizes `weight` ([rows, cols], row-major) to `dtype` with GPTQ against `hessian`
    /// ([cols, cols], row-major, symmetric). Returns the block bytes (row after row, as
    /// Quantizer.quantize lays them out) and the quantized values.
    public static func quantize(weight: [Float], rows: Int, cols: Int, hessian: [Double], to dtype: DType,
                                options: GPTQOptions = GPTQOptions()) throws(GPTQError) -> (bytes: [UInt8], values: [Float]) {
        guard supports(dtype), case .block(let g, let blockBytes) = dtype.layout else { throw .unsupported(dtype) }
        // k-quants: a grid unit (super-block, g = 256) holds sub-blocks of `sub` values with a
        // grid each; the 32-blocks and int groups have one grid per block (sub = g).
        let kquant = KQuantGrids.supports(dtype), sub = kquant ? KQuantGrids.subBlock(dtype) : g
        guard rows > 0, cols > 0, cols % g == 0, weight.count == rows * cols, hessian.count == cols * cols else {
            throw .shape("GPTQ: a [\(rows), \(cols)] weight needs rows of whole \(g)-blocks and a [\(cols), \(cols)] Hessian")
        }
        let n = cols
        var h = hessian
        // The k-quant scale search's importance: diag(H)/2 = Σx²/N, llama.cpp's imatrix entry.
        let importance: [Float]? = kquant && options.kquantScales == .importance ? (0..<n).map { Float(hessian[$0 * n + $0] / 2) } : nil
        // Wt[col][row]: column j of W is contiguous.
        var wt = [Double](repeating: 0, count: n * rows)
        for r in 0..<rows { for c in 0..<n { wt[c * rows + r] = Double(weight[r * n + c]) } }
        for j in 0..<n where h[j * n + j] == 0 {
            h[j * n + j] = 1
            for r in 0..<rows { wt[j * rows + r] = 0 }
        }
        // Processing order.
        var perm = Array(0..<n)
        if options.actOrder {
            perm.sort { (a, b) in h[a * n + a] != h[b * n + b] ? h[a * n + a] > h[b * n + b] : a < b }
        }
        // Static grids (act order): from the weights after dead-column zeroing.
        let groupsPerRow = n / g, subsPerRow = n / sub
        var grids = [QuantGrid?](repeating: nil, count: rows * subsPerRow)
        // k-quants: the encoded super-blocks (their headers are kept).
        var bytes = [UInt8](repeating: 0, count: rows * groupsPerRow * blockBytes)
        func setGrid(row r: Int, group gi: Int, _ x: [Float]) {
            guard kquant else {
                grids[r * subsPerRow + gi] = GPTQGrids.grid(dtype, x)
                return
            }
            bytes.withUnsafeMutableBytes { out in
                let y = out.baseAddress! + (r * groupsPerRow + gi) * blockBytes
                x.withUnsafeBufferPointer { xp in
                    if let importance {
                        importance.withUnsafeBufferPointer { KQuantGrids.encode(dtype, xp.baseAddress!, importance: $0.baseAddress! + gi * g, into: y) }
                    } else {
                        KQuantGrids.encode(dtype, xp.baseAddress!, importance: nil, into: y)
                    }
                }
                for (j, grid) in KQuantGrids.grids(dtype, y).enumerated() { grids[r * subsPerRow + gi * (g / sub) + j] = grid }
            }
        }
        func makeGrid(row r: Int, group gi: Int) {
            var x = [Float](repeating: 0, count: g)
            for j in 0..<g { x[j] = Float(wt[(gi * g + j) * rows + r]) }
            setGrid(row: r, group: gi, x)
        }
        if options.actOrder { for r in 0..<rows { for gi in 0..<groupsPerRow { makeGrid(row: r, group: gi) } } }
        // Permute H and W.
        var hp = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { hp[i * n + j] = h[perm[i] * n + perm[j]] } }
        var w = [Double](repeating: 0, count: n * rows)
        for i in 0..<n { for r in 0..<rows { w[i * rows + r] = wt[perm[i] * rows + r] } }
        var mean = 0.0
        for i in 0..<n { mean += hp[i * n + i] }
        mean /= Double(n)
        for i in 0..<n { hp[i * n + i] += options.percdamp * mean }
        let u = try inverseCholesky(hp, n: n)

        var levels = [Int](repeating: 0, count: n * rows)      // by original column
        var q = [Double](repeating: 0, count: rows)
        let bs = max(g, options.blockSize)  // a group never straddles two batches
        var i1 = 0
        while i1 < n {
            let i2 = min(i1 + bs, n), count = i2 - i1
            var err = [Double](repeating: 0, count: count * rows)
            for i in i1..<i2 {
                let col = perm[i]
                if !options.actOrder, col % g == 0 {
                    // Group start (no act order: col == i): the grid from the current weights.
                    for r in 0..<rows {
                        var x = [Float](repeating: 0, count: g)
                        for j in 0..<g { x[j] = Float(w[(i + j) * rows + r]) }
                        setGrid(row: r, group: col / g, x)
                    }
                }
                let d = u[i * n + i]
                for r in 0..<rows {
                    let grid = grids[r * subsPerRow + col / sub]!
                    let k = grid.level(w[i * rows + r])
                    levels[col * rows + r] = k
                    q[r] = grid.value(k)
                    err[(i - i1) * rows + r] = (w[i * rows + r] - q[r]) / d
                }
                // Within the batch: W[:, j] -= e · U[i, j] for j in i+1..<i2.
                err.withUnsafeBufferPointer { e in
                    w.withUnsafeMutableBufferPointer { wp in
                        let ep = e.baseAddress! + (i - i1) * rows
                        for j in i + 1..<i2 {
                            cblas_daxpy(Int32(rows), -u[i * n + j], ep, 1, wp.baseAddress! + j * rows, 1)
                        }
                    }
                }
            }
            // After the batch: W[i2..., :] -= U[i1..<i2, i2...]ᵀ · E   (Wt layout).
            if i2 < n {
                u.withUnsafeBufferPointer { up in
                    err.withUnsafeBufferPointer { e in
                        w.withUnsafeMutableBufferPointer { wp in
                            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n - i2), Int32(rows), Int32(count),
                                        -1, up.baseAddress! + i1 * n + i2, Int32(n), e.baseAddress!, Int32(rows),
                                        1, wp.baseAddress! + i2 * rows, Int32(rows))
                        }
                    }
                }
            }
            i1 = i2
        }
        // Pack, row by row, block by block; and the quantized values.
        bytes.withUnsafeMutableBytes { out in
            var k = [Int](repeating: 0, count: g)
            for r in 0..<rows {
                for gi in 0..<groupsPerRow {
                    for j in 0..<g { k[j] = levels[(gi * g + j) * rows + r] }
                    let y = out.baseAddress! + (r * groupsPerRow + gi) * blockBytes
                    if kquant {
                        KQuantGrids.packLevels(dtype, k, into: y)
                    } else {
                        GPTQGrids.pack(dtype, grids[r * subsPerRow + gi]!, k, into: y)
                    }
                }
            }
        }
        let values = bytes.withUnsafeBytes { b in (try? Quantizer.dequantize(b, dtype: dtype, count: rows * n, jobs: 1)) ?? [] }
        return (bytes, values)
    }
}

extension QuantizationReport {
    /// Records the error of a tensor quantized outside the lazy path (calibrated methods).
    public func recordCalibrated(_ name: String, _ e: QuantizationError) { record(name, e) }
}

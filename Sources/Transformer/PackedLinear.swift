// Products with weights kept in their stored dtype (GGUF blocks, int8/int4 groups, f16/bf16),
// so the [OC, C] matrix never exists in f32. Two ways:
//
// Integer products (the types `IntegerProducts.kernelType` names: Q8_0, Q4_0, Q3_K, Q4_K, Q5_K, Q6_K; the default, `Transformers.integerProducts`):
// as llama.cpp multiplies quantized weights, the activations are quantized to 8 bits per
// block of 32 (scale max|x|/127, kept in f32) and each output is Σ_blocks d_w·d_x·(Σ int·int)
// (+ the Q4_K/Q5_K sub-block minimum times d_x·Σx; Q6_K's and Q3_K's two 16-value halves scaled apart), in C with AVX-512 VNNI or AVX2
// (CKernels/dot.c, ckdot.h; the paths agree bit for bit), threads over groups of 16 output
// rows. Measured (BENCHMARKS.md, "Integer products, second round"): on one core ~125 G
// multiply-adds per second for Q8_0, ~120 for Q4_0, ~100 for Q4_K, ~85–93 for Q3_K, Q5_K and Q6_K, against ~40 for widening
// to f32 + sgemm, so every one of these types is multiplied in integers. The activations'
// rounding moves the outputs by ~0.3 % of their scale (the same as llama.cpp's), so
// CKPT_F32_PRODUCTS=1 (or `integerProducts = false`) widens instead, for exact comparisons.
//
// Panel products (every other stored dtype, CKPT_PANEL_PRODUCTS=1): a panel of output rows is
// widened to f32 into a cache-sized buffer, then multiplied by sgemm. Measured against
// widening each whole tensor before one sgemm (BENCHMARKS.md, "Streamed execution"): on the
// shared 2-core machine the panels were slower (more synchronisation points between the
// dequantizing workers and OpenBLAS's threads, each a scheduling delay on a loaded machine),
// so streaming widens whole tensors by default for those dtypes; the panel path keeps a
// block's memory at its stored size and is kept, tested, for machines where it pays. Each
// output element is the same sgemm dot product over C as in the whole-matrix product, so
// results are bit-identical to the in-memory pass (StreamingTests).

import CKernels
import CkptCore
import COpenBLAS
import Dispatch
import Foundation
import Quantize

struct PackedWeights: @unchecked Sendable {
    /// A copy of the stored bytes (read once, so lazy sources decode once), or nil: the
    /// bytes are read from `tensor` for each product and its pages handed back afterwards
    /// (a streamed block's integer weights: no copy, no fresh pages to fault in).
    private let owned: [UInt8]?
    private let tensor: Tensor
    let dtype: DType
    let rows: Int
    let width: Int
    let rowBytes: Int

    /// f32 values widened per panel (CKPT_PANEL_VALUES overrides, for benchmarking).
    static let panelValues: Int = {
        if let v = getenv("CKPT_PANEL_VALUES").flatMap({ Int(String(cString: $0)) }), v > 0 { return v }
        return 1 << 22
    }()

    /// Test seam (CLITests): the streamed product of the tensor named by CKPT_INJECT_READ_FAILURE
    /// fails as an unreadable file would, to check that such a failure deep in a stream ends
    /// in the one-line error and exit status 2.
    static let injectedReadFailure: String? = getenv("CKPT_INJECT_READ_FAILURE").map { String(cString: $0) }

    /// Stored dtypes multiplied by an integer kernel (the others are widened by panels).
    static func hasIntegerKernel(_ dtype: DType) -> Bool { IntegerProducts.kernelType(dtype) != nil }

    /// nil for f32 and for dtypes neither path handles. `mapped` (integer kernels only):
    /// keep no copy of the bytes.
    init?(_ t: Tensor, mapped: Bool = false) throws {
        guard t.shape.count == 2, t.dtype != .f32, t.dtype.isQuantized || t.dtype == .bf16 || t.dtype == .f16,
              let rb = t.dtype.byteCount(shape: [1, t.shape[1]]) else { return nil }
        tensor = t
        if mapped && Self.hasIntegerKernel(t.dtype) {
            // Read once here, where an unreadable source is reported as an error (for a
            // mapped file this touches no page).
            try WeightStore.reading(t) { try t.data.withBytes { _ in } }
            owned = nil
        } else {
            owned = try WeightStore.reading(t) { try t.data.load() }
            t.data.releaseResidentPages()
        }
        dtype = t.dtype
        rows = t.shape[0]
        width = t.shape[1]
        rowBytes = rb
    }

    /// The stored bytes, for the duration of `body`. Throws when the checkpoint cannot be
    /// read any more (a streamed block reads its integer weights for each product: the file
    /// may have been truncated or a lazy source may fail since `init` read it).
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let owned { return try owned.withUnsafeBytes(body) }
        defer { tensor.data.releaseResidentPages() }
        if let name = Self.injectedReadFailure, name == tensor.name {
            throw TransformerError.unreadableTensor(name, "read failure injected by CKPT_INJECT_READ_FAILURE")
        }
        return try WeightStore.reading(tensor) { try tensor.data.withBytes(body) }
    }

    /// Rows [first, first + n) widened to f32 into `panel` (at least n·width values).
    func widenRows(_ first: Int, _ n: Int, into panel: UnsafeMutableBufferPointer<Float>) throws {
        try withBytes { all in
            let src = UnsafeRawBufferPointer(rebasing: all[first * rowBytes..<(first + n) * rowBytes])
            Self.widen(src, dtype, count: n * width, into: panel)
        }
    }

    /// Decodes `count` values of `dtype` (half or block type) into `dst`, on every core.
    static func widen(_ src: UnsafeRawBufferPointer, _ dtype: DType, count: Int, into dst: UnsafeMutableBufferPointer<Float>) {
        if dtype.isQuantized {
            // Quantizer.dequantize splits the blocks across cores itself.
            guard let values = try? Quantizer.dequantize(src, dtype: dtype, count: count) else {
                preconditionFailure("\(dtype) is a block type")
            }
            values.withUnsafeBufferPointer { v in _ = dst.initialize(from: v) }
        } else {
            let jobs = count >= 1 << 16 ? min(Quantizer.defaultJobs, 16) : 1, bf16 = dtype == .bf16
            // SAFETY: worker j converts values [lo, hi) only: disjoint parts of both buffers.
            nonisolated(unsafe) let (s, d) = (src, UnsafeMutableRawBufferPointer(dst))
            DispatchQueue.concurrentPerform(iterations: jobs) { j in
                let lo = count * j / jobs, hi = count * (j + 1) / jobs
                FloatBits.convertToF32(UnsafeRawBufferPointer(rebasing: s[2 * lo..<2 * hi]),
                                       to: UnsafeMutableRawBufferPointer(rebasing: d[4 * lo..<4 * hi]), bf16: bf16)
            }
        }
    }

    /// out[T, rows] = x[T, width] · Wᵀ (+ bias): in integers where the dtype has a kernel and
    /// `integer` is on, else panel by panel in f32.
    func multiply(_ x: [Float], T: Int, bias: [Float]?, panelValues: Int = panelValues,
                  integer: Bool = Transformers.integerProducts) throws -> [Float] {
        let C = width, OC = rows
        precondition(x.count == T * C, "linear: input is not [T, C]")
        if integer, Self.hasIntegerKernel(dtype) { return try multiplyInteger(x, T: T, bias: bias) }
        var out = [Float](repeating: 0, count: T * OC)
        guard T > 0, OC > 0 else { return out }
        let P = max(1, min(OC, panelValues / max(C, 1)))
        var panel = [Float](repeating: 0, count: P * C)
        try x.withUnsafeBufferPointer { a in
            try out.withUnsafeMutableBufferPointer { c in
                try panel.withUnsafeMutableBufferPointer { p in
                    var first = 0
                    while first < OC {
                        let n = min(P, OC - first)
                        try widenRows(first, n, into: p)
                        // The same arithmetic as the in-memory f32 product (Kernels.multiplyRows).
                        (bias ?? []).withUnsafeBufferPointer { b in
                            Kernels.multiplyRows(a.baseAddress!, T: T, C: C, rows: p.baseAddress!, count: n,
                                                 bias: bias == nil ? nil : b.baseAddress! + first, into: c.baseAddress! + first, ldo: OC)
                        }
                        first += n
                    }
                }
            }
        }
        return out
    }

    /// out[T, rows] = x[T, width] · Wᵀ (+ bias) with x quantized to 8 bits per block of 32.
    func multiplyInteger(_ x: [Float], T: Int, bias: [Float]?) throws -> [Float] {
        let OC = rows
        var out = [Float](repeating: 0, count: T * OC)
        guard T > 0, OC > 0 else { return out }
        let a = IntegerProducts.Activations(x, T: T, C: width)
        try withBytes { w in
            out.withUnsafeMutableBufferPointer { o in IntegerProducts.multiply(w, dtype, rows: OC, a, into: o.baseAddress!, ldo: OC) }
        }
        if let bias {
            out.withUnsafeMutableBufferPointer { o in for t in 0..<T { for j in 0..<OC { o[t * OC + j] += bias[j] } } }
        }
        return out
    }
}

/// Products of stored low-bit rows with activations quantized to 8 bits (ckdot.h).
enum IntegerProducts {
    /// The kernel's name for a stored block type (ckdot.h), nil for types it does not multiply.
    static func kernelType(_ dtype: DType) -> Int32? {
        switch dtype {
        case .q8_0: return Int32(CK_DOT_Q8_0)
        case .q4_0: return Int32(CK_DOT_Q4_0)
        case .q4_1: return Int32(CK_DOT_Q4_1)
        case .q5_0: return Int32(CK_DOT_Q5_0)
        case .q5_1: return Int32(CK_DOT_Q5_1)
        case .q3_k: return Int32(CK_DOT_Q3_K)
        case .q4_k: return Int32(CK_DOT_Q4_K)
        case .q5_k: return Int32(CK_DOT_Q5_K)
        case .q6_k: return Int32(CK_DOT_Q6_K)
        default: return nil
        }
    }

    /// x[T, C] quantized per block of 32: bytes q + 128, f32 scales d and d·Σq per block
    /// (ck_q8_act_quantize).
    struct Activations: @unchecked Sendable {
        let T: Int, C: Int
        let q: [UInt8]
        let d: [Float]
        let sums: [Float]

        init(_ x: [Float], T: Int, C: Int) {
            precondition(x.count == T * C && C % 32 == 0, "integer product: input is not [T, C] in blocks of 32")
            let kp = ck_q8_act_stride(C), nb = kp / 32
            var q = [UInt8](repeating: 0, count: T * kp), d = [Float](repeating: 0, count: T * nb)
            var sums = d
            // Rows are independent: split over the threads (no serial step between the
            // products; the same bits for any split).
            let jobs = max(1, min(Transformers.threads, T * C / (1 << 16)))
            x.withUnsafeBufferPointer { xp in
                q.withUnsafeMutableBufferPointer { qp in
                    d.withUnsafeMutableBufferPointer { dp in
                        sums.withUnsafeMutableBufferPointer { sp in
                            // SAFETY: job j quantizes rows [lo, hi) into their own parts of q, d, sums.
                            nonisolated(unsafe) let (xp, qp, dp, sp) = (xp, qp, dp, sp)
                            let run: @Sendable (Int) -> Void = { j in
                                let lo = T * j / jobs, hi = T * (j + 1) / jobs
                                guard hi > lo else { return }
                                ck_q8_act_quantize(xp.baseAddress! + lo * C, hi - lo, C, qp.baseAddress! + lo * kp,
                                                   dp.baseAddress! + lo * nb, sp.baseAddress! + lo * nb)
                            }
                            if jobs == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: jobs, execute: run) }
                        }
                    }
                }
            }
            (self.T, self.C, self.q, self.d, self.sums) = (T, C, q, d, sums)
        }
    }

    /// out[t·ldo + r] for r < rows: the product of the `rows` stored rows at `w` (dtype, each
    /// a.C wide) with the activations; rows split over `Transformers.threads` workers in
    /// groups of 16.
    static func multiply(_ w: UnsafeRawBufferPointer, _ dtype: DType, rows: Int, _ a: Activations,
                         into out: UnsafeMutablePointer<Float>, ldo: Int) {
        let C = a.C, T = a.T
        guard let type = kernelType(dtype), case let rowBytes = ck_dot_row_bytes(type, C), rowBytes > 0,
              w.count >= rows * rowBytes else { preconditionFailure("integer product: \(dtype) rows of \(C)") }
        let groups = (rows + 15) / 16
        let jobs = max(1, min(Transformers.threads, groups))
        // Several chunks per worker (worker j takes chunks j, j + jobs, ...), so a worker
        // that loses its core for a while on a shared machine holds up less.
        let chunks = min(groups, jobs * 4)
        a.q.withUnsafeBufferPointer { qa in
            a.d.withUnsafeBufferPointer { da in
                a.sums.withUnsafeBufferPointer { sa in
                    // SAFETY: chunk c writes columns [r0, r1) of every output row only.
                    nonisolated(unsafe) let (w, qa, da, sa, o) = (w, qa, da, sa, out)
                    let run: @Sendable (Int) -> Void = { j in
                        var c = j
                        while c < chunks {
                            let r0 = min(rows, 16 * (groups * c / chunks)), r1 = min(rows, 16 * (groups * (c + 1) / chunks))
                            ck_dot_matmul(type, w.baseAddress!.assumingMemoryBound(to: UInt8.self), C, r0, r1,
                                          qa.baseAddress!, da.baseAddress!, sa.baseAddress!, T, o + r0, ldo)
                            c += jobs
                        }
                    }
                    if jobs == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: jobs, execute: run) }
                }
            }
        }
    }
}

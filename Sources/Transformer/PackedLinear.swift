// Products with weights kept in their stored dtype (GGUF blocks, int8/int4 groups, f16/bf16),
// so the [OC, C] matrix never exists in f32. Two ways:
//
// Integer products (Q8_0 weights; the default, `Transformers.integerProducts`): as llama.cpp
// multiplies a Q8_0 matrix, the activations are quantized to 8 bits per block of 32 (scale
// max|x|/127, kept in f32) and each output is Σ_blocks d_w·d_x·(Σ int8·int8), in C with
// AVX-512 VNNI or AVX2 (CKernels/dot.c, ckdot.h; the paths agree bit for bit), threads over
// output rows. Measured on the 1.24B Q8_0 GGUF (BENCHMARKS.md): ~60 G multiply-adds per
// second per core against ~40 for f32 sgemm, and no widening at all. The activations'
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

    /// Stored dtypes multiplied by an integer kernel (the others are widened by panels).
    static func hasIntegerKernel(_ dtype: DType) -> Bool { dtype == .q8_0 }

    /// nil for f32 and for dtypes neither path handles. `mapped` (integer kernels only):
    /// keep no copy of the bytes.
    init?(_ t: Tensor, mapped: Bool = false) throws {
        guard t.shape.count == 2, t.dtype != .f32, t.dtype.isQuantized || t.dtype == .bf16 || t.dtype == .f16,
              let rb = t.dtype.byteCount(shape: [1, t.shape[1]]) else { return nil }
        tensor = t
        if mapped && Self.hasIntegerKernel(t.dtype) {
            // Read once here, where an unreadable source is reported as an error (for a
            // mapped file this touches no page).
            try t.data.withBytes { _ in }
            owned = nil
        } else {
            owned = try t.data.load()
            t.data.releaseResidentPages()
        }
        dtype = t.dtype
        rows = t.shape[0]
        width = t.shape[1]
        rowBytes = rb
    }

    /// The stored bytes, for the duration of `body`.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let owned { return owned.withUnsafeBytes(body) }
        // The same source was read without error in init: a mapping, or a deterministic
        // decoding of one (GGUF's reordered q/k rows).
        let r = try! tensor.data.withBytes(body)
        tensor.data.releaseResidentPages()
        return r
    }

    /// Rows [first, first + n) widened to f32 into `panel` (at least n·width values).
    func widenRows(_ first: Int, _ n: Int, into panel: UnsafeMutableBufferPointer<Float>) {
        withBytes { all in
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
                  integer: Bool = Transformers.integerProducts) -> [Float] {
        let C = width, OC = rows
        precondition(x.count == T * C, "linear: input is not [T, C]")
        if integer, Self.hasIntegerKernel(dtype) { return multiplyInteger(x, T: T, bias: bias) }
        var out = [Float](repeating: 0, count: T * OC)
        guard T > 0, OC > 0 else { return out }
        let P = max(1, min(OC, panelValues / max(C, 1)))
        var panel = [Float](repeating: 0, count: P * C)
        x.withUnsafeBufferPointer { a in
            out.withUnsafeMutableBufferPointer { c in
                panel.withUnsafeMutableBufferPointer { p in
                    var first = 0
                    while first < OC {
                        let n = min(P, OC - first)
                        widenRows(first, n, into: p)
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
    func multiplyInteger(_ x: [Float], T: Int, bias: [Float]?) -> [Float] {
        let OC = rows
        var out = [Float](repeating: 0, count: T * OC)
        guard T > 0, OC > 0 else { return out }
        let a = IntegerProducts.Activations(x, T: T, C: width)
        withBytes { w in
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
    /// x[T, C] quantized per block of 32: bytes q + 128 and f32 scales (ck_q8_act_quantize).
    struct Activations: @unchecked Sendable {
        let T: Int, C: Int
        let q: [UInt8]
        let d: [Float]

        init(_ x: [Float], T: Int, C: Int) {
            precondition(x.count == T * C && C % 32 == 0, "integer product: input is not [T, C] in blocks of 32")
            let kp = ck_q8_act_stride(C)
            var q = [UInt8](repeating: 0, count: T * kp), d = [Float](repeating: 0, count: T * kp / 32)
            ck_q8_act_quantize(x, T, C, &q, &d)
            (self.T, self.C, self.q, self.d) = (T, C, q, d)
        }
    }

    /// out[t·ldo + r] for r < rows: the product of the `rows` stored rows at `w` (dtype, each
    /// a.C wide) with the activations; rows split over `Transformers.threads` workers in
    /// groups of 4.
    static func multiply(_ w: UnsafeRawBufferPointer, _ dtype: DType, rows: Int, _ a: Activations,
                         into out: UnsafeMutablePointer<Float>, ldo: Int) {
        precondition(dtype == .q8_0 && w.count >= rows * (a.C / 32) * 34, "integer product: \(dtype) rows")
        let C = a.C, T = a.T
        let groups = (rows + 3) / 4
        let jobs = max(1, min(Transformers.threads, groups))
        // Several chunks per worker (worker j takes chunks j, j + jobs, ...), so a worker
        // that loses its core for a while on a shared machine holds up less.
        let chunks = min(groups, jobs * 8)
        a.q.withUnsafeBufferPointer { qa in
            a.d.withUnsafeBufferPointer { da in
                // SAFETY: chunk c writes columns [r0, r1) of every output row only.
                nonisolated(unsafe) let (w, qa, da, o) = (w, qa, da, out)
                let run: @Sendable (Int) -> Void = { j in
                    var c = j
                    while c < chunks {
                        let r0 = min(rows, 4 * (groups * c / chunks)), r1 = min(rows, 4 * (groups * (c + 1) / chunks))
                        ck_q8_0_matmul(w.baseAddress!.assumingMemoryBound(to: UInt8.self), C, r0, r1,
                                       qa.baseAddress!, da.baseAddress!, T, o + r0, ldo)
                        c += jobs
                    }
                }
                if jobs == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: jobs, execute: run) }
            }
        }
    }
}

// Products with weights kept in their stored dtype (GGUF blocks, int8/int4 groups, f16/bf16):
// y = x · Wᵀ computed a panel of output rows at a time — the panel is widened to f32 into a
// cache-sized buffer, then multiplied by sgemm — so the [OC, C] matrix never exists in f32.
// The streamed model can use it for every `[out, in]` linear layer (CKPT_PANEL_PRODUCTS=1).
//
// Measured against widening each whole tensor before one sgemm (BENCHMARKS.md, "Streamed
// execution"): on the shared 2-core machine the panels were slower (more synchronisation
// points between the dequantizing workers and OpenBLAS's threads, each a scheduling delay
// on a loaded machine), so streaming widens whole tensors by default; the panel path keeps a
// block's memory at its stored size and is kept, tested, for machines where it pays. Each
// output element is the same sgemm dot product over C as in the whole-matrix product, so
// results are bit-identical to the in-memory pass (StreamingTests).

import CkptCore
import COpenBLAS
import Dispatch
import Foundation
import Quantize

struct PackedWeights: @unchecked Sendable {
    /// The stored bytes of a [rows, width] tensor (read once, so lazy sources decode once).
    let bytes: [UInt8]
    let dtype: DType
    let rows: Int
    let width: Int
    let rowBytes: Int

    /// f32 values widened per panel (CKPT_PANEL_VALUES overrides, for benchmarking).
    static let panelValues: Int = {
        if let v = getenv("CKPT_PANEL_VALUES").flatMap({ Int(String(cString: $0)) }), v > 0 { return v }
        return 1 << 22
    }()

    init?(_ t: Tensor) throws {
        guard t.shape.count == 2, t.dtype != .f32, t.dtype.isQuantized || t.dtype == .bf16 || t.dtype == .f16,
              let rb = t.dtype.byteCount(shape: [1, t.shape[1]]) else { return nil }
        bytes = try t.data.load()
        t.data.releaseResidentPages()
        dtype = t.dtype
        rows = t.shape[0]
        width = t.shape[1]
        rowBytes = rb
    }

    /// Rows [first, first + n) widened to f32 into `panel` (at least n·width values).
    func widenRows(_ first: Int, _ n: Int, into panel: UnsafeMutableBufferPointer<Float>) {
        bytes.withUnsafeBytes { all in
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

    /// out[T, rows] = x[T, width] · Wᵀ (+ bias).
    func multiply(_ x: [Float], T: Int, bias: [Float]?, panelValues: Int = panelValues) -> [Float] {
        let C = width, OC = rows
        precondition(x.count == T * C, "linear: input is not [T, C]")
        var out = [Float](repeating: 0, count: T * OC)
        guard T > 0, OC > 0 else { return out }
        if let bias {
            out.withUnsafeMutableBufferPointer { o in for t in 0..<T { for j in 0..<OC { o[t * OC + j] = bias[j] } } }
        }
        let beta: Float = bias == nil ? 0 : 1
        let P = max(1, min(OC, panelValues / max(C, 1)))
        var panel = [Float](repeating: 0, count: P * C)
        x.withUnsafeBufferPointer { a in
            out.withUnsafeMutableBufferPointer { c in
                panel.withUnsafeMutableBufferPointer { p in
                    var first = 0
                    while first < OC {
                        let n = min(P, OC - first)
                        widenRows(first, n, into: p)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(n), Int32(C),
                                    1, a.baseAddress, Int32(C), p.baseAddress, Int32(C), beta, c.baseAddress! + first, Int32(OC))
                        first += n
                    }
                }
            }
        }
        return out
    }
}

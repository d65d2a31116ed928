// The forward pass's building blocks, llm.c-style: each a small function over row-major f32
// buffers whose shapes are in the comments.
//
// Legend: T tokens, C channels (hidden size), OC output channels, NH query heads, NKV key/value
// heads, hs head size, V vocabulary. Matrix products against weights call CKernels' packed
// product where the CPU has AVX-512 (weights packed once at load), else OpenBLAS's sgemm;
// everything else is plain loops over contiguous rows. A naive reference of each kernel
// lives in the tests.

import CKernels
import CkptCore
import COpenBLAS
import Foundation

/// A weight matrix in f32. `layout` says how it is stored:
///   .outIn  [OC, C], as torch.nn.Linear keeps it  (y = x·Wᵀ)
///   .inOut  [C, OC], as GPT-2's Conv1D keeps it   (y = x·W)
/// or, after `packed()`, in the panels of CKernels' packed product (then `data` is empty).
struct Matrix: Sendable {
    enum Layout: Sendable { case outIn, inOut }
    var data: [Float]
    var inFeatures: Int
    var outFeatures: Int
    var layout: Layout
    var panels: PackedPanels? = nil

    /// The same matrix in panels of 32 output columns (sgemm.c), when this CPU runs the
    /// packed product; else unchanged. Packing is a one-time copy (on all threads).
    func packed() -> Matrix {
        guard panels == nil, ck_sgemm_packed_available() != 0, inFeatures > 0, outFeatures > 0,
              data.count == inFeatures * outFeatures else { return self }
        var m = self
        m.panels = PackedPanels(self)
        m.data = []
        return m
    }
}

/// A weight matrix packed for `ck_sgemm_packed`: panels of 32 output columns, 64-byte aligned.
final class PackedPanels: @unchecked Sendable {
    let values: UnsafeMutablePointer<Float>
    let panels: Int

    convenience init(_ m: Matrix) {
        let C = m.inFeatures, OC = m.outFeatures
        self.init(allocating: ck_sgemm_packed_floats(OC, C), panels: ck_sgemm_panels(OC))
        let jobs = max(1, min(Transformers.threads, panels))
        let panels = panels, inOut: Int32 = m.layout == .inOut ? 1 : 0
        m.data.withUnsafeBufferPointer { w in
            // SAFETY: each job packs its own panels of `values` (count floats) from w [OC·C].
            nonisolated(unsafe) let (w, values) = (w, values)
            Kernels.parallel(jobs) { j in
                ck_sgemm_pack(w.baseAddress!, OC, C, inOut, values, panels * j / jobs, panels * (j + 1) / jobs)
            }
        }
    }

    /// Packs the [OC, C] tensor `t` (f32, f16 or bf16, rows contiguous) straight from its
    /// stored bytes, 32 rows at a time through a small scratch buffer: no f32 copy of the whole
    /// matrix is made (it cost the load a second pass over memory and twice the matrix's pages).
    /// The panels equal those of `init(_:)` on the widened matrix (widening is exact). Nil
    /// when the packed product is off or the dtype is another.
    static func fromRows(of t: Tensor, outFeatures OC: Int, inFeatures C: Int) throws -> PackedPanels? {
        guard ck_sgemm_packed_available() != 0, OC > 0, C > 0, [.f32, .f16, .bf16].contains(t.dtype),
              t.elementCount == OC * C else { return nil }
        let panels = ck_sgemm_panels(OC)
        let result = PackedPanels(allocating: ck_sgemm_packed_floats(OC, C), panels: panels)
        let width = t.dtype == .f32 ? 4 : 2, bf16 = t.dtype == .bf16, f32 = t.dtype == .f32
        let jobs = max(1, min(Transformers.threads, panels))
        try t.data.withBytes { src in
            precondition(src.count >= OC * C * width, "tensor bytes shorter than its shape")
            // SAFETY: job j widens rows of its own panels into its own scratch and writes only
            // those panels of `values`.
            nonisolated(unsafe) let (src, values) = (src, result.values)
            Kernels.parallel(jobs) { j in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 32 * C)
                defer { scratch.deallocate() }
                for p in (panels * j / jobs)..<(panels * (j + 1) / jobs) {
                    let r0 = p * 32, rows = min(32, OC - r0)
                    let bytes = UnsafeRawBufferPointer(rebasing: src[(r0 * C * width)..<((r0 + rows) * C * width)])
                    let dst = UnsafeMutableRawBufferPointer(start: scratch, count: rows * C * 4)
                    if f32 { dst.copyMemory(from: bytes) } else { FloatBits.convertToF32(bytes, to: dst, bf16: bf16) }
                    // Panel p of the whole matrix is panel 0 of these `rows` rows.
                    ck_sgemm_pack(scratch, rows, C, 0, values + p * 32 * C, 0, 1)
                }
            }
        }
        return result
    }

    private init(allocating count: Int, panels: Int) {
        self.panels = panels
        values = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.size, alignment: 64)
            .bindMemory(to: Float.self, capacity: count)
    }

    deinit { values.deallocate() }
}

enum Kernels {
    /// Runs body(0..<jobs), on as many threads (inline for one job).
    static func parallel(_ jobs: Int, _ body: @Sendable (Int) -> Void) {
        if jobs <= 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: jobs, execute: body) }
    }

    /// out[T, OC] = inp[T, C] · W (+ bias[OC]).
    static func linear(_ inp: [Float], T: Int, _ w: Matrix, bias: [Float]?) -> [Float] {
        let C = w.inFeatures, OC = w.outFeatures
        precondition(inp.count == T * C, "linear: input is not [T, C]")
        // A matrix not packed at load (tests, one-off products) is packed for this product, so
        // every f32 product of the process rounds alike (as sgemm would pack it anyway).
        if w.panels == nil, T > 0, ck_sgemm_packed_available() != 0 {
            let p = w.packed()
            if p.panels != nil { return linear(inp, T: T, p, bias: bias) }
        }
        if let p = w.panels {
            precondition(bias.map { $0.count == OC } ?? true, "linear: bias is not [OC]")
            guard T > 0, OC > 0 else { return [Float](repeating: 0, count: T * OC) }
            // Panels split over the threads, several chunks each (worker j takes chunks j,
            // j + jobs, ...: a worker that loses its core on a shared machine holds up less).
            // Every output is written, so no zero fill first.
            let jobs = max(1, min(Transformers.threads, p.panels))
            let chunks = jobs == 1 ? 1 : min(p.panels, jobs * 8)
            return [Float](unsafeUninitializedCapacity: T * OC) { out, n in
                inp.withUnsafeBufferPointer { a in
                    func run(_ b: UnsafePointer<Float>?) {
                        // SAFETY: x is [T, C], the panels cover OC columns, o holds T·OC floats;
                        // chunks write disjoint column ranges.
                        nonisolated(unsafe) let (o, x, b, values) = (out.baseAddress!, a.baseAddress!, b, p.values)
                        let panels = p.panels
                        parallel(jobs) { j in
                            var c = j
                            while c < chunks {
                                ck_sgemm_packed(x, T, C, C, values, OC, b, o, OC, panels * c / chunks, panels * (c + 1) / chunks)
                                c += jobs
                            }
                        }
                    }
                    if let bias { bias.withUnsafeBufferPointer { run($0.baseAddress!) } } else { run(nil) }
                }
                n = T * OC
            }
        }
        var out = [Float](repeating: 0, count: T * OC)
        guard T > 0, OC > 0 else { return out }
        if let bias {
            for t in 0..<T { out.withUnsafeMutableBufferPointer { o in for j in 0..<OC { o[t * OC + j] = bias[j] } } }
        }
        let beta: Float = bias == nil ? 0 : 1
        inp.withUnsafeBufferPointer { a in
            w.data.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { c in
                    switch w.layout {
                    case .outIn:
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(OC), Int32(C),
                                    1, a.baseAddress, Int32(C), b.baseAddress, Int32(C), beta, c.baseAddress, Int32(OC))
                    case .inOut:
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(OC), Int32(C),
                                    1, a.baseAddress, Int32(C), b.baseAddress, Int32(OC), beta, c.baseAddress, Int32(OC))
                    }
                }
            }
        }
        return out
    }

    /// Columns [column, column + count) of out[T, total] = inp[T, C] · Wᵀ for `count` rows of a
    /// [*, C] matrix (a block of an output head's vocabulary rows).
    static func linearColumns(_ inp: [Float], T: Int, C: Int, weightRows w: UnsafeBufferPointer<Float>, count: Int,
                              into out: inout [Float], column: Int, total: Int) {
        precondition(inp.count == T * C && w.count == count * C && out.count == T * total && column + count <= total,
                     "linearColumns: shapes disagree")
        guard T > 0, count > 0 else { return }
        inp.withUnsafeBufferPointer { a in
            out.withUnsafeMutableBufferPointer { c in
                multiplyRows(a.baseAddress!, T: T, C: C, rows: w.baseAddress!, count: count, bias: nil,
                             into: c.baseAddress! + column, ldo: total)
            }
        }
    }

    /// out[t, 0..<count] (rows `ldo` apart) = bias + x[T, C] · Wᵀ for `count` rows of W [count, C],
    /// packed for this one product where the CPU runs the packed kernel, else sgemm. Each
    /// output is computed exactly as by `linear` on a packed matrix (column blocks and threads
    /// do not change it), so streamed and panel-by-panel products equal the in-memory ones.
    static func multiplyRows(_ x: UnsafePointer<Float>, T: Int, C: Int, rows w: UnsafePointer<Float>, count: Int,
                             bias: UnsafePointer<Float>?, into out: UnsafeMutablePointer<Float>, ldo: Int) {
        guard T > 0, count > 0 else { return }
        guard ck_sgemm_packed_available() != 0, C > 0 else {
            if let bias { for t in 0..<T { (out + t * ldo).update(from: bias, count: count) } }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(count), Int32(C),
                        1, x, Int32(C), w, Int32(C), bias == nil ? 0 : 1, out, Int32(ldo))
            return
        }
        let panels = ck_sgemm_panels(count), floats = ck_sgemm_packed_floats(count, C)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: floats * MemoryLayout<Float>.size, alignment: 64)
            .bindMemory(to: Float.self, capacity: floats)
        defer { scratch.deallocate() }
        let jobs = max(1, min(Transformers.threads, panels))
        // SAFETY: job j packs and then multiplies its own panels (disjoint parts of packed and
        // disjoint columns of out); x, w and bias are only read.
        nonisolated(unsafe) let (x, w, bias, out, packed) = (x, w, bias, out, scratch)
        parallel(jobs) { j in
            let p0 = panels * j / jobs, p1 = panels * (j + 1) / jobs
            ck_sgemm_pack(w, count, C, 0, packed, p0, p1)
            ck_sgemm_packed(x, T, C, C, packed, count, bias, out, ldo, p0, p1)
        }
    }

    /// LayerNorm over each row of x[T, C]: (x - mean) / sqrt(var + eps) · weight + bias.
    /// With `groups` > 1, weight and bias hold that many rows of C and row t uses row t mod groups.
    static func layerNorm(_ x: [Float], T: Int, C: Int, weight: [Float], bias: [Float]?, eps: Float, groups: Int = 1) -> [Float] {
        var out = [Float](repeating: 0, count: T * C)
        x.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                for t in 0..<T {
                    let row = t * C
                    var mean: Float = 0
                    for i in 0..<C { mean += x[row + i] }
                    mean /= Float(C)
                    var variance: Float = 0
                    for i in 0..<C { let d = x[row + i] - mean; variance += d * d }
                    variance /= Float(C)  // biased, as torch.nn.LayerNorm
                    let rstd = 1 / (variance + eps).squareRoot()
                    let g = (t % groups) * C
                    for i in 0..<C {
                        o[row + i] = (x[row + i] - mean) * rstd * weight[g + i] + (bias?[g + i] ?? 0)
                    }
                }
            }
        }
        return out
    }

    /// RMSNorm over each row of x[T, C]: x / sqrt(mean(x²) + eps) · weight (LLaMA).
    static func rmsNorm(_ x: [Float], T: Int, C: Int, weight: [Float], eps: Float, groups: Int = 1) -> [Float] {
        var out = [Float](repeating: 0, count: T * C)
        x.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                for t in 0..<T {
                    let row = t * C
                    var ss: Float = 0
                    for i in 0..<C { ss += x[row + i] * x[row + i] }
                    let r = 1 / (ss / Float(C) + eps).squareRoot()
                    let g = (t % groups) * C
                    for i in 0..<C { o[row + i] = weight[g + i] * (x[row + i] * r) }
                }
            }
        }
        return out
    }

    /// GELU, tanh approximation (GPT-2's "gelu_new"), in place (vectorised: VectorMath).
    static func geluTanh(_ x: inout [Float]) { VectorMath.geluTanh(&x) }

    /// GELU, exact (erf) form (BERT's "gelu"), in place.
    static func geluErf(_ x: inout [Float]) {
        x.withUnsafeMutableBufferPointer { x in
            for i in x.indices { x[i] = 0.5 * x[i] * (1 + erff(x[i] * Float(0.7071067811865476))) }
        }
    }

    /// a[i] = silu(a[i]) · b[i] (LLaMA's SwiGLU gate), in place on a.
    static func swiglu(_ a: inout [Float], _ b: [Float]) {
        a.withUnsafeMutableBufferPointer { a in
            VectorMath.silu(a)
            b.withUnsafeBufferPointer { b in for i in a.indices { a[i] *= b[i] } }
        }
    }

    /// max(x, 0), in place.
    static func relu(_ x: inout [Float]) {
        x.withUnsafeMutableBufferPointer { x in for i in x.indices { x[i] = max(x[i], 0) } }
    }

    /// x *= y elementwise, in place.
    static func multiply(_ x: inout [Float], _ y: [Float]) {
        x.withUnsafeMutableBufferPointer { x in
            y.withUnsafeBufferPointer { y in for i in x.indices { x[i] *= y[i] } }
        }
    }

    /// x *= s, in place.
    static func scale(_ x: inout [Float], _ s: Float) {
        x.withUnsafeMutableBufferPointer { x in for i in x.indices { x[i] *= s } }
    }

    /// x = cap · tanh(x / cap), in place (logit soft-capping).
    static func softcap(_ x: inout [Float], _ cap: Float) {
        x.withUnsafeMutableBufferPointer { x in for i in x.indices { x[i] = cap * tanhf(x[i] / cap) } }
    }

    /// Columns [from, from + width) of x[T, total]: out[T, width].
    static func columns(_ x: [Float], T: Int, total: Int, from: Int, width: Int) -> [Float] {
        var out = [Float](repeating: 0, count: T * width)
        x.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                for t in 0..<T { for j in 0..<width { o[t * width + j] = x[t * total + from + j] } }
            }
        }
        return out
    }

    /// q [T, NH·hs], k and v [T, NKV·hs] from a fused projection grouped by key/value head:
    /// row t is, per group g < NKV, its NH/NKV query heads, then k_g, then v_g (hs each).
    static func ungroupQKV(_ qkv: [Float], T: Int, NH: Int, NKV: Int, hs: Int) -> (q: [Float], k: [Float], v: [Float]) {
        let group = NH / NKV, W = (NH + 2 * NKV) * hs
        var q = [Float](repeating: 0, count: T * NH * hs)
        var k = [Float](repeating: 0, count: T * NKV * hs), v = k
        for t in 0..<T {
            for g in 0..<NKV {
                let base = t * W + g * (group + 2) * hs
                for j in 0..<group {
                    let h = g * group + j
                    for d in 0..<hs { q[(t * NH + h) * hs + d] = qkv[base + j * hs + d] }
                }
                for d in 0..<hs {
                    k[(t * NKV + g) * hs + d] = qkv[base + group * hs + d]
                    v[(t * NKV + g) * hs + d] = qkv[base + (group + 1) * hs + d]
                }
            }
        }
        return (q, k, v)
    }

    /// x += y, in place.
    static func add(_ x: inout [Float], _ y: [Float]) {
        x.withUnsafeMutableBufferPointer { x in
            y.withUnsafeBufferPointer { y in for i in x.indices { x[i] += y[i] } }
        }
    }

    struct AttentionShape {
        var T: Int
        var NH: Int
        var NKV: Int
        var hs: Int
        var causal: Bool
        /// Keys this many positions away or more are masked: older ones (Mistral's sliding
        /// window), and newer ones too when not causal (ModernBERT's local attention).
        var window: Int?
        /// Multiplies q·kᵀ (default 1/√hs).
        var scale: Float? = nil
        /// Scores become cap · tanh(scores / cap) before the mask (Gemma 2).
        var softcap: Float? = nil
        /// ALiBi: bias(h, j) · scale is added to the scores of query head h and key j.
        var alibi: AttentionSpec.ALiBi? = nil
    }

    /// Scaled dot-product attention, per head: softmax(q·kᵀ / √hs + mask) · v.
    /// q[T, NH·hs], k and v [T, NKV·hs] (grouped-query: query head h reads key/value head
    /// h / (NH/NKV)); returns [T, NH·hs]. Heads are spread over `Transformers.threads`
    /// threads, each running single-threaded sgemm (per-head products are too small for
    /// OpenBLAS's own threads, whose idle spinning would also take a core from the others).
    static func attention(q: [Float], k: [Float], v: [Float], _ s: AttentionShape) -> [Float] {
        let T = s.T, NH = s.NH
        var out = [Float](repeating: 0, count: T * NH * s.hs)
        guard T > 0, NH > 0 else { return out }
        let jobs = max(1, min(Transformers.threads, NH))
        if jobs > 1 { openblas_set_num_threads(1) }
        defer { if jobs > 1 { openblas_set_num_threads(Int32(Transformers.threads)) } }
        q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                v.withUnsafeBufferPointer { v in
                    out.withUnsafeMutableBufferPointer { o in
                        // SAFETY: head h writes only columns [h·hs, (h+1)·hs) of o; q, k, v are read.
                        nonisolated(unsafe) let (q, k, v, o) = (q, k, v, o)
                        parallel(jobs) { j in
                            var scores = [Float](repeating: 0, count: T * T)
                            scores.withUnsafeMutableBufferPointer { sc in
                                for h in stride(from: j, to: NH, by: jobs) { attentionHead(h, q: q, k: k, v: v, out: o, scores: sc, s) }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// One head of `attention`, with `scores` [T, T] as scratch.
    private static func attentionHead(_ h: Int, q: UnsafeBufferPointer<Float>, k: UnsafeBufferPointer<Float>,
                                      v: UnsafeBufferPointer<Float>, out: UnsafeMutableBufferPointer<Float>,
                                      scores sc: UnsafeMutableBufferPointer<Float>, _ s: AttentionShape) {
        let T = s.T, hs = s.hs, group = s.NH / s.NKV
        let qStride = s.NH * hs, kvStride = s.NKV * hs
        let scale = s.scale ?? 1 / Float(hs).squareRoot()
        let kvh = h / group
        // scores[T, T] = q_h · k_hᵀ · scale
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(hs),
                    scale, q.baseAddress! + h * hs, Int32(qStride),
                    k.baseAddress! + kvh * hs, Int32(kvStride), 0, sc.baseAddress, Int32(T))
        for i in 0..<T {
            // Visible keys for query i: [lo, hi).
            let hi = s.causal ? i + 1 : s.window.map { min(T, i + $0) } ?? T
            let lo = s.window.map { max(0, i - $0 + 1) } ?? 0
            let row = i * T
            if let alibi = s.alibi {
                for j in lo..<hi { sc[row + j] += alibi.bias(head: h, key: j) * scale }
            }
            if let cap = s.softcap {
                for j in lo..<hi { sc[row + j] = cap * tanhf(sc[row + j] / cap) }
            }
            var m = -Float.infinity
            for j in lo..<hi { m = max(m, sc[row + j]) }
            for j in 0..<lo { sc[row + j] = 0 }
            for j in hi..<T { sc[row + j] = 0 }
            let visible = UnsafeMutableBufferPointer(rebasing: sc[row + lo..<row + hi])
            VectorMath.map(visible) { VectorMath.exp($0 - m) }
            var sum: Float = 0
            for j in lo..<hi { sum += sc[row + j] }
            let inv = 1 / sum
            for j in lo..<hi { sc[row + j] *= inv }
        }
        // out_h[T, hs] = P[T, T] · v_h[T, hs]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                    1, sc.baseAddress, Int32(T), v.baseAddress! + kvh * hs, Int32(kvStride),
                    0, out.baseAddress! + h * hs, Int32(qStride))
    }

    /// Rotary position embedding (Hugging Face's rotate-half convention) applied in place to
    /// x[T, heads·hs] for positions 0..<T: for i < d/2 (d = rotaryDim, default hs), the pair
    /// (x[i], x[i + d/2]) is rotated by angle pos · invFreq[i]; channels d..<hs are left alone.
    static func rope(_ x: inout [Float], T: Int, heads: Int, hs: Int, rotaryDim: Int? = nil, cos: [Float], sin: [Float]) {
        let half = (rotaryDim ?? hs) / 2
        x.withUnsafeMutableBufferPointer { x in
            for t in 0..<T {
                for h in 0..<heads {
                    let base = (t * heads + h) * hs
                    for i in 0..<half {
                        let c = cos[t * half + i], s = sin[t * half + i]
                        let a = x[base + i], b = x[base + i + half]
                        x[base + i] = a * c - b * s
                        x[base + i + half] = b * c + a * s
                    }
                }
            }
        }
    }

    /// cos and sin tables [T, hs/2] for rope, computed in f32 as PyTorch does
    /// (angle = Float(position) · invFreq, then cos/sin of that f32 angle).
    static func ropeTables(T: Int, invFreq: [Float], attentionScaling: Float = 1) -> (cos: [Float], sin: [Float]) {
        let half = invFreq.count
        var c = [Float](repeating: 0, count: T * half), s = c
        for t in 0..<T {
            for i in 0..<half {
                let angle = Float(t) * invFreq[i]
                c[t * half + i] = Float(Foundation.cos(Double(angle))) * attentionScaling
                s[t * half + i] = Float(Foundation.sin(Double(angle))) * attentionScaling
            }
        }
        return (c, s)
    }

    /// Rows of an embedding table [V, C] kept only as packed panels (a tied head): out[T, C].
    static func embed(_ table: PackedPanels, C: Int, ids: [Int]) -> [Float] {
        var out = [Float](repeating: 0, count: ids.count * C)
        out.withUnsafeMutableBufferPointer { o in
            for (t, id) in ids.enumerated() {
                // SAFETY: ids were checked against the vocabulary (row id lies in panel id/32).
                let base = table.values + (id / 32) * 32 * C + id % 32
                for i in 0..<C { o[t * C + i] = base[i * 32] }
            }
        }
        return out
    }

    /// Rows of an embedding table [V, C] for the given ids: out[T, C].
    static func embed(_ table: [Float], C: Int, ids: [Int]) -> [Float] {
        var out = [Float](repeating: 0, count: ids.count * C)
        table.withUnsafeBufferPointer { tab in
            out.withUnsafeMutableBufferPointer { o in
                for (t, id) in ids.enumerated() {
                    for i in 0..<C { o[t * C + i] = tab[id * C + i] }
                }
            }
        }
        return out
    }
}

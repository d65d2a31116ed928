// Vectorised exp and tanh for the training kernels, 8 lanes at a time.
//
// GELU's tanh through libm (tanhf → expm1f) took over half of the time of teacher sampling
// (perf, release build). The same exp as Sources/Transformer/VectorMath.swift (which this module
// must not import: it is internal there) is restated here: e^x = 2^n · e^r, n = round(x / ln 2)
// by the 1.5·2²³ trick, r = x - n·ln 2 in a Cody-Waite split, e^r by its degree-7 Taylor
// polynomial on |r| ≤ ln(2)/2 (truncation ≤ 5e-9, below f32 rounding); inputs clamped to
// [-87.3, 88.7] where e^x stays a normal f32. tanh(u) = 1 - 2 / (1 + e^{2u}): exact at ±inf
// limits, absolute error ~1e-7 near 0, which the gradient checks (1e-4 relative) absorb.

typealias Lanes = SIMD8<Float>

enum TrainMath {
    @inline(__always)
    static func exp(_ x: Lanes) -> Lanes {
        var x = x
        x.replace(with: -87.3, where: x .< -87.3)
        x.replace(with: 88.7, where: x .> 88.7)
        let magic = Lanes(repeating: 12_582_912)
        let t = x * 1.442695040888963 + magic
        let n = t - magic
        let r = (x - n * 0.693359375) - n * -2.12194440e-4
        var p = Lanes(repeating: 1.0 / 5040)
        p = p * r + 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        return p * unsafeBitCast((ni &+ 127) &<< 23, to: Lanes.self)
    }

    @inline(__always)
    static func tanh(_ u: Lanes) -> Lanes { 1 - 2 / (1 + exp(2 * u)) }

    /// out[i] = f(a[i], b[i], out[i]) for i < count, 8 lanes at a time (b = 0 when nil); the
    /// tail goes through zero-padded vectors.
    /// SAFETY: `out` and every input address `count` floats (FloatBuffer.swift).
    @inline(__always)
    static func map(_ out: Ptr, _ a: CPtr, _ b: CPtr?, count: Int, _ f: (Lanes, Lanes, Lanes) -> Lanes) {
        let ro = UnsafeMutableRawPointer(out), ra = UnsafeRawPointer(a), rb = b.map { UnsafeRawPointer($0) }
        var i = 0
        while i + 8 <= count {
            let x = ra.loadUnaligned(fromByteOffset: i * 4, as: Lanes.self)
            let y = rb?.loadUnaligned(fromByteOffset: i * 4, as: Lanes.self) ?? Lanes(repeating: 0)
            let o = ro.loadUnaligned(fromByteOffset: i * 4, as: Lanes.self)
            ro.storeBytes(of: f(x, y, o), toByteOffset: i * 4, as: Lanes.self)
            i += 8
        }
        if i < count {
            var x = Lanes(repeating: 0), y = Lanes(repeating: 0), o = Lanes(repeating: 0)
            for j in 0..<(count - i) {
                x[j] = a[i + j]
                y[j] = b?[i + j] ?? 0
                o[j] = out[i + j]
            }
            let r = f(x, y, o)
            for j in 0..<(count - i) { out[i + j] = r[j] }
        }
    }
}

// Vectorised exp, and the activations built on it, 8 lanes at a time (SIMD8: two SSE
// registers on baseline x86-64; wider vectors spilled to the stack and were slower).
//
// libm's expf/tanhf are scalar: in GPT-2's forward pass tanhf alone took ~17 % of the time
// (perf, BENCHMARKS.md). exp is computed here as 2^n · e^r with n = round(x / ln 2) and
// r = x - n·ln 2 (Cody-Waite split of ln 2), e^r by its degree-7 Taylor polynomial on
// |r| ≤ ln(2)/2, whose truncation error (≤ 0.35^8/8! ≈ 5e-9) is below f32 rounding; the
// result is within about 2 ulp of expf (checked in the tests). Inputs are clamped to
// [-87.3, 88.7], where e^x stays a normal f32. Comparisons and selects are written with
// `.<`/`replace(with:where:)`: Swift's generic `clamped` and float-to-int conversions were
// scalarised and cost more than the arithmetic.
//
//   gelu_tanh(x) = 0.5·x·(1 + tanh(u)) = x · sigmoid(2u),  u = √(2/π)·(x + 0.044715·x³)
//   silu(x)      = x · sigmoid(x)

typealias Lanes = SIMD8<Float>

enum VectorMath {
    @inline(__always)
    static func exp(_ x: Lanes) -> Lanes {
        var x = x
        x.replace(with: -87.3, where: x .< -87.3)  // NaN compares false and stays NaN
        x.replace(with: 88.7, where: x .> 88.7)
        // Round x/ln2 to an integer with the 1.5·2^23 trick: adding it leaves the integer in
        // the low mantissa bits (round to nearest even), with no float-to-int conversion.
        let magic = Lanes(repeating: 12_582_912)
        let t = x * 1.442695040888963 + magic
        let n = t - magic
        let r = (x - n * 0.693359375) - n * -2.12194440e-4   // ln 2 = 0.693359375 - 2.12194440e-4
        var p = Lanes(repeating: 1.0 / 5040)
        p = p * r + 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let scale = (ni &+ 127) &<< 23
        return p * unsafeBitCast(scale, to: Lanes.self)
    }

    /// Applies `f` to `x` in place, 8 lanes at a time (the tail through a padded vector).
    @inline(__always)
    static func map(_ x: UnsafeMutableBufferPointer<Float>, _ f: (Lanes) -> Lanes) {
        let n = x.count
        var i = 0
        let base = UnsafeMutableRawPointer(x.baseAddress!)
        while i + 8 <= n {
            let v = base.loadUnaligned(fromByteOffset: i * 4, as: Lanes.self)
            base.storeBytes(of: f(v), toByteOffset: i * 4, as: Lanes.self)
            i += 8
        }
        if i < n {
            var v = Lanes(repeating: 0)
            for j in 0..<(n - i) { v[j] = x[i + j] }
            let r = f(v)
            for j in 0..<(n - i) { x[i + j] = r[j] }
        }
    }

    static func exp(_ x: inout [Float]) {
        x.withUnsafeMutableBufferPointer { map($0, exp) }
    }

    static func geluTanh(_ x: inout [Float]) {
        let k: Float = (2 / Float.pi).squareRoot()
        x.withUnsafeMutableBufferPointer { buf in
            map(buf) { v in
                let u = k * (v + 0.044715 * v * v * v)
                return v / (1 + exp(-2 * u))
            }
        }
    }

    static func silu(_ x: UnsafeMutableBufferPointer<Float>) {
        map(x) { v in v / (1 + exp(-v)) }
    }
}

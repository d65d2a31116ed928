// Exact conversions between f32 and the 16-bit floats, on bit patterns.
//
// f32 -> f16 and f32 -> bf16 round to nearest, ties to even (IEEE 754's default, what
// numpy, PyTorch and F16C hardware do). ±0, ±inf and subnormals are exact where the target
// can represent them; results too large become ±inf, too small become ±0.
//
// NaN: the sign and the top mantissa bits (the payload the narrower type can hold) are kept
// as they are, without quieting, so a 16-bit NaN widened to f32 and narrowed back is the same
// bit pattern. If the kept bits are all zero the quiet bit is set, so a NaN stays a NaN.
//
// f16 -> f32 and bf16 -> f32 are exact for every pattern, NaN payloads included.

public enum FloatBits {
    // MARK: f16

    public static func f32ToF16(_ bits: UInt32) -> UInt16 {
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        let mantissa = bits & 0x7F_FFFF

        if exponent == 0xFF {  // inf or NaN
            if mantissa == 0 { return sign | 0x7C00 }
            var payload = UInt16(truncatingIfNeeded: mantissa >> 13)
            if payload == 0 { payload = 0x200 }
            return sign | 0x7C00 | payload
        }
        // Unbiased exponent, rebiased for f16 (bias 15).
        let e = exponent - 127 + 15
        if e >= 0x1F { return sign | 0x7C00 }  // overflow -> inf
        if e <= 0 {
            // Subnormal in f16 (or zero). The value is (1.m) * 2^(exponent-127); an f16
            // subnormal unit is 2^-24. Shift the 24-bit significand into place and round.
            if e < -10 { return sign }  // below half the smallest subnormal: ±0
            let significand = mantissa | 0x80_0000  // implicit 1 (exponent != 0 here)
            let shift = UInt32(14 - e)  // 14..24
            let half = UInt32(1) << (shift - 1)
            let rest = significand & ((UInt32(1) << shift) - 1)
            var result = significand >> shift
            if rest > half || (rest == half && (result & 1) == 1) { result += 1 }
            return sign | UInt16(truncatingIfNeeded: result)
        }
        // Normal: keep 10 mantissa bits, round the 13 dropped ones. A carry out of the
        // mantissa correctly bumps the exponent (and can produce inf).
        var result = UInt32(e) << 10 | (mantissa >> 13)
        let rest = mantissa & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && (result & 1) == 1) { result += 1 }
        return sign | UInt16(truncatingIfNeeded: result)
    }

    public static func f16ToF32(_ h: UInt16) -> UInt32 {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F { return sign | 0x7F80_0000 | (mantissa << 13) }
        if exponent == 0 {
            if mantissa == 0 { return sign }
            // Subnormal: normalise. value = mantissa * 2^-24.
            var m = mantissa
            var e: UInt32 = 127 - 15 + 1
            while m & 0x400 == 0 {
                m <<= 1
                e -= 1
            }
            return sign | (e << 23) | ((m & 0x3FF) << 13)
        }
        return sign | ((exponent + 127 - 15) << 23) | (mantissa << 13)
    }

    // MARK: bf16

    public static func f32ToBF16(_ bits: UInt32) -> UInt16 {
        if bits & 0x7F80_0000 == 0x7F80_0000 && bits & 0x7F_FFFF != 0 {  // NaN
            var top = UInt16(truncatingIfNeeded: bits >> 16)
            if top & 0x7F == 0 { top |= 0x40 }
            return top
        }
        // Round to nearest even on the dropped 16 bits; a carry into the exponent is the
        // correct rounding (up to inf for the largest finite values).
        let lsb = (bits >> 16) & 1
        let rounded = bits &+ 0x7FFF &+ lsb
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    @inline(__always)
    public static func bf16ToF32(_ h: UInt16) -> UInt32 { UInt32(h) << 16 }

    // MARK: Bulk conversions (little-endian byte buffers)

    /// Converts `count` little-endian f32 values from `src` into 16-bit values in `dst`.
    public static func convertF32(
        _ src: UnsafeRawBufferPointer, to dst: UnsafeMutableRawBufferPointer, bf16: Bool
    ) {
        let count = src.count / 4
        precondition(dst.count >= count * 2, "destination too small")
        for i in 0..<count {
            let bits = UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
            let h = bf16 ? f32ToBF16(bits) : f32ToF16(bits)
            dst.storeBytes(of: h.littleEndian, toByteOffset: i * 2, as: UInt16.self)
        }
    }

    /// Converts `count` little-endian 16-bit floats from `src` into f32 values in `dst`.
    public static func convertToF32(
        _ src: UnsafeRawBufferPointer, to dst: UnsafeMutableRawBufferPointer, bf16: Bool
    ) {
        let count = src.count / 2
        precondition(dst.count >= count * 4, "destination too small")
        for i in 0..<count {
            let h = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            let bits = bf16 ? bf16ToF32(h) : f16ToF32(h)
            dst.storeBytes(of: bits.littleEndian, toByteOffset: i * 4, as: UInt32.self)
        }
    }
}

import CkptCore
import Testing

/// An independent f32 -> bf16 reference: the nearest of the two bf16 neighbours, measured
/// in exact Double arithmetic, ties to the even one.
func referenceBF16(_ bits: UInt32) -> UInt16 {
    let lo = bits & 0xFFFF_0000
    let hi = lo &+ 0x1_0000
    let x = Double(Float(bitPattern: bits))
    let dl = abs(x - Double(Float(bitPattern: lo)))
    // The upper neighbour may be past the largest finite value: treat it as 2^128.
    let upper = (hi & 0x7F80_0000) == 0x7F80_0000 ? (bits >> 31 == 1 ? -1.0 : 1.0) * 0x1p128 : Double(Float(bitPattern: hi))
    let dh = abs(x - upper)
    if dl < dh { return UInt16(lo >> 16) }
    if dh < dl { return UInt16(truncatingIfNeeded: hi >> 16) }
    return (lo >> 16) & 1 == 0 ? UInt16(lo >> 16) : UInt16(truncatingIfNeeded: hi >> 16)
}

@Suite struct FloatBitsTests {
    @Test func f16ToF32MatchesSwiftFloat16ForEveryPattern() {
        for h in 0...UInt16.max {
            let ours = FloatBits.f16ToF32(h)
            let reference = Float(Float16(bitPattern: h))
            if reference.isNaN {
                // NaN payload kept exactly (no quieting): sign | exponent | payload << 13.
                #expect(ours == (UInt32(h & 0x8000) << 16) | 0x7F80_0000 | (UInt32(h & 0x3FF) << 13))
            } else {
                #expect(ours == reference.bitPattern, "f16 \(String(h, radix: 16))")
            }
        }
    }

    @Test func f32ToF16MatchesSwiftFloat16OnSampledPatterns() {
        // A stride coprime to 2^32 walks all exponents, both signs and many mantissas.
        var bits: UInt32 = 0
        for _ in 0..<600_000 {
            bits = bits &+ 7_159
            let f = Float(bitPattern: bits)
            let ours = FloatBits.f32ToF16(bits)
            if f.isNaN {
                #expect(Float16(bitPattern: ours).isNaN)
                #expect(ours & 0x8000 == UInt16(bits >> 16) & 0x8000)
            } else {
                #expect(ours == Float16(f).bitPattern, "f32 \(String(bits, radix: 16))")
            }
        }
    }

    @Test func f32ToF16RoundsHalfwayCasesToEvenAndOverflowsToInf() {
        for bits in [UInt32(0x3F80_1000), 0x3F80_3000, 0x3380_0000, 0x3300_0000, 0x3300_0001, 0x477F_F000, 0x477F_EFFF, 0x7F7F_FFFF, 0x0000_0001] {
            #expect(FloatBits.f32ToF16(bits) == Float16(Float(bitPattern: bits)).bitPattern)
        }
        #expect(FloatBits.f32ToF16(0x477F_F000) == 0x7C00)  // 65520 rounds to inf
        #expect(FloatBits.f32ToF16(0x8000_0000) == 0x8000)  // -0
    }

    @Test func sixteenBitPatternsSurviveWideningAndNarrowing() {
        for h in 0...UInt16.max {
            #expect(FloatBits.f32ToF16(FloatBits.f16ToF32(h)) == h)
            #expect(FloatBits.f32ToBF16(FloatBits.bf16ToF32(h)) == h)
        }
    }

    @Test func f32ToBF16MatchesNearestEvenReference() {
        var bits: UInt32 = 0
        for _ in 0..<600_000 {
            bits = bits &+ 7_159
            let ours = FloatBits.f32ToBF16(bits)
            if Float(bitPattern: bits).isNaN {
                #expect(ours & 0x7F80 == 0x7F80 && ours & 0x7F != 0)
                #expect(ours & 0x807F == UInt16(bits >> 16) & 0x807F || (bits >> 16) & 0x7F == 0)
            } else {
                #expect(ours == referenceBF16(bits), "f32 \(String(bits, radix: 16))")
            }
        }
        #expect(FloatBits.f32ToBF16(0x3F80_8000) == 0x3F80)  // tie, even stays
        #expect(FloatBits.f32ToBF16(0x3F81_8000) == 0x3F82)  // tie, odd rounds up
        #expect(FloatBits.f32ToBF16(0x7F7F_FFFF) == 0x7F80)  // overflow to inf
        #expect(FloatBits.f32ToBF16(0x7F80_0001) == 0x7FC0)  // NaN with low payload stays NaN
        #expect(FloatBits.f32ToBF16(0xFFC1_2345) == 0xFFC1)  // payload's top bits kept
    }

    @Test func bulkConversionMatchesScalar() {
        let values: [Float] = [1, -2.5, 0x1p-20, .infinity, -0.0, 65504, 3.14159]
        var src: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { src += $0 } }
        for bf16 in [false, true] {
            var dst = [UInt8](repeating: 0, count: values.count * 2)
            src.withUnsafeBytes { s in dst.withUnsafeMutableBytes { FloatBits.convertF32(s, to: $0, bf16: bf16) } }
            for (i, v) in values.enumerated() {
                let h = UInt16(dst[2 * i]) | UInt16(dst[2 * i + 1]) << 8
                #expect(h == (bf16 ? FloatBits.f32ToBF16(v.bitPattern) : FloatBits.f32ToF16(v.bitPattern)))
            }
        }
    }
}

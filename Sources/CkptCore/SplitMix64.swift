import Foundation

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed, fully specified generator, so the
/// same seed gives the same numbers on every machine. Used for verify inputs, calibration
/// sequences, distillation data and test data.
public struct SplitMix64: Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) / 9_007_199_254_740_992.0 }

    public mutating func next(below n: Int) -> Int { Int(next() % UInt64(n)) }

    /// Standard normal by Box-Muller.
    public mutating func nextGaussian() -> Float {
        let u1 = (Double(next() >> 11) + 1) / 9_007_199_254_740_993.0
        let u2 = Double(next() >> 11) / 9_007_199_254_740_992.0
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}

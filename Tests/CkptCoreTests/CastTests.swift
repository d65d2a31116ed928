import CkptCore
import Quantize
import Testing

@Suite struct CastTests {
    func tensor(_ values: [Float]) throws -> Tensor {
        var bytes: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        return try Tensor(name: "w", dtype: .f32, shape: [values.count], data: .owned(bytes))
    }

    @Test func castsToSixteenBitFloatsAndBack() throws {
        let values: [Float] = [1, -0.0, 0.1, 65519, 70000, .infinity, 1e-8]
        let t = try tensor(values)
        for target in [DType.f16, .bf16] {
            let c = try Cast.cast(t, to: target)
            #expect(c.dtype == target && c.shape == [values.count] && c.byteCount == values.count * 2)
            let bytes = try c.data.load()
            for (i, v) in values.enumerated() {
                let h = UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8
                let expected = target == .f16 ? Float16(v).bitPattern : FloatBits.f32ToBF16(v.bitPattern)
                #expect(h == expected)
            }
            let back = try Cast.cast(c, to: .f32)
            #expect(back.dtype == .f32 && back.byteCount == values.count * 4)
        }
    }

    @Test func lazyCastReadsOnlyWhenAsked() throws {
        let t = try tensor([1, 2, 3])
        let lazy = try Cast.lazyCast(t, to: .bf16)
        #expect(lazy.dtype == .bf16 && lazy.byteCount == 6)
        #expect(try lazy.data.load() == Cast.cast(t, to: .bf16).data.load())
    }

    @Test func leavesIntegerTensorsAlone() throws {
        let t = try Tensor(name: "ids", dtype: .i64, shape: [1], data: .owned([1, 0, 0, 0, 0, 0, 0, 0]))
        #expect(!Cast.applies(to: t, target: .f16))
        #expect(try Cast.cast(t, to: .f16).dtype == .i64)
    }
}

// DType: the element types a tensor can hold, independent of any file format.
//
// Each format maps its own vocabulary to these in its own folder (safetensors' "BF16",
// HDF5's datatypes, GGUF's type ids ...). Names here are ckpt's canonical lower-case names,
// the ones `ckpt inspect` prints.
//
// The layout of every dtype is either one element of `bits` bits (sub-byte types such as
// f4 are packed, as the safetensors crate packs them) or, for block-quantized types added
// later, a block of `values` elements stored in `bytes` bytes.

public enum DType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    // IEEE and machine-learning floats.
    case f64, f32, f16, bf16
    // 8-bit floats (OCP FP8 and AMD's FNUZ variants) and the OCP micro-scaling types.
    case f8_e4m3, f8_e5m2, f8_e4m3fnuz, f8_e5m2fnuz, f8_e8m0
    case f6_e2m3, f6_e3m2, f4
    // Complex with two f32 parts.
    case c64
    // Integers and bool (one byte, 0 or 1).
    case i64, i32, i16, i8, u64, u32, u16, u8, bool

    public enum Layout: Sendable, Equatable {
        /// One element takes `bits` bits; elements are packed without padding.
        case element(bits: Int)
        /// `values` elements are stored together in `bytes` bytes (block quantization).
        case block(values: Int, bytes: Int)
    }

    public var layout: Layout {
        switch self {
        case .f64, .i64, .u64, .c64: return .element(bits: 64)
        case .f32, .i32, .u32: return .element(bits: 32)
        case .f16, .bf16, .i16, .u16: return .element(bits: 16)
        case .f8_e4m3, .f8_e5m2, .f8_e4m3fnuz, .f8_e5m2fnuz, .f8_e8m0, .i8, .u8, .bool:
            return .element(bits: 8)
        case .f6_e2m3, .f6_e3m2: return .element(bits: 6)
        case .f4: return .element(bits: 4)
        }
    }

    /// Size of one element in bytes, for the whole-byte element types; nil otherwise.
    public var elementSize: Int? {
        if case .element(let bits) = layout, bits % 8 == 0 { return bits / 8 }
        return nil
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16, .f8_e4m3, .f8_e5m2, .f8_e4m3fnuz, .f8_e5m2fnuz, .f8_e8m0,
             .f6_e2m3, .f6_e3m2, .f4, .c64:
            return true
        default:
            return false
        }
    }

    public var description: String { rawValue }

    /// Bytes needed for `elements` values, overflow-checked; nil on overflow or when the
    /// elements do not fill whole bytes (or whole blocks).
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0 else { return nil }
        switch layout {
        case .element(let bits):
            let (totalBits, overflow) = elements.multipliedReportingOverflow(by: bits)
            guard !overflow, totalBits % 8 == 0 else { return nil }
            return totalBits / 8
        case .block(let values, let bytes):
            guard elements % values == 0 else { return nil }
            let (total, overflow) = (elements / values).multipliedReportingOverflow(by: bytes)
            return overflow ? nil : total
        }
    }
}

/// Element count of a shape, overflow-checked; nil on overflow or a negative dimension.
/// The empty shape is a scalar with one element.
public func elementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow else { return nil }
        n = p
    }
    return n
}

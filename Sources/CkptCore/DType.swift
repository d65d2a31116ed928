// DType: the element types a tensor can hold, independent of any file format.
//
// Each format maps its own vocabulary to these in its own folder (safetensors' "BF16",
// HDF5's datatypes, GGUF's type ids ...). Names here are ckpt's canonical lower-case names,
// the ones `ckpt inspect` prints.
//
// The layout of every dtype is either one element of `bits` bits (sub-byte types such as
// f4 are packed, as the safetensors crate packs them) or, for block-quantized types, a block
// of `values` consecutive elements of a row stored in `bytes` bytes (scales and packed
// quants together). Blocks run along the innermost dimension, whose length must be a whole
// number of blocks (GGUF's rule).
//
// Block types:
//   GGUF/ggml (byte layouts in Sources/Quantize/GGML.swift, after ggml-common.h):
//     q8_0 q4_0 q4_1 q5_0 q5_1 (32 values), q2_k q3_k q4_k q5_k q6_k (256 values)
//   ckpt's own weight-only integer schemes (layouts in Sources/Quantize/IntegerSchemes.swift):
//     i8_g{32,64,128,256}  symmetric int8:  f16 scale + int8 values per group
//     i4_g{32,64,128,256}  symmetric int4:  f16 scale + packed nibbles per group
//     u4_g{32,64,128,256}  asymmetric int4: f16 scale + f16 minimum + packed nibbles per group

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
    // Block-quantized: GGUF's types.
    case q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k
    // Block-quantized: ckpt's group-wise integer types.
    case i8_g32, i8_g64, i8_g128, i8_g256
    case i4_g32, i4_g64, i4_g128, i4_g256
    case u4_g32, u4_g64, u4_g128, u4_g256

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
        // ggml-common.h: block_q8_0 {half d; int8 qs[32]} ... block_q6_K (210 bytes).
        case .q8_0: return .block(values: 32, bytes: 34)
        case .q4_0: return .block(values: 32, bytes: 18)
        case .q4_1: return .block(values: 32, bytes: 20)
        case .q5_0: return .block(values: 32, bytes: 22)
        case .q5_1: return .block(values: 32, bytes: 24)
        case .q2_k: return .block(values: 256, bytes: 84)
        case .q3_k: return .block(values: 256, bytes: 110)
        case .q4_k: return .block(values: 256, bytes: 144)
        case .q5_k: return .block(values: 256, bytes: 176)
        case .q6_k: return .block(values: 256, bytes: 210)
        case .i8_g32, .i8_g64, .i8_g128, .i8_g256,
             .i4_g32, .i4_g64, .i4_g128, .i4_g256,
             .u4_g32, .u4_g64, .u4_g128, .u4_g256:
            let g = groupSize!
            switch rawValue.first {
            case "i" where rawValue.hasPrefix("i8"): return .block(values: g, bytes: 2 + g)
            case "i": return .block(values: g, bytes: 2 + g / 2)
            default: return .block(values: g, bytes: 4 + g / 2)
            }
        }
    }

    /// Group size of ckpt's integer block types (nil for the others).
    public var groupSize: Int? {
        let parts = rawValue.split(separator: "_")
        guard parts.count == 2, parts[1].first == "g" else { return nil }
        return Int(parts[1].dropFirst())
    }

    public var isQuantized: Bool {
        if case .block = layout { return true }
        return false
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

    /// The element types (one value per element, no blocks).
    public static var elementTypes: [DType] { allCases.filter { !$0.isQuantized } }

    public var description: String { rawValue }

    /// Bytes a tensor of this shape takes, overflow-checked; nil on overflow, a negative
    /// dimension, elements that do not fill whole bytes, or (block types) an innermost
    /// dimension that is not a whole number of blocks.
    public func byteCount(shape: [Int]) -> Int? {
        guard let n = elementCount(shape) else { return nil }
        if case .block(let values, _) = layout, let last = shape.last, last % values != 0 { return nil }
        if case .block = layout, shape.isEmpty { return nil }
        return byteCount(elements: n)
    }

    /// Bytes needed for `elements` values, overflow-checked; nil on overflow or when the
    /// elements do not fill whole bytes (or whole blocks). Prefer `byteCount(shape:)`, which
    /// also checks that block types' rows are whole blocks.
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

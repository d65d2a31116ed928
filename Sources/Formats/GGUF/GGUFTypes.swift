// GGUF's vocabularies: ggml tensor type ids, metadata value types, and metadata values.
// Ids from ggml.h (`enum ggml_type`) and gguf.h (`enum gguf_type`); block sizes in DType.

import CkptCore

extension GGUF {
    /// ggml type id <-> ckpt dtype, for the types ckpt reads and writes.
    static let typeIDs: [(id: UInt32, dtype: DType)] = [
        (0, .f32), (1, .f16), (2, .q4_0), (3, .q4_1), (6, .q5_0), (7, .q5_1), (8, .q8_0),
        (10, .q2_k), (11, .q3_k), (12, .q4_k), (13, .q5_k), (14, .q6_k),
        (24, .i8), (25, .i16), (26, .i32), (27, .i64), (28, .f64), (30, .bf16),
    ]
    /// ggml types ckpt recognises but cannot hold (named in errors).
    static let otherTypeNames: [UInt32: String] = [
        9: "Q8_1", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL",
        21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
    ]
    static let dtypeByID: [UInt32: DType] = Dictionary(uniqueKeysWithValues: typeIDs.map { ($0.id, $0.dtype) })
    static let idByDType: [DType: UInt32] = Dictionary(uniqueKeysWithValues: typeIDs.map { ($0.dtype, $0.id) })

    /// Whether a GGUF file can hold tensors of this dtype.
    public static func canHold(_ dtype: DType) -> Bool { idByDType[dtype] != nil }
}

/// A metadata value's type (gguf.h `enum gguf_type`).
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, bool = 7, string = 8, array = 9
    case u64 = 10, i64 = 11, f64 = 12

    /// Bytes of one value of a fixed-size type; nil for string and array.
    var size: Int? {
        switch self {
        case .u8, .i8, .bool: return 1
        case .u16, .i16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64: return 8
        case .string, .array: return nil
        }
    }

    /// The smallest number of bytes one value of this type can take in a file (string: its
    /// 8-byte length; array: element type + count), for capping counts against the file.
    var minSize: Int { size ?? (self == .string ? 8 : 12) }

    public var name: String {
        switch self {
        case .u8: return "u8"
        case .i8: return "i8"
        case .u16: return "u16"
        case .i16: return "i16"
        case .u32: return "u32"
        case .i32: return "i32"
        case .f32: return "f32"
        case .bool: return "bool"
        case .string: return "str"
        case .array: return "array"
        case .u64: return "u64"
        case .i64: return "i64"
        case .f64: return "f64"
        }
    }

    static let byName: [String: GGUFValueType] = Dictionary(uniqueKeysWithValues: allCases.map { ($0.name, $0) })
}

/// One metadata value.
public indirect enum GGUFValue: Equatable, Sendable {
    case u8(UInt8), i8(Int8), u16(UInt16), i16(Int16), u32(UInt32), i32(Int32), f32(Float), bool(Bool)
    case string(String)
    case u64(UInt64), i64(Int64), f64(Double)
    /// Elements all of `elementType` (for nested arrays: `.array`, each element an `.array`).
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .u8: return .u8
        case .i8: return .i8
        case .u16: return .u16
        case .i16: return .i16
        case .u32: return .u32
        case .i32: return .i32
        case .f32: return .f32
        case .bool: return .bool
        case .string: return .string
        case .u64: return .u64
        case .i64: return .i64
        case .f64: return .f64
        case .array: return .array
        }
    }

    public var intValue: Int? {
        switch self {
        case .u8(let v): return Int(v)
        case .i8(let v): return Int(v)
        case .u16(let v): return Int(v)
        case .i16(let v): return Int(v)
        case .u32(let v): return Int(v)
        case .i32(let v): return Int(v)
        case .u64(let v): return Int(exactly: v)
        case .i64(let v): return Int(v)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .f32(let v): return Double(v)
        case .f64(let v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

import CkptCore

/// safetensors' dtype vocabulary, as the reference crate (`safetensors/src/tensor.rs`)
/// defines it.
enum SafetensorsDType {
    /// Names in the crate's `Dtype` enum order, which the writer sorts by (descending,
    /// largest alignment first, then by name). Keep this order exactly.
    static let ordered: [(name: String, dtype: DType)] = [
        ("BOOL", .bool), ("F4", .f4), ("F6_E2M3", .f6_e2m3), ("F6_E3M2", .f6_e3m2),
        ("U8", .u8), ("I8", .i8), ("F8_E5M2", .f8_e5m2), ("F8_E4M3", .f8_e4m3),
        ("F8_E8M0", .f8_e8m0), ("F8_E4M3FNUZ", .f8_e4m3fnuz), ("F8_E5M2FNUZ", .f8_e5m2fnuz),
        ("I16", .i16), ("U16", .u16), ("F16", .f16), ("BF16", .bf16),
        ("I32", .i32), ("U32", .u32), ("F32", .f32), ("C64", .c64), ("F64", .f64),
        ("I64", .i64), ("U64", .u64),
    ]

    static let byName: [String: DType] = Dictionary(uniqueKeysWithValues: ordered.map { ($0.name, $0.dtype) })
    static let nameOf: [DType: String] = Dictionary(uniqueKeysWithValues: ordered.map { ($0.dtype, $0.name) })
    static let rank: [DType: Int] = Dictionary(uniqueKeysWithValues: ordered.enumerated().map { ($1.dtype, $0) })

    static func name(_ dtype: DType) -> String? { nameOf[dtype] }
}

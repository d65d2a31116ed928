// HDF5 datatypes <-> ckpt dtypes.
//
// Read (any order; big-endian bytes are swapped to little-endian after reading, libhdf5 is
// never asked to convert values, so NaN payloads and every bit survive):
//   H5T_INTEGER 1/2/4/8 bytes, full precision, signed or not   -> i8..i64, u8..u64
//   H5T_FLOAT IEEE binary64/32/16 layouts                     -> f64, f32, f16
//   H5T_FLOAT 2 bytes, sign 15, exponent 7..14 (bias 127),
//             mantissa 0..6                                    -> bf16 (ckpt's writer, below)
//   H5T_ENUM of a 1-byte integer {FALSE: 0, TRUE: 1}           -> bool (h5py's bool)
//   H5T_COMPOUND {r: f32, i: f32}, 8 bytes                     -> c64 (h5py's complex64)
//   uint8 with attribute `ckpt:dtype` = f8_*/f6_*/f4          -> that dtype (ckpt's writer)
// Write: the same types, little-endian. f16 is built as h5py builds numpy's float16 (a copy of
// IEEE f32 with fields (15, 10, 5, 0, 10), size 2, bias 15); bf16 the same way with fields
// (15, 7, 8, 0, 7) and bias 127: a 16-bit float type with bf16's layout, which h5py reads as
// float32 (exactly) and h5dump prints as numbers. The 8-, 6- and 4-bit floats, for which HDF5
// has no float type (their NaN/inf rules are not IEEE's), are stored as their bit patterns in
// uint8 datasets tagged with the dtype in the attribute `ckpt:dtype`: h5py and h5dump read the
// bytes, `ml_dtypes` users can `.view()` them, ckpt reads the dtype. f4/f6 are packed (several
// values per byte), so their datasets are 1-D byte arrays and the element shape is kept in the
// attribute `ckpt:shape`.

import CHDF5
import CkptCore

struct H5ElementType: Equatable {
    var dtype: DType
    /// Bytes per byte-swapping unit when the data is big-endian (4 for c64's two f32 parts);
    /// 0 when no swap is needed.
    var swapUnit: Int
    var isBool: Bool
    /// f4/f6: a 1-D array of packed bytes whose element shape is in `ckpt:shape`.
    var packed: Bool
}

enum H5Types {
    /// Dtypes stored as uint8 bit patterns with a `ckpt:dtype` attribute: the 8/6/4-bit
    /// floats and every block-quantized type (its blocks' bytes, shape in `ckpt:shape`).
    static let byteStoredDTypes: [DType] = [.f8_e4m3, .f8_e5m2, .f8_e4m3fnuz, .f8_e5m2fnuz, .f8_e8m0, .f6_e2m3, .f6_e3m2, .f4]
        + DType.allCases.filter(\.isQuantized)

    /// Float layouts ckpt maps: (size, spos, epos, esize, mpos, msize, bias).
    struct FloatLayout: Equatable {
        var size: Int, spos: Int, epos: Int, esize: Int, mpos: Int, msize: Int, bias: Int
    }
    static let floatLayouts: [(DType, FloatLayout)] = [
        (.f64, .init(size: 8, spos: 63, epos: 52, esize: 11, mpos: 0, msize: 52, bias: 1023)),
        (.f32, .init(size: 4, spos: 31, epos: 23, esize: 8, mpos: 0, msize: 23, bias: 127)),
        (.f16, .init(size: 2, spos: 15, epos: 10, esize: 5, mpos: 0, msize: 10, bias: 15)),
        (.bf16, .init(size: 2, spos: 15, epos: 7, esize: 8, mpos: 0, msize: 7, bias: 127)),
    ]

    /// Maps a dataset's datatype; call under the lock.
    static func classify(_ type: hid_t, dataset: String) throws(HDF5Error) -> H5ElementType {
        let cls = H5Tget_class(type)
        let size = H5Tget_size(type)
        let order = H5Tget_order(type)
        func unsupported(_ what: String) -> HDF5Error { .unsupportedType(dataset: dataset, type: what) }
        func orderName() -> String { order == H5T_ORDER_BE ? "big-endian" : order == H5T_ORDER_LE ? "little-endian" : "order \(order.rawValue)" }
        switch cls {
        case H5T_INTEGER:
            let signed = H5Tget_sign(type) == H5T_SGN_2
            guard [1, 2, 4, 8].contains(size), H5Tget_precision(type) == size * 8, H5Tget_offset(type) == 0,
                  order == H5T_ORDER_LE || order == H5T_ORDER_BE else {
                throw unsupported("\(size)-byte integer with precision \(H5Tget_precision(type)), offset \(H5Tget_offset(type)), \(orderName())")
            }
            let table: [Int: (DType, DType)] = [1: (.i8, .u8), 2: (.i16, .u16), 4: (.i32, .u32), 8: (.i64, .u64)]
            let dtype = signed ? table[size]!.0 : table[size]!.1
            return H5ElementType(dtype: dtype, swapUnit: order == H5T_ORDER_BE && size > 1 ? size : 0, isBool: false, packed: false)
        case H5T_FLOAT:
            var spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0
            try H5.check(H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize), "dataset `\(dataset)`")
            let layout = FloatLayout(size: size, spos: spos, epos: epos, esize: esize, mpos: mpos, msize: msize, bias: H5Tget_ebias(type))
            guard let (dtype, _) = floatLayouts.first(where: { $0.1 == layout }),
                  H5Tget_precision(type) == size * 8, H5Tget_offset(type) == 0, H5Tget_norm(type) == H5T_NORM_IMPLIED,
                  order == H5T_ORDER_LE || order == H5T_ORDER_BE else {
                throw unsupported("\(size * 8)-bit float (sign \(spos), exponent \(epos)+\(esize) bias \(layout.bias), mantissa \(mpos)+\(msize), \(orderName()))")
            }
            return H5ElementType(dtype: dtype, swapUnit: order == H5T_ORDER_BE ? size : 0, isBool: false, packed: false)
        case H5T_ENUM:
            // h5py's bool: enum over int8 with exactly FALSE = 0 and TRUE = 1.
            guard size == 1, H5Tget_nmembers(type) == 2 else { throw unsupported("enum of \(size) bytes (only h5py's bool is a tensor type)") }
            var members: [String: Int8] = [:]
            for i in 0..<UInt32(2) {
                guard let name = H5.ownedString(H5Tget_member_name(type, i)) else { break }
                var v: Int8 = -1
                try H5.check(H5Tget_member_value(type, i, &v), "dataset `\(dataset)`")
                members[name] = v
            }
            guard members == ["FALSE": 0, "TRUE": 1] else { throw unsupported("enum \(members.keys.sorted()) (only h5py's bool {FALSE, TRUE} is a tensor type)") }
            return H5ElementType(dtype: .bool, swapUnit: 0, isBool: true, packed: false)
        case H5T_COMPOUND:
            // h5py's complex64: {r: f32, i: f32} at offsets 0 and 4.
            guard size == 8, H5Tget_nmembers(type) == 2,
                  H5.ownedString(H5Tget_member_name(type, 0)) == "r", H5.ownedString(H5Tget_member_name(type, 1)) == "i",
                  H5Tget_member_offset(type, 0) == 0, H5Tget_member_offset(type, 1) == 4 else {
                throw unsupported("compound of \(size) bytes (only h5py's complex64 {r, i} is a tensor type)")
            }
            var parts: [H5ElementType] = []
            for i in 0..<UInt32(2) {
                let member = try H5ID(H5Tget_member_type(type, i), .datatype, "dataset `\(dataset)`")
                parts.append(try classify(member.raw, dataset: dataset))
            }
            guard parts.allSatisfy({ $0.dtype == .f32 }), parts[0].swapUnit == parts[1].swapUnit else {
                throw unsupported("complex with \(parts.map(\.dtype.rawValue)) parts (only complex64 is a ckpt dtype)")
            }
            return H5ElementType(dtype: .c64, swapUnit: parts[0].swapUnit, isBool: false, packed: false)
        case H5T_STRING: throw unsupported("string")
        case H5T_VLEN: throw unsupported("variable-length sequence")
        case H5T_ARRAY: throw unsupported("array")
        case H5T_REFERENCE: throw unsupported("reference")
        case H5T_BITFIELD: throw unsupported("bitfield")
        case H5T_TIME: throw unsupported("time")
        case H5T_OPAQUE: throw unsupported("opaque")
        default: throw unsupported("class \(cls.rawValue)")
        }
    }

    /// The HDF5 datatype ckpt writes for a dtype (little-endian); call under the lock.
    static func create(for dtype: DType, tensor: String) throws(HDF5Error) -> H5ID {
        let context = "tensor `\(tensor)`: creating its datatype"
        func copy(_ t: hid_t) throws(HDF5Error) -> H5ID { try H5ID(H5Tcopy(t), .datatype, context) }
        switch dtype {
        case .f64: return try copy(chdf5_ieee_f64le())
        case .f32: return try copy(chdf5_ieee_f32le())
        case .f16, .bf16:
            let layout = floatLayouts.first { $0.0 == dtype }!.1
            let t = try copy(chdf5_ieee_f32le())
            try H5.check(H5Tset_fields(t.raw, layout.spos, layout.epos, layout.esize, layout.mpos, layout.msize), context)
            try H5.check(H5Tset_size(t.raw, 2), context)
            try H5.check(H5Tset_ebias(t.raw, layout.bias), context)
            return t
        case .i8: return try copy(chdf5_std_i8le())
        case .u8: return try copy(chdf5_std_u8le())
        case .i16: return try copy(chdf5_std_i16le())
        case .u16: return try copy(chdf5_std_u16le())
        case .i32: return try copy(chdf5_std_i32le())
        case .u32: return try copy(chdf5_std_u32le())
        case .i64: return try copy(chdf5_std_i64le())
        case .u64: return try copy(chdf5_std_u64le())
        case .bool:
            let t = try H5ID(H5Tenum_create(chdf5_native_int8()), .datatype, context)
            var no: Int8 = 0, yes: Int8 = 1
            try H5.check(H5Tenum_insert(t.raw, "FALSE", &no), context)
            try H5.check(H5Tenum_insert(t.raw, "TRUE", &yes), context)
            return t
        case .c64:
            let t = try H5ID(H5Tcreate(H5T_COMPOUND, 8), .datatype, context)
            try H5.check(H5Tinsert(t.raw, "r", 0, chdf5_ieee_f32le()), context)
            try H5.check(H5Tinsert(t.raw, "i", 4, chdf5_ieee_f32le()), context)
            return t
        case .f8_e4m3, .f8_e5m2, .f8_e4m3fnuz, .f8_e5m2fnuz, .f8_e8m0, .f6_e2m3, .f6_e3m2, .f4:
            return try copy(chdf5_std_u8le())
        default:  // block-quantized: the blocks' bytes
            return try copy(chdf5_std_u8le())
        }
    }
}

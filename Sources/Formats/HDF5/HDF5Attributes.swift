// HDF5 attributes -> strings, for metadata and for recognising layouts (Keras).
//
// What each attribute becomes (documented in the README):
//   string (fixed or variable length, scalar)      the string (fixed-length padding removed)
//   string array                                   a JSON array of strings
//   integer / float scalar                         decimal text: 3, -7, 0.1, 1e-05, nan, inf
//                                                  (shortest text that reads back the same value
//                                                  in the attribute's own precision)
//   integer / float array                          a JSON-style array: [1, 2, 3]
//   h5py bool (enum FALSE/TRUE)                    true / false (arrays: [true, false])
//   anything else (compound, reference, vlen, ...) left out
// Attributes are read in creation order where the object tracks it (ckpt's writer does), else
// in name order. Each is capped at 16 MiB (Keras' model_config, the largest seen in practice,
// is tens of kB), the count per object at 100,000.

import CHDF5
import CkptCore

enum H5AttributeValue: Equatable {
    case string(String)
    case strings([String])
    /// Numbers and bools, already formatted.
    case text(String)

    var metadataText: String {
        switch self {
        case .string(let s): return s
        case .strings(let a): return JSONValue.array(a.map { .string($0) }).serialized()
        case .text(let t): return t
        }
    }
}

enum H5Attributes {
    static let maxBytes = 16 << 20
    static let maxCount = 100_000

    /// Reads every attribute of an open object, in creation order when tracked. `objectPath`
    /// is for messages. Call under the lock.
    static func read(_ obj: hid_t, objectPath: String, creationOrderTracked: Bool) throws(HDF5Error) -> [(String, H5AttributeValue)] {
        var info = H5O_info_t()
        try H5.check(H5Oget_info2(obj, &info, UInt32(H5O_INFO_NUM_ATTRS)), "attributes of `\(objectPath)`")
        guard info.num_attrs <= UInt64(maxCount) else { throw .tooManyObjects(limit: maxCount) }
        let index = creationOrderTracked ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME
        var out: [(String, H5AttributeValue)] = []
        for i in 0..<info.num_attrs {
            let attr = try H5ID(H5Aopen_by_idx(obj, ".", index, H5_ITER_INC, i, chdf5_p_default(), chdf5_p_default()),
                                .attribute, "attribute \(i) of `\(objectPath)`")
            let name = try H5.string("attribute \(i) of `\(objectPath)`") { buf, n in H5Aget_name(attr.raw, n, buf) }
            if let value = try value(of: attr.raw, name: name, objectPath: objectPath) { out.append((name, value)) }
        }
        return out
    }

    private static func value(of attr: hid_t, name: String, objectPath: String) throws(HDF5Error) -> H5AttributeValue? {
        let context = "attribute `\(name)` of `\(objectPath)`"
        let type = try H5ID(H5Aget_type(attr), .datatype, context)
        let space = try H5ID(H5Aget_space(attr), .dataspace, context)
        let spaceClass = H5Sget_simple_extent_type(space.raw)
        guard spaceClass == H5S_SCALAR || spaceClass == H5S_SIMPLE else { return nil }  // H5S_NULL: no value
        let points = H5Sget_simple_extent_npoints(space.raw)
        guard points >= 0 else { throw .library(context: context, message: H5.takeErrorStack()) }
        let count = Int(points)
        let isScalar = spaceClass == H5S_SCALAR
        let cls = H5Tget_class(type.raw)
        let size = H5Tget_size(type.raw)
        // Cap what we would allocate before allocating it.
        let (bytes, overflow) = count.multipliedReportingOverflow(by: max(size, MemoryLayout<UnsafeRawPointer>.size))
        guard !overflow, bytes <= maxBytes else {
            throw .attributeTooLarge(object: objectPath, attribute: name, bytes: overflow ? Int.max : bytes, limit: maxBytes)
        }

        switch cls {
        case H5T_STRING:
            let strings = try readStrings(attr, type: type.raw, space: space.raw, count: count, context: context)
            return isScalar ? .string(strings.first ?? "") : .strings(strings)
        case H5T_INTEGER:
            let signed = H5Tget_sign(type.raw) == H5T_SGN_2
            var texts: [String] = []
            if signed {
                var values = [Int64](repeating: 0, count: count)
                try H5.check(H5Aread(attr, chdf5_native_int64(), &values), context)
                texts = values.map { String($0) }
            } else {
                var values = [UInt64](repeating: 0, count: count)
                try H5.check(H5Aread(attr, chdf5_native_uint64(), &values), context)
                texts = values.map { String($0) }
            }
            return .text(isScalar ? texts.first ?? "" : "[" + texts.joined(separator: ", ") + "]")
        case H5T_FLOAT:
            var texts: [String] = []
            if size <= 4 {
                var values = [Float](repeating: 0, count: count)
                try H5.check(H5Aread(attr, chdf5_native_float(), &values), context)
                texts = values.map(format)
            } else {
                var values = [Double](repeating: 0, count: count)
                try H5.check(H5Aread(attr, chdf5_native_double(), &values), context)
                texts = values.map(format)
            }
            return .text(isScalar ? texts.first ?? "" : "[" + texts.joined(separator: ", ") + "]")
        case H5T_ENUM:
            guard let element = try? H5Types.classify(type.raw, dataset: objectPath), element.isBool else { return nil }
            var values = [UInt8](repeating: 0, count: count)
            try H5.check(H5Aread(attr, type.raw, &values), context)
            let texts = values.map { $0 == 0 ? "false" : "true" }
            return .text(isScalar ? texts.first ?? "" : "[" + texts.joined(separator: ", ") + "]")
        default:
            return nil
        }
    }

    static func format(_ v: Float) -> String { v.isNaN ? "nan" : v.isInfinite ? (v < 0 ? "-inf" : "inf") : trimmed("\(v)") }
    static func format(_ v: Double) -> String { v.isNaN ? "nan" : v.isInfinite ? (v < 0 ? "-inf" : "inf") : trimmed("\(v)") }
    /// Swift prints 3.0 for an integral value; Python's str() does too, but a plain "3" reads
    /// better in metadata and JSON. Keep the exponent form as Swift gives it (1e-05).
    private static func trimmed(_ s: String) -> String { s.hasSuffix(".0") ? String(s.dropLast(2)) : s }

    /// Reads a string attribute of `count` elements, variable or fixed length.
    private static func readStrings(_ attr: hid_t, type: hid_t, space: hid_t, count: Int, context: String) throws(HDF5Error) -> [String] {
        let variable = try H5.truth(H5Tis_variable_str(type), context)
        if variable {
            let mem = try H5ID(H5Tcopy(chdf5_c_s1()), .datatype, context)
            try H5.check(H5Tset_size(mem.raw, chdf5_variable()), context)
            try H5.check(H5Tset_cset(mem.raw, H5Tget_cset(type)), context)
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            try H5.check(H5Aread(attr, mem.raw, &pointers), context)
            // SAFETY: libhdf5 allocated each string; they are copied, then reclaimed once.
            let strings = pointers.map { p in p.map { String(cString: $0) } ?? "" }
            _ = H5Dvlen_reclaim(mem.raw, space, chdf5_p_default(), &pointers)
            return strings
        }
        let size = H5Tget_size(type)
        guard size > 0 else { return [String](repeating: "", count: count) }
        var bytes = [UInt8](repeating: 0, count: count * size)
        try H5.check(H5Aread(attr, type, &bytes), context)
        let spacePadded = H5Tget_strpad(type) == H5T_STR_SPACEPAD
        return (0..<count).map { i in
            var s = bytes[i * size..<(i + 1) * size]
            if let nul = s.firstIndex(of: 0) { s = s[..<nul] }
            if spacePadded { while s.last == 0x20 { s = s.dropLast() } }
            return String(decoding: s, as: UTF8.self)
        }
    }
}

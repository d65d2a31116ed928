// GGUF metadata inside a WeightGraph, whose metadata is string -> string (what safetensors'
// `__metadata__` and HDF5 attributes map to).
//
// Each GGUF key keeps its name. Its value becomes text: strings as they are, numbers in
// decimal (f32/f64 in the shortest form that reads back to the same bits; nan, inf, -inf),
// bools as true/false, arrays as JSON (non-finite floats as the strings "nan", "inf", "-inf").
// The GGUF type of every value that is not a plain string is kept under one extra key,
// `ckpt.gguf.types`, a JSON object {key: type}, with types u8 i8 u16 i16 u32 i32 u64 i64 f32
// f64 bool and array<T> (array<array<T>> for nested arrays; GGUF lets inner arrays differ in
// type, ckpt assumes they share the first one's). So GGUF -> ckpt -> GGUF is lossless, and
// other formats still see readable values.

import CkptCore
import OrderedCollections

public enum GGUFMetadata {
    public static let typesKey = "ckpt.gguf.types"

    static func typeName(_ v: GGUFValue) -> String {
        if case .array(let t, let elements) = v {
            if t == .array, let first = elements.first { return "array<" + typeName(first) + ">" }
            return "array<\(t.name)>"
        }
        return v.type.name
    }

    static func floatText<F: BinaryFloatingPoint & LosslessStringConvertible>(_ f: F) -> String {
        if f.isNaN { return "nan" }
        if f.isInfinite { return f < 0 ? "-inf" : "inf" }
        return f.description
    }

    static func json(_ v: GGUFValue) -> JSONValue {
        switch v {
        case .string(let s): return .string(s)
        case .bool(let b): return .bool(b)
        case .f32(let f): return f.isFinite ? .number(f.description) : .string(floatText(f))
        case .f64(let f): return f.isFinite ? .number(f.description) : .string(floatText(f))
        case .array(_, let e): return .array(e.map(json))
        default: return .number(text(v))
        }
    }

    public static func text(_ v: GGUFValue) -> String {
        switch v {
        case .u8(let x): return String(x)
        case .i8(let x): return String(x)
        case .u16(let x): return String(x)
        case .i16(let x): return String(x)
        case .u32(let x): return String(x)
        case .i32(let x): return String(x)
        case .u64(let x): return String(x)
        case .i64(let x): return String(x)
        case .f32(let x): return floatText(x)
        case .f64(let x): return floatText(x)
        case .bool(let b): return b ? "true" : "false"
        case .string(let s): return s
        case .array: return json(v).serialized()
        }
    }

    /// Parses `text` as a value of the type named `type` (nil: a string).
    public static func value(key: String, text: String, type: String?) throws(GGUFError) -> GGUFValue {
        guard let type, type != "str" else { return .string(text) }
        if type.hasPrefix("array<") && type.hasSuffix(">") {
            let json: JSONValue
            do { json = try JSONValue.parse(text) } catch { throw .invalidMetadata(key: key, reason: "not a JSON array: \(error)") }
            return try fromJSON(key: key, json, type: type, depth: 0)
        }
        guard let v = scalar(text, type) else { throw .invalidMetadata(key: key, reason: "\"\(text.prefix(40))\" is not a \(type)") }
        return v
    }

    static func scalar(_ t: String, _ type: String) -> GGUFValue? {
        switch type {
        case "u8": return UInt8(t).map { .u8($0) }
        case "i8": return Int8(t).map { .i8($0) }
        case "u16": return UInt16(t).map { .u16($0) }
        case "i16": return Int16(t).map { .i16($0) }
        case "u32": return UInt32(t).map { .u32($0) }
        case "i32": return Int32(t).map { .i32($0) }
        case "u64": return UInt64(t).map { .u64($0) }
        case "i64": return Int64(t).map { .i64($0) }
        case "f32": return Float(t).map { .f32($0) }
        case "f64": return Double(t).map { .f64($0) }
        case "bool": return t == "true" ? .bool(true) : t == "false" ? .bool(false) : nil
        case "str": return .string(t)
        default: return nil
        }
    }

    static func fromJSON(key: String, _ json: JSONValue, type: String, depth: Int) throws(GGUFError) -> GGUFValue {
        guard depth <= GGUF.maxArrayDepth else { throw .arrayTooDeep(key: key, depth: depth) }
        if type.hasPrefix("array<") && type.hasSuffix(">") {
            let inner = String(type.dropFirst(6).dropLast())
            guard let elements = json.arrayValue else { throw .invalidMetadata(key: key, reason: "expected an array") }
            var out: [GGUFValue] = []
            out.reserveCapacity(elements.count)
            for e in elements { out.append(try fromJSON(key: key, e, type: inner, depth: depth + 1)) }
            let elementType: GGUFValueType = inner.hasPrefix("array<") ? .array : (GGUFValueType.byName[inner] ?? .string)
            guard GGUFValueType.byName[inner] != nil || inner.hasPrefix("array<") else { throw .invalidMetadata(key: key, reason: "unknown type \(inner)") }
            return .array(elementType, out)
        }
        let text: String
        switch json {
        case .string(let s): text = s
        case .number(let n): text = n
        case .bool(let b): text = b ? "true" : "false"
        default: throw .invalidMetadata(key: key, reason: "unexpected JSON value in array")
        }
        guard let v = scalar(text, type) else { throw .invalidMetadata(key: key, reason: "\"\(text.prefix(40))\" is not a \(type)") }
        return v
    }

    /// Puts GGUF key/values into a graph's metadata (replacing keys of the same name).
    public static func store(_ kvs: OrderedDictionary<String, GGUFValue>, into graph: inout WeightGraph) {
        var types = OrderedDictionary<String, JSONValue>()
        if let existing = graph.metadata[typesKey], let o = (try? JSONValue.parse(existing))?.objectValue { types = o }
        for (k, v) in kvs {
            graph.metadata[k] = text(v)
            if case .string = v { types.removeValue(forKey: k) } else { types[k] = .string(typeName(v)) }
        }
        if types.isEmpty { graph.metadata.removeValue(forKey: typesKey) } else { graph.metadata[typesKey] = JSONValue.object(types).serialized() }
    }

    public static func set(_ key: String, _ value: GGUFValue, in graph: inout WeightGraph) {
        store([key: value], into: &graph)
    }

    /// The graph's metadata as typed GGUF values (keys without a recorded type are strings).
    /// `only`: parse just the keys it accepts (a vocabulary's 10⁵ strings are costly to parse).
    public static func values(of graph: WeightGraph, only: ((String) -> Bool)? = nil) throws(GGUFError) -> OrderedDictionary<String, GGUFValue> {
        var types: OrderedDictionary<String, JSONValue> = [:]
        if let t = graph.metadata[typesKey] {
            guard let o = (try? JSONValue.parse(t))?.objectValue else { throw .invalidMetadata(key: typesKey, reason: "not a JSON object") }
            types = o
        }
        var out = OrderedDictionary<String, GGUFValue>()
        for (k, v) in graph.metadata where k != typesKey && only?(k) ?? true {
            out[k] = try value(key: k, text: v, type: types[k]?.stringValue)
        }
        return out
    }
}

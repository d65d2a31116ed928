// A small, strict JSON reader and writer.
//
// Why not Foundation's JSONSerialization/JSONDecoder: checkpoint headers are untrusted, and
// Foundation silently keeps one of two duplicate keys, forgets key order, and turns
// numbers into Double (offsets up to 2^64 lose precision). This parser
//   - refuses duplicate keys (with the key named),
//   - keeps object key order,
//   - keeps each number as its source text, converted on demand and exactly,
//   - caps nesting depth, and follows RFC 8259 strictly (no trailing commas, no comments,
//     no leading zeros, no unescaped control characters, valid UTF-8 and surrogates).
// The writer escapes strings exactly as serde_json does, so headers we write are
// byte-identical to the Rust safetensors crate's.

import OrderedCollections

public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's text as written (already validated against the JSON grammar).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(OrderedDictionary<String, JSONValue>)

    public static func int(_ v: Int) -> JSONValue { .number(String(v)) }
    public static func double(_ v: Double) -> JSONValue {
        // Integral doubles are written as integers; others with Swift's shortest round-trip form.
        if v.isFinite, v == v.rounded(), abs(v) < 1e15 { return .number(String(Int(v))) }
        return .number(v.isFinite ? "\(v)" : "null")
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var objectValue: OrderedDictionary<String, JSONValue>? {
        if case .object(let o) = self { return o } else { return nil }
    }
    /// The number as an exact integer, if it is one that fits in Int (no fraction or exponent).
    public var intValue: Int? {
        if case .number(let s) = self { return Int(s) } else { return nil }
    }
    /// The number as an exact unsigned 64-bit integer, if it is one.
    public var uint64Value: UInt64? {
        if case .number(let s) = self { return UInt64(s) } else { return nil }
    }
    public var doubleValue: Double? {
        if case .number(let s) = self { return Double(s) } else { return nil }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
}

public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    /// Set when the error is a key that appears twice in one object.
    public var duplicateKey: String?
    public var description: String { "\(message) at byte \(offset)" }
}

extension JSONValue {
    /// Maximum nesting of arrays and objects. Checkpoint headers nest 3 deep and model
    /// configs rarely 5; 64 leaves room while keeping the recursion shallow.
    public static let maxDepth = 64

    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONError) -> JSONValue {
        let array = Array(bytes)
        var parser = JSONParser(bytes: array)
        return try parser.parseDocument()
    }

    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8))
    }

    /// Like `parse`, but the object values of the keys in `entryKeys` are returned as an array
    /// of `[key, value]` pairs whose keys are told apart by their bytes. Swift compares strings
    /// by canonical equivalence ("é" == "e\u{301}"), which a tokenizer vocabulary must not do.
    public static func parse(_ bytes: some Collection<UInt8>, entriesOf entryKeys: Set<String>) throws(JSONError) -> JSONValue {
        var parser = JSONParser(bytes: Array(bytes))
        parser.entryKeys = entryKeys
        return try parser.parseDocument()
    }
}

private struct JSONParser {
    let bytes: [UInt8]
    var pos = 0
    var entryKeys: Set<String> = []

    init(bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ message: String) -> JSONError { JSONError(message: message, offset: pos) }

    mutating func parseDocument() throws(JSONError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard pos == bytes.count else { throw fail("unexpected data after the JSON value") }
        return value
    }

    mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        guard pos < bytes.count else { throw fail("unexpected end of JSON") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character '\(printable(bytes[pos]))'")
        }
    }

    func printable(_ b: UInt8) -> String {
        (0x20..<0x7F).contains(b) ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }

    mutating func expectLiteral(_ literal: String) throws(JSONError) {
        let lit = Array(literal.utf8)
        guard pos + lit.count <= bytes.count else { throw fail("unexpected end of JSON") }
        guard bytes[pos..<pos + lit.count].elementsEqual(lit) else { throw fail("invalid literal") }
        pos += lit.count
    }

    /// Walks an object's members: for each `"key": value` it calls `member` with the key and
    /// the offset of its opening quote, the parser placed at the value (which `member` parses).
    /// One walker for both object forms below, so they cannot drift apart.
    mutating func parseMembers(depth: Int,
                               _ member: (inout JSONParser, String, Int) throws(JSONError) -> Void) throws(JSONError) {
        guard depth <= JSONValue.maxDepth else { throw fail("JSON nested deeper than \(JSONValue.maxDepth)") }
        pos += 1  // {
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") {
            pos += 1
            return
        }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyStart = pos
            let key = try parseString()
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            pos += 1
            skipWhitespace()
            try member(&self, key, keyStart)
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of JSON") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; return }
            throw fail("expected ',' or '}'")
        }
    }

    mutating func parseObject(depth: Int) throws(JSONError) -> JSONValue {
        var object = OrderedDictionary<String, JSONValue>()
        try parseMembers(depth: depth) { (p: inout JSONParser, key: String, keyStart: Int) throws(JSONError) in
            let value = p.entryKeys.contains(key) && p.pos < p.bytes.count && p.bytes[p.pos] == UInt8(ascii: "{")
                ? try p.parseEntries(depth: depth + 1) : try p.parseValue(depth: depth)
            if object.updateValue(value, forKey: key) != nil {
                throw JSONError(message: "duplicate key \"\(key)\"", offset: keyStart, duplicateKey: key)
            }
        }
        return .object(object)
    }

    /// An object as `[[key, value], …]`, duplicate keys detected by their bytes.
    mutating func parseEntries(depth: Int) throws(JSONError) -> JSONValue {
        var entries: [JSONValue] = []
        var seen = Set<[UInt8]>()
        try parseMembers(depth: depth) { (p: inout JSONParser, key: String, keyStart: Int) throws(JSONError) in
            let value = try p.parseValue(depth: depth)
            guard seen.insert(Array(key.utf8)).inserted else {
                throw JSONError(message: "duplicate key \"\(key)\"", offset: keyStart, duplicateKey: key)
            }
            entries.append(.array([.string(key), value]))
        }
        return .array(entries)
    }

    mutating func parseArray(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= JSONValue.maxDepth else { throw fail("JSON nested deeper than \(JSONValue.maxDepth)") }
        pos += 1  // [
        var array: [JSONValue] = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") {
            pos += 1
            return .array(array)
        }
        while true {
            skipWhitespace()
            array.append(try parseValue(depth: depth))
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of JSON") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(array) }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func parseNumber() throws(JSONError) -> String {
        let start = pos
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < bytes.count, isDigit(bytes[pos]) else { throw fail("invalid number") }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < bytes.count, isDigit(bytes[pos]) { throw fail("invalid number (leading zero)") }
        } else {
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw fail("invalid number") }
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw fail("invalid number") }
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        return String(decoding: bytes[start..<pos], as: UTF8.self)
    }

    mutating func parseHex4() throws(JSONError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("unexpected end of JSON in \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[pos]
            let d: UInt32
            switch b {
            case 0x30...0x39: d = UInt32(b - 0x30)
            case 0x41...0x46: d = UInt32(b - 0x41 + 10)
            case 0x61...0x66: d = UInt32(b - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    mutating func parseString() throws(JSONError) -> String {
        pos += 1  // opening quote
        var out: [UInt8] = []
        var runStart = pos
        while true {
            guard pos < bytes.count else { throw fail("unterminated string") }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                out.append(contentsOf: bytes[runStart..<pos])
                pos += 1
                break
            }
            if b < 0x20 { throw fail("unescaped control character in string") }
            if b != UInt8(ascii: "\\") { pos += 1; continue }
            out.append(contentsOf: bytes[runStart..<pos])
            pos += 1
            guard pos < bytes.count else { throw fail("unterminated string") }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard pos + 2 <= bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u")
                    else { throw fail("unpaired surrogate in string") }
                    pos += 2
                    let low = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired surrogate in string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw fail("unpaired surrogate in string")
                }
                guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default:
                throw fail("invalid escape")
            }
            runStart = pos
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
        return s
    }
}

// MARK: Writing

extension JSONValue {
    /// Compact serialization, byte-compatible with serde_json's `to_string`.
    public func serialized() -> String {
        var out = ""
        write(to: &out, indent: nil, level: 0)
        return out
    }

    /// Indented serialization (two spaces, `"key": value`), as Python's `json.dumps(indent=2)`.
    public func prettyPrinted() -> String {
        var out = ""
        write(to: &out, indent: "  ", level: 0)
        return out
    }

    func write(to out: inout String, indent: String?, level: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let a):
            if a.isEmpty { out += "[]"; return }
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                newline(&out, indent, level + 1)
                v.write(to: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent, level)
            out += "]"
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            out += "{"
            for (i, (k, v)) in o.enumerated() {
                if i > 0 { out += "," }
                newline(&out, indent, level + 1)
                JSONValue.writeString(k, to: &out)
                out += indent == nil ? ":" : ": "
                v.write(to: &out, indent: indent, level: level + 1)
            }
            newline(&out, indent, level)
            out += "}"
        }
    }

    private func newline(_ out: inout String, _ indent: String?, _ level: Int) {
        guard let indent else { return }
        out += "\n"
        for _ in 0..<level { out += indent }
    }

    /// serde_json's escaping: `"` and `\`, the short escapes for \b \f \n \r \t, other
    /// control characters as \u00xx (lowercase hex); everything else as raw UTF-8.
    public static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

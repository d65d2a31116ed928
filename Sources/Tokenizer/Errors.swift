// Errors of the tokenizer module: one line naming the file (when known) and what is wrong.

import CkptCore

public struct TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case unsupported, invalid, encoding }
    public var kind: Kind
    public var message: String
    public var path: String?

    public var description: String { (path.map { "\($0): " } ?? "") + message }

    static func unsupported(_ m: String) -> TokenizerError { TokenizerError(kind: .unsupported, message: m) }
    static func invalid(_ m: String) -> TokenizerError { TokenizerError(kind: .invalid, message: m) }
    static func encoding(_ m: String) -> TokenizerError { TokenizerError(kind: .encoding, message: m) }

    func at(_ path: String) -> TokenizerError {
        var e = self
        if e.path == nil { e.path = path }
        return e
    }
}

/// Typed access to one component's JSON object, with errors that name the component.
struct Fields {
    let json: JSONValue
    /// e.g. "normalizer Replace"
    let what: String

    init(_ json: JSONValue, _ what: String) throws {
        guard json.objectValue != nil else { throw TokenizerError.invalid("\(what): expected a JSON object") }
        self.json = json
        self.what = what
    }

    func has(_ key: String) -> Bool {
        if let v = json[key], v != .null { return true }
        return false
    }

    func string(_ key: String) throws -> String? {
        guard let v = json[key], v != .null else { return nil }
        guard let s = v.stringValue else { throw TokenizerError.invalid("\(what): `\(key)` must be a string") }
        return s
    }

    func requireString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw TokenizerError.invalid("\(what): `\(key)` is missing") }
        return s
    }

    func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let v = json[key], v != .null else { return d }
        guard let b = v.boolValue else { throw TokenizerError.invalid("\(what): `\(key)` must be true or false") }
        return b
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let v = json[key], v != .null else { return nil }
        guard let b = v.boolValue else { throw TokenizerError.invalid("\(what): `\(key)` must be true, false or null") }
        return b
    }

    func int(_ key: String, default d: Int, range: ClosedRange<Int> = 0...Int(Int32.max)) throws -> Int {
        guard let v = json[key], v != .null else { return d }
        guard let i = v.intValue, range.contains(i) else { throw TokenizerError.invalid("\(what): `\(key)` must be an integer in \(range)") }
        return i
    }

    func array(_ key: String) throws -> [JSONValue] {
        guard let v = json[key], v != .null else { return [] }
        guard let a = v.arrayValue else { throw TokenizerError.invalid("\(what): `\(key)` must be an array") }
        return a
    }

    /// A `{"String": s}` or `{"Regex": r}` pattern.
    func pattern(_ key: String) throws -> Pattern {
        guard let p = json[key]?.objectValue, p.count == 1 else {
            throw TokenizerError.invalid("\(what): `\(key)` must be {\"String\": …} or {\"Regex\": …}")
        }
        if let s = p["String"]?.stringValue { return try Pattern(literal: s) }
        if let r = p["Regex"]?.stringValue { return try Pattern(regex: r) }
        throw TokenizerError.invalid("\(what): `\(key)` must be {\"String\": …} or {\"Regex\": …}")
    }

    /// Refuses keys this implementation does not know, so nothing is silently ignored.
    func only(_ keys: Set<String>) throws {
        for k in json.objectValue!.keys where k != "type" && !keys.contains(k) {
            throw TokenizerError.unsupported("\(what): option `\(k)` is not supported")
        }
    }
}

/// Builders of one kind of component (normalizer, pre-tokenizer, …) by their `type` name.
struct Registry<Component>: Sendable {
    let kind: String
    let builders: [String: @Sendable (Fields) throws -> Component]

    func build(_ json: JSONValue) throws -> Component {
        guard let type = json["type"]?.stringValue else { throw TokenizerError.invalid("\(kind): no `type`") }
        guard let make = builders[type] else {
            throw TokenizerError.unsupported("\(kind) `\(type)` is not supported (supported: \(builders.keys.sorted().joined(separator: ", ")))")
        }
        return try make(try Fields(json, "\(kind) \(type)"))
    }
}

enum TokenizerJSON {
    /// A JSON object's entries: from the `[[key, value], …]` form the loader parses vocabularies
    /// into (keys told apart by bytes), or from an ordinary object.
    static func entries(_ v: JSONValue) -> [(String, JSONValue)]? {
        if let o = v.objectValue { return o.map { ($0.key, $0.value) } }
        guard let a = v.arrayValue else { return nil }
        var out: [(String, JSONValue)] = []
        out.reserveCapacity(a.count)
        for e in a {
            guard let p = e.arrayValue, p.count == 2, let k = p[0].stringValue else { return nil }
            out.append((k, p[1]))
        }
        return out
    }
}

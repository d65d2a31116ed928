// Post-processors: the special tokens around an encoded sequence (single sequences only:
// `ckpt tokenize` and verification encode one text at a time).

import CkptCore

protocol PostProcessor: Sendable {
    func process(_ ids: [Int]) -> [Int]
}

enum PostProcessors {
    static let registry: Registry<any PostProcessor> = Registry(kind: "post-processor", builders: [
        "TemplateProcessing": { f in try TemplateProcessing(f) },
        "BertProcessing": { f in
            try f.only(["sep", "cls"])
            return Surround(before: [try idPair(f, "cls")], after: [try idPair(f, "sep")])
        },
        "RobertaProcessing": { f in
            try f.only(["sep", "cls", "trim_offsets", "add_prefix_space"])
            return Surround(before: [try idPair(f, "cls")], after: [try idPair(f, "sep")])
        },
        // Offsets only: the ids are unchanged.
        "ByteLevel": { f in try f.only(["add_prefix_space", "trim_offsets", "use_regex"]); return Surround(before: [], after: []) },
        "Sequence": { f in
            try f.only(["processors"])
            return ProcessorSequence(items: try f.array("processors").map { try registry.build($0) })
        },
    ])

    /// `["[SEP]", 102]`
    static func idPair(_ f: Fields, _ key: String) throws -> Int {
        guard let a = f.json[key]?.arrayValue, a.count == 2, a[0].stringValue != nil, let id = a[1].intValue, id >= 0 else {
            throw TokenizerError.invalid("\(f.what): `\(key)` must be [token, id]")
        }
        return id
    }
}

struct Surround: PostProcessor {
    var before: [Int]
    var after: [Int]
    func process(_ ids: [Int]) -> [Int] { before + ids + after }
}

struct TemplateProcessing: PostProcessor {
    enum Part: Sendable { case special([Int]), sequence }
    var single: [Part]

    init(_ f: Fields) throws {
        try f.only(["single", "pair", "special_tokens"])
        var specials: [String: [Int]] = [:]
        if let o = f.json["special_tokens"]?.objectValue {
            for (name, v) in o {
                guard let ids = v["ids"]?.arrayValue?.compactMap({ $0.intValue }), ids.allSatisfy({ $0 >= 0 }),
                      ids.count == v["ids"]?.arrayValue?.count else {
                    throw TokenizerError.invalid("\(f.what): special token \(Pattern.quoted(name)) has no valid `ids`")
                }
                specials[name] = ids
            }
        }
        var parts: [Part] = []
        for p in try f.array("single") {
            if let s = p["SpecialToken"] {
                guard let name = s["id"]?.stringValue, let ids = specials[name] else {
                    throw TokenizerError.invalid("\(f.what): template names a special token missing from `special_tokens`")
                }
                parts.append(.special(ids))
            } else if let s = p["Sequence"] {
                guard s["id"]?.stringValue == "A" else { throw TokenizerError.invalid("\(f.what): the single template may only hold sequence A") }
                parts.append(.sequence)
            } else {
                throw TokenizerError.invalid("\(f.what): template pieces are SpecialToken or Sequence")
            }
        }
        single = parts
    }

    func process(_ ids: [Int]) -> [Int] {
        single.flatMap { p -> [Int] in
            switch p {
            case .special(let s): return s
            case .sequence: return ids
            }
        }
    }
}

struct ProcessorSequence: PostProcessor {
    var items: [any PostProcessor]
    func process(_ ids: [Int]) -> [Int] { items.reduce(ids) { $1.process($0) } }
}

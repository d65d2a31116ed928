// A Hugging Face tokenizer, read from `tokenizer.json` (or a BERT `vocab.txt` directory),
// encoding text to ids exactly as the `tokenizers` library does and decoding ids back.
//
// Encoding, as the reference runs it:
//   1. added tokens whose `normalized` is false are matched on the raw text;
//   2. the text between them is normalized, then added tokens with `normalized` true are
//      matched on it;
//   3. the rest is pre-tokenized into words, and the model turns each word into ids;
//   4. the post-processor adds special tokens (unless asked not to).
// Truncation and padding settings in a tokenizer.json are read but not applied: `encode`
// returns the whole sequence, as `tokenizer(text)` does in transformers by default.

import CkptCore
import Foundation

public struct AddedToken: Sendable, Equatable {
    public var id: Int
    public var content: String
    public var special: Bool
    public var singleWord: Bool
    public var lstrip: Bool
    public var rstrip: Bool
    public var normalized: Bool
}

public struct Tokenizer: Sendable {
    let normalizer: (any Normalizer)?
    let preTokenizer: (any PreTokenizer)?
    let model: any TokenModel
    let postProcessor: (any PostProcessor)?
    let decoder: (any Decoder)?
    public let addedTokens: [AddedToken]
    let rawMatcher: AddedTokenMatcher
    let normalizedMatcher: AddedTokenMatcher
    let addedByID: [Int: AddedToken]
    /// Where the tokenizer was read from.
    public let source: String
    /// The parsed tokenizer.json without the model's vocabulary and merges (see `definition`).
    var json: JSONValue? = nil

    /// The largest tokenizer.json accepted (real ones are at most a few tens of MB).
    public static let maxFileSize = 256 * 1024 * 1024

    // MARK: Loading

    /// A tokenizer from a model directory (tokenizer.json, else vocab.txt + tokenizer_config.json)
    /// or from a tokenizer.json file.
    /// - Throws: `TokenizerError` naming the file when it is missing or malformed, or uses a
    ///   component ckpt does not implement.
    public static func load(_ url: URL) throws -> Tokenizer { try load(url.path) }

    /// A tokenizer from a model directory or tokenizer.json (see ``load(_:)-(URL)``).
    public static func load(_ path: String) throws -> Tokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TokenizerError(kind: .invalid, message: "no such file or directory", path: path)
        }
        if !isDir.boolValue {
            if path.hasSuffix("vocab.txt") { return try loadVocabTxt(directory: (path as NSString).deletingLastPathComponent, vocab: path) }
            return try Tokenizer(jsonBytes: try readCapped(path), source: path)
        }
        let json = (path as NSString).appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json) { return try Tokenizer(jsonBytes: try readCapped(json), source: json) }
        let vocab = (path as NSString).appendingPathComponent("vocab.txt")
        if FileManager.default.fileExists(atPath: vocab) { return try loadVocabTxt(directory: path, vocab: vocab) }
        throw TokenizerError(kind: .invalid, message: "no tokenizer.json or vocab.txt in the directory", path: path)
    }

    static func readCapped(_ path: String) throws -> [UInt8] {
        do { return try FileKind.read(path, cap: maxFileSize) } catch {
            throw TokenizerError(kind: .invalid, message: error.description, path: path)
        }
    }

    /// Parses a tokenizer.json. Any component or option this implementation does not support
    /// is refused with its name, never ignored.
    public init(jsonBytes: [UInt8], source: String = "tokenizer.json") throws {
        do {
            let root: JSONValue
            do { root = try JSONValue.parse(jsonBytes, entriesOf: ["vocab"]) } catch {
                throw TokenizerError.invalid("not valid JSON: \(error)")
            }
            guard root.objectValue != nil else { throw TokenizerError.invalid("expected a JSON object") }
            let known: Set<String> = ["version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
                                      "model", "post_processor", "decoder"]
            for k in root.objectValue!.keys where !known.contains(k) {
                throw TokenizerError.unsupported("top-level key `\(k)` is not supported")
            }
            func component<C>(_ key: String, _ build: (JSONValue) throws -> C) throws -> C? {
                guard let v = root[key], v != .null else { return nil }
                return try build(v)
            }
            let normalizer = try component("normalizer", Normalizers.registry.build)
            let preTokenizer = try component("pre_tokenizer", PreTokenizers.registry.build)
            guard let modelJSON = root["model"] else { throw TokenizerError.invalid("no `model`") }
            let model = try Models.build(modelJSON)
            let post = try component("post_processor", PostProcessors.registry.build)
            let decoder = try component("decoder", Decoders.registry.build)
            var added: [AddedToken] = []
            for (i, t) in (root["added_tokens"]?.arrayValue ?? []).enumerated() {
                let f = try Fields(t, "added token \(i)")
                try f.only(["id", "content", "special", "single_word", "lstrip", "rstrip", "normalized"])
                let content = try f.requireString("content")
                guard !content.isEmpty else { throw TokenizerError.invalid("added token \(i) is empty") }
                guard let id = t["id"]?.intValue, id >= 0, id < maxVocabulary else {
                    throw TokenizerError.invalid("added token \(Pattern.quoted(content)) has an invalid id")
                }
                let special = try f.bool("special", default: false)
                added.append(AddedToken(id: id, content: content, special: special, singleWord: try f.bool("single_word", default: false),
                                        lstrip: try f.bool("lstrip", default: false), rstrip: try f.bool("rstrip", default: false),
                                        normalized: try f.bool("normalized", default: !special)))
            }
            try self.init(normalizer: normalizer, preTokenizer: preTokenizer, model: model, postProcessor: post,
                          decoder: decoder, addedTokens: added, source: source)
            var kept = root.objectValue!
            if var m = kept["model"]?.objectValue {
                m["vocab"] = nil
                m["merges"] = nil
                kept["model"] = .object(m)
            }
            json = .object(kept)
        } catch let e as TokenizerError {
            throw e.at(source)
        }
    }

    init(normalizer: (any Normalizer)?, preTokenizer: (any PreTokenizer)?, model: any TokenModel,
         postProcessor: (any PostProcessor)?, decoder: (any Decoder)?, addedTokens: [AddedToken], source: String) throws {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.postProcessor = postProcessor
        self.decoder = decoder
        self.addedTokens = addedTokens
        self.source = source
        var byID: [Int: AddedToken] = [:]
        for t in addedTokens {
            if let other = byID[t.id], !other.content.exactlyEquals(t.content) {
                throw TokenizerError.invalid("added tokens \(Pattern.quoted(other.content)) and \(Pattern.quoted(t.content)) share id \(t.id)")
            }
            byID[t.id] = t
        }
        addedByID = byID
        rawMatcher = AddedTokenMatcher(addedTokens.filter { !$0.normalized }.map { ($0, $0.content) })
        normalizedMatcher = AddedTokenMatcher(try addedTokens.filter(\.normalized).map { ($0, try normalizer?.normalize($0.content) ?? $0.content) })
    }

    // MARK: Vocabulary

    /// Number of ids: the model's vocabulary and any added tokens beyond it.
    public var vocabularySize: Int { max(model.vocabulary.count, (addedTokens.map(\.id).max() ?? -1) + 1) }

    public func token(for id: Int) -> String? {
        if let t = addedByID[id] { return t.content }
        guard id >= 0, id < model.vocabulary.count else { return nil }
        return model.vocabulary[id]
    }

    public func id(for token: String) -> Int? {
        if let t = addedTokens.first(where: { $0.content.exactlyEquals(token) }) { return t.id }
        return model.id(of: token)
    }

    public func isSpecial(_ id: Int) -> Bool { addedByID[id]?.special ?? false }

    /// The ids the post-processor puts before and after a sequence (e.g. BOS), found by
    /// processing an empty one.
    public var specialPrefix: [Int] {
        guard let postProcessor else { return [] }
        let marker = -1
        let out = postProcessor.process([marker])
        return Array(out.prefix { $0 != marker })
    }

    // MARK: Encoding

    /// Text to token ids, exactly as Hugging Face `tokenizers` encodes it.
    /// - Parameters:
    ///   - text: UTF-8 text.
    ///   - addSpecialTokens: Add the post-processor's special tokens (BOS, [CLS] … [SEP]).
    /// - Returns: The ids, in the tokenizer's vocabulary.
    public func encode(_ text: String, addSpecialTokens: Bool = true) throws -> [Int] {
        try encode(text, addSpecialTokens: addSpecialTokens, cache: WordCache())
    }

    /// Encodes several texts, sharing the word cache.
    public func encode(lines: [String], addSpecialTokens: Bool = true) throws -> [[Int]] {
        let cache = WordCache()
        return try lines.map { try encode($0, addSpecialTokens: addSpecialTokens, cache: cache) }
    }

    func encode(_ text: String, addSpecialTokens: Bool, cache: WordCache) throws -> [Int] {
        do { return try encodeUnlabelled(text, addSpecialTokens: addSpecialTokens, cache: cache) } catch let e as TokenizerError {
            throw e.at(source)
        }
    }

    private func encodeUnlabelled(_ text: String, addSpecialTokens: Bool, cache: WordCache) throws -> [Int] {
        // Pieces: text still to tokenize (id nil) or an added token's id.
        var pieces: [(Split, Int?)] = []
        for (s, id) in rawMatcher.split(Split(text: text, atStart: true)) {
            if id != nil { pieces.append((s, id)); continue }
            var n = s
            if let normalizer { n.text = try normalizer.normalize(n.text) }
            pieces.append(contentsOf: normalizedMatcher.split(n))
        }
        var ids: [Int] = []
        for (piece, id) in pieces {
            if let id { ids.append(id); continue }
            if piece.text.isEmpty { continue }
            let words = try preTokenizer?.split(piece) ?? [piece]
            for w in words { ids.append(contentsOf: try model.tokenize(w.text, cache: cache)) }
        }
        if addSpecialTokens, let postProcessor { ids = postProcessor.process(ids) }
        return ids
    }

    // MARK: Decoding

    /// Ids back to text: each id's token (unknown ids are skipped, as the reference does),
    /// special tokens left out when asked, then the decoder (tokens joined by spaces without one).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        for id in ids {
            guard let t = token(for: id) else { continue }
            if skipSpecialTokens && isSpecial(id) { continue }
            tokens.append(t)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decode(tokens).joined()
    }
}

/// Leftmost-longest matching of added tokens in a piece, with their single_word, lstrip and
/// rstrip rules.
struct AddedTokenMatcher: Sendable {
    /// Patterns by first byte, longest first.
    let byFirstByte: [UInt8: [(bytes: [UInt8], token: AddedToken)]]

    init(_ tokens: [(AddedToken, String)]) {
        var m: [UInt8: [(bytes: [UInt8], token: AddedToken)]] = [:]
        for (t, pattern) in tokens {
            let b = Array(pattern.utf8)
            guard let first = b.first else { continue }
            m[first, default: []].append((b, t))
        }
        for k in m.keys { m[k]!.sort { $0.bytes.count > $1.bytes.count } }
        byFirstByte = m
    }

    func split(_ piece: Split) -> [(Split, Int?)] {
        if byFirstByte.isEmpty { return [(piece, nil)] }
        let s = Array(piece.text.utf8)
        let n = s.count
        var out: [(Split, Int?)] = []
        var startOffset = 0
        var i = 0
        func text(_ a: Int, _ b: Int) -> String { String(decoding: s[a..<b], as: UTF8.self) }
        while i < n {
            guard let candidates = byFirstByte[s[i]],
                  let hit = candidates.first(where: { i + $0.bytes.count <= n && s[i..<(i + $0.bytes.count)].elementsEqual($0.bytes) })
            else { i += 1; continue }
            var start = i
            var stop = i + hit.bytes.count
            i = stop
            let t = hit.token
            if t.singleWord {
                if start > 0, let c = scalar(before: start, in: s), CharClass.isAlphanumeric(c) || c == "_" { continue }
                if stop < n, let c = scalar(at: stop, in: s), CharClass.isAlphanumeric(c) || c == "_" { continue }
            }
            if t.lstrip {
                var k = start
                while k > startOffset, let c = scalar(before: k, in: s), CharClass.isWhitespace(c) { k -= UTF8.width(c) }
                start = max(k, startOffset)
            }
            if t.rstrip {
                while stop < n, let c = scalar(at: stop, in: s), CharClass.isWhitespace(c) { stop += UTF8.width(c) }
                i = stop
            }
            if start > startOffset { out.append((Split(text: text(startOffset, start), atStart: piece.atStart && startOffset == 0), nil)) }
            out.append((Split(text: text(start, stop), atStart: false), t.id))
            startOffset = stop
        }
        if startOffset < n || n == 0 {
            out.append((Split(text: text(startOffset, n), atStart: piece.atStart && startOffset == 0), nil))
        }
        return out
    }
}

/// The scalar starting at byte `i` of valid UTF-8 `s`.
func scalar(at i: Int, in s: [UInt8]) -> Unicode.Scalar? {
    let len = utf8Length(leading: s[i])
    guard i + len <= s.count else { return nil }
    return String(decoding: s[i..<(i + len)], as: UTF8.self).unicodeScalars.first
}

/// The scalar ending just before byte `i` of valid UTF-8 `s`.
func scalar(before i: Int, in s: [UInt8]) -> Unicode.Scalar? {
    var k = i - 1
    while k > 0, s[k] & 0xC0 == 0x80 { k -= 1 }
    guard k >= 0 else { return nil }
    return scalar(at: k, in: s)
}

// Decoders: token strings → text (ids → tokens is the tokenizer's job). Each works on the
// list of tokens, as the reference's decode_chain does, and the results are concatenated.

import CkptCore

protocol Decoder: Sendable {
    func decode(_ tokens: [String]) -> [String]
}

enum Decoders {
    static let registry: Registry<any Decoder> = Registry(kind: "decoder", builders: [
        "ByteLevel": { f in try f.only(["add_prefix_space", "trim_offsets", "use_regex"]); return ByteLevelDecoder() },
        "Metaspace": { f in
            let m = try Metaspace(f)
            return MetaspaceDecoder(replacement: m.replacement, dropFirst: m.scheme != .never)
        },
        "WordPiece": { f in
            try f.only(["prefix", "cleanup"])
            return WordPieceDecoder(prefix: try f.string("prefix") ?? "##", cleanup: try f.bool("cleanup", default: true))
        },
        "BPEDecoder": { f in try f.only(["suffix"]); return BPEDecoder(suffix: try f.string("suffix") ?? "</w>") },
        "ByteFallback": { f in try f.only([]); return ByteFallbackDecoder() },
        "Fuse": { f in try f.only([]); return FuseDecoder() },
        "Strip": { f in
            try f.only(["content", "start", "stop"])
            let c = try f.requireString("content")
            guard c.unicodeScalars.count == 1 else { throw TokenizerError.invalid("\(f.what): content must be one character") }
            return StripDecoder(content: c.unicodeScalars.first!, start: try f.int("start", default: 0), stop: try f.int("stop", default: 0))
        },
        "Replace": { f in
            try f.only(["pattern", "content"])
            return ReplaceDecoder(pattern: try f.pattern("pattern"), content: try f.requireString("content"))
        },
        "Sequence": { f in
            try f.only(["decoders"])
            return DecoderSequence(items: try f.array("decoders").map { try registry.build($0) })
        },
    ])
}

/// Alphabet characters back to bytes (a token with other characters is kept as is); the bytes
/// are read as UTF-8, invalid sequences becoming U+FFFD.
struct ByteLevelDecoder: Decoder {
    func decode(_ tokens: [String]) -> [String] {
        var bytes: [UInt8] = []
        for t in tokens {
            var mapped: [UInt8] = []
            var ok = true
            for c in t.unicodeScalars {
                guard let b = ByteLevelAlphabet.charToByte[c.value] else { ok = false; break }
                mapped.append(b)
            }
            bytes.append(contentsOf: ok ? mapped : Array(t.utf8))
        }
        return [String(decoding: bytes, as: UTF8.self)]
    }
}

/// The replacement character becomes a space, except in the first token (where the reference
/// drops it when a prefix was prepended).
struct MetaspaceDecoder: Decoder {
    var replacement: Unicode.Scalar
    var dropFirst: Bool
    func decode(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            var v = String.UnicodeScalarView()
            for c in t.unicodeScalars {
                if c == replacement {
                    if !(i == 0 && dropFirst) { v.append(" ") }
                } else {
                    v.append(c)
                }
            }
            return String(v)
        }
    }
}

struct WordPieceDecoder: Decoder {
    var prefix: String
    var cleanup: Bool
    func decode(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            var s = t
            if i != 0 {
                if s.hasBytePrefix(prefix) { s = String(decoding: s.utf8.dropFirst(prefix.utf8.count), as: UTF8.self) } else { s = " " + s }
            }
            return cleanup ? WordPieceDecoder.cleanUp(s) : s
        }
    }

    /// The reference's clean-up of tokenization spaces.
    static func cleanUp(_ s: String) -> String {
        var s = s
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                       (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            s = s.replacingBytes(a, with: b)
        }
        return s
    }
}

struct BPEDecoder: Decoder {
    var suffix: String
    func decode(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in t.replacingBytes(suffix, with: i == tokens.count - 1 ? "" : " ") }
    }
}

/// Runs of <0xXX> tokens become the text their bytes spell, or one U+FFFD per byte when the
/// bytes are not valid UTF-8.
struct ByteFallbackDecoder: Decoder {
    func decode(_ tokens: [String]) -> [String] {
        var out: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let s = String(validating: pending, as: UTF8.self) {
                out.append(s)
            } else {
                out.append(String(repeating: "\u{FFFD}", count: pending.count))
            }
            pending = []
        }
        for t in tokens {
            let u = Array(t.utf8)
            if u.count == 6, t.hasBytePrefix("<0x"), u[5] == UInt8(ascii: ">"),
               let b = UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16) {
                pending.append(b)
            } else {
                flush()
                out.append(t)
            }
        }
        flush()
        return out
    }
}

struct FuseDecoder: Decoder {
    func decode(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

/// Removes up to `start` leading and `stop` trailing `content` characters from each token.
struct StripDecoder: Decoder {
    var content: Unicode.Scalar
    var start: Int
    var stop: Int
    func decode(_ tokens: [String]) -> [String] {
        tokens.map { t in
            var s = Array(t.unicodeScalars)
            var a = 0
            while a < start, a < s.count, s[a] == content { a += 1 }
            var b = 0
            while b < stop, s.count - b - 1 >= a, s[s.count - b - 1] == content { b += 1 }
            s = Array(s[a..<(s.count - b)])
            return String(scalars: s)
        }
    }
}

struct ReplaceDecoder: Decoder {
    var pattern: Pattern
    var content: String
    /// A token the pattern cannot be searched in (Oniguruma's backtracking limit) stays as it is.
    func decode(_ tokens: [String]) -> [String] { tokens.map { (try? pattern.replaceAll(in: $0, with: content)) ?? $0 } }
}

struct DecoderSequence: Decoder {
    var items: [any Decoder]
    func decode(_ tokens: [String]) -> [String] { items.reduce(tokens) { $1.decode($0) } }
}

extension String {
    /// Every occurrence of `a` (compared by bytes) replaced by `b`.
    func replacingBytes(_ a: String, with b: String) -> String {
        let s = Array(utf8), p = Array(a.utf8)
        guard !p.isEmpty, s.count >= p.count else { return self }
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if i + p.count <= s.count, s[i] == p[0], s[i..<(i + p.count)].elementsEqual(p) {
                out.append(contentsOf: b.utf8)
                i += p.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

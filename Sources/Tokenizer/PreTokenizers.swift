// Pre-tokenizers: split a normalized piece into the words the model sees.
//
// Splitting follows the reference's NormalizedString::split: the pattern's matches and the
// text between them cover the piece; the behavior decides what happens to matches (removed,
// isolated, merged with the previous or next piece, or runs of them merged), and empty pieces
// are dropped. `atStart` marks a piece that begins the input text (Metaspace's "first").

import CkptCore

struct Split: Sendable {
    var text: String
    var atStart: Bool
}

protocol PreTokenizer: Sendable {
    func split(_ piece: Split) throws -> [Split]
}

enum SplitBehavior: String, Sendable {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"

    static func parse(_ f: Fields, default d: SplitBehavior) throws -> SplitBehavior {
        guard let s = try f.string("behavior") else { return d }
        guard let b = SplitBehavior(rawValue: s) else { throw TokenizerError.unsupported("\(f.what): behavior `\(s)` is not supported") }
        return b
    }
}

enum Splitting {
    /// Splits `piece` at byte ranges `matches` (sorted, non-overlapping) with `behavior`.
    static func apply(_ piece: Split, bytes: UnsafeBufferPointer<UInt8>, matches: [(Int, Int)],
                      behavior: SplitBehavior, invert: Bool = false) -> [Split] {
        let n = bytes.count
        // Segments covering the piece: (start, end, isMatch).
        var segs: [(Int, Int, Bool)] = []
        if n == 0 {
            segs = [(0, 0, false)]
        } else {
            var prev = 0
            for (s, e) in matches {
                if prev != s { segs.append((prev, s, invert)) }
                segs.append((s, e, !invert))
                prev = e
            }
            if prev != n { segs.append((prev, n, invert)) }
        }
        var ranges: [(Int, Int)] = []
        switch behavior {
        case .removed:
            ranges = segs.filter { !$0.2 }.map { ($0.0, $0.1) }
        case .isolated:
            ranges = segs.map { ($0.0, $0.1) }
        case .mergedWithPrevious:
            var previousMatch = false
            for (s, e, m) in segs {
                if m && !previousMatch, !ranges.isEmpty { ranges[ranges.count - 1].1 = e } else { ranges.append((s, e)) }
                previousMatch = m
            }
        case .mergedWithNext:
            var previousMatch = false
            for (s, e, m) in segs.reversed() {
                if m && !previousMatch, !ranges.isEmpty { ranges[ranges.count - 1].0 = s } else { ranges.append((s, e)) }
                previousMatch = m
            }
            ranges.reverse()
        case .contiguous:
            var previousMatch = false
            for (s, e, m) in segs {
                if m == previousMatch, !ranges.isEmpty { ranges[ranges.count - 1].1 = e } else { ranges.append((s, e)) }
                previousMatch = m
            }
        }
        var out: [Split] = []
        out.reserveCapacity(ranges.count)
        for (s, e) in ranges where e > s {
            out.append(Split(text: String(decoding: UnsafeBufferPointer(rebasing: bytes[s..<e]), as: UTF8.self),
                             atStart: piece.atStart && s == 0))
        }
        return out
    }

    static func byPattern(_ piece: Split, _ pattern: Pattern, _ behavior: SplitBehavior, invert: Bool = false) throws -> [Split] {
        var text = piece.text
        return try text.withUTF8 { buf in
            apply(piece, bytes: buf, matches: try pattern.matches(in: buf), behavior: behavior, invert: invert)
        }
    }

    /// Each character for which `isMatch` holds is one match.
    static func byCharacter(_ piece: Split, _ behavior: SplitBehavior, _ isMatch: (Unicode.Scalar) -> Bool) -> [Split] {
        var text = piece.text
        return text.withUTF8 { buf in
            var matches: [(Int, Int)] = []
            var offset = 0
            for c in piece.text.unicodeScalars {
                let len = UTF8.width(c)
                if isMatch(c) { matches.append((offset, offset + len)) }
                offset += len
            }
            return apply(piece, bytes: buf, matches: matches, behavior: behavior)
        }
    }
}

enum PreTokenizers {
    /// GPT-2's pattern, which ByteLevel uses when `use_regex` is on.
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    static let registry: Registry<any PreTokenizer> = Registry(kind: "pre-tokenizer", builders: [
        "ByteLevel": { f in
            try f.only(["add_prefix_space", "trim_offsets", "use_regex"])
            return try ByteLevel(addPrefixSpace: try f.bool("add_prefix_space", default: true),
                                 useRegex: try f.bool("use_regex", default: true))
        },
        "Split": { f in
            try f.only(["pattern", "behavior", "invert"])
            return SplitPattern(pattern: try f.pattern("pattern"), behavior: try SplitBehavior.parse(f, default: .isolated),
                                invert: try f.bool("invert", default: false))
        },
        "Whitespace": { f in try f.only([]); return Whitespace() },
        "WhitespaceSplit": { f in try f.only([]); return WhitespaceSplit() },
        "BertPreTokenizer": { f in try f.only([]); return BertPreTokenizer() },
        "Metaspace": { f in try Metaspace(f) },
        "Digits": { f in try f.only(["individual_digits"]); return Digits(individual: try f.bool("individual_digits", default: false)) },
        "Punctuation": { f in
            try f.only(["behavior"])
            return Punctuation(behavior: try SplitBehavior.parse(f, default: .isolated))
        },
        "Sequence": { f in
            try f.only(["pretokenizers"])
            return PreTokenizerSequence(items: try f.array("pretokenizers").map { try registry.build($0) })
        },
    ])
}

struct ByteLevel: PreTokenizer {
    var addPrefixSpace: Bool
    var pattern: Pattern?

    init(addPrefixSpace: Bool, useRegex: Bool) throws {
        self.addPrefixSpace = addPrefixSpace
        pattern = useRegex ? try Pattern(regex: PreTokenizers.gpt2Pattern) : nil
    }

    func split(_ piece: Split) throws -> [Split] {
        var p = piece
        if addPrefixSpace && !p.text.hasPrefix(" ") { p.text = " " + p.text }
        let parts = try pattern.map { try Splitting.byPattern(p, $0, .isolated) } ?? (p.text.isEmpty ? [] : [p])
        return parts.map { Split(text: ByteLevelAlphabet.encode($0.text), atStart: $0.atStart) }
    }
}

struct SplitPattern: PreTokenizer {
    var pattern: Pattern
    var behavior: SplitBehavior
    var invert: Bool
    func split(_ piece: Split) throws -> [Split] { try Splitting.byPattern(piece, pattern, behavior, invert: invert) }
}

/// Runs of word characters and runs of other non-space characters: the reference's
/// `\w+|[^\w\s]+` in the Rust `regex` crate's Unicode classes (\w: Alphabetic, marks, Nd,
/// Pc and Join_Control — so a ZWJ is a word character; \s: White_Space).
struct Whitespace: PreTokenizer {
    static func isWord(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return CharClass.isAlphanumeric(c) || c == "_" }
        if c.properties.isAlphabetic || c.properties.isJoinControl { return true }
        switch c.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    func split(_ piece: Split) -> [Split] {
        var text = piece.text
        return text.withUTF8 { buf in
            var matches: [(Int, Int)] = []
            var offset = 0
            var run: (start: Int, word: Bool)? = nil
            for c in piece.text.unicodeScalars {
                let len = UTF8.width(c)
                let kind: Bool? = CharClass.isWhitespace(c) ? nil : Whitespace.isWord(c)
                if let r = run, kind != r.word {
                    matches.append((r.start, offset))
                    run = nil
                }
                if run == nil, let k = kind { run = (offset, k) }
                offset += len
            }
            if let r = run { matches.append((r.start, offset)) }
            return Splitting.apply(piece, bytes: buf, matches: matches, behavior: .removed, invert: true)
        }
    }
}

struct WhitespaceSplit: PreTokenizer {
    func split(_ piece: Split) -> [Split] { Splitting.byCharacter(piece, .removed, CharClass.isWhitespace) }
}

struct BertPreTokenizer: PreTokenizer {
    func split(_ piece: Split) -> [Split] {
        Splitting.byCharacter(piece, .removed, CharClass.isWhitespace).flatMap {
            Splitting.byCharacter($0, .isolated, CharClass.isBertPunctuation)
        }
    }
}

struct Digits: PreTokenizer {
    var individual: Bool
    func split(_ piece: Split) -> [Split] {
        Splitting.byCharacter(piece, individual ? .isolated : .contiguous, CharClass.isNumeric)
    }
}

struct Punctuation: PreTokenizer {
    var behavior: SplitBehavior
    func split(_ piece: Split) -> [Split] { Splitting.byCharacter(piece, behavior, CharClass.isBertPunctuation) }
}

enum PrependScheme: String, Sendable { case always, never, first }

/// Spaces become the replacement character (▁), one is prepended as the scheme says, and the
/// piece is split before each replacement character.
struct Metaspace: PreTokenizer {
    var replacement: Unicode.Scalar
    var scheme: PrependScheme
    var splitWords: Bool

    init(_ f: Fields) throws {
        try f.only(["replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"])
        let r = try f.string("replacement") ?? "▁"
        guard r.unicodeScalars.count == 1, let c = r.unicodeScalars.first else {
            throw TokenizerError.invalid("\(f.what): replacement must be one character")
        }
        replacement = c
        if let s = try f.string("prepend_scheme") {
            guard let p = PrependScheme(rawValue: s) else { throw TokenizerError.unsupported("\(f.what): prepend_scheme `\(s)` is not supported") }
            scheme = p
        } else {
            scheme = try f.bool("add_prefix_space", default: true) ? .always : .never
        }
        splitWords = try f.bool("split", default: true)
    }

    func split(_ piece: Split) -> [Split] {
        var scalars = String.UnicodeScalarView()
        for c in piece.text.unicodeScalars { scalars.append(c == " " ? replacement : c) }
        var p = Split(text: String(scalars), atStart: piece.atStart)
        let startsWithReplacement = p.text.unicodeScalars.first == replacement
        switch scheme {
        case .always: if !startsWithReplacement { p.text = String(replacement) + p.text }
        case .first: if !startsWithReplacement && p.atStart { p.text = String(replacement) + p.text }
        case .never: break
        }
        guard splitWords else { return p.text.isEmpty ? [] : [p] }
        let r = replacement
        return Splitting.byCharacter(p, .mergedWithNext) { $0 == r }
    }
}

struct PreTokenizerSequence: PreTokenizer {
    var items: [any PreTokenizer]
    func split(_ piece: Split) throws -> [Split] {
        var parts = [piece]
        for item in items { parts = try parts.flatMap { try item.split($0) } }
        return parts
    }
}

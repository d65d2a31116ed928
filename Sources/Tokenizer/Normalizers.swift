// Normalizers: text → text, applied to each piece of the input between added tokens that are
// matched on the raw text (as the reference does). Offsets are not tracked: ids never need them.

import CkptCore
import Foundation

protocol Normalizer: Sendable {
    func normalize(_ s: String) throws -> String
}

enum Normalizers {
    static let registry: Registry<any Normalizer> = Registry(kind: "normalizer", builders: [
        "NFC": { f in try f.only([]); return UnicodeForm.nfc },
        "NFD": { f in try f.only([]); return UnicodeForm.nfd },
        "NFKC": { f in try f.only([]); return UnicodeForm.nfkc },
        "NFKD": { f in try f.only([]); return UnicodeForm.nfkd },
        "Lowercase": { f in try f.only([]); return Lowercase() },
        "StripAccents": { f in try f.only([]); return StripAccents() },
        "BertNormalizer": { f in
            try f.only(["clean_text", "handle_chinese_chars", "strip_accents", "lowercase"])
            let lowercase = try f.bool("lowercase", default: true)
            return BertNormalizer(cleanText: try f.bool("clean_text", default: true),
                                  handleChineseChars: try f.bool("handle_chinese_chars", default: true),
                                  stripAccents: try f.optionalBool("strip_accents") ?? lowercase, lowercase: lowercase)
        },
        "Replace": { f in
            try f.only(["pattern", "content"])
            return Replace(pattern: try f.pattern("pattern"), content: try f.requireString("content"))
        },
        "Prepend": { f in try f.only(["prepend"]); return Prepend(prefix: try f.requireString("prepend")) },
        "Strip": { f in
            try f.only(["strip_left", "strip_right"])
            return Strip(left: try f.bool("strip_left", default: true), right: try f.bool("strip_right", default: true))
        },
        "Precompiled": { f in try Precompiled(f) },
        "Sequence": { f in
            try f.only(["normalizers"])
            return NormalizerSequence(items: try f.array("normalizers").map { try registry.build($0) })
        },
    ])
}

enum UnicodeForm: Normalizer {
    case nfc, nfd, nfkc, nfkd
    func normalize(_ s: String) -> String {
        // ASCII is unchanged by every form (and Foundation's call is costly per piece).
        if s.utf8.allSatisfy({ $0 < 0x80 }) { return s }
        switch self {
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        }
    }
}

/// Each character's full lowercase mapping (Rust's char::to_lowercase; no context rules).
struct Lowercase: Normalizer {
    func normalize(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for c in s.unicodeScalars {
            if c.isASCII {
                out.append(c.value >= 65 && c.value <= 90 ? Unicode.Scalar(c.value + 32)! : c)
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }
}

/// Removes combining marks (general category M). Usually after NFD.
struct StripAccents: Normalizer {
    func normalize(_ s: String) -> String { String(scalars: s.unicodeScalars.filter { !CharClass.isMark($0) }) }
}

struct BertNormalizer: Normalizer {
    var cleanText: Bool
    var handleChineseChars: Bool
    var stripAccents: Bool
    var lowercase: Bool

    func normalize(_ s: String) -> String {
        var scalars = [Unicode.Scalar]()
        scalars.reserveCapacity(s.unicodeScalars.count)
        for c in s.unicodeScalars {
            if cleanText {
                if c.value == 0 || c.value == 0xFFFD || CharClass.isBertControl(c) { continue }
                if CharClass.isBertWhitespace(c) { scalars.append(" "); continue }
            }
            if handleChineseChars && CharClass.isChineseChar(c) {
                scalars.append(" ")
                scalars.append(c)
                scalars.append(" ")
            } else {
                scalars.append(c)
            }
        }
        var out = String(scalars: scalars)
        if stripAccents {
            out = String(scalars: out.decomposedStringWithCanonicalMapping.unicodeScalars.filter { !CharClass.isNonspacingMark($0) })
        }
        if lowercase { out = Lowercase().normalize(out) }
        return out
    }
}

struct Replace: Normalizer {
    var pattern: Pattern
    var content: String
    func normalize(_ s: String) throws -> String { try pattern.replaceAll(in: s, with: content) }
}

struct Prepend: Normalizer {
    var prefix: String
    func normalize(_ s: String) -> String { s.isEmpty ? s : prefix + s }
}

/// Removes leading and/or trailing whitespace (White_Space).
struct Strip: Normalizer {
    var left: Bool
    var right: Bool
    func normalize(_ s: String) -> String {
        var scalars = Array(s.unicodeScalars)
        if right { while let l = scalars.last, CharClass.isWhitespace(l) { scalars.removeLast() } }
        var start = 0
        if left { while start < scalars.count, CharClass.isWhitespace(scalars[start]) { start += 1 } }
        return String(scalars: scalars[start...])
    }
}

struct NormalizerSequence: Normalizer {
    var items: [any Normalizer]
    func normalize(_ s: String) throws -> String { try items.reduce(s) { try $1.normalize($0) } }
}

extension Pattern {
    /// Every match replaced by `content`.
    func replaceAll(in s: String, with content: String) throws -> String {
        var s = s
        return try s.withUTF8 { buf -> String in
            let ms = try matches(in: buf)
            if ms.isEmpty { return String(decoding: buf, as: UTF8.self) }
            var out = [UInt8]()
            out.reserveCapacity(buf.count)
            var prev = 0
            for (a, b) in ms {
                out.append(contentsOf: buf[prev..<a])
                out.append(contentsOf: content.utf8)
                prev = b
            }
            out.append(contentsOf: buf[prev...])
            return String(decoding: out, as: UTF8.self)
        }
    }
}

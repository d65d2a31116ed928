// Patterns of Split pre-tokenizers and Replace normalizers/decoders, compiled by Oniguruma
// (UTF-8, default Ruby syntax) — the engine and settings of the `onig` crate that Hugging Face
// `tokenizers` uses, so lookahead, \p{L}/\p{N}, (?i:…) and possessive forms mean exactly what
// they mean there. Matching runs on the UTF-8 bytes of a piece and returns byte offsets.

import COniguruma

private let onigReady: Bool = { conig_init() == ONIG_NORMAL }()

final class Pattern: @unchecked Sendable {
    // The compiled regex is only read after construction; Oniguruma's search is reentrant.
    private let regex: OnigRegex
    let source: String

    /// Pattern text is capped: real tokenizers' patterns are a few hundred bytes.
    static let maxLength = 64 * 1024

    init(regex source: String) throws {
        guard onigReady else { throw TokenizerError.invalid("the Oniguruma regex library failed to initialise") }
        guard source.utf8.count <= Pattern.maxLength else {
            throw TokenizerError.invalid("regex pattern of \(source.utf8.count) bytes is longer than \(Pattern.maxLength)")
        }
        self.source = source
        var reg: OnigRegex?
        var info = OnigErrorInfo()
        let bytes = Array(source.utf8)
        let rc = bytes.withUnsafeBufferPointer { p -> Int32 in
            onig_new(&reg, p.baseAddress, p.baseAddress.map { $0 + p.count }, conig_option_none(), conig_utf8(),
                     conig_default_syntax(), &info)
        }
        guard rc == ONIG_NORMAL, let reg else {
            throw TokenizerError.invalid("regex \(Pattern.quoted(source)) does not compile: \(Pattern.message(rc, &info))")
        }
        regex = reg
    }

    /// A literal string, escaped (as the reference does for `{"String": …}` patterns).
    convenience init(literal: String) throws {
        var escaped = ""
        for ch in literal.unicodeScalars {
            if "\\^$.|?*+()[]{}\t\n\r".unicodeScalars.contains(ch) {
                switch ch {
                case "\t": escaped += "\\t"
                case "\n": escaped += "\\n"
                case "\r": escaped += "\\r"
                default: escaped += "\\" + String(ch)
                }
            } else {
                escaped.unicodeScalars.append(ch)
            }
        }
        try self.init(regex: escaped)
    }

    deinit { onig_free(regex) }

    /// Oniguruma's text for an error code.
    static func message(_ code: Int32, _ info: UnsafeMutablePointer<OnigErrorInfo>?) -> String {
        var buf = [OnigUChar](repeating: 0, count: 256)  // ONIG_MAX_ERROR_MESSAGE_LEN is 90
        let n = conig_error_string(&buf, code, info)
        return String(decoding: buf[0..<Int(max(0, min(n, 256)))], as: UTF8.self)
    }

    static func quoted(_ s: String) -> String {
        let short = s.count > 80 ? String(s.prefix(80)) + "…" : s
        return "`" + short + "`"
    }

    /// Every match in `text` as byte ranges, left to right, as the `onig` crate's find_iter
    /// yields them: an empty match right where the previous match ended is skipped by one
    /// character. A search Oniguruma gives up on (its backtracking limit) is an error, not a
    /// silent "no more matches".
    func matches(in text: UnsafeBufferPointer<UInt8>) throws -> [(Int, Int)] {
        guard let base = text.baseAddress ?? UnsafePointer<UInt8>(bitPattern: 1) else { return [] }
        let n = text.count
        let region = onig_region_new()
        defer { onig_region_free(region, 1) }
        var out: [(Int, Int)] = []
        var lastEnd = 0
        var lastMatchEnd = -1
        while lastEnd <= n {
            let r = onig_search(regex, base, base + n, base + lastEnd, base + n, region, conig_option_none())
            if r == ONIG_MISMATCH { break }
            guard r >= 0, let region, region.pointee.num_regs > 0 else {
                throw TokenizerError.encoding("regex \(Pattern.quoted(source)) failed on the text: \(Pattern.message(r, nil))")
            }
            let s = Int(region.pointee.beg[0]), e = Int(region.pointee.end[0])
            if s == e && lastMatchEnd == e {
                lastEnd += lastEnd < n ? utf8Length(leading: text[lastEnd]) : 1
                continue
            }
            lastEnd = e
            lastMatchEnd = e
            out.append((s, e))
        }
        return out
    }
}

/// The byte length of a UTF-8 sequence from its leading byte.
@inline(__always) func utf8Length(leading b: UInt8) -> Int {
    if b < 0x80 { return 1 }
    if b >= 0xF0 { return 4 }
    if b >= 0xE0 { return 3 }
    if b >= 0xC0 { return 2 }
    return 1
}

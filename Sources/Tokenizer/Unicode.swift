// Character classes as the reference defines them (Rust's `char` methods and the helpers of
// Hugging Face `tokenizers`), over Unicode scalars. Swift strings compare canonically
// equivalent text as equal; tokens never do, so every lookup here is by UTF-8 bytes.

/// A string hashed and compared by its UTF-8 bytes ("é" and "e\u{301}" are different keys).
struct ExactString: Hashable, Sendable {
    var value: String
    init(_ value: String) { self.value = value }
    static func == (a: ExactString, b: ExactString) -> Bool { a.value.utf8.elementsEqual(b.value.utf8) }
    func hash(into hasher: inout Hasher) {
        var s = value
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

extension String {
    init(scalars: some Sequence<Unicode.Scalar>) {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: scalars)
        self = String(v)
    }
    var bytes: [UInt8] { Array(utf8) }
    func exactlyEquals(_ other: String) -> Bool { utf8.elementsEqual(other.utf8) }
    func hasBytePrefix(_ p: String) -> Bool { utf8.starts(with: p.utf8) }
    func hasByteSuffix(_ s: String) -> Bool { utf8.reversed().starts(with: s.utf8.reversed()) }
}

enum CharClass {
    /// Rust's char::is_whitespace: the White_Space property.
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return c.value == 32 || (9...13).contains(c.value) }
        return c.properties.isWhitespace
    }

    /// Rust's char::is_numeric: general categories Nd, Nl, No.
    static func isNumeric(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return (48...57).contains(c.value) }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// Rust's char::is_alphanumeric: Alphabetic or numeric.
    static func isAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 { return (48...57).contains(c.value) || (65...90).contains(c.value) || (97...122).contains(c.value) }
        return c.properties.isAlphabetic || isNumeric(c)
    }

    /// Any punctuation category (Pc, Pd, Ps, Pe, Pi, Pf, Po).
    static func isUnicodePunctuation(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// BERT's punctuation: ASCII symbols and punctuation, or any Unicode punctuation.
    static func isBertPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 0x80 { return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) }
        return isUnicodePunctuation(c)
    }

    /// BERT's whitespace: \t \n \r and White_Space.
    static func isBertWhitespace(_ c: Unicode.Scalar) -> Bool {
        c == "\t" || c == "\n" || c == "\r" || c.properties.isWhitespace
    }

    /// BERT's control characters (removed by clean_text): categories C* except \t \n \r.
    static func isBertControl(_ c: Unicode.Scalar) -> Bool {
        if c == "\t" || c == "\n" || c == "\r" { return false }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// The CJK ideograph blocks BERT surrounds with spaces.
    static func isChineseChar(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }

    static func isNonspacingMark(_ c: Unicode.Scalar) -> Bool { c.properties.generalCategory == .nonspacingMark }

    /// Any mark (Mn, Mc, Me): what StripAccents removes.
    static func isMark(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }
}

/// GPT-2's reversible map from bytes to printable characters (ByteLevel pre-tokenizer and decoder).
enum ByteLevelAlphabet {
    static let byteToChar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(256 + extra)!
                extra += 1
            }
        }
        return table
    }()

    static let charToByte: [UInt32: UInt8] = {
        var m: [UInt32: UInt8] = [:]
        for (b, c) in byteToChar.enumerated() { m[c.value] = UInt8(b) }
        return m
    }()

    /// Each UTF-8 byte of `s` as its alphabet character.
    static func encode(_ s: String) -> String {
        var v = String.UnicodeScalarView()
        for b in s.utf8 { v.append(byteToChar[Int(b)]) }
        return String(v)
    }
}

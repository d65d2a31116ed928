// The `Precompiled` normalizer: SentencePiece's own normalization rules (nmt_nfkc and the like)
// as a `tokenizer.json` carries them, base64 in `precompiled_charsmap`, and as GGUF's
// `tokenizer.ggml.precompiled_charsmap` carries the same bytes raw.
//
// Layout (SentencePiece's normalizer spec): a little-endian u32, the size in bytes of a
// darts-clone double-array trie of u32 units that follows it; then the replacement strings,
// each ended by a NUL. A key found in the trie carries the offset of its replacement.
//
// Applied as the `tokenizers` library applies it: the text is walked by extended grapheme
// cluster; a cluster shorter than 6 bytes is looked up whole and, when a key is a prefix of it,
// the first (shortest) such key's replacement stands for the whole cluster; otherwise each of
// its characters is looked up alone and kept when nothing matches. (SentencePiece itself and
// llama.cpp take the longest match over the raw bytes; the two agree on ordinary text.)

import Foundation

struct Precompiled: Normalizer {
    /// The double-array trie's units.
    let units: [UInt32]
    /// NUL-ended replacement strings.
    let replacements: [UInt8]

    init(charsmap bytes: [UInt8]) throws {
        guard bytes.count >= 4 else {
            throw TokenizerError.invalid("normalizer Precompiled: `precompiled_charsmap` has \(bytes.count) bytes, fewer than its 4-byte trie size")
        }
        let size = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        guard size % 4 == 0, size <= bytes.count - 4, size > 0 else {
            throw TokenizerError.invalid("normalizer Precompiled: `precompiled_charsmap` declares a \(size)-byte trie in \(bytes.count - 4) bytes")
        }
        var units = [UInt32](repeating: 0, count: size / 4)
        for i in 0..<units.count {
            let o = 4 + 4 * i
            units[i] = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        }
        self.units = units
        self.replacements = Array(bytes[(4 + size)...])
    }

    init(_ f: Fields) throws {
        try f.only(["precompiled_charsmap"])
        let b64 = try f.requireString("precompiled_charsmap")
        guard let data = Data(base64Encoded: b64) else {
            throw TokenizerError.invalid("normalizer Precompiled: `precompiled_charsmap` is not base64")
        }
        try self.init(charsmap: [UInt8](data))
    }

    /// The replacement of the first (shortest) key that is a prefix of `key`, if any.
    func firstMatch<S: Sequence<UInt8>>(_ key: S) -> ArraySlice<UInt8>? {
        @inline(__always) func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
        guard !units.isEmpty else { return nil }
        var pos = offset(units[0])
        for c in key {
            if c == 0 { return nil }
            pos ^= Int(c)
            guard pos < units.count else { return nil }
            let u = units[pos]
            guard u & (0x8000_0000 | 0xFF) == UInt32(c) else { return nil }
            pos ^= offset(u)
            if (u >> 8) & 1 == 1 {
                guard pos < units.count else { return nil }
                let start = Int(units[pos] & 0x7FFF_FFFF)
                guard start < replacements.count else { return nil }
                var end = start
                while end < replacements.count, replacements[end] != 0 { end += 1 }
                return replacements[start..<end]
            }
        }
        return nil
    }

    func normalize(_ s: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        var i = s.startIndex
        while i < s.endIndex {
            let next = s.index(after: i)
            let cluster = s[i..<next]
            i = next
            if cluster.utf8.count < 6, let r = firstMatch(cluster.utf8) {
                out.append(contentsOf: r)
                continue
            }
            for scalar in cluster.unicodeScalars {
                let bytes = Array(String(scalar).utf8)
                if let r = firstMatch(bytes) { out.append(contentsOf: r) } else { out.append(contentsOf: bytes) }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// A fast decoder for the DEFLATE streams ckpt's Huffman-only encoder writes: one final
// dynamic-Huffman block of literals. libdeflate 1.14 decodes such streams at ~300 MB/s of
// output here (one literal per iteration of a loop built for matches), which kept .ckz
// decompression under its 500 MB/s-per-core target. This loop looks up 11 bits at a time in
// a table whose entries hold every literal those bits start with (up to six; about 2.6 bits
// per exponent on trained weights, so ~4 per lookup), stores them with one 8-byte write, and
// does five lookups per 64-bit refill. Outputs under 8 KiB use a smaller table (7 to 10 bits):
// the table is built per stream, and 2048 entries cost more than a small chunk's decoding.
//
// It handles exactly that shape and nothing else: a stream with stored or fixed blocks,
// several blocks, a length/distance pair, an incomplete or over-subscribed code (the unused
// distance code included, held to zlib's and libdeflate's rules), or that ends anywhere but
// where the record says, makes it return false, and the caller decodes
// the plane with libdeflate, which then either succeeds (any valid DEFLATE is accepted)
// or gives the definitive error. So it can only make valid streams faster, never accept an
// invalid one: on success it has checked the output length, the end-of-block code and that
// the stream ends in its last byte.

enum LiteralInflater {
    /// Bits of the largest multi-literal table (2048 entries), for outputs of 8 KiB and more.
    static let tableBits = 11
    /// Bits of the smallest table, for outputs of 255 bytes or fewer.
    static let minTableBits = 7
    /// Literals one table entry can hold (bytes 0...5 of its 64-bit word).
    static let maxPerEntry = 6

    /// The table size for an output of `count` bytes: at most an eighth as many entries as
    /// output bytes, so a small chunk (a small tensor is one) does not pay for building 2048
    /// entries it would never use; codes longer than the table take the slow path.
    static func tableBits(forOutput count: Int) -> Int {
        let width = Int.bitWidth - count.leadingZeroBitCount
        return min(tableBits, max(minTableBits, width - 3))
    }

    /// `reversed[i]`: the low `tableBits` bits of `i` in reverse order (patterns of a smaller
    /// table: shifted right by the difference).
    static let reversed: [UInt16] = (0..<(1 << tableBits)).map { i in
        var r = 0
        for b in 0..<tableBits where i & (1 << b) != 0 { r |= 1 << (tableBits - 1 - b) }
        return UInt16(r)
    }

    /// Decodes `input` into exactly `out.count` bytes; false = not handled (see above).
    static func inflate(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Bool {
        guard let src = input.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let dst = out.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return false }
        let inCount = input.count, outCount = out.count
        var pos = 0          // next input byte to load
        var buf: UInt64 = 0  // bits not yet consumed, least significant first
        var bits = 0         // how many bits of buf are valid
        var overrun = 0      // zero bytes invented past the end of the input

        // SAFETY: 8-byte loads only when pos + 8 <= inCount; otherwise byte by byte, and past
        // the end zeros are shifted in and counted in `overrun` (a stream that needs them is
        // rejected at the end).
        @inline(__always) func refill() {
            if pos &+ 8 <= inCount {
                buf |= UInt64(littleEndian: UnsafeRawPointer(src + pos).loadUnaligned(as: UInt64.self)) &<< UInt64(bits)
                pos &+= (63 &- bits) &>> 3
                bits |= 56
            } else {
                while bits <= 56 {
                    if pos < inCount { buf |= UInt64(src[pos]) &<< UInt64(bits); pos &+= 1 } else { overrun &+= 1 }
                    bits &+= 8
                }
            }
        }
        @inline(__always) func take(_ n: Int) -> Int {
            let v = Int(buf & ((1 &<< UInt64(n)) &- 1))
            buf &>>= UInt64(n)
            bits &-= n
            return v
        }

        refill()
        guard take(1) == 1, take(2) == 2 else { return false }  // BFINAL, dynamic Huffman
        let hlit = take(5) + 257, hdist = take(5) + 1, hclen = take(4) + 4
        guard hlit <= 286, hdist <= 30 else { return false }
        var clLengths = [UInt8](repeating: 0, count: 19)
        for i in 0..<hclen {
            if bits < 3 { refill() }
            clLengths[ChunkCodec.codeLengthOrder[i]] = UInt8(take(3))
        }
        guard let clDecoder = Canonical(lengths: clLengths, maxBits: 7) else { return false }
        var lengths = [UInt8](repeating: 0, count: hlit + hdist)
        var i = 0
        while i < lengths.count {
            if bits < 32 { refill() }
            guard let sym = clDecoder.decode(&buf, &bits) else { return false }
            switch sym {
            case 0...15:
                lengths[i] = UInt8(sym)
                i += 1
            case 16:
                guard i > 0 else { return false }
                let n = 3 + take(2)
                guard i + n <= lengths.count else { return false }
                for k in 0..<n { lengths[i + k] = lengths[i - 1] }
                i += n
            default:
                let n = sym == 17 ? 3 + take(3) : 11 + take(7)
                guard i + n <= lengths.count else { return false }
                i += n  // already zero
            }
        }
        guard let lit = Canonical(lengths: Array(lengths[0..<hlit]), maxBits: 15), lengths[256] > 0,
              Canonical.isAcceptedDistanceCode(lengths[hlit...]) else { return false }

        // Multi-literal table (see `multiTable`); the hot loop keeps the bit buffer in locals,
        // not in variables captured by the helper closures above, so they stay in registers.
        let bitsPerLookup = tableBits(forOutput: outCount)
        let t = lit.multiTable(bits: bitsPerLookup)
        defer { t.deallocate() }
        let mask = UInt64((1 << bitsPerLookup) - 1)
        var o = 0
        var b = buf, n = bits, p = pos
        var done = false
        let raw = UnsafeMutableRawPointer(dst)
        decoding: do {
            while true {
                // SAFETY: as in refill(): 8-byte loads only with 8 bytes left. Each lookup
                // stores 8 bytes at dst+o and advances o by at most `maxPerEntry`, so five
                // lookups write below o + 4·maxPerEntry + 8 ≤ outCount.
                if p &+ 8 <= inCount && o &+ (4 &* maxPerEntry &+ 8) <= outCount {
                    b |= UInt64(littleEndian: UnsafeRawPointer(src + p).loadUnaligned(as: UInt64.self)) &<< UInt64(n)
                    p &+= (63 &- n) &>> 3
                    n |= 56
                    // 5 lookups of at most 11 bits each: 55 ≤ 56 bits available.
                    var k = 0
                    while k < 5 {
                        let e = t[Int(b & mask)]
                        let count = Int((e &>> 48) & 0xFF)
                        if count == 0 { break }
                        raw.storeBytes(of: e.littleEndian, toByteOffset: o, as: UInt64.self)
                        o &+= count
                        let len = e &>> 56
                        b &>>= len
                        n &-= Int(len)
                        k &+= 1
                    }
                    if k == 5 { continue }
                }
                // Slow path: a long code, end of block, or near either end of the buffers.
                buf = b; bits = n; pos = p
                if bits < 16 { refill() }
                guard let sym = lit.decode(&buf, &bits) else { return false }
                b = buf; n = bits; p = pos
                if sym < 256 {
                    guard o < outCount else { return false }
                    dst[o] = UInt8(truncatingIfNeeded: sym)
                    o &+= 1
                } else {
                    // End of block must come exactly after the last byte; a match (257+)
                    // is left to libdeflate.
                    done = sym == 256 && o == outCount
                    break decoding
                }
            }
        }
        guard done else { return false }
        // No invented bits used, and the stream ends in its last byte.
        let consumed = (pos + overrun) * 8 - bits
        return consumed <= inCount * 8 && (consumed + 7) / 8 == inCount
    }

    /// A canonical Huffman code (RFC 1951 §3.2.2) for decoding; nil unless complete.
    struct Canonical {
        var count = [Int](repeating: 0, count: 16)      // codes of each length
        var symbols: [Int] = []                          // symbols sorted by (length, value)
        let lengths: [UInt8]

        init?(lengths: [UInt8], maxBits: Int) {
            self.lengths = lengths
            for l in lengths {
                guard Int(l) <= maxBits else { return nil }
                count[Int(l)] += 1
            }
            count[0] = 0
            var left = 1
            for len in 1...15 {
                left = left * 2 - count[len]
                guard left >= 0 else { return nil }  // over-subscribed
            }
            guard left == 0 else { return nil }      // incomplete: leave it to libdeflate
            // Counting sort by (length, symbol): one pass over the lengths.
            var next = [Int](repeating: 0, count: 16)
            for len in 1..<15 { next[len + 1] = next[len] + count[len] }
            symbols = [Int](repeating: 0, count: next[15] + count[15])
            for (s, l) in lengths.enumerated() where l > 0 {
                symbols[next[Int(l)]] = s
                next[Int(l)] += 1
            }
        }

        /// Whether zlib and libdeflate accept `lengths` as a block's distance code: complete,
        /// or one of the two incomplete codes they allow (no code at all, or a single code of
        /// one bit). A literal-only stream never uses its distance code, but a decoder that
        /// ignored it would accept streams libdeflate refuses (the `ckz-chunk` fuzz target
        /// found one: lengths [3, 1]).
        static func isAcceptedDistanceCode(_ lengths: ArraySlice<UInt8>) -> Bool {
            var count = [Int](repeating: 0, count: 16)
            for l in lengths { count[Int(l)] += 1 }
            var used = 0  // code space taken, in units of 2^-15
            for len in 1...15 { used += count[len] << (15 - len) }
            return used == 1 << 15 || used == 0 || (used == 1 << 14 && count[1] == 1)
        }

        /// Bit-at-a-time canonical decoding (as zlib's puff.c describes); needs 15 bits in buf.
        func decode(_ buf: inout UInt64, _ bits: inout Int) -> Int? {
            var code = 0, first = 0, index = 0
            for len in 1...15 {
                guard bits > 0 else { return nil }
                code |= Int(buf & 1)
                buf &>>= 1
                bits -= 1
                let c = count[len]
                if code - first < c { return symbols[index + code - first] }
                index += c
                first = (first + c) << 1
                code <<= 1
            }
            return nil
        }

        /// Entry for every `bits`-bit pattern: the literals whose codes it starts with, as
        /// many as fit in `bits` bits (at most `maxPerEntry`), decoded greedily. Layout of
        /// the 64-bit entry: bytes 0..<6 the literals in order (the rest zero), byte 6 their
        /// count, byte 7 the total code length; count 0 = the first code is longer than
        /// `bits` or not a literal (end of block, match), for the slow path. One lookup
        /// yields ~4 exponents of trained weights (~2.6 bits each), so the chain of dependent
        /// table loads that bounds decoding is a quarter as long as one symbol per lookup.
        /// The caller deallocates the table.
        ///
        /// Built by walking the code tree, not by decoding every pattern: read most
        /// significant bit first (bit-reversed index), the patterns that begin with a given
        /// sequence of codes are one contiguous range, and canonical codes in (length,
        /// symbol) order split it into consecutive sub-ranges. So each entry is written
        /// once, with no per-pattern decoding (this build was a third of the time of
        /// decoding a small tensor).
        func multiTable(bits: Int) -> UnsafeMutableBufferPointer<UInt64> {
            precondition(bits >= 1 && bits <= LiteralInflater.tableBits)
            let table = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: 1 << bits)
            // The codes that fit in the table, in canonical order, with their lengths.
            var short = 0
            for len in 1...bits { short += count[len] }
            let lengthOf = symbols.prefix(short).map { lengths[$0] }
            symbols.withUnsafeBufferPointer { symbols in
                lengthOf.withUnsafeBufferPointer { lengthOf in
                    LiteralInflater.reversed.withUnsafeBufferPointer { reversed in
                        let tree = Tree(table: table.baseAddress!, bits: bits, symbols: symbols.baseAddress!,
                                        lengthOf: lengthOf.baseAddress!, short: short, reversed: reversed.baseAddress!)
                        tree.fill(base: 0, rest: bits, entry: 0, literals: 0)
                    }
                }
            }
            return table
        }

        /// The walk behind `multiTable`.
        private struct Tree {
            let table: UnsafeMutablePointer<UInt64>
            let bits: Int
            /// Symbols in canonical order, and the lengths of the first `short` (those of at
            /// most `bits` bits).
            let symbols: UnsafePointer<Int>
            let lengthOf: UnsafePointer<UInt8>
            let short: Int
            let reversed: UnsafePointer<UInt16>

            /// Fills the entries of every pattern that starts with the codes of the `literals`
            /// literals in `entry`: in bit-reversed order, the `1 << rest` patterns from `base`.
            func fill(base: Int, rest: Int, entry: UInt64, literals: Int) {
                let used = bits - rest
                let stop = literals == 0 ? 0 : entry | UInt64(literals) << 48 | UInt64(used) << 56
                var at = base
                if literals < LiteralInflater.maxPerEntry {
                    var k = 0
                    while k < short {
                        let len = Int(lengthOf[k])
                        if len > rest { break }
                        let width = 1 << (rest - len), s = symbols[k]
                        if s < 256 {
                            fill(base: at, rest: rest - len, entry: entry | UInt64(s) << UInt64(8 * literals), literals: literals + 1)
                        } else {
                            store(stop, from: at, count: width)  // end of block or a match
                        }
                        at += width
                        k += 1
                    }
                }
                store(stop, from: at, count: base + (1 << rest) - at)  // codes longer than `rest`
            }

            /// `entry` for the patterns whose bit-reversed indices are `from..<from + count`.
            @inline(__always) func store(_ entry: UInt64, from: Int, count: Int) {
                let shift = LiteralInflater.tableBits - bits
                for r in from..<from + count { table[Int(reversed[r]) >> shift] = entry }
            }
        }
    }
}

// The .ckz hot loops: the C plane filter (AVX2 and scalar) against a plain Swift statement
// of docs/ckz.md's filter, the histogram (both paths) and HDF5 shuffle kernels against naive
// loops, the Huffman writer with and without its pair table, and
// the multi-literal table decoder against libdeflate on code-length shapes that reach every
// path (one symbol per 1-bit code, six per entry, 15-bit codes on the slow path).

import CDeflate
import CKernels
import CkptCore
import Foundation
import Testing
import TestSupport
@testable import Formats

@Suite struct CKZKernelTests {
    func random(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    /// docs/ckz.md, filter 1, forward: rotate each element left by one bit, byte j to plane j.
    func referenceSplit(_ raw: [UInt8], width: Int) -> [UInt8] {
        let n = raw.count / width
        var out = [UInt8](repeating: 0, count: raw.count)
        for i in 0..<n {
            var v: UInt64 = 0
            for j in 0..<width { v |= UInt64(raw[i * width + j]) << (8 * j) }
            let bits = UInt64(8 * width)
            let mask: UInt64 = width == 8 ? ~0 : (1 << bits) - 1
            let r = ((v << 1) | (v >> (bits - 1))) & mask
            for j in 0..<width { out[j * n + i] = UInt8(truncatingIfNeeded: r >> (8 * j)) }
        }
        return out
    }

    @Test(arguments: [2, 4, 8], [0, 1, 31, 32, 33, 64, 1000, 65_537])
    func planeFilterMatchesTheSpecOnBothPaths(width: Int, elements: Int) {
        let raw = random(elements * width, seed: UInt64(elements * 10 + width))
        let expected = referenceSplit(raw, width: width)
        let split = withBothPaths { () -> [UInt8] in
            var planes = [UInt8](repeating: 0, count: raw.count)
            raw.withUnsafeBytes { r in planes.withUnsafeMutableBytes { ChunkCodec.splitPlanes(r, width: width, into: $0) } }
            return planes
        }
        #expect(split.scalar == expected && split.simd == expected)
        let joined = withBothPaths { () -> [UInt8] in
            var out = [UInt8](repeating: 0, count: raw.count)
            expected.withUnsafeBytes { p in
                let base = p.baseAddress!
                let pointers = (0..<width).map { base + $0 * elements }
                out.withUnsafeMutableBytes { ChunkCodec.joinPlanes(pointers, into: $0) }
            }
            return out
        }
        #expect(joined.scalar == raw && joined.simd == raw)
    }

    @Test(arguments: [0, 1, 7, 8, 9, 4099])
    func histogramCountsEveryByte(length: Int) {
        let bytes = random(length, seed: 3) + [UInt8](repeating: 9, count: length)  // runs of equal bytes too
        var naive = [Int](repeating: 0, count: 256)
        for b in bytes { naive[Int(b)] += 1 }
        #expect(bytes.withUnsafeBytes { ChunkCodec.histogram($0) } == naive)
    }

    /// Long exponent-like planes take the vector path for their hot values (first 2 KiB:
    /// 12 values cover ≥ 97 %), with rare bytes on the scalar path between them; a plane that
    /// turns to other values after the probe must still be counted exactly.
    @Test(arguments: ["octaves", "dominant", "exponents", "deep", "shifted"], [16_384, 16_385, 300_001])
    func histogramOfHotPlanesOnBothPaths(kind: String, length: Int) {
        var bytes: [UInt8]
        switch kind {
        case "octaves", "shifted":
            // 120, 119, 118, ... with probability halving: 12 values cover 99.98 %.
            var rng = SplitMix64(seed: UInt64(length))
            bytes = (0..<length).map { _ in UInt8(120 - min(rng.next().trailingZeroBitCount, 40)) }
            if kind == "shifted" { for i in 4096..<length { bytes[i] = UInt8(truncatingIfNeeded: i &* 7) } }
        default:
            bytes = Self.draw(kind, length, seed: UInt64(length))
        }
        var naive = [Int](repeating: 0, count: 256)
        for b in bytes { naive[Int(b)] += 1 }
        let counted = withBothPaths { bytes.withUnsafeBytes { ChunkCodec.histogram($0) } }
        #expect(counted.scalar == naive && counted.simd == naive)
    }

    /// The Huffman writer gives the same bytes with and without its two-bytes-per-lookup
    /// table, and libdeflate decodes them (codes up to 15 bits: pairs that need a mid flush).
    @Test(arguments: ["dominant", "exponents", "deep"], [1, 5, 70_003])
    func huffmanPairTableWritesTheSameBytes(kind: String, length: Int) throws {
        let input = Self.draw(kind, length, seed: UInt64(length) &+ 11)
        let plan = ChunkCodec.planHuffman(histogram: input.withUnsafeBytes { ChunkCodec.histogram($0) })
        let pairs = UnsafeMutablePointer<UInt64>.allocate(capacity: ChunkCodec.pairTableCount)
        defer { pairs.deallocate() }
        pairs.initialize(repeating: 0xDEAD_BEEF, count: ChunkCodec.pairTableCount)  // stale entries must not matter
        func encode(_ p: UnsafeMutablePointer<UInt64>?) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: plan.byteCount + 8)
            let n = input.withUnsafeBytes { i in out.withUnsafeMutableBytes { ChunkCodec.encodeHuffman(i, plan: plan, into: $0, pairs: p) } }
            return Array(out.prefix(n))
        }
        let single = encode(nil), paired = encode(pairs)
        #expect(single == paired)
        var decoded = [UInt8](repeating: 0, count: length)
        let d = try #require(libdeflate_alloc_decompressor())
        defer { libdeflate_free_decompressor(d) }
        let failure = paired.withUnsafeBytes { e in decoded.withUnsafeMutableBytes { ChunkCodec.inflate(e, into: $0, decompressor: d) } }
        #expect(failure == nil && decoded == input)
    }

    @Test(arguments: [1, 2, 4, 8, 3])
    func shuffleIsHDF5s(size: Int) {
        let n = 1001
        let src = random(n * size, seed: UInt64(size))
        var out = [UInt8](repeating: 0, count: src.count)
        src.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { ck_shuffle(s.baseAddress!, n, size, $0.baseAddress!) } }
        var naive = [UInt8](repeating: 0, count: src.count)
        for i in 0..<n { for j in 0..<size { naive[j * n + i] = src[i * size + j] } }
        #expect(out == naive)
    }

    /// Symbols drawn so the Huffman code has the given shape: `dominant` (one symbol at ~97 %:
    /// 1-bit code, six literals per table entry), `exponents` (geometric, like trained
    /// weights' exponents), `deep` (frequencies halving down to 15-bit codes, slow path).
    static func draw(_ kind: String, _ n: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in
            let r = rng.next()
            switch kind {
            case "dominant": return r % 33 == 0 ? UInt8(truncatingIfNeeded: r >> 32) : 121
            case "exponents":
                var k = 0
                var bits = r
                while bits & 1 == 1 && k < 40 { k += 1; bits >>= 1 }
                return UInt8(120 - k % 60 + (r >> 60 == 0 ? 3 : 0))
            default:
                let z = (r >> 8).trailingZeroBitCount
                return UInt8(min(z, 40) * 5 + Int(r & 1))
            }
        }
    }

    /// The multi-literal table, built by walking the code tree, against the definition:
    /// every pattern decoded greedily, literal by literal, as long as the next code fits.
    @Test(arguments: ["dominant", "exponents", "deep", "flat"])
    func multiTableEqualsGreedyDecoding(kind: String) throws {
        let input = kind == "flat" ? (0..<4096).map { UInt8(truncatingIfNeeded: $0 % 200) } : Self.draw(kind, 1 << 16, seed: 7)
        let plan = ChunkCodec.planHuffman(histogram: input.withUnsafeBytes { ChunkCodec.histogram($0) })
        let lengths = plan.literalLengths
        let code = try #require(LiteralInflater.Canonical(lengths: lengths, maxBits: 15))
        let codes = ChunkCodec.canonicalCodes(lengths)
        for bits in 1...LiteralInflater.tableBits {
            let table = code.multiTable(bits: bits)
            defer { table.deallocate() }
            for pattern in 0..<(1 << bits) {
                var entry: UInt64 = 0, used = 0, count = 0
                decoding: while count < LiteralInflater.maxPerEntry {
                    for s in 0..<256 where lengths[s] > 0 && used + Int(lengths[s]) <= bits {
                        let l = Int(lengths[s])
                        if (pattern >> used) & ((1 << l) - 1) == Int(codes[s]) {
                            entry |= UInt64(s) << UInt64(8 * count)
                            count += 1
                            used += l
                            continue decoding
                        }
                    }
                    break
                }
                let expected = count == 0 ? 0 : entry | UInt64(count) << 48 | UInt64(used) << 56
                guard table[pattern] == expected else {
                    Issue.record("\(kind), \(bits)-bit table, pattern \(pattern): \(String(table[pattern], radix: 16)), expected \(String(expected, radix: 16))")
                    return
                }
            }
        }
    }

    /// Table sizes by output size: the smallest for tiny chunks, the largest from 8 KiB.
    @Test func tableSizeFollowsOutputSize() {
        #expect(LiteralInflater.tableBits(forOutput: 1) == LiteralInflater.minTableBits)
        #expect(LiteralInflater.tableBits(forOutput: 255) == LiteralInflater.minTableBits)
        #expect(LiteralInflater.tableBits(forOutput: 1000) == 7)
        #expect(LiteralInflater.tableBits(forOutput: 4096) == 10)
        #expect(LiteralInflater.tableBits(forOutput: 8192) == LiteralInflater.tableBits)
        #expect(LiteralInflater.tableBits(forOutput: 1 << 20) == LiteralInflater.tableBits)
    }

    @Test(arguments: ["dominant", "exponents", "deep"], [1, 40, 700, 3000, 5000, 1 << 18])
    func tableDecoderEqualsLibdeflate(kind: String, length: Int) throws {
        let input = Self.draw(kind, length, seed: UInt64(length))
        let plan = ChunkCodec.planHuffman(histogram: input.withUnsafeBytes { ChunkCodec.histogram($0) })
        var encoded = [UInt8](repeating: 0, count: plan.byteCount + 8)
        let n = input.withUnsafeBytes { i in encoded.withUnsafeMutableBytes { ChunkCodec.encodeHuffman(i, plan: plan, into: $0) } }
        encoded.removeLast(encoded.count - n)
        var fast = [UInt8](repeating: 0, count: length)
        #expect(encoded.withUnsafeBytes { e in fast.withUnsafeMutableBytes { LiteralInflater.inflate(e, into: $0) } })
        var reference = [UInt8](repeating: 0, count: length)
        let d = try #require(libdeflate_alloc_decompressor())
        defer { libdeflate_free_decompressor(d) }
        let failure = encoded.withUnsafeBytes { e in reference.withUnsafeMutableBytes { ChunkCodec.inflate(e, into: $0, decompressor: d) } }
        #expect(failure == nil)
        #expect(fast == input && reference == input)
        if kind == "deep" && length > 1000 { #expect(plan.literalLengths.max()! > UInt8(LiteralInflater.tableBits(forOutput: length))) }
    }

    /// A literal-only dynamic block whose distance code has `distance` lengths: literal
    /// codes of 9 bits, end of block 1 bit, every code length sent with a 4-bit code.
    static func literalStream(_ body: [UInt8], distance: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], acc: UInt64 = 0, n = 0
        func put(_ v: UInt32, _ bits: Int) {
            acc |= UInt64(v) << UInt64(n)
            n += bits
            while n >= 8 { out.append(UInt8(truncatingIfNeeded: acc)); acc >>= 8; n -= 8 }
        }
        put(1, 1); put(2, 2)  // final block, dynamic Huffman
        put(0, 5); put(UInt32(distance.count - 1), 5); put(19 - 4, 4)  // HLIT 257, HDIST, HCLEN 19
        let clLengths = (0..<19).map { $0 < 16 ? UInt8(4) : 0 }  // 16 symbols of 4 bits: complete
        for s in ChunkCodec.codeLengthOrder { put(UInt32(clLengths[s]), 3) }
        let clCodes = ChunkCodec.canonicalCodes(clLengths)
        let litLengths = [UInt8](repeating: 9, count: 256) + [1]
        for l in litLengths + distance { put(clCodes[Int(l)], 4) }
        let litCodes = ChunkCodec.canonicalCodes(litLengths)
        for b in body { put(litCodes[Int(b)], 9) }
        put(litCodes[256], 1)
        if n > 0 { out.append(UInt8(truncatingIfNeeded: acc)) }
        return out
    }

    /// The fast decoder accepts a literal-only stream exactly when libdeflate does, whatever
    /// its (unused) distance code: complete codes, no code, one 1-bit code, and the
    /// incomplete and over-subscribed ones libdeflate refuses — among them [3, 1], which the
    /// `ckz-chunk` fuzz target found accepted by the fast path and refused by libdeflate.
    @Test func distanceCodeAcceptedExactlyAsLibdeflateDoes() throws {
        let body = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let d = try #require(libdeflate_alloc_decompressor())
        defer { libdeflate_free_decompressor(d) }
        var codes: [[UInt8]] = []
        for count in 1...3 {
            for k in 0..<(1 << (2 * count)) { codes.append((0..<count).map { UInt8((k >> (2 * $0)) & 3) }) }
        }
        var accepted = 0
        for distance in codes {
            let stream = Self.literalStream(body, distance: distance)
            var fast = [UInt8](repeating: 0, count: body.count), slow = fast
            let fastOK = stream.withUnsafeBytes { e in fast.withUnsafeMutableBytes { LiteralInflater.inflate(e, into: $0) } }
            let failure = stream.withUnsafeBytes { e in slow.withUnsafeMutableBytes { ChunkCodec.inflate(e, into: $0, decompressor: d) } }
            #expect(fastOK == (failure == nil), "distance lengths \(distance): fast \(fastOK), libdeflate \(failure ?? "ok")")
            if fastOK { #expect(fast == body && slow == body); accepted += 1 }
        }
        #expect(codes.contains([3, 1]))
        #expect(accepted > 0 && accepted < codes.count)
    }
}

// .ckz chunk codec: the plane filter, a Huffman-only DEFLATE encoder, and libdeflate for
// DEFLATE matching, decoding and CRC32. Pointer work lives here (the file name says so);
// callers pass buffers whose sizes they have checked.
//
// Why a hand-written Huffman encoder: the chunks' redundancy is almost all in the exponent
// plane's byte frequencies, and LZ matching finds little else (docs/ckz.md, "Design
// notes"). zlib's Z_HUFFMAN_ONLY strategy does the right thing but runs at about 80 MB/s
// here (measured on all-MiniLM-L6-v2, Python's zlib, all planes of 1 MiB chunks), which
// cannot meet the 150 MB/s target; libdeflate has no entropy-only mode. The encoder below
// writes one ordinary dynamic-Huffman DEFLATE block (RFC 1951 §3.2.7) containing only
// literals, so any inflate (zlib, libdeflate, Python's zlib with wbits=-15) decodes it. Its
// exact size is known from the histogram before encoding, so choosing between stored and
// Huffman costs one counting pass and no wasted encoding.

import CDeflate
import CKernels
import CkptCore

enum ChunkCodec {
    // MARK: CRC32

    /// CRC-32 (ISO-HDLC, the polynomial of zlib, gzip and PNG) via libdeflate.
    static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        // SAFETY: base..<base+count is the caller's valid buffer.
        return libdeflate_crc32(0, base, bytes.count)
    }

    // MARK: Plane filter

    /// Filter 1, forward: `raw` holds `raw.count / width` little-endian elements; each is
    /// rotated left by one bit and its byte j goes to plane j (plane j starts at
    /// `j * raw.count / width` in `planes`).
    static func splitPlanes(_ raw: UnsafeRawBufferPointer, width: Int, into planes: UnsafeMutableRawBufferPointer) {
        let n = raw.count / width
        precondition(n * width == raw.count && planes.count >= raw.count, "plane buffers sized by the caller")
        guard n > 0, let src = raw.baseAddress, let dst = planes.baseAddress else { return }
        // SAFETY: element i is read from src[i*width..<(i+1)*width] and its bytes written to
        // dst[j*n + i] for j < width, all inside the checked buffers.
        // The C kernels (AVX2 where the CPU has it) for 2- and 4-byte elements.
        let p0 = dst.assumingMemoryBound(to: UInt8.self)
        let s = src.assumingMemoryBound(to: UInt8.self)
        switch width {
        case 2:
            ck_split2(s, n, p0, p0 + n)
        case 4:
            ck_split4(s, n, p0, p0 + n, p0 + 2 &* n, p0 + 3 &* n)
        default:
            let p = dst.assumingMemoryBound(to: UInt8.self)
            for i in 0..<n {
                let v = UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self))
                let r = (v &<< 1) | (v &>> 63)
                for j in 0..<8 { p[j &* n &+ i] = UInt8(truncatingIfNeeded: r &>> UInt64(8 &* j)) }
            }
        }
    }

    /// Filter 1, inverse: plane j of `width` planes (each `out.count / width` bytes) at
    /// `planes[j]`, rebuilt into little-endian elements and rotated right by one bit.
    static func joinPlanes(_ planes: [UnsafeRawPointer], into out: UnsafeMutableRawBufferPointer) {
        let width = planes.count
        let n = out.count / width
        precondition(n * width == out.count, "plane buffers sized by the caller")
        guard n > 0, let dst = out.baseAddress else { return }
        // SAFETY: each plane pointer is valid for n bytes (checked by the caller); element i
        // is written to dst[i*width..<(i+1)*width].
        let d = dst.assumingMemoryBound(to: UInt8.self)
        func plane(_ j: Int) -> UnsafePointer<UInt8> { planes[j].assumingMemoryBound(to: UInt8.self) }
        switch width {
        case 2:
            ck_join2(plane(0), plane(1), n, d)
        case 4:
            ck_join4(plane(0), plane(1), plane(2), plane(3), n, d)
        default:
            let p = planes.map { $0.assumingMemoryBound(to: UInt8.self) }
            for i in 0..<n {
                var r: UInt64 = 0
                for j in 0..<width { r |= UInt64(p[j][i]) &<< UInt64(8 &* j) }
                dst.storeBytes(of: ((r &>> 1) | (r &<< 63)).littleEndian, toByteOffset: i &* 8, as: UInt64.self)
            }
        }
    }

    // MARK: Huffman-only DEFLATE

    /// Byte frequencies (C kernel: four tables, 8-byte loads).
    static func histogram(_ bytes: UnsafeRawBufferPointer) -> [Int] {
        var counts = [UInt32](repeating: 0, count: 256)
        if let src = bytes.baseAddress, bytes.count > 0 {
            // SAFETY: reads src[0..<count], writes the 256 counts. UInt32 counts cannot
            // overflow: chunks are at most 64 MiB (CKZ.maxChunkSize).
            counts.withUnsafeMutableBufferPointer { ck_histogram(src.assumingMemoryBound(to: UInt8.self), bytes.count, $0.baseAddress!) }
        }
        return counts.map { Int($0) }
    }

    /// Byte frequencies of `bytes` counted in two steps: `sample` counts `pieces` evenly
    /// spaced runs (a quarter of the bytes in all), and `rest` adds the bytes between them,
    /// giving exactly `histogram(bytes)`. Lets a caller give up on a plane the sample shows
    /// to be incompressible without counting all of it.
    struct SampledHistogram {
        let bytes: UnsafeRawBufferPointer
        static let pieces = 8
        var counts = [UInt32](repeating: 0, count: 256)

        init(_ bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
            forEachRun(sampled: true) { add($0) }
        }

        /// Runs of the sample (sampled) or of the rest: piece k is [k·n/8, k·n/8 + n/32).
        private func forEachRun(sampled: Bool, _ body: (Range<Int>) -> Void) {
            let n = bytes.count
            for k in 0..<Self.pieces {
                let start = k * n / Self.pieces, end = (k + 1) * n / Self.pieces
                let cut = min(end, start + n / (4 * Self.pieces))
                body(sampled ? start..<cut : cut..<end)
            }
        }

        private mutating func add(_ r: Range<Int>) {
            guard !r.isEmpty, let src = bytes.baseAddress else { return }
            // SAFETY: r lies inside bytes; the counts cannot overflow (chunks ≤ 64 MiB).
            counts.withUnsafeMutableBufferPointer { ck_histogram(src.assumingMemoryBound(to: UInt8.self) + r.lowerBound, r.count, $0.baseAddress!) }
        }

        /// The sample's counts and byte count.
        var sample: (counts: [Int], count: Int) {
            var total = 0
            forEachRun(sampled: true) { total += $0.count }
            return (counts.map { Int($0) }, total)
        }

        /// Counts of all the bytes.
        mutating func complete() -> [Int] {
            var rest: [Range<Int>] = []
            forEachRun(sampled: false) { rest.append($0) }
            for r in rest { add(r) }
            return counts.map { Int($0) }
        }
    }

    /// A planned Huffman-only DEFLATE block: its code and its exact size.
    struct HuffmanPlan {
        var literalLengths: [UInt8]   // 257: bytes 0...255 and end-of-block (256)
        var header: [(symbol: Int, extraBits: Int, extra: Int)]  // run-length-coded code lengths
        var codeLengthLengths: [UInt8]  // 19
        var hclen: Int                  // code-length codes sent, 4...19
        var totalBits: Int
        var byteCount: Int { (totalBits + 7) / 8 }
    }

    /// RFC 1951 §3.2.7: order in which the code-length code lengths are sent.
    static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    static func planHuffman(histogram counts: [Int]) -> HuffmanPlan {
        var freq = counts
        freq.append(1)  // end of block
        let lit = limitedCodeLengths(freq, maxBits: 15)
        // Two distance codes of one bit each, though none is used: inflaters differ on how
        // they treat an empty or one-code distance tree, and zlib's own encoder sends two
        // (trees.c, build_tree: "force at least two codes of non zero frequency").
        let all = lit + [1, 1]
        let rle = runLengthCode(all)
        var clFreq = [Int](repeating: 0, count: 19)
        for item in rle { clFreq[item.symbol] += 1 }
        let cl = limitedCodeLengths(clFreq, maxBits: 7)
        var hclen = 19
        while hclen > 4 && cl[codeLengthOrder[hclen - 1]] == 0 { hclen -= 1 }
        var bits = 3 + 5 + 5 + 4 + 3 * hclen
        for item in rle { bits += Int(cl[item.symbol]) + item.extraBits }
        for s in 0..<257 { bits += freq[s] * Int(lit[s]) }
        return HuffmanPlan(literalLengths: lit, header: rle, codeLengthLengths: cl, hclen: hclen, totalBits: bits)
    }

    /// Code lengths no longer than `maxBits`. Optimal Huffman lengths; if too deep, halve
    /// the frequencies (keeping them non-zero) and rebuild — as JPEG's Annex K and several
    /// DEFLATE encoders do. Deterministic (ties broken by symbol) and always a complete code.
    static func limitedCodeLengths(_ frequencies: [Int], maxBits: Int) -> [UInt8] {
        var f = frequencies
        while true {
            let lengths = huffmanCodeLengths(f)
            if (lengths.max() ?? 0) <= maxBits { return lengths.map { UInt8($0) } }
            for i in f.indices where f[i] > 0 { f[i] = (f[i] + 1) / 2 }
        }
    }

    static func huffmanCodeLengths(_ f: [Int]) -> [Int] {
        var lengths = [Int](repeating: 0, count: f.count)
        let used = f.indices.filter { f[$0] > 0 }.sorted { (f[$0], $0) < (f[$1], $1) }
        if used.isEmpty { return lengths }
        if used.count == 1 {
            // One symbol: give it and a neighbour one bit each, so the code is complete.
            lengths[used[0]] = 1
            lengths[used[0] == 0 ? 1 : 0] = 1
            return lengths
        }
        // Two-queue construction: leaves sorted by weight, internal nodes come out sorted.
        let leafCount = used.count
        var weight = used.map { f[$0] }
        var parent = [Int](repeating: -1, count: 2 * leafCount - 1)
        weight.reserveCapacity(2 * leafCount - 1)
        var nextLeaf = 0, nextInternal = leafCount
        func takeSmallest() -> Int {
            if nextLeaf < leafCount && (nextInternal >= weight.count || weight[nextLeaf] <= weight[nextInternal]) {
                nextLeaf += 1
                return nextLeaf - 1
            }
            nextInternal += 1
            return nextInternal - 1
        }
        while weight.count < 2 * leafCount - 1 {
            let a = takeSmallest(), b = takeSmallest()
            let node = weight.count
            weight.append(weight[a] + weight[b])
            parent[a] = node
            parent[b] = node
        }
        var depth = [Int](repeating: 0, count: weight.count)
        for node in stride(from: weight.count - 2, through: 0, by: -1) { depth[node] = depth[parent[node]] + 1 }
        for (i, s) in used.enumerated() { lengths[s] = depth[i] }
        return lengths
    }

    /// RFC 1951 §3.2.7 run-length coding of a code-length sequence (16 = repeat previous
    /// 3–6 times, 17 = 3–10 zeros, 18 = 11–138 zeros).
    static func runLengthCode(_ lengths: [UInt8]) -> [(symbol: Int, extraBits: Int, extra: Int)] {
        var out: [(symbol: Int, extraBits: Int, extra: Int)] = []
        var i = 0
        while i < lengths.count {
            let l = lengths[i]
            var run = 1
            while i + run < lengths.count && lengths[i + run] == l { run += 1 }
            i += run
            if l == 0 {
                while run >= 11 {
                    let r = min(run, 138)
                    out.append((18, 7, r - 11))
                    run -= r
                }
                if run >= 3 {
                    out.append((17, 3, run - 3))
                    run = 0
                }
                for _ in 0..<run { out.append((0, 0, 0)) }
            } else {
                out.append((Int(l), 0, 0))
                run -= 1
                while run >= 3 {
                    let r = min(run, 6)
                    out.append((16, 2, r - 3))
                    run -= r
                }
                for _ in 0..<run { out.append((Int(l), 0, 0)) }
            }
        }
        return out
    }

    /// Canonical codes (RFC 1951 §3.2.2), bit-reversed because DEFLATE sends Huffman codes
    /// most-significant bit first into a least-significant-bit-first stream.
    static func canonicalCodes(_ lengths: [UInt8]) -> [UInt32] {
        var blCount = [Int](repeating: 0, count: 16)
        for l in lengths where l > 0 { blCount[Int(l)] += 1 }
        // blCount[0] stays 0 (unused symbols are not counted), as the RFC's loop requires.
        var next = [UInt32](repeating: 0, count: 16)
        var code: UInt32 = 0
        for bits in 1...15 {
            code = (code + UInt32(blCount[bits - 1])) << 1
            next[bits] = code
        }
        var codes = [UInt32](repeating: 0, count: lengths.count)
        for s in lengths.indices where lengths[s] > 0 {
            let len = Int(lengths[s])
            var c = next[len]
            next[len] += 1
            var reversed: UInt32 = 0
            for _ in 0..<len {
                reversed = (reversed << 1) | (c & 1)
                c >>= 1
            }
            codes[s] = reversed
        }
        return codes
    }

    /// Entries of the scratch `encodeHuffman` may use to code two bytes per lookup.
    static let pairTableCount = 1 << 16

    /// Writes the planned block for `input` into `out`, which must hold
    /// `plan.byteCount + 8` bytes (the bit writer stores whole 64-bit words). Returns the
    /// bytes written (= plan.byteCount). `pairs`: nil, or `pairTableCount` entries of scratch
    /// (faster on long inputs; the bytes are the same).
    static func encodeHuffman(_ input: UnsafeRawBufferPointer, plan: HuffmanPlan, into out: UnsafeMutableRawBufferPointer,
                              pairs: UnsafeMutablePointer<UInt64>? = nil) -> Int {
        precondition(out.count >= plan.byteCount + 8, "output sized from the plan")
        let litCodes = canonicalCodes(plan.literalLengths)
        let clCodes = canonicalCodes(plan.codeLengthLengths)
        let dst = out.baseAddress!
        var pos = 0
        var acc: UInt64 = 0
        var n = 0
        // SAFETY: every flush writes 8 bytes at dst+pos; pos never passes plan.byteCount
        // (the plan counted every bit), and out has 8 bytes of slack beyond it.
        @inline(__always) func flush() {
            dst.storeBytes(of: acc.littleEndian, toByteOffset: pos, as: UInt64.self)
            pos &+= n &>> 3
            acc = acc &>> UInt64(n & ~7)
            n &= 7
        }
        @inline(__always) func put(_ value: UInt32, _ bits: Int) {
            acc |= UInt64(value) &<< UInt64(n)
            n &+= bits
            if n >= 32 { flush() }
        }
        put(1, 1)  // BFINAL
        put(2, 2)  // BTYPE = dynamic Huffman
        put(0, 5)  // HLIT: 257 literal/length codes
        put(1, 5)  // HDIST: 2 distance codes
        put(UInt32(plan.hclen - 4), 4)
        for i in 0..<plan.hclen { put(UInt32(plan.codeLengthLengths[codeLengthOrder[i]]), 3) }
        for item in plan.header {
            put(clCodes[item.symbol], Int(plan.codeLengthLengths[item.symbol]))
            if item.extraBits > 0 { put(UInt32(item.extra), item.extraBits) }
        }
        // The literals: C kernel (two bytes per lookup when `pairs` scratch is given).
        var table = [UInt32](repeating: 0, count: 256)
        for s in 0..<256 { table[s] = litCodes[s] | UInt32(plan.literalLengths[s]) << 16 }
        if let src = input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count > 0 {
            var w = ck_bitwriter(acc: acc, pos: pos, bits: UInt32(n))
            // SAFETY: the kernel reads src[0..<count] and writes at most the planned bytes + 8
            // into out (checked above); pairs, when given, holds 65536 entries (caller).
            table.withUnsafeBufferPointer { t in
                ck_huffman_literals(src, input.count, t.baseAddress!, pairs, dst.assumingMemoryBound(to: UInt8.self), &w)
            }
            acc = w.acc
            pos = w.pos
            n = Int(w.bits)
        }
        put(litCodes[256], Int(plan.literalLengths[256]))
        flush()
        if n > 0 { pos &+= 1 }  // the partial last byte (already stored by flush)
        precondition(pos == plan.byteCount, "Huffman plan and encoder disagree")
        return pos
    }

    // MARK: libdeflate

    /// DEFLATE with libdeflate at `level`, only if the result is shorter than `limit` bytes.
    static func deflate(_ input: UnsafeRawBufferPointer, level: Int32, limit: Int) -> [UInt8]? {
        guard limit > 0, let compressor = libdeflate_alloc_compressor(level) else { return nil }
        defer { libdeflate_free_compressor(compressor) }
        var out = [UInt8](repeating: 0, count: limit - 1)
        let n = out.withUnsafeMutableBytes { o in
            // SAFETY: input and o are valid for their counts; libdeflate writes at most o.count.
            libdeflate_deflate_compress(compressor, input.baseAddress, input.count, o.baseAddress, o.count)
        }
        guard n > 0 else { return nil }
        out.removeLast(out.count - n)
        return out
    }

    /// Inflates exactly `out.count` bytes from exactly `input.count` bytes of raw DEFLATE;
    /// returns nil on success, else what went wrong.
    static func inflate(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer,
                        decompressor: OpaquePointer) -> String? {
        var consumed = 0
        // SAFETY: both buffers are valid for their counts; libdeflate never writes more than
        // out.count bytes, and with actual_out = NULL it fails unless it fills out exactly.
        let r = libdeflate_deflate_decompress_ex(decompressor, input.baseAddress, input.count,
                                                 out.baseAddress, out.count, &consumed, nil)
        switch r {
        case LIBDEFLATE_SUCCESS:
            return consumed == input.count ? nil : "DEFLATE stream ends after \(consumed) of its \(input.count) bytes"
        case LIBDEFLATE_BAD_DATA: return "invalid DEFLATE data"
        case LIBDEFLATE_SHORT_OUTPUT: return "DEFLATE data decodes to fewer than the \(out.count) bytes recorded"
        case LIBDEFLATE_INSUFFICIENT_SPACE: return "DEFLATE data decodes to more than the \(out.count) bytes recorded"
        default: return "libdeflate error \(r.rawValue)"
        }
    }
}

// A small, strict zip reader and writer: exactly what .npz needs (PKWARE APPNOTE 6.3.x).
//
// Reading: the end-of-central-directory record (and its zip64 form) gives the central
// directory; each entry's sizes, CRC-32 and local-header offset come from there (zip64
// extra field 0x0001 when a field is 0xFFFFFFFF). Members are stored (method 0) or deflated
// (method 8); encrypted and other methods are refused. Every count, offset and length is
// checked against the file before use, names must be unique UTF-8, and a local header must
// agree with its central entry. Zip-bomb safety: a deflated member's declared size must be
// within deflate's maximum ratio (1032:1) of its compressed size, inflation writes into a
// buffer of exactly the declared size and fails if the stream wants more or less, and the
// CRC-32 is checked. Nothing is inflated until a member's bytes are asked for.
//
// Writing: local header + data per member (sizes and CRC known up front), central
// directory, end record; zip64 records only when a size, offset or count needs them (as
// Python's zipfile does without force_zip64).

import CZlib
import Foundation

public enum ZipError: Error, Equatable, Sendable, CustomStringConvertible {
    case notZip
    case truncated(String)
    case invalid(String)
    case unsupported(member: String, reason: String)
    case duplicateMember(String)
    case sizeMismatch(member: String, reason: String)
    case crcMismatch(member: String)
    case zlib(member: String, code: Int32)

    public var description: String {
        switch self {
        case .notZip: return "not a zip file (no end of central directory record)"
        case .truncated(let m): return "truncated: \(m)"
        case .invalid(let m): return "invalid zip: \(m)"
        case .unsupported(let n, let r): return "member `\(n)`: \(r)"
        case .duplicateMember(let n): return "member `\(n)`: name appears twice"
        case .sizeMismatch(let n, let r): return "member `\(n)`: \(r)"
        case .crcMismatch(let n): return "member `\(n)`: CRC-32 mismatch (corrupt data)"
        case .zlib(let n, let c): return "member `\(n)`: deflate stream is corrupt (zlib error \(c))"
        }
    }
}

struct ZipEntry: Sendable {
    var name: String
    var method: UInt16
    var crc: UInt32
    var compressedSize: Int
    var size: Int
    /// Offset of the member's data (after its local header) in the file.
    var dataOffset: Int
}

enum Zip {
    /// deflate's best case is about 1032:1 (258-byte matches coded in 2 bits).
    static let maxDeflateRatio = 1032

    static func u16(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt16 { UInt16(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    static func u32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 { UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    static func u64(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt64 { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }

    /// The entries of a whole zip file held in `b`.
    static func entries(_ b: UnsafeRawBufferPointer) throws(ZipError) -> [ZipEntry] {
        // The end record (22 bytes + comment <= 65535) is within the last 65557 bytes.
        guard b.count >= 22 else { throw .notZip }
        var eocd = -1
        var i = b.count - 22
        while i >= max(0, b.count - 65557) {
            if u32(b, i) == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw .notZip }
        var count = UInt64(u16(b, eocd + 10))
        var cdSize = UInt64(u32(b, eocd + 12))
        var cdOffset = UInt64(u32(b, eocd + 16))
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // zip64 locator (20 bytes) just before the end record, pointing at the zip64 end record.
            guard eocd >= 20, u32(b, eocd - 20) == 0x0706_4B50 else { throw .invalid("zip64 locator missing") }
            let at = u64(b, eocd - 12)
            // (56 bytes: a file shorter than the record has none; found by fuzz-npz)
            guard b.count >= 56, at <= UInt64(b.count - 56), u32(b, Int(at)) == 0x0606_4B50 else { throw .invalid("zip64 end record outside the file") }
            count = u64(b, Int(at) + 32)
            cdSize = u64(b, Int(at) + 40)
            cdOffset = u64(b, Int(at) + 48)
        }
        guard cdOffset <= UInt64(b.count), cdSize <= UInt64(b.count) - cdOffset else { throw .truncated("central directory outside the file") }
        // A central entry takes at least 46 bytes.
        guard count <= cdSize / 46 else { throw .invalid("\(count) entries cannot fit a \(cdSize)-byte central directory") }
        var out: [ZipEntry] = []
        var names = Set<String>()
        var p = Int(cdOffset)
        let cdEnd = Int(cdOffset + cdSize)
        for _ in 0..<Int(count) {
            guard p + 46 <= cdEnd, u32(b, p) == 0x0201_4B50 else { throw .invalid("bad central directory entry") }
            let flags = u16(b, p + 8), method = u16(b, p + 10)
            let crc = u32(b, p + 16)
            var csize = UInt64(u32(b, p + 20)), usize = UInt64(u32(b, p + 24))
            let nameLen = Int(u16(b, p + 28)), extraLen = Int(u16(b, p + 30)), commentLen = Int(u16(b, p + 32))
            var localOffset = UInt64(u32(b, p + 42))
            guard p + 46 + nameLen + extraLen + commentLen <= cdEnd else { throw .truncated("central directory entry") }
            guard let name = String(validating: b[p + 46..<p + 46 + nameLen], as: UTF8.self) else { throw .invalid("member name is not UTF-8") }
            // zip64 extra: the 64-bit values of the fields that are 0xFFFFFFFF, in order.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = u16(b, e), len = Int(u16(b, e + 2))
                guard e + 4 + len <= extraEnd else { throw .invalid("member `\(name)`: extra field overruns") }
                if id == 0x0001 {
                    var f = e + 4
                    func next() throws(ZipError) -> UInt64 {
                        guard f + 8 <= e + 4 + len else { throw .invalid("member `\(name)`: short zip64 field") }
                        defer { f += 8 }
                        return u64(b, f)
                    }
                    if usize == 0xFFFF_FFFF { usize = try next() }
                    if csize == 0xFFFF_FFFF { csize = try next() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next() }
                }
                e += 4 + len
            }
            p += 46 + nameLen + extraLen + commentLen
            guard names.insert(name).inserted else { throw .duplicateMember(name) }
            guard flags & 1 == 0 else { throw .unsupported(member: name, reason: "encrypted") }
            guard method == 0 || method == 8 else { throw .unsupported(member: name, reason: "compression method \(method) (only stored and deflated)") }
            if method == 0, csize != usize { throw .sizeMismatch(member: name, reason: "stored member with compressed size \(csize) != size \(usize)") }
            if method == 8, usize > csize.multipliedReportingOverflow(by: UInt64(maxDeflateRatio)).partialValue + 1024 {
                throw .sizeMismatch(member: name, reason: "declares \(usize) bytes from \(csize) compressed, beyond deflate's 1032:1 (zip bomb?)")
            }
            // Local header: 30 bytes + its own name and extra; its name must match.
            guard localOffset <= UInt64(b.count - 30), u32(b, Int(localOffset)) == 0x0403_4B50 else { throw .invalid("member `\(name)`: no local header at \(localOffset)") }
            let lo = Int(localOffset)
            let lNameLen = Int(u16(b, lo + 26)), lExtraLen = Int(u16(b, lo + 28))
            let dataOffset = lo + 30 + lNameLen + lExtraLen
            guard dataOffset <= b.count, Array(b[lo + 30..<lo + 30 + lNameLen]) == Array(name.utf8) else {
                throw .invalid("member `\(name)`: local header disagrees with the central directory")
            }
            guard csize <= UInt64(b.count - dataOffset) else { throw .truncated("member `\(name)` data runs past the end of the file") }
            guard usize <= UInt64(Int.max) else { throw .sizeMismatch(member: name, reason: "size overflows") }
            out.append(ZipEntry(name: name, method: method, crc: crc, compressedSize: Int(csize), size: Int(usize), dataOffset: dataOffset))
        }
        return out
    }

    static func crc32(_ b: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var crc = UInt(seed)
        var p = b.baseAddress, left = b.count
        while left > 0, let base = p {
            let n = min(left, Int(UInt32.max >> 1))
            crc = CZlib.crc32(crc, base.assumingMemoryBound(to: UInt8.self), UInt32(n))
            p = base + n
            left -= n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    /// Inflates a raw deflate stream into exactly `size` bytes. With `prefixOnly`, stops
    /// after `size` bytes (or at the end of the stream) and returns what it has.
    static func inflate(_ src: UnsafeRawBufferPointer, size: Int, member: String, prefixOnly: Bool = false) throws(ZipError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        var stream = z_stream()
        guard czlib_inflate_init_raw(&stream) == Z_OK else { throw .zlib(member: member, code: Z_MEM_ERROR) }
        defer { inflateEnd(&stream) }
        var status: Int32 = Z_OK
        var produced = 0
        var overflow = false
        out.withUnsafeMutableBytes { dst in
            // SAFETY: zlib reads avail_in bytes at next_in and writes at most avail_out bytes
            // at next_out; both point into buffers that outlive this block (chunks < 2³⁰).
            var inPos = 0
            stream.next_out = dst.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = 0
            while true {
                if stream.avail_in == 0, inPos < src.count {
                    let n = min(src.count - inPos, 1 << 30)
                    stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress!.advanced(by: inPos).assumingMemoryBound(to: Bytef.self))
                    stream.avail_in = UInt32(n)
                    inPos += n
                }
                if stream.avail_out == 0 {
                    if produced == size {
                        if prefixOnly { return }
                        // Full: the stream must end here. Offer one scratch byte to find out.
                        var scratch: UInt8 = 0
                        withUnsafeMutablePointer(to: &scratch) { sp in
                            stream.next_out = sp
                            stream.avail_out = 1
                            status = CZlib.inflate(&stream, Z_NO_FLUSH)
                            overflow = stream.avail_out == 0
                        }
                        return
                    }
                    stream.avail_out = UInt32(min(size - produced, 1 << 30))
                }
                let before = stream.avail_out
                status = CZlib.inflate(&stream, Z_NO_FLUSH)
                produced += Int(before - stream.avail_out)
                if status == Z_STREAM_END { return }
                if status == Z_BUF_ERROR && stream.avail_in == 0 && inPos >= src.count { return }  // input ran out
                if status != Z_OK && status != Z_BUF_ERROR { return }
            }
        }
        if prefixOnly { return Array(out[0..<produced]) }
        if overflow { throw .sizeMismatch(member: member, reason: "inflates to more than its declared \(size) bytes") }
        guard status == Z_STREAM_END else {
            if status == Z_OK || status == Z_BUF_ERROR { throw .sizeMismatch(member: member, reason: "deflate stream ends early (\(produced) of \(size) bytes)") }
            throw .zlib(member: member, code: status)
        }
        guard produced == size else { throw .sizeMismatch(member: member, reason: "inflates to \(produced) bytes, declared \(size)") }
        return out
    }

    static func deflate(_ src: UnsafeRawBufferPointer, member: String) throws(ZipError) -> [UInt8] {
        var stream = z_stream()
        guard czlib_deflate_init_raw(&stream, 6) == Z_OK else { throw .zlib(member: member, code: Z_MEM_ERROR) }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(src.count))) + 16)
        var status: Int32 = Z_OK
        var produced = 0
        out.withUnsafeMutableBytes { dst in
            // SAFETY: as in inflate; deflateBound guarantees the output fits in one pass.
            stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = UInt32(src.count)
            stream.next_out = dst.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = UInt32(dst.count)
            status = CZlib.deflate(&stream, Z_FINISH)
            produced = dst.count - Int(stream.avail_out)
        }
        guard status == Z_STREAM_END else { throw .zlib(member: member, code: status) }
        return Array(out[0..<produced])
    }

    // MARK: Writing

    struct Written {
        var name: [UInt8]
        var method: UInt16
        var crc: UInt32
        var compressedSize: Int
        var size: Int
        var offset: Int
    }

    static func append<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }

    /// DOS date/time of 1980-01-01 00:00 (fixed, so output is reproducible).
    static let dosTime: UInt16 = 0, dosDate: UInt16 = (0 << 9) | (1 << 5) | 1

    static func localHeader(_ w: Written) -> [UInt8] {
        let zip64 = w.size >= 0xFFFF_FFFF || w.compressedSize >= 0xFFFF_FFFF
        var h: [UInt8] = []
        append(UInt32(0x0403_4B50), &h)
        append(UInt16(zip64 ? 45 : 20), &h)
        append(UInt16(0x800), &h)  // bit 11: UTF-8 names
        append(w.method, &h); append(dosTime, &h); append(dosDate, &h); append(w.crc, &h)
        append(UInt32(zip64 ? 0xFFFF_FFFF : UInt32(w.compressedSize)), &h)
        append(UInt32(zip64 ? 0xFFFF_FFFF : UInt32(w.size)), &h)
        append(UInt16(w.name.count), &h)
        append(UInt16(zip64 ? 20 : 0), &h)
        h += w.name
        if zip64 {
            append(UInt16(1), &h); append(UInt16(16), &h)
            append(UInt64(w.size), &h); append(UInt64(w.compressedSize), &h)
        }
        return h
    }

    static func centralDirectory(_ entries: [Written], start: Int) -> [UInt8] {
        var cd: [UInt8] = []
        for w in entries {
            let bigSize = w.size >= 0xFFFF_FFFF || w.compressedSize >= 0xFFFF_FFFF, bigOffset = w.offset >= 0xFFFF_FFFF
            var extra: [UInt8] = []
            if bigSize { append(UInt64(w.size), &extra); append(UInt64(w.compressedSize), &extra) }
            if bigOffset { append(UInt64(w.offset), &extra) }
            if !extra.isEmpty { extra = [0x01, 0x00] + [UInt8(extra.count), 0] + extra }
            append(UInt32(0x0201_4B50), &cd)
            append(UInt16(0x031E), &cd)  // made by: Unix, spec 3.0
            append(UInt16(extra.isEmpty ? 20 : 45), &cd)
            append(UInt16(0x800), &cd); append(w.method, &cd); append(dosTime, &cd); append(dosDate, &cd); append(w.crc, &cd)
            append(UInt32(bigSize ? 0xFFFF_FFFF : UInt32(w.compressedSize)), &cd)
            append(UInt32(bigSize ? 0xFFFF_FFFF : UInt32(w.size)), &cd)
            append(UInt16(w.name.count), &cd); append(UInt16(extra.count), &cd); append(UInt16(0), &cd)
            append(UInt16(0), &cd); append(UInt16(0), &cd); append(UInt32(0o100644 << 16), &cd)
            append(UInt32(bigOffset ? 0xFFFF_FFFF : UInt32(w.offset)), &cd)
            cd += w.name + extra
        }
        let size = cd.count
        let needs64 = entries.count >= 0xFFFF || size >= 0xFFFF_FFFF || start >= 0xFFFF_FFFF
        if needs64 {
            let at = start + size
            append(UInt32(0x0606_4B50), &cd); append(UInt64(44), &cd); append(UInt16(45), &cd); append(UInt16(45), &cd)
            append(UInt32(0), &cd); append(UInt32(0), &cd)
            append(UInt64(entries.count), &cd); append(UInt64(entries.count), &cd)
            append(UInt64(size), &cd); append(UInt64(start), &cd)
            append(UInt32(0x0706_4B50), &cd); append(UInt32(0), &cd); append(UInt64(at), &cd); append(UInt32(1), &cd)
        }
        append(UInt32(0x0605_4B50), &cd); append(UInt16(0), &cd); append(UInt16(0), &cd)
        let n16 = UInt16(min(entries.count, 0xFFFF))
        append(n16, &cd); append(n16, &cd)
        append(UInt32(min(size, 0xFFFF_FFFF)), &cd); append(UInt32(min(start, 0xFFFF_FFFF)), &cd)
        append(UInt16(0), &cd)
        return cd
    }
}

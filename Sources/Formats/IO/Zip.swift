// The one zip reader and writer: .npz (numpy.savez), torch.save archives and Keras 3 .keras
// files all go through it (PKWARE APPNOTE 6.3.x; section numbers below are its).
//
// Reading, through ByteCursor, checking everything before it is trusted:
//   end of central directory (4.3.16): in the last 65,557 bytes and ending exactly at the end
//     of the file (trailing bytes would make a polyglot); single-disk only
//   zip64 locator + end record (4.3.14, 4.3.15) when present, right before it; the 32-bit
//     fields must agree with the 64-bit ones or be the 0xFFFF... "see zip64" markers
//   central directory: inside the file, before the end records, exactly the records it
//     claims (each at least 46 bytes, which caps the count by the bytes there are); names
//     unique, valid UTF-8; zip64 extra field (id 0x0001, 4.5.3) for the fields marked
//     0xFFFFFFFF, in order
//   each member: not encrypted, stored (method 0) or deflated (8); a stored member's sizes
//     agree; a deflated member declares no more than deflate's 1032:1 ratio allows (zip
//     bombs); its local header (4.3.7) agrees on name and method; its data lies inside the
//     file before the central directory; members do not overlap.
// Nothing is inflated until a member's bytes are asked for: inflation writes into a buffer of
// exactly the declared size, fails if the stream wants more or less, and the CRC-32 is
// checked by the caller.
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
    case badMember(member: String, reason: String)
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
        case .badMember(let n, let r): return "member `\(n)`: \(r)"
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
    /// Offset of the member's local header in the file.
    var localOffset: Int
    /// Offset of the member's data (after its local header) in the file.
    var dataOffset: Int
}

enum Zip {
    /// deflate's best case is about 1032:1 (258-byte matches coded in 2 bits).
    static let maxDeflateRatio = 1032

    static let eocdSignature: UInt32 = 0x0605_4B50
    static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    static let zip64EOCDSignature: UInt32 = 0x0606_4B50
    static let centralSignature: UInt32 = 0x0201_4B50
    static let localSignature: UInt32 = 0x0403_4B50

    /// Where the central directory is, from the end records.
    struct Directory {
        var entries: Int
        var offset: Int
        var size: Int
    }

    /// A central directory record, before its local header is checked.
    struct Record {
        var name: String
        var flags: UInt16
        var method: UInt16
        var crc: UInt32
        var compressedSize: UInt64
        var size: UInt64
        var localOffset: UInt64
    }

    /// Finds and checks the end records (and zip64's) of a whole zip file held in `b`.
    static func directory(_ b: UnsafeRawBufferPointer) throws(ZipError) -> Directory {
        let c = ByteCursor(b)
        let size = b.count
        // 22 bytes, then a comment of at most 65,535 bytes: the record starts in the last
        // 65,557 bytes, and must end where the file does.
        guard size >= 22 else { throw .notZip }
        var eocd = -1
        var at = size - 22
        while at >= max(0, size - 22 - 65_535) {
            if c.le(UInt32.self, at: at) == eocdSignature, let commentLength = c.le(UInt16.self, at: at + 20),
               at + 22 + Int(commentLength) == size {
                eocd = at
                break
            }
            at -= 1
        }
        guard eocd >= 0 else { throw .notZip }
        // SAFETY of the force-unwraps below: eocd + 22 <= size, so every field is inside.
        let disk = c.le(UInt16.self, at: eocd + 4)!, cdDisk = c.le(UInt16.self, at: eocd + 6)!
        var entriesOnDisk = UInt64(c.le(UInt16.self, at: eocd + 8)!)
        var entries = UInt64(c.le(UInt16.self, at: eocd + 10)!)
        var cdSize = UInt64(c.le(UInt32.self, at: eocd + 12)!)
        var cdOffset = UInt64(c.le(UInt32.self, at: eocd + 16)!)
        guard disk == 0, cdDisk == 0 else { throw .invalid("multi-disk archives are not supported") }
        var endOfDirectory = eocd  // where the central directory must end at the latest

        // Zip64: the locator sits right before the end record and points at the zip64 record.
        if eocd >= 20, c.le(UInt32.self, at: eocd - 20) == zip64LocatorSignature {
            let locator = eocd - 20
            let recordOffset = c.le(UInt64.self, at: locator + 8)!
            guard c.le(UInt32.self, at: locator + 4) == 0, c.le(UInt32.self, at: locator + 16) == 1 else {
                throw .invalid("multi-disk archives are not supported")
            }
            // The zip64 record is 56 bytes (without extensible data) and ends by the locator.
            guard recordOffset <= UInt64(locator), UInt64(locator) - recordOffset >= 56 else {
                throw .invalid("zip64 end record offset \(recordOffset) is outside the file")
            }
            let r = Int(recordOffset)
            guard c.le(UInt32.self, at: r) == zip64EOCDSignature else {
                throw .invalid("no zip64 end-of-central-directory record at byte \(r)")
            }
            guard c.le(UInt32.self, at: r + 16) == 0, c.le(UInt32.self, at: r + 20) == 0 else {
                throw .invalid("multi-disk archives are not supported")
            }
            let e64 = c.le(UInt64.self, at: r + 24)!, t64 = c.le(UInt64.self, at: r + 32)!
            let s64 = c.le(UInt64.self, at: r + 40)!, o64 = c.le(UInt64.self, at: r + 48)!
            // The 32-bit fields must either agree or be the 0xFFFF... "see zip64" markers.
            func agrees(_ small: UInt64, _ marker: UInt64, _ big: UInt64) -> Bool { small == marker || small == big }
            guard agrees(entriesOnDisk, 0xFFFF, e64), agrees(entries, 0xFFFF, t64),
                  agrees(cdSize, 0xFFFF_FFFF, s64), agrees(cdOffset, 0xFFFF_FFFF, o64) else {
                throw .invalid("end-of-central-directory record disagrees with the zip64 record")
            }
            (entriesOnDisk, entries, cdSize, cdOffset) = (e64, t64, s64, o64)
            endOfDirectory = r
        } else if entries == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            throw .invalid("zip64 locator missing")
        }
        guard entriesOnDisk == entries else { throw .invalid("multi-disk archives are not supported") }
        guard cdOffset <= UInt64(endOfDirectory), cdSize <= UInt64(endOfDirectory) - cdOffset else {
            throw .invalid("central directory (\(cdSize) bytes at \(cdOffset)) runs past its end record at byte \(endOfDirectory)")
        }
        // Each central record takes at least 46 bytes: this caps the count by the bytes there are.
        guard entries <= cdSize / 46 else {
            throw .invalid("central directory claims \(entries) members but has room for only \(cdSize / 46)")
        }
        return Directory(entries: Int(entries), offset: Int(cdOffset), size: Int(cdSize))
    }

    /// The central directory's records, each whole and inside the directory, names unique.
    static func records(_ b: UnsafeRawBufferPointer, _ d: Directory) throws(ZipError) -> [Record] {
        var cursor = ByteCursor(b, position: d.offset, end: d.offset + d.size)
        var out: [Record] = []
        out.reserveCapacity(d.entries)
        var names = Set<String>()
        for index in 0..<d.entries {
            let recordStart = cursor.position
            guard cursor.has(46), cursor.le(UInt32.self) == centralSignature else {
                throw .invalid("central directory record \(index) at byte \(recordStart) has no valid signature")
            }
            // SAFETY of the force-unwraps: the 46 fixed bytes are there (checked above).
            _ = cursor.skip(4)  // versions made by / needed
            let flags = cursor.le(UInt16.self)!, method = cursor.le(UInt16.self)!
            _ = cursor.skip(4)  // time, date
            let crc = cursor.le(UInt32.self)!
            var compressed = UInt64(cursor.le(UInt32.self)!), size = UInt64(cursor.le(UInt32.self)!)
            let nameLength = Int(cursor.le(UInt16.self)!), extraLength = Int(cursor.le(UInt16.self)!)
            let commentLength = Int(cursor.le(UInt16.self)!)
            var diskStart = UInt32(cursor.le(UInt16.self)!)
            _ = cursor.skip(6)  // attributes
            var localOffset = UInt64(cursor.le(UInt32.self)!)
            guard let nameBytes = cursor.utf8(nameLength) else {
                throw .invalid("central directory record \(index) runs past the directory")
            }
            guard let name = nameBytes else { throw .invalid("member name in record \(index) is not valid UTF-8") }
            guard var extra = cursor.bytes(extraLength).map({ ByteCursor($0) }), cursor.skip(commentLength) else {
                throw .invalid("central directory record for \(name) runs past the directory")
            }
            // Zip64 extended information (4.5.3): only the fields whose 32-bit value is the
            // 0xFFFFFFFF marker are present, in this order.
            while extra.has(4) {
                let id = extra.le(UInt16.self)!, length = Int(extra.le(UInt16.self)!)
                guard let body = extra.bytes(length) else { throw .badMember(member: name, reason: "extra field runs past its record") }
                guard id == 0x0001 else { continue }
                var field = ByteCursor(body)
                func next64() throws(ZipError) -> UInt64 {
                    guard let v = field.le(UInt64.self) else { throw .badMember(member: name, reason: "zip64 extra field is too short") }
                    return v
                }
                if size == 0xFFFF_FFFF { size = try next64() }
                if compressed == 0xFFFF_FFFF { compressed = try next64() }
                if localOffset == 0xFFFF_FFFF { localOffset = try next64() }
                if diskStart == 0xFFFF {
                    guard let v = field.le(UInt32.self) else { throw .badMember(member: name, reason: "zip64 extra field is too short") }
                    diskStart = v
                }
            }
            guard diskStart == 0 else { throw .badMember(member: name, reason: "lies on another disk") }
            guard names.insert(name).inserted else { throw .duplicateMember(name) }
            out.append(Record(name: name, flags: flags, method: method, crc: crc, compressedSize: compressed, size: size, localOffset: localOffset))
        }
        guard cursor.remaining == 0 else {
            throw .invalid("central directory has \(cursor.remaining) bytes after its \(d.entries) records")
        }
        return out
    }

    /// Member names from the central directory alone (for format detection, which must not
    /// refuse a file whose members are damaged: the reader then says how).
    static func names(_ b: UnsafeRawBufferPointer) -> [String]? {
        guard let d = try? directory(b), let r = try? records(b, d) else { return nil }
        return r.map(\.name)
    }

    /// The members of a whole zip file held in `b`, every check above passed.
    static func entries(_ b: UnsafeRawBufferPointer) throws(ZipError) -> [ZipEntry] {
        let d = try directory(b)
        let c = ByteCursor(b)
        var out: [ZipEntry] = []
        out.reserveCapacity(d.entries)
        for r in try records(b, d) {
            let name = r.name
            guard r.flags & 1 == 0 else { throw .unsupported(member: name, reason: "encrypted") }
            guard r.method == 0 || r.method == 8 else { throw .unsupported(member: name, reason: "compression method \(r.method) (only stored and deflated)") }
            if r.method == 0, r.compressedSize != r.size {
                throw .sizeMismatch(member: name, reason: "stored member with compressed size \(r.compressedSize) != size \(r.size)")
            }
            if r.method == 8, r.size > r.compressedSize.multipliedReportingOverflow(by: UInt64(maxDeflateRatio)).partialValue + 1024 {
                throw .sizeMismatch(member: name, reason: "declares \(r.size) bytes from \(r.compressedSize) compressed, beyond deflate's 1032:1 (zip bomb?)")
            }
            // The local header (30 bytes + its own name and extra) must agree with the central
            // record; the data follows it and ends before the central directory.
            guard r.localOffset <= UInt64(d.offset), UInt64(d.offset) - r.localOffset >= 30 else {
                throw .badMember(member: name, reason: "local header offset \(r.localOffset) is not before the central directory")
            }
            let lh = Int(r.localOffset)
            guard c.le(UInt32.self, at: lh) == localSignature else { throw .badMember(member: name, reason: "no local file header at byte \(lh)") }
            let localMethod = c.le(UInt16.self, at: lh + 8)!
            let localNameLength = Int(c.le(UInt16.self, at: lh + 26)!), localExtraLength = Int(c.le(UInt16.self, at: lh + 28)!)
            let dataStart = lh + 30 + localNameLength + localExtraLength
            guard localMethod == r.method, c.bytes(at: lh + 30, count: localNameLength)?.elementsEqual(name.utf8) == true else {
                throw .badMember(member: name, reason: "local header disagrees with the central directory")
            }
            guard dataStart <= d.offset, r.compressedSize <= UInt64(d.offset - dataStart) else {
                throw .truncated("member `\(name)`: \(r.compressedSize) bytes at \(dataStart) run into the central directory at \(d.offset)")
            }
            guard r.size <= UInt64(Int.max) else { throw .sizeMismatch(member: name, reason: "size overflows") }
            out.append(ZipEntry(name: name, method: r.method, crc: r.crc, compressedSize: Int(r.compressedSize), size: Int(r.size),
                                localOffset: lh, dataOffset: dataStart))
        }
        // Members must not overlap (overlapping members are how zip bombs and polyglots work).
        let extents = out.sorted { $0.localOffset < $1.localOffset }
        for (a, b) in zip(extents, extents.dropFirst()) where b.localOffset < a.dataOffset + a.compressedSize {
            throw .badMember(member: b.name, reason: "overlaps member \(a.name)")
        }
        return out
    }

    static func crc32(_ b: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 { CRC32.checksum(b, seed: seed) }

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

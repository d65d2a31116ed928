// ByteCursor: bounds-checked little-endian reads over a borrowed byte buffer.
//
// Every binary parser reads untrusted bytes through this one type: the safetensors and .npy
// headers, GGUF, the .ckz trailer and index, the zip reader (.npz, torch.save, .keras) and
// the pickle interpreter. Every read checks the bytes that remain *before* touching memory
// (indexing an UnsafeRawBufferPointer is only checked in debug builds), returns nil when
// they do not suffice, and loads integers unaligned and little-endian (never `load(as:)` on
// file bytes). Parsers turn a nil into their own error, naming what was being read.
//
// SAFETY: a cursor borrows its buffer; it is created inside a `withBytes` (or
// `withUnsafeBytes`) closure and never stored beyond it. Values it returns are copies
// (integers, Strings, Arrays), except `bytes(_:)`/`bytes(at:count:)`, whose result is a view
// of the same borrowed buffer with the same lifetime rule.

import CZlib

struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    /// Current position, relative to the start of `bytes`.
    var position: Int
    /// End of the readable range (exclusive); reads past it fail.
    let end: Int

    init(_ bytes: UnsafeRawBufferPointer, position: Int = 0, end: Int? = nil) {
        self.bytes = bytes
        self.position = position
        self.end = min(end ?? bytes.count, bytes.count)
    }

    var remaining: Int { max(0, end - position) }

    /// True when `count` bytes remain (count ≥ 0).
    func has(_ count: Int) -> Bool { count >= 0 && count <= remaining }

    mutating func u8() -> UInt8? {
        guard has(1) else { return nil }
        // SAFETY: position < end ≤ bytes.count, checked just above.
        let v = bytes.load(fromByteOffset: position, as: UInt8.self)
        position += 1
        return v
    }

    mutating func le<T: FixedWidthInteger>(_: T.Type) -> T? {
        guard has(MemoryLayout<T>.size) else { return nil }
        // SAFETY: position + size ≤ end ≤ bytes.count, checked just above.
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
        position += MemoryLayout<T>.size
        return v
    }

    /// Little-endian integer at an absolute offset, without moving.
    func le<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T? {
        guard offset >= 0, offset <= end - MemoryLayout<T>.size else { return nil }
        // SAFETY: offset + size ≤ end ≤ bytes.count, checked just above.
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// The next `count` bytes as a view of the borrowed buffer (see SAFETY above).
    mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer? {
        guard has(count) else { return nil }
        // SAFETY: position..<position+count lies inside bytes, checked just above.
        let v = UnsafeRawBufferPointer(rebasing: bytes[position..<position + count])
        position += count
        return v
    }

    /// `count` bytes at an absolute offset, as a view of the borrowed buffer, without moving.
    func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, count >= 0, offset <= end - count else { return nil }
        // SAFETY: offset..<offset+count lies inside bytes, checked just above.
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    /// Whether the bytes at `offset` are `magic`.
    func matches(_ magic: [UInt8], at offset: Int) -> Bool {
        guard let b = bytes(at: offset, count: magic.count) else { return false }
        return b.elementsEqual(magic)
    }

    /// Copies the next `count` bytes.
    mutating func array(_ count: Int) -> [UInt8]? {
        guard has(count) else { return nil }
        // SAFETY: position..<position+count lies inside bytes, checked just above.
        let a = Array(UnsafeRawBufferPointer(rebasing: bytes[position..<position + count]))
        position += count
        return a
    }

    /// The next `count` bytes as UTF-8 text; nil when short or not valid UTF-8.
    mutating func utf8(_ count: Int) -> String?? {
        guard has(count) else { return nil }
        // SAFETY: position..<position+count lies inside bytes, checked just above.
        let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[position..<position + count]), as: UTF8.self)
        position += count
        return .some(s)
    }

    /// Bytes up to (not including) the next `\n`, consumed with the newline; for the text
    /// arguments of GLOBAL. nil when no newline comes within `limit` bytes.
    mutating func line(limit: Int) -> [UInt8]? {
        var i = position
        let stop = min(end, position + limit)
        while i < stop {
            // SAFETY: i < end ≤ bytes.count.
            if bytes.load(fromByteOffset: i, as: UInt8.self) == 0x0A {
                let a = Array(UnsafeRawBufferPointer(rebasing: bytes[position..<i]))
                position = i + 1
                return a
            }
            i += 1
        }
        return nil
    }

    /// CRC-32 of `count` bytes at an absolute offset; nil when they are not all there.
    func crc32(offset: Int, count: Int) -> UInt32? {
        bytes(at: offset, count: count).map { CRC32.checksum($0) }
    }

    mutating func skip(_ count: Int) -> Bool {
        guard has(count) else { return false }
        position += count
        return true
    }
}

/// CRC-32 (IEEE 802.3, the zip checksum), zlib's.
enum CRC32 {
    static func checksum(_ b: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var crc = UInt(seed)
        var p = b.baseAddress, left = b.count
        while left > 0, let base = p {
            let n = min(left, Int(UInt32.max >> 1))
            // SAFETY: zlib reads n bytes at base, which lie inside b.
            crc = CZlib.crc32(crc, base.assumingMemoryBound(to: UInt8.self), UInt32(n))
            p = base + n
            left -= n
        }
        return UInt32(truncatingIfNeeded: crc)
    }
}

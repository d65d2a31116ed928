// Format detection: the probe each format's structural sniff reads (the sniffs live in the
// formats' handlers, and FormatRegistry asks them in order).
//
// A sniff answers "does this file have the structure of format F?" from bytes anywhere in
// the file (a memory mapping: nothing is read that the sniff does not touch). Sniffs check
// what a file of the format must hold, not one leading byte: a safetensors header length
// may well start with 0x80, the byte a pickle starts with, so a pickle is recognised by the
// torch.save magic number it must carry, and safetensors by its length, `{` and a header
// that closes inside the file. Zip archives are told apart by their members.

import CkptCore

/// The file a format is being detected for.
public final class FormatProbe {
    public let path: String
    let file: MappedFile
    /// The first 64 bytes (fewer for a shorter file).
    public let head: [UInt8]
    /// Member names when the file is a zip archive whose central directory reads (nil otherwise).
    public private(set) lazy var zipMembers: [String]? = file.withBytes { Self.zipNames($0) }

    public init(path: String) throws(IOError) {
        self.path = path
        file = try MappedFile(path: path)
        head = file.withBytes { Array($0.prefix(64)) }
    }

    public var size: Int { file.count }

    public func starts(with magic: [UInt8], at offset: Int = 0) -> Bool {
        guard offset >= 0, offset <= size - magic.count else { return false }
        return file.withBytes { b in magic.indices.allSatisfy { b[offset + $0] == magic[$0] } }
    }

    public func byte(at offset: Int) -> UInt8? {
        guard offset >= 0, offset < size else { return nil }
        return file.withBytes { $0[offset] }
    }

    public func u64(at offset: Int) -> UInt64? {
        guard offset >= 0, offset <= size - 8 else { return nil }
        return file.withBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }

    public func u32(at offset: Int) -> UInt32? {
        guard offset >= 0, offset <= size - 4 else { return nil }
        return file.withBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    public func hasExtension(_ ext: String) -> Bool { path.lowercased().hasSuffix("." + ext) }

    /// Starts like a zip archive (a local file header, or the end record of an empty one).
    public var isZip: Bool { starts(with: [0x50, 0x4B, 0x03, 0x04]) || starts(with: [0x50, 0x4B, 0x05, 0x06]) }

    /// The member names from a zip's central directory (lenient: names only, for detection;
    /// each reader validates the archive strictly). Capped at 1,000,000 members.
    static func zipNames(_ b: UnsafeRawBufferPointer) -> [String]? {
        guard b.count >= 22, b[0] == 0x50, b[1] == 0x4B else { return nil }
        func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        func u32(_ at: Int) -> UInt64 { UInt64(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        var eocd = -1
        var i = b.count - 22
        while i >= max(0, b.count - 65557) {  // the end record and a comment of at most 65,535 bytes
            if u32(i) == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { return nil }
        var count = UInt64(u16(eocd + 10)), offset = u32(eocd + 16)
        if count == 0xFFFF || offset == 0xFFFF_FFFF {
            guard eocd >= 20, u32(eocd - 20) == 0x0706_4B50 else { return nil }
            let at = u64(eocd - 12)
            guard at <= UInt64(b.count - 56), u32(Int(at)) == 0x0606_4B50 else { return nil }
            count = u64(Int(at) + 32)
            offset = u64(Int(at) + 48)
        }
        guard count <= 1_000_000, offset < UInt64(b.count) else { return nil }
        var names: [String] = []
        var p = Int(offset)
        for _ in 0..<Int(count) {
            guard p + 46 <= b.count, u32(p) == 0x0201_4B50 else { return nil }
            let n = u16(p + 28), extra = u16(p + 30), comment = u16(p + 32)
            guard p + 46 + n <= b.count else { return nil }
            names.append(String(decoding: UnsafeRawBufferPointer(rebasing: b[p + 46..<p + 46 + n]), as: UTF8.self))
            p += 46 + n + extra + comment
        }
        return names
    }
}

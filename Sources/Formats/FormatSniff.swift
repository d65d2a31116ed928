// Format detection: one structural sniff per format.
//
// A sniff answers "does this file have the structure of format F?" from bytes anywhere in
// the file (a memory mapping: nothing is read that the sniff does not touch). Sniffs check
// what a file of the format must hold, not one leading byte: a safetensors header length
// may well start with 0x80, the byte a pickle starts with, so a pickle is recognised by the
// torch.save magic number it must carry, and safetensors by its length, `{` and a header
// that closes inside the file. Zip archives are told apart by their members.
//
// To add a format: a case in CheckpointFormat, its sniff here, its place in `detectionOrder`.

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
            guard b.count >= 56, at <= UInt64(b.count - 56), u32(Int(at)) == 0x0606_4B50 else { return nil }
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

extension CheckpointFormat {
    /// The order sniffs are tried in. Every sniff is structural, so the order only matters
    /// for files that satisfy two (none known).
    static let detectionOrder: [CheckpointFormat] = [.hdf5, .gguf, .ckz, .npy, .safetensors, .npz, .keras, .torchscript, .pytorch]

    /// Whether the file has this format's structure.
    func sniff(_ p: FormatProbe) -> Bool {
        switch self {
        case .hdf5:
            // The superblock is at 0, or after a user block at 512, 1024, 2048, ... bytes
            // (MATLAB v7.3 .mat files have 512).
            var offset = 0
            while offset <= 1 << 20 {
                if p.starts(with: HDF5.signature, at: offset) { return true }
                offset = offset == 0 ? 512 : offset * 2
            }
            return false
        case .gguf:
            // "GGUF", then a u32 version (1 to 3 exist).
            guard p.starts(with: Array("GGUF".utf8)), let v = p.u32(at: 4) else { return false }
            return (1...3).contains(v)
        case .ckz:
            return p.starts(with: CKZ.magic)
        case .npy:
            // "\x93NUMPY", major version 1 to 3.
            guard p.starts(with: [0x93] + Array("NUMPY".utf8)), let major = p.byte(at: 6) else { return false }
            return (1...3).contains(major)
        case .safetensors:
            // u64 header length N (within the reference crate's cap and the file), then a
            // JSON object: `{` first, `}` last before the space padding.
            guard let n = p.u64(at: 0), n >= 2, n <= UInt64(Safetensors.maxHeaderSize), n <= UInt64(p.size - 8),
                  p.byte(at: 8) == UInt8(ascii: "{") else { return false }
            var end = 8 + Int(n) - 1
            while end > 8, p.byte(at: end) == UInt8(ascii: " ") { end -= 1 }
            return p.byte(at: end) == UInt8(ascii: "}")
        case .npz:
            // numpy.savez: every member an array (`NAME.npy`), plus the config ckpt adds.
            guard let names = p.zipMembers, names.contains(where: { $0.hasSuffix(".npy") }) else { return false }
            return names.allSatisfy { $0.hasSuffix(".npy") || $0 == Npz.configMember }
        case .keras:
            // Keras 3's `model.save("x.keras")`: config.json, metadata.json, model.weights.h5.
            return p.zipMembers?.contains(Keras.weightsMember) ?? false
        case .torchscript:
            // torch.jit.save: the pickled module plus its code and constants.
            guard let names = p.zipMembers else { return false }
            return names.contains { $0.hasSuffix("/constants.pkl") } && names.contains { $0.contains("/code/") }
        case .pytorch:
            // torch.save's zip: one archive folder holding data.pkl.
            if let names = p.zipMembers { return names.contains { $0.hasSuffix("/data.pkl") } }
            // torch.save's legacy format starts with the pickled magic number: PROTO 2..5,
            // LONG1 of 10 bytes, the number.
            guard p.byte(at: 0) == 0x80, let proto = p.byte(at: 1), (2...5).contains(proto) else { return false }
            // Protocol 4 and 5 may open a FRAME (0x95 and a u64 length) first.
            let at = proto >= 4 && p.byte(at: 2) == 0x95 ? 11 : 2
            return p.starts(with: [0x8A, 0x0A] + PyTorch.legacyMagic, at: at)
        }
    }
}

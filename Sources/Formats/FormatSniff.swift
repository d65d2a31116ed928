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
    public private(set) lazy var zipMembers: [String]? = file.withBytes { Zip.names($0) }

    public init(path: String) throws(IOError) {
        self.path = path
        file = try MappedFile(path: path)
        head = file.withBytes { Array($0.prefix(64)) }
    }

    public var size: Int { file.count }

    public func starts(with magic: [UInt8], at offset: Int = 0) -> Bool {
        file.withBytes { ByteCursor($0).matches(magic, at: offset) }
    }

    public func byte(at offset: Int) -> UInt8? { file.withBytes { ByteCursor($0).le(UInt8.self, at: offset) } }
    public func u64(at offset: Int) -> UInt64? { file.withBytes { ByteCursor($0).le(UInt64.self, at: offset) } }
    public func u32(at offset: Int) -> UInt32? { file.withBytes { ByteCursor($0).le(UInt32.self, at: offset) } }

    public func hasExtension(_ ext: String) -> Bool { path.lowercased().hasSuffix("." + ext) }

    /// Starts like a zip archive (a local file header, or the end record of an empty one).
    public var isZip: Bool { starts(with: [0x50, 0x4B, 0x03, 0x04]) || starts(with: [0x50, 0x4B, 0x05, 0x06]) }
}

// Content digests (SHA-256, via swift-crypto) of files and directories, for `ckpt run`'s
// cache and report.

import Crypto
import Formats
import Foundation

public enum Digest {
    /// SHA-256 of a file's bytes, or of a directory: of the lines "<relative path>\t<file
    /// digest>\n" over its regular files in sorted order (hidden files skipped).
    public static func sha256(path: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw IOError.cannotOpen(path: path, errno: ENOENT)
        }
        if !isDir.boolValue { return try file(path) }
        let names = (FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? [])
            .filter { !$0.split(separator: "/").contains { $0.hasPrefix(".") } }
            .sorted()
        var h = SHA256()
        for name in names {
            var sub: ObjCBool = false
            FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &sub)
            if sub.boolValue { continue }
            h.update(data: Data("\(name)\t\(try file(path + "/" + name))\n".utf8))
        }
        return hex(h.finalize())
    }

    static func file(_ path: String) throws -> String {
        let mapped = try MappedFile(path: path)
        var h = SHA256()
        mapped.withBytes { all in
            // 8 MiB at a time, giving the pages back as we go (inputs can be larger than RAM).
            var offset = 0
            while offset < all.count {
                let n = min(8 << 20, all.count - offset)
                h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: all[offset..<offset + n]))
                offset += n
            }
        }
        mapped.slice(offset: 0, count: mapped.count).releaseResidentPages()
        return hex(h.finalize())
    }

    public static func sha256(_ text: String) -> String { hex(SHA256.hash(data: Data(text.utf8))) }

    static func hex<D: Sequence>(_ d: D) -> String where D.Element == UInt8 {
        d.map { String(format: "%02x", $0) }.joined()
    }
}

// The zip container `torch.save` writes (PyTorch's `PyTorchStreamWriter`,
// caffe2/serialize/inline_container.cc, on top of miniz), read by a small hardened reader.
//
// Layout as torch writes it (all integers little-endian; APPNOTE.TXT section numbers):
//   for each member, in order data.pkl, .format_version, .storage_alignment, byteorder,
//   data/0, data/1, ..., version, .data/serialization_id:
//     local file header (4.3.7)  "PK\3\4", 26 bytes of fields, name, extra field
//                                (torch pads the extra field, id "FB", so data starts on a
//                                64-byte boundary); method 0 (stored); flag bit 3 set, so the
//                                sizes and CRC are in a data descriptor after the data
//     member bytes
//     data descriptor            "PK\7\8", CRC, sizes (8-byte sizes when zip64)
//   central directory (4.3.12)   one 46-byte record + name + extra + comment per member;
//                                sizes ≥ 4 GiB or offsets past 4 GiB move into a zip64
//                                extra field (id 0x0001, 4.5.3)
//   zip64 end of central directory record + locator (4.3.14, 4.3.15): torch always writes them
//   end of central directory record (4.3.16), no comment
//
// Every member is `<archive>/<name>`, where `<archive>` is the folder name torch chose (the
// file's stem in recent versions, "archive" in older ones); PyTorch's reader takes it from
// the first member's name, and so does this one.
//
// The archive itself is read and checked by the one zip reader (IO/Zip.swift); on top of it
// torch's rules: at least one member, every member stored (torch never compresses) and
// inside the one archive folder. CRCs are checked for the small members ckpt interprets
// (data.pkl, byteorder), not for tensor data (reading every byte just to checksum it would
// double the cost of a conversion).

struct TorchZip {
    struct Member {
        var name: String  // without the archive folder
        var dataOffset: Int  // in the file
        var size: Int
        var crc: UInt32
    }

    var archiveName: String
    var members: [String: Member]

    /// Parses the archive's directory; `file` is the whole file.
    static func parse(_ file: UnsafeRawBufferPointer) throws(PyTorchError) -> TorchZip {
        let entries: [ZipEntry]
        do { entries = try Zip.entries(file) } catch {
            switch error {
            case .notZip:
                throw .truncatedZip(file.count < 22 ? "\(file.count) bytes, too short for an end-of-central-directory record"
                                                    : "no end-of-central-directory record at the end of the file")
            case .truncated(let m): throw .truncatedZip(m)
            case .invalid(let m): throw .badZip(m)
            case .duplicateMember(let n): throw .badMember(member: n, reason: "appears twice in the central directory")
            case .unsupported(let n, let r), .sizeMismatch(let n, let r), .badMember(let n, let r): throw .badMember(member: n, reason: r)
            case .crcMismatch(let n): throw .badMember(member: n, reason: "CRC-32 mismatch (corrupted file?)")
            case .zlib(let n, let code): throw .badMember(member: n, reason: "deflate stream is corrupt (zlib error \(code))")
            }
        }
        guard !entries.isEmpty else { throw .badZip("archive has no members") }
        var archive: String?
        var members: [String: Member] = [:]
        for e in entries {
            guard e.method == 0 else { throw .compressedMember(member: e.name, method: Int(e.method)) }
            // The archive folder: everything before the first "/" of the first member.
            guard let slash = e.name.firstIndex(of: "/"), slash != e.name.startIndex else {
                throw .badMember(member: e.name, reason: "not inside an archive folder (torch.save puts every member in one)")
            }
            let folder = String(e.name[..<slash])
            if archive == nil { archive = folder }
            guard folder == archive else { throw .badMember(member: e.name, reason: "outside the archive folder \(archive!)/") }
            let name = String(e.name[e.name.index(after: slash)...])
            members[name] = Member(name: name, dataOffset: e.dataOffset, size: e.size, crc: e.crc)
        }
        return TorchZip(archiveName: archive!, members: members)
    }

    func member(_ name: String) throws(PyTorchError) -> Member {
        guard let m = members[name] else { throw .missingMember("\(archiveName)/\(name)") }
        return m
    }

    /// Checks a member's CRC-32 against the central directory.
    func verifyCRC(_ m: Member, in file: UnsafeRawBufferPointer) throws(PyTorchError) {
        guard ByteCursor(file).crc32(offset: m.dataOffset, count: m.size) == m.crc else {
            throw .badMember(member: "\(archiveName)/\(m.name)", reason: "CRC-32 mismatch (corrupted file?)")
        }
    }
}

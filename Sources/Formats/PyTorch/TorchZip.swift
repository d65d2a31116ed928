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
// What is checked, before anything is trusted: the end records are where they must be and
// agree; the central directory lies inside the file, before the end records, and holds
// exactly the number of records it claims (each at least 46 bytes, which caps the count);
// every record's name is valid UTF-8 and unique; every member is stored (compressed members
// are refused, torch never writes them), not encrypted, its local header agrees with the
// central record, its data lies inside the file before the central directory, and members
// do not overlap. CRCs are checked for the small members ckpt interprets (data.pkl,
// byteorder), not for tensor data (reading every byte just to checksum it would double the
// cost of a conversion).

struct TorchZip {
    struct Member {
        var name: String  // without the archive folder
        var dataOffset: Int  // in the file
        var size: Int
        var crc: UInt32
    }

    var archiveName: String
    var members: [String: Member]

    static let eocdSignature: UInt32 = 0x0605_4B50
    static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    static let zip64EOCDSignature: UInt32 = 0x0606_4B50
    static let centralSignature: UInt32 = 0x0201_4B50
    static let localSignature: UInt32 = 0x0403_4B50

    /// Parses the archive's directory; `file` is the whole file.
    static func parse(_ file: UnsafeRawBufferPointer) throws(PyTorchError) -> TorchZip {
        let c = ByteCursor(file)
        let size = file.count
        // End of central directory: 22 bytes, then a comment of at most 65,535 bytes, so it
        // starts in the last 65,557 bytes (APPNOTE 4.3.16). It must end exactly at the end
        // of the file: trailing bytes would make a polyglot.
        guard size >= 22 else { throw .truncatedZip("\(size) bytes, too short for an end-of-central-directory record") }
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
        guard eocd >= 0 else { throw .truncatedZip("no end-of-central-directory record at the end of the file") }
        let disk = c.le(UInt16.self, at: eocd + 4)!, cdDisk = c.le(UInt16.self, at: eocd + 6)!
        var entriesOnDisk = UInt64(c.le(UInt16.self, at: eocd + 8)!)
        var entries = UInt64(c.le(UInt16.self, at: eocd + 10)!)
        var cdSize = UInt64(c.le(UInt32.self, at: eocd + 12)!)
        var cdOffset = UInt64(c.le(UInt32.self, at: eocd + 16)!)
        guard disk == 0, cdDisk == 0 else { throw .badZip("multi-disk archives are not supported") }
        var endOfDirectory = eocd  // where the central directory must end at the latest

        // Zip64: the locator sits right before the end record and points at the zip64 record.
        if eocd >= 20, c.le(UInt32.self, at: eocd - 20) == zip64LocatorSignature {
            let locator = eocd - 20
            let recordOffset = c.le(UInt64.self, at: locator + 8)!
            guard c.le(UInt32.self, at: locator + 4) == 0, c.le(UInt32.self, at: locator + 16) == 1 else {
                throw .badZip("multi-disk archives are not supported")
            }
            // The zip64 record is 56 bytes (without extensible data) and ends by the locator.
            guard recordOffset <= UInt64(locator), UInt64(locator) - recordOffset >= 56 else {
                throw .badZip("zip64 end record offset \(recordOffset) is outside the file")
            }
            let r = Int(recordOffset)
            guard c.le(UInt32.self, at: r) == zip64EOCDSignature else {
                throw .badZip("no zip64 end-of-central-directory record at byte \(r)")
            }
            guard c.le(UInt32.self, at: r + 16) == 0, c.le(UInt32.self, at: r + 20) == 0 else {
                throw .badZip("multi-disk archives are not supported")
            }
            let e64 = c.le(UInt64.self, at: r + 24)!, t64 = c.le(UInt64.self, at: r + 32)!
            let s64 = c.le(UInt64.self, at: r + 40)!, o64 = c.le(UInt64.self, at: r + 48)!
            // The 32-bit fields must either agree or be the 0xFFFF... "see zip64" markers.
            func agrees(_ small: UInt64, _ marker: UInt64, _ big: UInt64) -> Bool { small == marker || small == big }
            guard agrees(entriesOnDisk, 0xFFFF, e64), agrees(entries, 0xFFFF, t64),
                  agrees(cdSize, 0xFFFF_FFFF, s64), agrees(cdOffset, 0xFFFF_FFFF, o64) else {
                throw .badZip("end-of-central-directory record disagrees with the zip64 record")
            }
            (entriesOnDisk, entries, cdSize, cdOffset) = (e64, t64, s64, o64)
            endOfDirectory = r
        }
        guard entriesOnDisk == entries else { throw .badZip("multi-disk archives are not supported") }
        guard cdOffset <= UInt64(endOfDirectory), cdSize <= UInt64(endOfDirectory) - cdOffset else {
            throw .badZip("central directory (\(cdSize) bytes at \(cdOffset)) runs past its end record at byte \(endOfDirectory)")
        }
        // Each central record takes at least 46 bytes: this caps the count by the bytes there are.
        guard entries > 0 else { throw .badZip("archive has no members") }
        guard entries <= cdSize / 46 else {
            throw .badZip("central directory claims \(entries) members but has room for only \(cdSize / 46)")
        }

        var cursor = ByteCursor(file, position: Int(cdOffset), end: Int(cdOffset + cdSize))
        var archive: String?
        var members: [String: Member] = [:]
        var extents: [(start: Int, end: Int, name: String)] = []
        for index in 0..<Int(entries) {
            let recordStart = cursor.position
            guard cursor.has(46), cursor.le(UInt32.self) == centralSignature else {
                throw .badZip("central directory record \(index) at byte \(recordStart) has no valid signature")
            }
            _ = cursor.skip(4)  // versions made by / needed
            let flags = cursor.le(UInt16.self)!, method = cursor.le(UInt16.self)!
            _ = cursor.skip(4)  // time, date
            let crc = cursor.le(UInt32.self)!
            var compressed = UInt64(cursor.le(UInt32.self)!), uncompressed = UInt64(cursor.le(UInt32.self)!)
            let nameLength = Int(cursor.le(UInt16.self)!), extraLength = Int(cursor.le(UInt16.self)!)
            let commentLength = Int(cursor.le(UInt16.self)!)
            var diskStart = UInt32(cursor.le(UInt16.self)!)
            _ = cursor.skip(6)  // attributes
            var localOffset = UInt64(cursor.le(UInt32.self)!)
            guard let nameBytes = cursor.utf8(nameLength) else {
                throw .badZip("central directory record \(index) runs past the directory")
            }
            guard let fullName = nameBytes else { throw .badZip("member name in record \(index) is not valid UTF-8") }
            guard let extra = cursor.array(extraLength), cursor.skip(commentLength) else {
                throw .badZip("central directory record for \(fullName) runs past the directory")
            }
            // Zip64 extended information (APPNOTE 4.5.3): only the fields whose 32-bit
            // value is the 0xFFFFFFFF marker are present, in this order.
            var x = 0
            while x + 4 <= extra.count {
                let id = UInt16(extra[x]) | UInt16(extra[x + 1]) << 8
                let length = Int(UInt16(extra[x + 2]) | UInt16(extra[x + 3]) << 8)
                guard x + 4 + length <= extra.count else { throw .badMember(member: fullName, reason: "extra field runs past its record") }
                if id == 0x0001 {
                    var fields = Array(extra[(x + 4)..<(x + 4 + length)])
                    func next64() throws(PyTorchError) -> UInt64 {
                        guard fields.count >= 8 else { throw .badMember(member: fullName, reason: "zip64 extra field is too short") }
                        var v: UInt64 = 0
                        for i in 0..<8 { v |= UInt64(fields[i]) << (8 * UInt64(i)) }
                        fields.removeFirst(8)
                        return v
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try next64() }
                    if compressed == 0xFFFF_FFFF { compressed = try next64() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next64() }
                    if diskStart == 0xFFFF {
                        guard fields.count >= 4 else { throw .badMember(member: fullName, reason: "zip64 extra field is too short") }
                        diskStart = UInt32(fields[0]) | UInt32(fields[1]) << 8 | UInt32(fields[2]) << 16 | UInt32(fields[3]) << 24
                    }
                }
                x += 4 + length
            }
            guard diskStart == 0 else { throw .badMember(member: fullName, reason: "lies on another disk") }
            guard flags & 1 == 0 else { throw .badMember(member: fullName, reason: "is encrypted") }
            guard method == 0 else { throw .compressedMember(member: fullName, method: Int(method)) }
            guard compressed == uncompressed else {
                throw .badMember(member: fullName, reason: "stored member with compressed size \(compressed) ≠ size \(uncompressed)")
            }

            // The archive folder: everything before the first "/" of the first member.
            guard let slash = fullName.firstIndex(of: "/"), slash != fullName.startIndex else {
                throw .badMember(member: fullName, reason: "not inside an archive folder (torch.save puts every member in one)")
            }
            let folder = String(fullName[..<slash])
            if archive == nil { archive = folder }
            guard folder == archive else {
                throw .badMember(member: fullName, reason: "outside the archive folder \(archive!)/")
            }
            let name = String(fullName[fullName.index(after: slash)...])
            guard members[name] == nil else { throw .badMember(member: fullName, reason: "appears twice in the central directory") }

            // The local header must agree with the central record; the data follows it.
            guard localOffset <= cdOffset, cdOffset - localOffset >= 30 else {
                throw .badMember(member: fullName, reason: "local header offset \(localOffset) is not before the central directory")
            }
            let lh = Int(localOffset)
            guard c.le(UInt32.self, at: lh) == localSignature else {
                throw .badMember(member: fullName, reason: "no local file header at byte \(lh)")
            }
            let localMethod = c.le(UInt16.self, at: lh + 8)!
            let localNameLength = Int(c.le(UInt16.self, at: lh + 26)!)
            let localExtraLength = Int(c.le(UInt16.self, at: lh + 28)!)
            guard localMethod == method else { throw .badMember(member: fullName, reason: "local header disagrees with the central directory on the method") }
            let dataStart = lh + 30 + localNameLength + localExtraLength
            guard UInt64(dataStart) <= cdOffset, uncompressed <= cdOffset - UInt64(dataStart) else {
                throw .truncatedZip("member \(fullName): \(uncompressed) bytes at \(dataStart) run into the central directory at \(cdOffset)")
            }
            var localName = ByteCursor(file, position: lh + 30, end: dataStart)
            guard localNameLength == nameLength, localName.utf8(nameLength) == .some(fullName) else {
                throw .badMember(member: fullName, reason: "local header names a different member")
            }
            members[name] = Member(name: name, dataOffset: dataStart, size: Int(uncompressed), crc: crc)
            extents.append((lh, dataStart + Int(uncompressed), fullName))
        }
        guard cursor.remaining == 0 else {
            throw .badZip("central directory has \(cursor.remaining) bytes after its \(entries) records")
        }
        // Members must not overlap (overlapping members are how zip bombs and polyglots work).
        extents.sort { $0.start < $1.start }
        for (a, b) in zip(extents, extents.dropFirst()) where b.start < a.end {
            throw .badMember(member: b.name, reason: "overlaps member \(a.name)")
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

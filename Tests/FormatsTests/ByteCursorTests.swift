import CkptCore
import Foundation
@testable import Formats
import Testing
import TestSupport

/// The one cursor every binary parser reads through: each read checks the bytes that remain
/// first, fails without moving, and reads little-endian whatever the alignment.
@Suite struct ByteCursorTests {
    @Test func readsAreBoundsCheckedAndDoNotMoveOnFailure() {
        let bytes: [UInt8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09]
        bytes.withUnsafeBytes { b in
            var c = ByteCursor(b, position: 1)
            #expect(c.le(UInt32.self) == 0x0504_0302)  // unaligned, little-endian
            #expect(c.position == 5)
            #expect(c.le(UInt64.self) == nil)  // 4 bytes left
            #expect(c.position == 5)
            #expect(c.array(-1) == nil && c.array(5) == nil && c.bytes(5) == nil && c.utf8(5) == nil)
            #expect(c.skip(-1) == false && c.skip(5) == false && c.position == 5)
            #expect(c.bytes(4).map(Array.init) == [0x06, 0x07, 0x08, 0x09])
            #expect(c.remaining == 0 && c.u8() == nil)
            // Absolute reads: inside [0, end) only, whatever the offset.
            #expect(c.le(UInt16.self, at: 7) == 0x0908)
            for at in [-1, 8, Int.max, Int.min] { #expect(c.le(UInt16.self, at: at) == nil, "\(at)") }
            #expect(c.bytes(at: 9, count: 0)?.count == 0)
            for (at, n) in [(-1, 1), (0, 10), (5, Int.max), (Int.max, 1), (1, -1)] { #expect(c.bytes(at: at, count: n) == nil, "\(at) \(n)") }
            #expect(c.matches([0x08, 0x09], at: 7) && !c.matches([0x09, 0x0A], at: 8))
            // A cursor limited to a range cannot read past it, even inside the buffer.
            var limited = ByteCursor(b, position: 2, end: 4)
            #expect(limited.le(UInt32.self) == nil && limited.le(UInt16.self) == 0x0403 && limited.u8() == nil)
            #expect(limited.le(UInt32.self, at: 0) == 0x0403_0201 && limited.le(UInt32.self, at: 1) == nil)
            // Text: short is nil, invalid UTF-8 is .some(nil).
            var text = ByteCursor(b)
            #expect(text.utf8(3) == .some("\u{01}\u{02}\u{03}"))
        }
        [0xFF, 0xFE].withUnsafeBytes { b in
            var c = ByteCursor(b)
            #expect(c.utf8(2) == .some(nil))
        }
    }

    @Test func crcIsZlibs() {
        // The CRC-32 of "123456789" (the check value of CRC-32/ISO-HDLC).
        Array("123456789".utf8).withUnsafeBytes { b in
            #expect(CRC32.checksum(b) == 0xCBF4_3926)
            #expect(ByteCursor(b).crc32(offset: 0, count: 9) == 0xCBF4_3926)
            #expect(ByteCursor(b).crc32(offset: 1, count: 9) == nil)
        }
    }
}

/// One zip reader for .npz, torch.save and .keras: the same archive-level checks whichever
/// format the zip is.
@Suite struct SharedZipReaderTests {
    func npzError(_ bytes: [UInt8]) -> String? {
        let dir = TempDir()
        let p = dir.file("x.npz")
        try! writeFile(p, bytes)
        do { _ = try Npz.read(path: p); return nil } catch { return "\(error)" }
    }

    func torchError(_ bytes: [UInt8]) -> PyTorchError? {
        bytes.withUnsafeBytes { b -> PyTorchError? in
            do { _ = try TorchZip.parse(b); return nil } catch let e as PyTorchError { return e } catch { return nil }
        }
    }

    @Test func archiveChecksApplyToEveryZipFormat() throws {
        let pkl = Array("x".utf8)
        let good = ZipBytes.build([ZipBytes.Member("a/data.pkl", pkl), ZipBytes.Member("a/x.npy", Array(repeating: 0, count: 8))])
        #expect(torchError(good) == nil)
        // Bytes after the end record (a polyglot): refused by both.
        #expect(npzError(good + [0])?.hasSuffix(": not a zip file (no end of central directory record)") == true)
        #expect(torchError(good + [0]) == .truncatedZip("no end-of-central-directory record at the end of the file"))
        // A central directory that claims more records than it has room for.
        var tooMany = good
        let eocd = tooMany.count - 22
        tooMany.replaceSubrange(eocd + 8..<eocd + 12, with: [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(npzError(tooMany)?.hasSuffix(": invalid zip: zip64 locator missing") == true)
        tooMany.replaceSubrange(eocd + 8..<eocd + 12, with: [0x30, 0, 0x30, 0])
        #expect(npzError(tooMany)?.hasSuffix(": invalid zip: central directory claims 48 members but has room for only 2") == true)
        #expect(torchError(tooMany) == .badZip("central directory claims 48 members but has room for only 2"))
        // The same name twice.
        let one = ZipBytes.build([ZipBytes.Member("a/data.pkl", pkl)])
        let cd = one.count - 22 - (46 + 10)
        let record = Array(one[cd..<cd + 56])
        let twice = Array(one[..<cd]) + record + record
            + le32(0x0605_4B50) + le16(0) + le16(0) + le16(2) + le16(2) + le32(112) + le32(UInt32(cd)) + le16(0)
        #expect(npzError(twice)?.hasSuffix(": member `a/data.pkl`: name appears twice") == true)
        #expect(torchError(twice) == .badMember(member: "a/data.pkl", reason: "appears twice in the central directory"))
        // A member hidden inside another's data (overlapping members: zip bombs, polyglots).
        let inner = ZipBytes.build([ZipBytes.Member("a/in", [0x7A, 0x7A])])
        let outer = ZipBytes.build([ZipBytes.Member("a/out", Array(inner[..<36]))])
        let outerCD = outer.count - 22 - (46 + 5)
        var innerRecord = Array(inner[(inner.count - 22 - 50)..<(inner.count - 22)])
        innerRecord.replaceSubrange(42..<46, with: le32(35))  // its local header: inside a/out's data
        let overlapping = Array(outer[..<(outer.count - 22)]) + innerRecord
            + le32(0x0605_4B50) + le16(0) + le16(0) + le16(2) + le16(2) + le32(101) + le32(UInt32(outerCD)) + le16(0)
        #expect(npzError(overlapping)?.hasSuffix(": member `a/in`: overlaps member a/out") == true)
        #expect(torchError(overlapping) == .badMember(member: "a/in", reason: "overlaps member a/out"))
        // A deflated member is read by .npz and refused by torch (which never compresses).
        let deflated = ZipBytes.build([ZipBytes.Member("a/data.pkl", pkl, method: 8)])
        #expect(torchError(deflated) == .compressedMember(member: "a/data.pkl", method: 8))
    }
}

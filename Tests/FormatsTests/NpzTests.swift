// .npz: numpy-written archives (stored and deflated) read exactly; numpy reads what ckpt
// writes; zip bombs, CRC errors and oversized shapes are refused.

import CkptCore
@testable import Formats
import Foundation
import Testing
import TestSupport

@Suite struct NpzTests {
    /// Found by fuzz-npz: a 48-byte file whose end record says zip64 and whose zip64 locator
    /// points into the file trapped (file size − 56 went negative) instead of being refused.
    @Test func zip64LocatorInAFileShorterThanTheZip64RecordIsRefused() throws {
        let dir = TempDir()
        let path = dir.file("short.npz")
        let bytes = Array("JzpQSwYHACD/JzxWMif+IOx//yAgIFBLBQYAAP////7///8KBft5LgVqcEvoUCD4".utf8)
        try Data(base64Encoded: Data(bytes))!.write(to: URL(fileURLWithPath: path))
        #expect(throws: (any Error).self) { try Npz.read(path: path) }
        // The same check in format detection (its own lenient zip walk), on a file that starts
        // like a zip: `ckpt inspect` trapped there before any reader ran.
        var zip = [UInt8](repeating: 0, count: 48)
        zip.replaceSubrange(0..<4, with: [0x50, 0x4B, 3, 4])    // local header magic
        zip.replaceSubrange(6..<10, with: [0x50, 0x4B, 6, 7])   // zip64 locator, pointing at 14
        zip[14] = 14
        zip.replaceSubrange(26..<30, with: [0x50, 0x4B, 5, 6])  // end record, 0xFFFF entries
        zip.replaceSubrange(36..<38, with: [0xFF, 0xFF])
        let sniffed = dir.file("sniffed.npz")
        try Data(zip).write(to: URL(fileURLWithPath: sniffed))
        #expect(throws: (any Error).self) { try Checkpoint.open(sniffed) }
    }

    @Test(arguments: ["stored.npz", "deflated.npz"])
    func readsNumpysArchives(_ file: String) throws {
        let g = try Npz.read(path: Repo.fixture("npz/" + file))
        let expected = try #require(try JSONValue.parse(readFile(Repo.fixture("npz/npz.expected.json"))).objectValue)
        #expect(Set(g.tensors.keys) == Set(expected.keys))
        for (name, e) in expected {
            let t = try #require(g.tensors[name])
            #expect(t.shape == e["shape"]!.arrayValue!.map { $0.intValue! }, "\(name)")
            #expect(try sha256(t.data.load()) == e["sha256"]!.stringValue!, "\(name)")
        }
    }

    @Test(arguments: [false, true])
    func numpyReadsWhatCkptWrites(deflate: Bool) throws {
        let dir = TempDir()
        let g = try Npz.read(path: Repo.fixture("npz/stored.npz"))
        let out = dir.file("out.npz")
        try Npz.write(g, to: out, deflate: deflate)
        let script = """
        import sys, json, hashlib, numpy as np, zipfile
        z = np.load(sys.argv[1])
        methods = sorted({i.compress_type for i in zipfile.ZipFile(sys.argv[1]).infolist()})
        print(json.dumps({"methods": methods, "arrays": {k: [z[k].dtype.str, list(z[k].shape), hashlib.sha256(np.ascontiguousarray(z[k]).tobytes()).hexdigest()] for k in z.files}}))
        """
        let r = try Python.run(script, [out])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONValue.parse(r.stdout)
        #expect(j["methods"] == .array([.int(deflate ? 8 : 0)]))
        let expected = try #require(try JSONValue.parse(readFile(Repo.fixture("npz/npz.expected.json"))).objectValue)
        for (name, e) in expected {
            #expect(j["arrays"]?[name]?.arrayValue?.last?.stringValue == e["sha256"]!.stringValue!, "\(name)")
        }
        // And ckpt reads its own output back.
        let back = try Npz.read(path: out)
        for t in g.tensors.values { #expect(try back.tensors[t.name]!.data.load() == t.data.load()) }
    }

    func error(_ bytes: [UInt8]) -> String? {
        let dir = TempDir()
        let p = dir.file("x.npz")
        try! writeFile(p, bytes)
        do {
            let g = try Npz.read(path: p)
            for t in g.tensors.values { _ = try t.data.load() }
            return nil
        } catch { return "\(error)" }
    }

    @Test func corruptArchivesAreRefused() throws {
        let stored = try readFile(Repo.fixture("npz/stored.npz"))
        let deflated = try readFile(Repo.fixture("npz/deflated.npz"))
        // A flipped data byte: CRC-32 mismatch (stored), corrupt stream or CRC (deflated).
        var s = stored
        s[200] ^= 0xFF
        #expect(error(s)?.contains("CRC-32 mismatch") == true)
        var d = deflated
        d[120] ^= 0x55
        #expect(error(d) != nil)
        // Truncated: the end record is gone.
        #expect(error(Array(stored.prefix(stored.count - 30)))?.contains("not a zip file") == true)
        #expect(error(Array("PK\u{3}\u{4}".utf8))?.contains("not a zip file") == true)
    }

    /// A member that declares more than deflate can produce from its compressed bytes.
    @Test func zipBombsAreRefusedBeforeInflating() throws {
        var d = try readFile(Repo.fixture("npz/deflated.npz"))
        // Patch every central-directory size of the first entry to 4 GiB - 2.
        let cd = try #require(d.lastIndex(of: 0x50).flatMap { _ in Self.find(d, [0x50, 0x4B, 0x01, 0x02]) })
        d.replaceSubrange(cd + 24..<cd + 28, with: [0xFE, 0xFF, 0xFF, 0xFF])
        let e = error(d)
        #expect(e?.contains("zip bomb") == true || e?.contains("declares") == true, "\(e ?? "nil")")
    }

    /// A .npy header whose shape does not fit the member, or overflows.
    @Test func oversizedShapesAreRefused() throws {
        let dir = TempDir()
        var g = WeightGraph()
        try g.add(Tensor(name: "a", dtype: .f32, shape: [2], data: .owned([0, 0, 0, 0, 0, 0, 0, 0])))
        let p = dir.file("a.npz")
        try Npz.write(g, to: p)
        var bytes = try readFile(p)
        let at = try #require(Self.find(bytes, Array("(2,)".utf8)))
        bytes.replaceSubrange(at..<at + 4, with: Array("(9,)".utf8))  // same length, now too big
        let e = error(bytes)
        #expect(e?.contains("truncated") == true, "\(e ?? "nil")")
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where Array(hay[i..<i + needle.count]) == needle { return i }
        return nil
    }
}

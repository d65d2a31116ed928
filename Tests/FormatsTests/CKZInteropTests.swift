// .ckz decoded by an independent implementation of docs/ckz.md (tools/ckz_reference.py:
// Python's struct and zlib), compared with tensors read straight from the source safetensors
// file by Python (not by ckpt).

import CkptCore
import Foundation
import Testing
import TestSupport
@testable import Formats

@Suite struct CKZInteropTests {
    /// Per-tensor SHA-256 of a safetensors file, computed by Python from the file's header.
    static let safetensorsDigests = """
        import hashlib, json, struct, sys
        b = open(sys.argv[1], 'rb').read()
        n = struct.unpack('<Q', b[:8])[0]
        h = json.loads(b[8:8 + n])
        print(json.dumps({k: hashlib.sha256(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]]).hexdigest()
                          for k, v in h.items() if k != '__metadata__'}))
        """

    @Test(arguments: ["safetensors/every_dtype.safetensors", "tiny-gpt2/model.safetensors"], [1, 2, 9])
    func pythonDecodesWhatCkptWrites(fixture: String, level: Int) throws {
        let dir = TempDir()
        let graph = try Safetensors.read(path: Repo.fixture(fixture))
        // Small chunks: many chunks per tensor, filtered and unfiltered, Huffman and LZ.
        try CKZ.write(graph, to: dir.file("m.ckz"), options: .init(level: CKZ.Level(level)!, chunkSize: 512))
        let ref = Repo.root.appendingPathComponent("tools/ckz_reference.py").path
        let decoded = try Python.run(try String(contentsOfFile: ref, encoding: .utf8), [dir.file("m.ckz")])
        #expect(decoded.status == 0, "\(decoded.stderr)")
        let expected = try Python.run(Self.safetensorsDigests, [Repo.fixture(fixture)])
        #expect(expected.status == 0, "\(expected.stderr)")
        let got = try JSONValue.parse(decoded.stdout)
        let want = try #require(try JSONValue.parse(expected.stdout).objectValue)
        let tensors = try #require(got["tensors"]?.objectValue)
        #expect(tensors.count == want.count)
        for (name, digest) in want {
            #expect(tensors[name]?["sha256"] == digest, "\(name)")
        }
        #expect(got["metadata"] == .object(graph.metadata.mapValues { .string($0) }))
        // The fixtures' floats must really have gone through the Huffman and plane paths.
        if level > 0, fixture.hasPrefix("tiny") {
            let archive = try CKZArchive(path: dir.file("m.ckz"))
            let kinds = Set(archive.index.tensors.flatMap { $0.chunks.map { "\($0.filter)" } })
            #expect(kinds.contains("planes"))
        }
    }
}

// .ckz: round trips, determinism, corruption and truncation, and a table of malformed
// files built from bytes. The Python cross-check (CKZInteropTests) decodes what the writer
// makes with an independent implementation of docs/ckz.md.

import CkptCore
import Foundation
import OrderedCollections
import Testing
import TestSupport
@testable import Formats

/// Bytes of a graph written as .ckz with `options`.
func ckzBytes(_ graph: WeightGraph, _ options: CKZ.WriteOptions = .init(), in dir: TempDir, name: String = "t.ckz") throws -> [UInt8] {
    try CKZ.write(graph, to: dir.file(name), options: options)
    return try readFile(dir.file(name))
}

/// Reads every tensor of a .ckz file (decoding every chunk).
func readAll(_ path: String, jobs: Int = 2) throws -> [String: [UInt8]] {
    let graph = try CKZ.read(path: path, jobs: jobs)
    var out: [String: [UInt8]] = [:]
    for t in graph.tensors.values { out[t.name] = try t.data.load() }
    return out
}

@Suite struct CKZRoundTripTests {
    @Test(arguments: ["safetensors/every_dtype.safetensors", "tiny-gpt2/model.safetensors"], [0, 1, 2, 9])
    func safetensorsToCKZAndBackIsByteIdentical(fixture: String, level: Int) throws {
        let dir = TempDir()
        var graph = try Safetensors.read(path: Repo.fixture(fixture))
        if fixture.hasPrefix("tiny") {
            graph.config = try Checkpoint.readConfig(Repo.fixture("tiny-gpt2/config.json"))
            graph.applyConfigTies()
        }
        // Small chunks so that every tensor above 4 KiB spans several.
        try CKZ.write(graph, to: dir.file("m.ckz"), options: .init(level: CKZ.Level(level)!, jobs: 2, chunkSize: 4096))
        let back = try CKZ.read(path: dir.file("m.ckz"))
        #expect(back.metadata == graph.metadata)
        #expect(back.ties == graph.ties)
        #expect(back.config?.serialized() == graph.config?.serialized())
        #expect(Array(back.tensors.keys) == Array(graph.tensors.keys))
        try Safetensors.write(back, to: dir.file("back.safetensors"))
        #expect(try readFile(dir.file("back.safetensors")) == readFile(Repo.fixture(fixture)))
    }

    @Test func configIsKeptByteForByte() throws {
        let dir = TempDir()
        var graph = try Safetensors.read(path: Repo.fixture("tiny-gpt2/model.safetensors"))
        // Odd spacing and key order: only a verbatim copy survives.
        let text = Array("{\"n_layer\":2,   \"model_type\" : \"gpt2\"}\n".utf8)
        graph.config = try ModelConfig(jsonBytes: text)
        try CKZ.write(graph, to: dir.file("m.ckz"))
        #expect(try CKZ.read(path: dir.file("m.ckz")).config?.sourceBytes == text)
    }

    /// Random bytes of every dtype, including lengths that are not a whole number of chunks
    /// and NaN/inf/subnormal bit patterns (random bits hit them all), must survive every level.
    @Test func randomBytesOfEveryDTypeRoundTrip() throws {
        let dir = TempDir()
        var rng = SplitMix64(seed: 42)
        var graph = WeightGraph()
        for dtype in DType.allCases {
            // 3 chunks and a bit for the 4 KiB chunk size; skewed values so Huffman is used.
            let elements = dtype == .f4 ? 9000 : (dtype.layout == .element(bits: 6) ? 8000 : 3001)
            guard let n = dtype.byteCount(elements: elements) else { continue }
            let bytes = (0..<n).map { i in i % 3 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : UInt8(truncatingIfNeeded: rng.next() % 4) }
            try graph.add(Tensor(name: "t.\(dtype)", dtype: dtype, shape: [elements], data: .owned(bytes)))
        }
        try graph.add(Tensor(name: "empty", dtype: .f32, shape: [0, 7], data: .owned([])))
        try graph.add(Tensor(name: "scalar", dtype: .bf16, shape: [], data: .owned([0x80, 0x7F])))
        for level in [0, 1, 2, 4, 9] {
            try CKZ.write(graph, to: dir.file("r\(level).ckz"), options: .init(level: CKZ.Level(level)!, jobs: 2, chunkSize: 4096))
            let back = try readAll(dir.file("r\(level).ckz"))
            for t in graph.tensors.values { #expect(back[t.name] == (try t.data.load()), "level \(level) \(t.name)") }
        }
    }
}

@Suite struct CKZDeterminismTests {
    func graph() throws -> WeightGraph {
        var g = try Safetensors.read(path: Repo.fixture("tiny-gpt2/model.safetensors"))
        g.config = try Checkpoint.readConfig(Repo.fixture("tiny-gpt2/config.json"))
        g.applyConfigTies()
        return g
    }

    @Test func twoWritesAreByteIdentical() throws {
        let dir = TempDir()
        let a = try ckzBytes(graph(), .init(jobs: 2), in: dir, name: "a.ckz")
        let b = try ckzBytes(graph(), .init(jobs: 2), in: dir, name: "b.ckz")
        #expect(a == b)
    }

    @Test(arguments: [0, 2, 5])
    func outputDoesNotDependOnJobs(level: Int) throws {
        let dir = TempDir()
        // 1 KiB chunks: dozens of chunks per tensor, spread over 1, 2, 3 and 8 threads.
        let outputs = try [1, 2, 3, 8].map { jobs in
            try ckzBytes(graph(), .init(level: CKZ.Level(level)!, jobs: jobs, chunkSize: 1024), in: dir, name: "j\(jobs).ckz")
        }
        for o in outputs.dropFirst() { #expect(o == outputs[0]) }
    }
}

@Suite struct CKZCorruptionTests {
    /// Every byte of a small file, one bit flipped: opening or reading must fail, every time.
    @Test func aFlippedBitAnywhereIsDetected() throws {
        let dir = TempDir()
        let graph = try Safetensors.read(path: Repo.fixture("safetensors/every_dtype.safetensors"))
        let good = try ckzBytes(graph, .init(chunkSize: 64), in: dir)
        var undetected: [Int] = []
        for offset in 0..<good.count {
            var bad = good
            bad[offset] ^= UInt8(1) << UInt8(offset % 8)
            try writeFile(dir.file("bad.ckz"), bad)
            do {
                _ = try readAll(dir.file("bad.ckz"), jobs: 1)
                undetected.append(offset)
            } catch {}
        }
        #expect(undetected.isEmpty, "flips not detected at offsets \(undetected.prefix(20))")
    }

    @Test func aCorruptChunkIsNamedByTensorAndChunk() throws {
        let dir = TempDir()
        let graph = try Safetensors.read(path: Repo.fixture("tiny-gpt2/model.safetensors"))
        try CKZ.write(graph, to: dir.file("m.ckz"), options: .init(chunkSize: 1024))
        let archive = try CKZArchive(path: dir.file("m.ckz"))
        let entry = try #require(archive.index.tensors.first { $0.name == "transformer.wte.weight" })
        var bytes = try readFile(dir.file("m.ckz"))
        // A byte inside the wte tensor's third chunk.
        let chunkStart = entry.dataOffset + entry.chunks[0].storedLength + entry.chunks[1].storedLength
        bytes[chunkStart + 5] ^= 0x10
        try writeFile(dir.file("bad.ckz"), bytes)
        let bad = try CKZ.read(path: dir.file("bad.ckz"))
        // Other tensors still read: chunks are independent.
        _ = try bad.tensors["transformer.wpe.weight"]!.data.load()
        #expect {
            _ = try bad.tensors["transformer.wte.weight"]!.data.load()
        } throws: { error in
            "\(error)".contains("bad.ckz: tensor `transformer.wte.weight`: chunk 2: checksum mismatch")
        }
    }

    @Test func everyTruncationIsReportedAsTruncated() throws {
        let dir = TempDir()
        let graph = try Safetensors.read(path: Repo.fixture("tiny-gpt2/model.safetensors"))
        let good = try ckzBytes(graph, in: dir)
        for length in Array(1..<200) + Array(stride(from: 200, to: good.count, by: 97)) + [good.count - 1] {
            try writeFile(dir.file("cut.ckz"), Array(good.prefix(length)))
            #expect {
                _ = try CKZArchive(path: dir.file("cut.ckz"))
            } throws: { error in
                guard let e = (error as? FileError)?.error as? CKZError, case .truncated = e else { return false }
                return "\(error)".contains("truncated")
            }
        }
    }
}

@Suite struct CKZCodecTests {
    /// Exponent-like bytes: a few values common, a long tail rare (codes up to 15 bits).
    func skewed(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in
            let r = rng.next()
            return r % 1000 == 0 ? UInt8(truncatingIfNeeded: r >> 20) : UInt8(120 + (r >> 40) % 8)
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 63, 1000, 65_537])
    func fastLiteralDecoderAgreesWithTheEncoder(length: Int) throws {
        let input = skewed(length, seed: UInt64(length))
        let plan = ChunkCodec.planHuffman(histogram: input.withUnsafeBytes { ChunkCodec.histogram($0) })
        var encoded = [UInt8](repeating: 0, count: plan.byteCount + 8)
        let n = input.withUnsafeBytes { i in encoded.withUnsafeMutableBytes { ChunkCodec.encodeHuffman(i, plan: plan, into: $0) } }
        encoded.removeLast(encoded.count - n)
        var out = [UInt8](repeating: 0, count: length)
        #expect(encoded.withUnsafeBytes { e in out.withUnsafeMutableBytes { LiteralInflater.inflate(e, into: $0) } })
        #expect(out == input)
        // One byte too many or too few of output, or of input: not handled (libdeflate decides).
        var short = [UInt8](repeating: 0, count: length - 1)
        #expect(!encoded.withUnsafeBytes { e in short.withUnsafeMutableBytes { LiteralInflater.inflate(e, into: $0) } })
        var long = [UInt8](repeating: 0, count: length + 1)
        #expect(!encoded.withUnsafeBytes { e in long.withUnsafeMutableBytes { LiteralInflater.inflate(e, into: $0) } })
        let padded = encoded + [0]
        #expect(!padded.withUnsafeBytes { e in out.withUnsafeMutableBytes { LiteralInflater.inflate(e, into: $0) } })
        let cut = Array(encoded.dropLast())
        #expect(!cut.withUnsafeBytes { e in out.withUnsafeMutableBytes { LiteralInflater.inflate(e, into: $0) } })
    }

    @Test func streamsWithMatchesAreLeftToLibdeflate() throws {
        let input = [UInt8](repeating: 7, count: 5000) + skewed(5000, seed: 1)
        let d = try #require(input.withUnsafeBytes { ChunkCodec.deflate($0, level: 6, limit: input.count) })
        var out = [UInt8](repeating: 0, count: input.count)
        #expect(!d.withUnsafeBytes { e in out.withUnsafeMutableBytes { LiteralInflater.inflate(e, into: $0) } })
    }
}

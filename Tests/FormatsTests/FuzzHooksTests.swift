// The fuzz targets (Fuzz/) hand inputs to the readers as in-memory MappedFiles
// (FuzzHooks.file) instead of files: a reader must see the same tensors either way, or the
// fuzzers would test something else than `ckpt` reads.

import CkptCore
@_spi(Fuzzing) @testable import Formats
import Foundation
import Testing
import TestSupport

@Suite struct FuzzHooksTests {
    /// Name -> (dtype, shape, bytes) of every tensor.
    func contents(_ g: WeightGraph) throws -> [String: String] {
        var out: [String: String] = [:]
        for t in g.tensors.values { out[t.name] = "\(t.dtype) \(t.shape) \(try sha256(t.data.load()))" }
        return out
    }

    func inMemory(_ path: String) throws -> MappedFile {
        let bytes = try readFile(path)
        return bytes.withUnsafeBytes { FuzzHooks.file($0, path: path) }
    }

    @Test func readersSeeTheSameTensorsInMemory() throws {
        let st = Repo.fixture("safetensors/every_dtype.safetensors")
        #expect(try contents(Safetensors.read(file: inMemory(st))) == contents(Safetensors.read(path: st)))
        let gguf = Repo.fixture("gguf/gguf_py.gguf")
        #expect(try contents(GGUF.read(file: inMemory(gguf))) == contents(GGUF.read(path: gguf)))
        let npz = Repo.fixture("npz/deflated.npz")
        #expect(try contents(FuzzHooks.npz(inMemory(npz))) == contents(Npz.read(path: npz)))
        for pt in ["torch/views.pt", "torch/views_legacy.pt"].map(Repo.fixture) {
            #expect(try contents(PyTorch.read(file: inMemory(pt))) == contents(PyTorch.read(path: pt)))
        }
        // .npy: one member of the .npz, as a file of its own
        let dir = TempDir()
        let npy = dir.file("a.npy")
        try Npy.write(Npy.encode(floats: [1, 2, 3, 4, 5, 6], shape: [2, 3]), to: npy)
        let a = try FuzzHooks.npy(inMemory(npy), name: "a"), b = try Npy.read(path: npy, name: "a")
        #expect(a.shape == b.shape && a.dtype == b.dtype)
        #expect(try a.data.load() == b.data.load())
    }

    /// .ckz, compressed and verbatim, with tensors smaller than a chunk and spanning several:
    /// the decode buffers are sized by the tensor's first chunk, not the chunk size.
    @Test(arguments: [0, 5])
    func ckzInMemory(level: Int) throws {
        var g = WeightGraph()
        try g.add(Tensor(name: "small", dtype: .u8, shape: [3], data: .owned([1, 2, 3])))
        let big = (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7 / 3) }
        try g.add(Tensor(name: "big", dtype: .u8, shape: [5000], data: .owned(big)))
        let dir = TempDir()
        let path = dir.file("x.ckz")
        try CKZ.write(g, to: path, options: .init(level: CKZ.Level(level)!, chunkSize: 1024))
        let memory = try FuzzHooks.ckz(inMemory(path), jobs: 2)
        #expect(try contents(memory) == contents(CKZ.read(path: path)))
        #expect(try memory.tensors["big"]!.data.load() == big)
    }
}

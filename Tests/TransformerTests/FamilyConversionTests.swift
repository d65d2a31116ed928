// Every block shape survives conversion: a representative fixture of each (pre-norm GQA,
// sandwich norms with soft-capping, fused q|k|v and gate|up, per-head fused q|k|v with the
// parallel residual, learned offset positions, grouped Falcon q|k|v, mixture of experts,
// post-norm encoders, ModernBERT) is written to every writable format, read back and run:
// the outputs must match the PyTorch reference as before (1e-4 relative), and be identical
// to the unconverted model's where the format is lossless for f32.

import CkptCore
import Foundation
import Formats
import Testing
import TestSupport
import Transformer

@Suite struct FamilyConversionTests {
    static let fixtures = ["llama-gqa", "gemma2-softcap", "phi3", "gpt-neox", "opt-pre", "falcon-new", "mixtral-top2",
                           "bert-a", "distilbert", "modernbert"]
    static let formats: [(CheckpointFormat, String)] = [(.safetensors, "safetensors"), (.ckz, "ckz"), (.hdf5, "h5"), (.npz, "npz"), (.gguf, "gguf")]

    @Test(arguments: fixtures)
    func everyWritableFormatKeepsTheForwardPass(_ name: String) throws {
        let (reference, expected) = try runFixture(name)
        let source = try Checkpoint.open(Repo.fixture("models/\(name)")).graph
        let config = Repo.fixture("models/\(name)/config.json")
        let tokens = try expected.ints("tokens")
        let dir = TempDir()
        for (format, ext) in Self.formats {
            let path = dir.file("model.\(ext)")
            try Checkpoint.write(source, to: path, format: format, directory: false)
            // The config is passed as the existing conversion tests do (it travels inside
            // .ckz/.h5; beside the weights for the others).
            let graph = try Checkpoint.openModel(path, configPath: config)
            let out = try Transformers.load(graph).forward(.tokens(tokens), collectHidden: false)
            #expect(out.values == reference.values, "\(name) via .\(ext)")
            let (rel, _) = relativeError(out.values, try expected.floats("output"))
            #expect(rel <= 1e-4, "\(name) via .\(ext): relative error \(rel)")
        }
    }
}

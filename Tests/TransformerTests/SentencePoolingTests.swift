// sentence-transformers pooling on the st-bert-mean fixture (made with transformers and the
// directory layout sentence-transformers writes: mean pooling, then Normalize).

import Foundation
import Formats
import Testing
import TestSupport
import Transformer

@Suite struct SentencePoolingTests {
    @Test func meanPooledNormalisedEmbeddingMatchesTheReference() throws {
        let dir = Repo.fixture("models/st-bert-mean")
        let pooling = try #require(try SentencePooling.read(directory: dir))
        #expect(pooling == SentencePooling(modes: [.mean], normalize: true))
        let (out, expected) = try runFixture("st-bert-mean")
        let e = pooling.embed(out.values, rows: out.rows, cols: out.cols)
        let (rel, _) = relativeError(e, try expected.floats("embedding"))
        print("st-bert-mean: sentence embedding relative error \(rel)")
        #expect(rel <= 1e-4)
        var unnormalised = pooling
        unnormalised.normalize = false
        let (prel, _) = relativeError(unnormalised.embed(out.values, rows: out.rows, cols: out.cols), try expected.floats("pooled"))
        #expect(prel <= 1e-4)
        // A directory without modules.json has no pooling.
        #expect(try SentencePooling.read(directory: Repo.fixture("models/bert-a")) == nil)
    }

    @Test func unsupportedModulesAreRefusedNamingTheFile() throws {
        let dir = TempDir()
        try Data(#"[{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"}, {"idx": 1, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]"#.utf8)
            .write(to: URL(fileURLWithPath: dir.file("modules.json")))
        #expect(throws: TransformerError.self) { try SentencePooling.read(directory: dir.path) }
    }
}

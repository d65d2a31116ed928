// Every fixture tokenizer (trained with the `tokenizers` library by
// tools/make_tokenizer_fixtures.py, and the real all-MiniLM-L6-v2) against the ids and
// decodings `tokenizers` produced for each line of the multilingual corpus.

import CkptCore
import Foundation
import TestSupport
import Testing
@testable import Tokenizer

struct Expected {
    var lines: [String]
    var ids: [[Int]]
    var idsNoSpecial: [[Int]]
    var decoded: [String]
    var decodedSkipSpecial: [String]

    init(_ name: String) throws {
        let json = try JSONValue.parse(try readFile(Repo.fixture("tokenizers/\(name).expected.json")))
        func strings(_ k: String) -> [String] { json[k]!.arrayValue!.map { $0.stringValue! } }
        func idLists(_ k: String) -> [[Int]] { json[k]!.arrayValue!.map { $0.arrayValue!.map { $0.intValue! } } }
        lines = strings("lines")
        ids = idLists("ids")
        idsNoSpecial = idLists("ids_no_special")
        decoded = strings("decoded")
        decodedSkipSpecial = strings("decoded_skip_special")
    }
}

func check(_ tok: Tokenizer, against e: Expected, _ label: String) throws {
    var mismatches = 0
    for (i, line) in e.lines.enumerated() {
        let ids = try tok.encode(line)
        let plain = try tok.encode(line, addSpecialTokens: false)
        if ids != e.ids[i] || plain != e.idsNoSpecial[i] {
            mismatches += 1
            Issue.record("\(label) line \(i) \(line.debugDescription): ids \(ids) expected \(e.ids[i])")
        }
        let d = tok.decode(e.ids[i]), ds = tok.decode(e.ids[i], skipSpecialTokens: true)
        #expect(d.utf8.elementsEqual(e.decoded[i].utf8), "\(label) line \(i): decoded \(d.debugDescription) expected \(e.decoded[i].debugDescription)")
        #expect(ds.utf8.elementsEqual(e.decodedSkipSpecial[i].utf8), "\(label) line \(i): decoded (skip special) \(ds.debugDescription) expected \(e.decodedSkipSpecial[i].debugDescription)")
    }
    #expect(mismatches == 0)
    // The batch form shares a word cache and must agree.
    #expect(try tok.encode(lines: e.lines) == e.ids)
}

@Suite struct TokenizerFixtureTests {
    @Test(arguments: ["gpt2", "llama3", "llama2", "mistral", "unigram", "wordpiece", "wordlevel", "xlmr"])
    func trainedTokenizerMatchesReference(name: String) throws {
        let tok = try Tokenizer.load(Repo.fixture("tokenizers/\(name)"))
        try check(tok, against: try Expected(name), name)
    }

    @Test func realMiniLMMatchesReference() throws {
        let dir = try Python.miniLMDirectory()
        let tok = try Tokenizer.load(dir)
        #expect(tok.vocabularySize == 30522)
        try check(tok, against: try Expected("minilm"), "minilm")
    }

    /// A BERT directory with only vocab.txt and tokenizer_config.json gives the same ids.
    @Test func miniLMFromVocabTxt() throws {
        let dir = try Python.miniLMDirectory()
        let tmp = TempDir()
        for f in ["vocab.txt", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: dir + "/" + f, toPath: tmp.file(f))
        }
        let tok = try Tokenizer.load(tmp.path)
        let e = try Expected("minilm")
        for (i, line) in e.lines.enumerated() {
            #expect(try tok.encode(line) == e.ids[i], "line \(i)")
        }
    }
}

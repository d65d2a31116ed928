// Hostile and unusual tokenizer.json files, byte-exact vocabularies, and Unicode normalization
// against Python's unicodedata.

import CkptCore
import Foundation
import TestSupport
import Testing
@testable import Tokenizer

@Suite struct TokenizerInputTests {
    func load(_ json: String) throws -> Tokenizer { try Tokenizer(jsonBytes: Array(json.utf8), source: "t.json") }

    func refused(_ json: String, _ fragment: String) {
        do {
            _ = try load(json)
            Issue.record("accepted: \(json.prefix(120))")
        } catch let e as TokenizerError {
            #expect(e.description.contains(fragment) && e.description.hasPrefix("t.json: "), "\(e)")
            #expect(!e.description.contains("\n"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    static let bpe = #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#

    @Test func malformedFilesAreRefusedWithOneLine() {
        refused("", "not valid JSON")
        refused("[]", "expected a JSON object")
        refused(#"{"model": {"type": "BPE", "vocab": {"a": 0, "a": 1}, "merges": []}}"#, "duplicate key")
        refused(#"{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}"#, "invalid id")
        refused(#"{"model": {"type": "BPE", "vocab": {"a": 99999999999}, "merges": []}}"#, "invalid id")
        refused(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}"#, "id 0 is given to two tokens")
        refused(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a c"]}}"#, "is not in the vocabulary")
        refused(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}"#, "two tokens")
        refused(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}}"#, "dropout")
        refused(#"{"model": \#(Self.bpe), "added_tokens": [{"id": 5, "content": ""}]}"#, "empty")
        refused(#"{"model": \#(Self.bpe), "normalizer": {"type": "Nmt"}}"#, "`Nmt` is not supported")
        refused(#"{"model": \#(Self.bpe), "normalizer": {"type": "Precompiled", "precompiled_charsmap": ""}}"#, "fewer than its 4-byte trie size")
        refused(#"{"model": \#(Self.bpe), "normalizer": {"type": "Precompiled", "precompiled_charsmap": "not base64!"}}"#, "is not base64")
        // A trie of 2^31 bytes declared in 8: refused before anything is sized by it.
        refused(#"{"model": \#(Self.bpe), "normalizer": {"type": "Precompiled", "precompiled_charsmap": "AAAAgAAAAAA="}}"#, "declares a 2147483648-byte trie in 4 bytes")
        refused(#"{"model": \#(Self.bpe), "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(?<"}, "behavior": "Isolated"}}"#, "does not compile")
        refused(#"{"model": \#(Self.bpe), "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}}"#, "behavior `Sideways`")
        refused(#"{"model": \#(Self.bpe), "decoder": {"type": "CTC"}}"#, "decoder `CTC` is not supported")
        refused(#"{"model": \#(Self.bpe), "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}], "special_tokens": {}}}"#, "missing")
        refused(#"{"model": \#(Self.bpe), "something_new": 1}"#, "top-level key `something_new`")
        refused(#"{"model": {"type": "Unigram", "vocab": [["a", "NaN"]]}}"#, "finite score")
        refused(#"{"model": {"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 3}}"#, "unk_id")
        refused(String(repeating: "[", count: 10000), "not valid JSON")
    }

    /// "é" precomposed and decomposed are different tokens, though Swift strings call them equal.
    @Test func vocabularyIsByteExact() throws {
        let tok = try load(#"""
            {"model": {"type": "WordLevel", "unk_token": "?", "vocab": {"?": 0, "\u00e9": 1, "e\u0301": 2}},
             "pre_tokenizer": {"type": "WhitespaceSplit"}}
            """#)
        #expect(try tok.encode("\u{e9} e\u{301} x") == [1, 2, 0])
        #expect(tok.decode([2, 1]).unicodeScalars.map(\.value) == [0x65, 0x301, 0x20, 0xE9])
    }

    @Test func bpeMergesAndUnknowns() throws {
        let tok = try load(#"{"model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "abb": 4}, "merges": ["a b", "ab b"]}}"#)
        #expect(try tok.encode("abbab") == [4, 3])
        #expect(try tok.encode("xyab") == [0, 3])
        let noUnk = try load(#"{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"a": 0}}}"#)
        #expect(throws: TokenizerError.self) { try noUnk.encode("b") }
    }

    /// Foundation's normalization forms against Python's unicodedata on the corpus.
    @Test func normalizationMatchesUnicodedata() throws {
        let corpus = try String(contentsOfFile: Repo.fixture("tokenizers/corpus.txt"), encoding: .utf8)
        let r = try Python.run("""
            import json, sys, unicodedata
            text = open(sys.argv[1], encoding="utf-8").read()
            print(json.dumps({f: unicodedata.normalize(f, text) for f in ["NFC", "NFD", "NFKC", "NFKD"]}))
            """, [Repo.fixture("tokenizers/corpus.txt")])
        #expect(r.status == 0, "\(r.stderr)")
        let want = try JSONValue.parse(r.stdout)
        for (name, form) in [("NFC", UnicodeForm.nfc), ("NFD", .nfd), ("NFKC", .nfkc), ("NFKD", .nfkd)] {
            let got = form.normalize(corpus)
            #expect(got.utf8.elementsEqual(want[name]!.stringValue!.utf8), "\(name)")
        }
    }
}

@Suite struct TokenizerDescriptionTests {
    @Test func componentsAreVisible() throws {
        let llama2 = try Tokenizer.load(Repo.fixture("tokenizers/llama2"))
        #expect(llama2.modelType == "BPE" && llama2.byteFallback && llama2.unknownTokenID == 0)
        #expect(llama2.tokens[3] == "<0x00>" && llama2.tokens.count == llama2.vocabularySize)
        #expect(!llama2.merges.isEmpty && llama2.specialPrefix == [1] && llama2.specialSuffix == [])
        let llama3 = try Tokenizer.load(Repo.fixture("tokenizers/llama3"))
        #expect(llama3.ignoreMerges)
        let split = llama3.definition?["pre_tokenizer"]?["pretokenizers"]?.arrayValue?.first
        #expect(split?["pattern"]?["Regex"]?.stringValue?.hasPrefix("(?i:'s|'t|'re") == true)
        let unigram = try Tokenizer.load(Repo.fixture("tokenizers/unigram"))
        #expect(unigram.modelType == "Unigram" && unigram.scores?.count == 418 && unigram.specialSuffix == [1])
        #expect(unigram.addedTokens.contains { $0.content == "ckpt-token" && !$0.special && $0.singleWord })
    }
}

@Suite struct TokenizerRobustnessTests {
    /// A regex that backtracks without end is an error naming the pattern, not a wrong split.
    @Test func runawayRegexIsAnError() throws {
        let tok = try Tokenizer(jsonBytes: Array(#"""
            {"model": {"type": "WordLevel", "vocab": {"a": 0, "<unk>": 1}, "unk_token": "<unk>"},
             "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a|aa)+c"}, "behavior": "Isolated", "invert": false}}
            """#.utf8), source: "evil.json")
        #expect(try tok.encode("aac") == [1])
        do {
            _ = try tok.encode(String(repeating: "a", count: 5000))
            Issue.record("no error")
        } catch let e as TokenizerError {
            #expect(e.description.hasPrefix("evil.json: regex `(a|aa)+c` failed on the text"), "\(e)")
        }
    }

    /// Damaged tokenizer.json files (one byte changed at a time) are refused or work; never a crash.
    @Test func damagedFilesNeverCrash() throws {
        let good = try readFile(Repo.fixture("tokenizers/llama3/tokenizer.json"))
        let lines = try String(contentsOfFile: Repo.fixture("tokenizers/corpus.txt"), encoding: .utf8).split(separator: "\n").map(String.init)
        var rng = SplitMix64(seed: 11)
        var loaded = 0, refused = 0
        // Structure (components, added tokens) is at the start and end of the file; the middle is vocabulary.
        let regions = [0..<min(3000, good.count), max(0, good.count - 3000)..<good.count, 0..<good.count]
        for i in 0..<300 {
            var bytes = good
            let region = regions[i % regions.count]
            let at = region.lowerBound + Int(rng.next() % UInt64(region.count))
            bytes[at] = [UInt8(ascii: "\""), UInt8(ascii: "{"), UInt8(ascii: "9"), UInt8(ascii: "-"), 0xFF, 0x00, UInt8(ascii: "]")][Int(rng.next() % 7)]
            do {
                let tok = try Tokenizer(jsonBytes: bytes, source: "x.json")
                loaded += 1
                for line in lines.prefix(5) {
                    if let ids = try? tok.encode(line) { _ = tok.decode(ids) }
                }
            } catch is TokenizerError {
                refused += 1
            }
        }
        #expect(loaded + refused == 300 && refused > 0)
    }

    /// A Precompiled charsmap whose trie and replacement offsets are garbage (its size header
    /// right): every lookup stays inside the arrays; texts normalize or keep their characters.
    @Test func damagedCharsmapsNeverCrash() throws {
        let good = try JSONValue.parse(try readFile(Repo.fixture("tokenizers/xlmr/tokenizer.json")))
        let b64 = try #require(good["normalizer"]?["normalizers"]?.arrayValue?.first?["precompiled_charsmap"]?.stringValue)
        let map = [UInt8](try #require(Data(base64Encoded: b64)))
        let lines = try String(contentsOfFile: Repo.fixture("tokenizers/corpus.txt"), encoding: .utf8).split(separator: "\n").map(String.init)
        var rng = SplitMix64(seed: 5)
        for i in 0..<40 {
            var bytes = map
            // Damage the trie (after the 4-byte size) or the replacement strings, many bytes at once.
            for _ in 0..<(1 + i * 4) { bytes[4 + Int(rng.next() % UInt64(bytes.count - 4))] = UInt8(truncatingIfNeeded: rng.next()) }
            var o = try #require(good.objectValue)
            o["normalizer"] = .object(["type": .string("Precompiled"), "precompiled_charsmap": .string(Data(bytes).base64EncodedString())])
            let tok = try Tokenizer(jsonBytes: Array(JSONValue.object(o).serialized().utf8), source: "x.json")
            for line in lines { _ = try? tok.encode(line) }
        }
    }
}

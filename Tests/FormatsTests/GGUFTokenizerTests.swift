// tokenizer.ggml.* keys from the tokenizer fixtures (made by the `tokenizers` library):
// vocabulary kind, pre-tokenizer recognised from its regex, refusals by name.

import CkptCore
import Foundation
import Formats
import Testing
import TestSupport

@Suite struct GGUFTokenizerTests {
    func keys(_ name: String) throws -> [String: GGUFValue] {
        let k = try #require(try GGUFTokenizer.keys(directory: Repo.fixture("tokenizers/\(name)"), config: nil))
        return Dictionary(uniqueKeysWithValues: k.map { ($0.key, $0.value) })
    }

    func json(_ name: String) throws -> JSONValue {
        try JSONValue.parse(try readFile(Repo.fixture("tokenizers/\(name)/tokenizer.json")))
    }

    func count(_ v: GGUFValue?) -> Int { if case .array(_, let e)? = v { return e.count } else { return -1 } }

    @Test func byteLevelBPE() throws {
        for (name, pre) in [("llama3", "llama-bpe"), ("gpt2", "gpt-2")] {
            let k = try keys(name), j = try json(name)
            #expect(k["tokenizer.ggml.model"] == .string("gpt2"), "\(name)")
            #expect(k["tokenizer.ggml.pre"] == .string(pre), "\(name)")
            #expect(count(k["tokenizer.ggml.merges"]) == j["model"]?["merges"]?.arrayValue?.count, "\(name)")
            #expect(count(k["tokenizer.ggml.tokens"]) == count(k["tokenizer.ggml.token_type"]))
            #expect(count(k["tokenizer.ggml.tokens"]) >= j["model"]?["vocab"]?.objectValue?.count ?? .max)
            #expect(k["tokenizer.ggml.scores"] == nil)
        }
    }

    @Test func sentencePieceStyleBPE() throws {
        for name in ["llama2", "mistral"] {
            let k = try keys(name)
            #expect(k["tokenizer.ggml.model"] == .string("llama"), "\(name)")
            #expect(k["tokenizer.ggml.add_space_prefix"] == .bool(true), "\(name)")
            guard case .array(_, let tokens)? = k["tokenizer.ggml.tokens"], case .array(_, let types)? = k["tokenizer.ggml.token_type"],
                  case .array(_, let scores)? = k["tokenizer.ggml.scores"] else { Issue.record("\(name): arrays missing"); continue }
            #expect(tokens.count == types.count && tokens.count == scores.count)
            // Byte tokens are type 6, and every merged token scores below the unmerged ones.
            let bytes = zip(tokens, types).filter { if case .string(let s) = $0.0 { return s.hasPrefix("<0x") } else { return false } }
            #expect(bytes.count == 256 && bytes.allSatisfy { $0.1 == .i32(6) }, "\(name)")
            #expect(scores.contains(.f32(-1)) || scores.contains(.f32(0)))
        }
    }

    @Test func wordPieceIsBert() throws {
        let k = try keys("wordpiece")
        #expect(k["tokenizer.ggml.model"] == .string("bert"))
        guard case .array(_, let tokens)? = k["tokenizer.ggml.tokens"] else { Issue.record("no tokens"); return }
        // No "##" continuation marks left: llama.cpp's WPM vocabulary marks word starts with ▁.
        #expect(!tokens.contains { if case .string(let s) = $0 { return s.hasPrefix("##") } else { return false } })
    }

    @Test func unsupportedTokenizersAreRefusedByName() throws {
        for (name, word) in [("unigram", "Unigram"), ("wordlevel", "WordLevel")] {
            #expect {
                _ = try GGUFTokenizer.keys(directory: Repo.fixture("tokenizers/\(name)"), config: nil)
            } throws: { "\($0)".contains(word) && !"\($0)".contains("\n") }
        }
        // A regex llama.cpp has no pre-tokenizer for: refused, naming the pattern.
        let dir = TempDir()
        let text = String(decoding: try readFile(Repo.fixture("tokenizers/llama3/tokenizer.json")), as: UTF8.self)
            .replacingOccurrences(of: #"\\p{N}{1,3}"#, with: #"\\p{N}{1,4}"#)
        #expect(text.contains(#"\\p{N}{1,4}"#))
        try text.write(toFile: dir.file("tokenizer.json"), atomically: true, encoding: .utf8)
        #expect {
            _ = try GGUFTokenizer.keys(directory: dir.path, config: nil)
        } throws: { "\($0)".contains(#"\p{N}{1,4}"#) && "\($0)".contains("no llama.cpp pre-tokenizer") }
    }
}

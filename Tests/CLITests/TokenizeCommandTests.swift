// `ckpt tokenize` against the ids and decodings of the `tokenizers` library
// (fixtures/tokenizers, made by tools/make_tokenizer_fixtures.py).

import CkptCore
import Foundation
import Testing
import TestSupport

@Suite struct TokenizeCommandTests {
    static let names = ["gpt2", "llama3", "llama2", "mistral", "unigram", "wordpiece", "wordlevel", "xlmr"]

    func expected(_ name: String, _ key: String) throws -> JSONValue {
        try #require(try JSONValue.parse(try readFile(Repo.fixture("tokenizers/\(name).expected.json")))[key])
    }

    @Test(arguments: names)
    func fileJSONGivesTheReferenceIds(name: String) throws {
        let corpus = Repo.fixture("tokenizers/corpus.txt")
        let r = try CkptBinary.run("tokenize", Repo.fixture("tokenizers/\(name)"), "--file", corpus, "--json")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try JSONValue.parse(r.stdout)["ids"] == expected(name, "ids"))
        let plain = try CkptBinary.run("tokenize", Repo.fixture("tokenizers/\(name)/tokenizer.json"), "--file", corpus, "--json", "--no-special")
        #expect(try JSONValue.parse(plain.stdout)["ids"] == expected(name, "ids_no_special"))
    }

    @Test(arguments: names)
    func decodeGivesTheReferenceText(name: String) throws {
        let dir = TempDir()
        let ids = JSONValue.object(["ids": try expected(name, "ids")]).serialized()
        try writeFile(dir.file("ids.json"), Array(ids.utf8))
        let r = try CkptBinary.run("tokenize", Repo.fixture("tokenizers/\(name)"), "--file", dir.file("ids.json"), "--decode", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try JSONValue.parse(r.stdout)["text"] == expected(name, "decoded"))
        let s = try CkptBinary.run("tokenize", Repo.fixture("tokenizers/\(name)"), "--file", dir.file("ids.json"), "--decode", "--json", "--no-special")
        #expect(try JSONValue.parse(s.stdout)["text"] == expected(name, "decoded_skip_special"))
    }

    @Test func textPlainOutputAndRoundTrip() throws {
        let model = Repo.fixture("tokenizers/llama2")
        let r = try CkptBinary.run("tokenize", model, "--text", "Hello 世界 😀")
        #expect(r.status == 0, "\(r.stderr)")
        let line = r.stdout.trimmingCharacters(in: .newlines)
        #expect(line.split(separator: " ").first == "1")  // <s>
        let d = try CkptBinary.run("tokenize", model, "--text", line, "--decode", "--no-special")
        #expect(d.stdout == "Hello 世界 😀\n")
        // Standard input is read like --file; CRLF line ends are newlines.
        let stdin = try runProcess(CkptBinary.path, ["tokenize", model], stdin: Data("Hello 世界 😀\r\nab\n".utf8))
        #expect(stdin.stdout.split(separator: "\n").first.map(String.init) == line)
        #expect(stdin.stdout.split(separator: "\n").count == 2)
    }

    @Test func badInputIsOneLineAndStatus2() throws {
        let dir = TempDir()
        let good = try JSONValue.parse(try readFile(Repo.fixture("tokenizers/unigram/tokenizer.json")))
        func variant(_ file: String, _ key: String, _ value: JSONValue) throws -> String {
            var o = good.objectValue!
            o[key] = value
            try writeFile(dir.file(file), Array(JSONValue.object(o).serialized().utf8))
            return dir.file(file)
        }
        let cases: [(String, String)] = [
            (try variant("nmt.json", "normalizer", .object(["type": .string("Nmt")])),
             "normalizer `Nmt` is not supported"),
            (try variant("option.json", "pre_tokenizer", .object(["type": .string("Metaspace"), "replacement": .string("▁"), "frobnicate": .bool(true)])),
             "option `frobnicate` is not supported"),
            (try variant("regex.json", "pre_tokenizer", .object(["type": .string("Split"), "pattern": .object(["Regex": .string("(unclosed")]), "behavior": .string("Isolated"), "invert": .bool(false)])),
             "does not compile"),
            (try variant("unknown.json", "model", .object(["type": .string("CharBPE")])), "model `CharBPE` is not supported"),
        ]
        for (path, message) in cases {
            let r = try CkptBinary.run("tokenize", path, "--text", "hello")
            #expect(r.status == 2, "\(path)")
            #expect(r.stderr.contains(message) && r.stderr.contains(path), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1)
        }
        try writeFile(dir.file("truncated.json"), Array(try readFile(Repo.fixture("tokenizers/gpt2/tokenizer.json")).prefix(5000)))
        let t = try CkptBinary.run("tokenize", dir.file("truncated.json"), "--text", "hello")
        #expect(t.status == 2 && t.stderr.contains("not valid JSON"))
        let d = try CkptBinary.run("tokenize", Repo.fixture("tokenizers/gpt2"), "--text", "1 2 999999", "--decode")
        #expect(d.status == 2 && d.stderr.contains("id 999999 is outside the vocabulary"))
    }
}

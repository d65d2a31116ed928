// tokenizer.ggml.* keys from the tokenizer fixtures (made by the `tokenizers` library):
// vocabulary kind, pre-tokenizer recognised from its regex, refusals by name; and the way
// back: tokenizer.json rebuilt from the keys encodes like the original in `tokenizers`.

import CkptCore
import Foundation
@testable import Formats
import OrderedCollections
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

    /// XLM-RoBERTa's SentencePiece Unigram: llama.cpp's t5 vocabulary, with the Precompiled
    /// normalizer's bytes as tokenizer.ggml.precompiled_charsmap.
    @Test func unigramIsT5() throws {
        let k = try keys("xlmr"), j = try json("xlmr")
        #expect(k["tokenizer.ggml.model"] == .string("t5") && k["tokenizer.ggml.pre"] == .string("default"))
        let vocab = try #require(j["model"]?["vocab"]?.arrayValue)
        guard case .array(_, let tokens)? = k["tokenizer.ggml.tokens"], case .array(_, let scores)? = k["tokenizer.ggml.scores"],
              case .array(_, let types)? = k["tokenizer.ggml.token_type"] else { Issue.record("arrays missing"); return }
        #expect(tokens.count == vocab.count && scores.count == vocab.count && types.count == vocab.count)
        for (i, e) in vocab.enumerated() {
            let pair = e.arrayValue ?? []
            #expect(tokens[i] == .string(pair.first?.stringValue ?? "?") && scores[i] == .f32(Float(pair.last?.doubleValue ?? .nan)), "piece \(i)")
        }
        // <s> <pad> </s> control, <unk> unknown, <mask> (added, special) control, the rest normal.
        #expect(Array(types.prefix(5)) == [.i32(3), .i32(3), .i32(3), .i32(2), .i32(1)] && types.last == .i32(3), "\(types.prefix(5)) \(types.suffix(2))")
        #expect(types.dropFirst(4).dropLast().allSatisfy { $0 == .i32(1) })
        let b64 = try #require(j["normalizer"]?["normalizers"]?.arrayValue?.first?["precompiled_charsmap"]?.stringValue)
        #expect(k["tokenizer.ggml.precompiled_charsmap"] == .array(.u8, [UInt8](Data(base64Encoded: b64)!).map { .u8($0) }))
        #expect(k["tokenizer.ggml.add_space_prefix"] == .bool(true) && k["tokenizer.ggml.remove_extra_whitespaces"] == .bool(true))
        #expect(k["tokenizer.ggml.bos_token_id"] == .u32(0) && k["tokenizer.ggml.eos_token_id"] == .u32(2))
        #expect(k["tokenizer.ggml.unknown_token_id"] == .u32(3) && k["tokenizer.ggml.cls_token_id"] == .u32(0))
        #expect(k["tokenizer.ggml.seperator_token_id"] == .u32(2))
        #expect(k["tokenizer.ggml.add_bos_token"] == .bool(true) && k["tokenizer.ggml.add_eos_token"] == .bool(true))
    }

    @Test func unigramLlamaCppCannotNormalizeIsRefusedByName() throws {
        let good = try json("xlmr")
        func refused(_ key: String, _ value: JSONValue, _ words: [String]) throws {
            var o = try #require(good.objectValue)
            o[key] = value
            let dir = TempDir()
            try writeFile(dir.file("tokenizer.json"), Array(JSONValue.object(o).serialized().utf8))
            #expect {
                _ = try GGUFTokenizer.keys(directory: dir.path, config: nil)
            } throws: { e in words.allSatisfy { "\(e)".contains($0) } && !"\(e)".contains("\n") }
        }
        try refused("normalizer", .object(["type": .string("NFKC")]), ["Unigram", "normalizer NFKC"])
        try refused("pre_tokenizer", .object(["type": .string("Whitespace")]), ["Unigram", "pre-tokenizer Whitespace"])
        var model = try #require(good["model"]?.objectValue)
        model["byte_fallback"] = .bool(true)
        try refused("model", .object(model), ["byte_fallback"])
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

    /// Encodes every line of the corpora with two tokenizer.json files in the `tokenizers`
    /// library (with and without special tokens, and as a pair) and decodes the ids back.
    static let compare = """
    import sys, json
    from tokenizers import Tokenizer
    a, b = Tokenizer.from_file(sys.argv[1]), Tokenizer.from_file(sys.argv[2])
    a.no_padding(); a.no_truncation()
    lines = [l for p in sys.argv[4:] for l in open(p, encoding="utf-8").read().splitlines() if l.strip()]
    if sys.argv[3] == "metaspace-first":
        specials = [t.content for t in a.get_added_tokens_decoder().values()]
        lines = [l for l in lines if not l[0].isspace() and not any(s in l for s in specials)]
    if sys.argv[3] == "sentencepiece-trim":
        specials = [t.content for t in a.get_added_tokens_decoder().values()]
        lines = [l for l in lines if l.strip(" ") == l and not any(s in l for s in specials)]
    bad = []
    for l in lines:
        for special in (True, False):
            x, y = a.encode(l, add_special_tokens=special).ids, b.encode(l, add_special_tokens=special).ids
            if x != y: bad.append([l, special, x, y])
        if a.encode(l, "second", add_special_tokens=True).ids != b.encode(l, "second", add_special_tokens=True).ids: bad.append([l, "pair"])
        ids = a.encode(l).ids
        if a.decode(ids) != b.decode(ids): bad.append([l, "decode", a.decode(ids), b.decode(ids)])
    print(json.dumps({"lines": len(lines), "differ": len(bad), "first": bad[:2], "vocab": [a.get_vocab_size(), b.get_vocab_size()]}))
    """

    /// tokenizer.ggml.* keys of `directory` -> tokenizer.json -> the `tokenizers` library.
    func roundTrip(_ directory: String, _ label: String, without: String? = nil, metaspaceFirst: Bool = false, sentencePieceTrim: Bool = false) throws {
        var kv = try #require(try GGUFTokenizer.keys(directory: directory, config: nil))
        if let without { kv.removeValue(forKey: without) }
        let files = try #require(try GGUFTokenizer.huggingFaceFiles(kv))
        #expect(files.map(\.name) == ["tokenizer.json", "tokenizer_config.json"])
        let dir = TempDir()
        for f in files { try writeFile(dir.file(f.name), f.bytes) }
        let r = try Python.run(Self.compare, [directory + "/tokenizer.json", dir.file("tokenizer.json"), metaspaceFirst ? "metaspace-first" : sentencePieceTrim ? "sentencepiece-trim" : "all",
                                              Repo.fixture("tokenizers/corpus.txt"), Repo.fixture("tokenizers/heldout.txt")])
        #expect(r.status == 0, "\(label): \(r.stderr)")
        let j = try JSONValue.parse(Array(r.stdout.utf8))
        #expect((j["lines"]?.intValue ?? 0) > 45, "\(label)")
        #expect(j["differ"]?.intValue == 0, "\(label): \(r.stdout)")
        // What ckpt's own tokenizer makes of the rebuilt file: the same keys again.
        let again = try #require(try GGUFTokenizer.keys(directory: dir.path, config: nil))
        for k in ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                  "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token", "tokenizer.ggml.scores",
                  "tokenizer.ggml.precompiled_charsmap", "tokenizer.ggml.add_space_prefix", "tokenizer.ggml.remove_extra_whitespaces"] where k != without {
            if k == "tokenizer.ggml.scores" && kv["tokenizer.ggml.model"] != .string("t5") { continue }  // rebuilt from the merges
            let same = again[k] == kv[k]
            #expect(same, "\(label): \(k)")
        }
    }

    @Test func tokenizerJSONFromKeysEncodesLikeTheOriginal() throws {
        for name in ["llama3", "gpt2", "llama2"] { try roundTrip(Repo.fixture("tokenizers/\(name)"), name) }
        // Mistral's Metaspace(prepend_scheme: first) adds no "▁" to a text that starts with a
        // space, nor after a special token; llama.cpp's add_space_prefix (and the Prepend
        // normalizer rebuilt for it) does, so those lines differ by design.
        try roundTrip(Repo.fixture("tokenizers/mistral"), "mistral", metaspaceFirst: true)
        // A SentencePiece GGUF from llama.cpp's converter has scores but no merges: they are
        // rebuilt from the scores (on this vocabulary, to the same encodings).
        try roundTrip(Repo.fixture("tokenizers/llama2"), "llama2 from scores", without: "tokenizer.ggml.merges")
        // XLM-RoBERTa's Unigram (t5): SentencePiece's remove_extra_whitespaces, which llama.cpp
        // applies, also drops spaces at either end of a text and of each piece between special
        // tokens, which XLM-RoBERTa's tokenizer.json keeps; those lines differ by design.
        try roundTrip(Repo.fixture("tokenizers/xlmr"), "xlmr", sentencePieceTrim: true)
    }

    /// Trains a small byte-level BPE with the `tokenizers` library on the corpus, whose
    /// pre-tokenizer is the Split regexes (argv[2], JSON; "\p{N}" as Digits) before
    /// ByteLevel(use_regex: argv[3]); writes DIR/tokenizer.json.
    static let trainBytePre = """
    import sys, json
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders, trainers
    splits, gpt2 = json.loads(sys.argv[2]), sys.argv[3] == "true"
    tok = Tokenizer(models.BPE())
    steps = [pre_tokenizers.Digits(individual_digits=True) if s == r"\\p{N}" else pre_tokenizers.Split(Regex(s), behavior="isolated", invert=False)
             for s in splits]
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=gpt2)])
    tok.decoder = decoders.ByteLevel()
    lines = [l for p in sys.argv[4:] for l in open(p, encoding="utf-8").read().splitlines()]
    tok.train_from_iterator(lines * 3, trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>"], show_progress=False,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(sys.argv[1] + "/tokenizer.json")
    """

    /// Every byte-level pre-tokenizer of llama.cpp that ckpt knows: a tokenizer.json with it is
    /// named by the row's first name, and the tokenizer.json rebuilt from that name (and from
    /// each other name of the row) encodes the corpora exactly like the original.
    @Test func everyKnownBytePreTokenizerRoundTrips() throws {
        let corpora = [Repo.fixture("tokenizers/corpus.txt"), Repo.fixture("tokenizers/heldout.txt")]
        for row in GGUFTokenizer.bytePres {
            let name = row.names[0]
            let dir = TempDir()
            let splits = JSONValue.array(row.splits.map { .string($0) }).serialized()
            let t = try Python.run(Self.trainBytePre, [dir.path, splits, row.gpt2Regex ? "true" : "false"] + corpora)
            #expect(t.status == 0, "\(name): \(t.stderr)")
            let kv = try #require(try GGUFTokenizer.keys(directory: dir.path, config: nil), "\(name)")
            #expect(kv["tokenizer.ggml.pre"] == .string(name), "\(name): \(kv["tokenizer.ggml.pre"].map { GGUFMetadata.text($0) } ?? "none")")
            try roundTrip(dir.path, name)
            let files = try #require(try GGUFTokenizer.huggingFaceFiles(kv))
            let pre = try JSONValue.parse(files[0].bytes)["pre_tokenizer"]
            for alias in row.names.dropFirst() {
                var k = kv
                k["tokenizer.ggml.pre"] = .string(alias)
                let other = try #require(try GGUFTokenizer.huggingFaceFiles(k))
                #expect(try JSONValue.parse(other[0].bytes)["pre_tokenizer"] == pre, "\(alias)")
            }
        }
        // A name ckpt does not know the regexes of: no tokenizer.json, one line naming it.
        var kv = try #require(try GGUFTokenizer.keys(directory: Repo.fixture("tokenizers/gpt2"), config: nil))
        kv["tokenizer.ggml.pre"] = .string("deepseek-llm")
        #expect {
            _ = try GGUFTokenizer.huggingFaceFiles(kv)
        } throws: { "\($0)".contains("deepseek-llm") && !"\($0)".contains("\n") }
    }

    /// The real all-MiniLM-L6-v2 (BERT WordPiece, in the test venv).
    @Test func wordPieceTokenizerJSONFromKeys() throws {
        try roundTrip(try Python.miniLMDirectory(), "minilm")
    }

    @Test func keysThatSayTooLittleAreRefusedByName() throws {
        var kv = try #require(try GGUFTokenizer.keys(directory: Repo.fixture("tokenizers/llama2"), config: nil))
        kv.removeValue(forKey: "tokenizer.ggml.scores")
        #expect { _ = try GGUFTokenizer.huggingFaceFiles(kv) } throws: { "\($0)".contains("score") }
        kv = try #require(try GGUFTokenizer.keys(directory: Repo.fixture("tokenizers/gpt2"), config: nil))
        kv["tokenizer.ggml.pre"] = .string("deepseek-llm")
        #expect { _ = try GGUFTokenizer.huggingFaceFiles(kv) } throws: { "\($0)".contains("deepseek-llm") }
        kv["tokenizer.ggml.model"] = .string("rwkv")
        #expect { _ = try GGUFTokenizer.huggingFaceFiles(kv) } throws: { "\($0)".contains("rwkv") }
        #expect(try GGUFTokenizer.huggingFaceFiles([:]) == nil)
    }

    /// The merges of a SentencePiece vocabulary as the definition reads (GGUFTokenizerExport):
    /// every cut of every normal token (first of its text) whose halves are normal tokens,
    /// ordered by the halves' ids, then by score (highest first), stably. Strings built per
    /// cut: quadratic in a token's length, which is why the exporter does not do it this way.
    func definitionMerges(_ tokens: [String], _ types: [Int], _ scores: [Double]) -> [(String, String)] {
        let scalars = tokens.map { Array($0.unicodeScalars) }
        var normal: [[Unicode.Scalar]: Int] = [:]
        for (i, s) in scalars.enumerated() where types[i] == 1 && normal[s] == nil { normal[s] = i }
        var merges: [(String, String, Double, Int)] = []
        for (i, s) in scalars.enumerated() where types[i] == 1 && normal[s] == i && s.count > 1 {
            var local: [(Int, Int)] = []
            for cut in 1..<s.count {
                if let l = normal[Array(s[..<cut])], let r = normal[Array(s[cut...])] { local.append((l, r)) }
            }
            for (l, r) in local.sorted(by: { $0 < $1 }) { merges.append((tokens[l], tokens[r], scores[i], merges.count)) }
        }
        return merges.sorted { $0.2 != $1.2 ? $0.2 > $1.2 : $0.3 < $1.3 }.map { ($0.0, $0.1) }
    }

    /// Merges rebuilt from scores equal the definition: on random vocabularies over a small
    /// alphabet (so most cuts hit; with duplicates, non-normal types, tied scores, and "é"
    /// precomposed and decomposed, which are different tokens to Python and llama.cpp), and
    /// on the LLaMA-2 fixture tokenizer (511 merges).
    @Test func sentencePieceMergesEqualTheDefinition() throws {
        var rng = SplitMix64(seed: 19)
        let alphabet = ["a", "b", "\u{2581}", "é", "e\u{301}", "\u{1F600}"]
        for _ in 0..<40 {
            let n = 20 + Int(rng.next() % 200)
            let tokens = (0..<n).map { _ in (0..<(1 + Int(rng.next() % 7))).map { _ in alphabet[Int(rng.next() % 6)] }.joined() }
            let types = tokens.map { _ in [1, 1, 1, 1, 2, 3, 4, 6][Int(rng.next() % 8)] }
            let scores = tokens.map { _ in -Double(rng.next() % 10) }
            let fast = try GGUFTokenizer.sentencePieceMerges(tokens: tokens, types: types, scores: scores)
            let slow = definitionMerges(tokens, types, scores)
            #expect(fast.count == slow.count && zip(fast, slow).allSatisfy { $0.0.unicodeScalars.elementsEqual($1.0.unicodeScalars) && $0.1.unicodeScalars.elementsEqual($1.1.unicodeScalars) })
        }
        let kv = try #require(try GGUFTokenizer.keys(directory: Repo.fixture("tokenizers/llama2"), config: nil))
        guard case .array(_, let t)? = kv["tokenizer.ggml.tokens"], case .array(_, let ty)? = kv["tokenizer.ggml.token_type"],
              case .array(_, let sc)? = kv["tokenizer.ggml.scores"] else { Issue.record("llama2: arrays missing"); return }
        let tokens = t.compactMap(\.stringValue), types = ty.compactMap(\.intValue), scores = sc.compactMap(\.doubleValue)
        let fast = try GGUFTokenizer.sentencePieceMerges(tokens: tokens, types: types, scores: scores)
        let slow = definitionMerges(tokens, types, scores)
        #expect(fast.count > 300 && fast.count == slow.count && zip(fast, slow).allSatisfy { $0 == $1 }, "\(fast.count) vs \(slow.count) merges")
    }

    /// Hostile tokenizer.ggml.* keys (found by hand after the fuzz targets were written; the
    /// `gguf` target now reaches this code): token types that are not integers trapped on
    /// conversion (NaN, 1e30); one 20,000-character token took 27 s to rebuild merges for
    /// (50,000 here would take minutes by the definition); nested runs ("a", "aa", ...) have
    /// cubically many merge bytes. Each is a one-line refusal or a linear-time answer.
    @Test func hostileVocabularyKeysAreRefusedOrCheap() throws {
        func kv(_ tokens: [String], types: GGUFValue? = nil, scores: [Float]? = nil) -> OrderedDictionary<String, GGUFValue> {
            var k: OrderedDictionary<String, GGUFValue> = ["tokenizer.ggml.model": .string("llama"),
                                                            "tokenizer.ggml.tokens": .array(.string, tokens.map { .string($0) })]
            k["tokenizer.ggml.token_type"] = types ?? .array(.i32, tokens.map { _ in .i32(1) })
            k["tokenizer.ggml.scores"] = .array(.f32, (scores ?? tokens.map { _ in 0 }).map { .f32($0) })
            return k
        }
        let tokens = ["<unk>", "a", "b", "ab"]
        for bad: Float in [.nan, 1e30, 1.5, -.infinity] {
            let k = kv(tokens, types: .array(.f32, [.f32(2), .f32(bad), .f32(1), .f32(1)]))
            #expect { _ = try GGUFTokenizer.huggingFaceFiles(k) } throws: { "\($0)".contains("token_type[1]") && !"\($0)".contains("\n") }
        }
        #expect { _ = try GGUFTokenizer.huggingFaceFiles(kv(tokens, scores: [0, .nan, 0, 0])) } throws: { "\($0)".contains("not finite") }
        // One long token: linear time, and the merges it truly has.
        let long = String(repeating: "a", count: 50_000)
        let merges = try GGUFTokenizer.sentencePieceMerges(tokens: ["a", "aa", long, String(long.dropFirst())], types: [1, 1, 1, 1], scores: [0, -1, -2, -3])
        #expect(merges.map { "\($0.0.count)+\($0.1.count)" } == ["1+1", "1+49999", "49999+1"])
        // Nested runs: refused past the budget, with the budget named.
        let runs = (1...250).map { String(repeating: "a", count: $0) }
        #expect { _ = try GGUFTokenizer.sentencePieceMerges(tokens: runs, types: runs.map { _ in 1 }, scores: runs.map { _ in 0 }, budget: 1 << 20) }
            throws: { "\($0)".contains("1048576 bytes of merges and comparisons") }
        #expect(try GGUFTokenizer.sentencePieceMerges(tokens: runs, types: runs.map { _ in 1 }, scores: runs.map { _ in 0 }).count == 249 * 250 / 2)
    }
}

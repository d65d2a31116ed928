// The other direction of GGUFTokenizer: a Hugging Face `tokenizer.json` and
// `tokenizer_config.json` rebuilt from a GGUF file's tokenizer.ggml.* keys, for GGUF -> model
// directory conversions, where the keys hold enough to say how llama.cpp tokenizes:
//
//   model "gpt2" (byte-level BPE)   BPE with the stored merges; the pre-tokenizer from
//                                   tokenizer.ggml.pre (GGUFPreTokenizers.swift): "gpt-2"
//                                   ByteLevel(use_regex), "llama-bpe", "qwen2", "gpt-4o", ...
//                                   Split(their regexes) + ByteLevel(use_regex: false)
//                                   (llama-bpe also ignore_merges, as Llama-3's tokenizer.json);
//                                   other pre-tokenizers are refused by name (ckpt does not
//                                   know their regexes).
//   model "llama" (SentencePiece)   BPE with byte fallback; the merges ckpt stores beside the
//                                   scores, or else (llama.cpp's converter writes none) rebuilt
//                                   from the scores as
//                                   transformers' SentencePiece converter does: every split of a
//                                   normal token into two normal tokens is a merge, ranked by the
//                                   whole token's score (highest first), ties by the ids of the
//                                   halves — which is also the order llama.cpp's SPM tokenizer
//                                   merges in. "▁" prepended when add_space_prefix (default true).
//   model "bert" (WordPiece)        llama.cpp's "▁word"/"piece" vocabulary back to "word"/"##piece",
//                                   BertNormalizer(lowercase) + BertPreTokenizer, which is what
//                                   llama.cpp's WPM tokenizer does.
//   model "t5" (Unigram)            Unigram with the scores; normalizer Precompiled(the charsmap)
//                                   and, with remove_extra_whitespaces (default true), spaces
//                                   trimmed at both ends and collapsed inside, as SentencePiece
//                                   and llama.cpp do; Metaspace("▁", always when add_space_prefix
//                                   or remove_extra_whitespaces, else never).
// Token types: 2 (unknown), 3 (control) become special added tokens, 4 (user-defined) plain
// added tokens, 5 (unused, "[PADn]" placeholders) are left out of the vocabulary.
// The post-processor adds bos/eos (cls/sep for BERT) as add_bos_token/add_eos_token say.
// tokenizer_config.json carries the special tokens, add_bos/add_eos and the chat template.

import CkptCore
import Foundation
import OrderedCollections

extension GGUFTokenizer {
    /// A file the directory writer adds beside the weights.
    public struct GeneratedFile: Sendable {
        public var name: String
        public var bytes: [UInt8]
    }

    static func strings(_ v: GGUFValue?) -> [String]? {
        guard case .array(_, let e)? = v else { return nil }
        var out: [String] = []
        out.reserveCapacity(e.count)
        for x in e { guard case .string(let s) = x else { return nil }; out.append(s) }
        return out
    }

    /// A u8/i8 array's bytes (tokenizer.ggml.precompiled_charsmap).
    static func bytes(_ v: GGUFValue?) -> [UInt8]? {
        guard case .array(_, let e)? = v else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(e.count)
        for x in e {
            switch x {
            case .u8(let b): out.append(b)
            case .i8(let b): out.append(UInt8(bitPattern: b))
            default: return nil
            }
        }
        return out
    }

    static func numbers(_ v: GGUFValue?) -> [Double]? {
        guard case .array(_, let e)? = v else { return nil }
        var out: [Double] = []
        out.reserveCapacity(e.count)
        for x in e { guard let d = x.doubleValue ?? x.intValue.map(Double.init) else { return nil }; out.append(d) }
        return out
    }

    /// tokenizer.json and tokenizer_config.json for a GGUF file's tokenizer.ggml.* keys; nil when
    /// it has none; a refusal (one line) when they do not say enough.
    public static func huggingFaceFiles(_ kv: OrderedDictionary<String, GGUFValue>) throws -> [GeneratedFile]? {
        guard let model = kv["tokenizer.ggml.model"]?.stringValue else { return nil }
        guard let tokens = strings(kv["tokenizer.ggml.tokens"]), !tokens.isEmpty else {
            throw Refusal(description: "tokenizer.ggml.tokens missing or not strings: no tokenizer.json written")
        }
        var types = [Int](repeating: 1, count: tokens.count)
        if let raw = numbers(kv["tokenizer.ggml.token_type"]) {
            // A type is a small integer; a float array of NaN or 1e30 must be refused, not converted.
            types = try raw.enumerated().map { i, d in
                guard let t = Int(exactly: d) else {
                    throw Refusal(description: "tokenizer.ggml.token_type[\(i)] is \(d), not a token type: no tokenizer.json written")
                }
                return t
            }
        }
        guard types.count == tokens.count else {
            throw Refusal(description: "tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens: no tokenizer.json written")
        }
        func id(_ key: String) -> Int? {
            guard let i = kv["tokenizer.ggml.\(key)"]?.intValue, i >= 0, i < tokens.count else { return nil }
            return i
        }
        let pre = kv["tokenizer.ggml.pre"]?.stringValue ?? "default"
        let isBert = model == "bert"
        // Token texts as Hugging Face spells them.
        let texts: [String] = isBert ? tokens.enumerated().map { i, t in
            if t.hasPrefix("\u{2581}") { return String(t.dropFirst()) }
            if types[i] != 1 || (t.hasPrefix("[") && t.hasSuffix("]")) { return t }
            return "##" + t
        } : tokens
        var vocab = OrderedDictionary<String, JSONValue>()
        var added: [JSONValue] = []
        for (i, t) in texts.enumerated() where types[i] != 5 && vocab[t] == nil {
            vocab[t] = .int(i)
            if [2, 3, 4].contains(types[i]) {
                added.append(.object(["id": .int(i), "content": .string(t), "single_word": .bool(false), "lstrip": .bool(false),
                                      "rstrip": .bool(false), "normalized": .bool(false), "special": .bool(types[i] != 4)]))
            }
        }
        let unk = id("unknown_token_id") ?? types.firstIndex(of: 2)
        let bos = isBert ? (id("cls_token_id") ?? id("bos_token_id")) : id("bos_token_id")
        let eos = isBert ? (id("seperator_token_id") ?? id("eos_token_id")) : id("eos_token_id")
        let addBos = kv["tokenizer.ggml.add_bos_token"]?.boolValueOrNil ?? (model == "llama" || isBert)
        let addEos = kv["tokenizer.ggml.add_eos_token"]?.boolValueOrNil ?? (isBert || model == "t5")

        var normalizer = JSONValue.null, preTokenizer = JSONValue.null, decoder = JSONValue.null
        var modelJSON: OrderedDictionary<String, JSONValue>
        func byteLevel(prefix: Bool, trim: Bool, regex: Bool) -> JSONValue {
            .object(["type": .string("ByteLevel"), "add_prefix_space": .bool(prefix), "trim_offsets": .bool(trim), "use_regex": .bool(regex)])
        }
        switch model {
        case "gpt2":
            guard let merges = strings(kv["tokenizer.ggml.merges"]) else {
                throw Refusal(description: "byte-level BPE (tokenizer.ggml.model gpt2) without tokenizer.ggml.merges: no tokenizer.json written")
            }
            guard let row = bytePre(named: pre) else {
                throw Refusal(description: "tokenizer.ggml.pre \(pre): ckpt knows the regexes of \(bytePres.flatMap(\.names).joined(separator: ", ")) only; no tokenizer.json written")
            }
            preTokenizer = preTokenizerJSON(row)
            decoder = byteLevel(prefix: true, trim: true, regex: true)
            let pairs: [JSONValue] = try splitMerges(merges).map { .array([.string($0.0), .string($0.1)]) }
            modelJSON = ["type": .string("BPE"), "dropout": .null, "unk_token": .null, "continuing_subword_prefix": .null,
                         "end_of_word_suffix": .null, "fuse_unk": .bool(false), "byte_fallback": .bool(false),
                         "ignore_merges": .bool(ignoreMergesPres.contains(pre)), "vocab": .object(vocab), "merges": .array(pairs)]
        case "llama":
            guard let scores = numbers(kv["tokenizer.ggml.scores"]), scores.count == tokens.count else {
                throw Refusal(description: "SentencePiece vocabulary (tokenizer.ggml.model llama) without a score per token: no tokenizer.json written")
            }
            guard scores.allSatisfy(\.isFinite) else {
                throw Refusal(description: "SentencePiece vocabulary (tokenizer.ggml.model llama) with a score that is not finite: no tokenizer.json written")
            }
            let spacePrefix = kv["tokenizer.ggml.add_space_prefix"]?.boolValueOrNil ?? true
            let replace = JSONValue.object(["type": .string("Replace"), "pattern": .object(["String": .string(" ")]), "content": .string("\u{2581}")])
            normalizer = spacePrefix ? .object(["type": .string("Sequence"), "normalizers": .array([.object(["type": .string("Prepend"), "prepend": .string("\u{2581}")]), replace])]) : replace
            var decoders: [JSONValue] = [.object(["type": .string("Replace"), "pattern": .object(["String": .string("\u{2581}")]), "content": .string(" ")]),
                                         .object(["type": .string("ByteFallback")]), .object(["type": .string("Fuse")])]
            if spacePrefix { decoders.append(.object(["type": .string("Strip"), "content": .string(" "), "start": .int(1), "stop": .int(0)])) }
            decoder = .object(["type": .string("Sequence"), "decoders": .array(decoders)])
            // ckpt's own files carry the merges; others (llama.cpp's converter) only scores.
            let merges = try strings(kv["tokenizer.ggml.merges"]).map(splitMerges) ?? sentencePieceMerges(tokens: tokens, types: types, scores: scores)
            modelJSON = ["type": .string("BPE"), "dropout": .null, "unk_token": unk.map { .string(tokens[$0]) } ?? .null,
                         "continuing_subword_prefix": .null, "end_of_word_suffix": .null, "fuse_unk": .bool(true),
                         "byte_fallback": .bool(true), "ignore_merges": .bool(false), "vocab": .object(vocab),
                         "merges": .array(merges.map { .array([.string($0.0), .string($0.1)]) })]
        case "bert":
            normalizer = .object(["type": .string("BertNormalizer"), "clean_text": .bool(true), "handle_chinese_chars": .bool(true),
                                  "strip_accents": .null, "lowercase": .bool(true)])
            preTokenizer = .object(["type": .string("BertPreTokenizer")])
            decoder = .object(["type": .string("WordPiece"), "prefix": .string("##"), "cleanup": .bool(true)])
            modelJSON = ["type": .string("WordPiece"), "unk_token": .string(unk.map { texts[$0] } ?? "[UNK]"),
                         "continuing_subword_prefix": .string("##"), "max_input_chars_per_word": .int(100), "vocab": .object(vocab)]
        case "t5":
            guard let scores = numbers(kv["tokenizer.ggml.scores"]), scores.count == tokens.count else {
                throw Refusal(description: "Unigram vocabulary (tokenizer.ggml.model t5) without a score per token: no tokenizer.json written")
            }
            guard scores.allSatisfy(\.isFinite) else {
                throw Refusal(description: "Unigram vocabulary (tokenizer.ggml.model t5) with a score that is not finite: no tokenizer.json written")
            }
            let spacePrefix = kv["tokenizer.ggml.add_space_prefix"]?.boolValueOrNil ?? true
            let removeExtra = kv["tokenizer.ggml.remove_extra_whitespaces"]?.boolValueOrNil ?? true
            var norms: [JSONValue] = []
            if let map = bytes(kv["tokenizer.ggml.precompiled_charsmap"]), !map.isEmpty {
                norms.append(.object(["type": .string("Precompiled"), "precompiled_charsmap": .string(Data(map).base64EncodedString())]))
            }
            if removeExtra {
                // SentencePiece's remove_extra_whitespaces, as llama.cpp applies it: spaces at
                // either end dropped, runs inside collapsed to one.
                norms.append(.object(["type": .string("Replace"), "pattern": .object(["Regex": .string(#"\A +| +\z"#)]), "content": .string("")]))
                norms.append(.object(["type": .string("Replace"), "pattern": .object(["Regex": .string(" {2,}")]), "content": .string(" ")]))
            }
            normalizer = norms.isEmpty ? .null : .object(["type": .string("Sequence"), "normalizers": .array(norms)])
            // llama.cpp puts a "▁" before every word when it removes extra whitespace, whatever
            // add_space_prefix says.
            let metaspace = JSONValue.object(["type": .string("Metaspace"), "replacement": .string("\u{2581}"),
                                              "prepend_scheme": .string(spacePrefix || removeExtra ? "always" : "never"), "split": .bool(true)])
            preTokenizer = metaspace
            decoder = metaspace
            // Every id keeps its place (Unigram pieces are listed by id); ids nothing uses keep
            // their placeholder text and score.
            modelJSON = ["type": .string("Unigram"), "unk_id": unk.map { .int($0) } ?? .null,
                         "vocab": .array(tokens.indices.map { .array([.string(tokens[$0]), .number(String(Float(scores[$0]).description))]) }),
                         "byte_fallback": .bool(false)]
        default:
            throw Refusal(description: "tokenizer.ggml.model \(model): ckpt rebuilds gpt2, llama, bert and t5 vocabularies only; no tokenizer.json written")
        }
        // Post-processor: bos/eos around each sequence, as add_bos_token/add_eos_token say.
        var template: JSONValue = .null
        let first = addBos ? bos : nil, last = addEos ? eos : nil
        if first != nil || last != nil {
            func special(_ i: Int?, _ type: Int) -> [JSONValue] {
                i.map { [.object(["SpecialToken": .object(["id": .string(texts[$0]), "type_id": .int(type)])])] } ?? []
            }
            func seq(_ name: String, _ type: Int) -> JSONValue { .object(["Sequence": .object(["id": .string(name), "type_id": .int(type)])]) }
            let secondType = isBert ? 1 : 0
            var specials = OrderedDictionary<String, JSONValue>()
            for i in [first, last].compactMap({ $0 }) {
                specials[texts[i]] = .object(["id": .string(texts[i]), "ids": .array([.int(i)]), "tokens": .array([.string(texts[i])])])
            }
            // BERT's pair is [CLS] A [SEP] B [SEP]; LLaMA's <s> A <s> B; XLM-RoBERTa's (t5 with
            // bos and eos) <s> A </s> </s> B </s>, T5's A </s> B </s>.
            let pairB = (isBert ? [] : model == "t5" ? (first != nil ? special(last, secondType) : []) : special(first, secondType))
                + [seq("B", secondType)] + special(last, secondType)
            template = .object(["type": .string("TemplateProcessing"),
                                "single": .array(special(first, 0) + [seq("A", 0)] + special(last, 0)),
                                "pair": .array(special(first, 0) + [seq("A", 0)] + special(last, 0) + pairB),
                                "special_tokens": .object(specials)])
        }
        let postProcessor: JSONValue = model == "gpt2"
            ? (template == .null ? byteLevel(prefix: true, trim: false, regex: true)
                : .object(["type": .string("Sequence"), "processors": .array([byteLevel(prefix: true, trim: false, regex: true), template])]))
            : template
        let tokenizer = JSONValue.object([
            "version": .string("1.0"), "truncation": .null, "padding": .null, "added_tokens": .array(added),
            "normalizer": normalizer, "pre_tokenizer": preTokenizer, "post_processor": postProcessor, "decoder": decoder,
            "model": .object(modelJSON),
        ])

        // tokenizer_config.json
        var config = OrderedDictionary<String, JSONValue>()
        config["add_bos_token"] = .bool(addBos)
        config["add_eos_token"] = .bool(addEos)
        var decoderEntries = OrderedDictionary<String, JSONValue>()
        for a in added {
            guard let i = a["id"]?.intValue else { continue }
            decoderEntries[String(i)] = .object(["content": a["content"] ?? .null, "lstrip": .bool(false), "normalized": .bool(false),
                                                 "rstrip": .bool(false), "single_word": .bool(false), "special": a["special"] ?? .bool(true)])
        }
        config["added_tokens_decoder"] = .object(decoderEntries)
        let named: [(String, Int?)] = isBert
            ? [("cls_token", bos), ("sep_token", eos), ("unk_token", unk), ("pad_token", id("padding_token_id")), ("mask_token", id("mask_token_id"))]
            : [("bos_token", bos), ("eos_token", eos), ("unk_token", unk), ("pad_token", id("padding_token_id")),
               ("sep_token", id("seperator_token_id")), ("cls_token", id("cls_token_id")), ("mask_token", id("mask_token_id"))]
        for (key, i) in named { if let i { config[key] = .string(texts[i]) } }
        if let t = kv["tokenizer.chat_template"]?.stringValue { config["chat_template"] = .string(t) }
        config["clean_up_tokenization_spaces"] = .bool(isBert)
        if isBert { config["do_lower_case"] = .bool(true) }
        if let arch = kv["general.architecture"]?.stringValue, let n = kv[arch + ".context_length"]?.intValue { config["model_max_length"] = .int(n) }
        config["tokenizer_class"] = .string(isBert ? "BertTokenizer" : "PreTrainedTokenizerFast")
        return [GeneratedFile(name: "tokenizer.json", bytes: Array((tokenizer.prettyPrinted() + "\n").utf8)),
                GeneratedFile(name: "tokenizer_config.json", bytes: Array((JSONValue.object(config).prettyPrinted() + "\n").utf8))]
    }

    /// "a b" merges as pairs.
    static func splitMerges(_ merges: [String]) throws -> [(String, String)] {
        try merges.map { m in
            // By scalars: " " followed by a combining mark or ZWJ is one Character.
            let u = m.unicodeScalars
            guard let space = u.firstIndex(of: " ") else { throw Refusal(description: "merge \"\(m.prefix(40))\" is not two tokens: no tokenizer.json written") }
            return (String(u[..<space]), String(u[u.index(after: space)...]))
        }
    }

    /// BPE merges of a SentencePiece vocabulary, from its scores (see the top of the file).
    ///
    /// Every cut of every normal token is a candidate, so the halves are looked up by a
    /// rolling hash of their scalars (constant time per cut) and compared in full only when
    /// both hashes name a token: the work is linear in the vocabulary's text plus the merges
    /// written. Building two strings per cut, as the definition reads, made a 20 kB GGUF with
    /// one 20,000-character token take 27 s (quadratic in the token's length). The merges'
    /// text and the scalars compared on hash hits are bounded together (`budget`; a vocabulary
    /// of nested runs such as "a", "aa", "aaa", ... has cubically many merges, and a crafted
    /// one could make hashes collide): past it, a refusal instead of work or an allocation
    /// sized beyond the file.
    static func sentencePieceMerges(tokens: [String], types: [Int], scores: [Double], budget: Int? = nil) throws -> [(String, String)] {
        // Texts compared by scalars, as Python and llama.cpp compare them (Swift's String
        // equality would also equate canonically equivalent spellings).
        let scalars = tokens.map { Array($0.unicodeScalars) }
        var normal: [[Unicode.Scalar]: Int] = [:]
        for (i, s) in scalars.enumerated() where types[i] == 1 && normal[s] == nil { normal[s] = i }
        // h(s) = Σ (s_k + 1)·B^(n-1-k) mod 2^64; prefix hashes give any cut's halves in O(1).
        let base: UInt64 = 0x9E37_79B9_7F4A_7C15
        func hash(_ s: ArraySlice<Unicode.Scalar>) -> UInt64 { s.reduce(0) { $0 &* base &+ UInt64($1.value) &+ 1 } }
        var byHash: [UInt64: [Int]] = [:]
        for (_, i) in normal { byHash[hash(scalars[i][...]), default: []].append(i) }
        var spent = 0  // merge bytes written + scalars compared
        func lookup(_ h: UInt64, _ part: ArraySlice<Unicode.Scalar>) -> Int? {
            byHash[h]?.first { spent += part.count; return scalars[$0].elementsEqual(part) }
        }
        let longest = scalars.map(\.count).max() ?? 0
        var power = [UInt64](repeating: 1, count: longest + 1)
        for k in stride(from: 1, through: longest, by: 1) { power[k] = power[k - 1] &* base }
        let limit = budget ?? 32 * tokens.reduce(0) { $0 + $1.utf8.count } + (1 << 24)
        var merges: [(l: Int, r: Int, score: Double, order: Int)] = []
        var prefix: [UInt64] = []
        for (i, s) in scalars.enumerated() where types[i] == 1 && normal[s] == i {
            let n = s.count
            guard n > 1 else { continue }
            prefix.removeAll(keepingCapacity: true)
            prefix.append(0)
            for c in s { prefix.append(prefix[prefix.count - 1] &* base &+ UInt64(c.value) &+ 1) }
            var local: [(Int, Int)] = []
            for cut in 1..<n {
                let hl = prefix[cut], hr = prefix[n] &- prefix[cut] &* power[n - cut]
                guard byHash[hl] != nil, byHash[hr] != nil else { continue }
                if let li = lookup(hl, s[..<cut]), let ri = lookup(hr, s[cut...]) {
                    local.append((li, ri))
                    spent += tokens[li].utf8.count + tokens[ri].utf8.count
                }
                guard spent <= limit else {
                    throw Refusal(description: "rebuilding this SentencePiece vocabulary's merges from its scores takes over \(limit) bytes of merges and comparisons: no tokenizer.json written")
                }
            }
            local.sort { $0 < $1 }
            for m in local { merges.append((m.0, m.1, scores[i], merges.count)) }
        }
        // Highest score first; a stable order otherwise (vocabulary order, then the halves' ids).
        merges.sort { $0.score != $1.score ? $0.score > $1.score : $0.order < $1.order }
        return merges.map { (tokens[$0.l], tokens[$0.r]) }
    }

    /// The generated tokenizer files for a graph read from a GGUF file (nil: none to write).
    /// A tokenizer the keys cannot describe is reported through `warn` and skipped.
    public static func huggingFaceFiles(of graph: WeightGraph, warn: (String) -> Void) -> [GeneratedFile] {
        guard graph.metadata["tokenizer.ggml.model"] != nil else { return [] }
        do {
            return try huggingFaceFiles(GGUFMetadata.values(of: graph)) ?? []
        } catch {
            warn("\(error)")
            return []
        }
    }
}

extension GGUFValue {
    var boolValueOrNil: Bool? { if case .bool(let b) = self { return b } else { return nil } }
}

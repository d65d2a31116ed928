// llama.cpp's tokenizer.ggml.* keys from a Hugging Face tokenizer (tokenizer.json read by the
// Tokenizer module, tokenizer_config.json for special tokens and the chat template), as
// llama.cpp's converter writes them:
//
//   byte-level BPE (ByteLevel pre-tokenizer/decoder)   model "gpt2": tokens, token_type, merges
//   BPE with byte fallback (SentencePiece-style, "▁")  model "llama": tokens, scores, token_type
//                                                      (and merges, which llama.cpp ignores here)
//   WordPiece                                          model "bert": tokens ("##x" -> "x", others
//                                                      "▁x", [..] kept), token_type
//   Unigram (SentencePiece, e.g. XLM-RoBERTa, T5)      model "t5": tokens, scores (the pieces'
//                                                      log probabilities), token_type,
//                                                      precompiled_charsmap (the Precompiled
//                                                      normalizer's bytes), add_space_prefix,
//                                                      remove_extra_whitespaces
// tokenizer.ggml.pre says which pre-tokenizer llama.cpp runs. convert_hf_to_gguf.py recognises
// it by hashing the tokenization of a test text; ckpt reads the pre-tokenizer itself and
// compares its regexes and options with llama.cpp's (GGUFPreTokenizers.swift: Llama-3's
// pattern -> "llama-bpe", Qwen2's -> "qwen2", GPT-2's ByteLevel(use_regex) -> "gpt-2", GPT-4o's,
// Tekken's, DeepSeek's, StarCoder's digits, ...). Anything else is refused with one line naming
// the pattern, rather than guessed.
//
// token_type: 1 normal, 2 unknown, 3 control (special added tokens), 4 user-defined (other added
// tokens), 5 unused (ids nothing maps to, written as [PADn]), 6 byte (<0xXX>).
// SentencePiece-style BPE has no scores in tokenizer.json; llama.cpp's SPM tokenizer merges the
// highest-scoring pair first, so each token gets -(rank of the merge that makes it), 0 for
// tokens no merge makes — the order Hugging Face's BPE merges in.
// Special ids: bos/eos/unknown/padding/separator/cls/mask from tokenizer_config.json (by
// content, looked up in the vocabulary), else the post-processor's tokens before/after a
// sequence; add_bos_token/add_eos_token from tokenizer_config.json or else from the
// post-processor (a special token before / after the sequence).
// tokenizer.chat_template: tokenizer_config.json's chat_template (the "default" one of a list),
// or chat_template.jinja beside it.

import CkptCore
import Foundation
import OrderedCollections
import Tokenizer

public enum GGUFTokenizer {
    public struct Refusal: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The directory holding a model's tokenizer: the input directory, or the directory of an
    /// input file with a tokenizer.json beside it.
    public static func source(for input: String) -> String? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDir) else { return nil }
        let dir = isDir.boolValue ? input : (input as NSString).deletingLastPathComponent
        let json = (dir as NSString).appendingPathComponent("tokenizer.json")
        return FileManager.default.fileExists(atPath: json) ? dir : nil
    }

    static func isByteLevel(_ j: JSONValue?) -> Bool {
        guard let j, j != .null else { return false }
        if j["type"]?.stringValue == "ByteLevel" { return true }
        for key in ["pretokenizers", "decoders", "processors"] {
            if let list = j[key]?.arrayValue, list.contains(where: { $0["type"]?.stringValue == "ByteLevel" }) { return true }
        }
        return false
    }

    /// An optional JSON file of the model directory (nil when absent or not JSON); a FIFO,
    /// device or a file over 64 MiB is refused before it is read.
    static func readJSON(_ path: String) throws -> JSONValue? {
        guard let data = try RegularFile.readIfPresent(path, cap: 64 << 20) else { return nil }
        return try? JSONValue.parse(data)
    }

    /// The tokenizer.ggml.* keys for the tokenizer in `directory` (nil: none there).
    /// `config`: the model's config.json, for special ids tokenizer_config.json lacks.
    public static func keys(directory: String, config: ModelConfig?) throws -> OrderedDictionary<String, GGUFValue>? {
        guard source(for: directory) == directory else { return nil }
        let tok = try Tokenizer.load((directory as NSString).appendingPathComponent("tokenizer.json"))
        let def = tok.definition
        let tc = try readJSON((directory as NSString).appendingPathComponent("tokenizer_config.json"))
        var kv = OrderedDictionary<String, GGUFValue>()
        let texts = tok.tokens
        let added = Dictionary(tok.addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var types = [Int32](repeating: 1, count: texts.count)
        var tokens = [String](repeating: "", count: texts.count)
        for (i, t) in texts.enumerated() {
            guard let t else { tokens[i] = "[PAD\(i)]"; types[i] = 5; continue }
            tokens[i] = t
            if let a = added[i] { types[i] = a.special ? 3 : 4 }
        }
        if let u = tok.unknownTokenID, u < types.count { types[u] = 2 }
        switch tok.modelType {
        case "BPE" where tok.byteFallback:
            kv["tokenizer.ggml.model"] = .string("llama")
            kv["tokenizer.ggml.pre"] = .string("default")
            var rank: [String: Int] = [:]
            for (r, m) in tok.merges.enumerated() where rank[m.0 + m.1] == nil { rank[m.0 + m.1] = r }
            let scores: [GGUFValue] = tokens.map { .f32(rank[$0].map { -Float($0) } ?? 0) }
            for (i, t) in tokens.enumerated() where added[i] == nil && isByteToken(t) { types[i] = 6 }
            kv["tokenizer.ggml.tokens"] = .array(.string, tokens.map { .string($0) })
            kv["tokenizer.ggml.scores"] = .array(.f32, scores)
            kv["tokenizer.ggml.token_type"] = .array(.i32, types.map { .i32($0) })
            // llama.cpp's SPM tokenizer reads scores only; the merges let GGUF -> directory
            // rebuild exactly this tokenizer.json (rebuilding them from scores can differ).
            kv["tokenizer.ggml.merges"] = .array(.string, tok.merges.map { .string($0.0 + " " + $0.1) })
            // A "▁" put before the text (Prepend normalizer or Metaspace prepend_scheme).
            let normalizer = def?["normalizer"]?.serialized() ?? "", pre = def?["pre_tokenizer"]
            let spacePrefix = normalizer.contains("\"Prepend\"") || (pre?["type"]?.stringValue == "Metaspace" && pre?["prepend_scheme"]?.stringValue != "never")
            kv["tokenizer.ggml.add_space_prefix"] = .bool(spacePrefix)
        case "BPE":
            guard isByteLevel(def?["pre_tokenizer"]) || isByteLevel(def?["decoder"]) else {
                throw Refusal(description: "BPE without byte fallback or byte-level pre-tokenizer: llama.cpp has no tokenizer for it")
            }
            kv["tokenizer.ggml.model"] = .string("gpt2")
            kv["tokenizer.ggml.pre"] = .string(try bytePre(def?["pre_tokenizer"]))
            kv["tokenizer.ggml.tokens"] = .array(.string, tokens.map { .string($0) })
            kv["tokenizer.ggml.token_type"] = .array(.i32, types.map { .i32($0) })
            kv["tokenizer.ggml.merges"] = .array(.string, tok.merges.map { .string($0.0 + " " + $0.1) })
        case "WordPiece":
            kv["tokenizer.ggml.model"] = .string("bert")
            kv["tokenizer.ggml.pre"] = .string("default")
            let phantom = tokens.enumerated().map { i, t -> String in
                if types[i] == 5 || (t.hasPrefix("[") && t.hasSuffix("]")) { return t }
                return t.hasPrefix("##") ? String(t.dropFirst(2)) : "\u{2581}" + t
            }
            kv["tokenizer.ggml.tokens"] = .array(.string, phantom.map { .string($0) })
            kv["tokenizer.ggml.token_type"] = .array(.i32, types.map { .i32($0) })
        case "Unigram":
            guard !tok.byteFallback else {
                throw Refusal(description: "Unigram tokenizer with byte_fallback: llama.cpp's t5 (Unigram) tokenizer has no byte fallback")
            }
            let space = try unigramSpaces(def)
            kv["tokenizer.ggml.model"] = .string("t5")
            kv["tokenizer.ggml.pre"] = .string("default")
            let pieceScores = tok.scores ?? []
            // Ids past the model's pieces (added tokens) score 0; unused ids as the converter: -10000.
            let scores: [GGUFValue] = tokens.indices.map { i in .f32(types[i] == 5 ? -10000 : i < pieceScores.count ? Float(pieceScores[i]) : 0) }
            kv["tokenizer.ggml.tokens"] = .array(.string, tokens.map { .string($0) })
            kv["tokenizer.ggml.scores"] = .array(.f32, scores)
            kv["tokenizer.ggml.token_type"] = .array(.i32, types.map { .i32($0) })
            kv["tokenizer.ggml.add_space_prefix"] = .bool(space.prefix)
            kv["tokenizer.ggml.remove_extra_whitespaces"] = .bool(space.removeExtra)
            if let map = space.charsmap { kv["tokenizer.ggml.precompiled_charsmap"] = .array(.u8, map.map { .u8($0) }) }
        default:
            throw Refusal(description: "\(tok.modelType) tokenizer: ckpt writes llama.cpp's gpt2, llama (BPE with byte fallback), bert (WordPiece) and t5 (Unigram) vocabularies only")
        }
        // Special tokens.
        func content(_ key: String) -> String? { tc?[key]?.stringValue ?? tc?[key]?["content"]?.stringValue }
        func special(_ key: String, _ ggufKey: String, configKey: String? = nil) {
            if let c = content(key), let id = tok.id(for: c) { kv["tokenizer.ggml.\(ggufKey)"] = .u32(UInt32(id)) }
            else if let k = configKey, let id = config?[k]?.intValue, id >= 0, id < tokens.count { kv["tokenizer.ggml.\(ggufKey)"] = .u32(UInt32(id)) }
        }
        special("bos_token", "bos_token_id", configKey: "bos_token_id")
        special("eos_token", "eos_token_id", configKey: "eos_token_id")
        if let u = tok.unknownTokenID { kv["tokenizer.ggml.unknown_token_id"] = .u32(UInt32(u)) }
        special("sep_token", "seperator_token_id")
        special("cls_token", "cls_token_id")
        special("pad_token", "padding_token_id", configKey: "pad_token_id")
        special("mask_token", "mask_token_id")
        let prefix = tok.specialPrefix, suffix = tok.specialSuffix
        // Without tokenizer_config.json: the tokens the post-processor puts around a sequence
        // (BERT's [CLS]/[SEP], LLaMA's <s>).
        func fallback(_ key: String, _ id: Int?) {
            if kv["tokenizer.ggml.\(key)"] == nil, let id, id >= 0, id < tokens.count { kv["tokenizer.ggml.\(key)"] = .u32(UInt32(id)) }
        }
        if tok.modelType == "WordPiece" || tok.modelType == "Unigram" {
            fallback("cls_token_id", prefix.first)
            fallback("seperator_token_id", suffix.last)
        }
        fallback("bos_token_id", prefix.first)
        fallback("eos_token_id", suffix.last)
        kv["tokenizer.ggml.add_bos_token"] = .bool(tc?["add_bos_token"]?.boolValue ?? !prefix.isEmpty)
        kv["tokenizer.ggml.add_eos_token"] = .bool(tc?["add_eos_token"]?.boolValue ?? !suffix.isEmpty)
        if let template = try chatTemplate(tc, directory: directory) { kv["tokenizer.chat_template"] = .string(template) }
        return kv
    }

    /// What llama.cpp's t5 (Unigram) tokenizer needs of a Unigram tokenizer.json's normalizer and
    /// pre-tokenizer: the Precompiled charsmap, whether a "▁" goes before each text
    /// (add_space_prefix: Metaspace prepend_scheme always or first) and whether runs of spaces
    /// collapse (remove_extra_whitespaces: a Replace of " {2,}", SentencePiece's trimming
    /// Replace, Strip, or a WhitespaceSplit before the Metaspace). llama.cpp normalizes with the
    /// charsmap and those two switches only, so any other normalizer or pre-tokenizer is refused
    /// by name.
    static func unigramSpaces(_ def: JSONValue?) throws -> (charsmap: [UInt8]?, prefix: Bool, removeExtra: Bool) {
        var charsmap: [UInt8]? = nil, removeExtra = false
        let normalizer = def?["normalizer"] ?? .null
        let items = normalizer == .null ? [] : normalizer["type"]?.stringValue == "Sequence" ? (normalizer["normalizers"]?.arrayValue ?? []) : [normalizer]
        for n in items {
            let type = n["type"]?.stringValue ?? "?"
            let pattern = n["pattern"]?["Regex"]?.stringValue ?? n["pattern"]?["String"]?.stringValue
            let content = n["content"]?.stringValue
            switch type {
            case "Precompiled":
                guard let b64 = n["precompiled_charsmap"]?.stringValue, let data = Data(base64Encoded: b64), !data.isEmpty else {
                    throw Refusal(description: "Unigram tokenizer: the Precompiled normalizer's precompiled_charsmap is missing or not base64")
                }
                charsmap = [UInt8](data)
            case "Replace" where pattern == " {2,}" && (content == " " || content == "\u{2581}"),
                 "Replace" where pattern == #"\A +| +\z"# && content == "":
                removeExtra = true
            case "Strip":
                removeExtra = true
            default:
                throw Refusal(description: "Unigram tokenizer with normalizer \(type)\(pattern.map { " (\($0))" } ?? ""): llama.cpp's t5 tokenizer normalizes with SentencePiece's precompiled charsmap and whitespace trimming only")
            }
        }
        var pre = def?["pre_tokenizer"] ?? .null
        if pre["type"]?.stringValue == "Sequence", let list = pre["pretokenizers"]?.arrayValue, list.count == 2,
           list[0]["type"]?.stringValue == "WhitespaceSplit" {
            removeExtra = true
            pre = list[1]
        }
        guard pre["type"]?.stringValue == "Metaspace", (pre["replacement"]?.stringValue ?? "\u{2581}") == "\u{2581}" else {
            throw Refusal(description: "Unigram tokenizer with pre-tokenizer \(pre == .null ? "none" : pre["type"]?.stringValue ?? "?"): llama.cpp's t5 tokenizer splits as a Metaspace(\"▁\") pre-tokenizer does")
        }
        let scheme = pre["prepend_scheme"]?.stringValue ?? ((pre["add_prefix_space"]?.boolValue ?? true) ? "always" : "never")
        return (charsmap, scheme != "never", removeExtra)
    }

    static func isByteToken(_ t: String) -> Bool {
        let u = Array(t.utf8)
        return u.count == 6 && t.hasPrefix("<0x") && t.hasSuffix(">") && UInt8(String(t.dropFirst(3).prefix(2)), radix: 16) != nil
    }

    static func chatTemplate(_ tc: JSONValue?, directory: String) throws -> String? {
        if let s = tc?["chat_template"]?.stringValue { return s }
        if let list = tc?["chat_template"]?.arrayValue {
            return list.first(where: { $0["name"]?.stringValue == "default" })?["template"]?.stringValue ?? list.first?["template"]?.stringValue
        }
        let jinja = (directory as NSString).appendingPathComponent("chat_template.jinja")
        if let d = try RegularFile.readIfPresent(jinja, cap: 1 << 20) { return String(decoding: d, as: UTF8.self) }
        return nil
    }
}

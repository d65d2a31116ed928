// llama.cpp's byte-level BPE pre-tokenizers (`tokenizer.ggml.pre`) by their Hugging Face form:
// the one table both directions use. llama.cpp (src/llama-vocab.cpp) runs, for each name, a
// list of regexes one after another, each splitting the pieces the previous one left, then
// byte-level BPE; in a tokenizer.json that is a Sequence of Split(Regex, Isolated)
// pre-tokenizers before ByteLevel(use_regex: false), or, for GPT-2's pattern,
// ByteLevel(use_regex: true) itself. A Digits(individual_digits: true) pre-tokenizer is the
// split "\p{N}". The regexes are the ones the models' tokenizer.json files carry (llama.cpp
// keeps them as "original regex from tokenizer.json" where it rewrites them for its engine).
//
// GGUF writing names a pre-tokenizer by the first name of its row; reading accepts every
// name of the row (llama.cpp runs the same regexes for all of them).

import CkptCore

extension GGUFTokenizer {
    public struct BytePre: Sendable {
        /// llama.cpp's names, the one ckpt writes first.
        public var names: [String]
        /// The Split regexes before the ByteLevel step ("\p{N}": Digits(individual_digits)).
        public var splits: [String]
        /// ByteLevel(use_regex: true): GPT-2's pattern after the splits.
        public var gpt2Regex: Bool
    }

    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen35Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt4oPattern = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let tekkenPattern = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let seedCoderPattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let deepseekV3Patterns = [#"\p{N}{1,3}"#, "[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+",
                                     ##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##]
    static let deepseekCoderPatterns = [#"[\r\n]"#, #"\s?\p{L}+"#, #"\s?\p{P}+"#, "[\u{4E00}-\u{9FA5}\u{0800}-\u{4E00}\u{AC00}-\u{D7FF}]+", #"\p{N}"#]

    public static let bytePres: [BytePre] = [
        BytePre(names: ["gpt-2", "mpt", "olmo", "jais", "trillion", "granite-docling"], splits: [], gpt2Regex: true),
        BytePre(names: ["starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva", "mellum2"], splits: [#"\p{N}"#], gpt2Regex: true),
        BytePre(names: ["llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe", "chatglm-bpe"], splits: [llama3Pattern], gpt2Regex: false),
        BytePre(names: ["qwen2", "stablelm2", "hunyuan", "deepseek-r1-qwen", "grok-2", "solar-open"], splits: [qwen2Pattern], gpt2Regex: false),
        BytePre(names: ["qwen35"], splits: [qwen35Pattern], gpt2Regex: false),
        BytePre(names: ["gpt-4o", "llama4", "minimax-m2"], splits: [gpt4oPattern], gpt2Regex: false),
        BytePre(names: ["tekken"], splits: [tekkenPattern], gpt2Regex: false),
        BytePre(names: ["seed-coder"], splits: [seedCoderPattern], gpt2Regex: false),
        BytePre(names: ["deepseek-v3"], splits: deepseekV3Patterns, gpt2Regex: false),
        BytePre(names: ["deepseek-coder"], splits: deepseekCoderPatterns, gpt2Regex: false),
    ]

    /// Names with llama.cpp's merges-first rule off: a word that is a token is taken whole
    /// (`ignore_merges`), as llama.cpp does for Llama-3's names.
    static let ignoreMergesPres: Set<String> = ["llama-bpe", "llama3", "llama-v3"]

    /// The row for a tokenizer.ggml.pre value.
    static func bytePre(named name: String) -> BytePre? { bytePres.first { $0.names.contains(name) } }

    /// llama.cpp's name for a byte-level BPE tokenizer.json pre-tokenizer, or a refusal naming it.
    static func bytePre(_ pre: JSONValue?) throws -> String {
        guard let pre, pre != .null else { throw Refusal(description: "byte-level BPE without a pre-tokenizer: no llama.cpp pre-tokenizer matches") }
        let items = pre["type"]?.stringValue == "Sequence" ? (pre["pretokenizers"]?.arrayValue ?? []) : [pre]
        guard let last = items.last, last["type"]?.stringValue == "ByteLevel" else {
            throw Refusal(description: "pre-tokenizer \(pre["type"]?.stringValue ?? "?") (\(pre.serialized().prefix(120))) does not end in ByteLevel: no llama.cpp pre-tokenizer matches")
        }
        guard last["add_prefix_space"]?.boolValue != true else {
            throw Refusal(description: "pre-tokenizer ByteLevel(add_prefix_space: true): no llama.cpp pre-tokenizer adds a space")
        }
        var splits: [String] = []
        for s in items.dropLast() {
            switch s["type"]?.stringValue {
            case "Split":
                let pattern = s["pattern"]?["Regex"]?.stringValue ?? s["pattern"]?["String"]?.stringValue ?? "?"
                guard s["behavior"]?.stringValue == "Isolated", s["invert"]?.boolValue != true else {
                    throw Refusal(description: "pre-tokenizer Split(\(pattern)) with behavior \(s["behavior"]?.stringValue ?? "?")\(s["invert"]?.boolValue == true ? ", inverted" : ""): llama.cpp's pre-tokenizers isolate their matches")
                }
                splits.append(pattern)
            case "Digits" where s["individual_digits"]?.boolValue == true:
                splits.append(#"\p{N}"#)
            default:
                throw Refusal(description: "pre-tokenizer \(s["type"]?.stringValue ?? "?") (\(s.serialized().prefix(120))): no llama.cpp pre-tokenizer matches")
            }
        }
        let gpt2 = last["use_regex"]?.boolValue ?? true
        if let row = bytePres.first(where: { $0.splits == splits && $0.gpt2Regex == gpt2 }) { return row.names[0] }
        let described = splits.isEmpty ? "none" : splits.joined(separator: " then ")
        throw Refusal(description: "pre-tokenizer regex \(described) (ByteLevel use_regex \(gpt2)) matches no llama.cpp pre-tokenizer (known: \(bytePres.map { $0.names[0] }.joined(separator: ", ")))")
    }

    /// The tokenizer.json pre-tokenizer for a row.
    static func preTokenizerJSON(_ row: BytePre) -> JSONValue {
        let byteLevel = JSONValue.object(["type": .string("ByteLevel"), "add_prefix_space": .bool(false), "trim_offsets": .bool(true),
                                          "use_regex": .bool(row.gpt2Regex)])
        if row.splits.isEmpty { return byteLevel }
        let splits: [JSONValue] = row.splits.map { s in
            s == #"\p{N}"# ? .object(["type": .string("Digits"), "individual_digits": .bool(true)])
                : .object(["type": .string("Split"), "pattern": .object(["Regex": .string(s)]), "behavior": .string("Isolated"), "invert": .bool(false)])
        }
        return .object(["type": .string("Sequence"), "pretokenizers": .array(splits + [byteLevel])])
    }
}

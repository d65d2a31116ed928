// BERT directories with only vocab.txt (+ tokenizer_config.json): the tokenizer transformers
// builds for them (its BertConverter): BertNormalizer with the config's do_lower_case,
// strip_accents and tokenize_chinese_chars, BertPreTokenizer, WordPiece with "##",
// "[CLS] $A [SEP]", and the special tokens matched whole before normalization.

import CkptCore
import Foundation

extension Tokenizer {
    static func loadVocabTxt(directory: String, vocab path: String) throws -> Tokenizer {
        do {
            let bytes = try readCapped(path)
            guard let text = String(validating: bytes, as: UTF8.self) else { throw TokenizerError.invalid("not valid UTF-8") }
            // Split by bytes (as transformers does, a "\r" stays part of its token).
            var lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            if lines.last == "" { lines.removeLast() }
            let vocab = try Vocabulary(entries: lines.enumerated().map { ($1, .int($0)) }, what: "vocab.txt")
            var config = JSONValue.object([:])
            let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
            if FileManager.default.fileExists(atPath: configPath) {
                do { config = try JSONValue.parse(try readCapped(configPath)) } catch let e as JSONError {
                    throw TokenizerError(kind: .invalid, message: "not valid JSON: \(e)", path: configPath)
                }
            }
            func special(_ key: String, _ d: String) -> String {
                if let s = config[key]?.stringValue { return s }
                if let s = config[key]?["content"]?.stringValue { return s }
                return d
            }
            let lowercase = config["do_lower_case"]?.boolValue ?? true
            let normalizer = BertNormalizer(cleanText: true, handleChineseChars: config["tokenize_chinese_chars"]?.boolValue ?? true,
                                            stripAccents: config["strip_accents"]?.boolValue ?? lowercase, lowercase: lowercase)
            let unk = special("unk_token", "[UNK]"), cls = special("cls_token", "[CLS]"), sep = special("sep_token", "[SEP]")
            let names = [special("pad_token", "[PAD]"), unk, cls, sep, special("mask_token", "[MASK]")]
            var added: [AddedToken] = []
            for name in names {
                guard let id = vocab[name] else { continue }
                if added.contains(where: { $0.id == id }) { continue }
                added.append(AddedToken(id: id, content: name, special: true, singleWord: false, lstrip: false, rstrip: false, normalized: false))
            }
            guard let clsID = vocab[cls], let sepID = vocab[sep] else {
                throw TokenizerError.invalid("vocab.txt lacks \(cls) or \(sep)")
            }
            return try Tokenizer(normalizer: normalizer, preTokenizer: BertPreTokenizer(),
                                 model: try WordPiece(vocab: vocab, unkToken: unk, prefix: "##", maxChars: 100),
                                 postProcessor: Surround(before: [clsID], after: [sepID]),
                                 decoder: WordPieceDecoder(prefix: "##", cleanup: true), addedTokens: added, source: path)
        } catch let e as TokenizerError {
            throw e.at(path)
        }
    }
}

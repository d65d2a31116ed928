// Text where token ids were expected: `verify --text`, prune's calibration and distill's data.
//
// A token file is a 2-D integer .npy, or text whose every non-empty line holds only integer
// ids (separated by spaces, commas or tabs; '#' starts a comment). Anything else is read as
// UTF-8 text and tokenized with the model's tokenizer (tokenizer.json or vocab.txt beside the
// checkpoint), then cut into consecutive sequences of `length` tokens, each starting with the
// tokenizer's leading special tokens (e.g. BOS).

import CkptCore
import Foundation
import Tokenizer
import Transformer

public enum TextFiles {
    /// Largest text read (the whole file is held in memory and tokenized at once).
    public static let maxBytes = 1 << 30

    public static func read(_ path: String) throws -> String {
        let data: [UInt8]
        do { data = try FileKind.read(path, cap: maxBytes) } catch { throw VerifyError.badInputs("\(path): \(error)") }
        guard let s = String(validating: data, as: UTF8.self) else { throw VerifyError.badInputs("\(path): not valid UTF-8 text") }
        return s
    }

    /// Where a checkpoint's tokenizer lives: the directory itself, or the file's directory.
    public static func tokenizerLocation(_ checkpoint: String) -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: checkpoint, isDirectory: &isDir), isDir.boolValue { return checkpoint }
        let dir = (checkpoint as NSString).deletingLastPathComponent
        return dir.isEmpty ? "." : dir
    }

    /// Whether `text` is a token-id file: every line empty, a comment, or integers only.
    public static func looksLikeTokenIDs(_ text: String) -> Bool {
        var sawIDs = false
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            let body = line.split(separator: UInt8(ascii: "#"), maxSplits: 1, omittingEmptySubsequences: false).first ?? []
            for part in body.split(whereSeparator: { $0 == 32 || $0 == 44 || $0 == 9 || $0 == 13 }) {
                guard part.allSatisfy({ $0 >= 48 && $0 <= 57 }) || (part.first == 45 && part.count > 1 && part.dropFirst().allSatisfy({ $0 >= 48 && $0 <= 57 })) else {
                    return false
                }
                sawIDs = true
            }
        }
        return sawIDs
    }

    /// Token sequences from a token file or a text file (see the top of this file).
    public static func tokenInputs(_ path: String, model checkpoint: String, length: Int, tokenizer: String? = nil) throws -> [ModelInput] {
        if path.hasSuffix(".npy") { return try Verifier.tokenFile(path) }
        let text = try read(path)
        if looksLikeTokenIDs(text) { return try Verifier.tokenFile(path) }
        let tok = try Tokenizer.load(tokenizer ?? tokenizerLocation(checkpoint))
        let prefix = tok.specialPrefix
        guard length > prefix.count + 1 else { throw VerifyError.badInputs("sequences of \(length) tokens are too short") }
        let body = try tok.encode(text, addSpecialTokens: false)
        let step = length - prefix.count
        var out: [ModelInput] = []
        var i = 0
        while i < body.count {
            let piece = Array(body[i..<min(i + step, body.count)])
            if piece.count >= 2 || out.isEmpty { out.append(.tokens(prefix + piece)) }
            i += step
        }
        guard !out.isEmpty else { throw VerifyError.badInputs("\(path): the text holds no tokens") }
        return out
    }
}

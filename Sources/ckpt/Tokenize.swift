import ArgumentParser
import CkptCore
import Foundation
import Tokenizer

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Turn text into token ids (or, with --decode, ids into text) with a model's tokenizer.",
        discussion: """
            MODEL is a model directory (tokenizer.json, else a BERT vocab.txt with \
            tokenizer_config.json) or a tokenizer.json. The ids are those of the Hugging Face \
            `tokenizers` library: special tokens are added as the post-processor says unless \
            --no-special; the file's truncation and padding settings are not applied. \
            --text encodes one string; --file encodes each line (without its \\n or \\r\\n); \
            with neither, standard input is read as --file would be. Output: one line of \
            space-separated ids per sequence, or with --json {"ids": [[…], …]}. \
            With --decode the input is ids instead (space- or comma-separated, one sequence \
            per line, or the {"ids": [[…]]} JSON that --json prints) and the output one text \
            per sequence ({"text": […]} with --json); --no-special then leaves special tokens out.
            """
    )

    @Argument(help: "Model directory or tokenizer.json.") var model: String
    @Option(help: "The text to encode (or, with --decode, the ids).") var text: String?
    @Option(help: "A UTF-8 text file: each line is one sequence.") var file: String?
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Add no special tokens (with --decode: leave special tokens out).") var noSpecial = false
    @Flag(help: "Decode ids to text.") var decode = false

    /// Largest input accepted (the whole file is read into memory).
    static let maxInput = 1 << 30

    func run() throws {
        if text != nil && file != nil { throw ValidationError("give --text or --file, not both") }
        let tokenizer = try Tokenizer.load(model)
        let lines: [String]
        if let text {
            lines = [text]
        } else {
            let source = file ?? "standard input"
            let data: Data
            if let file {
                guard let h = FileHandle(forReadingAtPath: file) else { throw CLIError("\(file): cannot be read") }
                data = (try? h.readToEnd()) ?? Data()
                try? h.close()
            } else {
                data = FileHandle.standardInput.readDataToEndOfFile()
            }
            guard data.count <= TokenizeCommand.maxInput else { throw CLIError("\(source): larger than 1 GiB") }
            guard let s = String(validating: [UInt8](data), as: UTF8.self) else { throw CLIError("\(source): not valid UTF-8 text") }
            lines = TextLines.split(s)
        }
        var out = ""
        if decode {
            let sequences = try lines.count == 1 && text != nil ? [IDList.parse(lines[0], what: "--text")]
                : IDList.parseFile(lines, what: file ?? "standard input")
            var texts: [String] = []
            for ids in sequences {
                for id in ids where tokenizer.token(for: id) == nil {
                    throw CLIError("\(model): id \(id) is outside the vocabulary (0..<\(tokenizer.vocabularySize))")
                }
                texts.append(tokenizer.decode(ids, skipSpecialTokens: noSpecial))
            }
            if json {
                out = JSONValue.object(["text": .array(texts.map { .string($0) })]).serialized() + "\n"
            } else {
                out = texts.map { $0 + "\n" }.joined()
            }
        } else {
            let ids = try tokenizer.encode(lines: lines, addSpecialTokens: !noSpecial)
            if json {
                out.reserveCapacity(ids.count * 16)
                out += "{\"ids\": ["
                for (i, seq) in ids.enumerated() {
                    out += (i == 0 ? "[" : ", [") + seq.map(String.init).joined(separator: ", ") + "]"
                }
                out += "]}\n"
            } else {
                for seq in ids { out += seq.map(String.init).joined(separator: " ") + "\n" }
            }
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}

/// Lines of a text file: split at "\n" (a "\r" before it is part of the newline); a final
/// newline ends the last line rather than starting an empty one.
enum TextLines {
    static func split(_ s: String) -> [String] {
        // By bytes: "\r\n" is one Character, so a Character split would not see its "\n".
        var lines = s.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line -> String in
            String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
        }
        if s.utf8.last == UInt8(ascii: "\n") { lines.removeLast() }
        return lines
    }
}

/// Token ids written by hand or by `ckpt tokenize`.
enum IDList {
    static func parse(_ line: String, what: String) throws -> [Int] {
        let parts = line.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" })
        return try parts.map { p in
            guard let id = Int(p), id >= 0 else { throw CLIError("\(what): \(Pattern.quoted(String(p))) is not a token id") }
            return id
        }
    }

    static func parseFile(_ lines: [String], what: String) throws -> [[Int]] {
        let joined = lines.joined(separator: "\n")
        if joined.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" }).first == "{" {
            let v: JSONValue
            do { v = try JSONValue.parse(joined) } catch { throw CLIError("\(what): not valid JSON: \(error)") }
            guard let seqs = v["ids"]?.arrayValue else { throw CLIError("\(what): expected {\"ids\": [[…], …]}") }
            return try seqs.map { s in
                guard let a = s.arrayValue else { throw CLIError("\(what): expected {\"ids\": [[…], …]}") }
                return try a.map { x in
                    guard let id = x.intValue, id >= 0 else { throw CLIError("\(what): \(x.serialized()) is not a token id") }
                    return id
                }
            }
        }
        return try lines.enumerated().map { try parse($1, what: "\(what) line \($0 + 1)") }
    }
}

enum Pattern {
    static func quoted(_ s: String) -> String { "`" + (s.count > 40 ? String(s.prefix(40)) + "…" : s) + "`" }
}

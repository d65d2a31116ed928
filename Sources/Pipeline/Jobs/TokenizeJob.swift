// `ckpt tokenize` and the pipeline's tokenize step: text to token ids, or ids to text, with a
// model's tokenizer.

import CkptCore
import Formats
import Foundation
import Tokenizer

/// Encodes text (one sequence per line) into token ids, or with `decode` ids into text.
public struct TokenizeJob: Job {
    public static let name = "tokenize"
    /// Model directory or tokenizer.json.
    public var model = ""
    /// The text to encode (or, with `decode`, the ids).
    public var text: String?
    /// A UTF-8 text file: each line is one sequence (neither `text` nor `file`: standard input).
    public var file: String?
    /// Add no special tokens (with `decode`: leave special tokens out).
    public var noSpecial = false
    /// Decode ids to text.
    public var decode = false
    /// Write JSON ({"ids": [[…]]} or {"text": […]}) instead of one line per sequence.
    public var json = false
    /// Write the result to this file (default: the report only; the CLI prints it).
    public var output: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case model, text, file, noSpecial = "no_special", decode, json, output
    }
    /// A pipeline step names its output (a later step can calibrate on the ids).
    public static let requiredKeys: [CodingKeys] = [.model, .output]
    public static let inputKeys: [CodingKeys] = [.model, .file]
    public static let outputKeys: [CodingKeys] = [.output]
    public static let writesCheckpoints = false

    /// Largest input accepted (the whole file is read into memory).
    public static let maxInput = 1 << 30

    public init() {}
    public init(model: String, text: String? = nil) {
        (self.model, self.text) = (model, text)
    }

    public struct Report: JobReport {
        /// Token ids per sequence (encoding).
        public var ids: [[Int]]?
        /// Text per sequence (decoding).
        public var texts: [String]?

        public func json() -> JSONValue {
            if let texts { return .object(["text": .array(texts.map { .string($0) })]) }
            return .object(["ids": .array((ids ?? []).map { .array($0.map { .int($0) }) })])
        }

        /// The output as `ckpt tokenize` prints it: one line per sequence (ids separated by
        /// spaces, or the text), or with `json` one JSON object.
        public func rendered(json: Bool) -> String {
            var out = ""
            if json {
                if let texts { return JSONValue.object(["text": .array(texts.map { .string($0) })]).serialized() + "\n" }
                // Written by hand: a JSON tree is slow for millions of ids.
                let ids = ids ?? []
                out.reserveCapacity(ids.count * 16)
                out += "{\"ids\": ["
                for (i, seq) in ids.enumerated() {
                    out += (i == 0 ? "[" : ", [") + seq.map(String.init).joined(separator: ", ") + "]"
                }
                return out + "]}\n"
            }
            if let texts { return texts.map { $0 + "\n" }.joined() }
            for seq in ids ?? [] { out += seq.map(String.init).joined(separator: " ") + "\n" }
            return out
        }
    }

    public func validate() throws {
        if text != nil && file != nil { throw JobError(nil, "give text or file, not both") }
    }

    public func run(progress: JobProgress) throws -> Report {
        try validate()
        let tokenizer = try Tokenizer.load(model)
        let lines: [String]
        if let text {
            lines = [text]
        } else {
            let source = file ?? "standard input"
            let data: [UInt8]
            if let file {
                do { data = try FileKind.read(file, cap: Self.maxInput) } catch { throw JobError(nil, "\(file): \(error)") }
            } else {
                data = [UInt8]((try? FileHandle.standardInput.read(upToCount: Self.maxInput + 1)) ?? Data())
                guard data.count <= Self.maxInput else { throw JobError(nil, "\(source): larger than 1 GiB") }
            }
            guard let s = String(validating: data, as: UTF8.self) else { throw JobError(nil, "\(source): not valid UTF-8 text") }
            lines = TextLines.split(s)
        }
        if decode {
            let sequences = try lines.count == 1 && text != nil ? [IDList.parse(lines[0], what: "--text")]
                : IDList.parseFile(lines, what: file ?? "standard input")
            var texts: [String] = []
            for ids in sequences {
                for id in ids where tokenizer.token(for: id) == nil {
                    throw JobError(nil, "\(model): id \(id) is outside the vocabulary (0..<\(tokenizer.vocabularySize))")
                }
                texts.append(tokenizer.decode(ids, skipSpecialTokens: noSpecial))
            }
            return try written(Report(texts: texts))
        }
        return try written(Report(ids: try tokenizer.encode(lines: lines, addSpecialTokens: !noSpecial)))
    }

    /// The report, after writing it to `output` (atomically) when one is named.
    func written(_ report: Report) throws -> Report {
        guard let output else { return report }
        var f = try AtomicFile(target: output)
        try f.write(Array(report.rendered(json: json).utf8))
        try f.commit()
        return report
    }
}

/// Lines of a text file: split at "\n" (a "\r" before it is part of the newline); a final
/// newline ends the last line rather than starting an empty one.
public enum TextLines {
    public static func split(_ s: String) -> [String] {
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
            guard let id = Int(p), id >= 0 else { throw JobError(nil, "\(what): \(quoted(String(p))) is not a token id") }
            return id
        }
    }

    static func parseFile(_ lines: [String], what: String) throws -> [[Int]] {
        let joined = lines.joined(separator: "\n")
        if joined.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" }).first == "{" {
            let v: JSONValue
            do { v = try JSONValue.parse(joined) } catch { throw JobError(nil, "\(what): not valid JSON: \(error)") }
            guard let seqs = v["ids"]?.arrayValue else { throw JobError(nil, "\(what): expected {\"ids\": [[…], …]}") }
            return try seqs.map { s in
                guard let a = s.arrayValue else { throw JobError(nil, "\(what): expected {\"ids\": [[…], …]}") }
                return try a.map { x in
                    guard let id = x.intValue, id >= 0 else { throw JobError(nil, "\(what): \(x.serialized()) is not a token id") }
                    return id
                }
            }
        }
        return try lines.enumerated().map { try parse($1, what: "\(what) line \($0 + 1)") }
    }

    static func quoted(_ s: String) -> String { "`" + (s.count > 40 ? String(s.prefix(40)) + "…" : s) + "`" }
}

import ArgumentParser
import CkptCore
import Formats
import Foundation
import OrderedCollections

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's format, tensors, metadata and model config.",
        discussion: "With --json, prints one object: format, path, tensors [{name, dtype, shape, bytes}], ties, metadata, config, parameters, total_bytes (schema in the README); for .ckz also stored_bytes per tensor and in total, file_bytes and provenance."
    )

    @Argument(help: "A checkpoint file or a Hugging Face model directory.")
    var path: String

    @Option(help: "PyTorch checkpoints that wrap their state_dict ({'model': sd}): its dotted key, e.g. model or state_dict.")
    var key: String?

    @Option(help: "A Hugging Face config.json to use instead of the one beside the weights.")
    var config: String?

    @Flag(help: "Print JSON for machines.")
    var json = false

    @Flag(help: "Print the module tree implied by dotted names, with parameter counts.")
    var tree = false

    @Flag(help: "Read every tensor and verify it (.ckz: decode every chunk and check its CRC32s, like `gzip -t`).")
    var check = false

    @Option(help: "Threads for decoding .ckz chunks (default: all cores).")
    var jobs: Int?

    func run() throws {
        if let jobs, jobs < 1 { throw CLIError("--jobs must be at least 1") }
        let (graph, format) = try Checkpoint.open(path, configPath: config, jobs: jobs, key: key)
        if check {
            // Every byte is read (and, for .ckz, decoded and checked); a failure throws with
            // the tensor and chunk named.
            for t in graph.tensors.values {
                if case .external(let bytes) = t.data, let ckz = bytes as? CKZTensorBytes {
                    try ckz.verify()  // chunk by chunk, never the whole tensor in memory
                } else {
                    try t.data.withBytes { _ in }
                }
                t.data.releaseResidentPages()
            }
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
                try ShardedSafetensors.checkConsistency(directory: path, graph: graph)
            }
        }
        let archive = format == .ckz ? try CKZArchive(path: path) : nil
        if json {
            print(Self.jsonReport(graph, format: format, path: path, archive: archive).prettyPrinted())
            return
        }
        var summary = "\(path): \(format), \(graph.tensors.count) tensors, \(formatCount(graph.parameterCount)) parameters, \(formatBytes(graph.byteCount))"
        if let archive {
            summary += String(format: ", stored in %@ (%.1f %%)", formatBytes(archive.fileSize), 100 * Double(archive.fileSize) / Double(max(1, graph.byteCount)))
        }
        print(summary)
        if let p = archive?.provenance {
            print("provenance: \(p.writer)\(p.recipe.map { ", " + $0 } ?? "")")
            for s in p.sources { print("  source: \(s.file) \(s.bytes) bytes sha256 \(s.sha256)") }
        }
        if check { print("check: all \(graph.tensors.count) tensors read\(format == .ckz ? ", every chunk's CRC32 verified" : "")") }
        if let c = graph.config { print("config: \(c.summary)") }
        for (k, v) in graph.metadata {
            // Long values (GGUF vocabularies, embedded configs) are shortened here; --json has them whole.
            // Cut first: a vocabulary is megabytes of text, and counting or rewriting it all is not free.
            let head = v.prefix(121)
            let line = (head.count > 120 ? head.prefix(117) + "..." : String(head)).replacingOccurrences(of: "\n", with: " ")
            print("metadata: \(k) = \(line)")
        }
        for (alias, target) in graph.ties { print("tied: \(alias) -> \(target)") }
        if tree {
            printTree(graph.moduleTree(), depth: 0)
            return
        }
        let nameWidth = min(60, graph.tensors.keys.map(\.count).max() ?? 0)
        for t in graph.tensors.values {
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            print("  " + t.name.padding(toLength: max(nameWidth, t.name.count), withPad: " ", startingAt: 0)
                + "  " + t.dtype.rawValue.padding(toLength: max(11, t.dtype.rawValue.count), withPad: " ", startingAt: 0)
                + "  " + shape.padding(toLength: 18, withPad: " ", startingAt: 0)
                + "  " + formatBytes(t.byteCount) + Self.storedColumn(t))
        }
    }

    private func printTree(_ node: ModuleNode, depth: Int) {
        for child in node.children.values {
            print(String(repeating: "  ", count: depth + 1) + "\(child.name)  \(formatCount(child.parameters))")
            if depth < 3 { printTree(child, depth: depth + 1) }
        }
    }

    /// "  stored 12.3 kB (81.9 %)" for a compressed tensor, else "".
    static func storedColumn(_ t: Tensor) -> String {
        guard let s = storedBytes(t) else { return "" }
        let percent = 100 * Double(s) / Double(max(1, t.byteCount))
        return "  stored " + formatBytes(s) + String(format: " (%.1f %%)", percent)
    }

    /// Bytes a tensor takes in a compressed file; nil for uncompressed formats.
    static func storedBytes(_ t: Tensor) -> Int? {
        if case .external(let e) = t.data, let z = e as? CKZTensorBytes { return z.storedCount }
        return nil
    }

    static func jsonReport(_ graph: WeightGraph, format: CheckpointFormat, path: String, archive: CKZArchive? = nil) -> JSONValue {
        let tensors: [JSONValue] = graph.tensors.values.map { t in
            var o: OrderedDictionary<String, JSONValue> = [
                "name": .string(t.name),
                "dtype": .string(t.dtype.rawValue),
                "shape": .array(t.shape.map { .int($0) }),
                "bytes": .int(t.byteCount),
            ]
            if let s = storedBytes(t) { o["stored_bytes"] = .int(s) }
            return .object(o)
        }
        var report: OrderedDictionary<String, JSONValue> = [
            "format": .string(format.rawValue),
            "path": .string(path),
            "tensors": .array(tensors),
            "ties": .object(graph.ties.mapValues { .string($0) }),
            "metadata": .object(graph.metadata.mapValues { .string($0) }),
            "config": graph.config.map { .object($0.json) } ?? .null,
            "parameters": .int(graph.parameterCount),
            "total_bytes": .int(graph.byteCount),
        ]
        if let archive {
            report["stored_bytes"] = .int(graph.tensors.values.reduce(0) { $0 + (storedBytes($1) ?? 0) })
            report["file_bytes"] = .int(archive.fileSize)
            report["provenance"] = (try? JSONValue.parse(archive.provenanceJSON)) ?? .null
        }
        return .object(report)
    }
}

/// "124.4M" style counts.
func formatCount(_ n: Int) -> String {
    if n >= 1_000_000_000 { return String(format: "%.2fB", Double(n) / 1e9) }
    if n >= 1_000_000 { return String(format: "%.1fM", Double(n) / 1e6) }
    if n >= 1_000 { return String(format: "%.1fk", Double(n) / 1e3) }
    return "\(n)"
}

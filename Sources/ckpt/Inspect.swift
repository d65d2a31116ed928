import ArgumentParser
import CkptCore
import Formats
import OrderedCollections

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's format, tensors, metadata and model config.",
        discussion: "With --json, prints one object: format, path, tensors [{name, dtype, shape, bytes}], ties, metadata, config, parameters, total_bytes (schema in the README)."
    )

    @Argument(help: "A checkpoint file or a Hugging Face model directory.")
    var path: String

    @Option(help: "A Hugging Face config.json to use instead of the one beside the weights.")
    var config: String?

    @Flag(help: "Print JSON for machines.")
    var json = false

    @Flag(help: "Print the module tree implied by dotted names, with parameter counts.")
    var tree = false

    func run() throws {
        let (graph, format) = try Checkpoint.open(path, configPath: config)
        if json {
            print(Self.jsonReport(graph, format: format, path: path).prettyPrinted())
            return
        }
        print("\(path): \(format), \(graph.tensors.count) tensors, \(formatCount(graph.parameterCount)) parameters, \(formatBytes(graph.byteCount))")
        if let c = graph.config { print("config: \(c.summary)") }
        for (k, v) in graph.metadata {
            // Long values (GGUF vocabularies, embedded configs) are shortened here; --json has them whole.
            let line = v.replacingOccurrences(of: "\n", with: " ")
            print("metadata: \(k) = \(line.count > 120 ? line.prefix(117) + "..." : line)")
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
                + "  " + formatBytes(t.byteCount))
        }
    }

    private func printTree(_ node: ModuleNode, depth: Int) {
        for child in node.children.values {
            print(String(repeating: "  ", count: depth + 1) + "\(child.name)  \(formatCount(child.parameters))")
            if depth < 3 { printTree(child, depth: depth + 1) }
        }
    }

    static func jsonReport(_ graph: WeightGraph, format: CheckpointFormat, path: String) -> JSONValue {
        let tensors: [JSONValue] = graph.tensors.values.map { t in
            .object([
                "name": .string(t.name),
                "dtype": .string(t.dtype.rawValue),
                "shape": .array(t.shape.map { .int($0) }),
                "bytes": .int(t.byteCount),
            ])
        }
        return .object([
            "format": .string(format.rawValue),
            "path": .string(path),
            "tensors": .array(tensors),
            "ties": .object(graph.ties.mapValues { .string($0) }),
            "metadata": .object(graph.metadata.mapValues { .string($0) }),
            "config": graph.config.map { .object($0.json) } ?? .null,
            "parameters": .int(graph.parameterCount),
            "total_bytes": .int(graph.byteCount),
        ])
    }
}

/// "124.4M" style counts.
func formatCount(_ n: Int) -> String {
    if n >= 1_000_000_000 { return String(format: "%.2fB", Double(n) / 1e9) }
    if n >= 1_000_000 { return String(format: "%.1fM", Double(n) / 1e6) }
    if n >= 1_000 { return String(format: "%.1fk", Double(n) / 1e3) }
    return "\(n)"
}

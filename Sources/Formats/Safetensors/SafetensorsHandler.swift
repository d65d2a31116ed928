// safetensors in the format registry: a single file, or a Hugging Face model directory
// (sharded with an index, or one `model.safetensors`).

import CkptCore
import Foundation

extension CheckpointFormat {
    public static let safetensors = CheckpointFormat(SafetensorsHandler())
}

struct SafetensorsHandler: FormatHandler {
    var name: String { "safetensors" }
    var displayName: String { "safetensors" }
    var extensions: [String] { ["safetensors"] }
    var isReadable: Bool { true }
    var isWritable: Bool { true }
    var writesDirectory: Bool { true }

    /// A u64 header length N (within the reference crate's cap and the file), then a JSON
    /// object: `{` first, `}` last before the space padding.
    func sniff(_ p: FormatProbe) -> Bool {
        guard let n = p.u64(at: 0), n >= 2, n <= UInt64(Safetensors.maxHeaderSize), n <= UInt64(p.size - 8),
              p.byte(at: 8) == UInt8(ascii: "{") else { return false }
        var end = 8 + Int(n) - 1
        while end > 8, p.byte(at: end) == UInt8(ascii: " ") { end -= 1 }
        return p.byte(at: end) == UInt8(ascii: "}")
    }

    /// An 8-byte length and '{' whose header does not hold together (truncated, say), or a
    /// .safetensors name: the safetensors reader says what is wrong.
    func fallbackSniff(_ p: FormatProbe) -> Bool {
        !p.isZip && (p.hasExtension("safetensors") || p.byte(at: 8) == UInt8(ascii: "{"))
    }

    func canHold(_ dtype: DType) -> Bool { SafetensorsDType.name(dtype) != nil }

    func read(path: String, options: ReadOptions) throws -> WeightGraph { try Safetensors.read(path: path) }

    /// The index first (as transformers does), then `model.safetensors`, then a lone
    /// `*.safetensors`; several without an index is an error, none is "not mine".
    func readDirectory(_ dir: String, options: ReadOptions) throws -> WeightGraph? {
        let fm = FileManager.default
        let index = dir + "/" + ShardedSafetensors.indexName
        if fm.fileExists(atPath: index) { return try ShardedSafetensors.read(indexPath: index) }
        let single = dir + "/" + ShardedSafetensors.singleName
        if fm.fileExists(atPath: single) { return try FormatRegistry.naming(single) { try Safetensors.read(path: single) } }
        let found = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
        if found.count == 1 {
            let only = dir + "/" + found[0]
            return try FormatRegistry.naming(only) { try Safetensors.read(path: only) }
        }
        if found.isEmpty { return nil }
        throw CheckpointError.noCheckpointInDirectory(found: found)
    }

    func write(_ graph: WeightGraph, to target: String, directory: Bool, options: Checkpoint.WriteOptions) throws {
        if directory {
            let companions = options.companionsFrom.map(Companions.list(in:)) ?? []
            // A GGUF's tokenizer.ggml.* keys become tokenizer.json/tokenizer_config.json unless
            // the input directory carries its own.
            let generated = companions.contains { $0.name == "tokenizer.json" } ? [] : GGUFTokenizer.huggingFaceFiles(of: graph, warn: GGUFNaming.warn)
            try ShardedSafetensors.write(graph, toDirectory: target, maxShardSize: options.maxShardSize, progress: options.progress,
                                         companions: companions, generated: generated.map { ($0.name, $0.bytes) })
            return
        }
        // The config travels in the metadata (read back by Safetensors.read).
        var g = graph
        if let config = graph.config { g.metadata[Safetensors.configKey] = String(decoding: config.serialized(), as: UTF8.self) }
        try Safetensors.write(g, to: target, progress: options.progress)
    }
}

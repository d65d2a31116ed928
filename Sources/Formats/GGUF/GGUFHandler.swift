// GGUF in the format registry. Tensors keep llama.cpp's names and layouts when written.

import CkptCore
import Foundation

extension CheckpointFormat {
    public static let gguf = CheckpointFormat(GGUFHandler())
}

struct GGUFHandler: FormatHandler {
    var name: String { "gguf" }
    var displayName: String { "GGUF" }
    var extensions: [String] { ["gguf"] }
    var isReadable: Bool { true }
    var isWritable: Bool { true }
    var keepsLlamaCppNames: Bool { true }

    /// "GGUF", then a u32 version (1 to 3 exist).
    func sniff(_ p: FormatProbe) -> Bool {
        guard p.starts(with: Array("GGUF".utf8)), let v = p.u32(at: 4) else { return false }
        return (1...3).contains(v)
    }

    func canHold(_ dtype: DType) -> Bool { GGUF.canHold(dtype) }

    func read(path: String, options: ReadOptions) throws -> WeightGraph { try GGUF.read(path: path) }

    /// The tokenizer of `options.tokenizerFrom` becomes tokenizer.ggml.* keys unless the graph
    /// already has them.
    func write(_ graph: WeightGraph, to target: String, directory: Bool, options: Checkpoint.WriteOptions) throws {
        var graph = graph
        if let dir = options.tokenizerFrom, graph.metadata["tokenizer.ggml.model"] == nil {
            let source = (dir as NSString).appendingPathComponent("tokenizer.json")
            if let kv = try FormatRegistry.naming(source, { try GGUFTokenizer.keys(directory: dir, config: graph.config) }) {
                GGUFMetadata.store(kv, into: &graph)
            }
        }
        try GGUF.write(graph, to: target, progress: options.progress)
    }
}

// GGUF in the format registry. Tensors keep llama.cpp's names and layouts when written.

import CkptCore
import Foundation
import Transformer

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
        if let dir = options.tokenizerFrom, let arch = graph.metadata["general.architecture"] ?? graph.config?.modelType.flatMap({ LlamaCpp.architectures[$0]?.name }),
           graph.metadata[arch + ".pooling_type"] == nil, let type = try Self.poolingType(directory: dir) {
            GGUFMetadata.store([arch + ".pooling_type": .u32(type)], into: &graph)
        }
        try GGUF.write(graph, to: target, progress: options.progress)
    }

    /// llama.cpp's pooling type (1 mean, 2 cls, 3 last token) for the Pooling module of a
    /// sentence-transformers directory, as llama.cpp's converter writes it; nil without one.
    /// Modes llama.cpp has no pooling for (max, mean-sqrt-len, several at once) are warned.
    static func poolingType(directory: String) throws -> UInt32? {
        guard let pooling = try SentencePooling.read(directory: directory) else { return nil }
        let types: [SentencePooling.Mode: UInt32] = [.mean: 1, .cls: 2, .lastToken: 3]
        guard pooling.modes.count == 1, let t = types[pooling.modes[0]] else {
            GGUFNaming.warn("\(directory): sentence-transformers pooling \(pooling.modes.map(\.rawValue).joined(separator: "+")) has no llama.cpp pooling type; none written (llama.cpp returns per-token embeddings)")
            return nil
        }
        return t
    }
}

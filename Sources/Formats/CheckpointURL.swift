// `URL` overloads of the checkpoint entry points, for apps that hold file URLs (bundles,
// app containers, `FileManager` results) rather than path strings.

import CkptCore
import Foundation

extension Checkpoint {
    /// Opens a checkpoint file or model directory at a file URL; see ``open(_:configPath:jobs:key:)``.
    public static func open(_ url: URL, config: URL? = nil, jobs: Int? = nil, key: String? = nil) throws -> (graph: WeightGraph, format: CheckpointFormat) {
        try open(url.path, configPath: config?.path, jobs: jobs, key: key)
    }

    /// Opens a checkpoint at a file URL for the forward pass; see ``openModel(_:configPath:key:)``.
    public static func openModel(_ url: URL, config: URL? = nil, key: String? = nil) throws -> WeightGraph {
        try openModel(url.path, configPath: config?.path, key: key)
    }

    /// Writes `graph` to a file URL in the format its extension names (`.safetensors`, `.ckz`,
    /// `.gguf`, `.h5`, `.npz`), or `format` if given; a URL ending in "/" is a Hugging Face
    /// model directory. Atomic, as every writer: the file appears complete or not at all.
    public static func write(_ graph: WeightGraph, to url: URL, format: CheckpointFormat? = nil, options: WriteOptions = .init()) throws {
        let path = url.hasDirectoryPath ? url.path + "/" : url.path
        let (chosen, directory) = try outputFormat(for: path, explicit: format?.rawValue, maxShardSize: options.maxShardSize)
        try write(graph, to: path, format: chosen, directory: directory, options: options)
    }
}

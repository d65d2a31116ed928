// Sharded Hugging Face checkpoints: `model-00001-of-00003.safetensors` ... plus
// `model.safetensors.index.json`:
//   {"metadata": {"total_size": <bytes>}, "weight_map": {"<tensor>": "<shard file>", ...}}
//
// Reading checks that every shard the index names exists, every indexed tensor is in the
// shard the index names, no tensor is in two shards and no shard holds a tensor the index
// does not list (a stale index). Writing splits tensors into shards the way huggingface_hub's
// `split_state_dict_into_shards` does, writes the index as `json.dumps(indent=2,
// sort_keys=True)` would, and moves everything into place only when all of it is written.

import CkptCore
import Foundation
import OrderedCollections

public enum ShardedSafetensors {
    public static let indexName = "model.safetensors.index.json"
    public static let singleName = "model.safetensors"

    /// Reads a sharded checkpoint from its index file. `readShard` opens one shard (the
    /// same index format serves `pytorch_model.bin.index.json`, whose shards are torch files).
    public static func read(indexPath: String, readShard: (String) throws -> WeightGraph = { try Safetensors.read(path: $0) }) throws -> WeightGraph {
        let dir = URL(fileURLWithPath: indexPath).deletingLastPathComponent().path
        let indexFile = try MappedFile(path: indexPath)
        let json: JSONValue
        do {
            json = try indexFile.withBytes { (b) throws(JSONError) in try JSONValue.parse(b) }
        } catch {
            if let key = error.duplicateKey { throw FileError(path: indexPath, error: SafetensorsError.invalidIndex("tensor `\(key)` listed twice")) }
            throw FileError(path: indexPath, error: SafetensorsError.invalidIndex("not valid JSON: \(error)"))
        }
        guard let weightMap = json["weight_map"]?.objectValue else {
            throw FileError(path: indexPath, error: SafetensorsError.invalidIndex("no \"weight_map\" object"))
        }
        var shardOf = OrderedDictionary<String, String>()
        for (tensor, file) in weightMap {
            guard let f = file.stringValue, !f.isEmpty, !f.contains("/"), f != ".", f != ".." else {
                throw FileError(path: indexPath, error: SafetensorsError.invalidIndex("tensor `\(tensor)`: shard is not a plain file name"))
            }
            shardOf[tensor] = f
        }
        // Shards in name order; each shard's tensors in file order.
        let shardFiles = Array(Set(shardOf.values)).sorted()
        var graph = WeightGraph()
        var seenIn: [String: String] = [:]
        for shard in shardFiles {
            let path = dir + "/" + shard
            guard FileManager.default.fileExists(atPath: path) else {
                throw FileError(path: indexPath, error: SafetensorsError.missingShard(file: shard))
            }
            let part: WeightGraph
            do { part = try readShard(path) } catch let e as IOError { throw e } catch let e as FileError { throw e } catch {
                throw FileError(path: path, error: error)
            }
            for (k, v) in part.metadata where graph.metadata[k] == nil { graph.metadata[k] = v }
            for t in part.tensors.values {
                if let first = seenIn[t.name] {
                    throw FileError(path: path, error: SafetensorsError.tensorInTwoShards(tensor: t.name, first: first, second: shard))
                }
                guard shardOf[t.name] == shard else {
                    throw FileError(path: indexPath, error: shardOf[t.name] == nil
                        ? SafetensorsError.tensorNotInIndex(tensor: t.name, shard: shard)
                        : SafetensorsError.tensorNotInShard(tensor: t.name, shard: shardOf[t.name]!))
                }
                seenIn[t.name] = shard
                try graph.add(t)
            }
            // Ties inside a shard (a torch shard holding GPT-2's lm_head.weight and
            // transformer.wte.weight as one storage): the alias is in the index like a tensor.
            for (alias, target) in part.ties {
                if let first = seenIn[alias] {
                    throw FileError(path: path, error: SafetensorsError.tensorInTwoShards(tensor: alias, first: first, second: shard))
                }
                guard shardOf[alias] == shard else {
                    throw FileError(path: indexPath, error: shardOf[alias] == nil
                        ? SafetensorsError.tensorNotInIndex(tensor: alias, shard: shard)
                        : SafetensorsError.tensorNotInShard(tensor: alias, shard: shardOf[alias]!))
                }
                seenIn[alias] = shard
                try graph.tie(alias, to: target)
            }
        }
        for (tensor, shard) in shardOf where seenIn[tensor] == nil {
            throw FileError(path: indexPath, error: SafetensorsError.tensorNotInShard(tensor: tensor, shard: shard))
        }
        return graph
    }

    /// Splits tensors into shards of at most `maxShardSize` bytes, as huggingface_hub does:
    /// in order, a new shard starts when the next tensor would overflow the current one, and
    /// a tensor larger than the limit gets a shard of its own.
    static func split(_ tensors: [Tensor], maxShardSize: Int) -> [[Tensor]] {
        var shards: [[Tensor]] = []
        var current: [Tensor] = []
        var currentSize = 0
        for t in tensors {
            if t.byteCount > maxShardSize {
                shards.append([t])
                continue
            }
            if currentSize + t.byteCount > maxShardSize {
                shards.append(current)
                current = []
                currentSize = 0
            }
            current.append(t)
            currentSize += t.byteCount
        }
        if !current.isEmpty { shards.append(current) }
        return shards.filter { !$0.isEmpty }
    }

    /// Writes a graph as a Hugging Face model directory: shards (or `model.safetensors` when
    /// everything fits in one), the index, `config.json` when the graph has a config, and
    /// `companions` (relative name -> source file or folder) copied byte for byte, and
    /// `generated` files (a GGUF's tokenizer as tokenizer.json ...) written beside them.
    public static func write(
        _ graph: WeightGraph, toDirectory target: String, maxShardSize: Int?,
        progress: (any ProgressSink)? = nil, companions: [(name: String, source: String)] = [],
        generated: [(name: String, bytes: [UInt8])] = []
    ) throws {
        let tensors = Array(graph.tensors.values)
        let shards = split(tensors, maxShardSize: maxShardSize ?? Int.max)
        let dir = try AtomicDirectory(target: target)
        if shards.count <= 1 {
            try Safetensors.write(shards.first ?? [], metadata: graph.metadata,
                                  to: dir.path(for: singleName), progress: progress)
        } else {
            var weightMap: [(String, String)] = []
            for (i, shard) in shards.enumerated() {
                let name = String(format: "model-%05d-of-%05d.safetensors", i + 1, shards.count)
                try Safetensors.write(shard, metadata: graph.metadata, to: dir.path(for: name), progress: progress)
                weightMap += shard.map { ($0.name, name) }
            }
            weightMap.sort { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars, by: { $0.value < $1.value }) }
            let index = JSONValue.object([
                "metadata": .object(["total_parameters": .int(graph.parameterCount), "total_size": .int(graph.byteCount)]),
                "weight_map": .object(OrderedDictionary(uniqueKeysWithValues: weightMap.map { ($0.0, JSONValue.string($0.1)) })),
            ])
            var f = try AtomicFile(target: dir.path(for: indexName))
            try f.write(Array((index.prettyPrinted() + "\n").utf8))
            try f.commit()
        }
        if let config = graph.config {
            var f = try AtomicFile(target: dir.path(for: "config.json"))
            try f.write(config.serialized())
            try f.commit()
        }
        for c in companions { try Companions.copy(c.source, to: dir.path(for: c.name)) }
        for g in generated where !companions.contains(where: { $0.name == g.name }) {
            var f = try AtomicFile(target: dir.path(for: g.name))
            try f.write(g.bytes)
            try f.commit()
        }
        // A companion folder already in the target (an earlier conversion's 1_Pooling/) cannot
        // be renamed over: it is moved aside, and back if the commit fails.
        let aside = Companions.moveAsideFolders(companions.map(\.name), in: target)
        do {
            try dir.commit(isStale: { name in
                name == singleName || name == indexName
                    || (name.hasPrefix("model-") && name.hasSuffix(".safetensors") && name.contains("-of-"))
            })
        } catch {
            Companions.restore(aside, in: target)
            throw error
        }
        Companions.removeAside(aside)
    }
}

/// An error in a particular file: the CLI prints "<path>: <error>".
public struct FileError: Error, CustomStringConvertible, @unchecked Sendable {
    public var path: String
    public var error: any Error
    public init(path: String, error: any Error) {
        self.path = path
        self.error = error
    }
    public var description: String { "\(path): \(ErrorText.line(error))" }
}

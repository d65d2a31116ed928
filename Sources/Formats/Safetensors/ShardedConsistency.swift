// `inspect --check` of a sharded model directory: is it one checkpoint, or shards of two
// conversions mixed (a writer killed while moving files one by one, as ckpt's did before
// directory outputs were swapped whole)? Each shard alone can be valid and every tensor in
// the shard its index names, yet the set be a mix. Two signs that need no extra data:
// - the index's `total_size` (huggingface_hub and ckpt write the sum of the tensors' bytes)
//   differs from what the shards hold (e.g. an f16 index over an f32 shard);
// - the directory holds `<prefix>-K-of-N` shards the index does not name, or shards of
//   another N (leftovers of an earlier split).

import CkptCore
import Foundation

extension ShardedSafetensors {
    /// Throws when the directory's index and shards look like a mix of two checkpoints.
    public static func checkConsistency(directory dir: String, graph: WeightGraph) throws {
        for indexName in [indexName, PyTorch.indexName] {
            let indexPath = dir + "/" + indexName
            guard FileManager.default.fileExists(atPath: indexPath) else { continue }
            let json = try MappedFile(path: indexPath).withBytes { (b) throws(JSONError) in try JSONValue.parse(b) }
            if let total = json["metadata"]?["total_size"]?.intValue, total != graph.byteCount {
                throw FileError(path: indexPath, error: SafetensorsError.invalidIndex(
                    "total_size is \(total) bytes but the shards hold \(graph.byteCount): shards of different conversions?"))
            }
            let named = Set((json["weight_map"]?.objectValue ?? [:]).values.compactMap(\.stringValue))
            let ext = indexName == Self.indexName ? ".safetensors" : ".bin"
            let counts = Set(named.compactMap { shardCount($0, ext: ext) })
            for file in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() {
                guard let n = shardCount(file, ext: ext) else { continue }
                if !named.contains(file) || counts.count > 1 || !counts.contains(n) {
                    throw FileError(path: indexPath, error: SafetensorsError.invalidIndex(
                        "\(file) is a shard the index does not name (\(named.count) shards named): shards of different conversions?"))
                }
            }
        }
    }

    /// N of a `<prefix>-00002-of-00004<ext>` name.
    static func shardCount(_ name: String, ext: String) -> Int? {
        guard name.hasSuffix(ext) else { return nil }
        let parts = name.dropLast(ext.count).split(separator: "-")
        guard parts.count >= 4, parts[parts.count - 2] == "of", Int(parts[parts.count - 3]) != nil,
              let n = Int(parts[parts.count - 1]) else { return nil }
        return n
    }
}

// A sharded checkpoint's model.safetensors.index.json, beside two real shards (written once):
// model-00001-of-00002.safetensors holds `a` (f32 [2]), model-00002-of-00002.safetensors `b`
// (u8 [3]). The seeds include the index that matches them. The shards are also kept in
// memory, and read from there (Safetensors.read(file:), as the default reader does after
// mapping them), so an input costs one file, the index.
import CkptCore
@_spi(Fuzzing) import Formats
import FuzzSupport

private func shard(_ header: String, _ data: [UInt8]) -> [UInt8] {
    var h = Array(header.utf8)
    while h.count % 8 != 0 { h.append(0x20) }
    var out: [UInt8] = []
    var n = UInt64(h.count).littleEndian
    withUnsafeBytes(of: &n) { out += $0 }
    return out + h + data
}

/// Shard path -> the shard in memory.
private let shards: [String: MappedFile] = {
    let a = shard(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, [0, 0, 128, 63, 0, 0, 0, 64])
    let b = shard(#"{"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}"#, [1, 2, 3])
    var files: [String: MappedFile] = [:]
    for (name, bytes) in [("model-00001-of-00002.safetensors", a), ("model-00002-of-00002.safetensors", b)] {
        let path = bytes.withUnsafeBytes { Scratch.write($0, name: name) }
        files[path] = bytes.withUnsafeBytes { FuzzHooks.file($0, path: path) }
    }
    return files
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    precondition(shards.count == 2)
    let path = Scratch.write(data, size, name: ShardedSafetensors.indexName)
    let graph = try? ShardedSafetensors.read(indexPath: path) { shard in
        if let file = shards[shard] { return try Safetensors.read(file: file) }
        return try Safetensors.read(path: shard)
    }
    if let graph { readAll(graph) }
    return 0
}

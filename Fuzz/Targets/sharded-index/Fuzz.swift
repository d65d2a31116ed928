// A sharded checkpoint's model.safetensors.index.json, beside two real shards (written once):
// model-00001-of-00002.safetensors holds `a` (f32 [2]), model-00002-of-00002.safetensors `b`
// (u8 [3]). The seeds include the index that matches them.
import CkptCore
import Formats
import FuzzSupport

private func shard(_ header: String, _ data: [UInt8]) -> [UInt8] {
    var h = Array(header.utf8)
    while h.count % 8 != 0 { h.append(0x20) }
    var out: [UInt8] = []
    var n = UInt64(h.count).littleEndian
    withUnsafeBytes(of: &n) { out += $0 }
    return out + h + data
}

private let shardsWritten: Bool = {
    let a = shard(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, [0, 0, 128, 63, 0, 0, 0, 64])
    let b = shard(#"{"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}"#, [1, 2, 3])
    _ = a.withUnsafeBytes { Scratch.write($0, name: "model-00001-of-00002.safetensors") }
    _ = b.withUnsafeBytes { Scratch.write($0, name: "model-00002-of-00002.safetensors") }
    return true
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    precondition(shardsWritten)
    let path = Scratch.write(data, size, name: ShardedSafetensors.indexName)
    if let graph = try? ShardedSafetensors.read(indexPath: path) { readAll(graph) }
    return 0
}

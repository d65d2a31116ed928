// safetensors: writing, byte-identical to the reference crate's `serialize_to_file`.
//
// The crate orders tensors by dtype (descending in its `Dtype` enum, so the widest types
// come first and stay aligned), then by name; the header JSON lists `__metadata__` first
// and then the tensors in data order, compact, with serde_json's string escaping, padded
// with spaces to a multiple of 8 bytes. Data is streamed tensor by tensor into an
// AtomicFile, and each source tensor's pages are released after it is written; a tensor
// still backed by its source file's mapping is copied file to file by the kernel.

import CkptCore
import OrderedCollections

extension Safetensors {
    /// The order the reference writer puts tensors in.
    static func referenceOrder(_ tensors: [Tensor]) -> [Tensor] {
        tensors.sorted { a, b in
            let ra = SafetensorsDType.rank[a.dtype] ?? 0, rb = SafetensorsDType.rank[b.dtype] ?? 0
            if ra != rb { return ra > rb }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
    }

    /// The padded header (without the 8-byte length) for tensors already in file order.
    static func headerBytes(_ tensors: [Tensor], metadata: OrderedDictionary<String, String>) throws(SafetensorsError) -> [UInt8] {
        var object = OrderedDictionary<String, JSONValue>()
        if !metadata.isEmpty {
            object["__metadata__"] = .object(metadata.mapValues { .string($0) })
        }
        var offset = 0
        for t in tensors {
            guard let dtypeName = SafetensorsDType.name(t.dtype) else {
                throw .cannotWrite(tensor: t.name, reason: "dtype \(t.dtype) has no safetensors equivalent")
            }
            object[t.name] = .object([
                "dtype": .string(dtypeName),
                "shape": .array(t.shape.map { .int($0) }),
                "data_offsets": .array([.int(offset), .int(offset + t.byteCount)]),
            ])
            offset += t.byteCount
        }
        var bytes = Array(JSONValue.object(object).serialized().utf8)
        let padded = (bytes.count + 7) / 8 * 8
        bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padded - bytes.count))
        guard bytes.count <= maxHeaderSize else {
            throw .cannotWrite(tensor: tensors.last?.name ?? "", reason: "header would exceed the 100,000,000-byte cap")
        }
        return bytes
    }

    /// Writes `tensors` (any order; the reference order is applied) as one safetensors file.
    static func write(
        _ tensors: [Tensor], metadata: OrderedDictionary<String, String>,
        to path: String, progress: (any ProgressSink)?
    ) throws {
        let ordered = referenceOrder(tensors)
        let header = try headerBytes(ordered, metadata: metadata)
        var file = try AtomicFile(target: path)
        var length = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &length) { (b) throws(IOError) in try file.write(b) }
        try file.write(header)
        for t in ordered {
            if case .external(let e) = t.data, let slice = e as? MappedSlice {
                // Bytes passed through unchanged: copied file to file inside the kernel.
                try slice.withBytes { (b) throws in try file.write(b, copyingFrom: slice.file, offset: slice.offset) }
            } else {
                try t.data.withBytes { (b) throws in try file.write(b) }
            }
            t.data.releaseResidentPages()
            progress?.advance(bytes: t.byteCount)
        }
        try file.commit()
    }

    /// Writes a graph as a single safetensors file. Tied aliases are left out, as Hugging
    /// Face's `save_pretrained` leaves them out; the config's `tie_word_embeddings` restores them.
    public static func write(_ graph: WeightGraph, to path: String, progress: (any ProgressSink)? = nil) throws {
        try write(Array(graph.tensors.values), metadata: graph.metadata, to: path, progress: progress)
    }
}

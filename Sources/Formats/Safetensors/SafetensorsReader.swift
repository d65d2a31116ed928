// safetensors: reading.
//
// Layout (all integers little-endian):
//   u64        N, the header length (capped at 100,000,000 bytes as the reference crate does)
//   N bytes    UTF-8 JSON object, possibly padded with spaces:
//                "__metadata__": {string: string}          (optional)
//                "<name>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
//   data       the tensors' bytes; offsets are relative to the start of this section
//
// The reference crate's rules, all enforced here: offsets sorted by position must tile the
// data section exactly from 0 to its end (no gaps, no overlaps, no trailing bytes); each
// tensor's byte length equals its element count × dtype size, computed with overflow checks;
// names are unique (Foundation and serde would silently keep one of two duplicates).
// Tensors are returned as zero-copy views of a read-only memory mapping.

import CkptCore
import OrderedCollections

public enum Safetensors {
    /// Cap on the header length, from the reference crate (`MAX_HEADER_SIZE`).
    public static let maxHeaderSize = 100_000_000

    struct Entry: Equatable {
        var name: String
        var dtype: DType
        var shape: [Int]
        var begin: UInt64
        var end: UInt64
    }

    struct Header {
        var metadata: OrderedDictionary<String, String>
        /// Sorted by data offsets, validated.
        var entries: [Entry]
        /// Byte offset of the data section in the file (8 + N).
        var dataStart: Int
    }

    /// Parses and validates the header of a whole safetensors file held in `file`.
    static func parseHeader(_ file: UnsafeRawBufferPointer) throws(SafetensorsError) -> Header {
        var c = ByteCursor(file)
        guard let n = c.le(UInt64.self) else { throw .fileTooSmall(size: file.count) }
        guard n <= UInt64(maxHeaderSize) else { throw .headerTooLarge(length: n) }
        guard let headerBytes = c.bytes(Int(n)) else { throw .headerPastEnd(length: n, fileSize: file.count) }
        guard String(validating: headerBytes, as: UTF8.self) != nil else { throw .headerNotUTF8 }

        let json: JSONValue
        do {
            json = try JSONValue.parse(headerBytes)
        } catch {
            if let key = error.duplicateKey { throw .duplicateTensor(key) }
            throw .headerNotJSON(error.description)
        }
        guard let object = json.objectValue else { throw .headerNotObject }

        var metadata = OrderedDictionary<String, String>()
        var entries: [Entry] = []
        entries.reserveCapacity(object.count)
        for (name, value) in object {
            if name == "__metadata__" {
                metadata = try parseMetadata(value)
                continue
            }
            entries.append(try parseEntry(name: name, value))
        }

        // Sorted by position (stable, so zero-size tensors at one offset keep header order).
        let sorted = entries.enumerated().sorted {
            ($0.element.begin, $0.element.end, $0.offset) < ($1.element.begin, $1.element.end, $1.offset)
        }.map(\.element)

        let dataStart = 8 + Int(n)
        let dataSize = file.count - dataStart
        var expected: UInt64 = 0
        for e in sorted {
            guard e.begin == expected, e.end >= e.begin else {
                throw .invalidOffsets(tensor: e.name, begin: e.begin, end: e.end, expectedBegin: expected)
            }
            guard let bytes = e.dtype.byteCount(shape: e.shape) else {
                throw .sizeOverflow(tensor: e.name)
            }
            guard UInt64(bytes) == e.end - e.begin else {
                throw .byteLengthMismatch(tensor: e.name, dtype: SafetensorsDType.name(e.dtype) ?? e.dtype.rawValue,
                                          shape: e.shape, expected: bytes, actual: e.end - e.begin)
            }
            guard e.end <= UInt64(dataSize) else {
                throw .dataPastEnd(tensor: e.name, end: e.end, dataSize: dataSize)
            }
            guard InputLimits.emptyTensorFits(e.shape, fileSize: file.count) else {
                throw .invalidEntry(tensor: e.name, reason: "empty tensor with shape \(e.shape): an empty tensor's dimensions may not exceed the file's size (\(file.count) bytes) or 2^24")
            }
            expected = e.end
        }
        guard expected == UInt64(dataSize) else { throw .trailingBytes(dataEnd: expected, dataSize: dataSize) }
        return Header(metadata: metadata, entries: sorted, dataStart: dataStart)
    }

    private static func parseMetadata(_ value: JSONValue) throws(SafetensorsError) -> OrderedDictionary<String, String> {
        if value == .null { return [:] }
        guard let object = value.objectValue else { throw .invalidMetadata("not an object") }
        var out = OrderedDictionary<String, String>()
        for (k, v) in object {
            guard let s = v.stringValue else { throw .invalidMetadata("value of \"\(k)\" is not a string") }
            out[k] = s
        }
        return out
    }

    private static func parseEntry(name: String, _ value: JSONValue) throws(SafetensorsError) -> Entry {
        guard let info = value.objectValue else { throw .invalidEntry(tensor: name, reason: "entry is not an object") }
        guard let dtypeName = info["dtype"]?.stringValue else {
            throw .invalidEntry(tensor: name, reason: "missing or non-string \"dtype\"")
        }
        guard let dtype = SafetensorsDType.byName[dtypeName] else { throw .unknownDType(tensor: name, dtype: dtypeName) }
        guard let shapeValues = info["shape"]?.arrayValue else {
            throw .invalidEntry(tensor: name, reason: "missing or non-array \"shape\"")
        }
        var shape: [Int] = []
        for d in shapeValues {
            guard case .number(let text) = d else {
                throw .invalidEntry(tensor: name, reason: "shape holds a non-number")
            }
            if text.hasPrefix("-") {
                throw .negativeDimension(tensor: name, shape: shapeValues.map { $0.serialized() })
            }
            guard text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw .invalidEntry(tensor: name, reason: "shape holds a non-integer \(text)")
            }
            guard let v = Int(text) else { throw .sizeOverflow(tensor: name) }
            shape.append(v)
        }
        guard let offsets = info["data_offsets"]?.arrayValue, offsets.count == 2 else {
            throw .invalidEntry(tensor: name, reason: "missing \"data_offsets\" or not two numbers")
        }
        guard let begin = offsets[0].uint64Value, let end = offsets[1].uint64Value else {
            throw .invalidEntry(tensor: name, reason: "data_offsets are not non-negative integers")
        }
        return Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// Opens a safetensors file: the header is parsed and validated, tensors are views of
    /// the file's memory mapping.
    public static func read(path: String) throws -> WeightGraph {
        let file = try MappedFile(path: path)
        return try read(file: file)
    }

    /// The `__metadata__` key under which ckpt carries the model config (Hugging Face
    /// config.json text) in a single-file output; read back into `WeightGraph.config`.
    public static let configKey = "ckpt.hf_config"

    public static func read(file: MappedFile) throws(SafetensorsError) -> WeightGraph {
        let header = try file.withBytes { (b) throws(SafetensorsError) in try parseHeader(b) }
        var graph = WeightGraph()
        graph.metadata = header.metadata
        if let text = graph.metadata.removeValue(forKey: configKey) {
            do { graph.config = try ModelConfig(jsonBytes: Array(text.utf8)) } catch {
                throw .invalidMetadata("\"\(configKey)\" is not a model config: \(error)")
            }
        }
        for e in header.entries {
            let slice = file.slice(offset: header.dataStart + Int(e.begin), count: Int(e.end - e.begin))
            do {
                try graph.add(Tensor(name: e.name, dtype: e.dtype, shape: e.shape, data: .external(slice)))
            } catch {
                // Unreachable after parseHeader's checks; reported rather than trapped.
                throw .invalidEntry(tensor: e.name, reason: error.description)
            }
        }
        return graph
    }
}

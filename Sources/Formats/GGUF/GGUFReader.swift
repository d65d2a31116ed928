// GGUF: reading.
//
// Layout (gguf.h / ggml's docs/gguf.md; all integers little-endian):
//   "GGUF"  u32 version (2 or 3)  u64 tensor_count  u64 kv_count
//   kv_count × { string key; u32 value_type; value }
//       string = u64 length + UTF-8 bytes (no terminator)
//       array  = u32 element_type + u64 count + elements (nested arrays allowed)
//   tensor_count × { string name; u32 n_dims (<= 4); u64 dims[n_dims] (innermost first);
//                    u32 ggml_type; u64 offset (relative to the data section) }
//   padding to `general.alignment` (u32, a power of two; 32 when absent)
//   data section: tensor i at its offset; offset i = offset i−1 + size i−1 rounded up to the
//                 alignment (the padded running total, as llama.cpp's loader demands)
//
// Hardened as llama.cpp was after its 2024 GGUF CVEs: every count and length is checked
// against the bytes that remain before anything is allocated (strings also capped at 1 GiB,
// llama.cpp's cap), nested arrays at most `maxArrayDepth` deep, n_dims <= 4, dims
// non-negative, element count × type size overflow-checked, offsets equal to the padded
// running total, data inside the file and no trailing bytes beyond the final padding,
// alignment a power of two, no duplicate keys or tensor names, valid UTF-8 names.
// Tensors are zero-copy views of a read-only memory mapping.

import CkptCore
import OrderedCollections

public enum GGUF {
    static let magic: [UInt8] = Array("GGUF".utf8)
    /// ggml's GGML_MAX_DIMS.
    public static let maxDims = 4
    /// Arrays of arrays of arrays at most (gguf-py writes nested arrays; llama.cpp none).
    public static let maxArrayDepth = 3
    /// llama.cpp's cap on string and array byte sizes after CVE-2024-25664..25668.
    static let maxStringLength: UInt64 = 1 << 30
    public static let defaultAlignment = 32
    public static let alignmentKey = "general.alignment"

    struct TensorInfo {
        var name: String
        /// Row-major shape (outermost first), converted from GGUF's innermost-first dims.
        var shape: [Int]
        var dtype: DType
        var offset: UInt64
        var byteCount: Int
    }

    struct Header {
        var version: UInt32
        var kvs: OrderedDictionary<String, GGUFValue>
        var tensors: [TensorInfo]
        var alignment: Int
        var dataStart: Int
    }

    // MARK: The one place dims change order

    /// GGUF stores dims innermost first (ggml's ne[0] is the row length); ckpt's shapes are
    /// row-major, outermost first. Every conversion goes through these two functions.
    static func rowMajorShape(ggufDims: [Int]) -> [Int] { Array(ggufDims.reversed()) }
    static func ggufDims(rowMajorShape: [Int]) -> [Int] { Array(rowMajorShape.reversed()) }

    // MARK: Parsing

    /// GGUF's reads: ByteCursor's, each failure a GGUFError naming what was read.
    struct Reader {
        var cursor: ByteCursor
        var pos: Int { cursor.position }
        var remaining: Int { cursor.remaining }

        /// SAFETY: `bytes` is borrowed (see ByteCursor); the reader lives inside its closure.
        init(bytes: UnsafeRawBufferPointer, pos: Int) { cursor = ByteCursor(bytes, position: pos) }

        mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(GGUFError) -> T {
            guard let v = cursor.le(T.self) else {
                throw .truncated(what: what(), needed: UInt64(MemoryLayout<T>.size), remaining: remaining)
            }
            return v
        }

        mutating func string(_ what: @autoclosure () -> String) throws(GGUFError) -> String {
            let n = try load(UInt64.self, what())
            guard n <= GGUF.maxStringLength, n <= UInt64(remaining) else { throw .stringTooLong(what: what(), length: n) }
            // SAFETY of the force-unwrap: n bytes remain (checked just above).
            guard let s = cursor.utf8(Int(n))! else { throw .invalidUTF8(what: what()) }
            return s
        }

        /// A count of items each taking at least `minSize` bytes, checked against the file.
        mutating func count(_ what: String, minSize: Int) throws(GGUFError) -> Int {
            let n = try load(UInt64.self, what)
            let cap = UInt64(remaining / max(1, minSize))
            guard n <= cap else { throw .tooMany(what: what, count: n, cap: cap) }
            return Int(n)
        }

        mutating func value(_ type: GGUFValueType, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
            let what = "metadata `\(key)`"
            switch type {
            case .u8: return .u8(try load(UInt8.self, what))
            case .i8: return .i8(try load(Int8.self, what))
            case .u16: return .u16(try load(UInt16.self, what))
            case .i16: return .i16(try load(Int16.self, what))
            case .u32: return .u32(try load(UInt32.self, what))
            case .i32: return .i32(try load(Int32.self, what))
            case .u64: return .u64(try load(UInt64.self, what))
            case .i64: return .i64(try load(Int64.self, what))
            case .f32: return .f32(Float(bitPattern: try load(UInt32.self, what)))
            case .f64: return .f64(Double(bitPattern: try load(UInt64.self, what)))
            case .bool: return .bool(try load(UInt8.self, what) != 0)
            case .string: return .string(try string(what))
            case .array:
                guard depth < GGUF.maxArrayDepth else { throw .arrayTooDeep(key: key, depth: depth + 1) }
                let raw = try load(UInt32.self, what)
                guard let elementType = GGUFValueType(rawValue: raw) else { throw .unknownValueType(key: key, type: raw) }
                let n = try count("metadata `\(key)`: array", minSize: elementType.minSize)
                var elements: [GGUFValue] = []
                elements.reserveCapacity(n)
                for _ in 0..<n { elements.append(try value(elementType, key: key, depth: depth + 1)) }
                return .array(elementType, elements)
            }
        }
    }

    static func parseHeader(_ file: UnsafeRawBufferPointer) throws(GGUFError) -> Header {
        guard ByteCursor(file).matches(magic, at: 0) else { throw .notGGUF }
        var r = Reader(bytes: file, pos: 4)
        let version = try r.load(UInt32.self, "header")
        if version & 0xFFFF == 0 && version != 0 { throw .bigEndian }  // 0x03000000 read LE
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        // Minimum sizes: a tensor info is >= 8 (name length) + 4 + 4 + 8 bytes; a key/value
        // >= 8 (key length) + 4 (type) + 1 (smallest value).
        let nTensors = try r.count("tensor", minSize: 24)
        let nKV = try r.count("metadata key/value", minSize: 13)

        var kvs = OrderedDictionary<String, GGUFValue>()
        for i in 0..<nKV {
            let key = try r.string("metadata key \(i)")
            let raw = try r.load(UInt32.self, "metadata `\(key)`")
            guard let type = GGUFValueType(rawValue: raw) else { throw .unknownValueType(key: key, type: raw) }
            let v = try r.value(type, key: key, depth: 0)
            guard kvs.updateValue(v, forKey: key) == nil else { throw .duplicateKey(key) }
        }

        var alignment = defaultAlignment
        if let a = kvs[alignmentKey] {
            guard case .u32(let v) = a else { throw .invalidAlignment("must be a u32, found \(a.type.name)") }
            guard v > 0, v & (v - 1) == 0 else { throw .invalidAlignment("\(v) is not a power of two") }
            alignment = Int(v)
        }

        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(nTensors)
        var names = Set<String>()
        var expected: UInt64 = 0
        for i in 0..<nTensors {
            let name = try r.string("tensor \(i) name")
            guard names.insert(name).inserted else { throw .duplicateTensor(name) }
            let nDims = try r.load(UInt32.self, "tensor `\(name)`")
            guard nDims <= UInt32(maxDims) else { throw .tooManyDimensions(tensor: name, count: nDims) }
            var dims: [Int64] = []
            for _ in 0..<Int(nDims) { dims.append(Int64(bitPattern: try r.load(UInt64.self, "tensor `\(name)` dims"))) }
            guard dims.allSatisfy({ $0 >= 0 }) else { throw .negativeDimension(tensor: name, dims: dims) }
            // A tensor with elements is bounded by its bytes in the file (checked below); an
            // empty one ([0, 2^40]) by nothing (InputLimits).
            guard InputLimits.emptyTensorFits(dims.map { Int($0) }, fileSize: file.count) else {
                throw .dimensionPastFile(tensor: name, dims: dims, fileSize: file.count)
            }
            let rawType = try r.load(UInt32.self, "tensor `\(name)` type")
            guard let dtype = dtypeByID[rawType] else {
                if let other = otherTypeNames[rawType] { throw .unsupportedTensorType(tensor: name, type: other) }
                throw .unknownTensorType(tensor: name, type: rawType)
            }
            let offset = try r.load(UInt64.self, "tensor `\(name)` offset")
            let shape = rowMajorShape(ggufDims: dims.map { Int($0) })
            if case .block(let per, _) = dtype.layout, let row = dims.first, row % Int64(per) != 0 {
                throw .rowNotWholeBlocks(tensor: name, rowLength: row, type: dtype.rawValue, blockValues: per)
            }
            // A 0-d tensor (no dims) is a scalar in ggml too; block types need a row.
            guard let bytes = dtype.byteCount(shape: shape) else { throw .sizeOverflow(tensor: name) }
            guard offset == expected else { throw .invalidOffset(tensor: name, offset: offset, expected: expected) }
            let (padded, o1) = UInt64(bytes).addingReportingOverflow(UInt64(alignment - 1))
            let (next, o2) = expected.addingReportingOverflow(padded / UInt64(alignment) * UInt64(alignment))
            guard !o1, !o2 else { throw .sizeOverflow(tensor: name) }
            expected = next
            tensors.append(TensorInfo(name: name, shape: shape, dtype: dtype, offset: offset, byteCount: bytes))
        }

        let headerEnd = r.pos
        let dataStart = (headerEnd + alignment - 1) / alignment * alignment
        // Tensors are views at dataStart + offset: the data section must begin inside the file,
        // even when every tensor is empty (an 83-byte file of one empty tensor and no padding
        // trapped on a view past the end; found by the imatrix fuzz target). A file of no
        // tensors (a vocabulary only) may end with its header.
        if !tensors.isEmpty && dataStart > file.count {
            throw .truncated(what: "the padding before the tensor data", needed: UInt64(dataStart - headerEnd), remaining: file.count - headerEnd)
        }
        let dataSize = max(0, file.count - dataStart)
        var end: UInt64 = 0
        for t in tensors {
            end = t.offset + UInt64(t.byteCount)
            guard end <= UInt64(dataSize) else { throw .dataPastEnd(tensor: t.name, end: end, dataSize: dataSize) }
        }
        // The data may stop at the last tensor's end or carry its padding (gguf-py and
        // llama.cpp write it); anything more is refused, as safetensors refuses trailing data.
        if UInt64(dataSize) > expected { throw .trailingBytes(dataEnd: end, dataSize: dataSize) }
        return Header(version: version, kvs: kvs, tensors: tensors, alignment: alignment, dataStart: dataStart)
    }

    /// Opens a GGUF file: tensors keep their GGUF names (`token_embd.weight`, `blk.0.attn_q.weight`)
    /// and are views of the file's mapping; every key/value goes into the graph's metadata (see
    /// GGUFMetadata); the model config is rebuilt from the keys (GGUFNaming).
    public static func read(path: String) throws -> WeightGraph {
        let file = try MappedFile(path: path)
        return try read(file: file)
    }

    public static func read(file: MappedFile) throws(GGUFError) -> WeightGraph {
        let header = try file.withBytes { (b) throws(GGUFError) in try parseHeader(b) }
        var graph = WeightGraph()
        for t in header.tensors {
            let slice = file.slice(offset: header.dataStart + Int(t.offset), count: t.byteCount)
            do {
                try graph.add(Tensor(name: t.name, dtype: t.dtype, shape: t.shape, data: .external(slice)))
            } catch {
                throw .cannotWrite(tensor: t.name, reason: error.description)  // unreachable after the checks
            }
        }
        GGUFMetadata.store(header.kvs, into: &graph)
        graph.config = GGUFNaming.config(fromKVs: header.kvs, graph: graph)
        return graph
    }
}

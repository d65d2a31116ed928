// Tensor: a named, typed, shaped run of little-endian bytes in C (row-major) order.
//
// The bytes may be owned (in memory), a view into a memory-mapped file, or read lazily from
// the source file when first asked for. Readers hand out mapped or lazy tensors so that
// opening a checkpoint costs only its header, and writers stream tensor by tensor so memory
// stays bounded by the largest tensor.

/// Bytes that live outside the process heap: a memory-mapped region, or a range of a file
/// read on demand. Implemented by the formats' I/O layer.
public protocol ExternalBytes: AnyObject, Sendable {
    var count: Int { get }
    /// Calls `body` with the bytes. For lazy sources this reads them (and can fail).
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
    /// Hint that the bytes are not needed again soon: a mapped region gives its resident
    /// pages back to the kernel, so streaming a large checkpoint does not grow the RSS.
    func releaseResidentPages()
    /// Where the bytes come from, for error messages and `inspect` (e.g. "model.safetensors").
    var origin: String { get }
}

public enum TensorData: Sendable {
    case owned([UInt8])
    case external(any ExternalBytes)

    public var count: Int {
        switch self {
        case .owned(let a): return a.count
        case .external(let e): return e.count
        }
    }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        switch self {
        case .owned(let a): return try a.withUnsafeBytes(body)
        case .external(let e): return try e.withBytes(body)
        }
    }

    /// Copies the bytes into memory.
    public func load() throws -> [UInt8] {
        switch self {
        case .owned(let a): return a
        case .external(let e): return try e.withBytes { Array($0) }
        }
    }

    public func releaseResidentPages() {
        if case .external(let e) = self { e.releaseResidentPages() }
    }

    /// True when both refer to the same storage object (tied weights read from one source).
    public func isSameStorage(as other: TensorData) -> Bool {
        if case .external(let a) = self, case .external(let b) = other { return a === b }
        return false
    }
}

public struct Tensor: Sendable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var data: TensorData

    /// Creates a tensor, checking that the shape and dtype account for exactly the bytes.
    public init(name: String, dtype: DType, shape: [Int], data: TensorData) throws(CoreError) {
        guard CkptCore.elementCount(shape) != nil else {
            throw shape.contains(where: { $0 < 0 })
                ? .negativeDimension(tensor: name, shape: shape)
                : .sizeOverflow(tensor: name, shape: shape, dtype: dtype)
        }
        guard let bytes = dtype.byteCount(shape: shape) else {
            throw .sizeOverflow(tensor: name, shape: shape, dtype: dtype)
        }
        guard bytes == data.count else {
            throw .byteCountMismatch(tensor: name, dtype: dtype, shape: shape, expected: bytes, actual: data.count)
        }
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    public var elementCount: Int { CkptCore.elementCount(shape) ?? 0 }
    public var byteCount: Int { data.count }
}

public enum CoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case negativeDimension(tensor: String, shape: [Int])
    case sizeOverflow(tensor: String, shape: [Int], dtype: DType)
    case byteCountMismatch(tensor: String, dtype: DType, shape: [Int], expected: Int, actual: Int)
    case duplicateTensor(String)
    case unknownTensor(String)
    case invalidConfig(String)

    public var description: String {
        switch self {
        case .negativeDimension(let t, let shape):
            return "tensor `\(t)`: negative dimension in shape \(shape)"
        case .sizeOverflow(let t, let shape, let dtype):
            return "tensor `\(t)`: size of \(dtype) \(shape) overflows, or is not a whole number of bytes (or of blocks per row)"
        case .byteCountMismatch(let t, let dtype, let shape, let expected, let actual):
            return "tensor `\(t)`: \(dtype) \(shape) needs \(expected) bytes, found \(actual)"
        case .duplicateTensor(let t): return "tensor `\(t)`: name appears twice"
        case .unknownTensor(let t): return "tensor `\(t)`: not found"
        case .invalidConfig(let m): return "model config: \(m)"
        }
    }
}

extension Tensor {
    /// The values of an integer or bool tensor (little-endian, sign-extended for the signed
    /// types); nil for other dtypes. u64 values above Int64.max wrap, as a bit pattern.
    public func integerValues() throws -> [Int64]? {
        let signed: [DType: Bool] = [.i64: true, .i32: true, .i16: true, .i8: true,
                                     .u64: false, .u32: false, .u16: false, .u8: false, .bool: false]
        guard let isSigned = signed[dtype], let size = dtype.elementSize else { return nil }
        let bytes = try data.load()
        let shift = UInt64(64 - 8 * size)
        return (0..<elementCount).map { i in
            var v: UInt64 = 0
            for b in 0..<size { v |= UInt64(bytes[i * size + b]) << (8 * UInt64(b)) }
            // Sign-extend from the element's width.
            return isSigned && shift > 0 ? Int64(bitPattern: v << shift) >> Int64(shift) : Int64(bitPattern: v)
        }
    }
}

// Lazy tensor rearrangements used when renaming between Hugging Face and llama.cpp layouts:
// the work happens when a writer (or the forward pass) reads the bytes, one tensor at a time.

import CkptCore
import Quantize

/// Rows of `source` in a new order: output row r is source row `order[r]`. Works for any
/// dtype, block types included (a row is a whole number of blocks).
final class RowPermutedBytes: ExternalBytes {
    let source: Tensor
    let order: [Int]
    var count: Int { source.byteCount }

    init(source: Tensor, order: [Int]) {
        self.source = source
        self.order = order
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let rowBytes = order.isEmpty ? 0 : source.byteCount / order.count
        var out = [UInt8](repeating: 0, count: source.byteCount)
        try source.data.withBytes { src in
            out.withUnsafeMutableBytes { dst in
                for (r, s) in order.enumerated() where rowBytes > 0 {
                    // SAFETY: r, s < order.count rows of rowBytes each, inside both buffers.
                    dst.baseAddress!.advanced(by: r * rowBytes).copyMemory(from: src.baseAddress! + s * rowBytes, byteCount: rowBytes)
                }
            }
        }
        source.data.releaseResidentPages()
        return try out.withUnsafeBytes(body)
    }

    func releaseResidentPages() { source.data.releaseResidentPages() }
    var origin: String { "`\(source.name)` with rows reordered" }
}

/// A 2-D tensor transposed: [a, b] -> [b, a]. Element types of whole bytes; block types are
/// dequantized to f32 first (`dequantize`), since blocks cannot be transposed.
final class TransposedBytes: ExternalBytes {
    let source: Tensor
    let elementSize: Int
    var count: Int { source.elementCount * elementSize }

    init(source: Tensor) {
        self.source = source
        self.elementSize = source.dtype.elementSize ?? 4
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let a = source.shape[0], b = source.shape[1], es = elementSize
        // Empty ([2^40, 0]): nothing to move, and no loop over the untrusted dimensions.
        if count == 0 { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        var out = [UInt8](repeating: 0, count: count)
        if source.dtype.isQuantized {
            let values = try Cast.floats(source) ?? []
            out.withUnsafeMutableBytes { dst in
                for i in 0..<a { for j in 0..<b { dst.storeBytes(of: values[i * b + j].bitPattern.littleEndian, toByteOffset: (j * a + i) * 4, as: UInt32.self) } }
            }
        } else {
            try source.data.withBytes { src in
                out.withUnsafeMutableBytes { dst in
                    for i in 0..<a {
                        for j in 0..<b {
                            // SAFETY: (i, j) < (a, b); both buffers hold a·b elements of es bytes.
                            (dst.baseAddress! + (j * a + i) * es).copyMemory(from: src.baseAddress! + (i * b + j) * es, byteCount: es)
                        }
                    }
                }
            }
        }
        source.data.releaseResidentPages()
        return try out.withUnsafeBytes(body)
    }

    func releaseResidentPages() { source.data.releaseResidentPages() }
    var origin: String { "`\(source.name)` transposed" }
}

/// Tensors of one dtype and shape stacked along a new first dimension (a layer's experts as
/// llama.cpp's `ffn_*_exps`): the bytes one after another, block types included. Only the
/// stacked tensor is in memory while it is written.
final class StackedBytes: ExternalBytes {
    let parts: [Tensor]
    let count: Int

    init(parts: [Tensor]) {
        self.parts = parts
        self.count = parts.reduce(0) { $0 + $1.byteCount }
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        var out = [UInt8]()
        out.reserveCapacity(count)
        for t in parts {
            try t.data.withBytes { out.append(contentsOf: $0) }
            t.data.releaseResidentPages()
        }
        return try out.withUnsafeBytes(body)
    }

    func releaseResidentPages() { for t in parts { t.data.releaseResidentPages() } }
    var origin: String { "\(parts.count) tensors stacked (`\(parts.first?.name ?? "")` ...)" }
}

/// One slice of a stacked tensor: bytes offset..<offset+count of the source, no copy.
final class SlicedBytes: ExternalBytes {
    let source: Tensor
    let offset: Int
    let count: Int

    init(source: Tensor, offset: Int, count: Int) {
        self.source = source
        self.offset = offset
        self.count = count
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try source.data.withBytes { all in
            // SAFETY: the caller checked offset + count <= the source's byte count.
            try body(UnsafeRawBufferPointer(rebasing: all[offset..<(offset + count)]))
        }
    }

    func releaseResidentPages() { source.data.releaseResidentPages() }
    var origin: String { "`\(source.name)` bytes \(offset)..<\(offset + count)" }
}

/// A block-quantized tensor as f32 values.
final class DequantizedBytes: ExternalBytes {
    let source: Tensor
    var count: Int { source.elementCount * 4 }

    init(source: Tensor) { self.source = source }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let values = try Cast.floats(source) ?? []
        source.data.releaseResidentPages()
        return try values.withUnsafeBytes(body)
    }

    func releaseResidentPages() { source.data.releaseResidentPages() }
    var origin: String { "`\(source.name)` dequantized" }
}

extension Tensor {
    /// This tensor as f32 (lazily), if it is block-quantized; itself otherwise.
    public func dequantizedLazily() throws -> Tensor {
        guard dtype.isQuantized else { return self }
        return try Tensor(name: name, dtype: .f32, shape: shape, data: .external(DequantizedBytes(source: self)))
    }
}

/// The first `n` rows of `source` dropped (`drop`), or `n` zero rows put before it (the
/// inverse): RoBERTa's position table, whose rows up to its padding id llama.cpp does not
/// have. Works for any dtype, block types included: an all-zero block decodes to zeros.
final class LeadingRowsBytes: ExternalBytes {
    let source: Tensor
    let rows: Int
    let n: Int
    let drop: Bool
    let rowBytes: Int
    var count: Int { drop ? source.byteCount - n * rowBytes : source.byteCount + n * rowBytes }

    init(source: Tensor, rows: Int, n: Int, drop: Bool) {
        self.source = source
        self.rows = rows
        self.n = n
        self.drop = drop
        self.rowBytes = rows > 0 ? source.byteCount / rows : 0
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let result = try source.data.withBytes { src -> R in
            if drop { return try body(UnsafeRawBufferPointer(rebasing: src[(n * rowBytes)...])) }
            var out = [UInt8](repeating: 0, count: count)
            out.withUnsafeMutableBytes { dst in
                if src.count > 0 { dst.baseAddress!.advanced(by: n * rowBytes).copyMemory(from: src.baseAddress!, byteCount: src.count) }
            }
            return try out.withUnsafeBytes(body)
        }
        source.data.releaseResidentPages()
        return result
    }

    func releaseResidentPages() { source.data.releaseResidentPages() }
    var origin: String { "`\(source.name)` with \(n) leading rows \(drop ? "dropped" : "restored as zeros")" }
}

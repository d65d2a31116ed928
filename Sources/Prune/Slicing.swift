// Byte-level selection of rows/columns and zeroing of elements, for any whole-byte element
// dtype (f32, f16, bf16, f64, integers): pruning moves values, it never re-rounds them.

import CkptCore

enum Slicing {
    /// The tensor with only the units `keep` (sorted, unique indices into one block) along
    /// `axis`, in each of `blocks` equal blocks of that axis.
    static func select(_ t: Tensor, axis: Int, blocks: Int, keep: [Int]) throws -> Tensor {
        let dims = t.shape.count == 1 ? [t.shape[0], 1] : t.shape
        guard dims.count == 2 else { throw PruneError.invalid("tensor `\(t.name)`: expected 1-D or 2-D, got \(t.shape)") }
        let along = axis == 0 ? dims[0] : dims[1]
        guard along % blocks == 0 else { throw PruneError.invalid("tensor `\(t.name)`: axis \(axis) of \(along) is not \(blocks) equal blocks") }
        let block = along / blocks
        guard keep.allSatisfy({ $0 >= 0 && $0 < block }) else {
            throw PruneError.invalid("tensor `\(t.name)`: unit index out of range 0..<\(block)")
        }
        return try take(t, axis: axis, lines: (0..<blocks).flatMap { b in keep.map { b * block + $0 } })
    }

    /// The tensor with only `lines` (indices along `axis`, in this order) kept.
    static func take(_ t: Tensor, axis: Int, lines: [Int]) throws -> Tensor {
        guard let e = t.dtype.elementSize else { throw PruneError.unsupportedDType(tensor: t.name, dtype: t.dtype) }
        let dims = t.shape.count == 1 ? [t.shape[0], 1] : t.shape
        guard dims.count == 2 else { throw PruneError.invalid("tensor `\(t.name)`: expected 1-D or 2-D, got \(t.shape)") }
        let (rows, cols) = (dims[0], dims[1])
        let along = axis == 0 ? rows : cols
        guard lines.allSatisfy({ $0 >= 0 && $0 < along }) else {
            throw PruneError.invalid("tensor `\(t.name)`: unit index out of range 0..<\(along) on axis \(axis)")
        }
        let bytes = try t.data.load()
        var out = [UInt8]()
        if axis == 0 {
            out.reserveCapacity(lines.count * cols * e)
            for r in lines { out += bytes[r * cols * e..<(r + 1) * cols * e] }
        } else {
            out.reserveCapacity(rows * lines.count * e)
            for r in 0..<rows { for c in lines { out += bytes[(r * cols + c) * e..<(r * cols + c + 1) * e] } }
        }
        var shape = t.shape
        shape[t.shape.count == 1 ? 0 : axis] = lines.count
        return try Tensor(name: t.name, dtype: t.dtype, shape: shape, data: .owned(out))
    }

    /// The tensor with the elements at `mask[i] == true` set to zero (all-zero bits is +0 in
    /// every float dtype and 0 in every integer dtype).
    static func zeroing(_ t: Tensor, mask: [Bool]) throws -> Tensor {
        guard let e = t.dtype.elementSize else { throw PruneError.unsupportedDType(tensor: t.name, dtype: t.dtype) }
        var bytes = try t.data.load()
        bytes.withUnsafeMutableBytes { b in
            for (i, z) in mask.enumerated() where z { for k in 0..<e { b[i * e + k] = 0 } }
        }
        return try Tensor(name: t.name, dtype: t.dtype, shape: t.shape, data: .owned(bytes))
    }
}

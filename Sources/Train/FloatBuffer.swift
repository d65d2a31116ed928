// FloatBuffer: one heap allocation of f32 that the training kernels read and write through raw
// pointers, llm.c-style (a forward/backward pass over Swift arrays would need a closure per
// buffer per kernel call). This file and TrainKernels.swift are the only places that touch
// the pointers.
//
// SAFETY (for every use of `p` in this module): `p` points at `count` initialised floats that
// live exactly as long as the FloatBuffer; kernels are called synchronously by the object that
// holds the buffer (a model, its activations, the optimiser), so the pointer never outlives it,
// and every kernel's comment gives the shape it indexes, which the caller sized the buffer for.

final class FloatBuffer {
    let p: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int) {
        precondition(count >= 0, "FloatBuffer: negative size")
        self.count = count
        p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
    }

    convenience init(_ values: [Float]) {
        self.init(count: values.count)
        // SAFETY: `values` has exactly `count` elements and `p` room for them.
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { p.update(from: base, count: count) }
        }
    }

    deinit { p.deallocate() }

    var array: [Float] { Array(UnsafeBufferPointer(start: p, count: count)) }

    /// `n` floats starting at `offset`, copied out.
    func slice(_ offset: Int, _ n: Int) -> [Float] {
        precondition(offset >= 0 && n >= 0 && offset + n <= count, "FloatBuffer: slice out of range")
        return Array(UnsafeBufferPointer(start: p + offset, count: n))
    }

    func zero() { p.update(repeating: 0, count: count) }

    func copy(from other: FloatBuffer) {
        precondition(other.count == count, "FloatBuffer: copy between different sizes")
        p.update(from: other.p, count: count)
    }

    subscript(i: Int) -> Float {
        get { precondition(i >= 0 && i < count); return p[i] }
        set { precondition(i >= 0 && i < count); p[i] = newValue }
    }
}

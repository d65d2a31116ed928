// StridedBytes: a non-contiguous tensor view (a transpose, a strided slice, an expand)
// materialised contiguously, on demand.
//
// Nothing is copied when the checkpoint is opened; `withBytes` gathers the elements in
// row-major order into a fresh buffer, one innermost run at a time (a single memcpy per run
// when the innermost stride is 1, element by element otherwise). The view was checked
// against its storage when the file was opened (PyTorch.checkView); each run is checked
// again here before memory is touched, so a bug elsewhere ends in an error, not a wild read.

import CkptCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class StridedBytes: ExternalBytes, @unchecked Sendable {
    let storage: MappedSlice
    let name: String
    let elementSize: Int
    let offset: Int
    let shape: [Int]
    let stride: [Int]
    let count: Int

    init(storage: MappedSlice, name: String, elementSize: Int, offset: Int, shape: [Int], stride: [Int], count: Int) {
        self.storage = storage
        self.name = name
        self.elementSize = elementSize
        self.offset = offset
        self.shape = shape
        self.stride = stride
        self.count = count
    }

    var origin: String { storage.origin }

    func releaseResidentPages() { storage.releaseResidentPages() }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        var out = [UInt8](repeating: 0, count: count)
        try storage.withBytes { src in
            try out.withUnsafeMutableBytes { dst in try gather(from: src, into: dst) }
        }
        return try out.withUnsafeBytes(body)
    }

    /// Copies the view's elements in row-major order from `src` (the whole storage) to `dst`.
    private func gather(from src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws {
        let e = elementSize
        guard count > 0, let inner = shape.last, let innerStride = stride.last else {
            // A 0-d tensor is one element at the offset.
            if shape.isEmpty, count == e {
                guard offset * e + e <= src.count else { throw outside() }
                // SAFETY: offset·e + e ≤ src.count checked above; dst holds e bytes.
                dst.baseAddress!.copyMemory(from: src.baseAddress! + offset * e, byteCount: e)
            }
            return
        }
        let outer = Array(shape.dropLast()), outerStride = Array(stride.dropLast())
        var index = [Int](repeating: 0, count: outer.count)
        var start = offset  // element index in the storage of the current run's first element
        var written = 0
        let runBytes = inner * e
        let runSpan = (inner - 1) * innerStride + 1  // elements a run covers in the storage
        while written < count {
            guard start >= 0, (start + runSpan) * e <= src.count, written + runBytes <= dst.count else { throw outside() }
            if innerStride == 1 {
                // SAFETY: the run's source bytes start·e..<(start+inner)·e and destination
                // bytes written..<written+runBytes were checked just above.
                dst.baseAddress!.advanced(by: written).copyMemory(from: src.baseAddress! + start * e, byteCount: runBytes)
            } else {
                for i in 0..<inner {
                    // SAFETY: element start + i·innerStride lies inside the run checked above.
                    (dst.baseAddress! + written + i * e).copyMemory(from: src.baseAddress! + (start + i * innerStride) * e, byteCount: e)
                }
            }
            written += runBytes
            // Advance the outer index like an odometer, updating the run's start.
            var d = outer.count - 1
            while d >= 0 {
                index[d] += 1
                start += outerStride[d]
                if index[d] < outer[d] { break }
                start -= outerStride[d] * outer[d]
                index[d] = 0
                d -= 1
            }
            if d < 0 { break }
        }
    }

    private func outside() -> PyTorchError {
        .badTensor(tensor: name, reason: "strided view reaches outside its storage")
    }
}

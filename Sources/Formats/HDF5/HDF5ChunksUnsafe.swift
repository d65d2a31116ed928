// HDF5: compressing a dataset's chunks on all cores and storing them with H5Dwrite_chunk.
//
// What libhdf5 would do for a dataset with the shuffle and deflate filters, done here in
// parallel: each chunk is gathered from the tensor's row-major bytes (edge chunks padded
// with zeros to the full chunk size, as libhdf5 pads them), byte-shuffled as
// H5Z_FILTER_SHUFFLE does (byte j of element i to position j·n + i), and compressed to a
// zlib stream (H5Z_FILTER_DEFLATE stores zlib's format) by libdeflate. Batches of chunks
// are compressed into per-chunk slots by `jobs` threads, then written in chunk order by one
// thread holding the libhdf5 lock, so the file is the same for any thread count. A filter
// mask of 0 says every filter of the pipeline was applied.

import CDeflate
import CHDF5
import CKernels
import CkptCore

enum ChunkWriter {
    /// Raw bytes compressed per parallel batch (bounds the memory held in compressed slots).
    static let batchBytes = 64 << 20

    static func write(_ src: UnsafeRawBufferPointer, dataset: hid_t, shape: [Int], chunk: [Int], elementSize: Int,
                      level: Int, jobs: Int, context: String) throws(HDF5Error) {
        let rank = shape.count
        let grid = zip(shape, chunk).map { ($0 + $1 - 1) / $1 }
        let total = grid.reduce(1, *)
        let chunkElements = chunk.reduce(1, *)
        let chunkBytes = chunkElements * elementSize
        // Row-major strides of the source, in elements.
        var strides = [Int](repeating: 1, count: rank)
        for d in stride(from: rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        let perBatch = max(jobs, batchBytes / max(chunkBytes, 1))

        func coordinates(_ index: Int) -> [Int] {
            var c = [Int](repeating: 0, count: rank)
            var rest = index
            for d in stride(from: rank - 1, through: 0, by: -1) {
                c[d] = (rest % grid[d]) * chunk[d]
                rest /= grid[d]
            }
            return c
        }

        var start = 0
        while start < total {
            let count = min(perBatch, total - start)
            let slots = Slots<[UInt8]>(count: count)
            let slices = max(1, min(jobs, count))
            let batchStart = start
            Parallel.forEach(slices, jobs: slices) { s in
                guard let compressor = libdeflate_alloc_compressor(Int32(level)) else { return }
                defer { libdeflate_free_compressor(compressor) }
                let gathered = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 64)
                let shuffled = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 64)
                defer { gathered.deallocate(); shuffled.deallocate() }
                let bound = libdeflate_zlib_compress_bound(compressor, chunkBytes)
                for k in (s * count / slices)..<((s + 1) * count / slices) {
                    let origin = coordinates(batchStart + k)
                    gather(src, origin: origin, shape: shape, chunk: chunk, strides: strides, elementSize: elementSize, into: gathered)
                    var input = UnsafeRawBufferPointer(gathered)
                    if elementSize > 1 {
                        // SAFETY: both buffers hold chunkBytes = chunkElements × elementSize.
                        ck_shuffle(gathered.baseAddress!.assumingMemoryBound(to: UInt8.self), chunkElements, elementSize,
                                   shuffled.baseAddress!.assumingMemoryBound(to: UInt8.self))
                        input = UnsafeRawBufferPointer(shuffled)
                    }
                    var out = [UInt8](repeating: 0, count: bound)
                    // SAFETY: libdeflate reads input.count bytes and writes at most out.count.
                    let n = out.withUnsafeMutableBytes {
                        libdeflate_zlib_compress(compressor, input.baseAddress, input.count, $0.baseAddress, $0.count)
                    }
                    guard n > 0 else { continue }  // cannot happen with the bound; reported below
                    out.removeLast(out.count - n)
                    slots[k] = out
                }
            }
            for k in 0..<count {
                guard let bytes = slots[k] else {
                    throw HDF5Error.library(context: "\(context): compressing a chunk", message: "libdeflate failed (out of memory?)")
                }
                var offset = coordinates(batchStart + k).map { hsize_t($0) }
                let status = bytes.withUnsafeBytes {
                    H5Dwrite_chunk(dataset, chdf5_p_default(), 0, &offset, $0.count, $0.baseAddress)
                }
                try H5.check(status, context)
            }
            start += count
        }
    }

    /// Copies the chunk at `origin` out of the row-major source into `out` (chunk-shaped,
    /// row-major); the parts of an edge chunk outside the dataset are zero.
    static func gather(_ src: UnsafeRawBufferPointer, origin: [Int], shape: [Int], chunk: [Int], strides: [Int],
                       elementSize: Int, into out: UnsafeMutableRawBufferPointer) {
        let rank = shape.count
        let last = rank - 1
        let run = min(chunk[last], shape[last] - origin[last]) * elementSize
        let rowBytes = chunk[last] * elementSize
        let full = zip(zip(origin, chunk), shape).allSatisfy { $0.0 + $0.1 <= $1 }
        if !full { out.initializeMemory(as: UInt8.self, repeating: 0) }
        // Walk every row (index over dims 0..<last) of the chunk that lies inside the dataset.
        var index = [Int](repeating: 0, count: max(last, 0))
        var row = 0
        while true {
            var inside = true
            var srcElement = origin[last]
            for d in 0..<last {
                let c = origin[d] + index[d]
                if c >= shape[d] { inside = false; break }
                srcElement += c * strides[d]
            }
            if inside {
                // SAFETY: the source row segment [srcElement, +run/elementSize) lies inside the
                // tensor (c < shape[d] for every outer dim, and run stops at the last dim's end);
                // the destination row `row` lies inside the chunk buffer.
                (out.baseAddress! + row * rowBytes).copyMemory(from: src.baseAddress! + srcElement * elementSize, byteCount: run)
            }
            row += 1
            var d = last - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < chunk[d] { break }
                index[d] = 0
                d -= 1
            }
            if d < 0 { break }
        }
    }
}

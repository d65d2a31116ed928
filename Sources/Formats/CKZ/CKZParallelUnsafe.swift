// Data-parallel helpers for .ckz: coarse slices over chunks, each result written to its own
// preallocated slot, so the output never depends on how many threads ran or in which order
// they finished (STYLE.md, "Concurrency and determinism").

import CkptCore
import Dispatch
import Foundation

/// One result slot per work item. Each slot is written by exactly one iteration of
/// `Parallel.forEach`, and read only after it returns.
final class Slots<T>: @unchecked Sendable {
    private let buffer: UnsafeMutableBufferPointer<T?>
    init(count: Int) {
        buffer = .allocate(capacity: count)
        buffer.initialize(repeating: nil)
    }
    deinit {
        buffer.deinitialize()
        buffer.deallocate()
    }
    var count: Int { buffer.count }
    // SAFETY: distinct indices are distinct memory; `Parallel.forEach` gives every index to
    // exactly one slice, and nothing reads a slot until every slice has finished.
    subscript(i: Int) -> T? {
        get { buffer[i] }
        set { buffer[i] = newValue }
    }
}

enum Parallel {
    /// Runs `body(i)` for every i in 0..<count on up to `jobs` threads, as `jobs` contiguous
    /// slices (coarse: 1 MiB chunks are the finest unit handed out).
    static func forEach(_ count: Int, jobs: Int, _ body: (Int) -> Void) {
        let slices = max(1, min(jobs, count))
        if slices == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: slices) { s in
                let lo = s * count / slices, hi = (s + 1) * count / slices
                for i in lo..<hi { box.value(i) }
            }
        }
    }
}

/// Carries a non-Sendable closure into `concurrentPerform`. The closures given to
/// `Parallel.forEach` only write their own `Slots` entries and read shared immutable data.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Raw bytes of several tensors at once (nested `withBytes`), so one parallel pass can
/// compress chunks from many small tensors.
func withBytesOfAll<R>(_ tensors: ArraySlice<Tensor>, _ body: ([UnsafeRawBufferPointer]) throws -> R) throws -> R {
    var collected: [UnsafeRawBufferPointer] = []
    collected.reserveCapacity(tensors.count)
    func nest(_ rest: ArraySlice<Tensor>) throws -> R {
        guard let first = rest.first else { return try body(collected) }
        // SAFETY: each pointer is used only inside `body`, which runs while every enclosing
        // `withBytes` call, and so every buffer, is still alive.
        return try first.data.withBytes { b in
            collected.append(b)
            return try nest(rest.dropFirst())
        }
    }
    return try nest(tensors)
}

/// A 64-byte-aligned heap buffer freed on deinit.
final class AlignedBuffer: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
    init(count: Int) {
        bytes = .allocate(byteCount: max(count, 1), alignment: CKZ.alignment)
    }
    deinit { bytes.deallocate() }
    var count: Int { bytes.count }
    // SAFETY: callers write disjoint ranges from different threads (one chunk each).
    func range(_ offset: Int, _ count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }
}

/// A few AlignedBuffers kept for reuse (the smallest that fits is handed out). Holds at most
/// `limit` idle buffers; a buffer in use belongs to its taker alone until given back.
final class BufferPool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [AlignedBuffer] = []
    private let limit = 4

    func take(_ count: Int) -> AlignedBuffer {
        lock.withLock {
            var best: Int?
            for (i, b) in idle.enumerated() where b.count >= count && (best == nil || b.count < idle[best!].count) { best = i }
            if let best { return idle.remove(at: best) }
            return AlignedBuffer(count: count)
        }
    }

    func give(_ buffer: AlignedBuffer) {
        lock.withLock {
            idle.append(buffer)
            if idle.count > limit, let i = idle.indices.min(by: { idle[$0].count < idle[$1].count }) { idle.remove(at: i) }
        }
    }
}

// The C kernels' SIMD switch (CKPT_NO_SIMD's): tests run a kernel both ways and compare.

import CKernels

/// Runs `body` with the SIMD paths off, then on (where the CPU has them).
public func withBothPaths<T>(_ body: () throws -> T) rethrows -> (scalar: T, simd: T) {
    let was = ck_simd_enabled()
    defer { ck_set_simd(was) }
    ck_set_simd(0)
    let scalar = try body()
    ck_set_simd(1)
    return (scalar, try body())
}

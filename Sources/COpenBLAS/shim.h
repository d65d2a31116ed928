// COpenBLAS: OpenBLAS's CBLAS interface (Debian libopenblas-dev, `pkg-config openblas`).
#ifndef CKPT_COPENBLAS_SHIM_H
#define CKPT_COPENBLAS_SHIM_H
#include <cblas.h>

// OpenBLAS picks its kernels ("core") when the library loads, from the CPU's identity. On
// virtual CPUs it may not recognise the model and fall back to a pre-AVX core (Prescott),
// several times slower. These two exported functions of a DYNAMIC_ARCH build let ckpt redo
// the choice with OPENBLAS_CORETYPE set (see Sources/Transformer/BLAS.swift).
void gotoblas_dynamic_init(void);
void gotoblas_dynamic_quit(void);

// Stops OpenBLAS's worker threads; the next threaded BLAS call starts them again. The pthread
// build starts its workers when the library loads, and each busy-waits (sched_yield) for
// about 2^28 cycles before sleeping: ~0.1 s of CPU in every ckpt process, BLAS or not.
int blas_thread_shutdown_(void);

#if defined(__x86_64__)
#include <cpuid.h>
// Bit 0: AVX2 + FMA usable; bit 1: AVX-512 F/CD/BW/DQ/VL usable (CPU and OS both enable them).
static inline int ckpt_cpu_vector_features(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return 0;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    int ymm = (xlo & 0x6) == 0x6, zmm = (xlo & 0xE6) == 0xE6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = (b >> 5) & 1;
    int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 28) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);
    return (ymm && avx2 && fma ? 1 : 0) | (zmm && avx512 ? 2 : 0);
}
#else
static inline int ckpt_cpu_vector_features(void) { return 0; }
#endif

#endif

// OpenBLAS set-up: make sure the matrix kernels match the CPU.
//
// Debian's OpenBLAS is a DYNAMIC_ARCH build that chooses its kernels when it loads, from the
// CPU model. On virtual machines whose CPU model it does not know it falls back to "Prescott"
// (SSE3): on this project's machines sgemm then runs at ~11 GFLOP/s instead of ~80 with the
// SkylakeX (AVX-512) kernels (measured, BENCHMARKS.md). When the user has not chosen a core
// with OPENBLAS_CORETYPE and the detected one predates AVX2 although the CPU and OS support
// AVX2/AVX-512, ckpt sets OPENBLAS_CORETYPE to the matching core and re-runs OpenBLAS's core
// selection, before the first BLAS call. The forward-pass tests check the results either way.

import COpenBLAS
import Foundation

public enum BLAS {
    /// Cores OpenBLAS may fall back to whose kernels use neither AVX2 nor AVX-512.
    static let preAVX2Cores: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
                                            "sandybridge", "unknown", "katmai", "coppermine", "northwood", "banias"]

    /// The core OpenBLAS uses, after the check (e.g. "SkylakeX"). Evaluated once.
    public static let core: String = {
        let detected = String(cString: openblas_get_corename())
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
              preAVX2Cores.contains(detected.lowercased()) else { return detected }
        let features = ckpt_cpu_vector_features()
        let better = features & 2 != 0 ? "SKYLAKEX" : features & 1 != 0 ? "HASWELL" : nil
        guard let better else { return detected }
        setenv("OPENBLAS_CORETYPE", better, 1)
        gotoblas_dynamic_quit()
        gotoblas_dynamic_init()
        return String(cString: openblas_get_corename())
    }()
}

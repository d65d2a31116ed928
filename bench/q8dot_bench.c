// Kernel microbenchmark (not built by SwiftPM): the integer product of CKernels/dot.c (Q8_0,
// or another type with a fourth argument) against widening the same matrix to f32 and
// multiplying with OpenBLAS's sgemm, one thread, thread CPU time (so a loaded machine slows
// both alike). Random bytes as weights (scales set to 2^-7 so the values stay finite).
//
//   cc -O2 -ISources/CKernels/include bench/q8dot_bench.c Sources/CKernels/dot.c \
//      Sources/CKernels/ckz.c -lopenblas -lm -o /tmp/q8dot_bench
//   OPENBLAS_NUM_THREADS=1 /tmp/q8dot_bench 2048 2048 128 [q8_0|q4_0|q4_1|q5_0|q5_1|q3_k|q4_k|q5_k|q6_k]  # rows, width, tokens
//   CKPT_Q8_PATH=avx2 ... (or scalar) forces a path
#include "ckdot.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s rows width tokens\n", argv[0]); return 2; }
    size_t R = strtoul(argv[1], 0, 10), K = strtoul(argv[2], 0, 10), T = strtoul(argv[3], 0, 10), nb = K / 32;
    const char *name = argc > 4 ? argv[4] : "q8_0";
    int type = strcmp(name, "q4_0") == 0 ? CK_DOT_Q4_0 : strcmp(name, "q4_k") == 0 ? CK_DOT_Q4_K
             : strcmp(name, "q4_1") == 0 ? CK_DOT_Q4_1 : strcmp(name, "q5_0") == 0 ? CK_DOT_Q5_0
             : strcmp(name, "q5_1") == 0 ? CK_DOT_Q5_1 : strcmp(name, "q3_k") == 0 ? CK_DOT_Q3_K : strcmp(name, "q5_k") == 0 ? CK_DOT_Q5_K : strcmp(name, "q6_k") == 0 ? CK_DOT_Q6_K : CK_DOT_Q8_0;
    size_t rb = ck_dot_row_bytes(type, K);
    size_t bs = type == CK_DOT_Q4_1 ? 20 : type == CK_DOT_Q5_0 ? 22 : type == CK_DOT_Q5_1 ? 24 : type == CK_DOT_Q3_K ? 110 : type == CK_DOT_Q6_K ? 210 : type == CK_DOT_Q5_K ? 176 : type == CK_DOT_Q4_K ? 144 : type == CK_DOT_Q4_0 ? 18 : 34, dAt = type == CK_DOT_Q6_K ? 208 : type == CK_DOT_Q3_K ? 108 : 0;
    uint8_t *w = malloc(R * rb);
    srand(1);
    for (size_t i = 0; i < R * rb; i++) w[i] = (uint8_t)rand();
    for (size_t i = 0; i < R * rb / bs; i++) {  // d (and Q4_K's dmin) = 2^-7
        w[i * bs + dAt] = 0; w[i * bs + dAt + 1] = 0x20;
        if (type == CK_DOT_Q4_K || type == CK_DOT_Q5_K || type == CK_DOT_Q4_1 || type == CK_DOT_Q5_1) { w[i * bs + 2] = 0; w[i * bs + 3] = 0x20; }
    }
    float *x = malloc(T * K * 4), *wf = malloc(R * K * 4), *o = calloc(T * R, 4), *o2 = calloc(T * R, 4);
    for (size_t i = 0; i < T * K; i++) x[i] = (float)(rand() % 2001 - 1000) * 1e-3f;
    size_t kp = ck_q8_act_stride(K);
    uint8_t *qa = malloc(T * kp);
    float *da = malloc(T * kp / 32 * 4), *sa = malloc(T * kp / 32 * 4);
    double macs = (double)R * K * T;
    printf("rows %zu, width %zu, tokens %zu; path %d (2 VNNI, 1 AVX2, 0 scalar)\n", R, K, T, ck_q8_dot_path());
    for (int rep = 0; rep < 3; rep++) {
        double t0 = cpu();
        ck_q8_act_quantize(x, T, K, qa, da, sa);
        ck_dot_matmul(type, w, K, 0, R, qa, da, sa, T, o, R);
        double t1 = cpu();
        for (size_t r = 0; r < R; r++)  // the widening's cost for Q8_0 (Q4 types: comparable work)
            for (size_t b = 0; b < nb; b++) {
                const uint8_t *blk = w + r * rb + (b * bs) % rb;
                for (int i = 0; i < 32; i++) wf[r * K + b * 32 + i] = (float)(int8_t)blk[2 + i % (bs - 2)] * 0x1p-7f;
            }
        double t2 = cpu();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)R, (int)K, 1, x, (int)K, wf, (int)K, 0, o2, (int)R);
        double t3 = cpu();
        printf("integer %.4f s (%.1f GMAC/s) | widen %.4f s + sgemm %.4f s (%.1f GMAC/s) | integer / f32 speed %.2fx\n",
               t1 - t0, macs / (t1 - t0) / 1e9, t2 - t1, t3 - t2, macs / (t3 - t2) / 1e9, (t3 - t1) / (t1 - t0));
    }
    return 0;
}

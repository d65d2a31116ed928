// Dev and benchmark harness: runs ggml's C reference quantizers (quantize_row_*_ref) on a raw f32
// file. Built by bench/quantize_bench.py against ggml's sources fetched into /tmp (never
// committed here): `harness TYPE IN.f32 OUT.bin [REPEATS]`. Also what CKPT_GGML_REF points at
// for the k-quant byte-equality test (Tests/QuantizeTests/KQuantTests.swift).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include "ggml.h"
#include "ggml-quants.h"
float ggml_table_f32_f16[1 << 16];
void ggml_abort(const char *file, int line, const char *fmt, ...) { fprintf(stderr, "abort %s:%d\n", file, line); abort(); }
size_t ggml_row_size(enum ggml_type t, int64_t ne) { return 0; }
const char * ggml_type_name(enum ggml_type t) { return "?"; }
size_t ggml_type_size(enum ggml_type t) { return 0; }
static float h2f(uint16_t h) {
    uint32_t s = (h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, b;
    if (e == 0x1f) b = s | 0x7f800000 | (m << 13);
    else if (e == 0) { if (!m) b = s; else { e = 113; while (!(m & 0x400)) { m <<= 1; e--; } b = s | (e << 23) | ((m & 0x3ff) << 13); } }
    else b = s | ((e + 112) << 23) | (m << 13);
    float f; memcpy(&f, &b, 4); return f;
}
int main(int argc, char **argv) {
    for (int i = 0; i < 65536; i++) ggml_table_f32_f16[i] = h2f(i);
    const char *type = argv[1];
    FILE *f = fopen(argv[2], "rb"); fseek(f, 0, SEEK_END); long n = ftell(f) / 4; fseek(f, 0, SEEK_SET);
    float *x = malloc(n * 4); fread(x, 4, n, f); fclose(f);
    void *y = malloc(n * 2 + 1024);
    int reps = argc > 4 ? atoi(argv[4]) : 1;
    size_t size = 0;
    struct timespec t0, t1;
    double times[64]; if (reps > 64) reps = 64;
    for (int r = 0; r < reps; r++) {
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
      if (!strcmp(type, "q8_0")) { quantize_row_q8_0_ref(x, y, n); size = n / 32 * 34; }
      else if (!strcmp(type, "q4_0")) { quantize_row_q4_0_ref(x, y, n); size = n / 32 * 18; }
      else if (!strcmp(type, "q4_1")) { quantize_row_q4_1_ref(x, y, n); size = n / 32 * 20; }
      else if (!strcmp(type, "q5_0")) { quantize_row_q5_0_ref(x, y, n); size = n / 32 * 22; }
      else if (!strcmp(type, "q5_1")) { quantize_row_q5_1_ref(x, y, n); size = n / 32 * 24; }
      else if (!strcmp(type, "q2_k")) { quantize_row_q2_K_ref(x, y, n); size = n / 256 * 84; }
      else if (!strcmp(type, "q3_k")) { quantize_row_q3_K_ref(x, y, n); size = n / 256 * 110; }
      else if (!strcmp(type, "q4_k")) { quantize_row_q4_K_ref(x, y, n); size = n / 256 * 144; }
      else if (!strcmp(type, "q5_k")) { quantize_row_q5_K_ref(x, y, n); size = n / 256 * 176; }
      else if (!strcmp(type, "q6_k")) { quantize_row_q6_K_ref(x, y, n); size = n / 256 * 210; }
      else return 2;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
      double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
      times[r] = s;
    }
    for (int i = 1; i < reps; i++) for (int j = i; j > 0 && times[j] < times[j - 1]; j--) { double t = times[j]; times[j] = times[j - 1]; times[j - 1] = t; }
    double med = times[reps / 2];
    if (reps > 1) fprintf(stderr, "%s %.6f CPU s median of %d, %.3f GB/s f32 input\n", type, med, reps, n * 4 / med / 1e9);
    FILE *o = fopen(argv[3], "wb"); fwrite(y, 1, size, o); fclose(o);
    return 0;
}

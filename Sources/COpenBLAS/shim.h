// COpenBLAS: OpenBLAS's CBLAS interface (Debian libopenblas-dev, `pkg-config openblas`).
#ifndef CKPT_COPENBLAS_SHIM_H
#define CKPT_COPENBLAS_SHIM_H
#include <cblas.h>
#endif

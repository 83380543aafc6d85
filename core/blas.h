/* duet's one door to CBLAS. The library is chosen when duet is configured: OpenBLAS (the
 * default) or Intel MKL (`cmake -DDUET_BLAS=mkl`, docs/build.md). Everything else in duet
 * includes this header instead of a library's own, and sets the library's thread count
 * through it. */
#ifndef DUET_CORE_BLAS_H
#define DUET_CORE_BLAS_H

#ifdef DUET_BLAS_MKL
#include <mkl_cblas.h>
typedef MKL_INT duet_blas_int;
#else
#include <cblas.h>
typedef blasint duet_blas_int;
#endif

/* Threads the library may use for one call made outside a parallel region. */
void duet_blas_set_threads(int threads);
int duet_blas_threads(void);

/* The library and its version, e.g. "OpenBLAS 0.3.21 ..." or "Intel(R) oneAPI Math Kernel
 * Library Version 2026.2 ...", for logs and benchmark tables. */
const char *duet_blas_name(void);

#endif

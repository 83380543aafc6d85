/* The thread count and name of the CBLAS chosen at configure time (core/blas.h). */
#include "core/blas.h"

#ifdef DUET_BLAS_MKL
#include <mkl_service.h>

void duet_blas_set_threads(int threads) { mkl_set_num_threads(threads); }
int duet_blas_threads(void) { return mkl_get_max_threads(); }

const char *duet_blas_name(void) {
  static char name[200];
  if (!name[0]) mkl_get_version_string(name, (int)sizeof name);
  return name;
}

#else
/* OpenBLAS declares these in its cblas.h. */
void duet_blas_set_threads(int threads) { openblas_set_num_threads(threads); }
int duet_blas_threads(void) { return openblas_get_num_threads(); }
const char *duet_blas_name(void) { return openblas_get_config(); }
#endif

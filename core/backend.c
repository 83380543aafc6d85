#include "core/backend.h"

/* The CUDA backend, when built, defines this table in core/cuda/. A CUDA build
 * (DUET_HAVE_CUDA) refers to it directly: duet_core is a static library, and only a strong
 * reference pulls the backend's object file into a program. A CPU-only build refers to it
 * weakly, so that it links without it. */
#ifdef DUET_HAVE_CUDA
extern const duet_backend duet_cuda_backend;
/* Whether a CUDA device is present at run time. */
extern int duet_cuda_available(void);
#else
extern const duet_backend duet_cuda_backend __attribute__((weak));
extern int duet_cuda_available(void) __attribute__((weak));
#endif

const duet_backend *duet_backend_get(duet_device dev) {
  switch (dev) {
    case DUET_CPU: return &duet_cpu_backend;
    case DUET_CUDA:
#ifdef DUET_HAVE_CUDA
      return duet_cuda_available() ? &duet_cuda_backend : NULL;
#else
      if (&duet_cuda_backend && duet_cuda_available && duet_cuda_available()) return &duet_cuda_backend;
      return NULL;
#endif
    default: return NULL;
  }
}

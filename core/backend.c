#include "core/backend.h"

/* The CUDA backend, when built, defines this table in core/cuda/; the weak reference keeps a
 * CPU-only build linking without it. */
extern const duet_backend duet_cuda_backend __attribute__((weak));
/* Whether a CUDA device is present at run time (defined with the CUDA backend). */
extern int duet_cuda_available(void) __attribute__((weak));

const duet_backend *duet_backend_get(duet_device dev) {
  switch (dev) {
    case DUET_CPU: return &duet_cpu_backend;
    case DUET_CUDA:
      if (&duet_cuda_backend && duet_cuda_available && duet_cuda_available()) return &duet_cuda_backend;
      return NULL;
    default: return NULL;
  }
}

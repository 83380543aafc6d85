/* Helpers for the CUDA parity tests: random host tensors, their copies on the GPU (in f32,
 * bf16 or f64), poisoned outputs, and comparison against the CPU backend's result.
 *
 * Every test compares the CUDA kernel with the CPU kernel (the reference) on the same random
 * inputs, never zeros: bf16 runs get inputs already rounded to bf16, so the CPU computes in f32
 * on exactly the values the GPU sees. Outputs that a kernel writes are poisoned with NaN
 * first (so an element left unwritten fails); outputs that it accumulates into start from the
 * same random values on both sides. */
#ifndef DUET_TESTS_GPU_TEST_H
#define DUET_TESTS_GPU_TEST_H

#include "core/backend.h"
#include "core/cuda/cuda_backend.h"
#include "testlib.h"

/* Exits 77 (ctest's skip) with "<name>: no CUDA device: skipped" when there is no device. */
void gt_require_gpu(const char *name);

const duet_backend *gt_cpu(void);
const duet_backend *gt_gpu(void);

/* Host tensor (f32 or f64, or i32 / u8) with uniform values in [lo, hi) from seed. */
duet_tensor *gt_rand(duet_dtype dt, int ndim, const int64_t *shape, uint64_t seed, double lo, double hi);
/* The host dtype a GPU run of dtype dt is checked against: f64 for f64, else f32. */
duet_dtype gt_ref_dtype(duet_dtype dt);
/* A random host input for a GPU run in dtype dt: of gt_ref_dtype(dt), rounded to bf16 when dt
 * is bf16 (so that both sides see the same values). */
duet_tensor *gt_input(duet_dtype dt, int ndim, const int64_t *shape, uint64_t seed, double lo, double hi);
/* Zeroed host tensor. */
duet_tensor *gt_host(duet_dtype dt, int ndim, const int64_t *shape);
/* A host copy (same dtype). */
duet_tensor *gt_clone(const duet_tensor *h);
/* Rounds a host f32 tensor's values to bf16 in place (f64 and others are left alone). */
void gt_round_bf16(duet_tensor *h);

/* A GPU copy of host tensor h in dtype dt (f32 -> bf16 converts; otherwise dt is h's dtype). */
duet_tensor *gt_up(const duet_tensor *h, duet_dtype dt);
/* A GPU tensor whose bytes are all 0xff (NaN in every float dtype). */
duet_tensor *gt_poison(duet_dtype dt, int ndim, const int64_t *shape);
/* A host copy of GPU tensor d: bf16 becomes f32, other dtypes stay. */
duet_tensor *gt_down(const duet_tensor *d);
/* Frees host or GPU tensors made here (NULL ignored). */
void gt_free(duet_tensor *t);

/* ||got - ref|| / ||ref|| over all elements (Frobenius); equal infinities count as equal, NaN
 * or any other mismatch in kind gives +inf. */
double gt_rel_err(const duet_tensor *got, const duet_tensor *ref);
/* Downloads d, compares it with the host reference, counts a CHECK; prints the error on failure. */
int gt_expect_close(const char *what, const duet_tensor *d, const duet_tensor *ref, double tol);
/* For accumulated outputs: compares the increment d - init (d downloaded) with ref - init,
 * so that a small gradient is not hidden behind its accumulator's starting values. */
int gt_expect_delta(const char *what, const duet_tensor *d, const duet_tensor *ref, const duet_tensor *init, double tol);
/* Waits for the GPU and CHECKs that the backend recorded no error. */
void gt_expect_no_cuda_error(const char *what);

/* The tolerance for a dtype: f32 1e-5, f64 1e-12, bf16 `bf16_tol`. */
double gt_tol(duet_dtype dt, double bf16_tol);

#endif

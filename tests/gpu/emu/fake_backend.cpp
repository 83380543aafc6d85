// The host side of the CUDA backend (backend_cuda.c, gemm_cuda.c) for the host emulation:
// host memory for device memory and a plain triple loop for cuBLASLt, so that the emulated
// kernels run under the real tests/gpu programs. (test_gemm then checks only that loop.)
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "emu.h"
extern "C" {
#include "core/cuda/cuda_internal.h"
}
static duet_cuda_ctx fake;
static void *scratch_p;
static size_t scratch_n;
extern "C" duet_cuda_ctx *duet_cuda_ctx_get(void) {
  fake.cc_major = 9; fake.smem_optin = 227 * 1024; fake.usable = 1; fake.sm_count = 132;
  return &fake;
}
extern "C" int duet_cuda_available(void) { return 1; }
extern "C" int duet_cuda_select_device(int, duet_err *) { return 0; }
extern "C" void duet_cuda_record(int code, const char *fmt, ...) {
  if (fake.err_code) return;
  va_list ap; va_start(ap, fmt); vsnprintf(fake.err_msg, sizeof fake.err_msg, fmt, ap); va_end(ap);
  fake.err_code = code;
}
extern "C" int duet_cuda_ok(cudaError_t e, const char *w) { if (e) duet_cuda_record(-1, "%s", w); return e == cudaSuccess; }
extern "C" int duet_cuda_launched(const char *) { return 1; }
extern "C" int duet_cuda_status(duet_err *err) { if (fake.err_code && err) duet_err_set(err, fake.err_code, "%s", fake.err_msg); return fake.err_code; }
extern "C" void duet_cuda_clear_error(void) { fake.err_code = 0; }
extern "C" int duet_cuda_sync(duet_err *err) { return duet_cuda_status(err); }
extern "C" void *duet_cuda_stream(void) { return nullptr; }
extern "C" const char *duet_cuda_device_name(char *buf, size_t n) { snprintf(buf, n, "host emulation"); return buf; }
extern "C" int64_t duet_cuda_device_allocs(void) { return fake.device_allocs; }
extern "C" void *duet_cuda_malloc_counted(size_t bytes) { fake.device_allocs++; return aligned_alloc(256, (bytes + 255) / 256 * 256); }
extern "C" void *duet_cuda_scratch(size_t bytes) {
  if (bytes <= scratch_n) return scratch_p;
  free(scratch_p); scratch_p = duet_cuda_malloc_counted(bytes); scratch_n = bytes; return scratch_p;
}
extern "C" struct duet_gemm_cache *duet_cuda_gemm_cache_new(void) { return nullptr; }
static double rd(duet_dtype t, const void *p, int64_t i) {
  if (t == DUET_F64) return ((const double *)p)[i];
  if (t == DUET_BF16) return duet_bf16_to_f32(((const uint16_t *)p)[i]);
  return ((const float *)p)[i];
}
static void wr(duet_dtype t, void *p, int64_t i, double v) {
  if (t == DUET_F64) ((double *)p)[i] = v;
  else if (t == DUET_BF16) ((uint16_t *)p)[i] = duet_f32_to_bf16((float)v);
  else ((float *)p)[i] = (float)v;
}
extern "C" int duet_cuda_gemm_run(const duet_cuda_gemm *g, duet_err *) {
  for (int64_t b = 0; b < g->batch; b++)
    for (int64_t i = 0; i < g->m; i++)
      for (int64_t j = 0; j < g->n; j++) {
        double acc = 0;
        for (int64_t k = 0; k < g->k; k++) {
          int64_t ai = b * g->stride_a + (g->trans_a ? k * g->lda + i : i * g->lda + k);
          int64_t bi = b * g->stride_b + (g->trans_b ? j * g->ldb + k : k * g->ldb + j);
          acc += rd(g->ab_type, g->a, ai) * rd(g->ab_type, g->b, bi);
        }
        int64_t ci = b * g->stride_c + i * g->ldc + j;
        double v = g->alpha * acc + (g->beta != 0 ? g->beta * rd(g->c_type, g->c, ci) : 0);
        if (g->bias) v += rd(g->c_type, g->bias, j);
        wr(g->c_type, g->c, ci, v);
      }
  return 0;
}
extern "C" void duet_cuda_gemm_batched(duet_dtype dt, int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha,
                                       const void *a, int64_t lda, int64_t sa, const void *b, int64_t ldb, int64_t sb,
                                       double beta, void *c, int64_t ldc, int64_t sc, int64_t batch) {
  duet_cuda_gemm g = {dt, dt, ta, tb, m, n, k, batch, a, lda, sa, b, ldb, sb, c, ldc, sc, alpha, beta, nullptr};
  duet_cuda_gemm_run(&g, nullptr);
}
static void *a_alloc(size_t n) { void *p = duet_cuda_malloc_counted(n); memset(p, 0, (n + 255) / 256 * 256); return p; }
static void a_free(void *p) { free(p); }
static void a_zero(void *p, size_t n) { memset(p, 0, n); }
static void a_copy(void *d, const void *s, size_t n) { memcpy(d, s, n); }
extern "C" const duet_backend duet_cuda_backend = {
    "cuda (host emulation)", DUET_CUDA, a_alloc, a_free, a_zero, a_copy, a_copy, duet_cuda_gemm_batched,
    &duet_cuda_elementwise_kernels, &duet_cuda_nn_kernels, &duet_cuda_attention_kernels, &duet_cuda_layout_kernels,
    &duet_cuda_loss_kernels, &duet_cuda_norm_modulate_kernels,
};

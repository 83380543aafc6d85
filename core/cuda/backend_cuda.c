/* The CUDA backend's table and its process context: device memory (plain cudaMalloc, never
 * managed memory), copies, errors, scratch.
 *
 * The context lives in a function-local static made once under pthread_once: the table's
 * functions take no context argument, and a process drives one device, so one context per
 * process is the whole state. It is created on the device that is current at the first call
 * (see duet_cuda_select_device()). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cublasLt.h>

#include "core/cuda/cuda_internal.h"

/* cuBLASLt's workspace: enough for split-K on the model's shapes. */
#define LT_WORKSPACE_BYTES ((size_t)32 << 20)

static duet_cuda_ctx *ctx_storage(void) {
  static duet_cuda_ctx ctx;
  return &ctx;
}

static void set_init_error(duet_cuda_ctx *c, int code, const char *what, const char *why) {
  c->err_code = code;
  snprintf(c->err_msg, sizeof c->err_msg, "cuda: %s: %s", what, why);
}

static void ctx_init(void) {
  duet_cuda_ctx *c = ctx_storage();
  pthread_mutex_init(&c->lock, NULL);
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n <= 0) {
    set_init_error(c, DUET_ENOTSUP, "no CUDA device", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    (void)cudaGetLastError();
    return;
  }
  struct cudaDeviceProp prop;
  if ((e = cudaGetDevice(&c->device)) != cudaSuccess ||
      (e = cudaGetDeviceProperties(&prop, c->device)) != cudaSuccess) {
    set_init_error(c, DUET_ENOTSUP, "cannot query the device", cudaGetErrorString(e));
    return;
  }
  c->cc_major = prop.major;
  c->cc_minor = prop.minor;
  c->sm_count = prop.multiProcessorCount;
  c->smem_optin = prop.sharedMemPerBlockOptin;
  snprintf(c->name, sizeof c->name, "%s", prop.name);
  /* Non-blocking: the stream does not wait for the legacy default stream, so nothing of the
   * backend may use that stream (every memset and copy below is issued on this one). */
  if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
    set_init_error(c, DUET_ENOTSUP, "cannot create a stream", cudaGetErrorString(e));
    return;
  }
  cublasLtHandle_t lt = NULL;
  cublasStatus_t s = cublasLtCreate(&lt);
  if (s != CUBLAS_STATUS_SUCCESS) {
    set_init_error(c, DUET_ENOTSUP, "cublasLtCreate", cublasLtGetStatusString(s));
    return;
  }
  c->lt = lt;
  if ((e = cudaMalloc(&c->workspace, LT_WORKSPACE_BYTES)) != cudaSuccess) {
    set_init_error(c, DUET_ENOMEM, "cannot allocate the cuBLASLt workspace", cudaGetErrorString(e));
    return;
  }
  c->device_allocs++;
  c->workspace_bytes = LT_WORKSPACE_BYTES;
  c->gemm_cache = duet_cuda_gemm_cache_new();
  if (!c->gemm_cache) {
    set_init_error(c, DUET_ENOMEM, "gemm plan cache", "out of host memory");
    return;
  }
  c->usable = 1;
}

static duet_cuda_ctx *ctx_once(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, ctx_init);
  return ctx_storage();
}

duet_cuda_ctx *duet_cuda_ctx_get(void) {
  duet_cuda_ctx *c = ctx_once();
  return c->usable ? c : NULL;
}

int duet_cuda_available(void) { return duet_cuda_ctx_get() != NULL; }

int duet_cuda_select_device(int device, duet_err *err) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || device < 0 || device >= n)
    return duet_err_set(err, DUET_ENOTSUP, "cuda: no device %d (%d present)", device, e == cudaSuccess ? n : 0);
  if ((e = cudaSetDevice(device)) != cudaSuccess)
    return duet_err_set(err, DUET_ENOTSUP, "cuda: cannot select device %d: %s", device, cudaGetErrorString(e));
  duet_cuda_ctx *c = ctx_once();
  if (!c->usable) return duet_err_set(err, c->err_code ? c->err_code : DUET_ENOTSUP, "%s", c->err_msg);
  if (c->device != device)
    return duet_err_set(err, DUET_ENOTSUP,
                        "cuda: the backend already runs on device %d; select the device before first use",
                        c->device);
  return DUET_OK;
}

void duet_cuda_record(int code, const char *fmt, ...) {
  duet_cuda_ctx *c = ctx_once();
  pthread_mutex_lock(&c->lock);
  if (!c->err_code) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
    va_end(ap);
    c->err_code = code;
  }
  pthread_mutex_unlock(&c->lock);
}

int duet_cuda_ok(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return 1;
  duet_cuda_record(e == cudaErrorMemoryAllocation ? DUET_ENOMEM : DUET_EINVAL, "cuda: %s: %s", what,
                   cudaGetErrorString(e));
  return 0;
}

int duet_cuda_launched(const char *what) { return duet_cuda_ok(cudaGetLastError(), what); }

int duet_cuda_status(duet_err *err) {
  duet_cuda_ctx *c = ctx_once();
  pthread_mutex_lock(&c->lock);
  int code = c->err_code;
  if (code && err) duet_err_set(err, code, "%s", c->err_msg);
  pthread_mutex_unlock(&c->lock);
  return code;
}

void duet_cuda_clear_error(void) {
  duet_cuda_ctx *c = ctx_once();
  if (!c->usable) return; /* "no device" stays */
  pthread_mutex_lock(&c->lock);
  c->err_code = 0;
  c->err_msg[0] = 0;
  pthread_mutex_unlock(&c->lock);
}

int duet_cuda_sync(duet_err *err) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  if (c) duet_cuda_ok(cudaStreamSynchronize(c->stream), "stream synchronize");
  return duet_cuda_status(err);
}

void *duet_cuda_stream(void) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  return c ? (void *)c->stream : NULL;
}

const char *duet_cuda_device_name(char *buf, size_t size) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  if (!size) return buf;
  if (!c) {
    buf[0] = 0;
    return buf;
  }
  snprintf(buf, size, "%s (sm_%d%d, %d SMs)", c->name, c->cc_major, c->cc_minor, c->sm_count);
  return buf;
}

int64_t duet_cuda_device_allocs(void) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  if (!c) return 0;
  pthread_mutex_lock(&c->lock);
  int64_t n = c->device_allocs;
  pthread_mutex_unlock(&c->lock);
  return n;
}

void *duet_cuda_malloc_counted(size_t bytes) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  if (!c) return NULL;
  void *p = NULL;
  if (!duet_cuda_ok(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc")) return NULL;
  pthread_mutex_lock(&c->lock);
  c->device_allocs++;
  pthread_mutex_unlock(&c->lock);
  return p;
}

void *duet_cuda_scratch(size_t bytes) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  if (!c) return NULL;
  if (bytes <= c->scratch_bytes) return c->scratch;
  /* cudaFree waits for the device, so work still reading the old buffer finishes first. */
  if (c->scratch) duet_cuda_ok(cudaFree(c->scratch), "cudaFree (scratch)");
  c->scratch = NULL;
  c->scratch_bytes = 0;
  size_t want = bytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : bytes;
  void *p = duet_cuda_malloc_counted(want);
  if (!p) return NULL;
  c->scratch = p;
  c->scratch_bytes = want;
  return p;
}

/* ---- the table's memory functions ---- */

static void *cuda_alloc(size_t bytes) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  if (!c) return NULL;
  size_t rounded = (bytes + 255) & ~(size_t)255;
  void *p = duet_cuda_malloc_counted(rounded ? rounded : 256);
  if (!p) return NULL;
  /* On the backend's stream, so that later kernels see the zeros. */
  if (!duet_cuda_ok(cudaMemsetAsync(p, 0, rounded ? rounded : 256, c->stream), "cudaMemsetAsync (alloc)")) {
    duet_cuda_ok(cudaFree(p), "cudaFree");
    return NULL;
  }
  return p;
}

static void cuda_free(void *p) {
  if (p) duet_cuda_ok(cudaFree(p), "cudaFree");
}

static void cuda_zero(void *p, size_t bytes) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  if (c && bytes) duet_cuda_ok(cudaMemsetAsync(p, 0, bytes, c->stream), "cudaMemsetAsync");
}

/* Both copies wait for the stream: the host buffer may be reused (or read) on return, and a
 * copy to the host sees every kernel issued before it. */
static void cuda_copy_from_host(void *dst, const void *src, size_t bytes) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  if (!c || !bytes) return;
  if (duet_cuda_ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream), "copy to device"))
    duet_cuda_ok(cudaStreamSynchronize(c->stream), "copy to device (synchronize)");
}

static void cuda_copy_to_host(void *dst, const void *src, size_t bytes) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  if (!c || !bytes) return;
  if (duet_cuda_ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream), "copy to host"))
    duet_cuda_ok(cudaStreamSynchronize(c->stream), "copy to host (synchronize)");
}

const duet_backend duet_cuda_backend = {
    .name = "cuda",
    .device = DUET_CUDA,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .zero = cuda_zero,
    .copy_from_host = cuda_copy_from_host,
    .copy_to_host = cuda_copy_to_host,
    .gemm_batched = duet_cuda_gemm_batched,
    .elementwise = &duet_cuda_elementwise_kernels,
    .nn = &duet_cuda_nn_kernels,
    .attention = &duet_cuda_attention_kernels,
    .layout = &duet_cuda_layout_kernels,
    .loss = &duet_cuda_loss_kernels,
    .norm_modulate = &duet_cuda_norm_modulate_kernels,
};

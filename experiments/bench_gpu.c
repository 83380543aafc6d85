/* Throughput of the CUDA backend at the model's shapes: fused attention forward and
 * forward+backward, and cuBLASLt matrix products. Prints a Markdown table with the date and
 * the device; exits 77 without a CUDA device.
 *
 * Times are medians of CUDA-event timings after warm-up, on random inputs. Attention FLOPs
 * follow the usual convention (forward 4 B H Lq Lk Dh, backward 2.5 times that), although
 * duet's deterministic backward recomputes the scores once more (7 products instead of 5).
 *
 * Usage: bench_gpu [repeats] [--attn B,H,Lq,Lk,Dh[,m] ...]
 * --attn replaces the built-in attention shapes by the ones given (Lq != Lk for
 * cross-attention; a trailing ",m" adds a key mask that removes the last quarter of each
 * row's keys, as padded captions do), e.g. the shapes the PyTorch twin's bench_twin_gpu.py
 * records for a config, so that both sides are timed on the same calls. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cuda/cuda_backend.h"
#include "core/kernels_attention.h"
#include "core/rng.h"

static const duet_backend *be;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* A device tensor of random values in [-1, 1) (bf16 from f32). */
static duet_tensor *dev_rand(duet_dtype dt, int ndim, const int64_t *shape, uint64_t stream) {
  duet_tensor *t = calloc(1, sizeof *t);
  duet_err err;
  if (!t || duet_tensor_init_header(t, dt, DUET_CUDA, ndim, shape, &err) != DUET_OK) exit(1);
  t->data = be->alloc(duet_tensor_bytes(t));
  float *f = malloc((size_t)t->numel * sizeof(float) + 4);
  if (!t->data || !f) {
    fprintf(stderr, "bench_gpu: out of memory\n");
    exit(1);
  }
  duet_rng_fill_uniform_f32(7, stream, 0, f, t->numel, -1.f, 1.f);
  if (dt == DUET_BF16) {
    uint16_t *h = malloc((size_t)t->numel * sizeof(uint16_t) + 2);
    if (!h) exit(1);
    for (int64_t i = 0; i < t->numel; i++) h[i] = duet_f32_to_bf16(f[i]);
    be->copy_from_host(t->data, h, (size_t)t->numel * 2);
    free(h);
  } else if (dt == DUET_F32) {
    be->copy_from_host(t->data, f, (size_t)t->numel * 4);
  } else {
    be->zero(t->data, duet_tensor_bytes(t));
  }
  free(f);
  return t;
}

static void dev_free(duet_tensor *t) {
  if (!t) return;
  be->free(t->data);
  free(t);
}

typedef void (*work_fn)(void *ctx);

/* Median milliseconds of fn over reps runs, after warm-up. */
static double time_ms(work_fn fn, void *ctx, int reps) {
  cudaStream_t s = (cudaStream_t)duet_cuda_stream();
  cudaEvent_t a, b;
  if (cudaEventCreate(&a) != cudaSuccess || cudaEventCreate(&b) != cudaSuccess) return -1;
  for (int i = 0; i < 3; i++) fn(ctx);
  double *ms = malloc(sizeof(double) * (size_t)reps);
  for (int i = 0; i < reps; i++) {
    float t = 0;
    cudaEventRecord(a, s);
    fn(ctx);
    cudaEventRecord(b, s);
    if (cudaEventSynchronize(b) != cudaSuccess || cudaEventElapsedTime(&t, a, b) != cudaSuccess) t = -1;
    ms[i] = t;
  }
  qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
  double med = ms[reps / 2];
  free(ms);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return med;
}

typedef struct attn_shape {
  char name[32];
  int64_t B, Lq, Lk;
  int H, Dh, masked;
} attn_shape;

/* "B,H,Lq,Lk,Dh[,m]" -> shape; 0 on a malformed one. */
static int parse_attn(const char *text, attn_shape *a) {
  long long B, Lq, Lk;
  int H, Dh, n = -1;
  if (sscanf(text, "%lld,%d,%lld,%lld,%d%n", &B, &H, &Lq, &Lk, &Dh, &n) != 5 || n < 0) return 0;
  const char *rest = text + n; /* nothing, or ",m" */
  int masked = !strcmp(rest, ",m");
  if ((*rest && !masked) || B < 1 || H < 1 || Lq < 1 || Lk < 1 || Dh < 1) return 0;
  *a = (attn_shape){.B = B, .Lq = Lq, .Lk = Lk, .H = H, .Dh = Dh, .masked = masked};
  snprintf(a->name, sizeof a->name, "%s", Lq == Lk ? "self" : "cross");
  return 1;
}

/* u8 [B, Lk] key mask keeping the first three quarters of each row's keys. */
static duet_tensor *dev_mask(int64_t B, int64_t Lk) {
  duet_tensor *t = calloc(1, sizeof *t);
  int64_t shape[2] = {B, Lk};
  duet_err err;
  if (!t || duet_tensor_init_header(t, DUET_U8, DUET_CUDA, 2, shape, &err) != DUET_OK) exit(1);
  t->data = be->alloc((size_t)(B * Lk));
  uint8_t *h = malloc((size_t)(B * Lk));
  if (!t->data || !h) exit(1);
  for (int64_t i = 0; i < B * Lk; i++) h[i] = (i % Lk) < (Lk * 3) / 4;
  be->copy_from_host(t->data, h, (size_t)(B * Lk));
  free(h);
  return t;
}

typedef struct attn_run {
  duet_tensor *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv, *mask;
  int heads;
  double scale;
} attn_run;

static void attn_fwd(void *p) {
  attn_run *r = p;
  be->attention->attention_fwd(r->q, r->k, r->v, r->mask, r->heads, r->scale, r->o, r->lse);
}
static void attn_fwd_bwd(void *p) {
  attn_run *r = p;
  attn_fwd(p);
  be->attention->attention_bwd(r->q, r->k, r->v, r->mask, r->heads, r->scale, r->o, r->lse, r->dout, r->dq, r->dk, r->dv);
}

typedef struct gemm_run {
  duet_cuda_gemm g;
} gemm_run;

static void gemm_once(void *p) {
  gemm_run *r = p;
  duet_err err;
  if (duet_cuda_gemm_run(&r->g, &err) != DUET_OK) fprintf(stderr, "bench_gpu: %s\n", err.msg);
}

static int check(const char *what) {
  duet_err err;
  if (duet_cuda_sync(&err) != DUET_OK) {
    fprintf(stderr, "bench_gpu: %s: %s\n", what, err.msg);
    duet_cuda_clear_error();
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  int reps = 20, n_attn = 0;
  attn_shape given[64];
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--attn") && i + 1 < argc) {
      if (n_attn == (int)(sizeof given / sizeof given[0]) || !parse_attn(argv[++i], &given[n_attn])) {
        fprintf(stderr, "bench_gpu: --attn %s: expected B,H,Lq,Lk,Dh[,m] (at most 64 shapes)\n", argv[i]);
        return 2;
      }
      n_attn++;
    } else if (atoi(argv[i]) > 0) {
      reps = atoi(argv[i]);
    } else {
      fprintf(stderr, "usage: bench_gpu [repeats] [--attn B,H,Lq,Lk,Dh[,m] ...]\n");
      return 2;
    }
  }
  if (!duet_cuda_available()) {
    fprintf(stderr, "bench_gpu: no CUDA device: skipped\n");
    return 77;
  }
  be = duet_backend_get(DUET_CUDA);
  char dev[300], date[32];
  time_t now = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
  duet_cuda_device_name(dev, sizeof dev);

  printf("# CUDA backend throughput\n\n%s, %s, median of %d runs\n\n", date, dev, reps);
  printf("| op | dtype | shape | fwd ms | fwd TFLOP/s | fwd+bwd ms | fwd+bwd TFLOP/s |\n");
  printf("| --- | --- | --- | ---: | ---: | ---: | ---: |\n");
  /* Model shapes: tiny (Dh 32), small (Dh 64) and a base-sized branch (Dh 128), unless --attn. */
  attn_shape builtin[] = {
      {"tiny", 4, 1056, 1056, 4, 32, 0}, {"small", 2, 2112, 2112, 6, 64, 0},
      {"base", 1, 8192, 8192, 12, 128, 0}, {"base, long", 1, 16384, 16384, 16, 128, 0},
  };
  const attn_shape *attn = n_attn ? given : builtin;
  int n_shapes = n_attn ? n_attn : (int)(sizeof builtin / sizeof builtin[0]);
  const duet_dtype adt[2] = {DUET_BF16, DUET_F32};
  for (int i = 0; i < n_shapes; i++)
    for (int d = 0; d < (n_attn ? 1 : 2); d++) { /* given shapes: bf16 only, as the twin's SDPA runs */
      int64_t C = (int64_t)attn[i].H * attn[i].Dh, qs[3] = {attn[i].B, attn[i].Lq, C};
      int64_t ks[3] = {attn[i].B, attn[i].Lk, C}, ls[3] = {attn[i].B, attn[i].H, attn[i].Lq};
      attn_run r = {0};
      r.q = dev_rand(adt[d], 3, qs, 1);
      r.k = dev_rand(adt[d], 3, ks, 2);
      r.v = dev_rand(adt[d], 3, ks, 3);
      r.o = dev_rand(adt[d], 3, qs, 4);
      r.dout = dev_rand(adt[d], 3, qs, 5);
      r.dq = dev_rand(adt[d], 3, qs, 6);
      r.dk = dev_rand(adt[d], 3, ks, 7);
      r.dv = dev_rand(adt[d], 3, ks, 8);
      r.lse = dev_rand(DUET_F32, 3, ls, 9);
      r.mask = attn[i].masked ? dev_mask(attn[i].B, attn[i].Lk) : NULL;
      r.heads = attn[i].H;
      r.scale = 1.0 / sqrt((double)attn[i].Dh);
      /* FLOPs over every key, masked or not, as the SDPA figures count them */
      double flops = 4.0 * (double)attn[i].B * attn[i].H * (double)attn[i].Lq * (double)attn[i].Lk * attn[i].Dh;
      double f = time_ms(attn_fwd, &r, reps), fb = time_ms(attn_fwd_bwd, &r, reps);
      if (check("attention"))
        printf("| attention %s | %s | B %lld H %d Lq %lld Lk %lld Dh %d%s | %.3f | %.1f | %.3f | %.1f |\n",
               attn[i].name, duet_dtype_name(adt[d]), (long long)attn[i].B, attn[i].H, (long long)attn[i].Lq,
               (long long)attn[i].Lk, attn[i].Dh, attn[i].masked ? " masked" : "", f, flops / (f * 1e9), fb,
               3.5 * flops / (fb * 1e9));
      duet_tensor *all[] = {r.q, r.k, r.v, r.o, r.dout, r.dq, r.dk, r.dv, r.lse, r.mask};
      for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) dev_free(all[j]);
    }

  printf("\n| gemm | in -> out | m x n x k | ms | TFLOP/s |\n| --- | --- | --- | ---: | ---: |\n");
  /* Linear layers: rows = B * L tokens; qkv (3W x W), MLP up (4W x W) and down (W x 4W). */
  const struct { const char *name; int64_t m, n, k; } mm[] = {
      {"small qkv", 4224, 1152, 384}, {"small mlp up", 4224, 1536, 384},  {"base qkv", 8192, 4608, 1536},
      {"base mlp up", 8192, 6144, 1536}, {"base mlp down", 8192, 1536, 6144}, {"square 8192", 8192, 8192, 8192},
  };
  const struct { duet_dtype ab, c; } types[3] = {{DUET_BF16, DUET_BF16}, {DUET_BF16, DUET_F32}, {DUET_F32, DUET_F32}};
  for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++)
    for (int t = 0; t < 3; t++) {
      int64_t as[2] = {mm[i].m, mm[i].k}, bs[2] = {mm[i].n, mm[i].k}, cs[2] = {mm[i].m, mm[i].n};
      duet_tensor *a = dev_rand(types[t].ab, 2, as, 11), *b = dev_rand(types[t].ab, 2, bs, 12);
      duet_tensor *c = dev_rand(types[t].c, 2, cs, 13);
      gemm_run r = {{.ab_type = types[t].ab, .c_type = types[t].c, .trans_a = 0, .trans_b = 1, .m = mm[i].m,
                     .n = mm[i].n, .k = mm[i].k, .batch = 1, .a = a->data, .lda = mm[i].k, .b = b->data,
                     .ldb = mm[i].k, .c = c->data, .ldc = mm[i].n, .alpha = 1.0, .beta = 0.0}};
      double ms = time_ms(gemm_once, &r, reps);
      double flops = 2.0 * (double)mm[i].m * (double)mm[i].n * (double)mm[i].k;
      if (check("gemm"))
        printf("| %s | %s -> %s | %lld x %lld x %lld | %.3f | %.1f |\n", mm[i].name, duet_dtype_name(types[t].ab),
               duet_dtype_name(types[t].c), (long long)mm[i].m, (long long)mm[i].n, (long long)mm[i].k, ms,
               flops / (ms * 1e9));
      dev_free(a);
      dev_free(b);
      dev_free(c);
    }
  return 0;
}

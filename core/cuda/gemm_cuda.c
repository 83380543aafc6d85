/* Matrix products through cuBLASLt.
 *
 * duet's matrices are row-major and cuBLASLt's column-major. A row-major m x n matrix with
 * leading dimension ld is, read column-major, its n x m transpose, so the row-major product
 * C = op(A) op(B) is the column-major product C^T = op(B)^T op(A)^T: cuBLASLt is handed B's
 * storage as its first operand and A's as its second, with the same transpose flags, and
 * M = n, N = m. That keeps every operand in place (no copies, no CUBLASLT_ORDER_ROW, which
 * fewer algorithms support) and puts a linear layer's bias along cuBLASLt's rows, where the
 * BIAS epilogue adds it.
 *
 * Describing a product (descriptors, layouts, the heuristic's algorithm) costs far more host
 * time than launching it, and a training step repeats the same few dozen shapes, so plans are
 * kept in a small hash table keyed by everything that shapes them, pointer alignment
 * included (cuBLASLt assumes 256-byte alignment unless told otherwise, and ops pass offset
 * pointers). */
#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

#include "core/cuda/cuda_internal.h"

#define CACHE_SLOTS 256
#define CACHE_PROBE 8

typedef struct gemm_key {
  int32_t ab_type, c_type, ta, tb, has_bias;
  uint32_t align_a, align_b, align_c, align_bias;
  int64_t m, n, k, batch, lda, ldb, ldc, sa, sb, sc;
} gemm_key;

typedef struct gemm_plan {
  int used;
  gemm_key key;
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t lx, ly, lc; /* cuBLASLt's A (our B), B (our A), C and D */
  cublasLtMatmulAlgo_t algo;
} gemm_plan;

struct duet_gemm_cache {
  gemm_plan slots[CACHE_SLOTS];
};

struct duet_gemm_cache *duet_cuda_gemm_cache_new(void) { return calloc(1, sizeof(struct duet_gemm_cache)); }

static void plan_release(gemm_plan *p) {
  /* Destroy results are ignored: these only free host memory of descriptors we made. */
  if (p->op) (void)cublasLtMatmulDescDestroy(p->op);
  if (p->lx) (void)cublasLtMatrixLayoutDestroy(p->lx);
  if (p->ly) (void)cublasLtMatrixLayoutDestroy(p->ly);
  if (p->lc) (void)cublasLtMatrixLayoutDestroy(p->lc);
  memset(p, 0, sizeof *p);
}

static uint64_t key_hash(const gemm_key *k) {
  const unsigned char *b = (const unsigned char *)k;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < sizeof *k; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static cudaDataType_t cuda_type(duet_dtype dt) {
  switch (dt) {
    case DUET_BF16: return CUDA_R_16BF;
    case DUET_F64: return CUDA_R_64F;
    default: return CUDA_R_32F;
  }
}

/* The largest power of two (<= 256) that divides the address of every matrix of the batch. */
static uint32_t align_of(const void *p, int64_t stride, int64_t batch, size_t es) {
  uintptr_t v = (uintptr_t)p;
  if (batch > 1) v |= (uintptr_t)stride * es;
  uint32_t a = 256;
  while (a > es && (v & (a - 1))) a >>= 1;
  return a;
}

#define LT_TRY(call, what)                                                                         \
  do {                                                                                             \
    cublasStatus_t s_ = (call);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                               \
      return duet_err_set(err, DUET_EINVAL, "cublasLt: %s: %s", what, cublasLtGetStatusString(s_)); \
  } while (0)

static int layout_make(cublasLtMatrixLayout_t *l, cudaDataType_t t, int64_t rows, int64_t cols,
                       int64_t ld, int64_t batch, int64_t stride, duet_err *err) {
  LT_TRY(cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, ld), "matrix layout");
  if (batch > 1) {
    int32_t count = (int32_t)batch;
    LT_TRY(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
           "batch count");
    LT_TRY(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                            sizeof stride),
           "batch stride");
  }
  return DUET_OK;
}

static int plan_make(duet_cuda_ctx *c, const gemm_key *k, const void *bias, gemm_plan *p,
                     duet_err *err) {
  cudaDataType_t abt = cuda_type((duet_dtype)k->ab_type), ct = cuda_type((duet_dtype)k->c_type);
  int f64 = k->ab_type == DUET_F64;
  /* COMPUTE_32F (never _FAST_TF32): f32 products are true f32, like OpenBLAS's sgemm. */
  LT_TRY(cublasLtMatmulDescCreate(&p->op, f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F,
                                  f64 ? CUDA_R_64F : CUDA_R_32F),
         "matmul descriptor");
  cublasOperation_t opx = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N, opy = k->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opx, sizeof opx), "transa");
  LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opy, sizeof opy), "transb");
  if (k->has_bias) {
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    int32_t bt = (int32_t)ct;
    LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "epilogue");
    LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt),
           "bias type");
    /* The heuristic reads the pointer's alignment. */
    LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
           "bias pointer");
  }
  int rc;
  if ((rc = layout_make(&p->lx, abt, k->tb ? k->k : k->n, k->tb ? k->n : k->k, k->ldb, k->batch, k->sb, err)))
    return rc;
  if ((rc = layout_make(&p->ly, abt, k->ta ? k->m : k->k, k->ta ? k->k : k->m, k->lda, k->batch, k->sa, err)))
    return rc;
  if ((rc = layout_make(&p->lc, ct, k->n, k->m, k->ldc, k->batch, k->sc, err))) return rc;

  cublasLtMatmulPreference_t pref = NULL;
  LT_TRY(cublasLtMatmulPreferenceCreate(&pref), "preference");
  uint64_t ws = c->workspace_bytes;
  uint32_t ax = k->align_b, ay = k->align_a, ac = k->align_c;
  cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &ax, sizeof ax);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ay, sizeof ay);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof ac);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof ac);
  cublasLtMatmulHeuristicResult_t res;
  int found = 0;
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulAlgoGetHeuristic((cublasLtHandle_t)c->lt, p->op, p->lx, p->ly, p->lc, p->lc, pref, 1,
                                       &res, &found);
  cublasStatus_t sd = cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS)
    return duet_err_set(err, DUET_EINVAL, "cublasLt: heuristic: %s", cublasLtGetStatusString(s));
  if (sd != CUBLAS_STATUS_SUCCESS)
    return duet_err_set(err, DUET_EINVAL, "cublasLt: preference destroy: %s", cublasLtGetStatusString(sd));
  if (found < 1)
    return duet_err_set(err, DUET_ENOTSUP,
                        "cublasLt: no algorithm for %s %lldx%lldx%lld (batch %lld, ta %d, tb %d, alignment %u/%u/%u)",
                        duet_dtype_name((duet_dtype)k->ab_type), (long long)k->m, (long long)k->n,
                        (long long)k->k, (long long)k->batch, k->ta, k->tb, k->align_a, k->align_b, k->align_c);
  p->algo = res.algo;
  p->key = *k;
  p->used = 1;
  return DUET_OK;
}

/* The cached plan for k into *out, made when missing. */
static int plan_get(duet_cuda_ctx *c, const gemm_key *k, const void *bias, gemm_plan **out,
                    duet_err *err) {
  gemm_plan *slots = c->gemm_cache->slots;
  uint64_t h = key_hash(k);
  gemm_plan *free_slot = NULL;
  for (int i = 0; i < CACHE_PROBE; i++) {
    gemm_plan *p = &slots[(h + (uint64_t)i) % CACHE_SLOTS];
    if (p->used && memcmp(&p->key, k, sizeof *k) == 0) {
      *out = p;
      return DUET_OK;
    }
    if (!p->used && !free_slot) free_slot = p;
  }
  gemm_plan *p = free_slot ? free_slot : &slots[h % CACHE_SLOTS];
  if (p->used) plan_release(p); /* evict: the neighbourhood is full */
  int rc = plan_make(c, k, bias, p, err);
  if (rc != DUET_OK) {
    plan_release(p);
    return rc;
  }
  *out = p;
  return DUET_OK;
}

static int check_types(const duet_cuda_gemm *g, duet_err *err) {
  int ok = (g->ab_type == DUET_F32 && g->c_type == DUET_F32) || (g->ab_type == DUET_F64 && g->c_type == DUET_F64) ||
           (g->ab_type == DUET_BF16 && (g->c_type == DUET_BF16 || g->c_type == DUET_F32));
  if (!ok)
    return duet_err_set(err, DUET_EINVAL, "cuda gemm: inputs %s with output %s are not supported",
                        duet_dtype_name(g->ab_type), duet_dtype_name(g->c_type));
  return DUET_OK;
}

static int gemm_one(duet_cuda_ctx *c, const duet_cuda_gemm *g, duet_err *err) {
  size_t es_ab = duet_dtype_size(g->ab_type), es_c = duet_dtype_size(g->c_type);
  gemm_key k;
  memset(&k, 0, sizeof k); /* padding too: keys are compared bytewise */
  k.ab_type = g->ab_type;
  k.c_type = g->c_type;
  k.ta = g->trans_a != 0;
  k.tb = g->trans_b != 0;
  k.has_bias = g->bias != NULL;
  k.align_a = align_of(g->a, g->stride_a, g->batch, es_ab);
  k.align_b = align_of(g->b, g->stride_b, g->batch, es_ab);
  k.align_c = align_of(g->c, g->stride_c, g->batch, es_c);
  k.align_bias = g->bias ? align_of(g->bias, 0, 1, es_c) : 0;
  k.m = g->m;
  k.n = g->n;
  k.k = g->k;
  k.batch = g->batch;
  k.lda = g->lda;
  k.ldb = g->ldb;
  k.ldc = g->ldc;
  if (g->batch > 1) {
    k.sa = g->stride_a;
    k.sb = g->stride_b;
    k.sc = g->stride_c;
  }
  pthread_mutex_lock(&c->lock);
  gemm_plan *p = NULL;
  int rc = plan_get(c, &k, g->bias, &p, err);
  cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
  if (p && g->bias)
    s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias, sizeof g->bias);
  if (p && s == CUBLAS_STATUS_SUCCESS) {
    float af = (float)g->alpha, bf = (float)g->beta;
    const void *alpha = g->ab_type == DUET_F64 ? (const void *)&g->alpha : (const void *)&af;
    const void *beta = g->ab_type == DUET_F64 ? (const void *)&g->beta : (const void *)&bf;
    s = cublasLtMatmul((cublasLtHandle_t)c->lt, p->op, alpha, g->b, p->lx, g->a, p->ly, beta, g->c, p->lc,
                       g->c, p->lc, &p->algo, c->workspace, c->workspace_bytes, c->stream);
  }
  pthread_mutex_unlock(&c->lock);
  if (rc) return rc;
  if (s != CUBLAS_STATUS_SUCCESS)
    return duet_err_set(err, DUET_EINVAL, "cublasLt: matmul %lldx%lldx%lld: %s", (long long)g->m,
                        (long long)g->n, (long long)g->k, cublasLtGetStatusString(s));
  return DUET_OK;
}

int duet_cuda_gemm_run(const duet_cuda_gemm *g, duet_err *err) {
  duet_cuda_ctx *c = duet_cuda_ctx_get();
  if (!c) return duet_err_set(err, DUET_ENOTSUP, "cuda gemm: no CUDA device");
  int rc = check_types(g, err);
  if (rc) return rc;
  if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0 || g->batch > INT32_MAX)
    return duet_err_set(err, DUET_EINVAL, "cuda gemm: bad sizes m %lld n %lld k %lld batch %lld",
                        (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
  if (g->m == 0 || g->n == 0 || g->batch == 0) return DUET_OK;
  if (g->k == 0) {
    if (g->bias) return duet_err_set(err, DUET_ENOTSUP, "cuda gemm: a bias with k = 0");
    duet_cuda_scale_matrices(g->c_type, g->m, g->n, g->beta, g->c, g->ldc, g->stride_c, g->batch);
    return DUET_OK;
  }
  if (g->batch > 1 && g->stride_c == 0) {
    /* Every product lands in one C: sum them one after another, as the CPU backend does. */
    duet_cuda_gemm one = *g;
    one.batch = 1;
    for (int64_t i = 0; i < g->batch; i++) {
      one.a = (const char *)g->a + (size_t)(i * g->stride_a) * duet_dtype_size(g->ab_type);
      one.b = (const char *)g->b + (size_t)(i * g->stride_b) * duet_dtype_size(g->ab_type);
      if ((rc = gemm_one(c, &one, err))) return rc;
    }
    return DUET_OK;
  }
  return gemm_one(c, g, err);
}

void duet_cuda_gemm_batched(duet_dtype dt, int trans_a, int trans_b, int64_t m, int64_t n,
                            int64_t k, double alpha, const void *a, int64_t lda,
                            int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b,
                            double beta, void *c, int64_t ldc, int64_t stride_c, int64_t batch) {
  duet_cuda_gemm g = {
      .ab_type = dt, .c_type = dt, .trans_a = trans_a, .trans_b = trans_b,
      .m = m, .n = n, .k = k, .batch = batch,
      .a = a, .lda = lda, .stride_a = stride_a,
      .b = b, .ldb = ldb, .stride_b = stride_b,
      .c = c, .ldc = ldc, .stride_c = stride_c,
      .alpha = alpha, .beta = beta, .bias = NULL,
  };
  duet_err err;
  if (duet_cuda_gemm_run(&g, &err) != DUET_OK) duet_cuda_record(err.code, "%s", err.msg);
}

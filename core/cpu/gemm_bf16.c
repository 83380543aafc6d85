/* f32 products with bf16 inputs on the CPU (core/cpu_products.h): the inputs are rounded to
 * bf16 into scratch buffers and oneDNN's matmul primitive sums their products in f32 into C.
 *
 * A primitive is made for one shape (transposes, m, n, k, ldc, alpha, beta), which costs
 * about a millisecond, so the primitives are kept in a small table and reused: a training
 * step meets a few dozen shapes and meets them again at every step. Products are called
 * from one thread at a time outside parallel regions (backend_cpu.c); a mutex still guards
 * the table and the scratch buffers. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu/cpu_kernels.h"
#include "core/cpu/vec_math.h"
#include "core/cpu_products.h"

static duet_matmul_precision g_precision = DUET_MATMUL_F32;

duet_matmul_precision duet_cpu_matmul_precision(void) { return g_precision; }

/* Round to nearest even with subnormal inputs taken as (signed) zero, which is exactly what
 * AVX512-BF16's vcvtneps2bf16 does (compared over every f32 bit pattern); NaNs stay NaNs
 * (quiet). Written on the bits so that the loop vectorises on any x86-64. */
static inline uint16_t bf16_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  u = (u & 0x7F800000u) == 0 ? u & 0x80000000u : u;
  uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  uint32_t nan = (u >> 16) | 0x40u;
  return (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
}

#ifdef DUET_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>

DUET_VEC_F32 static void bf16_row_bits(uint16_t *restrict dst, const float *restrict src, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = bf16_of(src[i]);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#include <immintrin.h>
#define HAVE_BF16_INSTRUCTION 1

/* The same rounding with the instruction, 16 at a time. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void bf16_row_avx512(
    uint16_t *restrict dst, const float *restrict src, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
  if (i < n) {
    __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
    __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail, src + i));
    _mm256_mask_storeu_epi16(dst + i, tail, v);
  }
}
#endif

static void bf16_row(uint16_t *restrict dst, const float *restrict src, int64_t n) {
#ifdef HAVE_BF16_INSTRUCTION
  /* __builtin_cpu_supports reads what libgcc found at load time: a load and a test. */
  if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    bf16_row_avx512(dst, src, n);
    return;
  }
#endif
  bf16_row_bits(dst, src, n);
}

/* rows x cols of src (leading dimension ld) into dst, packed. */
static void to_bf16(uint16_t *dst, const float *src, int64_t rows, int64_t cols, int64_t ld) {
  int big = rows * cols >= DUET_CPU_PARALLEL_MIN && !omp_in_parallel();
#pragma omp parallel for schedule(static) if (big)
  for (int64_t r = 0; r < rows; r++) bf16_row(dst + r * cols, src + r * ld, cols);
}

typedef struct shape_key {
  int64_t ta, tb, m, n, k, ldc;
  float alpha, beta;
} shape_key;

typedef struct cached_product {
  shape_key key;
  dnnl_primitive_t prim;
  dnnl_memory_t a, b, c; /* memory objects whose data handles are set at each call */
} cached_product;

/* Shapes kept. A step of the shipped configs meets a few dozen; past this the oldest entry
 * is replaced. */
#define CACHE_SLOTS 256

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;
static cached_product g_cache[CACHE_SLOTS];
static int g_cached, g_next_victim;
static uint16_t *g_buf_a, *g_buf_b;
static size_t g_cap_a, g_cap_b;
static char g_engine_name[160] = "oneDNN not started";
static long g_fallbacks;

static int engine_start(void) {
  if (g_engine) return 0;
  if (dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) return -1;
  if (dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags) != dnnl_success) {
    dnnl_engine_destroy(g_engine);
    g_engine = NULL;
    return -1;
  }
  return 0;
}

static void cached_free(cached_product *e) {
  if (e->prim) dnnl_primitive_destroy(e->prim);
  if (e->a) dnnl_memory_destroy(e->a);
  if (e->b) dnnl_memory_destroy(e->b);
  if (e->c) dnnl_memory_destroy(e->c);
  memset(e, 0, sizeof *e);
}

/* Makes the primitive for key; impl, when not NULL, receives oneDNN's name of the kernel. */
static int cached_make(cached_product *e, const shape_key *key, char *impl, size_t impl_size) {
  memset(e, 0, sizeof *e);
  e->key = *key;
  dnnl_memory_desc_t ad, bd, cd;
  dnnl_dims_t a_dims = {key->m, key->k}, b_dims = {key->k, key->n}, c_dims = {key->m, key->n};
  /* The scratch copies are packed as the operands are stored: op(A) is A or its transpose. */
  dnnl_dims_t a_strides = {key->ta ? 1 : key->k, key->ta ? key->m : 1};
  dnnl_dims_t b_strides = {key->tb ? 1 : key->n, key->tb ? key->k : 1};
  dnnl_dims_t c_strides = {key->ldc, 1};
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t post = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_matmul_desc_t md;
  int ok = dnnl_memory_desc_init_by_strides(&ad, 2, a_dims, dnnl_bf16, a_strides) == dnnl_success &&
           dnnl_memory_desc_init_by_strides(&bd, 2, b_dims, dnnl_bf16, b_strides) == dnnl_success &&
           dnnl_memory_desc_init_by_strides(&cd, 2, c_dims, dnnl_f32, c_strides) == dnnl_success &&
           dnnl_matmul_desc_init(&md, &ad, &bd, NULL, &cd) == dnnl_success &&
           dnnl_primitive_attr_create(&attr) == dnnl_success;
  if (ok && key->alpha != 1.0f)
    ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key->alpha) == dnnl_success;
  if (ok && key->beta != 0.0f) /* C = alpha AB + beta C: the sum post-op */
    ok = dnnl_post_ops_create(&post) == dnnl_success && dnnl_post_ops_append_sum(post, key->beta) == dnnl_success &&
         dnnl_primitive_attr_set_post_ops(attr, post) == dnnl_success;
  ok = ok && dnnl_primitive_desc_create(&pd, &md, attr, g_engine, NULL) == dnnl_success &&
       dnnl_primitive_create(&e->prim, pd) == dnnl_success &&
       dnnl_memory_create(&e->a, &ad, g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
       dnnl_memory_create(&e->b, &bd, g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
       dnnl_memory_create(&e->c, &cd, g_engine, DNNL_MEMORY_NONE) == dnnl_success;
  if (ok && impl) {
    const char *name = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name)
      snprintf(impl, impl_size, "%s", name);
  }
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (post) dnnl_post_ops_destroy(post);
  if (attr) dnnl_primitive_attr_destroy(attr);
  if (!ok) cached_free(e);
  return ok ? 0 : -1;
}

static cached_product *cached_find(const shape_key *key) {
  for (int i = 0; i < g_cached; i++)
    if (memcmp(&g_cache[i].key, key, sizeof *key) == 0) return &g_cache[i];
  cached_product *e;
  if (g_cached < CACHE_SLOTS) {
    e = &g_cache[g_cached++];
  } else {
    e = &g_cache[g_next_victim];
    g_next_victim = (g_next_victim + 1) % CACHE_SLOTS;
    cached_free(e);
  }
  if (cached_make(e, key, NULL, 0) == 0) return e;
  *e = g_cache[--g_cached]; /* the failed slot takes the last entry's place */
  memset(&g_cache[g_cached], 0, sizeof g_cache[g_cached]);
  return NULL;
}

static uint16_t *scratch(uint16_t **buf, size_t *cap, size_t elems) {
  if (elems > *cap) {
    free(*buf);
    *buf = aligned_alloc(64, (elems * sizeof(uint16_t) + 63) & ~(size_t)63);
    *cap = *buf ? elems : 0;
  }
  return *buf;
}

int duet_cpu_gemm_bf16(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                       int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m == 0 || n == 0) return 0;
  if (k == 0) return -1; /* C = beta C: left to CBLAS */
  shape_key key;
  memset(&key, 0, sizeof key); /* the key is compared with memcmp */
  key.ta = ta != 0;
  key.tb = tb != 0;
  key.m = m;
  key.n = n;
  key.k = k;
  key.ldc = ldc;
  key.alpha = alpha;
  key.beta = beta;
  int rc = -1;
  pthread_mutex_lock(&g_lock);
  cached_product *e = engine_start() == 0 ? cached_find(&key) : NULL;
  uint16_t *a16 = scratch(&g_buf_a, &g_cap_a, (size_t)(m * k));
  uint16_t *b16 = scratch(&g_buf_b, &g_cap_b, (size_t)(k * n));
  if (e && a16 && b16) {
    to_bf16(a16, a, ta ? k : m, ta ? m : k, lda);
    to_bf16(b16, b, tb ? n : k, tb ? k : n, ldb);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
    if (dnnl_memory_set_data_handle(e->a, a16) == dnnl_success &&
        dnnl_memory_set_data_handle(e->b, b16) == dnnl_success &&
        dnnl_memory_set_data_handle(e->c, c) == dnnl_success &&
        dnnl_primitive_execute(e->prim, g_stream, 3, args) == dnnl_success &&
        dnnl_stream_wait(g_stream) == dnnl_success)
      rc = 0;
  }
  if (rc) g_fallbacks++;
  pthread_mutex_unlock(&g_lock);
  return rc;
}

/* One small product against its f64 reference on the rounded inputs: the check made before
 * bf16 products are switched on, and the source of the engine's name. */
static int engine_probe(duet_err *err) {
  enum { M = 24, N = 40, K = 72 };
  float a[M * K], b[K * N], c[M * N];
  for (int i = 0; i < M * K; i++) a[i] = (float)sin(0.37 * i + 0.1);
  for (int i = 0; i < K * N; i++) b[i] = (float)cos(0.23 * i + 0.4);
  pthread_mutex_lock(&g_lock);
  char impl[96] = "";
  cached_product probe;
  int made = engine_start() == 0 &&
             cached_make(&probe, &(shape_key){0, 0, M, N, K, N, 1.0f, 0.0f}, impl, sizeof impl) == 0;
  if (made) cached_free(&probe);
  pthread_mutex_unlock(&g_lock);
  if (!made || duet_cpu_gemm_bf16(0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N) != 0)
    return duet_err_set(err, DUET_ENOTSUP, "oneDNN cannot make a bf16 product on this processor");
  const dnnl_version_t *v = dnnl_version();
  snprintf(g_engine_name, sizeof g_engine_name, "oneDNN %d.%d.%d, %s", v->major, v->minor, v->patch, impl);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double ref = 0;
      for (int p = 0; p < K; p++) {
        uint32_t ua = (uint32_t)bf16_of(a[i * K + p]) << 16, ub = (uint32_t)bf16_of(b[p * N + j]) << 16;
        float fa, fb;
        memcpy(&fa, &ua, 4);
        memcpy(&fb, &ub, 4);
        ref += (double)fa * fb;
      }
      if (fabs(c[i * N + j] - ref) > 1e-4 * (1 + fabs(ref)))
        return duet_err_set(err, DUET_ENOTSUP, "oneDNN's bf16 product is wrong on this processor (%s: %g, expected %g)",
                            g_engine_name, c[i * N + j], ref);
    }
  return 0;
}

long duet_cpu_bf16_fallbacks(void) {
  pthread_mutex_lock(&g_lock);
  long n = g_fallbacks;
  pthread_mutex_unlock(&g_lock);
  return n;
}

const char *duet_cpu_bf16_engine(void) {
  if (strcmp(g_engine_name, "oneDNN not started") == 0) {
    duet_err err;
    if (engine_probe(&err)) snprintf(g_engine_name, sizeof g_engine_name, "none: %.150s", err.msg);
  }
  return g_engine_name;
}

int duet_cpu_set_matmul_precision(duet_matmul_precision p, duet_err *err) {
  if (p == DUET_MATMUL_BF16) {
    int rc = engine_probe(err);
    if (rc) return rc;
  }
  g_precision = p;
  return 0;
}

#else /* built without oneDNN */

int duet_cpu_gemm_bf16(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                       int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b, (void)ldb,
      (void)beta, (void)c, (void)ldc;
  return -1;
}

const char *duet_cpu_bf16_engine(void) { return "none: duet was built without oneDNN"; }
long duet_cpu_bf16_fallbacks(void) { return 0; }

int duet_cpu_set_matmul_precision(duet_matmul_precision p, duet_err *err) {
  if (p == DUET_MATMUL_BF16)
    return duet_err_set(err, DUET_ENOTSUP,
                        "bf16 products need duet built with oneDNN (scripts/setup.sh installs libdnnl-dev)");
  g_precision = p;
  return 0;
}
#endif

/* For tests: x rounded to bf16 and back, as the products see it. */
float duet_cpu_bf16_round(float x) {
  uint32_t u = (uint32_t)bf16_of(x) << 16;
  float y;
  memcpy(&y, &u, sizeof y);
  return y;
}

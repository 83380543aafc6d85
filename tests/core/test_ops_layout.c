/* Layout ops: forward values against naive index formulas, inverse pairs, error messages, and
 * f64 gradient checks for every op and input over random shapes and axes. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "gradcheck.h"
#include "testlib.h"

/* ---- helpers ---- */

/* Row-major flat index of idx in shape. */
static int64_t flat(int ndim, const int64_t *shape, const int64_t *idx) {
  int64_t f = 0;
  for (int k = 0; k < ndim; k++) f = f * shape[k] + idx[k];
  return f;
}

static void unflat(int ndim, const int64_t *shape, int64_t f, int64_t *idx) {
  for (int k = ndim - 1; k >= 0; k--) {
    idx[k] = f % shape[k];
    f /= shape[k];
  }
}

/* A step tensor of random values (f32 or f64) in [-1, 1). */
static duet_tensor *rand_step(duet_graph *g, duet_dtype dt, int ndim, const int64_t *shape, uint64_t seed) {
  duet_tensor *t = duet_graph_new(g, dt, DUET_CPU, ndim, shape);
  if (!t) return NULL;
  duet_rng r = duet_rng_make(seed, 3);
  for (int64_t i = 0; i < t->numel; i++) duet_tensor_set(t, i, duet_rng_uniform_f64(&r) * 2 - 1);
  return t;
}

static int same_values(const duet_tensor *a, const duet_tensor *b) {
  if (!a || !b || !duet_shape_equal(a, b) || a->dtype != b->dtype) return 0;
  return memcmp(a->data, b->data, duet_tensor_bytes(a)) == 0;
}

static void random_shape(duet_rng *r, int ndim, int64_t *shape, int lo, int hi) {
  for (int k = 0; k < ndim; k++) shape[k] = lo + (int64_t)duet_rng_below(r, (uint64_t)(hi - lo + 1));
}

static void random_perm(duet_rng *r, int n, int *perm) {
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)duet_rng_below(r, (uint64_t)(i + 1));
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

/* Expects the graph to have failed with a message containing every given fragment. */
static void check_error(duet_graph *g, const duet_tensor *result, const char *a, const char *b) {
  CHECK(result == NULL);
  CHECK(!duet_graph_ok(g));
  CHECK_MSG(strstr(g->err.msg, a) != NULL, "message '%s' lacks '%s'", g->err.msg, a);
  if (b) CHECK_MSG(strstr(g->err.msg, b) != NULL, "message '%s' lacks '%s'", g->err.msg, b);
  duet_graph_reset(g);
}

/* ---- gradient-check expressions ---- */

typedef struct {
  int ndim;
  int64_t shape[DUET_MAX_DIMS];
  int perm[DUET_MAX_DIMS];
  int axis, n;
  int64_t start, len;
  int p[7]; /* patch sizes / video dims, per op */
} lay_ctx;

static duet_tensor *build_reshape(duet_graph *g, duet_tensor *const *x, void *c) {
  lay_ctx *k = c;
  return duet_reshape(g, x[0], k->ndim, k->shape);
}
/* x reaches the output through a view used twice and directly: all three must add up. */
static duet_tensor *build_reshape_reuse(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  int64_t minus1 = -1;
  duet_tensor *flatv = duet_reshape(g, x[0], 1, &minus1);
  duet_tensor *sq = duet_mul(g, flatv, flatv);
  return duet_add(g, duet_reshape(g, sq, x[0]->ndim, x[0]->shape), duet_scale(g, x[0], 0.5));
}
static duet_tensor *build_permute(duet_graph *g, duet_tensor *const *x, void *c) {
  lay_ctx *k = c;
  return duet_permute(g, x[0], k->perm);
}
static duet_tensor *build_concat(duet_graph *g, duet_tensor *const *x, void *c) {
  lay_ctx *k = c;
  return duet_concat(g, x, k->n, k->axis);
}
/* The first input appears twice in the concatenation. */
static duet_tensor *build_concat_repeat(duet_graph *g, duet_tensor *const *x, void *c) {
  lay_ctx *k = c;
  duet_tensor *parts[3] = {x[0], x[1], x[0]};
  return duet_concat(g, parts, 3, k->axis);
}
static duet_tensor *build_slice(duet_graph *g, duet_tensor *const *x, void *c) {
  lay_ctx *k = c;
  return duet_slice(g, x[0], k->axis, k->start, k->len);
}
static duet_tensor *build_patchify3d(duet_graph *g, duet_tensor *const *x, void *c) {
  lay_ctx *k = c;
  return duet_patchify3d(g, x[0], k->p[4], k->p[5], k->p[6]);
}
static duet_tensor *build_unpatchify3d(duet_graph *g, duet_tensor *const *x, void *c) {
  lay_ctx *k = c;
  return duet_unpatchify3d(g, x[0], k->p[0], k->p[1], k->p[2], k->p[3], k->p[4], k->p[5], k->p[6]);
}
static duet_tensor *build_patchify1d(duet_graph *g, duet_tensor *const *x, void *c) {
  lay_ctx *k = c;
  return duet_patchify1d(g, x[0], k->p[0]);
}
static duet_tensor *build_unpatchify1d(duet_graph *g, duet_tensor *const *x, void *c) {
  lay_ctx *k = c;
  return duet_unpatchify1d(g, x[0], k->p[1], k->p[2], k->p[0]);
}
static duet_tensor *build_embedding(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  return duet_embedding(g, x[0], x[1]);
}
/* A token pipeline: video and audio tokens, joined on the token axis, cut apart again and
 * returned to their layouts, with a non-linearity so the gradient depends on values. */
static duet_tensor *build_pipeline(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  duet_tensor *vt = duet_patchify3d(g, x[0], 1, 2, 2); /* [1, 2*2*3=12, 1*2*2*2=8] */
  duet_tensor *at = duet_patchify1d(g, x[1], 4);       /* [1, 3, 8] */
  duet_tensor *parts[2] = {vt, at};
  duet_tensor *all = duet_concat(g, parts, 2, 1);      /* [1, 15, 8] */
  all = duet_mul(g, all, all);
  int perm[3] = {0, 2, 1};
  all = duet_permute(g, duet_permute(g, all, perm), perm);
  duet_tensor *v = duet_unpatchify3d(g, duet_slice(g, all, 1, 0, 12), 2, 4, 6, 2, 1, 2, 2);
  duet_tensor *a = duet_unpatchify1d(g, duet_slice(g, all, -2, 12, 3), 12, 2, 4);
  int64_t vflat = 96, aflat = 24;
  duet_tensor *flats[2] = {duet_reshape(g, v, 1, &vflat), duet_reshape(g, a, 1, &aflat)};
  return duet_concat(g, flats, 2, 0);
}

/* Gradients handed on in storage rather than added (reshape, the add and the residual path of a
 * gated residual) while x has other consumers recorded before and after them, so that x's
 * gradient is first taken over and then added to. */
static duet_tensor *build_pass_chain(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  int64_t s2[2] = {6, 4};
  duet_tensor *sq = duet_mul(g, x[0], x[0]);
  duet_tensor *shifted = duet_reshape(g, duet_add(g, x[0], x[1]), 2, s2);
  duet_tensor *res = duet_gated_residual(g, x[0], x[2], sq);
  duet_tensor *sum = duet_add(g, duet_reshape(g, res, 2, s2), shifted);
  return duet_mul(g, sum, duet_reshape(g, sq, 2, s2));
}

static void gc1(const char *name, gc_build_fn f, lay_ctx *c, int ndim, const int64_t *shape, uint64_t seed) {
  duet_tensor *in[1] = {gc_rand(ndim, shape, seed, -1, 1)};
  CHECK_MSG(gradcheck(name, f, c, in, 1, NULL) == 0, "%s", name);
  gc_free(in, 1);
}

/* ---- reshape and the 1-D patchify views ---- */

static void test_reshape(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t s[3] = {2, 3, 4}, want[2] = {6, -1};
  duet_tensor *x = rand_step(&g, DUET_F64, 3, s, 1);
  duet_tensor *y = duet_reshape(&g, x, 2, want);
  CHECK(y && y->ndim == 2 && y->shape[0] == 6 && y->shape[1] == 4 && y->numel == 24);
  /* A view: same bytes, no copy. */
  CHECK(y && y->data == x->data && !y->owns_data);
  int64_t bad[2] = {5, 5};
  check_error(&g, duet_reshape(&g, rand_step(&g, DUET_F64, 3, s, 1), 2, bad), "reshape", "[2,3,4]");
  int64_t two_infer[2] = {-1, -1};
  check_error(&g, duet_reshape(&g, rand_step(&g, DUET_F64, 3, s, 1), 2, two_infer), "reshape", "[-1,-1]");
  duet_graph_free(&g);

  lay_ctx c = {.ndim = 4, .shape = {3, 1, 2, 4}};
  gc1("reshape [2,3,4]->[3,1,2,4]", build_reshape, &c, 3, s, 2);
  gc1("reshape view used thrice", build_reshape_reuse, NULL, 3, s, 3);
}

static void test_patchify1d(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t s[3] = {2, 15, 3};
  int p = 5;
  duet_tensor *x = rand_step(&g, DUET_F64, 3, s, 4);
  duet_tensor *y = duet_patchify1d(&g, x, p);
  CHECK(y && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 15);
  int ok = y != NULL;
  for (int64_t b = 0; ok && b < 2; b++)
    for (int64_t i = 0; i < 3; i++)
      for (int64_t a = 0; a < p; a++)
        for (int64_t ch = 0; ch < 3; ch++) {
          int64_t yi[3] = {b, i, a * 3 + ch}, xi[3] = {b, i * p + a, ch};
          if (duet_tensor_get(y, flat(3, y->shape, yi)) != duet_tensor_get(x, flat(3, s, xi))) ok = 0;
        }
  CHECK_MSG(ok, "patchify1d token (i) feature (a, c) != audio[i*p + a, c]");
  duet_tensor *back = duet_unpatchify1d(&g, y, 15, 3, p);
  CHECK(same_values(back, x));
  check_error(&g, duet_patchify1d(&g, rand_step(&g, DUET_F64, 3, s, 4), 4), "patchify1d", "[2,15,3]");
  int64_t ts[3] = {2, 3, 15};
  check_error(&g, duet_unpatchify1d(&g, rand_step(&g, DUET_F64, 3, ts, 4), 15, 4, 5), "unpatchify1d", "[2,3,15]");
  duet_graph_free(&g);

  lay_ctx c = {.p = {5, 15, 3}};
  gc1("patchify1d p=5", build_patchify1d, &c, 3, s, 5);
  gc1("unpatchify1d p=5", build_unpatchify1d, &c, 3, ts, 6);
}

/* ---- permute ---- */

static void test_permute_values(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  /* Rank 5 against manual indexing, for several permutations, f64 and f32. */
  int64_t s[5] = {2, 3, 4, 5, 3};
  const int perms[4][5] = {{4, 3, 2, 1, 0}, {0, 2, 1, 4, 3}, {1, 4, 0, 3, 2}, {0, 1, 2, 3, 4}};
  for (int dti = 0; dti < 2; dti++) {
    duet_dtype dt = dti ? DUET_F32 : DUET_F64;
    for (int pi = 0; pi < 4; pi++) {
      duet_tensor *x = rand_step(&g, dt, 5, s, 10 + (uint64_t)pi);
      duet_tensor *y = duet_permute(&g, x, perms[pi]);
      CHECK(y != NULL);
      if (!y) continue;
      int ok = 1;
      for (int k = 0; k < 5; k++) ok &= y->shape[k] == s[perms[pi][k]];
      for (int64_t f = 0; ok && f < y->numel; f++) {
        int64_t yi[5], xi[5];
        unflat(5, y->shape, f, yi);
        for (int k = 0; k < 5; k++) xi[perms[pi][k]] = yi[k];
        if (duet_tensor_get(y, f) != duet_tensor_get(x, flat(5, s, xi))) ok = 0;
      }
      CHECK_MSG(ok, "permute rank 5, permutation %d, dtype %s", pi, duet_dtype_name(dt));
    }
  }
  /* Large enough for the threaded path; the inner axis is strided on the read side. */
  int64_t big[4] = {3, 37, 41, 29};
  int bp[4] = {2, 0, 3, 1};
  duet_tensor *x = rand_step(&g, DUET_F32, 4, big, 20);
  duet_tensor *y = duet_permute(&g, x, bp);
  int ok = y != NULL;
  for (int64_t f = 0; ok && f < y->numel; f++) {
    int64_t yi[4], xi[4];
    unflat(4, y->shape, f, yi);
    for (int k = 0; k < 4; k++) xi[bp[k]] = yi[k];
    if (duet_tensor_get(y, f) != duet_tensor_get(x, flat(4, big, xi))) ok = 0;
  }
  CHECK_MSG(ok, "large f32 permute");
  /* Permuting back is the identity. */
  int inv[4];
  for (int k = 0; k < 4; k++) inv[bp[k]] = k;
  CHECK(same_values(duet_permute(&g, y, inv), x));

  int dup[5] = {0, 1, 1, 3, 4};
  check_error(&g, duet_permute(&g, rand_step(&g, DUET_F64, 5, s, 1), dup), "permute", "(0,1,1,3,4)");
  int out_of_range[2] = {0, 2};
  check_error(&g, duet_permute(&g, rand_step(&g, DUET_F64, 2, s, 1), out_of_range), "permute", "[2,3]");
  duet_graph_free(&g);
}

static void test_permute_grads(void) {
  duet_rng r = duet_rng_make(77, 1);
  for (int ndim = 1; ndim <= 6; ndim++)
    for (int rep = 0; rep < 2; rep++) {
      lay_ctx c;
      memset(&c, 0, sizeof c);
      int64_t shape[6];
      random_shape(&r, ndim, shape, ndim > 4 ? 1 : 2, ndim > 4 ? 3 : 5);
      random_perm(&r, ndim, c.perm);
      char name[96];
      int len = snprintf(name, sizeof name, "permute rank %d (", ndim);
      for (int k = 0; k < ndim; k++) len += snprintf(name + len, sizeof name - (size_t)len, k ? ",%d" : "%d", c.perm[k]);
      snprintf(name + len, sizeof name - (size_t)len, ")");
      gc1(name, build_permute, &c, ndim, shape, 100 + (uint64_t)(ndim * 10 + rep));
    }
}

/* ---- concat and slice ---- */

static void test_concat_slice_values(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  /* Concatenate three parts along each axis (and a negative axis), then slice them back. */
  int64_t base[3] = {2, 3, 5};
  for (int axis = -1; axis < 3; axis++) {
    int ax = axis < 0 ? 2 : axis;
    int64_t lens[3] = {2, 1, 4};
    duet_tensor *parts[3];
    for (int i = 0; i < 3; i++) {
      int64_t s[3] = {base[0], base[1], base[2]};
      s[ax] = lens[i];
      parts[i] = rand_step(&g, DUET_F64, 3, s, 30 + (uint64_t)(i + 3 * ax));
    }
    duet_tensor *y = duet_concat(&g, parts, 3, axis);
    CHECK(y && y->shape[ax] == 7);
    int64_t at = 0;
    for (int i = 0; i < 3; i++) {
      CHECK_MSG(same_values(duet_slice(&g, y, axis, at, lens[i]), parts[i]), "axis %d part %d", axis, i);
      at += lens[i];
    }
    /* Element check against the index formula for the middle part. */
    int ok = y != NULL;
    for (int64_t f = 0; ok && f < parts[1]->numel; f++) {
      int64_t pi[3];
      unflat(3, parts[1]->shape, f, pi);
      pi[ax] += lens[0];
      if (duet_tensor_get(y, flat(3, y->shape, pi)) != duet_tensor_get(parts[1], f)) ok = 0;
    }
    CHECK_MSG(ok, "concat axis %d: middle part misplaced", axis);
  }
  /* Split into n slices and join them again: the identity. */
  int64_t s[4] = {3, 10, 2, 3};
  duet_tensor *x = rand_step(&g, DUET_F64, 4, s, 40);
  duet_tensor *pieces[4];
  int64_t cut[5] = {0, 3, 4, 4, 10}; /* one empty piece */
  for (int i = 0; i < 4; i++) pieces[i] = duet_slice(&g, x, 1, cut[i], cut[i + 1] - cut[i]);
  CHECK(pieces[2] && pieces[2]->numel == 0);
  CHECK(same_values(duet_concat(&g, pieces, 4, 1), x));
  /* Masks and ids move as well: u8 and i32. */
  int64_t ms[2] = {2, 3}, ms2[2] = {2, 2};
  uint8_t m1[6] = {1, 0, 1, 1, 1, 0}, m2[4] = {0, 1, 1, 1};
  duet_tensor *mparts[2] = {duet_graph_from_host(&g, DUET_U8, DUET_CPU, 2, ms, m1),
                            duet_graph_from_host(&g, DUET_U8, DUET_CPU, 2, ms2, m2)};
  duet_tensor *m = duet_concat(&g, mparts, 2, 1);
  const uint8_t want[10] = {1, 0, 1, 0, 1, 1, 1, 0, 1, 1};
  CHECK(m && m->dtype == DUET_U8 && m->shape[1] == 5 && memcmp(m->data, want, 10) == 0);
  int32_t ids[6] = {5, 6, 7, 8, 9, 10};
  duet_tensor *it = duet_graph_from_host(&g, DUET_I32, DUET_CPU, 2, ms, ids);
  duet_tensor *is = duet_slice(&g, it, 1, 1, 2);
  CHECK(is && ((int32_t *)is->data)[0] == 6 && ((int32_t *)is->data)[3] == 10);
  /* Large enough for the threaded path: token-axis concat of [2, 300, 96] and [2, 77, 96]. */
  int64_t sa[3] = {2, 300, 96}, sb[3] = {2, 77, 96};
  duet_tensor *big[2] = {rand_step(&g, DUET_F32, 3, sa, 41), rand_step(&g, DUET_F32, 3, sb, 42)};
  duet_tensor *cat = duet_concat(&g, big, 2, 1);
  CHECK(same_values(duet_slice(&g, cat, 1, 0, 300), big[0]));
  CHECK(same_values(duet_slice(&g, cat, 1, 300, 77), big[1]));
  CHECK(duet_graph_ok(&g));

  int64_t other[3] = {2, 4, 6};
  duet_tensor *mism[2] = {rand_step(&g, DUET_F64, 3, base, 1), rand_step(&g, DUET_F64, 3, other, 2)};
  check_error(&g, duet_concat(&g, mism, 2, 1), "concat", "[2,4,6]");
  duet_tensor *one[1] = {rand_step(&g, DUET_F64, 3, base, 1)};
  check_error(&g, duet_concat(&g, one, 1, 3), "concat", "axis 3");
  check_error(&g, duet_slice(&g, rand_step(&g, DUET_F64, 3, base, 1), 1, 2, 2), "slice", "[2,3,5]");
  check_error(&g, duet_slice(&g, rand_step(&g, DUET_F64, 3, base, 1), 1, -1, 1), "slice", "axis 1");
  duet_graph_free(&g);
}

static void test_pass_chain_grads(void) {
  int64_t sx[3] = {2, 3, 4}, sb[1] = {4}, sg[2] = {2, 4};
  duet_tensor *in[3] = {gc_rand(3, sx, 91, -1, 1), gc_rand(1, sb, 92, -1, 1), gc_rand(2, sg, 93, -1, 1)};
  CHECK_MSG(gradcheck("pass chain", build_pass_chain, NULL, in, 3, NULL) == 0, "pass chain");
  gc_check_f32_f64("pass chain", build_pass_chain, NULL, in, 3);
  gc_free(in, 3);
}

static void test_concat_slice_grads(void) {
  duet_rng r = duet_rng_make(88, 2);
  for (int ndim = 1; ndim <= 4; ndim++)
    for (int axis = 0; axis < ndim; axis++) {
      int64_t base[4];
      random_shape(&r, ndim, base, 1, 4);
      lay_ctx c = {.n = 3, .axis = axis == ndim - 1 ? -1 : axis};
      duet_tensor *in[3];
      for (int i = 0; i < 3; i++) {
        int64_t s[4];
        memcpy(s, base, sizeof s);
        s[axis] = 1 + (int64_t)duet_rng_below(&r, 4);
        in[i] = gc_rand(ndim, s, 200 + (uint64_t)(ndim * 16 + axis * 4 + i), -1, 1);
      }
      char name[64];
      snprintf(name, sizeof name, "concat x3 rank %d axis %d", ndim, c.axis);
      CHECK_MSG(gradcheck(name, build_concat, &c, in, 3, NULL) == 0, "%s", name);
      snprintf(name, sizeof name, "concat [a,b,a] rank %d axis %d", ndim, c.axis);
      CHECK_MSG(gradcheck(name, build_concat_repeat, &c, in, 2, NULL) == 0, "%s", name);
      /* Slice the concatenation's first input along the same axis. */
      int64_t extent = in[0]->shape[axis];
      lay_ctx sc = {.axis = axis, .start = extent > 1 ? 1 : 0, .len = extent > 1 ? extent - 1 : 1};
      snprintf(name, sizeof name, "slice rank %d axis %d [%lld,+%lld)", ndim, axis, (long long)sc.start,
               (long long)sc.len);
      CHECK_MSG(gradcheck(name, build_slice, &sc, in, 1, NULL) == 0, "%s", name);
      gc_free(in, 3);
    }
  /* The token axis of [B, L, D] with odd sizes, a middle slice. */
  int64_t s[3] = {3, 11, 7};
  lay_ctx sc = {.axis = 1, .start = 4, .len = 5};
  gc1("slice tokens [3,11,7] [4,9)", build_slice, &sc, 3, s, 300);
}

/* ---- patchify3d ---- */

static void test_patchify3d(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  /* Odd patch sizes and a token grid that is not square. */
  const int64_t B = 2, T = 6, H = 6, W = 10, C = 3;
  const int pt = 3, ph = 2, pw = 5;
  int64_t vs[5] = {B, T, H, W, C};
  duet_tensor *v = rand_step(&g, DUET_F64, 5, vs, 50);
  duet_tensor *tok = duet_patchify3d(&g, v, pt, ph, pw);
  const int64_t nt = T / pt, nh = H / ph, nw = W / pw, F = pt * ph * pw * C;
  CHECK(tok && tok->ndim == 3 && tok->shape[0] == B && tok->shape[1] == nt * nh * nw && tok->shape[2] == F);
  int ok = tok != NULL;
  for (int64_t b = 0; ok && b < B; b++)
    for (int64_t t = 0; t < nt; t++)
      for (int64_t h = 0; h < nh; h++)
        for (int64_t w = 0; w < nw; w++)
          for (int64_t a = 0; a < pt; a++)
            for (int64_t bb = 0; bb < ph; bb++)
              for (int64_t cc = 0; cc < pw; cc++)
                for (int64_t ch = 0; ch < C; ch++) {
                  int64_t token = (t * nh + h) * nw + w, feat = ((a * ph + bb) * pw + cc) * C + ch;
                  int64_t vi[5] = {b, t * pt + a, h * ph + bb, w * pw + cc, ch};
                  if (duet_tensor_get(tok, (b * tok->shape[1] + token) * F + feat) != duet_tensor_get(v, flat(5, vs, vi)))
                    ok = 0;
                }
  CHECK_MSG(ok, "patchify3d token (t,h,w) feature (a,b,c,ch) != video[t*pt+a, h*ph+b, w*pw+c, ch]");
  CHECK(same_values(duet_unpatchify3d(&g, tok, (int)T, (int)H, (int)W, (int)C, pt, ph, pw), v));
  /* Large f32 round trip through the threaded path. */
  int64_t big[5] = {2, 8, 32, 32, 16};
  duet_tensor *bv = rand_step(&g, DUET_F32, 5, big, 51);
  duet_tensor *bt = duet_patchify3d(&g, bv, 2, 4, 4);
  CHECK(bt && bt->shape[1] == 4 * 8 * 8 && bt->shape[2] == 2 * 4 * 4 * 16);
  CHECK(same_values(duet_unpatchify3d(&g, bt, 8, 32, 32, 16, 2, 4, 4), bv));
  CHECK(duet_graph_ok(&g));

  int64_t odd[5] = {1, 5, 8, 8, 3};
  check_error(&g, duet_patchify3d(&g, rand_step(&g, DUET_F64, 5, odd, 1), 2, 4, 4), "patchify3d", "[1,5,8,8,3]");
  int64_t four[4] = {1, 4, 8, 3};
  check_error(&g, duet_patchify3d(&g, rand_step(&g, DUET_F64, 4, four, 1), 1, 1, 1), "patchify3d", "[1,4,8,3]");
  int64_t ts[3] = {1, 10, 24};
  check_error(&g, duet_unpatchify3d(&g, rand_step(&g, DUET_F64, 3, ts, 1), 4, 8, 8, 3, 2, 2, 2), "unpatchify3d",
              "[1,10,24]");
  duet_graph_free(&g);

  lay_ctx c = {.p = {(int)T, (int)H, (int)W, (int)C, pt, ph, pw}};
  gc1("patchify3d (3,2,5)", build_patchify3d, &c, 5, vs, 52);
  int64_t tshape[3] = {B, nt * nh * nw, F};
  gc1("unpatchify3d (3,2,5)", build_unpatchify3d, &c, 3, tshape, 53);
  int64_t vs2[5] = {1, 3, 4, 2, 5};
  lay_ctx c2 = {.p = {3, 4, 2, 5, 1, 2, 2}};
  gc1("patchify3d (1,2,2) C=5", build_patchify3d, &c2, 5, vs2, 54);
  int64_t ts2[3] = {1, 3 * 2 * 1, 1 * 2 * 2 * 5};
  gc1("unpatchify3d (1,2,2) C=5", build_unpatchify3d, &c2, 3, ts2, 55);

  int64_t pv[5] = {1, 2, 4, 6, 2}, pa[3] = {1, 12, 2};
  duet_tensor *in[2] = {gc_rand(5, pv, 56, -1, 1), gc_rand(3, pa, 57, -1, 1)};
  CHECK(gradcheck("token pipeline (all layout ops)", build_pipeline, NULL, in, 2, NULL) == 0);
  gc_free(in, 2);
}

/* ---- embedding ---- */

static void test_embedding(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t ts[2] = {5, 3}, is[2] = {2, 2};
  double tab[15];
  for (int i = 0; i < 15; i++) tab[i] = i * 0.5 - 2;
  int32_t ids[4] = {1, 1, 3, 1};
  duet_tensor *table = duet_graph_from_host(&g, DUET_F64, DUET_CPU, 2, ts, tab);
  duet_tensor *it = duet_graph_from_host(&g, DUET_I32, DUET_CPU, 2, is, ids);
  table->requires_grad = 1;
  duet_tensor *y = duet_embedding(&g, table, it);
  CHECK(y && y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 2 && y->shape[2] == 3);
  int ok = y != NULL;
  for (int r = 0; ok && r < 4; r++)
    for (int d = 0; d < 3; d++)
      if (duet_tensor_get(y, r * 3 + d) != tab[ids[r] * 3 + d]) ok = 0;
  CHECK_MSG(ok, "embedding rows");
  /* Repeated ids sum their gradients: d sum(y) / d table row v = count of v in ids. */
  duet_err err;
  CHECK(duet_backward(&g, duet_sum(&g, y), &err) == DUET_OK);
  const double count[5] = {0, 3, 0, 1, 0};
  ok = table->grad != NULL;
  for (int v = 0; ok && v < 5; v++)
    for (int d = 0; d < 3; d++)
      if (duet_tensor_get(table->grad, v * 3 + d) != count[v]) ok = 0;
  CHECK_MSG(ok, "embedding gradient of repeated ids");
  duet_graph_reset(&g);

  /* Out-of-range ids name the id. */
  int32_t bad[4] = {0, 4, 5, 2};
  table = duet_graph_from_host(&g, DUET_F64, DUET_CPU, 2, ts, tab);
  it = duet_graph_from_host(&g, DUET_I32, DUET_CPU, 2, is, bad);
  check_error(&g, duet_embedding(&g, table, it), "embedding", "id 5");
  bad[2] = -1;
  table = duet_graph_from_host(&g, DUET_F64, DUET_CPU, 2, ts, tab);
  it = duet_graph_from_host(&g, DUET_I32, DUET_CPU, 2, is, bad);
  check_error(&g, duet_embedding(&g, table, it), "embedding", "id -1");
  table = duet_graph_from_host(&g, DUET_F64, DUET_CPU, 2, ts, tab);
  check_error(&g, duet_embedding(&g, table, table), "embedding", "f64");

  /* Deterministic scatter-add, threaded path: equal, bit for bit, to adding the rows in id
   * order on one thread, at 1 and at 4 threads. */
  const int64_t V = 37, D = 67, N = 5000;
  int64_t bts[2] = {V, D}, bis[1] = {N};
  double ref[37 * 67];
  float got[2][37 * 67];
  int threads = omp_get_max_threads();
  for (int run = 0; run < 2; run++) {
    duet_graph_reset(&g);
    omp_set_num_threads(run ? 4 : 1);
    duet_tensor *bt = rand_step(&g, DUET_F32, 2, bts, 60);
    duet_tensor *bi = duet_graph_new(&g, DUET_I32, DUET_CPU, 1, bis);
    duet_rng r = duet_rng_make(61, 0);
    for (int64_t i = 0; i < N; i++) ((int32_t *)bi->data)[i] = (int32_t)duet_rng_below(&r, (uint64_t)(i % 7 ? V : 3));
    bt->requires_grad = 1;
    duet_tensor *by = duet_embedding(&g, bt, bi);
    duet_tensor *R = rand_step(&g, DUET_F32, 2, (int64_t[2]){N, D}, 62);
    CHECK(duet_backward(&g, duet_sum(&g, duet_mul(&g, by, R)), &err) == DUET_OK);
    if (!bt->grad) continue;
    memcpy(got[run], bt->grad->data, sizeof got[run]);
    if (run == 0) {
      float acc[37 * 67] = {0};
      for (int64_t i = 0; i < N; i++) {
        int32_t id = ((int32_t *)bi->data)[i];
        for (int64_t d = 0; d < D; d++) acc[id * D + d] += ((float *)R->data)[i * D + d];
      }
      for (int64_t k = 0; k < V * D; k++) ref[k] = acc[k];
    }
  }
  omp_set_num_threads(threads);
  ok = 1;
  for (int64_t k = 0; k < V * D; k++) ok &= got[0][k] == (float)ref[k] && got[1][k] == got[0][k];
  CHECK_MSG(ok, "embedding backward differs from the ordered sum or across thread counts");
  duet_graph_free(&g);

  /* Gradient check of the table with ids of rank 3, repeats included. */
  int64_t gts[2] = {7, 5}, gis[3] = {2, 3, 2};
  duet_tensor *in[2] = {gc_rand(2, gts, 63, -1, 1), duet_tensor_new(DUET_I32, 3, gis, NULL)};
  int32_t gid[12] = {0, 6, 3, 3, 1, 6, 2, 2, 2, 5, 0, 4};
  memcpy(in[1]->data, gid, sizeof gid);
  CHECK(gradcheck("embedding [7,5] ids [2,3,2]", build_embedding, NULL, in, 2, NULL) == 0);
  gc_free(in, 2);
}

int main(void) {
  test_reshape();
  test_patchify1d();
  test_permute_values();
  test_permute_grads();
  test_concat_slice_values();
  test_concat_slice_grads();
  test_pass_chain_grads();
  test_patchify3d();
  test_embedding();
  return test_finish("core_ops_layout");
}

/* Gradient checks and forward values for element-wise ops, reductions and matrix products. */
#include <string.h>

#include "gradcheck.h"
#include "testlib.h"

static duet_tensor *build_add(duet_graph *g, duet_tensor *const *x, void *c) { (void)c; return duet_add(g, x[0], x[1]); }
static duet_tensor *build_sub(duet_graph *g, duet_tensor *const *x, void *c) { (void)c; return duet_sub(g, x[0], x[1]); }
static duet_tensor *build_mul(duet_graph *g, duet_tensor *const *x, void *c) { (void)c; return duet_mul(g, x[0], x[1]); }
static duet_tensor *build_scale(duet_graph *g, duet_tensor *const *x, void *c) { (void)c; return duet_scale(g, x[0], -2.5); }
static duet_tensor *build_mean(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  return duet_mean(g, duet_mul(g, x[0], x[0]));
}

typedef struct { int ta, tb; } mm_ctx;
static duet_tensor *build_matmul(duet_graph *g, duet_tensor *const *x, void *c) {
  mm_ctx *m = c;
  return duet_matmul(g, x[0], x[1], m->ta, m->tb);
}
static duet_tensor *build_linear(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  return duet_linear(g, x[0], x[1], x[2]);
}
/* The same tensor used twice: gradients from both uses must add up. */
static duet_tensor *build_reuse(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  duet_tensor *h = duet_linear(g, x[0], x[1], NULL);
  return duet_add(g, duet_mul(g, h, h), duet_scale(g, h, 3.0));
}

/* Backward stores a fresh activation gradient (beta 0) instead of zeroing and adding to it;
 * these uses check that a second and third use still add to what the first one stored. */
static duet_tensor *build_self_product(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  duet_tensor *h = duet_scale(g, x[0], 1.5); /* an activation, not a leaf */
  duet_tensor *p = duet_matmul(g, h, h, 0, 1); /* h @ h^T: dA is stored, dB adds to it */
  duet_tensor *q = duet_matmul(g, duet_mul(g, h, h), h, 0, 1); /* backward runs first: dA then adds */
  return duet_add(g, duet_mean(g, p), duet_mean(g, q));
}
static duet_tensor *build_shared_input(duet_graph *g, duet_tensor *const *x, void *c) {
  (void)c;
  duet_tensor *h = duet_scale(g, x[0], -0.5);
  duet_tensor *a = duet_linear(g, h, x[1], NULL), *b = duet_linear(g, h, x[1], NULL);
  return duet_add(g, duet_mul(g, a, b), duet_linear(g, h, x[1], NULL));
}

static void check_binary(const char *name, gc_build_fn f, const int64_t *sa, int na, const int64_t *sb, int nb,
                         uint64_t seed) {
  duet_tensor *in[2] = {gc_rand(na, sa, seed, -1, 1), gc_rand(nb, sb, seed + 1, -1, 1)};
  CHECK_MSG(gradcheck(name, f, NULL, in, 2, NULL) == 0, "%s", name);
  gc_free(in, 2);
}

static void test_forward_values(void) {
  duet_graph g;
  duet_graph_init(&g, 0);
  int64_t s23[2] = {2, 3}, s3[1] = {3}, s32[2] = {3, 2};
  double a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30}, m[6] = {1, 0, 0, 1, 1, 1};
  duet_tensor *ta = duet_graph_from_host(&g, DUET_F64, DUET_CPU, 2, s23, a);
  duet_tensor *tb = duet_graph_from_host(&g, DUET_F64, DUET_CPU, 1, s3, b);
  duet_tensor *tm = duet_graph_from_host(&g, DUET_F64, DUET_CPU, 2, s32, m);
  duet_tensor *y = duet_add(&g, ta, tb);
  CHECK(y && duet_tensor_get(y, 4) == 25);
  y = duet_mul(&g, ta, tb);
  CHECK(y && duet_tensor_get(y, 5) == 180);
  y = duet_matmul(&g, ta, tm, 0, 0); /* [[1+3, 2+3], [4+6, 5+6]] */
  CHECK(y && y->shape[0] == 2 && y->shape[1] == 2);
  CHECK(y && duet_tensor_get(y, 0) == 4 && duet_tensor_get(y, 1) == 5 && duet_tensor_get(y, 2) == 10 &&
        duet_tensor_get(y, 3) == 11);
  y = duet_mean(&g, ta);
  CHECK(y && duet_tensor_get(y, 0) == 3.5);
  CHECK(duet_graph_ok(&g));
  /* A shape error is sticky and names the op and shapes. */
  y = duet_matmul(&g, ta, ta, 0, 0);
  CHECK(y == NULL && !duet_graph_ok(&g));
  CHECK(strstr(g.err.msg, "matmul") && strstr(g.err.msg, "[2,3]"));
  CHECK(duet_add(&g, ta, tb) == NULL); /* later ops refuse while failed */
  duet_graph_free(&g);
}

int main(void) {
  test_forward_values();

  int64_t s234[3] = {2, 3, 4}, s34[2] = {3, 4}, s4[1] = {4};
  check_binary("add same shape", build_add, s234, 3, s234, 3, 1);
  check_binary("add broadcast", build_add, s234, 3, s34, 2, 3);
  check_binary("sub broadcast", build_sub, s234, 3, s4, 1, 5);
  check_binary("mul broadcast", build_mul, s234, 3, s34, 2, 7);
  check_binary("mul same shape", build_mul, s234, 3, s234, 3, 9);
  {
    duet_tensor *in[1] = {gc_rand(3, s234, 11, -1, 1)};
    CHECK(gradcheck("scale", build_scale, NULL, in, 1, NULL) == 0);
    CHECK(gradcheck("mean(x*x)", build_mean, NULL, in, 1, NULL) == 0);
    gc_free(in, 1);
  }
  /* Every transpose combination, batched, shared 2-D right operand, and the flat path. */
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      mm_ctx c = {ta, tb};
      int64_t M = 3, K = 5, N = 4;
      int64_t sa[3] = {2, ta ? K : M, ta ? M : K};
      int64_t sb3[3] = {2, tb ? N : K, tb ? K : N};
      int64_t sb2[2] = {tb ? N : K, tb ? K : N};
      char name[64];
      duet_tensor *in[2] = {gc_rand(3, sa, 20 + ta, -1, 1), gc_rand(3, sb3, 30 + tb, -1, 1)};
      snprintf(name, sizeof name, "matmul batched ta=%d tb=%d", ta, tb);
      CHECK_MSG(gradcheck(name, build_matmul, &c, in, 2, NULL) == 0, "%s", name);
      gc_free(in + 1, 1);
      in[1] = gc_rand(2, sb2, 40 + tb, -1, 1);
      snprintf(name, sizeof name, "matmul shared-b ta=%d tb=%d", ta, tb);
      CHECK_MSG(gradcheck(name, build_matmul, &c, in, 2, NULL) == 0, "%s", name);
      gc_free(in, 2);
    }
  {
    int64_t sx[3] = {2, 3, 5}, sw[2] = {4, 5}, sbias[1] = {4};
    duet_tensor *in[3] = {gc_rand(3, sx, 50, -1, 1), gc_rand(2, sw, 51, -1, 1), gc_rand(1, sbias, 52, -1, 1)};
    CHECK(gradcheck("linear", build_linear, NULL, in, 3, NULL) == 0);
    CHECK(gradcheck("linear reused output", build_reuse, NULL, in, 2, NULL) == 0);
    CHECK(gradcheck("linear, input shared by three", build_shared_input, NULL, in, 2, NULL) == 0);
    CHECK(gradcheck("matmul of an activation with itself", build_self_product, NULL, in, 1, NULL) == 0);
    gc_free(in, 3);
  }
  return test_finish("core_ops_basic");
}

/* Step memory and autograd on the GPU: the device arena's growth and coalescing, and a small
 * network (linear, layernorm, gelu, masked multi-head attention, linear, masked MSE) trained
 * for four steps on the GPU and on the CPU from the same weights and data. Checks: the loss
 * and every parameter gradient agree (f32, relative 1e-5 for the loss, 1e-4 for gradients
 * that pass through the whole network), the loss is seeded on the device, and from the second
 * step on a step makes no cudaMalloc at all (the backend's own count). */
#include <string.h>

#include "core/ops.h"
#include "gpu_test.h"

#define B 2
#define L 24
#define DIN 32
#define W 64
#define HEADS 2
#define DOUT 16

enum { P_W1, P_B1, P_G1, P_WQ, P_WK, P_WV, P_W2, P_B2, NPARAM };
static const char *const param_names[NPARAM] = {"w1", "b1", "g1", "wq", "wk", "wv", "w2", "b2"};

typedef struct net {
  duet_device dev;
  duet_tensor *p[NPARAM];
} net;

static duet_tensor *as_param(duet_tensor *t, duet_device dev) {
  t->requires_grad = 1;
  t->is_param = 1;
  duet_tensor *zero = gt_host(DUET_F32, t->ndim, t->shape);
  t->grad = dev == DUET_CUDA ? gt_up(zero, DUET_F32) : zero;
  if (dev == DUET_CUDA) gt_free(zero);
  return t;
}

static void net_make(net *n, duet_device dev, duet_tensor *const *host) {
  n->dev = dev;
  for (int i = 0; i < NPARAM; i++) n->p[i] = as_param(dev == DUET_CUDA ? gt_up(host[i], DUET_F32) : gt_clone(host[i]), dev);
}

static void net_free(net *n) {
  for (int i = 0; i < NPARAM; i++) {
    gt_free(n->p[i]->grad);
    gt_free(n->p[i]);
  }
}

static void zero_grads(net *n) {
  const duet_backend *be = duet_backend_get(n->dev);
  for (int i = 0; i < NPARAM; i++) be->zero(n->p[i]->grad->data, duet_tensor_bytes(n->p[i]->grad));
}

/* One step's graph; returns the loss (NULL on a graph error). */
static duet_tensor *forward(duet_graph *g, net *n, const float *x, const float *target, const uint8_t *mask) {
  int64_t xs[3] = {B, L, DIN}, ys[3] = {B, L, DOUT}, ms[2] = {B, L};
  duet_tensor *tx = duet_graph_from_host(g, DUET_F32, n->dev, 3, xs, x);
  duet_tensor *tt = duet_graph_from_host(g, DUET_F32, n->dev, 3, ys, target);
  duet_tensor *tm = duet_graph_from_host(g, DUET_U8, n->dev, 2, ms, mask);
  duet_tensor *h = duet_linear(g, tx, n->p[P_W1], n->p[P_B1]);
  h = duet_layernorm(g, h, n->p[P_G1], NULL, 1e-5);
  h = duet_gelu(g, h);
  duet_tensor *q = duet_linear(g, h, n->p[P_WQ], NULL), *k = duet_linear(g, h, n->p[P_WK], NULL);
  duet_tensor *v = duet_linear(g, h, n->p[P_WV], NULL);
  duet_tensor *a = duet_attention(g, q, k, v, tm, HEADS);
  duet_tensor *y = duet_linear(g, a, n->p[P_W2], n->p[P_B2]);
  return duet_mse(g, y, tt, tm, 1.0);
}

static void check_arena(void) {
  duet_dev_arena a;
  duet_dev_arena_init(&a, DUET_CUDA);
  const size_t sizes[4] = {100, 3 << 20, 5 << 20, 12345};
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 4; i++) {
      void *p = duet_dev_arena_alloc(&a, sizes[i]);
      CHECK(p != NULL);
      CHECK(((uintptr_t)p & 255) == 0);
    }
    int64_t before = a.device_allocs;
    duet_dev_arena_reset(&a);
    CHECK(a.head != NULL && a.head->next == NULL); /* one block after a reset */
    CHECK(a.head->size >= a.high_water);
    if (round > 0) CHECK_EQ_INT(a.device_allocs, before); /* nothing new: it fitted */
  }
  duet_dev_arena_free(&a);
  CHECK(a.head == NULL && a.capacity == 0);
  gt_expect_no_cuda_error("device arena");
}

int main(void) {
  gt_require_gpu("gpu_graph");
  check_arena();

  const int64_t shapes[NPARAM][2] = {{W, DIN}, {W, 0}, {W, 0}, {W, W}, {W, W}, {W, W}, {DOUT, W}, {DOUT, 0}};
  duet_tensor *host[NPARAM];
  for (int i = 0; i < NPARAM; i++) {
    int nd = shapes[i][1] ? 2 : 1;
    host[i] = gt_rand(DUET_F32, nd, shapes[i], 10 + (uint64_t)i, -0.3, 0.3);
    if (i == P_G1)
      for (int64_t j = 0; j < W; j++) duet_tensor_set(host[i], j, 1.0 + 0.1 * duet_tensor_get(host[i], j));
  }
  net cpu, gpu;
  net_make(&cpu, DUET_CPU, host);
  net_make(&gpu, DUET_CUDA, host);

  duet_graph gc, gg;
  duet_graph_init(&gc, 1 << 20);
  duet_graph_init(&gg, 1 << 20);
  int64_t allocs[4], arena_allocs[4];
  for (int step = 0; step < 4; step++) {
    int64_t xs[3] = {B, L, DIN}, ys[3] = {B, L, DOUT}, ms[2] = {B, L};
    duet_tensor *x = gt_rand(DUET_F32, 3, xs, 100 + (uint64_t)step, -1, 1);
    duet_tensor *t = gt_rand(DUET_F32, 3, ys, 200 + (uint64_t)step, -1, 1);
    duet_tensor *m = gt_rand(DUET_U8, 2, ms, 300 + (uint64_t)step, 0, 2.5);
    for (int b = 0; b < B; b++) duet_tensor_set(m, b * L, 1);
    duet_graph_reset(&gc);
    duet_graph_reset(&gg);
    zero_grads(&cpu);
    zero_grads(&gpu);
    duet_tensor *lc = forward(&gc, &cpu, x->data, t->data, m->data);
    duet_tensor *lg = forward(&gg, &gpu, x->data, t->data, m->data);
    duet_err err;
    int rc = duet_graph_status(&gg, &err);
    CHECK_MSG(rc == DUET_OK && lg && lg->device == DUET_CUDA, "gpu forward: %s", rc ? err.msg : "no loss");
    CHECK(duet_graph_ok(&gc) && lc);
    if (!lc || !lg || rc) break;
    rc = duet_backward(&gg, lg, &err);
    CHECK_MSG(rc == DUET_OK, "gpu backward: %s", rc ? err.msg : "");
    rc = duet_backward(&gc, lc, &err);
    CHECK_MSG(rc == DUET_OK, "cpu backward: %s", rc ? err.msg : "");
    gt_expect_no_cuda_error("training step");
    allocs[step] = duet_cuda_device_allocs();
    arena_allocs[step] = gg.dev_arena.device_allocs;

    gt_expect_close("loss", lg, lc, 1e-5);
    for (int i = 0; i < NPARAM; i++) {
      char what[64];
      snprintf(what, sizeof what, "step %d grad %s", step, param_names[i]);
      gt_expect_close(what, gpu.p[i]->grad, cpu.p[i]->grad, 1e-4);
    }
    gt_free(x);
    gt_free(t);
    gt_free(m);
  }
  if (test_failures == 0) {
    CHECK_EQ_INT(allocs[2], allocs[1]);
    CHECK_EQ_INT(allocs[3], allocs[1]);
    CHECK_EQ_INT(arena_allocs[3], arena_allocs[1]);
    CHECK(gg.dev_arena.head && !gg.dev_arena.head->next);
    printf("gpu_graph: device arena %zu bytes in one block, %lld device allocations in all\n", gg.dev_arena.capacity,
           (long long)allocs[3]);
  }
  duet_graph_free(&gg);
  duet_graph_free(&gc);
  net_free(&cpu);
  net_free(&gpu);
  for (int i = 0; i < NPARAM; i++) gt_free(host[i]);
  return test_finish("gpu_graph");
}

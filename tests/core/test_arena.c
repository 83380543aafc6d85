/* The step arena: after the first step, a training step of the same shape makes no heap
 * allocation, and its high-water mark stays put. */
#include <string.h>

#include "core/ops.h"
#include "core/params.h"
#include "core/rng.h"
#include "testlib.h"

/* A two-layer network with a squared-error loss: enough ops to exercise the tape, the
 * lazily created activation gradients and parameter accumulation. */
static double train_step(duet_graph *g, duet_param_set *ps, const float *x_host, const float *y_host) {
  duet_graph_reset(g);
  int64_t sx[3] = {4, 8, 16}, sy[3] = {4, 8, 4};
  duet_tensor *x = duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, sx, x_host);
  duet_tensor *y = duet_graph_from_host(g, DUET_F32, DUET_CPU, 3, sy, y_host);
  duet_tensor *h = duet_linear(g, x, duet_params_find(ps, "w1"), duet_params_find(ps, "b1"));
  h = duet_mul(g, h, h);
  duet_tensor *out = duet_linear(g, h, duet_params_find(ps, "w2"), NULL);
  duet_tensor *diff = duet_sub(g, out, y);
  duet_tensor *loss = duet_mean(g, duet_mul(g, diff, diff));
  duet_err err;
  if (!loss || duet_backward(g, loss, &err) != DUET_OK) return -1;
  /* Plain SGD so the weights change between steps. */
  for (int i = 0; i < ps->count; i++) {
    float *p = ps->items[i]->data, *gr = ps->items[i]->grad->data;
    for (int64_t j = 0; j < ps->items[i]->numel; j++) p[j] -= 0.01f * gr[j];
  }
  duet_params_zero_grad(ps);
  return duet_tensor_get(loss, 0);
}

int main(void) {
  duet_param_set ps;
  duet_params_init(&ps);
  int64_t s1[2] = {32, 16}, sb[1] = {32}, s2[2] = {4, 32};
  duet_tensor *w1 = duet_params_add(&ps, "w1", DUET_F32, 2, s1, 1, NULL);
  duet_params_add(&ps, "b1", DUET_F32, 1, sb, 1, NULL);
  duet_tensor *w2 = duet_params_add(&ps, "w2", DUET_F32, 2, s2, 1, NULL);
  duet_rng_fill_normal_f32(1, 1, 0, w1->data, w1->numel, 0, 0.2f);
  duet_rng_fill_normal_f32(1, 2, 0, w2->data, w2->numel, 0, 0.2f);
  float x[4 * 8 * 16], y[4 * 8 * 4];
  duet_rng_fill_normal_f32(2, 1, 0, x, 4 * 8 * 16, 0, 1);
  duet_rng_fill_normal_f32(2, 2, 0, y, 4 * 8 * 4, 0, 1);

  duet_graph g;
  duet_graph_init(&g, 4096); /* deliberately small: step 1 must grow it */
  double first = train_step(&g, &ps, x, y);
  CHECK(first > 0);
  CHECK(g.arena.heap_allocs > 1); /* it did grow */
  size_t grown_capacity = g.arena.capacity;
  double loss = first;
  train_step(&g, &ps, x, y);
  int64_t allocs_after_2 = g.arena.heap_allocs;
  size_t high_after_2 = g.arena.high_water;
  /* The reset folded the blocks into one sized by what the step used, not by the blocks'
   * total (the geometric growth overshoots: here a 1 MiB block for a step of a few KiB). */
  CHECK_MSG(g.arena.capacity >= high_after_2 && g.arena.capacity <= duet_arena_fold_size(high_after_2) + 64,
            "one block of %zu bytes for a step of %zu", g.arena.capacity, high_after_2);
  CHECK(g.arena.capacity < grown_capacity);
  for (int step = 3; step <= 20; step++) loss = train_step(&g, &ps, x, y);
  CHECK_EQ_INT(g.arena.heap_allocs, allocs_after_2);
  CHECK_EQ_INT(g.arena.high_water, high_after_2);
  CHECK(g.arena.head && g.arena.head->next == NULL); /* one block */
  CHECK_MSG(loss < first, "loss %g should fall below %g", loss, first);

  /* No-grad mode records nothing. */
  duet_graph_reset(&g);
  duet_graph_set_grad_enabled(&g, 0);
  int64_t sx[3] = {4, 8, 16};
  duet_tensor *xt = duet_graph_from_host(&g, DUET_F32, DUET_CPU, 3, sx, x);
  duet_tensor *h = duet_linear(&g, xt, w1, NULL);
  CHECK(h && g.n_nodes == 0 && !h->requires_grad);

  duet_graph_free(&g);
  duet_params_free(&ps);
  return test_finish("core_arena");
}

/* The gradient-ready hook of duet_backward (duet_graph_set_grad_ready): every leaf of the tape
 * reported exactly once, each after its gradient has stopped changing, in the order backward
 * finishes them, and the same gradients as a backward without the hook.
 *
 * The expression reuses a parameter at both ends of the forward pass (w1: in the first linear
 * and in a penalty computed last), has an entry that backward skips because nothing of it
 * reaches the loss (dead, the last user of b1 and the only one of u), a leaf that is not a
 * parameter (the input x) and parameters that must not be reported (one never used, one
 * frozen). */
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "core/ops.h"
#include "core/params.h"
#include "core/rng.h"
#include "testlib.h"

#define MAX_SEEN 16

typedef struct seen {
  int n;
  duet_tensor *leaf[MAX_SEEN];
  float *snapshot[MAX_SEEN]; /* the leaf's gradient when it was reported */
  duet_tensor *watch;        /* a leaf whose gradient is copied at every report */
  float *watch_at[MAX_SEEN];
} seen;

static float *copy_grad(const duet_tensor *t) {
  if (!t) return NULL;
  float *c = malloc(sizeof(float) * (size_t)t->numel);
  if (c && t->grad) memcpy(c, t->grad->data, sizeof(float) * (size_t)t->numel);
  else if (c) memset(c, 0, sizeof(float) * (size_t)t->numel);
  return c;
}

static void on_ready(void *ctx, duet_tensor *leaf) {
  seen *s = ctx;
  if (s->n >= MAX_SEEN) return;
  s->leaf[s->n] = leaf;
  s->snapshot[s->n] = copy_grad(leaf);
  s->watch_at[s->n] = copy_grad(s->watch);
  s->n++;
}

static void seen_free(seen *s) {
  for (int i = 0; i < s->n; i++) {
    free(s->snapshot[i]);
    free(s->watch_at[i]);
  }
  memset(s, 0, sizeof *s);
}

static int index_of(const seen *s, const duet_tensor *t) {
  int at = -1;
  for (int i = 0; i < s->n; i++)
    if (s->leaf[i] == t) at = at < 0 ? i : -2; /* -2: reported more than once */
  return at;
}

static void fill(duet_tensor *t, uint64_t seed) {
  duet_rng_fill_uniform_f32(seed, 0, 0, t->data, t->numel, -1.0f, 1.0f);
}

typedef struct model {
  duet_param_set ps;
  duet_tensor *w1, *b1, *w2, *s, *u, *never, *frozen, *x;
} model;

static void model_make(model *m) {
  duet_err err;
  duet_params_init(&m->ps);
  int64_t s_w1[2] = {3, 4}, s_b1[1] = {3}, s_w2[2] = {2, 3}, s_s[1] = {2}, s_u[1] = {5}, s_x[2] = {2, 4};
  m->w1 = duet_params_add(&m->ps, "w1", DUET_F32, 2, s_w1, 1, &err);
  m->b1 = duet_params_add(&m->ps, "b1", DUET_F32, 1, s_b1, 1, &err);
  m->w2 = duet_params_add(&m->ps, "w2", DUET_F32, 2, s_w2, 1, &err);
  m->s = duet_params_add(&m->ps, "s", DUET_F32, 1, s_s, 1, &err);
  m->u = duet_params_add(&m->ps, "u", DUET_F32, 1, s_u, 1, &err);
  m->never = duet_params_add(&m->ps, "never", DUET_F32, 1, s_u, 1, &err);
  m->frozen = duet_params_add(&m->ps, "frozen", DUET_F32, 1, s_s, 0, &err);
  CHECK(m->w1 && m->b1 && m->w2 && m->s && m->u && m->never && m->frozen);
  for (int i = 0; i < m->ps.count; i++) fill(m->ps.items[i], 10 + (uint64_t)i);
  m->x = duet_tensor_new(DUET_F32, 2, s_x, &err);
  CHECK(m->x != NULL);
  fill(m->x, 99);
  m->x->requires_grad = 1;
}

/* loss = mean((h * h) w2^T * s + frozen) + sum(w1 * w1), h = x w1^T + b1. */
static duet_tensor *build(duet_graph *g, model *m) {
  duet_tensor *dead = duet_mul(g, m->b1, m->b1); /* recorded, never reaches the loss */
  duet_tensor *dead_u = duet_mul(g, m->u, m->u);
  (void)dead;
  (void)dead_u;
  duet_tensor *h = duet_linear(g, m->x, m->w1, m->b1);
  duet_tensor *y = duet_linear(g, duet_mul(g, h, h), m->w2, NULL);
  duet_tensor *z = duet_add(g, duet_mul(g, y, m->s), m->frozen);
  int64_t flat = 12;
  duet_tensor *r = duet_reshape(g, m->w1, 1, &flat);
  return duet_add(g, duet_mean(g, z), duet_sum(g, duet_mul(g, r, r)));
}

static int grads_equal(const duet_tensor *t, const float *v) {
  return memcmp(t->grad->data, v, sizeof(float) * (size_t)t->numel) == 0;
}

int main(void) {
  model m;
  model_make(&m);
  duet_graph g;
  duet_graph_init(&g, 1 << 20);
  duet_err err;

  /* Reference: no hook. */
  duet_params_zero_grad(&m.ps);
  duet_tensor *loss = build(&g, &m);
  CHECK(duet_graph_ok(&g));
  CHECK_EQ_INT(duet_backward(&g, loss, &err), DUET_OK);
  duet_tensor *leaves[] = {m.w1, m.b1, m.w2, m.s, m.u, m.x};
  int n_leaves = (int)(sizeof leaves / sizeof leaves[0]);
  float *want[8];
  for (int i = 0; i < n_leaves; i++) want[i] = copy_grad(leaves[i]);

  /* Twice with the hook: the setting survives the reset between steps. */
  seen s = {0};
  duet_graph_set_grad_ready(&g, on_ready, &s);
  for (int round = 0; round < 2; round++) {
    seen_free(&s);
    s.watch = m.w1;
    duet_graph_reset(&g);
    duet_params_zero_grad(&m.ps);
    m.x->grad = NULL; /* a step tensor's gradient lived in the arena just reset */
    loss = build(&g, &m);
    CHECK_EQ_INT(duet_backward(&g, loss, &err), DUET_OK);
    CHECK_EQ_INT(s.n, n_leaves);
    for (int i = 0; i < n_leaves; i++) {
      int at = index_of(&s, leaves[i]);
      CHECK_MSG(at >= 0, "leaf %d reported %s", i, at == -2 ? "twice" : "never");
      if (at < 0) continue;
      /* Final when reported: what it held then is what backward ended with, and that is what
       * a backward without the hook computes. */
      CHECK_MSG(memcmp(s.snapshot[at], leaves[i]->grad->data, sizeof(float) * (size_t)leaves[i]->numel) == 0,
                "leaf %d changed after it was reported", i);
      CHECK_MSG(grads_equal(leaves[i], want[i]), "leaf %d: the hook changed the gradient", i);
    }
    CHECK_EQ_INT(index_of(&s, m.never), -1);
    CHECK_EQ_INT(index_of(&s, m.frozen), -1);
    /* Order: backward finishes s (used late) before w2, and w2 before the first linear, which
     * finishes x and w1, in its input order. b1 is an input of the first linear too, but its
     * last entry is the dead one recorded first of all, so it comes after u's dead entry,
     * recorded second: x, w1, u, b1 close the list. */
    int is = index_of(&s, m.s), iw2 = index_of(&s, m.w2), ix = index_of(&s, m.x), iw1 = index_of(&s, m.w1),
        ib1 = index_of(&s, m.b1), iu = index_of(&s, m.u);
    CHECK_MSG(is < iw2 && iw2 < ix && ix + 1 == iw1 && iw1 + 1 == iu && iu + 1 == ib1 && ib1 == n_leaves - 1,
              "order s %d w2 %d x %d w1 %d b1 %d u %d", is, iw2, ix, iw1, ib1, iu);
    /* Reported during backward, not after it: when s was reported, w1 (still to receive the
     * first linear's contribution) did not hold its final gradient yet. */
    if (is >= 0) CHECK_MSG(!grads_equal(m.w1, s.watch_at[is]), "w1 was already final when s was reported");
  }

  /* Off again: nothing reported. */
  duet_graph_set_grad_ready(&g, NULL, NULL);
  seen_free(&s);
  duet_graph_reset(&g);
  duet_params_zero_grad(&m.ps);
  m.x->grad = NULL;
  loss = build(&g, &m);
  CHECK_EQ_INT(duet_backward(&g, loss, &err), DUET_OK);
  CHECK_EQ_INT(s.n, 0);
  for (int i = 0; i < n_leaves; i++) CHECK(grads_equal(leaves[i], want[i]));

  /* A loss that is itself a leaf: reported once, after the seed. */
  duet_graph_set_grad_ready(&g, on_ready, &s);
  duet_graph_reset(&g);
  int64_t one = 1;
  duet_tensor *lone = duet_params_add(&m.ps, "lone", DUET_F32, 1, &one, 1, &err);
  CHECK(lone != NULL);
  if (lone) {
    CHECK_EQ_INT(duet_backward(&g, lone, &err), DUET_OK);
    CHECK_EQ_INT(s.n, 1);
    CHECK(s.n == 1 && s.leaf[0] == lone && s.snapshot[0][0] == 1.0f);
  }

  seen_free(&s);
  for (int i = 0; i < n_leaves; i++) free(want[i]);
  duet_graph_free(&g);
  m.x->grad = NULL;
  duet_tensor_free(m.x);
  duet_params_free(&m.ps);
  return test_finish("graph_ready");
}

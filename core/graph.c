#include "core/graph.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kernels_elementwise.h"

#ifdef DUET_HAVE_CUDA
/* The CUDA backend's first recorded error (core/cuda/cuda_backend.h). */
int duet_cuda_status(duet_err *err);
#endif

/* ---- device step arena ---- */

#define DEV_ALIGN 256

static size_t dev_align_up(size_t n) { return (n + DEV_ALIGN - 1) & ~(size_t)(DEV_ALIGN - 1); }

static duet_dev_block *dev_block_new(duet_dev_arena *a, size_t size) {
  const duet_backend *be = duet_backend_get(a->device);
  if (!be) return NULL;
  size = dev_align_up(size);
  duet_dev_block *b = malloc(sizeof *b);
  if (!b) return NULL;
  b->base = be->alloc(size);
  if (!b->base) {
    free(b);
    return NULL;
  }
  b->size = size;
  b->used = 0;
  b->next = NULL;
  a->capacity += size;
  a->device_allocs++;
  return b;
}

static void dev_blocks_free(duet_dev_arena *a, duet_dev_block *b) {
  const duet_backend *be = b ? duet_backend_get(a->device) : NULL;
  while (b) {
    duet_dev_block *next = b->next;
    if (be) be->free(b->base);
    free(b);
    b = next;
  }
}

void duet_dev_arena_init(duet_dev_arena *a, duet_device dev) {
  memset(a, 0, sizeof *a);
  a->device = dev;
}

void *duet_dev_arena_alloc(duet_dev_arena *a, size_t bytes) {
  size_t need = dev_align_up(bytes ? bytes : 1);
  duet_dev_block *b = a->head;
  if (!b || b->size - b->used < need) {
    /* Grow geometrically so a first step needs only a handful of blocks. */
    size_t size = a->capacity > need ? a->capacity : need;
    if (size < ((size_t)1 << 20)) size = (size_t)1 << 20;
    duet_dev_block *nb = dev_block_new(a, size);
    if (!nb) return NULL;
    nb->next = a->head;
    a->head = nb;
    b = nb;
  }
  void *p = b->base + b->used;
  b->used += need;
  a->used += need;
  if (a->used > a->high_water) a->high_water = a->used;
  return p;
}

void duet_dev_arena_reset(duet_dev_arena *a) {
  if (a->head && a->head->next) {
    /* Several blocks: replace them by one that holds the largest step seen so far. Freeing
     * device memory waits for the device, so no kernel of the step still uses it. */
    size_t want = duet_arena_fold_size(a->high_water);
    dev_blocks_free(a, a->head);
    a->head = NULL;
    a->capacity = 0;
    a->head = dev_block_new(a, want);
  } else if (a->head) {
    a->head->used = 0;
  }
  a->used = 0;
}

void duet_dev_arena_free(duet_dev_arena *a) {
  dev_blocks_free(a, a->head);
  duet_dev_arena_init(a, a->device);
}

/* ---- graph ---- */

void duet_graph_init(duet_graph *g, size_t arena_bytes) {
  memset(g, 0, sizeof *g);
  duet_arena_init(&g->arena, arena_bytes);
  duet_dev_arena_init(&g->dev_arena, DUET_CUDA);
  g->grad_enabled = 1;
}

void duet_graph_reset(duet_graph *g) {
  duet_arena_reset(&g->arena);
  duet_dev_arena_reset(&g->dev_arena);
  g->tail = NULL;
  g->n_nodes = 0;
  g->failed = 0;
  duet_err_clear(&g->err);
}

void duet_graph_free(duet_graph *g) {
  duet_arena_free(&g->arena);
  duet_dev_arena_free(&g->dev_arena);
  memset(g, 0, sizeof *g);
}

int duet_graph_status(const duet_graph *g, duet_err *err) {
  if (!g->failed) {
#ifdef DUET_HAVE_CUDA
    if (g->dev_arena.head) return duet_cuda_status(err);
#endif
    return DUET_OK;
  }
  if (err) *err = g->err;
  return g->err.code;
}

void *duet_graph_fail(duet_graph *g, int code, const char *fmt, ...) {
  if (!g->failed) {
    g->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    duet_err_vset(&g->err, code, fmt, ap);
    va_end(ap);
  }
  return NULL;
}

int duet_graph_set_grad_enabled(duet_graph *g, int enabled) {
  int prev = g->grad_enabled;
  g->grad_enabled = enabled;
  return prev;
}

void *duet_graph_alloc(duet_graph *g, size_t bytes) {
  void *p = duet_arena_alloc(&g->arena, bytes);
  if (!p) duet_graph_fail(g, DUET_ENOMEM, "out of memory: the step arena could not grow by %zu bytes", bytes);
  return p;
}

duet_tensor *duet_graph_new(duet_graph *g, duet_dtype dt, duet_device dev, int ndim,
                            const int64_t *shape) {
  if (g->failed) return NULL;
  duet_tensor *t = duet_graph_alloc(g, sizeof *t);
  if (!t) return NULL;
  duet_err err;
  if (duet_tensor_init_header(t, dt, dev, ndim, shape, &err) != DUET_OK)
    return duet_graph_fail(g, err.code, "%s", err.msg);
  const duet_backend *be = duet_backend_get(dev);
  if (!be) return duet_graph_fail(g, DUET_ENOTSUP, "device %d has no backend in this build", (int)dev);
  if (dev == DUET_CPU) {
    t->data = duet_graph_alloc(g, duet_tensor_bytes(t));
    if (!t->data) return NULL;
    return t;
  }
  /* Device storage comes from the graph's device arena; the header stays in host memory. */
  if (dev != g->dev_arena.device)
    return duet_graph_fail(g, DUET_ENOTSUP, "step tensors on device %d have no arena", (int)dev);
  t->data = duet_dev_arena_alloc(&g->dev_arena, duet_tensor_bytes(t));
  if (!t->data)
    return duet_graph_fail(g, DUET_ENOMEM, "out of device memory: the step's device arena could not grow by %zu bytes",
                           duet_tensor_bytes(t));
  return t;
}

duet_tensor *duet_graph_zeros(duet_graph *g, duet_dtype dt, duet_device dev, int ndim,
                              const int64_t *shape) {
  duet_tensor *t = duet_graph_new(g, dt, dev, ndim, shape);
  /* The backend's zero, on the CPU too: it clears large buffers with every thread. */
  if (t) duet_backend_get(dev)->zero(t->data, duet_tensor_bytes(t));
  return t;
}

duet_tensor *duet_graph_new_like(duet_graph *g, const duet_tensor *like) {
  if (!like) return NULL;
  return duet_graph_new(g, like->dtype, like->device, like->ndim, like->shape);
}

duet_tensor *duet_graph_from_host(duet_graph *g, duet_dtype dt, duet_device dev, int ndim,
                                  const int64_t *shape, const void *host) {
  duet_tensor *t = duet_graph_new(g, dt, dev, ndim, shape);
  if (t) duet_backend_get(dev)->copy_from_host(t->data, host, duet_tensor_bytes(t));
  return t;
}

duet_node *duet_graph_record(duet_graph *g, const char *op, duet_backward_fn backward,
                             duet_tensor *out, int n_in, duet_tensor *const *inputs) {
  if (g->failed || !g->grad_enabled || !out) return NULL;
  int any = 0;
  for (int i = 0; i < n_in; i++)
    if (inputs[i] && inputs[i]->requires_grad) any = 1;
  if (!any) return NULL;
  duet_node *n = duet_graph_alloc(g, sizeof *n);
  duet_tensor **in = duet_graph_alloc(g, sizeof *in * (size_t)(n_in ? n_in : 1));
  if (!n || !in) return NULL;
  memset(n, 0, sizeof *n);
  for (int i = 0; i < n_in; i++) in[i] = inputs[i];
  n->op = op;
  n->backward = backward;
  n->out = out;
  n->in = in;
  n->n_in = n_in;
  n->prev = g->tail;
  g->tail = n;
  g->n_nodes++;
  out->requires_grad = 1;
  return n;
}

duet_tensor *duet_graph_grad(duet_graph *g, duet_tensor *t) {
  if (t->grad) return t->grad;
  /* Parameters get their gradient buffers when created (core/params.c); anything else that
   * reaches here is a step tensor, so its gradient belongs to the step. */
  t->grad = duet_graph_zeros(g, t->dtype, t->device, t->ndim, t->shape);
  return t->grad;
}

duet_tensor *duet_graph_grad_fresh(duet_graph *g, duet_tensor *t, int *fresh) {
  *fresh = 0;
  if (t->grad) return t->grad;
  t->grad = duet_graph_new(g, t->dtype, t->device, t->ndim, t->shape);
  *fresh = t->grad != NULL;
  return t->grad;
}

int duet_graph_grad_pass(duet_graph *g, duet_tensor *t, const duet_tensor *from) {
  if (t->grad || !from || from->dtype != t->dtype || from->device != t->device || from->numel != t->numel)
    return 0;
  duet_tensor *v = duet_graph_alloc(g, sizeof *v);
  if (!v) return 0;
  duet_err err;
  if (duet_tensor_init_header(v, t->dtype, t->device, t->ndim, t->shape, &err) != DUET_OK) return 0;
  v->data = from->data;
  t->grad = v;
  return 1;
}

/* ---- gradient-ready bookkeeping ---- */

void duet_graph_set_grad_ready(duet_graph *g, duet_grad_ready_fn fn, void *ctx) {
  g->grad_ready = fn;
  g->grad_ready_ctx = fn ? ctx : NULL;
}

/* Open addressing over tensor addresses: a tensor's slot holds the backward position (0 is the
 * tail, the first entry backward runs) of the last entry that takes it as an input, or one of
 * the marks below. */
#define READY_OUTPUT (-1) /* some entry's output: not a leaf */
#define READY_DONE (-2)   /* already placed in the report list */

typedef struct ready_slot {
  const duet_tensor *key;
  int64_t pos;
} ready_slot;

typedef struct ready_plan {
  duet_tensor **leaf; /* in report order */
  int64_t *pos;       /* the position after which leaf[i] is reported */
  int64_t count, next;
} ready_plan;

static ready_slot *ready_find(ready_slot *tab, size_t mask, const duet_tensor *t) {
  size_t h = (size_t)(((uintptr_t)t >> 4) * 0x9E3779B97F4A7C15ull) & mask;
  while (tab[h].key && tab[h].key != t) h = (h + 1) & mask;
  return &tab[h];
}

/* Three walks over the tape in backward order: mark the outputs, give every leaf the latest
 * position that uses it, then list the leaves by that position (an entry's leaves in its input
 * order, which keeps the report order a function of the tape alone, not of addresses). */
static int ready_plan_build(duet_graph *g, const duet_tensor *loss, ready_plan *rp) {
  memset(rp, 0, sizeof *rp);
  size_t refs = 1;
  for (duet_node *n = g->tail; n; n = n->prev) refs += 1 + (size_t)n->n_in;
  size_t cap = 64;
  while (cap < 2 * refs) cap <<= 1;
  ready_slot *tab = duet_graph_alloc(g, sizeof *tab * cap);
  if (!tab) return -1;
  memset(tab, 0, sizeof *tab * cap);
  size_t mask = cap - 1;
  for (duet_node *n = g->tail; n; n = n->prev) {
    ready_slot *s = ready_find(tab, mask, n->out);
    s->key = n->out;
    s->pos = READY_OUTPUT;
  }
  int64_t leaves = 0, pos = 0;
  for (duet_node *n = g->tail; n; n = n->prev, pos++)
    for (int i = 0; i < n->n_in; i++) {
      duet_tensor *t = n->in[i];
      if (!t || !t->requires_grad) continue;
      ready_slot *s = ready_find(tab, mask, t);
      if (!s->key) {
        s->key = t;
        leaves++;
      } else if (s->pos == READY_OUTPUT) {
        continue;
      }
      s->pos = pos;
    }
  /* A loss that is itself a leaf (no entry made it) is final once seeded. */
  ready_slot *ls = ready_find(tab, mask, loss);
  int loss_leaf = !ls->key;
  rp->leaf = duet_graph_alloc(g, sizeof *rp->leaf * (size_t)(leaves + 1));
  rp->pos = duet_graph_alloc(g, sizeof *rp->pos * (size_t)(leaves + 1));
  if (!rp->leaf || !rp->pos) return -1;
  if (loss_leaf) {
    rp->leaf[rp->count] = (duet_tensor *)loss;
    rp->pos[rp->count++] = -1;
  }
  pos = 0;
  for (duet_node *n = g->tail; n; n = n->prev, pos++)
    for (int i = 0; i < n->n_in; i++) {
      duet_tensor *t = n->in[i];
      if (!t || !t->requires_grad) continue;
      ready_slot *s = ready_find(tab, mask, t);
      if (s->pos != pos) continue;
      s->pos = READY_DONE;
      rp->leaf[rp->count] = t;
      rp->pos[rp->count++] = pos;
    }
  return 0;
}

/* Reports the leaves whose last entry is at position pos or before. */
static void ready_report(duet_graph *g, ready_plan *rp, int64_t pos) {
  while (rp->next < rp->count && rp->pos[rp->next] <= pos) g->grad_ready(g->grad_ready_ctx, rp->leaf[rp->next++]);
}

int duet_backward(duet_graph *g, duet_tensor *loss, duet_err *err) {
  if (g->failed) return duet_graph_status(g, err);
  if (!loss) return duet_err_set(err, DUET_EINVAL, "backward: no loss tensor");
  if (loss->numel != 1)
    return duet_err_set(err, DUET_EINVAL, "backward: loss has %lld elements, expected 1",
                        (long long)loss->numel);
  if (!loss->requires_grad)
    return duet_err_set(err, DUET_EINVAL, "backward: loss does not depend on anything that requires a gradient");
  duet_tensor *seed = duet_graph_grad(g, loss);
  if (!seed) return duet_graph_status(g, err);
  if (loss->device == DUET_CPU) {
    duet_tensor_set(seed, 0, duet_tensor_get(seed, 0) + 1.0);
  } else {
    /* Device memory is not host-addressable: copy a 1 of the loss's dtype over and add it. */
    unsigned char host[8] = {0};
    duet_tensor h;
    int64_t one_shape = 1;
    int rc = duet_tensor_init_header(&h, loss->dtype, DUET_CPU, 1, &one_shape, err);
    if (rc != DUET_OK) return rc;
    h.data = host;
    duet_tensor_set(&h, 0, 1.0);
    duet_tensor *one = duet_graph_from_host(g, loss->dtype, loss->device, 1, &one_shape, host);
    if (!one) return duet_graph_status(g, err);
    duet_backend_get(loss->device)->elementwise->axpy(1.0, one, seed);
  }
  /* The plan is made only when someone listens, so that plain backward costs nothing more. */
  ready_plan rp = {0};
  int hooked = g->grad_ready != NULL;
  if (hooked) {
    if (ready_plan_build(g, loss, &rp)) return duet_graph_status(g, err);
    ready_report(g, &rp, -1);
  }
  int64_t pos = 0;
  for (duet_node *n = g->tail; n; n = n->prev, pos++) {
    /* A node nothing downstream of which reached the loss adds nothing; its leaves may still
     * be due for their report. */
    if (n->out->grad) {
      n->backward(g, n);
      if (g->failed) return duet_graph_status(g, err);
    }
    if (hooked) ready_report(g, &rp, pos);
  }
  if (loss->device != DUET_CPU) return duet_graph_status(g, err);
  return DUET_OK;
}

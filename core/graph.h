/* The autograd tape of one step.
 *
 * A graph owns the step's arena. Ops (core/ops.h) allocate their outputs from it and, when
 * gradients are enabled and an input requires one, append a node holding the backward
 * function and what it saved. duet_backward() walks the nodes in reverse.
 *
 * Errors are sticky: an op given bad shapes records one message in the graph and returns
 * NULL, later ops given NULL return NULL, and the caller checks duet_graph_ok() once,
 * after building the whole expression. */
#ifndef DUET_CORE_GRAPH_H
#define DUET_CORE_GRAPH_H

#include "core/arena.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/tensor.h"

/* Step memory on a device: a bump allocator like duet_arena (core/arena.h) over blocks of
 * device memory taken from the device backend's alloc (cudaMalloc for the GPU). The first
 * step grows it block by block; the reset after it folds all blocks into one block as large
 * as the step needed, so from the second step on a step of the same shape allocates no
 * device memory. The block list is host memory; nothing is allocated until the first use. */
typedef struct duet_dev_block {
  struct duet_dev_block *next;
  size_t size, used;
  unsigned char *base; /* device memory */
} duet_dev_block;

typedef struct duet_dev_arena {
  duet_device device;
  duet_dev_block *head; /* current block; older ones follow */
  size_t used;          /* bytes handed out since the last reset, all blocks */
  size_t high_water;    /* most bytes ever handed out between two resets */
  size_t capacity;      /* bytes in all blocks */
  int64_t device_allocs; /* blocks allocated from the device so far (ever) */
} duet_dev_arena;

void duet_dev_arena_init(duet_dev_arena *a, duet_device dev);
/* 256-byte aligned device memory; NULL when the device has no backend or no memory left. */
void *duet_dev_arena_alloc(duet_dev_arena *a, size_t bytes);
void duet_dev_arena_reset(duet_dev_arena *a);
void duet_dev_arena_free(duet_dev_arena *a);

typedef struct duet_graph duet_graph;
typedef struct duet_node duet_node;
typedef void (*duet_backward_fn)(duet_graph *g, duet_node *node);

/* Told during duet_backward that a leaf's gradient is final: no later tape entry of this
 * backward adds to it (see duet_graph_set_grad_ready). */
typedef void (*duet_grad_ready_fn)(void *ctx, duet_tensor *leaf);

struct duet_node {
  const char *op;
  duet_backward_fn backward;
  duet_tensor *out;
  duet_tensor **in; /* n_in inputs, in the op's argument order (entries may be NULL) */
  int n_in;
  duet_tensor *saved[4]; /* extra tensors the backward needs (e.g. layernorm's mean/rstd) */
  double f[4];           /* scalar arguments */
  int64_t i[8];          /* integer arguments */
  void *extra;           /* op-specific arena data */
  duet_node *prev;
};

struct duet_graph {
  duet_arena arena;         /* host: tape, headers, CPU tensors */
  duet_dev_arena dev_arena; /* storage of DUET_CUDA step tensors */
  duet_node *tail;
  int64_t n_nodes;
  int grad_enabled;
  int failed;
  duet_err err;
  duet_grad_ready_fn grad_ready; /* NULL: backward does no bookkeeping for it */
  void *grad_ready_ctx;
};

void duet_graph_init(duet_graph *g, size_t arena_bytes);
/* Drops every tensor and node of the step and clears the error. */
void duet_graph_reset(duet_graph *g);
void duet_graph_free(duet_graph *g);

static inline int duet_graph_ok(const duet_graph *g) { return !g->failed; }
/* Copies the graph's first error into err (when failed) and returns its code. A graph that
 * has put tensors on the GPU also reports the CUDA backend's first error (a kernel that could
 * not run; see core/cuda/cuda_backend.h). */
int duet_graph_status(const duet_graph *g, duet_err *err);
/* Records the first error; returns NULL so ops can `return duet_graph_fail(...)`. */
void *duet_graph_fail(duet_graph *g, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Returns the previous setting. With gradients off no node is recorded (inference). */
int duet_graph_set_grad_enabled(duet_graph *g, int enabled);

/* Step tensors: header from the arena, storage from the arena of the tensor's device (the
 * host arena for DUET_CPU, dev_arena for DUET_CUDA), uninitialised (new) or zeroed. */
duet_tensor *duet_graph_new(duet_graph *g, duet_dtype dt, duet_device dev, int ndim,
                            const int64_t *shape);
duet_tensor *duet_graph_zeros(duet_graph *g, duet_dtype dt, duet_device dev, int ndim,
                              const int64_t *shape);
duet_tensor *duet_graph_new_like(duet_graph *g, const duet_tensor *like);
/* A step tensor holding a copy of host data (CPU layout, same dtype), copied to the device
 * when dev is not the CPU. */
duet_tensor *duet_graph_from_host(duet_graph *g, duet_dtype dt, duet_device dev, int ndim,
                                  const int64_t *shape, const void *host);
void *duet_graph_alloc(duet_graph *g, size_t bytes); /* raw arena memory (sticky OOM error) */

/* Appends a node when gradients are enabled and some input requires a gradient; marks out as
 * requiring one. Returns the node (for saving extra state) or NULL when none was recorded. */
duet_node *duet_graph_record(duet_graph *g, const char *op, duet_backward_fn backward,
                             duet_tensor *out, int n_in, duet_tensor *const *inputs);

/* t's gradient, created zeroed on first use (from the arena unless t is a parameter). */
duet_tensor *duet_graph_grad(duet_graph *g, duet_tensor *t);
/* The same for a backward whose kernel can store instead of add: *fresh is set to 1 when
 * this call created the gradient, which is then uninitialised, and the caller must write
 * every element of it (a GEMM with beta 0, a copy) before anything else reads or adds to it;
 * otherwise (a gradient some entry already wrote, and every parameter's, which accumulates
 * across micro-batches) *fresh is 0 and the caller adds as usual. Skipping the zeroing saves
 * a pass over memory per activation gradient. When two inputs of one entry are the same
 * tensor, the one asked first gets fresh = 1, so the backward must write it first. */
duet_tensor *duet_graph_grad_fresh(duet_graph *g, duet_tensor *t, int *fresh);

/* For an entry whose derivative with respect to its input t is the identity (a reshape, the
 * residual path of an add): when t has no gradient yet, t's gradient becomes `from`'s storage
 * seen in t's shape, with nothing zeroed, added or copied, and 1 is returned; otherwise 0 (the
 * caller adds `from` as usual). `from` must be the gradient of the entry's output: backward
 * runs entries in reverse order, so when an entry's backward runs its output's gradient is
 * complete and nothing reads it afterwards, and t may go on to accumulate in that storage. */
int duet_graph_grad_pass(duet_graph *g, duet_tensor *t, const duet_tensor *from);

/* Seeds d(loss)/d(loss) = 1 (loss must have one element) and runs the tape backwards.
 * Parameter gradients accumulate (call duet_params_zero_grad between optimizer steps). A loss
 * on the GPU is seeded by a copy to the device, never a host write. */
int duet_backward(duet_graph *g, duet_tensor *loss, duet_err *err);

/* With fn set, every duet_backward calls fn(ctx, leaf) once for each leaf of its tape (a
 * tensor that requires a gradient and is no entry's output: the parameters, and inputs that
 * require one), right after the tape entry that is the last, in backward order, to take it as
 * an input; from then on this backward leaves leaf->grad alone. This is what lets a
 * data-parallel caller start reducing a parameter's gradient while backward still runs.
 *
 * Leaves come in the order backward finishes them (about the reverse of the forward pass);
 * several finished by one entry come in its input order. On a device, final means that every
 * kernel writing the gradient has been queued on the backend's stream: use it in stream order.
 * A backward that fails stops reporting where it stopped; leaves the tape never reaches are
 * not reported. The setting survives duet_graph_reset; fn NULL turns it off, and backward then
 * does no extra work. The bookkeeping (walks over the tape before the first entry runs) takes
 * step-arena memory. */
void duet_graph_set_grad_ready(duet_graph *g, duet_grad_ready_fn fn, void *ctx);

#endif

/* The MPI side of the trainer's dist seam (train/dist_mpi.h). */
#include "train/dist_mpi.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/optim.h"

#ifdef DUET_HAVE_CUDA
#include "core/cuda/cuda_backend.h"
#endif
#ifdef DUET_HAVE_NCCL
#include <nccl.h>

#include "core/cuda/nccl_comm.h"
#endif

#ifdef __GLIBC__
#include <malloc.h>
#endif

#define DEFAULT_BUCKET_BYTES ((size_t)25 << 20)
/* A gradient at least this large (or half a bucket, if less) is reduced where it lies: copying
 * it into a bucket and back costs more than the collective it saves. */
#define INPLACE_MIN_ELEMS ((int64_t)16384)
/* MPI counts are int; larger arrays go in pieces of this many elements. */
#define MAX_CHUNK ((int64_t)1 << 30)

/* Optimizer moments of one contiguous range of the flat vector of trainable elements (the
 * trainable parameters, in the set's order, end to end). */
typedef struct zero_shard {
  duet_adamw *opt;  /* the optimizer whose moments this shard took over */
  int count;        /* opt->count when attached */
  int64_t *offset;  /* [count] flat start of each parameter; -1 for frozen ones */
  int64_t total;    /* trainable elements */
  int64_t lo, hi;   /* this rank's range */
  float *m, *v;     /* [hi - lo] */
  int gathered;     /* rank 0: opt's moment tensors hold full storage for a save */
} zero_shard;

/* One bucket of the overlap plan: parameters that follow each other in ready order, about a
 * bucket's worth of gradient, started as one group as soon as all of them are final. */
typedef struct ov_bucket {
  int first, count;        /* members: order[first .. first + count) */
  int pending;             /* members not yet reported final in this backward */
  int64_t pack_at, pack_n; /* the packed (small) members' slice of pack */
} ov_bucket;

/* The all-reduce overlapped with backward (grads_begin, grad_ready, grads_end). The plan is
 * the order in which rank 0's first overlapped backward finished the gradients, broadcast so
 * that every rank starts the same collectives in the same order whatever its own order. */
typedef struct overlap {
  const duet_param_set *ps; /* the set the tables below were made for */
  int count;                /* ps->count then */
  size_t hmask;             /* tensor -> parameter index, open addressing */
  const duet_tensor **hkey;
  int *hval;
  int *order;      /* [count] parameter indices: recorded, then (planned) the plan */
  int n_order;
  unsigned char *ready; /* [count] reported final in this backward */
  int *bucket_of;  /* [count] -1: not trainable */
  ov_bucket *b;
  int nb;
  float *pack;     /* host gradients below inplace_elems, packed per bucket */
  int64_t pack_elems;
  MPI_Request *req; /* every collective of a step, in the order they are started */
  int n_req;
  int planned;
  int active;      /* between grads_begin and grads_end */
  int next;        /* the next bucket to start */
  int req_started, req_open; /* requests posted so far; the first not known complete */
  int done;        /* this step's gradients are summed: allreduce_grads has nothing left */
  int rc;          /* the first failure inside grad_ready, reported by grads_end */
  duet_err err;
} overlap;

typedef struct mpi_ctx {
  MPI_Comm comm;
  int rank, world, local_rank, local_world;
  int owns_init; /* MPI_Init was ours, so MPI_Finalize is too */
  int broken;    /* an MPI call failed: peers may be stuck in a collective */
  int failed;    /* a failure was agreed on; agreed holds it */
  duet_err agreed;
  int *flags;    /* [world] the agreement's failure flags */
  int *counts, *displs; /* [world] per-rank pieces of a gather */
  float *bucket;
  int64_t bucket_elems;
  int64_t inplace_elems; /* gradients this large are not packed */
  int zero1;
  zero_shard z;
  overlap ov;
#ifdef DUET_HAVE_NCCL
  duet_nccl *nccl; /* made at the first reduction of gradients that live on the GPU */
#endif
  duet_dist_mpi_stats stats;
} mpi_ctx;

/* The message of an agreement: the failing rank's code and text, as one broadcast. */
typedef struct failure_msg {
  int code;
  char msg[sizeof(((duet_err *)0)->msg)];
} failure_msg;

int duet_dist_mpi_launched(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    if (getenv(vars[i])) return 1;
  return 0;
}

static int mpi_error(mpi_ctx *c, int mrc, const char *what, duet_err *err) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(mrc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error %d", mrc);
  if (c) c->broken = 1;
  return duet_err_set(err, DUET_EIO, "mpi: %s on rank %d failed: %s", what, c ? c->rank : -1, text);
}

static void *alloc_floats(int64_t n) {
  size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
  return aligned_alloc(64, bytes);
}

static int ensure_bucket(mpi_ctx *c, duet_err *err) {
  if (c->bucket) return DUET_OK;
  c->bucket = alloc_floats(c->bucket_elems);
  if (!c->bucket)
    return duet_err_set(err, DUET_ENOMEM, "mpi: out of memory for a %lld-byte all-reduce bucket",
                        (long long)c->bucket_elems * 4);
  return DUET_OK;
}

static int allreduce(mpi_ctx *c, void *values, int64_t n, MPI_Datatype type, size_t elem, duet_err *err) {
  for (int64_t done = 0; done < n;) {
    int64_t k = n - done < MAX_CHUNK ? n - done : MAX_CHUNK;
    int mrc = MPI_Allreduce(MPI_IN_PLACE, (char *)values + (size_t)done * elem, (int)k, type, MPI_SUM, c->comm);
    if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "MPI_Allreduce", err);
    done += k;
  }
  return DUET_OK;
}

/* Every rank states whether it failed (code != 0, with its message); all learn the lowest
 * failing rank's code and message. The only collective a failed rank still makes, so every
 * collective that may follow a rank-local failure must come after one of these. */
static int agree(mpi_ctx *c, int code, const char *msg, duet_err *err) {
  if (c->failed) {
    if (err) *err = c->agreed;
    return c->agreed.code;
  }
  if (c->broken) return duet_err_set(err, DUET_EIO, "mpi: rank %d: an earlier MPI call failed", c->rank);
  memset(c->flags, 0, sizeof(int) * (size_t)c->world);
  c->flags[c->rank] = code != 0;
  int mrc = MPI_Allreduce(MPI_IN_PLACE, c->flags, c->world, MPI_INT, MPI_MAX, c->comm);
  if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "the status agreement", err);
  int first = -1, failing = 0;
  for (int r = 0; r < c->world; r++)
    if (c->flags[r]) {
      if (first < 0) first = r;
      failing++;
    }
  if (first < 0) return DUET_OK;
  failure_msg m;
  memset(&m, 0, sizeof m);
  if (c->rank == first) {
    m.code = code;
    snprintf(m.msg, sizeof m.msg, "%s", msg && *msg ? msg : "failed (no message)");
  }
  mrc = MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, first, c->comm);
  if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "broadcasting a failure", err);
  if (m.code >= 0) m.code = DUET_EINVAL;
  if (failing > 1)
    duet_err_set(&c->agreed, m.code, "rank %d (first of %d failing ranks): %s", first, failing, m.msg);
  else
    duet_err_set(&c->agreed, m.code, "rank %d: %s", first, m.msg);
  c->failed = 1;
  if (err) *err = c->agreed;
  return c->agreed.code;
}

static int sum_f64(void *ctx, double *values, int64_t n, duet_err *err) {
  mpi_ctx *c = ctx;
  double t0 = MPI_Wtime();
  int rc = agree(c, DUET_OK, NULL, err);
  if (!rc) rc = allreduce(c, values, n, MPI_DOUBLE, sizeof(double), err);
  c->stats.sum_calls++;
  c->stats.sum_seconds += MPI_Wtime() - t0;
  return rc;
}

static int sum_f32(void *ctx, float *values, int64_t n, duet_err *err) {
  mpi_ctx *c = ctx;
  double t0 = MPI_Wtime();
  int rc = allreduce(c, values, n, MPI_FLOAT, sizeof(float), err);
  c->stats.grad_calls += (n + MAX_CHUNK - 1) / MAX_CHUNK;
  c->stats.grad_bytes += n * (int64_t)sizeof(float);
  c->stats.grad_seconds += MPI_Wtime() - t0;
  return rc;
}

static int trainable(const duet_tensor *p) { return p->requires_grad && p->grad; }

/* Reduces the packed gradients of parameters [from, to) (the small trainable ones among them)
 * and copies the sums back. */
static int flush_bucket(mpi_ctx *c, duet_param_set *ps, int from, int to, int64_t fill, duet_err *err) {
  if (fill == 0) return DUET_OK;
  int mrc = MPI_Allreduce(MPI_IN_PLACE, c->bucket, (int)fill, MPI_FLOAT, MPI_SUM, c->comm);
  if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "the gradient all-reduce", err);
  c->stats.grad_calls++;
  int64_t at = 0;
  for (int i = from; i < to; i++) {
    duet_tensor *p = ps->items[i];
    if (!trainable(p) || p->grad->numel >= c->inplace_elems) continue;
    memcpy(p->grad->data, c->bucket + at, sizeof(float) * (size_t)p->grad->numel);
    at += p->grad->numel;
  }
  return DUET_OK;
}

/* Gradients of at least inplace_elems are reduced where they lie (in bucket-sized pieces);
 * smaller ones (biases, norm gains) are packed, in the set's order, into buckets, so that they
 * cost a few collectives rather than one each. For two ranks every element is a + b whatever
 * the bucketing, so the result is the per-parameter path's, bit for bit. */
static int reduce_grads_host(mpi_ctx *c, duet_param_set *ps, duet_err *err) {
  double t0 = MPI_Wtime();
  int rc = ensure_bucket(c, err);
  int from = 0;
  int64_t fill = 0;
  for (int i = 0; i < ps->count && !rc; i++) {
    duet_tensor *p = ps->items[i];
    if (!trainable(p)) continue;
    if (p->grad->dtype != DUET_F32) {
      rc = duet_err_set(err, DUET_ENOTSUP, "mpi: gradient of '%s' is %s; f32 needed", p->name,
                        duet_dtype_name(p->grad->dtype));
      break;
    }
    int64_t n = p->grad->numel;
    c->stats.grad_bytes += n * (int64_t)sizeof(float);
    if (n >= c->inplace_elems) {
      float *g = p->grad->data;
      for (int64_t done = 0; done < n && !rc; done += c->bucket_elems) {
        int64_t k = n - done < c->bucket_elems ? n - done : c->bucket_elems;
        int mrc = MPI_Allreduce(MPI_IN_PLACE, g + done, (int)k, MPI_FLOAT, MPI_SUM, c->comm);
        if (mrc != MPI_SUCCESS) rc = mpi_error(c, mrc, "the gradient all-reduce", err);
        c->stats.grad_calls++;
      }
      continue;
    }
    if (fill + n > c->bucket_elems) {
      if ((rc = flush_bucket(c, ps, from, i, fill, err))) break;
      from = i;
      fill = 0;
    }
    memcpy(c->bucket + fill, p->grad->data, sizeof(float) * (size_t)n);
    fill += n;
  }
  if (!rc) rc = flush_bucket(c, ps, from, ps->count, fill, err);
  c->stats.grad_seconds += MPI_Wtime() - t0;
  return rc;
}


/* ---- gradients on the GPU: NCCL ---- */

#ifdef DUET_HAVE_NCCL
/* The communicator, made on first use: rank 0 makes the id, MPI carries it to the others, and
 * every rank joins on its current device (duet_dist_mpi_select_gpu chose it by local rank).
 * Every rank gets here at the same point (the first reduction of device gradients). */
static int nccl_ensure(mpi_ctx *c, duet_err *err) {
  if (c->nccl) return DUET_OK;
  unsigned char id[DUET_NCCL_ID_BYTES] = {0};
  int rc = c->rank == 0 ? duet_nccl_unique_id(id, err) : DUET_OK;
  /* The id is agreed on before the broadcast, so that a rank 0 without one stops everyone. */
  if ((rc = agree(c, rc, rc ? err->msg : NULL, err))) return rc;
  int mrc = MPI_Bcast(id, DUET_NCCL_ID_BYTES, MPI_BYTE, 0, c->comm);
  if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "broadcasting the NCCL id", err);
  rc = duet_nccl_init(&c->nccl, id, c->world, c->rank, err);
  if (rc) c->broken = 1; /* the others may wait in ncclCommInitRank: only an abort ends that */
  return rc;
}

/* Queues the sums of parameters order[from .. to) (indices into ps) on the compute stream, as
 * one NCCL group, so that NCCL fuses them into few kernels: the device counterpart of packing
 * small gradients into a host bucket, without the copies. */
static int nccl_group(mpi_ctx *c, duet_param_set *ps, const int *order, int from, int to, duet_err *err) {
  ncclResult_t r = ncclGroupStart();
  int rc = r == ncclSuccess ? DUET_OK : duet_err_set(err, DUET_EIO, "nccl: group start: %s", ncclGetErrorString(r));
  int64_t calls = 0;
  for (int k = from; k < to && !rc; k++) {
    duet_tensor *p = ps->items[order ? order[k] : k];
    if (!trainable(p)) continue;
    rc = duet_nccl_allreduce_f32(c->nccl, p->grad->data, (size_t)p->grad->numel, DUET_NCCL_SUM, NULL, err);
    c->stats.grad_bytes += p->grad->numel * (int64_t)sizeof(float);
    calls++;
  }
  r = ncclGroupEnd();
  if (!rc && r != ncclSuccess) rc = duet_err_set(err, DUET_EIO, "nccl: group end: %s", ncclGetErrorString(r));
  c->stats.grad_calls += calls;
  /* A half-queued group leaves peers waiting inside NCCL: only an abort ends that. */
  if (rc) c->broken = 1;
  return rc;
}
#endif

/* Device gradients: NCCL on the compute stream, in groups of about a bucket. They complete in
 * stream order, before the clipping and optimizer kernels queued after them. */
static int reduce_grads_device(mpi_ctx *c, duet_param_set *ps, duet_err *err) {
#ifdef DUET_HAVE_NCCL
  double t0 = MPI_Wtime();
  int rc = nccl_ensure(c, err);
  int from = 0;
  int64_t fill = 0;
  for (int i = 0; i < ps->count && !rc; i++) {
    if (!trainable(ps->items[i])) continue;
    fill += ps->items[i]->grad->numel;
    if (fill >= c->bucket_elems) {
      rc = nccl_group(c, ps, NULL, from, i + 1, err);
      from = i + 1;
      fill = 0;
    }
  }
  if (!rc) rc = nccl_group(c, ps, NULL, from, ps->count, err);
  c->stats.grad_seconds += MPI_Wtime() - t0;
  return rc;
#else
  (void)ps;
  return duet_err_set(err, DUET_ENOTSUP, "mpi: rank %d: gradients on a GPU need a build with NCCL", c->rank);
#endif
}

static int reduce_grads(void *ctx, duet_param_set *ps, duet_err *err) {
  mpi_ctx *c = ctx;
  /* The overlapped backward of this step has summed everything already. */
  if (c->ov.done) {
    c->ov.done = 0;
    return DUET_OK;
  }
  return ps->device == DUET_CPU ? reduce_grads_host(c, ps, err) : reduce_grads_device(c, ps, err);
}

/* ---- the all-reduce overlapped with backward ---- */

static void ov_free(overlap *o) {
  free(o->hkey);
  free(o->hval);
  free(o->order);
  free(o->ready);
  free(o->bucket_of);
  free(o->b);
  free(o->pack);
  free(o->req);
  memset(o, 0, sizeof *o);
}

static size_t ov_hash(const overlap *o, const duet_tensor *t) {
  return (size_t)(((uintptr_t)t >> 4) * 0x9E3779B97F4A7C15ull) & o->hmask;
}

/* The index of parameter t in the set, -1 for any other tensor (an input that requires a
 * gradient, say). */
static int ov_index(const overlap *o, const duet_tensor *t) {
  for (size_t h = ov_hash(o, t); o->hkey[h]; h = (h + 1) & o->hmask)
    if (o->hkey[h] == t) return o->hval[h];
  return -1;
}

/* Tables for ps, made again (and the plan with them) when the set is another one. */
static int ov_prepare(mpi_ctx *c, const duet_param_set *ps, duet_err *err) {
  overlap *o = &c->ov;
  if (o->ps == ps && o->count == ps->count) return DUET_OK;
  ov_free(o);
  size_t cap = 64;
  while (cap < 2 * (size_t)ps->count) cap <<= 1;
  size_t n = (size_t)(ps->count > 0 ? ps->count : 1);
  o->hkey = calloc(cap, sizeof *o->hkey);
  o->hval = calloc(cap, sizeof *o->hval);
  o->order = calloc(n, sizeof *o->order);
  o->ready = calloc(n, 1);
  o->bucket_of = calloc(n, sizeof *o->bucket_of);
  if (!o->hkey || !o->hval || !o->order || !o->ready || !o->bucket_of) {
    ov_free(o);
    return duet_err_set(err, DUET_ENOMEM, "mpi: out of memory for the overlap tables");
  }
  o->hmask = cap - 1;
  for (int i = 0; i < ps->count; i++) {
    size_t h = ov_hash(o, ps->items[i]);
    while (o->hkey[h]) h = (h + 1) & o->hmask;
    o->hkey[h] = ps->items[i];
    o->hval[h] = i;
  }
  o->ps = ps;
  o->count = ps->count;
  return DUET_OK;
}

/* Collectives of one bucket's members; with host gradients, small ones share one (packed). */
static int ov_bucket_requests(const mpi_ctx *c, const duet_param_set *ps, const ov_bucket *b) {
  int n = b->pack_n > 0;
  for (int k = b->first; k < b->first + b->count; k++) {
    int64_t e = ps->items[c->ov.order[k]]->grad->numel;
    if (ps->device != DUET_CPU || e >= c->inplace_elems) n += (int)((e + c->bucket_elems - 1) / c->bucket_elems);
  }
  return n;
}

/* Makes the plan at the end of the first overlapped backward: rank 0's order (parameters its
 * backward never finished go last, in the set's order), cut into buckets of about bucket_elems
 * elements; a gradient larger than a bucket is a bucket of its own. Every rank calls it; the
 * caller agrees on the outcome. */
static int ov_plan(mpi_ctx *c, const duet_param_set *ps, duet_err *err) {
  overlap *o = &c->ov;
  int n = c->rank == 0 ? o->n_order : 0;
  int mrc = MPI_Bcast(&n, 1, MPI_INT, 0, c->comm);
  if (mrc == MPI_SUCCESS) mrc = MPI_Bcast(o->order, n, MPI_INT, 0, c->comm);
  if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "broadcasting the gradient order", err);
  memset(o->ready, 0, (size_t)o->count);
  int k = 0;
  for (int i = 0; i < n; i++) {
    int p = o->order[i];
    if (p < 0 || p >= o->count || o->ready[p] || !trainable(ps->items[p]))
      return duet_err_set(err, DUET_EINVAL, "mpi: rank %d: rank 0's gradient order names parameter %d, "
                          "which is not one of this rank's %d trainable ones", c->rank, p, o->count);
    o->ready[p] = 1;
    o->order[k++] = p;
  }
  for (int p = 0; p < o->count; p++)
    if (!o->ready[p] && trainable(ps->items[p])) o->order[k++] = p;
  o->n_order = k;
  o->b = calloc((size_t)(k > 0 ? k : 1), sizeof *o->b);
  if (!o->b) return duet_err_set(err, DUET_ENOMEM, "mpi: out of memory for the overlap plan");
  for (int p = 0; p < o->count; p++) o->bucket_of[p] = -1;
  o->nb = 0;
  o->pack_elems = 0;
  int64_t fill = 0;
  for (int i = 0; i < k; i++) {
    int64_t e = ps->items[o->order[i]]->grad->numel;
    /* A gradient of a bucket or more fills the one it opens, so it is alone in it. */
    if (o->nb == 0 || fill + e > c->bucket_elems) {
      o->b[o->nb].first = i;
      o->b[o->nb].pack_at = o->pack_elems;
      o->nb++;
      fill = 0;
    }
    ov_bucket *b = &o->b[o->nb - 1];
    b->count++;
    fill += e;
    o->bucket_of[o->order[i]] = o->nb - 1;
    if (ps->device == DUET_CPU && e < c->inplace_elems) {
      b->pack_n += e;
      o->pack_elems += e;
    }
  }
  o->n_req = 0;
  for (int i = 0; i < o->nb; i++) o->n_req += ov_bucket_requests(c, ps, &o->b[i]);
  o->pack = alloc_floats(o->pack_elems);
  o->req = malloc(sizeof *o->req * (size_t)(o->n_req > 0 ? o->n_req : 1));
  if (!o->pack || !o->req) return duet_err_set(err, DUET_ENOMEM, "mpi: out of memory for the overlap buckets");
  o->planned = 1;
  return DUET_OK;
}

/* Posts bucket i's collectives: the packed small gradients, then each larger one where it lies
 * (in pieces of at most a bucket). Device gradients go to NCCL as one group instead. */
static int ov_start(mpi_ctx *c, const duet_param_set *ps, int i, duet_err *err) {
  overlap *o = &c->ov;
  const ov_bucket *b = &o->b[i];
#ifdef DUET_HAVE_NCCL
  if (ps->device != DUET_CPU) return nccl_group(c, (duet_param_set *)ps, o->order, b->first, b->first + b->count, err);
#endif
  float *pack = o->pack + b->pack_at;
  int64_t at = 0;
  for (int k = b->first; k < b->first + b->count; k++) {
    const duet_tensor *g = ps->items[o->order[k]]->grad;
    if (g->numel >= c->inplace_elems) continue;
    memcpy(pack + at, g->data, sizeof(float) * (size_t)g->numel);
    at += g->numel;
  }
  if (b->pack_n > 0) {
    int mrc = MPI_Iallreduce(MPI_IN_PLACE, pack, (int)b->pack_n, MPI_FLOAT, MPI_SUM, c->comm, &o->req[o->req_started]);
    if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "starting a gradient all-reduce", err);
    o->req_started++;
    c->stats.grad_calls++;
    c->stats.grad_bytes += b->pack_n * (int64_t)sizeof(float);
  }
  for (int k = b->first; k < b->first + b->count; k++) {
    duet_tensor *g = ps->items[o->order[k]]->grad;
    if (g->numel < c->inplace_elems) continue;
    for (int64_t done = 0; done < g->numel; done += c->bucket_elems) {
      int64_t n = g->numel - done < c->bucket_elems ? g->numel - done : c->bucket_elems;
      int mrc = MPI_Iallreduce(MPI_IN_PLACE, (float *)g->data + done, (int)n, MPI_FLOAT, MPI_SUM, c->comm,
                               &o->req[o->req_started]);
      if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "starting a gradient all-reduce", err);
      o->req_started++;
      c->stats.grad_calls++;
    }
    c->stats.grad_bytes += g->numel * (int64_t)sizeof(float);
  }
  return DUET_OK;
}

/* Lets MPI move the started collectives on: a non-blocking collective advances only inside MPI
 * calls of this thread, so without these it would all happen in the final wait. */
static int ov_progress(mpi_ctx *c, duet_err *err) {
  overlap *o = &c->ov;
  if (o->req_open >= o->req_started) return DUET_OK;
  int flag = 0;
  int mrc = MPI_Testall(o->req_started - o->req_open, o->req + o->req_open, &flag, MPI_STATUSES_IGNORE);
  if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "a gradient all-reduce", err);
  if (flag) o->req_open = o->req_started;
  return DUET_OK;
}

/* Every rank, right before the backward that finishes the step's gradients: an agreement
 * first, since from here on the ranks make collectives that a rank which failed earlier in
 * the step (reading, forward) would never join. */
static int ov_begin(void *ctx, duet_param_set *ps, duet_err *err) {
  mpi_ctx *c = ctx;
  overlap *o = &c->ov;
  double t0 = MPI_Wtime();
  int rc = ov_prepare(c, ps, err);
#ifndef DUET_HAVE_NCCL
  if (!rc && ps->device != DUET_CPU)
    rc = duet_err_set(err, DUET_ENOTSUP, "mpi: rank %d: gradients on a GPU need a build with NCCL", c->rank);
#endif
  for (int i = 0; !rc && i < ps->count; i++)
    if (trainable(ps->items[i]) && ps->items[i]->grad->dtype != DUET_F32)
      rc = duet_err_set(err, DUET_ENOTSUP, "mpi: gradient of '%s' is %s; f32 needed", ps->items[i]->name,
                        duet_dtype_name(ps->items[i]->grad->dtype));
  if ((rc = agree(c, rc, rc ? err->msg : NULL, err))) return rc;
#ifdef DUET_HAVE_NCCL
  if (ps->device != DUET_CPU && (rc = nccl_ensure(c, err))) return rc;
#endif
  memset(o->ready, 0, (size_t)o->count);
  if (!o->planned) o->n_order = 0;
  for (int i = 0; i < o->nb; i++) o->b[i].pending = o->b[i].count;
  o->next = o->req_started = o->req_open = 0;
  o->done = 0;
  o->rc = DUET_OK;
  o->active = 1;
  /* Mostly the agreement's wait for the slowest rank, which the loss sums would otherwise
   * have waited: counted with them, so that the gradient time stays the reduction's own. */
  c->stats.sum_seconds += MPI_Wtime() - t0;
  return DUET_OK;
}

/* From backward: param's gradient is final. Starts every bucket, in plan order, whose members
 * are all final, and moves the started ones on. A failure is kept for grads_end. */
static void ov_ready(void *ctx, duet_tensor *param) {
  mpi_ctx *c = ctx;
  overlap *o = &c->ov;
  if (!o->active || o->rc) return;
  int p = ov_index(o, param);
  if (p < 0 || o->ready[p] || !trainable(param)) return;
  o->ready[p] = 1;
  if (!o->planned) { /* the first backward only records its order */
    o->order[o->n_order++] = p;
    return;
  }
  int b = o->bucket_of[p];
  if (b < 0) return;
  double t0 = MPI_Wtime();
  o->b[b].pending--;
  int64_t calls = c->stats.grad_calls;
  while (!o->rc && o->next < o->nb && o->b[o->next].pending == 0) o->rc = ov_start(c, o->ps, o->next++, &o->err);
  c->stats.early_calls += c->stats.grad_calls - calls;
  if (!o->rc) o->rc = ov_progress(c, &o->err);
  c->stats.grad_hook_seconds += MPI_Wtime() - t0;
  c->stats.grad_seconds += MPI_Wtime() - t0;
}

/* Every rank, after that backward whatever its outcome: starts the buckets not started yet
 * (those of gradients backward did not finish, or all of them on the first step, which makes
 * the plan), waits for every collective and unpacks the small gradients. On the GPU the
 * collectives are queued on the compute stream and complete in its order. */
static int ov_end(void *ctx, duet_param_set *ps, duet_err *err) {
  mpi_ctx *c = ctx;
  overlap *o = &c->ov;
  double t0 = MPI_Wtime();
  o->active = 0;
  if (o->rc) {
    *err = o->err;
    return o->rc;
  }
  int rc = DUET_OK;
  if (!o->planned) {
    rc = ov_plan(c, ps, err);
    if (c->broken) return rc;
    if ((rc = agree(c, rc, rc ? err->msg : NULL, err))) return rc;
    for (int i = 0; i < o->nb; i++) o->b[i].pending = 0;
  }
  while (!rc && o->next < o->nb) rc = ov_start(c, ps, o->next++, err);
  if (!rc && o->req_open < o->req_started) {
    int mrc = MPI_Waitall(o->req_started - o->req_open, o->req + o->req_open, MPI_STATUSES_IGNORE);
    if (mrc != MPI_SUCCESS) rc = mpi_error(c, mrc, "a gradient all-reduce", err);
    o->req_open = o->req_started;
  }
  if (!rc && ps->device == DUET_CPU) {
    for (int i = 0; i < o->nb; i++) {
      const ov_bucket *b = &o->b[i];
      int64_t at = b->pack_at;
      for (int k = b->first; k < b->first + b->count; k++) {
        duet_tensor *g = ps->items[o->order[k]]->grad;
        if (g->numel >= c->inplace_elems) continue;
        memcpy(g->data, o->pack + at, sizeof(float) * (size_t)g->numel);
        at += g->numel;
      }
    }
  }
  o->done = !rc;
  c->stats.overlap_steps++;
  c->stats.grad_wait_seconds += MPI_Wtime() - t0;
  c->stats.grad_seconds += MPI_Wtime() - t0;
  return rc;
}

/* ---- ZeRO-1 ---- */

static void shard_range(const mpi_ctx *c, int r, int64_t *lo, int64_t *hi) {
  *lo = c->z.total * r / c->world;
  *hi = c->z.total * (r + 1) / c->world;
}

/* The per-rank pieces of the flat window [c0, c1): counts and displacements within it. */
static void window_pieces(mpi_ctx *c, int64_t c0, int64_t c1) {
  for (int r = 0; r < c->world; r++) {
    int64_t lo, hi;
    shard_range(c, r, &lo, &hi);
    int64_t s = lo > c0 ? lo : c0, e = hi < c1 ? hi : c1;
    c->counts[r] = e > s ? (int)(e - s) : 0;
    c->displs[r] = e > s ? (int)(s - c0) : 0;
  }
}

typedef enum { FLAT_PARAMS, FLAT_M, FLAT_V } flat_kind;

/* Copies flat elements [a, b) between buf (buf[0] is element a) and the parameters (or the
 * optimizer's moment tensors); to_buf picks the direction. */
static void flat_copy(const zero_shard *z, flat_kind kind, int64_t a, int64_t b, float *buf, int to_buf) {
  const duet_param_set *ps = z->opt->params;
  for (int i = 0; i < z->count && a < b; i++) {
    if (z->offset[i] < 0) continue;
    const duet_tensor *p = ps->items[i];
    int64_t s = z->offset[i], e = s + p->numel;
    if (e <= a || s >= b) continue;
    int64_t x = a > s ? a : s, y = b < e ? b : e;
    float *t = kind == FLAT_PARAMS ? (float *)p->data : kind == FLAT_M ? (float *)z->opt->m[i]->data
                                                                        : (float *)z->opt->v[i]->data;
    if (to_buf) memcpy(buf + (x - a), t + (x - s), sizeof(float) * (size_t)(y - x));
    else memcpy(t + (x - s), buf + (x - a), sizeof(float) * (size_t)(y - x));
  }
}

static int moments_have_storage(const duet_adamw *opt) {
  for (int i = 0; i < opt->count; i++)
    if (opt->m[i]) return opt->m[i]->data != NULL;
  return 0;
}

static void drop_moment_storage(duet_adamw *opt) {
  for (int i = 0; i < opt->count; i++)
    for (int k = 0; k < 2; k++) {
      duet_tensor *t = k ? opt->v[i] : opt->m[i];
      if (t && t->owns_data) {
        free(t->data);
        t->data = NULL;
      }
    }
}

static void zero_release(zero_shard *z) {
  free(z->offset);
  free(z->m);
  free(z->v);
  memset(z, 0, sizeof *z);
}

/* Takes over an optimizer whose moment tensors have storage (a fresh or resumed one): keeps
 * this rank's range of them and frees the tensors' storage. Agreed on, since the gathers that
 * follow need every rank. */
static int zero_attach(mpi_ctx *c, duet_adamw *opt, duet_err *err) {
  zero_shard *z = &c->z;
  zero_release(z);
  int rc = DUET_OK;
  z->opt = opt;
  z->count = opt->count;
  z->offset = malloc(sizeof(int64_t) * (size_t)(opt->count > 0 ? opt->count : 1));
  if (!z->offset) rc = duet_err_set(err, DUET_ENOMEM, "mpi: out of memory for the optimizer shard");
  /* The shard is updated and gathered with host memcpy and MPI on host buffers. */
  if (!rc && opt->params->device != DUET_CPU)
    rc = duet_err_set(err, DUET_ENOTSUP, "mpi: zero1 needs the parameters in host memory (train.device = cpu)");
  for (int i = 0; !rc && i < opt->count; i++) {
    const duet_tensor *p = opt->params->items[i];
    z->offset[i] = opt->m[i] ? z->total : -1;
    if (opt->m[i] && (p->dtype != DUET_F32 || opt->m[i]->numel != p->numel))
      rc = duet_err_set(err, DUET_ENOTSUP, "mpi: zero1 needs f32 parameters ('%s')", p->name);
    if (opt->m[i]) z->total += p->numel;
  }
  if (!rc) {
    shard_range(c, c->rank, &z->lo, &z->hi);
    z->m = alloc_floats(z->hi - z->lo);
    z->v = alloc_floats(z->hi - z->lo);
    if (!z->m || !z->v)
      rc = duet_err_set(err, DUET_ENOMEM, "mpi: out of memory for %lld optimizer moments",
                        (long long)(z->hi - z->lo) * 2);
  }
  if (!rc) rc = ensure_bucket(c, err);
  int arc = agree(c, rc, rc ? err->msg : NULL, err);
  if (arc) {
    zero_release(z);
    return arc;
  }
  /* Parameter by parameter, so that the full and the sharded moments coexist only briefly. */
  for (int i = 0; i < opt->count; i++) {
    if (z->offset[i] < 0) continue;
    int64_t s = z->offset[i], e = s + opt->params->items[i]->numel;
    int64_t a = s > z->lo ? s : z->lo, b = e < z->hi ? e : z->hi;
    if (a < b) {
      flat_copy(z, FLAT_M, a, b, z->m + (a - z->lo), 1);
      flat_copy(z, FLAT_V, a, b, z->v + (a - z->lo), 1);
    }
    for (int k = 0; k < 2; k++) {
      duet_tensor *t = k ? opt->v[i] : opt->m[i];
      if (t->owns_data) {
        free(t->data);
        t->data = NULL;
      }
    }
  }
#ifdef __GLIBC__
  /* Most of the freed moments would stay in the heap, counted as resident, until reused. */
  malloc_trim(0);
#endif
  c->stats.moment_bytes = (z->hi - z->lo) * 2 * (int64_t)sizeof(float);
  c->stats.moment_bytes_full = z->total * 2 * (int64_t)sizeof(float);
  return DUET_OK;
}

static int zero_attached(const mpi_ctx *c, const duet_adamw *opt) {
  return c->z.opt == opt && c->z.count == opt->count && !moments_have_storage(opt);
}

/* The updated weights, from every rank's range to every rank, a bucket at a time. */
static int gather_weights(mpi_ctx *c, duet_err *err) {
  zero_shard *z = &c->z;
  for (int64_t c0 = 0; c0 < z->total; c0 += c->bucket_elems) {
    int64_t c1 = c0 + c->bucket_elems < z->total ? c0 + c->bucket_elems : z->total;
    window_pieces(c, c0, c1);
    int me = c->rank;
    if (c->counts[me]) flat_copy(z, FLAT_PARAMS, c0 + c->displs[me], c0 + c->displs[me] + c->counts[me],
                                 c->bucket + c->displs[me], 1);
    int mrc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, c->bucket, c->counts, c->displs, MPI_FLOAT, c->comm);
    if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "the weight all-gather", err);
    flat_copy(z, FLAT_PARAMS, c0, c1, c->bucket, 0);
    c->stats.gather_bytes += (c1 - c0) * (int64_t)sizeof(float);
  }
  return DUET_OK;
}

static int zero_step(void *ctx, duet_adamw *opt, double lr, duet_err *err) {
  mpi_ctx *c = ctx;
  if (!opt->params || opt->params->count != opt->count)
    return duet_err_set(err, DUET_EINVAL, "adamw: the parameter set changed after init (%d -> %d)", opt->count,
                        opt->params ? opt->params->count : 0);
  if (!(lr >= 0) || isinf(lr)) return duet_err_set(err, DUET_ENUMERIC, "adamw: learning rate %g", lr);
  int rc = zero_attached(c, opt) ? DUET_OK : zero_attach(c, opt, err);
  if (rc) return rc;
  zero_shard *z = &c->z;
  int64_t step = opt->step + 1;
  for (int i = 0; i < z->count; i++) {
    if (z->offset[i] < 0) continue;
    duet_tensor *p = opt->params->items[i];
    int64_t s = z->offset[i], e = s + p->numel;
    int64_t a = s > z->lo ? s : z->lo, b = e < z->hi ? e : z->hi;
    if (a >= b) continue;
    duet_adamw_hparams h = duet_adamw_hparams_make(&opt->cfg, lr, step, opt->decay[i]);
    duet_adamw_update_range((float *)p->data + (a - s), (const float *)p->grad->data + (a - s), z->m + (a - z->lo),
                            z->v + (a - z->lo), 0, b - a, &h);
  }
  double t0 = MPI_Wtime();
  rc = gather_weights(c, err);
  c->stats.gather_seconds += MPI_Wtime() - t0;
  if (!rc) opt->step = step;
  return rc;
}

/* Rank 0 receives every rank's range of one moment, a bucket at a time, into opt's tensors. */
static int gather_moment(mpi_ctx *c, flat_kind kind, duet_err *err) {
  zero_shard *z = &c->z;
  const float *mine = kind == FLAT_M ? z->m : z->v;
  for (int64_t c0 = 0; c0 < z->total; c0 += c->bucket_elems) {
    int64_t c1 = c0 + c->bucket_elems < z->total ? c0 + c->bucket_elems : z->total;
    window_pieces(c, c0, c1);
    int me = c->rank, mrc;
    const float *piece = c->counts[me] ? mine + (c0 + c->displs[me] - z->lo) : mine;
    if (me == 0) {
      if (c->counts[0]) memcpy(c->bucket + c->displs[0], piece, sizeof(float) * (size_t)c->counts[0]);
      mrc = MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, c->bucket, c->counts, c->displs, MPI_FLOAT, 0, c->comm);
    } else {
      mrc = MPI_Gatherv(piece, c->counts[me], MPI_FLOAT, NULL, NULL, NULL, MPI_FLOAT, 0, c->comm);
    }
    if (mrc != MPI_SUCCESS) return mpi_error(c, mrc, "the optimizer gather", err);
    if (me == 0) flat_copy(z, kind, c0, c1, c->bucket, 0);
  }
  return DUET_OK;
}

static int zero_gather(void *ctx, duet_adamw *opt, int gather, duet_err *err) {
  mpi_ctx *c = ctx;
  zero_shard *z = &c->z;
  if (!gather) {
    if (z->gathered) drop_moment_storage(opt);
    z->gathered = 0;
    return DUET_OK;
  }
  /* Not sharded yet (no step since the optimizer was made): it still holds everything. */
  if (!zero_attached(c, opt)) return DUET_OK;
  int rc = DUET_OK;
  if (c->rank == 0) {
    for (int i = 0; !rc && i < opt->count; i++)
      for (int k = 0; !rc && k < 2; k++) {
        duet_tensor *t = k ? opt->v[i] : opt->m[i];
        if (t && !t->data && !(t->data = alloc_floats(t->numel)))
          rc = duet_err_set(err, DUET_ENOMEM, "mpi: out of memory gathering the optimizer state for a checkpoint");
      }
    z->gathered = 1;
  }
  int arc = agree(c, rc, rc ? err->msg : NULL, err);
  if (arc) {
    if (z->gathered) drop_moment_storage(opt);
    z->gathered = 0;
    return arc;
  }
  rc = gather_moment(c, FLAT_M, err);
  if (!rc) rc = gather_moment(c, FLAT_V, err);
  return rc;
}

/* ---- set-up and tear-down ---- */

static void ctx_free(mpi_ctx *c) {
  if (!c) return;
  zero_release(&c->z);
  ov_free(&c->ov);
#ifdef DUET_HAVE_NCCL
  duet_nccl_destroy(c->nccl);
#endif
  free(c->flags);
  free(c->counts);
  free(c->displs);
  free(c->bucket);
  free(c);
}

int duet_dist_mpi_init(int *argc, char ***argv, duet_train_dist *dist, duet_err *err) {
  duet_dist_mpi_opts o = {0};
  return duet_dist_mpi_init_opts(argc, argv, dist, &o, err);
}

int duet_dist_mpi_init_opts(int *argc, char ***argv, duet_train_dist *dist, const duet_dist_mpi_opts *opts,
                            duet_err *err) {
  memset(dist, 0, sizeof *dist);
  if (!duet_dist_mpi_launched()) return DUET_OK;
  duet_dist_mpi_opts o = opts ? *opts : (duet_dist_mpi_opts){0};
  if (o.bucket_bytes == 0) o.bucket_bytes = DEFAULT_BUCKET_BYTES;
  if (o.bucket_bytes < 1024 || o.bucket_bytes > ((size_t)1 << 31))
    return duet_err_set(err, DUET_EINVAL, "mpi: bucket of %zu bytes (1 KiB .. 2 GiB)", o.bucket_bytes);
  mpi_ctx *c = calloc(1, sizeof *c);
  if (!c) return duet_err_set(err, DUET_ENOMEM, "mpi: out of memory");
  int inited = 0, mrc;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    mrc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (mrc != MPI_SUCCESS) {
      free(c);
      return mpi_error(NULL, mrc, "MPI_Init_thread", err);
    }
    c->owns_init = 1;
    if (provided < MPI_THREAD_FUNNELED) {
      free(c);
      return duet_err_set(err, DUET_ENOTSUP, "mpi: the library offers thread level %d; FUNNELED (%d) needed", provided,
                          MPI_THREAD_FUNNELED);
    }
  }
  /* A private communicator, so that returning errors (instead of MPI's default of aborting
   * the job) does not change MPI_COMM_WORLD for anyone else in the process. */
  mrc = MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
  if (mrc != MPI_SUCCESS) {
    free(c);
    return mpi_error(NULL, mrc, "MPI_Comm_dup", err);
  }
  MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(c->comm, &c->rank);
  MPI_Comm_size(c->comm, &c->world);
  MPI_Comm node;
  mrc = MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
  if (mrc != MPI_SUCCESS) {
    int rc = mpi_error(c, mrc, "MPI_Comm_split_type", err);
    ctx_free(c);
    return rc;
  }
  MPI_Comm_rank(node, &c->local_rank);
  MPI_Comm_size(node, &c->local_world);
  MPI_Comm_free(&node);
  c->bucket_elems = (int64_t)(o.bucket_bytes / sizeof(float));
  c->inplace_elems = c->bucket_elems / 2 < INPLACE_MIN_ELEMS ? c->bucket_elems / 2 : INPLACE_MIN_ELEMS;
  c->zero1 = o.zero1 && c->world > 1;
  c->flags = calloc((size_t)c->world, sizeof(int));
  c->counts = calloc((size_t)c->world, sizeof(int));
  c->displs = calloc((size_t)c->world, sizeof(int));
  if (!c->flags || !c->counts || !c->displs) {
    ctx_free(c);
    return duet_err_set(err, DUET_ENOMEM, "mpi: out of memory");
  }
  dist->rank = c->rank;
  dist->world = c->world;
  dist->allreduce_sum = sum_f64;
  dist->allreduce_sum_f32 = sum_f32;
  dist->allreduce_grads = o.per_parameter ? NULL : reduce_grads;
  /* The overlap belongs to the bucketed path: one collective per parameter is the baseline
   * that keeps none of this machinery. */
  dist->grads_begin = o.per_parameter ? NULL : ov_begin;
  dist->grad_ready = o.per_parameter ? NULL : ov_ready;
  dist->grads_end = o.per_parameter ? NULL : ov_end;
  dist->opt_step = c->zero1 ? zero_step : NULL;
  dist->opt_gather = c->zero1 ? zero_gather : NULL;
  dist->ctx = c;
  return DUET_OK;
}

int duet_dist_mpi_local_rank(const duet_train_dist *dist) {
  const mpi_ctx *c = dist->ctx;
  return c ? c->local_rank : 0;
}

int duet_dist_mpi_local_world(const duet_train_dist *dist) {
  const mpi_ctx *c = dist->ctx;
  return c ? c->local_world : 1;
}

int duet_dist_mpi_select_gpu(const duet_train_dist *dist, duet_err *err) {
#ifdef DUET_HAVE_CUDA
  const mpi_ctx *c = dist->ctx;
  int local = c ? c->local_rank : 0;
  int rc = duet_cuda_select_device(local, err);
  if (rc && c) duet_err_prefix(err, "rank %d (local rank %d): ", c->rank, local);
  return rc;
#else
  (void)dist;
  return duet_err_set(err, DUET_ENOTSUP, "mpi: this build has no CUDA backend");
#endif
}

int duet_dist_mpi_agree(duet_train_dist *dist, int rc, duet_err *err) {
  mpi_ctx *c = dist->ctx;
  if (!c) return rc;
  if (c->failed) {
    if (err) *err = c->agreed;
    return c->agreed.code;
  }
  if (c->broken) return rc ? rc : duet_err_set(err, DUET_EIO, "mpi: rank %d: an earlier MPI call failed", c->rank);
  return agree(c, rc, rc && err ? err->msg : NULL, err);
}

static uint64_t fnv1a(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int duet_dist_mpi_check_replicas(duet_train_dist *dist, const duet_param_set *ps, duet_err *err) {
  mpi_ctx *c = dist->ctx;
  if (!c || c->world == 1) return DUET_OK;
  /* Per parameter, the maximum over ranks of h and of ~h: equal to this rank's h and ~h
   * exactly when every rank has the same hash. */
  size_t n = 2 * (size_t)ps->count;
  uint64_t *h = malloc(sizeof(uint64_t) * 2 * (n ? n : 1));
  int rc = h ? DUET_OK : duet_err_set(err, DUET_ENOMEM, "mpi: out of memory comparing replicas");
  if ((rc = agree(c, rc, rc ? err->msg : NULL, err))) {
    free(h);
    return rc;
  }
  uint64_t *mx = h + n;
  for (int i = 0; i < ps->count; i++) {
    const duet_tensor *p = ps->items[i];
    h[2 * i] = fnv1a(p->data, duet_tensor_bytes(p));
    h[2 * i + 1] = ~h[2 * i];
  }
  int mrc = MPI_Allreduce(h, mx, (int)n, MPI_UINT64_T, MPI_MAX, c->comm);
  if (mrc != MPI_SUCCESS) rc = mpi_error(c, mrc, "comparing replicas", err);
  for (int i = 0; !rc && i < ps->count; i++)
    if (mx[2 * i] != h[2 * i] || mx[2 * i + 1] != h[2 * i + 1])
      rc = duet_err_set(err, DUET_EINVAL, "mpi: ranks hold different weights (first: '%s')", ps->items[i]->name);
  free(h);
  return rc;
}

void duet_dist_mpi_get_stats(const duet_train_dist *dist, duet_dist_mpi_stats *stats) {
  const mpi_ctx *c = dist->ctx;
  if (c) *stats = c->stats;
  else memset(stats, 0, sizeof *stats);
}

int duet_dist_mpi_broken(const duet_train_dist *dist) {
  const mpi_ctx *c = dist->ctx;
  return c && c->broken;
}

int duet_dist_mpi_finalize(duet_train_dist *dist, duet_err *err) {
  mpi_ctx *c = dist->ctx;
  if (!c) return DUET_OK;
  if (c->broken)
    return duet_err_set(err, DUET_EIO, "mpi: rank %d: not finalizing after a failed MPI call (abort the job)", c->rank);
  MPI_Comm_free(&c->comm);
  int owns = c->owns_init;
  ctx_free(c);
  /* rank and world stay: a program still needs to know which rank prints the outcome. */
  *dist = (duet_train_dist){.rank = dist->rank, .world = dist->world};
  if (owns && MPI_Finalize() != MPI_SUCCESS) return duet_err_set(err, DUET_EIO, "mpi: MPI_Finalize failed");
  return DUET_OK;
}

void duet_dist_mpi_abort(duet_train_dist *dist, int code) {
  mpi_ctx *c = dist->ctx;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!c && !inited) return;
  MPI_Abort(c ? c->comm : MPI_COMM_WORLD, code);
}

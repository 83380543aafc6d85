/* NCCL communicator and all-reduce (core/cuda/nccl_comm.h). */
#include "core/cuda/nccl_comm.h"

#include <stdlib.h>
#include <string.h>

#include "core/cuda/cuda_internal.h"

/* CMake compiles this file only when it found NCCL (and then defines DUET_HAVE_NCCL). */
#include <nccl.h>

_Static_assert(sizeof(ncclUniqueId) == DUET_NCCL_ID_BYTES, "DUET_NCCL_ID_BYTES must match ncclUniqueId");

struct duet_nccl {
  ncclComm_t comm;
  int rank, size;
};

int duet_nccl_unique_id(unsigned char id[DUET_NCCL_ID_BYTES], duet_err *err) {
  ncclUniqueId u;
  ncclResult_t r = ncclGetUniqueId(&u);
  if (r != ncclSuccess) return duet_err_set(err, DUET_EINVAL, "nccl: unique id: %s", ncclGetErrorString(r));
  memcpy(id, &u, sizeof u);
  return DUET_OK;
}

int duet_nccl_init(duet_nccl **out, const unsigned char id[DUET_NCCL_ID_BYTES], int nranks, int rank,
                   duet_err *err) {
  *out = NULL;
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return duet_err_set(err, DUET_EINVAL, "nccl: rank %d of %d", rank, nranks);
  if (!duet_cuda_available()) return duet_err_set(err, DUET_ENOTSUP, "nccl: no CUDA device");
  duet_nccl *c = calloc(1, sizeof *c);
  if (!c) return duet_err_set(err, DUET_ENOMEM, "nccl: out of memory");
  ncclUniqueId u;
  memcpy(&u, id, sizeof u);
  ncclResult_t r = ncclCommInitRank(&c->comm, nranks, u, rank);
  if (r != ncclSuccess) {
    free(c);
    return duet_err_set(err, DUET_EINVAL, "nccl: init rank %d of %d: %s", rank, nranks, ncclGetErrorString(r));
  }
  c->rank = rank;
  c->size = nranks;
  *out = c;
  return DUET_OK;
}

int duet_nccl_allreduce_f32(duet_nccl *c, float *buf, size_t count, duet_nccl_op op, void *stream,
                            duet_err *err) {
  if (!c) return duet_err_set(err, DUET_EINVAL, "nccl: no communicator");
  if (!count) return DUET_OK;
  cudaStream_t s = stream ? (cudaStream_t)stream : (cudaStream_t)duet_cuda_stream();
  ncclResult_t r = ncclAllReduce(buf, buf, count, ncclFloat32, op == DUET_NCCL_AVG ? ncclAvg : ncclSum, c->comm, s);
  if (r != ncclSuccess)
    return duet_err_set(err, DUET_EINVAL, "nccl: all-reduce of %zu floats: %s", count, ncclGetErrorString(r));
  return DUET_OK;
}

int duet_nccl_rank(const duet_nccl *c) { return c ? c->rank : 0; }
int duet_nccl_size(const duet_nccl *c) { return c ? c->size : 1; }

void duet_nccl_destroy(duet_nccl *c) {
  if (!c) return;
  /* Nothing to report to: a failure here leaves only the process's own resources behind. */
  (void)ncclCommDestroy(c->comm);
  free(c);
}

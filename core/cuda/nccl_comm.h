/* NCCL for data-parallel training: one communicator per process (one GPU each), made from a
 * unique id that rank 0 creates and the caller broadcasts (over MPI, in duet), then
 * all-reduces of f32 gradient buffers on a stream.
 *
 * Built only when CMake finds NCCL's header and library; it then defines DUET_HAVE_NCCL for
 * every target that links duet_core, and callers guard their use with it. */
#ifndef DUET_CORE_CUDA_NCCL_COMM_H
#define DUET_CORE_CUDA_NCCL_COMM_H

#include <stddef.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The size of ncclUniqueId, checked against nccl.h when built. */
#define DUET_NCCL_ID_BYTES 128

typedef struct duet_nccl duet_nccl;

typedef enum duet_nccl_op {
  DUET_NCCL_SUM,
  DUET_NCCL_AVG, /* the sum divided by the number of ranks */
} duet_nccl_op;

/* Rank 0 makes the id; every rank passes the same bytes to duet_nccl_init(). */
int duet_nccl_unique_id(unsigned char id[DUET_NCCL_ID_BYTES], duet_err *err);

/* Joins the communicator of nranks processes as `rank`, on the current CUDA device (select it
 * first, e.g. duet_cuda_select_device(local rank)). Blocks until every rank has joined. */
int duet_nccl_init(duet_nccl **out, const unsigned char id[DUET_NCCL_ID_BYTES], int nranks, int rank,
                   duet_err *err);

/* In place: buf[i] becomes the sum (or average) over ranks, for count floats of device memory.
 * stream is a cudaStream_t, or NULL for the CUDA backend's stream. Returns when the operation
 * is queued; it completes in stream order. */
int duet_nccl_allreduce_f32(duet_nccl *c, float *buf, size_t count, duet_nccl_op op, void *stream,
                            duet_err *err);

int duet_nccl_rank(const duet_nccl *c);
int duet_nccl_size(const duet_nccl *c);

/* Waits for the communicator's work and frees it; NULL is ignored. */
void duet_nccl_destroy(duet_nccl *c);

#ifdef __cplusplus
}
#endif

#endif

/* Data-parallel training over MPI: fills the trainer's dist seam (train/trainer.h) for a
 * process started by mpirun, and leaves it zeroed for a plain single process, which then needs
 * no MPI runtime at all (MPI_Init is never called).
 *
 * What it provides through the seam:
 *   - allreduce_sum / allreduce_sum_f32: MPI_Allreduce (MPI_SUM, in place) on a private
 *     duplicate of MPI_COMM_WORLD whose error handler returns errors instead of aborting;
 *   - allreduce_grads: the gradients of the whole parameter set summed in buckets (default
 *     25 MiB) rather than one collective per parameter; large parameters are reduced in place,
 *     small ones packed together;
 *   - grads_begin / grad_ready / grads_end: the same sums overlapped with the backward pass that
 *     finishes the gradients. Buckets of about the same size, in the order backward finishes
 *     the gradients (the order of rank 0's first such backward, broadcast, so every rank posts
 *     the same collectives in the same order), start with MPI_Iallreduce as soon as all their
 *     gradients are final, move on through MPI_Testall from the callback, and are waited for
 *     after backward. Gradients on a GPU go to NCCL instead (one communicator, its id made by
 *     rank 0 and broadcast over MPI), queued on the compute stream; that needs DUET_HAVE_NCCL;
 *   - with zero1: AdamW moments sharded across ranks (ZeRO stage 1). Each rank keeps the
 *     moments of one contiguous range of the flat vector of trainable elements, updates that
 *     range with duet_adamw_update_range, and the updated weights are all-gathered. Moments
 *     are gathered to rank 0 only while a checkpoint is written, so checkpoints have the
 *     format of an unsharded run and resume at any world size, with or without zero1.
 *
 * Failure handling. A collective that one rank never enters blocks the others for ever, so
 * every allreduce_sum (the trainer's step-boundary collective: the losses of every step and
 * validation pass, the checks before a checkpoint) first agrees on status: one small
 * all-reduce of a per-rank failure flag. A rank whose trainer call failed joins that
 * agreement through duet_dist_mpi_agree instead of the collective it skipped; the healthy
 * ranks' allreduce_sum then fails too, and every rank ends with the message of the lowest
 * failing rank, "rank R: <its message>". This holds because the trainer has no rank-local
 * failure point between an allreduce_sum and the collectives that follow it in a step
 * (gradient all-reduce, ZeRO gathers): the checks there run on reduced values, which every
 * rank sees alike. A rank killed outright is handled by the launcher (OpenMPI's mpirun aborts
 * the job when a process dies; docs/distributed.md). A failed MPI call marks the
 * communicator broken: peers may be waiting in a collective that cannot complete, and the
 * program must then end the job with duet_dist_mpi_abort rather than finalize.
 *
 * Threads: MPI is called only from the thread that drives the trainer (MPI_THREAD_FUNNELED);
 * OpenMP and the loader's threads never touch it. */
#ifndef DUET_TRAIN_DIST_MPI_H
#define DUET_TRAIN_DIST_MPI_H

#include <stddef.h>
#include <stdint.h>

#include "train/trainer.h"

typedef struct duet_dist_mpi_opts {
  size_t bucket_bytes; /* gradient all-reduce bucket; 0: 25 MiB */
  int per_parameter;   /* 1: leave allreduce_grads NULL (one collective per parameter) */
  int zero1;           /* 1: shard the optimizer moments across ranks */
} duet_dist_mpi_opts;

/* Time and traffic of this rank's collectives since init. */
typedef struct duet_dist_mpi_stats {
  int64_t grad_calls;     /* gradient collectives (MPI_Allreduce, MPI_Iallreduce, NCCL) */
  int64_t grad_bytes;     /* gradient bytes reduced (per rank, sent once) */
  double grad_seconds;    /* wall time this thread spent on gradient reductions, packing
                           * included: with overlap, the two below */
  double grad_hook_seconds; /* of it, inside backward: packing, starting, MPI_Testall */
  double grad_wait_seconds; /* of it, after backward: the rest started, waited for, unpacked */
  int64_t overlap_steps;    /* backward passes with the all-reduce overlapped */
  int64_t early_calls;      /* gradient collectives started while backward still ran */
  int64_t sum_calls;      /* allreduce_sum calls (losses, checks), each with its agreement */
  double sum_seconds;     /* wall time in them (and in the agreement that begins an overlapped
                           * backward): mostly waiting for the slowest rank */
  double gather_seconds;  /* ZeRO-1 weight all-gathers, packing included */
  int64_t gather_bytes;
  int64_t moment_bytes;      /* AdamW moment bytes this rank holds in steady state */
  int64_t moment_bytes_full; /* what an unsharded optimizer holds (2 x 4 bytes per element) */
} duet_dist_mpi_stats;

/* Whether this process was started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMIX_RANK,
 * PMI_RANK or PMI_SIZE in the environment). */
int duet_dist_mpi_launched(void);

/* Under a launcher: MPI_Init_thread, then rank, world, the all-reduces and ctx in *dist.
 * Otherwise *dist is zeroed (rank 0 of 1) and nothing else happens. On failure *dist is
 * zeroed. duet_dist_mpi_init uses the default options. */
int duet_dist_mpi_init(int *argc, char ***argv, duet_train_dist *dist, duet_err *err);
int duet_dist_mpi_init_opts(int *argc, char ***argv, duet_train_dist *dist, const duet_dist_mpi_opts *opts,
                            duet_err *err);

/* The rank among the processes of this node (MPI_COMM_TYPE_SHARED) and their number: which
 * GPU to use. 0 and 1 for a single process. */
int duet_dist_mpi_local_rank(const duet_train_dist *dist);
int duet_dist_mpi_local_world(const duet_train_dist *dist);

/* One GPU per rank: makes the local rank's device (duet_dist_mpi_local_rank) the process's
 * CUDA device, through duet_cuda_select_device, which must come before anything else touches
 * the GPU. DUET_ENOTSUP in a build without CUDA. */
int duet_dist_mpi_select_gpu(const duet_train_dist *dist, duet_err *err);

/* A point every rank reaches with its own outcome (rc, and its message in err): at the end
 * of a run, after a trainer call failed, or as a barrier. Returns DUET_OK when every rank
 * succeeded; otherwise the lowest failing rank's code, with err set to "rank R: <message>" on
 * every rank. A failure already agreed on (inside allreduce_sum) is returned as it was agreed,
 * with no further collective; so is every later call. */
int duet_dist_mpi_agree(duet_train_dist *dist, int rc, duet_err *err);

/* After a successful agreement: DUET_OK when every rank holds the same parameter bytes, else
 * DUET_EINVAL naming the parameter where they first differ on this rank's side. */
int duet_dist_mpi_check_replicas(duet_train_dist *dist, const duet_param_set *ps, duet_err *err);

void duet_dist_mpi_get_stats(const duet_train_dist *dist, duet_dist_mpi_stats *stats);

/* 1 when an MPI call failed and peers may be blocked: end with duet_dist_mpi_abort. */
int duet_dist_mpi_broken(const duet_train_dist *dist);

/* MPI_Finalize, frees ctx and clears *dist but for rank and world (so that the program still
 * knows which rank reports the outcome); nothing for a single process. Refuses (and does
 * nothing) on a broken communicator, where finalizing could wait for ever. */
int duet_dist_mpi_finalize(duet_train_dist *dist, duet_err *err);

/* Ends every process of the job with exit code `code` (MPI_Abort): for a broken
 * communicator, or a program that cannot go on. Returns only for a single process. */
void duet_dist_mpi_abort(duet_train_dist *dist, int code);

#endif

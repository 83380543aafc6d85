/* Layout kernel group (CPU: core/cpu/layout.c): moving elements without arithmetic, and the
 * embedding table lookup.
 *
 * One strided copy serves permute, concat, slice and (un)patchify: each of those is "visit
 * every index of some iteration shape and move one element from a strided place in src to a
 * strided place in dst", and only the strides differ. The ops layer (core/ops_layout.c)
 * builds the map; a backend only has to walk it. The backward of such an op walks the same
 * map with src and dst exchanged and accumulates, so the kernel needs no per-op variant. */
#ifndef DUET_CORE_KERNELS_LAYOUT_H
#define DUET_CORE_KERNELS_LAYOUT_H

#include "core/tensor.h"

/* Patchify views a 5-D video as 8 dims ([B, T/pt, pt, H/ph, ph, W/pw, pw, C]), so a map may
 * have more dims than a tensor. */
#define DUET_STRIDED_MAX_DIMS 8

/* For every index i of shape:
 *   dst[dst_offset + sum_k i[k] * dst_stride[k]]  <-  src[src_offset + sum_k i[k] * src_stride[k]]
 * Strides and offsets count elements. Maps reach a kernel simplified (no size-1 dims; two
 * neighbouring dims merged whenever both strides allow it), with at least one element, and
 * with distinct dst positions for distinct indices, so writes never collide and may be split
 * across threads in any way. ndim 0 is a single element. */
typedef struct duet_strided {
  int ndim;
  int64_t shape[DUET_STRIDED_MAX_DIMS];
  int64_t src_stride[DUET_STRIDED_MAX_DIMS];
  int64_t dst_stride[DUET_STRIDED_MAX_DIMS];
  int64_t src_offset, dst_offset;
} duet_strided;

struct duet_kernels_layout {
  /* dst <- src along map; any dtype (elements are moved as bit patterns). */
  void (*copy)(const duet_tensor *src, duet_tensor *dst, const duet_strided *map);
  /* dst += src along map; f32 or f64. */
  void (*accumulate)(const duet_tensor *src, duet_tensor *dst, const duet_strided *map);

  /* Position of the first id of i32 `ids` outside [0, limit), or -1 when all are inside. */
  int64_t (*find_bad_id)(const duet_tensor *ids, int64_t limit);
  /* out [N, D] row r = table [V, D] row ids[r] (ids already checked); any dtype. */
  void (*embedding_forward)(const duet_tensor *table, const duet_tensor *ids, duet_tensor *out);
  /* dtable row ids[r] += dout row r, f32 or f64. Rows that share an id are added in the
   * order of r, so the result does not depend on the thread count. */
  void (*embedding_backward)(const duet_tensor *dout, const duet_tensor *ids,
                             duet_tensor *dtable);
};

#endif

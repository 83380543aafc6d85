/* Layout kernels, CUDA against CPU: the strided copy (every element size) and accumulate over
 * a permute-like map and a slice-like map, embedding lookup and its backward (ids repeated),
 * and the first bad id.
 * Tolerances: copies and lookups are exact. Accumulation is one rounded add per element on
 * both sides, and the embedding backward adds a row's contributions in id order on both, so
 * f32 and f64 must match bit for bit (tolerance 0); bf16 results are compared with the CPU's
 * f32 at 1e-2 (their rounding). */
#include <string.h>

#include "core/kernels_layout.h"
#include "gpu_test.h"

/* src [4, 5, 6, 7] read as its permutation (0, 2, 3, 1) into a contiguous [4, 6, 7, 5]. */
static duet_strided permute_map(void) {
  duet_strided m;
  memset(&m, 0, sizeof m);
  m.ndim = 4;
  const int64_t shape[4] = {4, 6, 7, 5};
  const int64_t src[4] = {5 * 6 * 7, 7, 1, 6 * 7}, dst[4] = {6 * 7 * 5, 7 * 5, 5, 1};
  for (int i = 0; i < 4; i++) {
    m.shape[i] = shape[i];
    m.src_stride[i] = src[i];
    m.dst_stride[i] = dst[i];
  }
  return m;
}

/* Columns [3, 3 + 9) of a [20, 16] src into a [20, 9] dst at offset 0, rows strided. */
static duet_strided slice_map(void) {
  duet_strided m;
  memset(&m, 0, sizeof m);
  m.ndim = 2;
  m.shape[0] = 20;
  m.shape[1] = 9;
  m.src_stride[0] = 16;
  m.src_stride[1] = 1;
  m.dst_stride[0] = 9;
  m.dst_stride[1] = 1;
  m.src_offset = 3;
  return m;
}

static void check_copy(duet_dtype dt, uint64_t seed) {
  duet_strided maps[2] = {permute_map(), slice_map()};
  int64_t src_n[2] = {4 * 5 * 6 * 7, 20 * 16}, dst_n[2] = {4 * 5 * 6 * 7, 20 * 9};
  for (int i = 0; i < 2; i++) {
    duet_dtype hd = dt == DUET_BF16 ? DUET_F32 : dt;
    duet_tensor *src = dt == DUET_U8 || dt == DUET_I32 ? gt_rand(dt, 1, &src_n[i], seed, 0, 100)
                                                       : gt_input(dt, 1, &src_n[i], seed, -1, 1);
    duet_tensor *dst = gt_host(hd, 1, &dst_n[i]);
    duet_tensor *dsrc = gt_up(src, dt), *ddst = gt_poison(dt, 1, &dst_n[i]);
    gt_cpu()->layout->copy(src, dst, &maps[i]);
    gt_gpu()->layout->copy(dsrc, ddst, &maps[i]);
    gt_expect_no_cuda_error("strided copy");
    gt_expect_close(i ? "strided copy (slice)" : "strided copy (permute)", ddst, dst, 0);
    gt_free(src), gt_free(dst), gt_free(dsrc), gt_free(ddst);
  }
}

static void check_accumulate(duet_dtype dt, uint64_t seed) {
  duet_strided maps[2] = {permute_map(), slice_map()};
  int64_t src_n[2] = {4 * 5 * 6 * 7, 20 * 16}, dst_n[2] = {4 * 5 * 6 * 7, 20 * 9};
  for (int i = 0; i < 2; i++) {
    duet_tensor *src = gt_input(dt, 1, &src_n[i], seed, -1, 1), *dst = gt_input(dt, 1, &dst_n[i], seed + 1, -1, 1);
    duet_tensor *dsrc = gt_up(src, dt), *ddst = gt_up(dst, dt);
    gt_cpu()->layout->accumulate(src, dst, &maps[i]);
    gt_gpu()->layout->accumulate(dsrc, ddst, &maps[i]);
    gt_expect_no_cuda_error("strided accumulate");
    gt_expect_close("strided accumulate", ddst, dst, dt == DUET_BF16 ? 1e-2 : 0);
    gt_free(src), gt_free(dst), gt_free(dsrc), gt_free(ddst);
  }
}

static void check_embedding(duet_dtype dt, uint64_t seed) {
  const int64_t V = 300, D = 70;
  int64_t ts[2] = {V, D}, is[2] = {4, 50}, os[3] = {4, 50, D};
  duet_tensor *table = gt_input(dt, 2, ts, seed, -1, 1);
  duet_tensor *ids = gt_rand(DUET_I32, 2, is, seed + 1, 0, 40); /* few distinct ids: many repeats */
  for (int64_t i = 0; i < 10; i++) duet_tensor_set(ids, i * 17 % 200, (double)(V - 1 - i)); /* and the far end */
  duet_tensor *out = gt_host(gt_ref_dtype(dt), 3, os);
  duet_tensor *dtable = gt_up(table, dt), *dids = gt_up(ids, DUET_I32), *dout = gt_poison(dt, 3, os);
  gt_cpu()->layout->embedding_forward(table, ids, out);
  gt_gpu()->layout->embedding_forward(dtable, dids, dout);
  gt_expect_no_cuda_error("embedding");
  gt_expect_close("embedding", dout, out, 0);

  duet_tensor *g = gt_input(dt, 3, os, seed + 2, -1, 1), *acc = gt_input(dt, 2, ts, seed + 3, -1, 1);
  duet_tensor *dg = gt_up(g, dt), *dacc = gt_up(acc, dt);
  gt_cpu()->layout->embedding_backward(g, ids, acc);
  gt_gpu()->layout->embedding_backward(dg, dids, dacc);
  gt_expect_no_cuda_error("embedding backward");
  gt_expect_close("embedding backward (same order, same bits)", dacc, acc, dt == DUET_BF16 ? 1e-2 : 0);

  /* No bad id, then bad ones at 17 and 40: the first is reported. */
  int64_t bad = gt_gpu()->layout->find_bad_id(dids, V);
  CHECK_EQ_INT(bad, -1);
  duet_tensor_set(ids, 40, -3);
  duet_tensor_set(ids, 17, (double)V);
  duet_tensor *dids2 = gt_up(ids, DUET_I32);
  CHECK_EQ_INT(gt_gpu()->layout->find_bad_id(dids2, V), 17);
  CHECK_EQ_INT(gt_gpu()->layout->find_bad_id(dids2, V), gt_cpu()->layout->find_bad_id(ids, V));
  gt_expect_no_cuda_error("find_bad_id");
  duet_tensor *all[] = {table, ids, out, dtable, dids, dout, g, acc, dg, dacc, dids2};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

int main(void) {
  gt_require_gpu("gpu_layout");
  const duet_dtype copy_dts[5] = {DUET_U8, DUET_BF16, DUET_F32, DUET_I32, DUET_F64};
  for (int d = 0; d < 5; d++) check_copy(copy_dts[d], 10 + (uint64_t)d);
  const duet_dtype dts[3] = {DUET_F32, DUET_BF16, DUET_F64};
  for (int d = 0; d < 3; d++) {
    check_accumulate(dts[d], 100 + 10 * (uint64_t)d);
    check_embedding(dts[d], 200 + 10 * (uint64_t)d);
  }
  return test_finish("gpu_layout");
}

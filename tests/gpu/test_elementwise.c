/* Element-wise kernels, CUDA against CPU, in f32, bf16 and f64.
 * Tolerances (relative Frobenius): f32 1e-5, f64 1e-12, bf16 1e-2 (one bf16 rounding of each
 * output; for reduce_rows 1e-2 of the column sums). */
#include "core/kernels_elementwise.h"
#include "gpu_test.h"

static const struct duet_kernels_elementwise *cpu_k(void) { return gt_cpu()->elementwise; }
static const struct duet_kernels_elementwise *gpu_k(void) { return gt_gpu()->elementwise; }

static void check_binary(duet_dtype dt, uint64_t seed) {
  int64_t as[3] = {7, 33, 40}, bs[2] = {33, 40};
  for (int op = 0; op < 3; op++) {
    duet_tensor *a = gt_input(dt, 3, as, seed, -2, 2), *b = gt_input(dt, 2, bs, seed + 1, -2, 2);
    duet_tensor *y = gt_host(gt_ref_dtype(dt), 3, as);
    duet_tensor *da = gt_up(a, dt), *db = gt_up(b, dt), *dy = gt_poison(dt, 3, as);
    cpu_k()->binary((duet_binary_op)op, a, b, y);
    gpu_k()->binary((duet_binary_op)op, da, db, dy);
    gt_expect_no_cuda_error("binary");
    gt_expect_close(op == 0 ? "binary add" : op == 1 ? "binary sub" : "binary mul", dy, y, gt_tol(dt, 1e-2));
    gt_free(a), gt_free(b), gt_free(y), gt_free(da), gt_free(db), gt_free(dy);
  }
}

static void check_axpy_scale_fill(duet_dtype dt, uint64_t seed) {
  int64_t n[1] = {100003};
  duet_tensor *x = gt_input(dt, 1, n, seed, -1, 1), *y = gt_input(dt, 1, n, seed + 1, -1, 1);
  duet_tensor *dx = gt_up(x, dt), *dy = gt_up(y, dt);
  cpu_k()->axpy(0.37, x, y);
  gpu_k()->axpy(0.37, dx, dy);
  gt_expect_no_cuda_error("axpy");
  gt_expect_close("axpy", dy, y, gt_tol(dt, 1e-2));

  duet_tensor *s = gt_host(gt_ref_dtype(dt), 1, n), *ds = gt_poison(dt, 1, n);
  cpu_k()->scale(-1.75, x, s);
  gpu_k()->scale(-1.75, dx, ds);
  gt_expect_no_cuda_error("scale");
  gt_expect_close("scale", ds, s, gt_tol(dt, 1e-2));

  cpu_k()->fill(s, 0.8125);
  gpu_k()->fill(ds, 0.8125);
  gt_expect_no_cuda_error("fill");
  gt_expect_close("fill", ds, s, gt_tol(dt, 1e-2));
  gt_free(x), gt_free(y), gt_free(dx), gt_free(dy), gt_free(s), gt_free(ds);
}

static void check_bcast_acc(duet_dtype dt, uint64_t seed) {
  int64_t ds_[3] = {5, 17, 64}, ss[1] = {64};
  for (int with_other = 0; with_other < 2; with_other++) {
    duet_tensor *src = gt_input(dt, 1, ss, seed, -1, 1), *other = gt_input(dt, 3, ds_, seed + 1, -1, 1);
    duet_tensor *dst = gt_input(dt, 3, ds_, seed + 2, -1, 1);
    duet_tensor *dsrc = gt_up(src, dt), *dother = gt_up(other, dt), *ddst = gt_up(dst, dt);
    cpu_k()->bcast_acc(0.5, src, with_other ? other : NULL, dst);
    gpu_k()->bcast_acc(0.5, dsrc, with_other ? dother : NULL, ddst);
    gt_expect_no_cuda_error("bcast_acc");
    gt_expect_close(with_other ? "bcast_acc with other" : "bcast_acc", ddst, dst, gt_tol(dt, 1e-2));
    gt_free(src), gt_free(other), gt_free(dst), gt_free(dsrc), gt_free(dother), gt_free(ddst);
  }
}

/* Wide (many columns), narrow (< 32 columns) and the whole-tensor sum (one column). */
static void check_reduce_rows(duet_dtype dt, uint64_t seed) {
  const int64_t shapes[4][2] = {{300, 96}, {1000, 5}, {100000, 1}, {3, 4000}};
  for (int s = 0; s < 4; s++)
    for (int with_other = 0; with_other < 2; with_other++) {
      int64_t src_shape[2] = {shapes[s][0], shapes[s][1]}, dst_shape[1] = {shapes[s][1]};
      duet_tensor *src = gt_input(dt, 2, src_shape, seed + (uint64_t)s, -1, 1);
      duet_tensor *other = gt_input(dt, 2, src_shape, seed + 7, -1, 1);
      duet_tensor *dst = gt_input(dt, 1, dst_shape, seed + 9, -1, 1);
      duet_tensor *dsrc = gt_up(src, dt), *dother = gt_up(other, dt), *ddst = gt_up(dst, dt);
      cpu_k()->reduce_rows(0.25, src, with_other ? other : NULL, dst);
      gpu_k()->reduce_rows(0.25, dsrc, with_other ? dother : NULL, ddst);
      char what[96];
      snprintf(what, sizeof what, "reduce_rows %lldx%lld%s", (long long)src_shape[0], (long long)src_shape[1],
               with_other ? " with other" : "");
      gt_expect_no_cuda_error(what);
      gt_expect_close(what, ddst, dst, gt_tol(dt, 1e-2));
      gt_free(src), gt_free(other), gt_free(dst), gt_free(dsrc), gt_free(dother), gt_free(ddst);
    }
}

int main(void) {
  gt_require_gpu("gpu_elementwise");
  const duet_dtype dts[3] = {DUET_F32, DUET_BF16, DUET_F64};
  for (int d = 0; d < 3; d++) {
    check_binary(dts[d], 100 + 10 * (uint64_t)d);
    check_axpy_scale_fill(dts[d], 200 + 10 * (uint64_t)d);
    check_bcast_acc(dts[d], 300 + 10 * (uint64_t)d);
    check_reduce_rows(dts[d], 400 + 10 * (uint64_t)d);
  }
  return test_finish("gpu_elementwise");
}

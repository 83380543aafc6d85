/* The masked MSE (no mask, a u8 mask over rows with zeros, a float mask over the leading
 * dims, a NaN in a masked row) and the timestep embedding, CUDA against CPU, forward and
 * backward. Tolerances (relative): f32 1e-5 (sums in double on both sides), f64 1e-12, bf16
 * 1e-2. */
#include <math.h>

#include "core/kernels_loss.h"
#include "gpu_test.h"

static void check_mse(duet_dtype dt, int mask_kind, uint64_t seed) {
  int64_t ps[3] = {3, 50, 24}, ms2[2] = {3, 50}, ms1[1] = {3}, one[1] = {1};
  const duet_dtype rd = gt_ref_dtype(dt);
  duet_tensor *p = gt_input(dt, 3, ps, seed, -2, 2), *t = gt_input(dt, 3, ps, seed + 1, -2, 2);
  duet_tensor *mask = NULL;
  if (mask_kind == 1) {
    mask = gt_rand(DUET_U8, 2, ms2, seed + 2, 0, 2); /* about half the rows */
    /* A NaN in a masked-off row must not reach the loss. */
    for (int64_t r = 0; r < 150; r++)
      if (duet_tensor_get(mask, r) == 0) {
        duet_tensor_set(p, r * 24 + 5, NAN);
        break;
      }
  } else if (mask_kind == 2) {
    mask = gt_input(dt, 1, ms1, seed + 2, 0, 1);
  }
  duet_tensor *loss = gt_host(rd, 1, one), *coef = gt_host(rd, 1, one);
  duet_tensor *dp = gt_up(p, dt), *dt_ = gt_up(t, dt);
  duet_tensor *dmask = mask ? gt_up(mask, mask->dtype == DUET_U8 ? DUET_U8 : dt) : NULL;
  duet_tensor *dloss = gt_poison(dt, 1, one), *dcoef = gt_poison(dt, 1, one);
  gt_cpu()->loss->mse_forward(p, t, mask, 0.7, loss, coef);
  gt_gpu()->loss->mse_forward(dp, dt_, dmask, 0.7, dloss, dcoef);
  gt_expect_no_cuda_error("mse");
  const char *names[3] = {"mse", "mse (u8 mask)", "mse (float mask)"};
  CHECK(isfinite(duet_tensor_get(loss, 0)));
  gt_expect_close(names[mask_kind], dloss, loss, gt_tol(dt, 1e-2));
  gt_expect_close("mse coefficient", dcoef, coef, gt_tol(dt, 1e-2));

  /* dloss = 1.5: the backward reads it and the coefficient from the device. */
  duet_tensor *up = gt_host(rd, 1, one);
  duet_tensor_set(up, 0, 1.5);
  duet_tensor *dup = gt_up(up, dt), *g0 = gt_input(dt, 3, ps, seed + 3, -1e-4, 1e-4);
  duet_tensor *g = gt_clone(g0), *dg = gt_up(g0, dt);
  if (dt == DUET_BF16) gt_round_bf16(coef);
  duet_tensor *dcoef_cpu = gt_up(coef, dt);
  gt_cpu()->loss->mse_backward(up, coef, p, t, mask, g);
  gt_gpu()->loss->mse_backward(dup, dcoef_cpu, dp, dt_, dmask, dg);
  gt_expect_no_cuda_error("mse backward");
  gt_expect_delta("mse backward", dg, g, g0, gt_tol(dt, 1e-2));
  duet_tensor *all[] = {p, t, mask, loss, coef, dp, dt_, dmask, dloss, dcoef, up, dup, g0, g, dg, dcoef_cpu};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

static void check_timestep(duet_dtype dt, uint64_t seed) {
  int64_t ts[1] = {6}, os[2] = {6, 96};
  duet_tensor *t = gt_input(dt, 1, ts, seed, 0, 1), *out = gt_host(gt_ref_dtype(dt), 2, os);
  duet_tensor *dt_ = gt_up(t, dt), *dout = gt_poison(dt, 2, os);
  gt_cpu()->loss->timestep_forward(t, 10000.0, 1000.0, out);
  gt_gpu()->loss->timestep_forward(dt_, 10000.0, 1000.0, dout);
  gt_expect_no_cuda_error("timestep embedding");
  gt_expect_close("timestep embedding", dout, out, gt_tol(dt, 1e-2));
  duet_tensor *g = gt_input(dt, 2, os, seed + 1, -1, 1), *gt0 = gt_input(dt, 1, ts, seed + 2, -0.01, 0.01);
  duet_tensor *gtt = gt_clone(gt0), *dg = gt_up(g, dt), *dgt = gt_up(gt0, dt);
  gt_cpu()->loss->timestep_backward(t, g, 10000.0, 1000.0, gtt);
  gt_gpu()->loss->timestep_backward(dt_, dg, 10000.0, 1000.0, dgt);
  gt_expect_no_cuda_error("timestep embedding backward");
  /* The gradient sums 48 terms of size up to scale = 1000: compare in relative terms. */
  gt_expect_delta("timestep embedding backward", dgt, gtt, gt0, gt_tol(dt, 1e-2));
  duet_tensor *all[] = {t, out, dt_, dout, g, gt0, gtt, dg, dgt};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

int main(void) {
  gt_require_gpu("gpu_loss");
  const duet_dtype dts[3] = {DUET_F32, DUET_BF16, DUET_F64};
  for (int d = 0; d < 3; d++) {
    for (int m = 0; m < 3; m++) check_mse(dts[d], m, 100 + 10 * (uint64_t)(3 * d + m));
    check_timestep(dts[d], 500 + 10 * (uint64_t)d);
  }
  return test_finish("gpu_loss");
}

/* Norms, activations, softmax, modulation, the fused norm + modulation and the gated residual,
 * CUDA against CPU, in f32,
 * bf16 (with f32 row statistics) and f64, forward and backward.
 * Tolerances (relative Frobenius): f32 1e-5, f64 1e-12, bf16 1e-2 for outputs and 2e-2 for
 * gradients (their inputs are themselves bf16-rounded outputs). */
#include <math.h>

#include "core/kernels_nn.h"
#include "gpu_test.h"

static const struct duet_kernels_nn *cpu_k(void) { return gt_cpu()->nn; }
static const struct duet_kernels_nn *gpu_k(void) { return gt_gpu()->nn; }

/* Row statistics: x's dtype, except f32 for bf16 runs. */
static duet_dtype stats_dtype(duet_dtype dt) { return dt == DUET_BF16 ? DUET_F32 : dt; }

static void check_layernorm(duet_dtype dt, int64_t D, int affine, uint64_t seed) {
  int64_t xs[3] = {3, 41, D}, ds[1] = {D}, rs[1] = {3 * 41};
  duet_dtype rd = gt_ref_dtype(dt), sd = stats_dtype(dt);
  duet_tensor *x = gt_input(dt, 3, xs, seed, -2, 3), *w = gt_input(dt, 1, ds, seed + 1, 0.5, 1.5);
  duet_tensor *b = gt_input(dt, 1, ds, seed + 2, -1, 1);
  duet_tensor *y = gt_host(rd, 3, xs), *mean = gt_host(rd, 1, rs), *rstd = gt_host(rd, 1, rs);
  duet_tensor *dx_ = gt_up(x, dt), *dw_ = gt_up(w, dt), *db_ = gt_up(b, dt);
  duet_tensor *dy_ = gt_poison(dt, 3, xs), *dmean = gt_poison(sd, 1, rs), *drstd = gt_poison(sd, 1, rs);
  cpu_k()->layernorm_fwd(x, affine ? w : NULL, affine ? b : NULL, 1e-5, y, mean, rstd);
  gpu_k()->layernorm_fwd(dx_, affine ? dw_ : NULL, affine ? db_ : NULL, 1e-5, dy_, dmean, drstd);
  gt_expect_no_cuda_error("layernorm");
  gt_expect_close("layernorm y", dy_, y, gt_tol(dt, 1e-2));
  gt_expect_close("layernorm mean", dmean, mean, gt_tol(dt, 1e-5));
  gt_expect_close("layernorm rstd", drstd, rstd, gt_tol(dt, 1e-5));

  /* Backward from the CPU's statistics on both sides (the GPU's own were checked above). */
  duet_tensor *g = gt_input(dt, 3, xs, seed + 3, -1, 1);
  duet_tensor *gx = gt_input(dt, 3, xs, seed + 4, -1, 1), *gw = gt_input(dt, 1, ds, seed + 5, -1, 1);
  duet_tensor *gb = gt_input(dt, 1, ds, seed + 6, -1, 1);
  duet_tensor *d_g = gt_up(g, dt), *d_gx = gt_up(gx, dt), *d_gw = gt_up(gw, dt), *d_gb = gt_up(gb, dt);
  duet_tensor *smean = gt_up(mean, sd), *srstd = gt_up(rstd, sd);
  cpu_k()->layernorm_bwd(x, affine ? w : NULL, mean, rstd, g, gx, affine ? gw : NULL, affine ? gb : NULL);
  gpu_k()->layernorm_bwd(dx_, affine ? dw_ : NULL, smean, srstd, d_g, d_gx, affine ? d_gw : NULL, affine ? d_gb : NULL);
  gt_expect_no_cuda_error("layernorm backward");
  gt_expect_close("layernorm dx", d_gx, gx, gt_tol(dt, 2e-2));
  if (affine) {
    gt_expect_close("layernorm dw", d_gw, gw, gt_tol(dt, 2e-2));
    gt_expect_close("layernorm db", d_gb, gb, gt_tol(dt, 2e-2));
  }
  duet_tensor *all[] = {x, w, b, y, mean, rstd, dx_, dw_, db_, dy_, dmean, drstd, g, gx, gw, gb, d_g, d_gx, d_gw, d_gb, smean, srstd};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

static void check_rmsnorm(duet_dtype dt, int64_t D, int affine, uint64_t seed) {
  int64_t xs[2] = {77, D}, ds[1] = {D}, rs[1] = {77};
  duet_dtype rd = gt_ref_dtype(dt), sd = stats_dtype(dt);
  duet_tensor *x = gt_input(dt, 2, xs, seed, -2, 2), *w = gt_input(dt, 1, ds, seed + 1, 0.5, 1.5);
  duet_tensor *y = gt_host(rd, 2, xs), *rstd = gt_host(rd, 1, rs);
  duet_tensor *dx_ = gt_up(x, dt), *dw_ = gt_up(w, dt), *dy_ = gt_poison(dt, 2, xs), *drstd = gt_poison(sd, 1, rs);
  cpu_k()->rmsnorm_fwd(x, affine ? w : NULL, 1e-6, y, rstd);
  gpu_k()->rmsnorm_fwd(dx_, affine ? dw_ : NULL, 1e-6, dy_, drstd);
  gt_expect_no_cuda_error("rmsnorm");
  gt_expect_close("rmsnorm y", dy_, y, gt_tol(dt, 1e-2));
  gt_expect_close("rmsnorm rstd", drstd, rstd, gt_tol(dt, 1e-5));

  duet_tensor *g = gt_input(dt, 2, xs, seed + 2, -1, 1), *gx = gt_input(dt, 2, xs, seed + 3, -1, 1);
  duet_tensor *gw = gt_input(dt, 1, ds, seed + 4, -1, 1);
  duet_tensor *d_g = gt_up(g, dt), *d_gx = gt_up(gx, dt), *d_gw = gt_up(gw, dt);
  duet_tensor *srstd = gt_up(rstd, sd);
  cpu_k()->rmsnorm_bwd(x, affine ? w : NULL, rstd, g, gx, affine ? gw : NULL);
  gpu_k()->rmsnorm_bwd(dx_, affine ? dw_ : NULL, srstd, d_g, d_gx, affine ? d_gw : NULL);
  gt_expect_no_cuda_error("rmsnorm backward");
  gt_expect_close("rmsnorm dx", d_gx, gx, gt_tol(dt, 2e-2));
  if (affine) gt_expect_close("rmsnorm dw", d_gw, gw, gt_tol(dt, 2e-2));
  duet_tensor *all[] = {x, w, y, rstd, dx_, dw_, dy_, drstd, g, gx, gw, d_g, d_gx, d_gw, srstd};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

static void check_activations(duet_dtype dt, uint64_t seed) {
  int64_t s[2] = {123, 257};
  for (int act = 0; act < 2; act++) {
    duet_tensor *x = gt_input(dt, 2, s, seed, -4, 4), *y = gt_host(gt_ref_dtype(dt), 2, s);
    duet_tensor *g = gt_input(dt, 2, s, seed + 1, -1, 1), *gx = gt_input(dt, 2, s, seed + 2, -1, 1);
    duet_tensor *dx_ = gt_up(x, dt), *dy_ = gt_poison(dt, 2, s), *d_g = gt_up(g, dt), *d_gx = gt_up(gx, dt);
    cpu_k()->activation_fwd((duet_activation)act, x, y);
    gpu_k()->activation_fwd((duet_activation)act, dx_, dy_);
    cpu_k()->activation_bwd((duet_activation)act, x, g, gx);
    gpu_k()->activation_bwd((duet_activation)act, dx_, d_g, d_gx);
    gt_expect_no_cuda_error("activation");
    gt_expect_close(act ? "silu" : "gelu", dy_, y, gt_tol(dt, 1e-2));
    gt_expect_close(act ? "silu backward" : "gelu backward", d_gx, gx, gt_tol(dt, 2e-2));
    duet_tensor *all[] = {x, y, g, gx, dx_, dy_, d_g, d_gx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
  }
}

static void check_softmax(duet_dtype dt, int64_t D, uint64_t seed) {
  int64_t s[2] = {29, D};
  duet_tensor *x = gt_input(dt, 2, s, seed, -5, 5);
  /* Row 3 is all -inf (a query with nothing to attend): zeros, not NaN. Row 4 half -inf. */
  for (int64_t j = 0; j < D; j++) duet_tensor_set(x, 3 * D + j, -INFINITY);
  for (int64_t j = 0; j < D; j += 2) duet_tensor_set(x, 4 * D + j, -INFINITY);
  duet_tensor *y = gt_host(gt_ref_dtype(dt), 2, s);
  duet_tensor *dx_ = gt_up(x, dt), *dy_ = gt_poison(dt, 2, s);
  cpu_k()->softmax_fwd(x, y);
  gpu_k()->softmax_fwd(dx_, dy_);
  gt_expect_no_cuda_error("softmax");
  gt_expect_close("softmax", dy_, y, gt_tol(dt, 1e-2));
  /* Backward from the CPU's y on both sides. */
  if (dt == DUET_BF16) gt_round_bf16(y);
  duet_tensor *g = gt_input(dt, 2, s, seed + 1, -1, 1), *gx = gt_input(dt, 2, s, seed + 2, -1, 1);
  duet_tensor *d_y = gt_up(y, dt), *d_g = gt_up(g, dt), *d_gx = gt_up(gx, dt);
  cpu_k()->softmax_bwd(y, g, gx);
  gpu_k()->softmax_bwd(d_y, d_g, d_gx);
  gt_expect_no_cuda_error("softmax backward");
  gt_expect_close("softmax backward", d_gx, gx, gt_tol(dt, 2e-2));
  duet_tensor *all[] = {x, y, dx_, dy_, g, gx, d_y, d_g, d_gx};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

static void check_modulate_gated(duet_dtype dt, uint64_t seed) {
  int64_t xs[3] = {3, 70, 96}, vs[2] = {3, 96};
  duet_dtype rd = gt_ref_dtype(dt);
  duet_tensor *x = gt_input(dt, 3, xs, seed, -2, 2), *y2 = gt_input(dt, 3, xs, seed + 1, -2, 2);
  duet_tensor *sh = gt_input(dt, 2, vs, seed + 2, -1, 1), *sc = gt_input(dt, 2, vs, seed + 3, -1, 1);
  duet_tensor *out = gt_host(rd, 3, xs);
  duet_tensor *dx_ = gt_up(x, dt), *dy2 = gt_up(y2, dt), *dsh = gt_up(sh, dt), *dsc = gt_up(sc, dt);
  duet_tensor *dout = gt_poison(dt, 3, xs);
  cpu_k()->modulate_fwd(x, sh, sc, out);
  gpu_k()->modulate_fwd(dx_, dsh, dsc, dout);
  gt_expect_no_cuda_error("modulate");
  gt_expect_close("modulate", dout, out, gt_tol(dt, 1e-2));

  duet_tensor *g = gt_input(dt, 3, xs, seed + 4, -1, 1), *gx = gt_input(dt, 3, xs, seed + 5, -1, 1);
  duet_tensor *gsh = gt_input(dt, 2, vs, seed + 6, -1, 1), *gsc = gt_input(dt, 2, vs, seed + 7, -1, 1);
  duet_tensor *d_g = gt_up(g, dt), *d_gx = gt_up(gx, dt), *d_gsh = gt_up(gsh, dt), *d_gsc = gt_up(gsc, dt);
  cpu_k()->modulate_bwd(x, sc, g, gx, gsh, gsc);
  gpu_k()->modulate_bwd(dx_, dsc, d_g, d_gx, d_gsh, d_gsc);
  gt_expect_no_cuda_error("modulate backward");
  gt_expect_close("modulate dx", d_gx, gx, gt_tol(dt, 2e-2));
  gt_expect_close("modulate dshift", d_gsh, gsh, gt_tol(dt, 2e-2));
  gt_expect_close("modulate dscale", d_gsc, gsc, gt_tol(dt, 2e-2));

  /* out = x + gate * y2, gate = sh */
  duet_tensor *dout2 = gt_poison(dt, 3, xs);
  cpu_k()->gated_residual_fwd(x, sh, y2, out);
  gpu_k()->gated_residual_fwd(dx_, dsh, dy2, dout2);
  gt_expect_no_cuda_error("gated residual");
  gt_expect_close("gated residual", dout2, out, gt_tol(dt, 1e-2));
  duet_tensor *gy = gt_input(dt, 3, xs, seed + 8, -1, 1), *d_gy = gt_up(gy, dt);
  cpu_k()->gated_residual_bwd(sh, y2, g, gx, gsh, gy);
  gpu_k()->gated_residual_bwd(dsh, dy2, d_g, d_gx, d_gsh, d_gy);
  gt_expect_no_cuda_error("gated residual backward");
  gt_expect_close("gated residual dx", d_gx, gx, gt_tol(dt, 2e-2));
  gt_expect_close("gated residual dgate", d_gsh, gsh, gt_tol(dt, 2e-2));
  gt_expect_close("gated residual dy", d_gy, gy, gt_tol(dt, 2e-2));
  duet_tensor *all[] = {x, y2, sh, sc, out, dx_, dy2, dsh, dsc, dout, g, gx, gsh, gsc, d_g, d_gx, d_gsh, d_gsc, dout2, gy, d_gy};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

/* The fused norm + modulation (its own kernel group), layernorm and rmsnorm flavours: y and the
 * statistics, then dx, dshift and dscale from the CPU's statistics, against the CPU kernels. */
static void check_norm_modulate(duet_dtype dt, int rms, int64_t D, uint64_t seed) {
  const struct duet_kernels_norm_modulate *ck = gt_cpu()->norm_modulate, *gk = gt_gpu()->norm_modulate;
  int64_t xs[3] = {3, 37, D}, vs[2] = {3, D}, rs[1] = {3 * 37};
  duet_dtype rd = gt_ref_dtype(dt), sd = stats_dtype(dt);
  duet_tensor *x = gt_input(dt, 3, xs, seed, -2, 3), *sh = gt_input(dt, 2, vs, seed + 1, -1, 1);
  duet_tensor *sc = gt_input(dt, 2, vs, seed + 2, -1, 1);
  duet_tensor *y = gt_host(rd, 3, xs), *mean = gt_host(rd, 1, rs), *rstd = gt_host(rd, 1, rs);
  duet_tensor *dx_ = gt_up(x, dt), *dsh = gt_up(sh, dt), *dsc = gt_up(sc, dt);
  duet_tensor *dy_ = gt_poison(dt, 3, xs), *dmean = rms ? NULL : gt_poison(sd, 1, rs), *drstd = gt_poison(sd, 1, rs);
  ck->fwd(rms, x, sh, sc, 1e-6, y, rms ? NULL : mean, rstd);
  gk->fwd(rms, dx_, dsh, dsc, 1e-6, dy_, dmean, drstd);
  gt_expect_no_cuda_error("norm_modulate");
  gt_expect_close("norm_modulate y", dy_, y, gt_tol(dt, 1e-2));
  if (!rms) gt_expect_close("norm_modulate mean", dmean, mean, gt_tol(dt, 1e-5));
  gt_expect_close("norm_modulate rstd", drstd, rstd, gt_tol(dt, 1e-5));

  duet_tensor *g = gt_input(dt, 3, xs, seed + 3, -1, 1), *gx = gt_input(dt, 3, xs, seed + 4, -1, 1);
  duet_tensor *gsh = gt_input(dt, 2, vs, seed + 5, -1, 1), *gsc = gt_input(dt, 2, vs, seed + 6, -1, 1);
  duet_tensor *gx0 = gt_clone(gx), *gsh0 = gt_clone(gsh), *gsc0 = gt_clone(gsc);
  duet_tensor *d_g = gt_up(g, dt), *d_gx = gt_up(gx, dt), *d_gsh = gt_up(gsh, dt), *d_gsc = gt_up(gsc, dt);
  duet_tensor *smean = rms ? NULL : gt_up(mean, sd), *srstd = gt_up(rstd, sd);
  ck->bwd(rms, x, sc, rms ? NULL : mean, rstd, g, gx, gsh, gsc);
  gk->bwd(rms, dx_, dsc, smean, srstd, d_g, d_gx, d_gsh, d_gsc);
  gt_expect_no_cuda_error("norm_modulate backward");
  gt_expect_delta("norm_modulate dx", d_gx, gx, gx0, gt_tol(dt, 2e-2));
  gt_expect_delta("norm_modulate dshift", d_gsh, gsh, gsh0, gt_tol(dt, 2e-2));
  gt_expect_delta("norm_modulate dscale", d_gsc, gsc, gsc0, gt_tol(dt, 2e-2));
  duet_tensor *all[] = {x, sh, sc, y, mean, rstd, dx_, dsh, dsc, dy_, dmean, drstd, g, gx, gsh, gsc, gx0, gsh0, gsc0,
                        d_g, d_gx, d_gsh, d_gsc, smean, srstd};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

int main(void) {
  gt_require_gpu("gpu_nn");
  const duet_dtype dts[3] = {DUET_F32, DUET_BF16, DUET_F64};
  const int64_t widths[3] = {64, 1000, 3000};
  for (int d = 0; d < 3; d++) {
    uint64_t seed = 1000 * (uint64_t)(d + 1);
    for (int w = 0; w < 3; w++) {
      check_layernorm(dts[d], widths[w], 1, seed += 10);
      check_layernorm(dts[d], widths[w], 0, seed += 10);
      check_rmsnorm(dts[d], widths[w], 1, seed += 10);
      check_rmsnorm(dts[d], widths[w], 0, seed += 10);
      check_softmax(dts[d], widths[w], seed += 10);
    }
    check_activations(dts[d], seed += 10);
    check_modulate_gated(dts[d], seed += 10);
    const int64_t nm_widths[3] = {20, 64, 1000}; /* 20: the narrow column sums */
    for (int w = 0; w < 3; w++)
      for (int rms = 0; rms < 2; rms++) check_norm_modulate(dts[d], rms, nm_widths[w], seed += 10);
  }
  return test_finish("gpu_nn");
}

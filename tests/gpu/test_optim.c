/* The fused AdamW kernel against duet_adamw_update_elem (bit for bit, reported in ulps), the
 * deterministic global norm and clipping against the CPU's, and f32 <-> bf16 conversion
 * against duet_f32_to_bf16 (bit for bit, special values included). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cuda/cuda_optim.h"
#include "core/optim.h"
#include "gpu_test.h"

static int64_t ulp_diff(float a, float b) {
  int32_t ia, ib;
  memcpy(&ia, &a, 4);
  memcpy(&ib, &b, 4);
  if (ia < 0) ia = INT32_MIN - ia;
  if (ib < 0) ib = INT32_MIN - ib;
  return llabs((long long)ia - (long long)ib);
}

static int64_t max_ulps(const duet_tensor *gpu, const duet_tensor *cpu, int64_t *differing) {
  duet_tensor *h = gt_down(gpu);
  const float *a = h->data, *b = cpu->data;
  int64_t worst = 0;
  *differing = 0;
  for (int64_t i = 0; i < cpu->numel; i++) {
    int64_t d = ulp_diff(a[i], b[i]);
    if (d) ++*differing;
    if (d > worst) worst = d;
  }
  gt_free(h);
  return worst;
}

static void check_adamw(int64_t step, int decay, uint64_t seed) {
  int64_t n[1] = {200003};
  duet_tensor *p = gt_rand(DUET_F32, 1, n, seed, -1, 1), *g = gt_rand(DUET_F32, 1, n, seed + 1, -0.1, 0.1);
  duet_tensor *m = gt_rand(DUET_F32, 1, n, seed + 2, -0.05, 0.05), *v = gt_rand(DUET_F32, 1, n, seed + 3, 0, 0.01);
  duet_tensor *dp = gt_up(p, DUET_F32), *dg = gt_up(g, DUET_F32), *dm = gt_up(m, DUET_F32), *dv = gt_up(v, DUET_F32);
  duet_adamw_config cfg = duet_adamw_defaults();
  cfg.weight_decay = 0.1;
  duet_adamw_hparams h = duet_adamw_hparams_make(&cfg, 3e-4, step, decay);
  /* A middle range, as a ZeRO-1 shard would update. */
  const int64_t lo = 17, hi = n[0] - 5;
  duet_adamw_update_range(p->data, g->data, m->data, v->data, lo, hi, &h);
  duet_err err;
  int rc = duet_cuda_adamw_update_range(dp->data, dg->data, dm->data, dv->data, lo, hi, &h, &err);
  CHECK_MSG(rc == DUET_OK, "adamw: %s", rc ? err.msg : "");
  gt_expect_no_cuda_error("adamw");
  int64_t differing;
  int64_t up = max_ulps(dp, p, &differing), um, uv, dm_n, dv_n;
  um = max_ulps(dm, m, &dm_n);
  uv = max_ulps(dv, v, &dv_n);
  printf("adamw step %lld decay %d: p differs in %lld elements (max %lld ulp), m %lld (%lld ulp), v %lld (%lld ulp)\n",
         (long long)step, decay, (long long)differing, (long long)up, (long long)dm_n, (long long)um, (long long)dv_n,
         (long long)uv);
  CHECK_MSG(up <= 1 && um <= 1 && uv <= 1, "adamw: max ulps p %lld m %lld v %lld", (long long)up, (long long)um,
            (long long)uv);
  duet_tensor *all[] = {p, g, m, v, dp, dg, dm, dv};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

static void check_norm_clip(uint64_t seed) {
  const int64_t sizes[3] = {1000, 70001, 16384 * 3};
  duet_tensor *h[3], *d[3];
  duet_cuda_span spans[3];
  double want = 0;
  for (int i = 0; i < 3; i++) {
    h[i] = gt_rand(DUET_F32, 1, &sizes[i], seed + (uint64_t)i, -1, 1);
    d[i] = gt_up(h[i], DUET_F32);
    spans[i].data = d[i]->data;
    spans[i].n = sizes[i];
    const float *x = h[i]->data;
    for (int64_t k = 0; k < sizes[i]; k++) want += (double)x[k] * x[k];
  }
  duet_err err;
  double got = -1, norm = -1;
  int rc = duet_cuda_grad_sumsq(spans, 3, &got, &err);
  CHECK_MSG(rc == DUET_OK, "grad_sumsq: %s", rc ? err.msg : "");
  CHECK_NEAR(got, want, 1e-12 * want);
  double again = -2;
  duet_cuda_grad_sumsq(spans, 3, &again, &err);
  CHECK_MSG(again == got, "grad_sumsq is not deterministic: %.17g then %.17g", got, again);

  /* Clip to half the norm: every element times (float)(max / norm), as the CPU does. */
  const double max_norm = 0.5 * sqrt(want);
  rc = duet_cuda_grad_clip(spans, 3, max_norm, &norm, &err);
  CHECK_MSG(rc == DUET_OK, "grad_clip: %s", rc ? err.msg : "");
  CHECK_NEAR(norm, sqrt(want), 1e-12 * sqrt(want));
  const float fs = (float)(max_norm / norm);
  for (int i = 0; i < 3; i++) {
    float *x = h[i]->data;
    for (int64_t k = 0; k < sizes[i]; k++) x[k] *= fs;
    gt_expect_close("grad_clip scaled gradients (exact)", d[i], h[i], 0);
  }

  /* A NaN: ENUMERIC, naming span 1, and nothing scaled. */
  float nan = NAN;
  gt_gpu()->copy_from_host((float *)d[1]->data + 123, &nan, sizeof nan);
  ((float *)h[1]->data)[123] = NAN;
  rc = duet_cuda_grad_clip(spans, 3, 1e-3, &norm, &err);
  CHECK_EQ_INT(rc, DUET_ENUMERIC);
  CHECK_MSG(rc != DUET_ENUMERIC || strstr(err.msg, "span 1"), "grad_clip message: %s", err.msg);
  gt_expect_close("grad_clip leaves gradients alone on NaN", d[0], h[0], 0);
  for (int i = 0; i < 3; i++) gt_free(h[i]), gt_free(d[i]);
  gt_expect_no_cuda_error("grad norm");
}

static void check_convert(uint64_t seed) {
  int64_t n[1] = {100000};
  duet_tensor *x = gt_rand(DUET_F32, 1, n, seed, -1e4, 1e4);
  float *xs = x->data;
  /* Specials: signed zeros, infinities, NaN, the largest finite, subnormals, ties. */
  const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 3.4028235e38f, 1e-40f, -1e-45f, 1.00390625f,
                            1.01171875f, -2.00781250f, 65504.0f};
  memcpy(xs, specials, sizeof specials);
  duet_tensor *dx = gt_up(x, DUET_F32);
  uint16_t *dbf = gt_gpu()->alloc((size_t)n[0] * 2);
  float *dback = gt_gpu()->alloc((size_t)n[0] * 4);
  duet_err err;
  CHECK(duet_cuda_f32_to_bf16(dbf, dx->data, n[0], &err) == DUET_OK);
  CHECK(duet_cuda_bf16_to_f32(dback, dbf, n[0], &err) == DUET_OK);
  uint16_t *bf = malloc((size_t)n[0] * 2);
  float *back = malloc((size_t)n[0] * 4);
  gt_gpu()->copy_to_host(bf, dbf, (size_t)n[0] * 2);
  gt_gpu()->copy_to_host(back, dback, (size_t)n[0] * 4);
  int64_t bad = 0, bad_back = 0;
  for (int64_t i = 0; i < n[0]; i++) {
    uint16_t want = duet_f32_to_bf16(xs[i]);
    if (bf[i] != want) bad++;
    float w = duet_bf16_to_f32(want);
    if (memcmp(&back[i], &w, 4) != 0) bad_back++;
  }
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(bad_back, 0);
  gt_expect_no_cuda_error("convert");
  free(bf);
  free(back);
  gt_gpu()->free(dbf);
  gt_gpu()->free(dback);
  gt_free(x);
  gt_free(dx);
}

int main(void) {
  gt_require_gpu("gpu_optim");
  check_adamw(1, 1, 10);
  check_adamw(7, 1, 20);
  check_adamw(1000, 0, 30);
  check_norm_clip(40);
  check_convert(50);
  return test_finish("gpu_optim");
}

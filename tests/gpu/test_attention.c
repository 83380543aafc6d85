/* Fused attention (forward with its log-sum-exp, and backward) and rotary positions, CUDA
 * against CPU: self- and cross-attention (Lq != Lk), key masks including a batch entry whose
 * keys are all masked, tile-aligned and ragged lengths, head dims 16, 32, 64, 80 and 128 (bf16
 * with 64 and 128 runs on the tensor cores, everything else on the CUDA-core kernels).
 * Gradients accumulate into random starting values; their increments are compared.
 * Tolerances (relative Frobenius):
 *   f32: 1e-5 for o, lse, dq, dk, dv (f32 arithmetic throughout, like the CPU);
 *   f64: 1e-12;
 *   bf16: o 1e-2, lse 1e-3 (lse is kept in f32), dq, dk, dv 3e-2 (P and dS are rounded to
 *   bf16 before their products, as in FlashAttention). */
#include <math.h>
#include <string.h>

#include "core/kernels_attention.h"
#include "gpu_test.h"

typedef struct attn_case {
  int64_t B, Lq, Lk;
  int H, Dh;
  int mask;        /* random key mask */
  int dead_batch;  /* the last batch entry has every key masked */
  int skip_dk;     /* backward without dk */
} attn_case;

static duet_tensor *make_mask(const attn_case *c, uint64_t seed) {
  int64_t ms[2] = {c->B, c->Lk};
  duet_tensor *m = gt_rand(DUET_U8, 2, ms, seed, 0, 2.5); /* 0, 1 or 2: about 40% masked */
  for (int64_t b = 0; b < c->B; b++) duet_tensor_set(m, b * c->Lk, 1); /* a key for everyone... */
  if (c->dead_batch)
    for (int64_t j = 0; j < c->Lk; j++) duet_tensor_set(m, (c->B - 1) * c->Lk + j, 0); /* ...but the last */
  return m;
}

static void run(duet_dtype dt, const attn_case *c, uint64_t seed) {
  const int64_t C = (int64_t)c->H * c->Dh;
  int64_t qs[3] = {c->B, c->Lq, C}, ks[3] = {c->B, c->Lk, C}, ls[3] = {c->B, c->H, c->Lq};
  const duet_dtype rd = gt_ref_dtype(dt), lt = dt == DUET_F64 ? DUET_F64 : DUET_F32;
  const double scale = 1.0 / sqrt((double)c->Dh);
  char what[200];
  snprintf(what, sizeof what, "attention %s B %lld Lq %lld Lk %lld H %d Dh %d%s%s", duet_dtype_name(dt), (long long)c->B,
           (long long)c->Lq, (long long)c->Lk, c->H, c->Dh, c->mask ? " masked" : "", c->dead_batch ? " (dead batch)" : "");

  duet_tensor *q = gt_input(dt, 3, qs, seed, -2, 2), *k = gt_input(dt, 3, ks, seed + 1, -2, 2);
  duet_tensor *v = gt_input(dt, 3, ks, seed + 2, -1, 1);
  duet_tensor *mask = c->mask ? make_mask(c, seed + 3) : NULL;
  duet_tensor *o = gt_host(rd, 3, qs), *lse = gt_host(rd, 3, ls);
  duet_tensor *dq_ = gt_up(q, dt), *dk_ = gt_up(k, dt), *dv_ = gt_up(v, dt), *dmask = mask ? gt_up(mask, DUET_U8) : NULL;
  duet_tensor *do_ = gt_poison(dt, 3, qs), *dlse = gt_poison(lt, 3, ls), *do2 = gt_poison(dt, 3, qs);

  gt_cpu()->attention->attention_fwd(q, k, v, mask, c->H, scale, o, lse);
  gt_gpu()->attention->attention_fwd(dq_, dk_, dv_, dmask, c->H, scale, do_, dlse);
  gt_gpu()->attention->attention_fwd(dq_, dk_, dv_, dmask, c->H, scale, do2, NULL);
  gt_expect_no_cuda_error(what);
  gt_expect_close("attention o", do_, o, gt_tol(dt, 1e-2));
  gt_expect_close("attention o (no lse)", do2, o, gt_tol(dt, 1e-2));
  gt_expect_close("attention lse", dlse, lse, gt_tol(dt, 1e-3));

  /* Backward: the CPU from its forward, the GPU from its own. */
  duet_tensor *dout = gt_input(dt, 3, qs, seed + 4, -1, 1);
  duet_tensor *gq0 = gt_input(dt, 3, qs, seed + 5, -0.01, 0.01), *gk0 = gt_input(dt, 3, ks, seed + 6, -0.01, 0.01);
  duet_tensor *gv0 = gt_input(dt, 3, ks, seed + 7, -0.01, 0.01);
  duet_tensor *gq = gt_clone(gq0), *gk = gt_clone(gk0), *gv = gt_clone(gv0);
  duet_tensor *d_dout = gt_up(dout, dt), *d_gq = gt_up(gq0, dt), *d_gk = gt_up(gk0, dt), *d_gv = gt_up(gv0, dt);
  gt_cpu()->attention->attention_bwd(q, k, v, mask, c->H, scale, o, lse, dout, gq, c->skip_dk ? NULL : gk, gv);
  gt_gpu()->attention->attention_bwd(dq_, dk_, dv_, dmask, c->H, scale, do_, dlse, d_dout, d_gq,
                                     c->skip_dk ? NULL : d_gk, d_gv);
  snprintf(what + strlen(what), sizeof what - strlen(what), " backward");
  gt_expect_no_cuda_error(what);
  const double gtol = gt_tol(dt, 3e-2);
  gt_expect_delta("attention dq", d_gq, gq, gq0, gtol);
  if (!c->skip_dk) gt_expect_delta("attention dk", d_gk, gk, gk0, gtol);
  else gt_expect_close("attention dk untouched", d_gk, gk0, 0);
  gt_expect_delta("attention dv", d_gv, gv, gv0, gtol);

  duet_tensor *all[] = {q, k, v, mask, o, lse, dq_, dk_, dv_, dmask, do_, dlse, do2, dout, gq0, gk0, gv0, gq, gk, gv,
                        d_dout, d_gq, d_gk, d_gv};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

static void run_rope(duet_dtype dt, int per_sample, duet_dtype pos_dt, uint64_t seed) {
  const int64_t B = 2, L = 33, H = 3, Dh = 32;
  int64_t xs[3] = {B, L, H * Dh}, ps3[3] = {B, L, 3}, ps2[2] = {L, 3};
  duet_rope_spec spec = {3, {4, 6, 6, 0}, 10000.0};
  duet_tensor *x = gt_input(dt, 3, xs, seed, -1, 1);
  duet_tensor *pos = per_sample ? gt_rand(pos_dt, 3, ps3, seed + 1, -20, 100) : gt_rand(pos_dt, 2, ps2, seed + 1, 0, 64);
  duet_tensor *y = gt_host(gt_ref_dtype(dt), 3, xs);
  duet_tensor *dx_ = gt_up(x, dt), *dpos = gt_up(pos, pos_dt), *dy_ = gt_poison(dt, 3, xs);
  gt_cpu()->attention->rope_fwd(x, pos, (int)H, &spec, y);
  gt_gpu()->attention->rope_fwd(dx_, dpos, (int)H, &spec, dy_);
  gt_expect_no_cuda_error("rope");
  gt_expect_close("rope", dy_, y, gt_tol(dt, 1e-2));
  duet_tensor *g = gt_input(dt, 3, xs, seed + 2, -1, 1), *gx0 = gt_input(dt, 3, xs, seed + 3, -1, 1);
  duet_tensor *gx = gt_clone(gx0), *d_g = gt_up(g, dt), *d_gx = gt_up(gx0, dt);
  gt_cpu()->attention->rope_bwd(g, pos, (int)H, &spec, gx);
  gt_gpu()->attention->rope_bwd(d_g, dpos, (int)H, &spec, d_gx);
  gt_expect_no_cuda_error("rope backward");
  gt_expect_delta("rope backward", d_gx, gx, gx0, gt_tol(dt, 2e-2));
  duet_tensor *all[] = {x, pos, y, dx_, dpos, dy_, g, gx0, gx, d_g, d_gx};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gt_free(all[i]);
}

int main(void) {
  gt_require_gpu("gpu_attention");
  const attn_case cases[] = {
      {2, 37, 37, 2, 32, 0, 0, 0},   /* self-attention, no mask, tiny-config head dim */
      {2, 70, 45, 3, 64, 1, 1, 0},   /* cross-attention, masked, one batch entry with no key */
      {1, 130, 200, 2, 128, 1, 0, 0}, /* ragged tiles, masked */
      {2, 64, 64, 1, 64, 0, 0, 1},   /* exact tiles; backward without dk */
      {1, 20, 33, 4, 16, 1, 0, 0},   /* one thread per query row */
      {1, 50, 50, 2, 80, 0, 0, 0},   /* a head dim that is no power of two */
      {2, 96, 130, 2, 128, 1, 1, 0}, /* 128, cross, dead batch */
  };
  const duet_dtype dts[3] = {DUET_F32, DUET_BF16, DUET_F64};
  uint64_t seed = 7;
  for (int d = 0; d < 3; d++)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(dts[d], &cases[i], seed += 16);
  for (int d = 0; d < 3; d++) {
    run_rope(dts[d], 0, DUET_F32, seed += 16);
    run_rope(dts[d], 1, DUET_F64, seed += 16);
  }
  return test_finish("gpu_attention");
}

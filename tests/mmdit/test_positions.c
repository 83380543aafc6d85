/* Time-aligned rotary positions: a video token and an audio token at the same instant get the
 * same rotation on the shared time pairs, and cross-attention scores depend on the time
 * difference only. */
#include <math.h>
#include <string.h>

#include "model/positions.h"
#include "testlib.h"
#include "tiny_config.h"

/* Rotates one head vector x (dh values) at the given position row under spec. */
static void rotate(duet_graph *g, const duet_rope_spec *spec, const float *pos, int axes, const double *x, int dh,
                   double *out) {
  duet_graph_reset(g);
  int64_t xs[3] = {1, 1, dh}, ps[2] = {1, axes};
  duet_tensor *xt = duet_graph_from_host(g, DUET_F64, DUET_CPU, 3, xs, x);
  duet_tensor *pt = duet_graph_from_host(g, DUET_F32, DUET_CPU, 2, ps, pos);
  duet_tensor *y = duet_rope(g, xt, pt, 1, spec);
  if (y) memcpy(out, y->data, sizeof(double) * (size_t)dh);
}

int main(void) {
  duet_model_config c = tiny_model_config();
  c.width_audio = 32; c.heads_audio = 2; /* same head size in both branches: 16, 8 pairs */
  duet_positions p;
  duet_err err;
  CHECK(duet_positions_make(&p, &c, &err) == DUET_OK);
  CHECK_EQ_INT(p.video.tokens, 2 * 2 * 2);
  CHECK_EQ_INT(p.audio.tokens, 4);
  /* Token times are patch centres on one clock. */
  CHECK_NEAR(p.video.times[0], (0.5 / 16) * c.rope_time_scale, 1e-6);
  CHECK_NEAR(p.video.times[4], (2.5 / 16) * c.rope_time_scale, 1e-6);
  CHECK_NEAR(p.audio.times[1], (5.5 / 64) * c.rope_time_scale, 1e-6);
  CHECK_EQ_INT(p.video.self_spec.pairs_per_axis[0], c.rope_time_pairs);
  CHECK_EQ_INT(p.audio.self_spec.pairs_per_axis[0], c.rope_time_pairs);

  duet_graph g;
  duet_graph_init(&g, 1 << 16);
  enum { DH = 16 };
  double x[DH], rv[DH], ra[DH];
  for (int i = 0; i < DH; i++) x[i] = sin(1.0 + i);
  /* Same instant (1.37 s), different branch specs and different non-time positions. */
  float time = (float)(1.37 * c.rope_time_scale);
  float vpos[3] = {time, 1, 1}, apos[2] = {time, 87};
  rotate(&g, &p.video.self_spec, vpos, p.video.self_axes, x, DH, rv);
  rotate(&g, &p.audio.self_spec, apos, p.audio.self_axes, x, DH, ra);
  CHECK(duet_graph_ok(&g));
  double worst = 0;
  for (int i = 0; i < 2 * c.rope_time_pairs; i++) worst = fmax(worst, fabs(rv[i] - ra[i]));
  CHECK_MSG(worst < 1e-12, "time pairs differ by %g", worst);
  /* ... and the time pairs really did rotate. */
  CHECK(fabs(rv[0] - x[0]) > 1e-3);
  /* The non-time pairs differ (the branches have their own axes there). */
  double other = 0;
  for (int i = 2 * c.rope_time_pairs; i < DH; i++) other = fmax(other, fabs(rv[i] - ra[i]));
  CHECK(other > 1e-3);

  /* Cross-attention: <rope(q, ta), rope(k, tv)> depends only on ta - tv. */
  double q[DH], k[DH], rq[DH], rk[DH];
  for (int i = 0; i < DH; i++) { q[i] = cos(0.3 * i); k[i] = sin(0.7 * i + 0.2); }
  double dots[2];
  float shifts[2] = {0.0f, 5.0f};
  for (int s = 0; s < 2; s++) {
    float qp[2] = {3.0f + shifts[s], 0}, kp[2] = {1.5f + shifts[s], 0};
    rotate(&g, &p.audio.cross_spec, qp, p.audio.cross_spec.n_axes, q, DH, rq);
    rotate(&g, &p.audio.cross_spec, kp, p.audio.cross_spec.n_axes, k, DH, rk);
    dots[s] = 0;
    for (int i = 0; i < DH; i++) dots[s] += rq[i] * rk[i];
  }
  CHECK_NEAR(dots[0], dots[1], 1e-9);

  duet_graph_free(&g);
  duet_positions_free(&p);
  return test_finish("mmdit_positions");
}

/* duet-train's step with train.device = cuda against the same run on the CPU: a tiny model
 * (the train tests' fixture) trained four steps each way from the same seed and data. Per
 * step: the losses and the gradient norm agree (relative 1e-4 on the first step, where only
 * the forward and backward differ, then 1e-3 as the f32 differences of fused multiply-adds
 * compound through the updates); the final weights agree (relative Frobenius 1e-3), and so do
 * the validation losses of the weights and of their EMA (1e-3). The GPU run's checkpoint has
 * the CPU's format: its model.safetensors loads strictly into a CPU model, and its tensors are
 * the GPU weights. Resumed from its checkpoint, each GPU run (f32 and bf16) has the same
 * weights and takes the same fifth step, bit for bit.
 *
 * A third run, train.precision = bf16 (bf16 compute copies of f32 master weights, gradients
 * folded into f32 after each micro-batch), tracks the f32 CPU run. bf16 keeps 8 significant
 * bits: each rounding is off by at most u = 2^-9 = 2e-3 relative. The bounds, and what the
 * host emulation measured (tests/gpu/emu/run.sh train):
 * - gradients (relative Frobenius over all parameters, after clipping): 1e-2 on step 1, where
 *   the weights and clips are the same and only the arithmetic differs (there the gradient
 *   comes through three roundings: the activation, the output's gradient and the bf16
 *   gradient itself; 1e-2 is five u; measured 3.2e-3), 2e-2 after it, as the weights drift
 *   apart (measured 3e-3 to 5e-3). Per parameter,
 *   the norm of the bf16 run's gradient lies within 0.5 to 1.5 times the f32 one's (measured
 *   0.94 to 1.04), so a gradient that is not folded (0) or folded twice (2) fails even where
 *   it is too small to move the whole.
 * - the gradient norm: 2e-2, the same bound (| |a| - |b| | <= |a - b|; measured 1e-4).
 * - the loss, and its video and audio parts: 1e-3 relative, half of one rounding of the loss.
 *   The loss is reduced in f32 from f32 targets; the bf16 errors reach it only through the
 *   predictions, in proportion to them, and adaLN-Zero starts the predictions at zero (the
 *   first step's loss does not depend on the precision). Measured at most 6.5e-6.
 * - the weights after four steps: 1e-2 (AdamW's first steps move each weight by about lr
 *   whatever its gradient's size, so where a tiny gradient's sign differs the weight differs
 *   by 2 lr; measured 9.3e-4); the validation loss (the f32 masters on both): 1e-3.
 * The bf16 run's checkpoint holds its f32 masters and loads strictly into the CPU model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/safetensors.h"
#include "gpu_test.h"
#include "train/trainer.h"
#include "train_fixture.h"

#define STEPS 4

static duet_trainer *create(const char *data, const char *run, int device, int precision) {
  duet_train_config c;
  if (fx_config(&c, data, run)) return NULL;
  c.train.device = device;
  c.train.precision = precision;
  c.train.steps = STEPS;
  c.train.val_every = 0;
  c.train.ckpt_every = 0;
  c.train.log_every = 0;
  duet_trainer_opts o = {.cfg = &c};
  duet_trainer *t = NULL;
  duet_err err;
  int rc = duet_trainer_create(&t, &o, &err);
  CHECK_MSG(rc == DUET_OK, "%s %s trainer: %s", device ? "cuda" : "cpu", precision ? "bf16" : "f32",
            rc ? err.msg : "");
  return rc ? NULL : t;
}

/* ||a - b|| / ||b|| over every parameter (each on any device). */
static double params_rel_err(const duet_param_set *a, const duet_param_set *b) {
  double num = 0, den = 0;
  for (int i = 0; i < b->count; i++) {
    const duet_tensor *pa = a->items[i], *pb = b->items[i];
    if (pa->dtype != DUET_F32 || pb->dtype != DUET_F32 || pa->numel != pb->numel) return INFINITY;
    float *ha = malloc(duet_tensor_bytes(pa) + 4), *hb = malloc(duet_tensor_bytes(pb) + 4);
    duet_tensor_download(pa, ha);
    duet_tensor_download(pb, hb);
    for (int64_t k = 0; k < pb->numel; k++) {
      double d = (double)ha[k] - hb[k];
      num += d * d;
      den += (double)hb[k] * hb[k];
    }
    free(ha);
    free(hb);
  }
  return sqrt(num / (den > 0 ? den : 1));
}

/* The same over the gradients. Per parameter with a non-zero reference gradient, the ratio of
 * the two gradients' norms: *lo and *hi get the extremes, *lo_name and *hi_name their
 * parameters (a gradient left out would give 0, one added twice 2). */
static double grads_rel_err(const duet_param_set *a, const duet_param_set *b, double *lo, const char **lo_name,
                            double *hi, const char **hi_name) {
  double num = 0, den = 0;
  *lo = INFINITY;
  *hi = 0;
  *lo_name = *hi_name = "";
  for (int i = 0; i < b->count; i++) {
    const duet_tensor *ga = a->items[i]->grad, *gb = b->items[i]->grad;
    if (!ga || !gb) continue;
    if (ga->dtype != DUET_F32 || gb->dtype != DUET_F32) return INFINITY;
    float *h = malloc(duet_tensor_bytes(ga) + 4);
    duet_tensor_download(ga, h);
    double n1 = 0, na = 0, nb = 0;
    for (int64_t k = 0; k < gb->numel; k++) {
      double x = ((const float *)gb->data)[k], d = (double)h[k] - x;
      n1 += d * d;
      na += (double)h[k] * h[k];
      nb += x * x;
    }
    free(h);
    num += n1;
    den += nb;
    if (nb > 0) {
      double r = sqrt(na / nb);
      if (r < *lo) *lo = r, *lo_name = b->items[i]->name;
      if (r > *hi) *hi = r, *hi_name = b->items[i]->name;
    }
  }
  return sqrt(num / (den > 0 ? den : 1));
}

/* Relative difference of b from a (the reference). */
static double rel(double a, double b) { return fabs(a - b) / (fabs(a) > 0 ? fabs(a) : 1); }

int main(void) {
  gt_require_gpu("gpu_train");
  char data[4096], run_c[4096], run_g[4096], run_b[4096];
  fx_path(data, sizeof data, "gpu_train.h5");
  fx_path(run_c, sizeof run_c, "gpu_train_cpu");
  fx_path(run_g, sizeof run_g, "gpu_train_cuda");
  fx_path(run_b, sizeof run_b, "gpu_train_bf16");
  duet_remove_tree(run_c, NULL);
  duet_remove_tree(run_g, NULL);
  duet_remove_tree(run_b, NULL);
  if (fx_write_clips(data, 24, 0, 0, 5)) return 1;
  duet_trainer *tc = create(data, run_c, DUET_CPU, DUET_PRECISION_F32);
  duet_trainer *tg = create(data, run_g, DUET_CUDA, DUET_PRECISION_F32);
  duet_trainer *tb = create(data, run_b, DUET_CUDA, DUET_PRECISION_BF16);
  if (!tc || !tg || !tb) return test_finish("gpu_train");
  CHECK(duet_trainer_params(tg)->items[0]->device == DUET_CUDA);
  CHECK(duet_trainer_params(tb)->items[0]->device == DUET_CUDA);
  double worst_bf16 = 0;
  for (int s = 0; s < STEPS; s++) {
    duet_train_stats a, b, h;
    duet_err err;
    int rc = duet_trainer_step(tc, &a, &err);
    CHECK_MSG(rc == DUET_OK, "cpu step %d: %s", s, rc ? err.msg : "");
    rc = duet_trainer_step(tg, &b, &err);
    CHECK_MSG(rc == DUET_OK, "cuda step %d: %s", s, rc ? err.msg : "");
    if (rc) break;
    rc = duet_trainer_step(tb, &h, &err);
    CHECK_MSG(rc == DUET_OK, "cuda bf16 step %d: %s", s, rc ? err.msg : "");
    if (rc) break;
    double tol = s == 0 ? 1e-4 : 1e-3;
    printf("step %d: loss cpu %.9f cuda %.9f cuda-bf16 %.9f (%.2g); |g| cpu %.9f cuda %.9f cuda-bf16 %.9f\n", s + 1,
           a.loss, b.loss, h.loss, rel(a.loss, h.loss), a.grad_norm, b.grad_norm, h.grad_norm);
    CHECK_MSG(fabs(a.loss - b.loss) <= tol * fabs(a.loss), "step %d: loss %.9g (cpu) vs %.9g (cuda)", s + 1, a.loss,
              b.loss);
    CHECK_MSG(fabs(a.loss_video - b.loss_video) <= tol * fabs(a.loss_video) + 1e-9, "step %d: video loss", s + 1);
    CHECK_MSG(fabs(a.loss_audio - b.loss_audio) <= tol * fabs(a.loss_audio) + 1e-9, "step %d: audio loss", s + 1);
    CHECK_MSG(fabs(a.grad_norm - b.grad_norm) <= tol * fabs(a.grad_norm), "step %d: |g| %.9g (cpu) vs %.9g (cuda)",
              s + 1, a.grad_norm, b.grad_norm);
    { /* bf16: see the header for the bounds. */
      double lo, hi;
      const char *lo_name, *hi_name;
      double ge = grads_rel_err(duet_trainer_params(tb), duet_trainer_params(tc), &lo, &lo_name, &hi, &hi_name);
      printf("step %d: gradients bf16 vs f32: relative difference %.3g; norm ratios %.3g (%s) to %.3g (%s)\n", s + 1,
             ge, lo, lo_name, hi, hi_name);
      CHECK_MSG(ge <= (s == 0 ? 1e-2 : 2e-2), "step %d: bf16 gradients differ by %.3g", s + 1, ge);
      CHECK_MSG(lo >= 0.5 && hi <= 1.5, "step %d: a bf16 gradient's norm is %.3g (%s) or %.3g (%s) of the f32 one",
                s + 1, lo, lo_name, hi, hi_name);
    }
    if (rel(a.loss, h.loss) > worst_bf16) worst_bf16 = rel(a.loss, h.loss);
    CHECK_MSG(rel(a.loss, h.loss) <= 1e-3, "step %d: loss %.9g (f32) vs %.9g (bf16)", s + 1, a.loss, h.loss);
    CHECK_MSG(rel(a.loss_video, h.loss_video) <= 1e-3, "step %d: bf16 video loss", s + 1);
    CHECK_MSG(rel(a.loss_audio, h.loss_audio) <= 1e-3, "step %d: bf16 audio loss", s + 1);
    CHECK_MSG(rel(a.grad_norm, h.grad_norm) <= 2e-2, "step %d: |g| %.9g (f32) vs %.9g (bf16)", s + 1, a.grad_norm,
              h.grad_norm);
  }
  double w = params_rel_err(duet_trainer_params(tg), duet_trainer_params(tc));
  double wb = params_rel_err(duet_trainer_params(tb), duet_trainer_params(tc));
  printf("weights after %d steps: relative difference %.3g (cuda), %.3g (cuda bf16); worst bf16 loss %.3g\n", STEPS,
         w, wb, worst_bf16);
  CHECK_MSG(w <= 1e-3, "weights differ by %.3g", w);
  CHECK_MSG(wb <= 1e-2, "bf16 weights differ by %.3g", wb);
  /* Validation computes with the f32 masters and their EMA on every run. */
  double vc = 0, vg = 0, vb = 0;
  duet_err err;
  CHECK(duet_trainer_validate(tc, 0, &vc, &err) == DUET_OK);
  CHECK(duet_trainer_validate(tg, 0, &vg, &err) == DUET_OK);
  CHECK(duet_trainer_validate(tb, 0, &vb, &err) == DUET_OK);
  printf("validation loss: cpu %.9f cuda %.9f cuda-bf16 %.9f\n", vc, vg, vb);
  CHECK_MSG(rel(vc, vg) <= 1e-3, "validation loss %.9g (cpu) vs %.9g (cuda)", vc, vg);
  CHECK_MSG(rel(vc, vb) <= 1e-3, "validation loss %.9g (cpu) vs %.9g (cuda bf16)", vc, vb);
  CHECK(duet_trainer_save(tg, &err) == DUET_OK);
  CHECK(duet_trainer_save(tc, &err) == DUET_OK);
  CHECK(duet_trainer_save(tb, &err) == DUET_OK);
  gt_expect_no_cuda_error("training");


  /* The GPU checkpoint, loaded strictly into the CPU run's (host) parameters, is the GPU's
   * weights; the bf16 run's checkpoint holds its f32 masters. */
  char path[4200];
  duet_param_set *pc = (duet_param_set *)duet_trainer_params(tc), *pg = (duet_param_set *)duet_trainer_params(tg);
  duet_param_set *pb = (duet_param_set *)duet_trainer_params(tb);
  duet_st_load_opts lo = {0};
  snprintf(path, sizeof path, "%s/last/model.safetensors", run_b);
  int rc = duet_st_load_params_file(path, pc, &lo, NULL, &err);
  CHECK_MSG(rc == DUET_OK, "bf16 run's checkpoint into cpu: %s", rc ? err.msg : "");
  CHECK(params_rel_err(pb, pc) == 0);
  snprintf(path, sizeof path, "%s/last/model.safetensors", run_g);
  rc = duet_st_load_params_file(path, pc, &lo, NULL, &err);
  CHECK_MSG(rc == DUET_OK, "gpu checkpoint into cpu: %s", rc ? err.msg : "");
  CHECK(params_rel_err(pg, pc) == 0);
  /* Resumed from its checkpoint, each GPU run goes on as if it had not stopped: the same
   * weights, then the same fifth step, bit for bit (the same device). */
  for (int k = 0; k < 2; k++) {
    duet_trainer *orig = k ? tb : tg;
    duet_train_config rcfg;
    rc = duet_train_config_load_run(&rcfg, k ? run_b : run_g, &err);
    CHECK_MSG(rc == DUET_OK, "%s", rc ? err.msg : "");
    duet_trainer_opts o = {.cfg = &rcfg, .resume = 1};
    duet_trainer *tr = NULL;
    if (!rc) rc = duet_trainer_create(&tr, &o, &err);
    CHECK_MSG(rc == DUET_OK, "resume %s: %s", k ? "bf16" : "f32", rc ? err.msg : "");
    if (rc) continue;
    CHECK(duet_trainer_config(tr)->train.precision == (k ? DUET_PRECISION_BF16 : DUET_PRECISION_F32));
    CHECK(params_rel_err(duet_trainer_params(tr), duet_trainer_params(orig)) == 0);
    duet_train_stats a, b;
    CHECK(duet_trainer_step(orig, &a, &err) == DUET_OK);
    CHECK(duet_trainer_step(tr, &b, &err) == DUET_OK);
    printf("step %d after resume (%s): loss %.9f / %.9f, |g| %.9f / %.9f\n", STEPS + 1, k ? "bf16" : "f32", a.loss,
           b.loss, a.grad_norm, b.grad_norm);
    CHECK(a.loss == b.loss && a.grad_norm == b.grad_norm);
    CHECK(params_rel_err(duet_trainer_params(tr), duet_trainer_params(orig)) == 0);
    duet_trainer_free(tr);
  }
  gt_expect_no_cuda_error("resume");

  /* And the CPU checkpoint loads into the GPU run. */
  snprintf(path, sizeof path, "%s/last/model.safetensors", run_c);
  rc = duet_st_load_params_file(path, pg, &lo, NULL, &err);
  CHECK_MSG(rc == DUET_OK, "cpu checkpoint into gpu: %s", rc ? err.msg : "");
  gt_expect_no_cuda_error("checkpoints");
  duet_trainer_free(tc);
  duet_trainer_free(tg);
  duet_trainer_free(tb);
  duet_remove_tree(run_c, NULL);
  duet_remove_tree(run_g, NULL);
  duet_remove_tree(run_b, NULL);
  return test_finish("gpu_train");
}

/* duet-train's step with train.device = cuda against the same run on the CPU: a tiny model
 * (the train tests' fixture) trained four steps each way from the same seed and data. Per
 * step: the losses and the gradient norm agree (relative 1e-4 on the first step, where only
 * the forward and backward differ, then 1e-3 as the f32 differences of fused multiply-adds
 * compound through the updates); the final weights agree (relative Frobenius 1e-3). The GPU
 * run's checkpoint has the CPU's format: its model.safetensors loads strictly into a CPU
 * model, and its tensors are the GPU weights. */
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

static duet_trainer *create(const char *data, const char *run, int device) {
  duet_train_config c;
  if (fx_config(&c, data, run)) return NULL;
  c.train.device = device;
  c.train.steps = STEPS;
  c.train.val_every = 0;
  c.train.ckpt_every = 0;
  c.train.log_every = 0;
  duet_trainer_opts o = {.cfg = &c};
  duet_trainer *t = NULL;
  duet_err err;
  int rc = duet_trainer_create(&t, &o, &err);
  CHECK_MSG(rc == DUET_OK, "%s trainer: %s", device ? "cuda" : "cpu", rc ? err.msg : "");
  return rc ? NULL : t;
}

/* ||a - b|| / ||b|| over every parameter (a's on any device, b's on the CPU). */
static double params_rel_err(const duet_param_set *a, const duet_param_set *b) {
  double num = 0, den = 0;
  for (int i = 0; i < b->count; i++) {
    const duet_tensor *pa = a->items[i], *pb = b->items[i];
    float *h = malloc(duet_tensor_bytes(pa) + 4);
    duet_tensor_download(pa, h);
    for (int64_t k = 0; k < pb->numel; k++) {
      double d = (double)h[k] - ((const float *)pb->data)[k];
      num += d * d;
      den += (double)((const float *)pb->data)[k] * ((const float *)pb->data)[k];
    }
    free(h);
  }
  return sqrt(num / (den > 0 ? den : 1));
}

int main(void) {
  gt_require_gpu("gpu_train");
  char data[4096], run_c[4096], run_g[4096];
  fx_path(data, sizeof data, "gpu_train.h5");
  fx_path(run_c, sizeof run_c, "gpu_train_cpu");
  fx_path(run_g, sizeof run_g, "gpu_train_cuda");
  duet_remove_tree(run_c, NULL);
  duet_remove_tree(run_g, NULL);
  if (fx_write_clips(data, 24, 0, 0, 5)) return 1;
  duet_trainer *tc = create(data, run_c, DUET_CPU), *tg = create(data, run_g, DUET_CUDA);
  if (!tc || !tg) return test_finish("gpu_train");
  CHECK(duet_trainer_params(tg)->items[0]->device == DUET_CUDA);
  for (int s = 0; s < STEPS; s++) {
    duet_train_stats a, b;
    duet_err err;
    int rc = duet_trainer_step(tc, &a, &err);
    CHECK_MSG(rc == DUET_OK, "cpu step %d: %s", s, rc ? err.msg : "");
    rc = duet_trainer_step(tg, &b, &err);
    CHECK_MSG(rc == DUET_OK, "cuda step %d: %s", s, rc ? err.msg : "");
    if (rc) break;
    double tol = s == 0 ? 1e-4 : 1e-3;
    printf("step %d: loss cpu %.9f cuda %.9f; |g| cpu %.9f cuda %.9f\n", s + 1, a.loss, b.loss, a.grad_norm,
           b.grad_norm);
    CHECK_MSG(fabs(a.loss - b.loss) <= tol * fabs(a.loss), "step %d: loss %.9g (cpu) vs %.9g (cuda)", s + 1, a.loss,
              b.loss);
    CHECK_MSG(fabs(a.loss_video - b.loss_video) <= tol * fabs(a.loss_video) + 1e-9, "step %d: video loss", s + 1);
    CHECK_MSG(fabs(a.loss_audio - b.loss_audio) <= tol * fabs(a.loss_audio) + 1e-9, "step %d: audio loss", s + 1);
    CHECK_MSG(fabs(a.grad_norm - b.grad_norm) <= tol * fabs(a.grad_norm), "step %d: |g| %.9g (cpu) vs %.9g (cuda)",
              s + 1, a.grad_norm, b.grad_norm);
  }
  double w = params_rel_err(duet_trainer_params(tg), duet_trainer_params(tc));
  printf("weights after %d steps: relative difference %.3g\n", STEPS, w);
  CHECK_MSG(w <= 1e-3, "weights differ by %.3g", w);
  duet_err err;
  CHECK(duet_trainer_save(tg, &err) == DUET_OK);
  CHECK(duet_trainer_save(tc, &err) == DUET_OK);
  gt_expect_no_cuda_error("training");

  /* The GPU checkpoint, loaded strictly into the CPU run's (host) parameters, is the GPU's
   * weights; the CPU checkpoint loads into the GPU run the same way. */
  char path[4200];
  snprintf(path, sizeof path, "%s/last/model.safetensors", run_g);
  duet_param_set *pc = (duet_param_set *)duet_trainer_params(tc), *pg = (duet_param_set *)duet_trainer_params(tg);
  duet_st_load_opts lo = {0};
  int rc = duet_st_load_params_file(path, pc, &lo, NULL, &err);
  CHECK_MSG(rc == DUET_OK, "gpu checkpoint into cpu: %s", rc ? err.msg : "");
  CHECK(params_rel_err(pg, pc) == 0);
  snprintf(path, sizeof path, "%s/last/model.safetensors", run_c);
  rc = duet_st_load_params_file(path, pg, &lo, NULL, &err);
  CHECK_MSG(rc == DUET_OK, "cpu checkpoint into gpu: %s", rc ? err.msg : "");
  gt_expect_no_cuda_error("checkpoints");
  duet_trainer_free(tc);
  duet_trainer_free(tg);
  duet_remove_tree(run_c, NULL);
  duet_remove_tree(run_g, NULL);
  return test_finish("gpu_train");
}

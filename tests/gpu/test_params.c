/* Parameters, gradients, AdamW moments and EMA shadows on the GPU against the same state on
 * the CPU: duet_params_to_device, duet_grad_clip / duet_grad_scale, duet_adamw_step and
 * duet_ema_update / duet_ema_swap over device parameter sets, and safetensors and checkpoint
 * files written from device tensors and read back into them and into CPU tensors.
 * Tolerances: every value bit for bit (the kernels round each operation as the CPU does),
 * except the clipped gradients, whose scale factor comes from a norm summed in another order
 * (at most 1 ulp, reported); the norm itself to 1e-12 relative. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/checkpoint.h"
#include "core/ema.h"
#include "core/fileio.h"
#include "core/optim.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "gpu_test.h"

/* Three trainable parameters of odd sizes (one matrix that decays, two vectors) and a frozen
 * one, with values and gradients drawn from seed. */
static void make_set(duet_param_set *ps, uint64_t seed) {
  duet_params_init(ps);
  int64_t s0[2] = {37, 129}, s1[1] = {129}, s2[1] = {5}, s3[2] = {3, 3};
  duet_err err;
  duet_tensor *t[4] = {duet_params_add(ps, "blocks.0.w", DUET_F32, 2, s0, 1, &err),
                       duet_params_add(ps, "blocks.0.b", DUET_F32, 1, s1, 1, &err),
                       duet_params_add(ps, "norm.gain", DUET_F32, 1, s2, 1, &err),
                       duet_params_add(ps, "frozen", DUET_F32, 2, s3, 0, &err)};
  for (int i = 0; i < 4; i++) {
    CHECK(t[i] != NULL);
    duet_rng_fill_normal_f32(seed, (uint64_t)i, 0, t[i]->data, t[i]->numel, 0, 1);
    if (t[i]->grad) duet_rng_fill_normal_f32(seed, 100 + (uint64_t)i, 0, t[i]->grad->data, t[i]->numel, 0, 0.5f);
  }
}

static void fill_grads(duet_param_set *ps, uint64_t seed, int step) {
  for (int i = 0; i < ps->count; i++) {
    duet_tensor *g = ps->items[i]->grad;
    if (!g) continue;
    float *h = malloc(duet_tensor_bytes(g));
    duet_rng_fill_normal_f32(seed, 1000 * (uint64_t)step + (uint64_t)i, 0, h, g->numel, 0, 0.5f);
    duet_tensor_upload(g, h);
    free(h);
  }
}

/* Bits of every value (and gradient when `grads`) of a device set against a CPU set. */
static int64_t bits_differing(const duet_param_set *dev, const duet_param_set *cpu, int grads) {
  int64_t diff = 0;
  for (int i = 0; i < cpu->count; i++) {
    const duet_tensor *a = grads ? dev->items[i]->grad : dev->items[i], *b = grads ? cpu->items[i]->grad : cpu->items[i];
    if (!a || !b) continue;
    float *h = malloc(duet_tensor_bytes(a));
    duet_tensor_download(a, h);
    for (int64_t k = 0; k < a->numel; k++) diff += memcmp(&h[k], (const float *)b->data + k, 4) != 0;
    free(h);
  }
  return diff;
}

static int64_t tensor_bits_differing(const duet_tensor *dev, const duet_tensor *cpu) {
  float *h = malloc(duet_tensor_bytes(dev));
  duet_tensor_download(dev, h);
  int64_t diff = 0;
  for (int64_t k = 0; k < dev->numel; k++) diff += memcmp(&h[k], (const float *)cpu->data + k, 4) != 0;
  free(h);
  return diff;
}

static void test_training_state(void) {
  duet_param_set cpu, dev;
  make_set(&cpu, 7);
  make_set(&dev, 7);
  duet_err err;
  CHECK(duet_params_to_device(&dev, DUET_CUDA, &err) == DUET_OK);
  CHECK(dev.device == DUET_CUDA && dev.items[0]->device == DUET_CUDA && dev.items[0]->grad->device == DUET_CUDA);
  CHECK(bits_differing(&dev, &cpu, 0) == 0);
  CHECK(bits_differing(&dev, &cpu, 1) == 0);

  duet_adamw_config ac = duet_adamw_defaults();
  ac.weight_decay = 0.1;
  duet_adamw oc, od;
  duet_ema ec, ed;
  CHECK(duet_adamw_init(&oc, &cpu, &ac, NULL, NULL, &err) == DUET_OK);
  CHECK(duet_adamw_init(&od, &dev, &ac, NULL, NULL, &err) == DUET_OK);
  CHECK(od.m[0]->device == DUET_CUDA && od.m[3] == NULL);
  CHECK(duet_ema_init(&ec, &cpu, 0.9, &err) == DUET_OK);
  CHECK(duet_ema_init(&ed, &dev, 0.9, &err) == DUET_OK);
  CHECK(ed.shadow[1]->device == DUET_CUDA);

  for (int step = 0; step < 4; step++) {
    if (step) {
      fill_grads(&cpu, 9, step);
      fill_grads(&dev, 9, step);
    }
    double nc = 0, nd = 0;
    duet_grad_scale(&cpu, 0.5);
    duet_grad_scale(&dev, 0.5);
    CHECK(duet_grad_clip(&cpu, 4.0, &nc, &err) == DUET_OK);
    CHECK(duet_grad_clip(&dev, 4.0, &nd, &err) == DUET_OK);
    CHECK_MSG(fabs(nc - nd) <= 1e-12 * nc, "step %d: norm %.17g on the CPU, %.17g on the GPU", step, nc, nd);
    /* The clip factor comes from the norm; copy the CPU's gradients over so that the optimizer
     * comparison below starts from identical inputs whatever the last bit of the norm. */
    int64_t gdiff = bits_differing(&dev, &cpu, 1);
    printf("step %d: norm %.6f, clipped gradients differ in %lld elements\n", step, nc, (long long)gdiff);
    for (int i = 0; i < cpu.count; i++)
      if (cpu.items[i]->grad) duet_tensor_upload(dev.items[i]->grad, cpu.items[i]->grad->data);
    CHECK(duet_adamw_step(&oc, 1e-2, &err) == DUET_OK);
    CHECK(duet_adamw_step(&od, 1e-2, &err) == DUET_OK);
    CHECK(duet_ema_update(&ec, &err) == DUET_OK);
    CHECK(duet_ema_update(&ed, &err) == DUET_OK);
    gt_expect_no_cuda_error("optimizer step");
    CHECK_MSG(bits_differing(&dev, &cpu, 0) == 0, "step %d: weights differ", step);
    for (int i = 0; i < 3; i++) {
      CHECK_MSG(tensor_bits_differing(od.m[i], oc.m[i]) == 0, "step %d: m[%d] differs", step, i);
      CHECK_MSG(tensor_bits_differing(od.v[i], oc.v[i]) == 0, "step %d: v[%d] differs", step, i);
      CHECK_MSG(tensor_bits_differing(ed.shadow[i], ec.shadow[i]) == 0, "step %d: ema[%d] differs", step, i);
    }
  }
  duet_ema_swap(&ec);
  duet_ema_swap(&ed);
  CHECK(bits_differing(&dev, &cpu, 0) == 0);
  duet_ema_swap(&ec);
  duet_ema_swap(&ed);

  /* Zeroing on the device. */
  duet_params_zero_grad(&dev);
  float *z = malloc(duet_tensor_bytes(dev.items[0]->grad));
  duet_tensor_download(dev.items[0]->grad, z);
  int nonzero = 0;
  for (int64_t k = 0; k < dev.items[0]->numel; k++) nonzero += z[k] != 0;
  CHECK(nonzero == 0);
  free(z);

  /* A checkpoint written from the GPU is byte for byte the one written from the CPU, and each
   * loads into the other. */
  char dir_c[256], dir_d[256], path[512];
  snprintf(dir_c, sizeof dir_c, "/tmp/duet-gpu-params-%ld-c", (long)getpid());
  snprintf(dir_d, sizeof dir_d, "/tmp/duet-gpu-params-%ld-d", (long)getpid());
  duet_remove_tree(dir_c, NULL);
  duet_remove_tree(dir_d, NULL);
  duet_train_state st;
  duet_train_state_init(&st);
  st.step = 4;
  st.rng = duet_rng_make(1, 0);
  duet_ckpt cc = {&cpu, &ec, &oc, &st, NULL}, cd = {&dev, &ed, &od, &st, NULL};
  char out[512];
  CHECK(duet_ckpt_save(dir_c, &cc, out, sizeof out, &err) == DUET_OK);
  CHECK(duet_ckpt_save(dir_d, &cd, out, sizeof out, &err) == DUET_OK);
  const char *parts[3] = {"model.safetensors", "ema.safetensors", "optim.safetensors"};
  for (int p = 0; p < 3; p++) {
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/last/%s", dir_c, parts[p]);
    snprintf(b, sizeof b, "%s/last/%s", dir_d, parts[p]);
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    CHECK(fa && fb);
    int same = fa && fb;
    while (same) {
      int ca = fgetc(fa), cb = fgetc(fb);
      if (ca != cb) same = 0;
      if (ca == EOF || cb == EOF) break;
    }
    CHECK_MSG(same, "%s differs between a CPU and a GPU save", parts[p]);
    if (fa) fclose(fa);
    if (fb) fclose(fb);
  }
  /* Load the CPU's checkpoint into fresh device state and the GPU's into fresh CPU state. */
  duet_param_set cpu2, dev2;
  make_set(&cpu2, 99);
  make_set(&dev2, 99);
  CHECK(duet_params_to_device(&dev2, DUET_CUDA, &err) == DUET_OK);
  duet_adamw oc2, od2;
  duet_ema ec2, ed2;
  CHECK(duet_adamw_init(&oc2, &cpu2, &ac, NULL, NULL, &err) == DUET_OK);
  CHECK(duet_adamw_init(&od2, &dev2, &ac, NULL, NULL, &err) == DUET_OK);
  CHECK(duet_ema_init(&ec2, &cpu2, 0.9, &err) == DUET_OK);
  CHECK(duet_ema_init(&ed2, &dev2, 0.9, &err) == DUET_OK);
  duet_train_state s2, s3;
  duet_train_state_init(&s2);
  duet_train_state_init(&s3);
  duet_ckpt lc = {&cpu2, &ec2, &oc2, &s2, NULL}, ld = {&dev2, &ed2, &od2, &s3, NULL};
  snprintf(path, sizeof path, "%s/last", dir_d);
  CHECK(duet_ckpt_load(path, &lc, &err) == DUET_OK);
  snprintf(path, sizeof path, "%s/last", dir_c);
  int rc = duet_ckpt_load(path, &ld, &err);
  CHECK_MSG(rc == DUET_OK, "load into the GPU: %s", rc ? err.msg : "");
  CHECK(bits_differing(&dev2, &cpu, 0) == 0);
  CHECK(bits_differing(&dev, &cpu2, 0) == 0);
  for (int i = 0; i < 3; i++) {
    CHECK(tensor_bits_differing(od2.m[i], oc.m[i]) == 0 && tensor_bits_differing(od2.v[i], oc.v[i]) == 0);
    CHECK(tensor_bits_differing(ed2.shadow[i], ec2.shadow[i]) == 0);
  }
  CHECK(od2.step == 4 && oc2.step == 4);
  gt_expect_no_cuda_error("checkpoints");
  duet_train_state_free(&st);
  duet_train_state_free(&s2);
  duet_train_state_free(&s3);
  duet_remove_tree(dir_c, NULL);
  duet_remove_tree(dir_d, NULL);
  duet_ema_free(&ec2);
  duet_ema_free(&ed2);
  duet_adamw_free(&oc2);
  duet_adamw_free(&od2);
  duet_params_free(&cpu2);
  duet_params_free(&dev2);
  duet_ema_free(&ec);
  duet_ema_free(&ed);
  duet_adamw_free(&oc);
  duet_adamw_free(&od);
  duet_params_free(&cpu);
  duet_params_free(&dev);
}

int main(void) {
  gt_require_gpu("gpu_params");
  test_training_state();
  return test_finish("gpu_params");
}

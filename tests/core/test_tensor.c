/* Tensor headers, dtype conversion and bf16 rounding. */
#include <math.h>
#include <string.h>

#include "core/tensor.h"
#include "testlib.h"

int main(void) {
  /* bf16: exact for values with 8 significant bits, round-to-nearest-even otherwise. */
  CHECK(duet_bf16_to_f32(duet_f32_to_bf16(1.5f)) == 1.5f);
  CHECK(duet_bf16_to_f32(duet_f32_to_bf16(-3.0f)) == -3.0f);
  CHECK(duet_f32_to_bf16(1.0f) == 0x3f80);
  /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0). */
  CHECK(duet_bf16_to_f32(duet_f32_to_bf16(1.0f + 0x1p-8f)) == 1.0f);
  /* 1 + 3*2^-8 is halfway between 1+2^-7 and 1+2^-6: goes to 1+2^-6 (even). */
  CHECK(duet_bf16_to_f32(duet_f32_to_bf16(1.0f + 3 * 0x1p-8f)) == 1.0f + 0x1p-6f);
  CHECK(isnan(duet_bf16_to_f32(duet_f32_to_bf16(NAN))));
  CHECK(isinf(duet_bf16_to_f32(duet_f32_to_bf16(INFINITY))));
  /* 7 stored mantissa bits: rounding to nearest errs by at most half a step, 2^-8 relative. */
  float worst = 0;
  for (int i = 1; i < 100000; i++) {
    float v = (float)i * 0.37f - 1234.5f;
    float r = duet_bf16_to_f32(duet_f32_to_bf16(v));
    float rel = fabsf(r - v) / fabsf(v);
    if (rel > worst) worst = rel;
  }
  CHECK(worst <= 0x1p-8f && worst > 0x1p-10f);

  int64_t shape[3] = {2, 3, 4};
  duet_err err;
  duet_tensor *a = duet_tensor_new(DUET_F32, 3, shape, &err);
  duet_tensor *b = duet_tensor_new(DUET_BF16, 3, shape, &err);
  duet_tensor *c = duet_tensor_new(DUET_F64, 3, shape, &err);
  CHECK(a && b && c && a->numel == 24 && duet_tensor_bytes(b) == 48);
  for (int i = 0; i < 24; i++) duet_tensor_set(a, i, i * 0.5 - 3);
  CHECK(duet_tensor_convert(b, a, &err) == DUET_OK);
  CHECK(duet_tensor_convert(c, b, &err) == DUET_OK);
  int same = 1;
  for (int i = 0; i < 24; i++) same &= duet_tensor_get(c, i) == i * 0.5 - 3;
  CHECK(same);
  char buf[64];
  CHECK(strcmp(duet_shape_str(a, buf, sizeof buf), "[2,3,4]") == 0);

  int64_t bad[7] = {1, 1, 1, 1, 1, 1, 1};
  CHECK(duet_tensor_new(DUET_F32, 7, bad, &err) == NULL && err.code == DUET_EINVAL);
  int64_t neg[1] = {-2};
  CHECK(duet_tensor_new(DUET_F32, 1, neg, &err) == NULL && strstr(err.msg, "negative"));
  duet_tensor_free(a);
  duet_tensor_free(b);
  duet_tensor_free(c);
  return test_finish("core_tensor");
}

/* Loss and timestep-embedding kernel group (CPU: core/cpu/loss.c). f32 and f64; sums are
 * accumulated in double over a fixed split of the elements, so a loss does not depend on the
 * thread count. */
#ifndef DUET_CORE_KERNELS_LOSS_H
#define DUET_CORE_KERNELS_LOSS_H

#include "core/tensor.h"

struct duet_kernels_loss {
  /* Masked mean squared error. pred and target have one shape; mask (NULL = all ones) is u8
   * or pred's dtype and holds one value per row of D = pred.numel / mask.numel consecutive
   * elements. Writes
   *   coef[0] = weight / (sum(mask) * D)       (0 when sum(mask) is 0)
   *   loss[0] = coef[0] * sum_i mask[i / D] * (pred[i] - target[i])^2
   * loss and coef are one-element tensors of pred's dtype. coef stays on the device for the
   * backward, so neither pass reads a value back to the host. */
  void (*mse_forward)(const duet_tensor *pred, const duet_tensor *target,
                      const duet_tensor *mask, double weight, duet_tensor *loss,
                      duet_tensor *coef);
  /* dpred[i] += 2 * dloss[0] * coef[0] * mask[i / D] * (pred[i] - target[i]) */
  void (*mse_backward)(const duet_tensor *dloss, const duet_tensor *coef,
                       const duet_tensor *pred, const duet_tensor *target,
                       const duet_tensor *mask, duet_tensor *dpred);

  /* t [B] -> out [B, dim]: out[b, k] = cos(a), out[b, dim/2 + k] = sin(a) with
   * a = scale * t[b] * max_period^(-k / (dim/2)), k < dim/2. */
  void (*timestep_forward)(const duet_tensor *t, double max_period, double scale,
                           duet_tensor *out);
  /* dt[b] += sum_k da/dt * (-sin(a) * dout[b, k] + cos(a) * dout[b, dim/2 + k]) */
  void (*timestep_backward)(const duet_tensor *t, const duet_tensor *dout, double max_period,
                            double scale, duet_tensor *dt);
};

#endif

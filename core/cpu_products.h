/* What the CPU backend's f32 matrix products take as inputs.
 *
 *   f32   (default) f32 inputs, f32 products and sums: CBLAS (core/blas.h).
 *   bf16  each f32 input is rounded to bf16 (round to nearest even) and the products are
 *         summed in f32, by oneDNN's matmul (core/cpu/gemm_bf16.c), which runs them on
 *         Intel AMX or AVX512-BF16 where the processor has them. Weights, activations,
 *         gradients and everything outside the products stay f32: PyTorch's
 *         torch.backends.mkldnn.matmul.fp32_precision = "bf16", or TF32 on a GPU.
 *
 * The setting covers the products of linear layers and matmuls (the backend's gemm_batched
 * called outside a parallel region) and, where the processor has Intel AMX, the tile
 * products of the attention kernels (core/cpu/attention_amx.c: bf16 q, k, v, probabilities
 * and score gradients; softmax and accumulators in f32); without AMX, or for head sizes
 * that are not a multiple of 32, attention keeps its f32 tiles. f64 products are never
 * touched, so the gradient checks mean what they did. */
#ifndef DUET_CORE_CPU_PRODUCTS_H
#define DUET_CORE_CPU_PRODUCTS_H

#include "core/error.h"

typedef enum duet_matmul_precision { DUET_MATMUL_F32 = 0, DUET_MATMUL_BF16 = 1 } duet_matmul_precision;

/* Sets the precision for the process. bf16 fails with DUET_ENOTSUP and one line when duet was
 * built without oneDNN or oneDNN cannot run a bf16 product on this processor (checked once,
 * on a small product). */
int duet_cpu_set_matmul_precision(duet_matmul_precision p, duet_err *err);
duet_matmul_precision duet_cpu_matmul_precision(void);

/* What runs bf16 products here, for logs and benchmark tables: oneDNN's version and the
 * instruction set it uses (e.g. "oneDNN 2.6.3, avx512_core_amx"), or why there is none. */
const char *duet_cpu_bf16_engine(void);

/* Products oneDNN refused (no primitive for the shape, or a failed call) that CBLAS then
 * computed in f32; zero in every run measured. */
long duet_cpu_bf16_fallbacks(void);

/* Whether the attention kernels can run their tiles on AMX here (AMX-BF16, AVX512-BF16 and
 * the kernel's permission for the tile state), and how many attention calls (forward or
 * backward) have done so since the process started. */
int duet_cpu_bf16_attention_available(void);
long duet_cpu_bf16_attention_calls(void);

/* x rounded to bf16 (nearest even; subnormals to zero of their sign, as AVX512-BF16's
 * conversion does) and widened back: what a product's input becomes. */
float duet_cpu_bf16_round(float x);

#endif

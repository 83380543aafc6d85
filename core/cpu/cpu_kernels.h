/* The CPU backend's kernel tables, one per group, each defined in its own file here. */
#ifndef DUET_CORE_CPU_KERNELS_H
#define DUET_CORE_CPU_KERNELS_H

#include "core/kernels_elementwise.h"
#include "core/kernels_nn.h"
#include "core/kernels_attention.h"
#include "core/kernels_layout.h"
#include "core/kernels_loss.h"

extern const struct duet_kernels_elementwise duet_cpu_elementwise_kernels;
extern const struct duet_kernels_nn duet_cpu_nn_kernels;
extern const struct duet_kernels_attention duet_cpu_attention_kernels;
extern const struct duet_kernels_layout duet_cpu_layout_kernels;
extern const struct duet_kernels_loss duet_cpu_loss_kernels;

/* Rotary positions (core/cpu/rope.c): y = x rotated by pos's angles, or, with inverse, dx +=
 * dy rotated back. The attention kernels' table calls it. */
struct duet_rope_spec;
void duet_cpu_rope_apply(const duet_tensor *x, const duet_tensor *pos, int heads,
                         const struct duet_rope_spec *spec, int inverse, duet_tensor *y);

/* Work at or above this many elements is split across OpenMP threads. */
#define DUET_CPU_PARALLEL_MIN 32768

#endif

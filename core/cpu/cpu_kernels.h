/* The CPU backend's kernel tables, one per group, each defined in its own file here. */
#ifndef DUET_CORE_CPU_KERNELS_H
#define DUET_CORE_CPU_KERNELS_H

#include "core/kernels_elementwise.h"

extern const struct duet_kernels_elementwise duet_cpu_elementwise_kernels;

/* Work at or above this many elements is split across OpenMP threads. */
#define DUET_CPU_PARALLEL_MIN 32768

#endif

/* Op throughput on the CPU backend at the tiny and small model shapes, forward and
 * forward+backward, beside OpenBLAS's own sgemm on the same matrix shapes. Prints a Markdown
 * table (figures, machine, date). Usage: bench_ops [repeats] [--cpu-time] [--matmul-precision f32|bf16]
 *
 * --cpu-time times each call by the process's CPU time instead of the wall clock: with one
 * thread (OMP_NUM_THREADS=1) that leaves out the time other processes held the core, which on
 * a shared machine is the steadier figure. --matmul-precision bf16 runs the products (and, with
 * AMX, the attention tiles) with bf16 inputs, as train.matmul_precision = bf16 does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "core/blas.h"
#include "core/cpu_products.h"
#include "core/ops.h"
#include "core/params.h"
#include "core/rng.h"

static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void) {
  struct timespec ts;
  clock_gettime(bench_clock, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct shape_set {
  const char *name;
  int batch, tokens, width, heads, text;
} shape_set;

typedef enum { OP_LINEAR, OP_ATTENTION, OP_LAYERNORM, OP_GELU, OP_MODULATE, OP_HEAD_RMSNORM, OP_ROPE } op_kind;
#define OP_LAST OP_ROPE
static const char *const op_names[] = {"linear (qkv)", "attention", "layernorm", "gelu", "modulate",
                                       "rmsnorm (per head)", "rope (3 axes)"};

/* Inputs live outside the step (like parameters), so a timed run is the op alone: the output
 * allocation from the arena, the kernel, and for backward the gradient kernels. */
typedef struct op_inputs {
  duet_param_set ps;
  duet_tensor *x, *k, *v, *shift, *scale, *w, *b, *dy, *head_w, *pos;
  duet_rope_spec spec;
} op_inputs;

static duet_tensor *input(duet_param_set *ps, const char *name, int ndim, const int64_t *shape, uint64_t stream) {
  duet_tensor *t = duet_params_add(ps, name, DUET_F32, ndim, shape, 1, NULL);
  duet_rng_fill_normal_f32(1, stream, 0, t->data, t->numel, 0, 0.5f);
  return t;
}

static void inputs_make(op_inputs *in, const shape_set *s) {
  duet_params_init(&in->ps);
  int64_t x3[3] = {s->batch, s->tokens, s->width}, bd[2] = {s->batch, s->width};
  int64_t ws[2] = {3 * s->width, s->width}, bs[1] = {3 * s->width};
  in->x = input(&in->ps, "x", 3, x3, 1);
  in->k = input(&in->ps, "k", 3, x3, 2);
  in->v = input(&in->ps, "v", 3, x3, 3);
  in->shift = input(&in->ps, "shift", 2, bd, 4);
  in->scale = input(&in->ps, "scale", 2, bd, 5);
  in->w = input(&in->ps, "w", 2, ws, 6);
  in->b = input(&in->ps, "b", 1, bs, 7);
  int64_t hw[1] = {s->width / s->heads};
  in->head_w = input(&in->ps, "head_w", 1, hw, 8);
  /* Video-like positions (t, h, w) on a 32 x 32 grid, a head's pairs split 1/4, 3/8, 3/8. */
  int pairs = (int)(s->width / s->heads / 2);
  in->spec = (duet_rope_spec){.n_axes = 3, .pairs_per_axis = {pairs / 4, 3 * pairs / 8, pairs - pairs / 4 - 3 * pairs / 8},
                              .theta = 10000};
  int64_t ps[2] = {s->tokens, 3};
  in->pos = duet_params_add(&in->ps, "pos", DUET_F32, 2, ps, 0, NULL);
  float *pp = in->pos->data;
  for (int64_t i = 0; i < s->tokens; i++) {
    pp[3 * i] = (float)(i / 1024);
    pp[3 * i + 1] = (float)(i / 32 % 32);
    pp[3 * i + 2] = (float)(i % 32);
  }
}

/* Forward, and for backward an upstream gradient of ones through sum(). */
static void run_op(duet_graph *g, op_kind op, const shape_set *s, op_inputs *in, int backward) {
  duet_tensor *y = NULL;
  switch (op) {
    case OP_LINEAR: y = duet_linear(g, in->x, in->w, in->b); break;
    case OP_ATTENTION: y = duet_attention(g, in->x, in->k, in->v, NULL, s->heads); break;
    case OP_LAYERNORM: y = duet_layernorm(g, in->x, NULL, NULL, 1e-6); break;
    case OP_GELU: y = duet_gelu(g, in->x); break;
    case OP_MODULATE: y = duet_modulate(g, in->x, in->shift, in->scale); break;
    case OP_HEAD_RMSNORM: {
      int64_t split[4] = {s->batch, s->tokens, s->heads, s->width / s->heads};
      y = duet_rmsnorm(g, duet_reshape(g, in->x, 4, split), in->head_w, 1e-6);
      break;
    }
    case OP_ROPE: y = duet_rope(g, in->x, in->pos, s->heads, &in->spec); break;
  }
  if (backward) {
    duet_err err;
    if (duet_backward(g, duet_sum(g, y), &err) != DUET_OK) fprintf(stderr, "backward: %s\n", err.msg);
  }
}

/* Useful floating-point work per call (forward; backward is counted as 2x forward for the
 * matrix ops and 2x for the element-wise ones). */
static double op_flops(op_kind op, const shape_set *s) {
  double n = (double)s->batch * s->tokens * s->width;
  switch (op) {
    case OP_LINEAR: return 2.0 * n * 3 * s->width;
    case OP_ATTENTION: return 4.0 * s->batch * (double)s->tokens * s->tokens * s->width;
    case OP_LAYERNORM: return 8.0 * n;
    case OP_GELU: return 10.0 * n;
    case OP_MODULATE: return 3.0 * n;
    case OP_HEAD_RMSNORM: return 4.0 * n;
    case OP_ROPE: return 3.0 * n;
  }
  return 0;
}

static double median_seconds(op_kind op, const shape_set *s, op_inputs *in, int backward, int repeats,
                             duet_graph *g) {
  double *t = malloc(sizeof(double) * (size_t)repeats);
  for (int r = -1; r < repeats; r++) { /* r = -1: warm-up (grows the arena) */
    duet_graph_reset(g);
    duet_graph_set_grad_enabled(g, backward);
    double t0 = now();
    run_op(g, op, s, in, backward);
    if (r >= 0) t[r] = now() - t0;
  }
  qsort(t, (size_t)repeats, sizeof(double), cmp_double);
  double m = t[repeats / 2];
  free(t);
  return m;
}

static double sgemm_gflops(const shape_set *s, int repeats) {
  int64_t rows = (int64_t)s->batch * s->tokens, in = s->width, out = 3 * s->width;
  float *a = malloc(sizeof(float) * (size_t)(rows * in)), *bm = malloc(sizeof(float) * (size_t)(out * in));
  float *c = malloc(sizeof(float) * (size_t)(rows * out));
  duet_rng_fill_normal_f32(2, 1, 0, a, rows * in, 0, 1);
  duet_rng_fill_normal_f32(2, 2, 0, bm, out * in, 0, 1);
  double *t = malloc(sizeof(double) * (size_t)repeats);
  for (int r = -1; r < repeats; r++) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (duet_blas_int)rows, (duet_blas_int)out,
                (duet_blas_int)in, 1.0f, a, (duet_blas_int)in, bm, (duet_blas_int)in, 0.0f, c,
                (duet_blas_int)out);
    if (r >= 0) t[r] = now() - t0;
  }
  qsort(t, (size_t)repeats, sizeof(double), cmp_double);
  double g = 2.0 * rows * in * out / t[repeats / 2] / 1e9;
  free(a); free(bm); free(c); free(t);
  return g;
}

static void cpu_model(char *buf, size_t size) {
  snprintf(buf, size, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "model name", 10) == 0) {
      char *p = strchr(line, ':');
      if (p) {
        snprintf(buf, size, "%s", p + 2);
        buf[strcspn(buf, "\n")] = 0;
      }
      break;
    }
  fclose(f);
}

int main(int argc, char **argv) {
  int repeats = 9;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--cpu-time")) {
      bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    } else if (!strcmp(argv[i], "--matmul-precision") && i + 1 < argc) {
      const char *v = argv[++i];
      duet_err err;
      if (strcmp(v, "f32") && strcmp(v, "bf16")) {
        fprintf(stderr, "bench_ops: --matmul-precision takes f32 or bf16, not '%s'\n", v);
        return 2;
      }
      if (duet_cpu_set_matmul_precision(!strcmp(v, "bf16") ? DUET_MATMUL_BF16 : DUET_MATMUL_F32, &err)) {
        fprintf(stderr, "bench_ops: %s\n", err.msg);
        return 1;
      }
    } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: bench_ops [repeats] [--cpu-time] [--matmul-precision f32|bf16]\n");
      return 0;
    } else {
      repeats = atoi(argv[i]);
    }
  }
  if (repeats < 1) repeats = 1;
  shape_set shapes[2] = {{"tiny", 4, 1056, 128, 4, 64}, {"small", 2, 2112, 384, 6, 64}};
  char cpu[256];
  cpu_model(cpu, sizeof cpu);
  struct utsname u;
  uname(&u);
  time_t now_t = time(NULL);
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now_t));
  printf("# bench_ops — %s, %s (%s %s), OMP_NUM_THREADS=%s, OpenBLAS threads %d, median of %d, %s, %s products\n\n",
         date, cpu, u.sysname, u.machine, getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "(default)",
         duet_blas_threads(), repeats, bench_clock == CLOCK_MONOTONIC ? "wall time" : "process CPU time",
         duet_cpu_matmul_precision() == DUET_MATMUL_BF16 ? "bf16" : "f32");
  printf("| shape | op | forward ms | forward GFLOP/s | fwd+bwd ms | fwd+bwd GFLOP/s | sgemm GFLOP/s (same shape) |\n");
  printf("|---|---|---:|---:|---:|---:|---:|\n");
  for (int si = 0; si < 2; si++) {
    const shape_set *s = &shapes[si];
    op_inputs in;
    inputs_make(&in, s);
    duet_graph g;
    duet_graph_init(&g, 1 << 20);
    double sg = sgemm_gflops(s, repeats);
    for (int op = 0; op <= OP_LAST; op++) {
      double f = op_flops((op_kind)op, s);
      duet_params_zero_grad(&in.ps);
      double tf = median_seconds((op_kind)op, s, &in, 0, repeats, &g);
      double tb = median_seconds((op_kind)op, s, &in, 1, repeats, &g);
      char sgs[32] = "";
      if (op == OP_LINEAR) snprintf(sgs, sizeof sgs, "%.1f", sg);
      printf("| %s B=%d L=%d D=%d | %s | %.3f | %.1f | %.3f | %.1f | %s |\n", s->name, s->batch, s->tokens, s->width,
             op_names[op], tf * 1e3, f / tf / 1e9, tb * 1e3, 3 * f / tb / 1e9, sgs);
    }
    duet_graph_free(&g);
    duet_params_free(&in.ps);
  }
  return 0;
}

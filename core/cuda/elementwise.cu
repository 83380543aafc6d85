/* CUDA element-wise kernels (the CPU reference: core/cpu/elementwise.c). f32, bf16, f64. */
#include "core/cuda/colsum.cuh"

namespace {

/* Broadcast kernels run on a 2-D grid, rows in y and the repeated vector in x, so no thread
 * divides its index to find its place in the vector. */
#define ROW_LOOP(r, rows) for (int64_t r = blockIdx.y; r < (rows); r += gridDim.y)
#define COL_LOOP(j, n) for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < (n); j += (int64_t)gridDim.x * blockDim.x)

static inline dim3 grid2d(int64_t rows, int64_t cols, int threads) {
  int64_t bx = (cols + threads - 1) / threads;
  if (bx > 1024) bx = 1024;
  return dim3((unsigned)(bx < 1 ? 1 : bx), duet_rows_grid(rows));
}

template <class T>
__global__ void k_binary(int op, const T *a, const T *b, T *y, int64_t rows, int64_t bn) {
  ROW_LOOP(r, rows) {
    const T *ra = a + r * bn;
    T *ry = y + r * bn;
    COL_LOOP(j, bn) {
      acc_t<T> x = ld(ra[j]), z = ld(b[j]);
      ry[j] = st<T>(op == DUET_BINARY_ADD ? x + z : op == DUET_BINARY_SUB ? x - z : x * z);
    }
  }
}

template <class T> __global__ void k_axpy(acc_t<T> alpha, const T *x, T *y, int64_t n) {
  DUET_GRID_LOOP(i, n) y[i] = st<T>(ld(y[i]) + alpha * ld(x[i]));
}

template <class T>
__global__ void k_bcast_acc(acc_t<T> alpha, const T *s, const T *o, T *d, int64_t rows, int64_t sn) {
  ROW_LOOP(r, rows) {
    T *rd = d + r * sn;
    const T *ro = o ? o + r * sn : nullptr;
    COL_LOOP(j, sn) {
      acc_t<T> v = alpha * ld(s[j]);
      if (ro) v *= ld(ro[j]);
      rd[j] = st<T>(ld(rd[j]) + v);
    }
  }
}

template <class T> struct rows_term {
  const T *s, *o;
  int64_t n;
  __device__ void operator()(int64_t, int64_t r, int64_t j, double *acc) const {
    double v = (double)ld(s[r * n + j]);
    if (o) v *= (double)ld(o[r * n + j]);
    acc[0] += v;
  }
};
template <class T> struct add_scaled {
  T *d;
  double alpha;
  __device__ void operator()(int64_t, int64_t j, const double *sum) const {
    d[j] = st<T>(ld(d[j]) + (acc_t<T>)(alpha * sum[0]));
  }
};

template <class T> __global__ void k_scale(acc_t<T> s, const T *x, T *y, int64_t n) {
  DUET_GRID_LOOP(i, n) y[i] = st<T>(s * ld(x[i]));
}

template <class T> __global__ void k_fill(T *y, T v, int64_t n) {
  DUET_GRID_LOOP(i, n) y[i] = v;
}

template <class T>
__global__ void k_scale_matrices(T *c, acc_t<T> beta, int64_t m, int64_t n, int64_t ldc, int64_t stride, int64_t batch) {
  ROW_LOOP(r, batch * m) {
    T *row = c + (r / m) * stride + (r % m) * ldc;
    COL_LOOP(j, n) row[j] = beta == 0 ? st<T>((acc_t<T>)0) : st<T>(beta * ld(row[j]));
  }
}

const int THREADS = 256;

void binary(duet_binary_op op, const duet_tensor *a, const duet_tensor *b, duet_tensor *y) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t n = a->numel, bn = b->numel;
  if (n == 0 || bn == 0) return;
  DUET_DISPATCH_FLOAT(a->dtype, "binary", {
    k_binary<T><<<grid2d(n / bn, bn, THREADS), THREADS, 0, ctx->stream>>>((int)op, cptr<T>(a), cptr<T>(b), mptr<T>(y), n / bn, bn);
  });
  duet_cuda_launched("binary");
}

void axpy(double alpha, const duet_tensor *src, duet_tensor *dst) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t n = dst->numel;
  if (n == 0) return;
  DUET_DISPATCH_FLOAT(dst->dtype, "axpy", {
    k_axpy<T><<<duet_blocks(n, THREADS), THREADS, 0, ctx->stream>>>((acc_t<T>)alpha, cptr<T>(src), mptr<T>(dst), n);
  });
  duet_cuda_launched("axpy");
}

void bcast_acc(double alpha, const duet_tensor *src, const duet_tensor *other, duet_tensor *dst) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t n = dst->numel, sn = src->numel;
  if (n == 0 || sn == 0) return;
  DUET_DISPATCH_FLOAT(dst->dtype, "bcast_acc", {
    k_bcast_acc<T><<<grid2d(n / sn, sn, THREADS), THREADS, 0, ctx->stream>>>(
        (acc_t<T>)alpha, cptr<T>(src), cptr<T>(other), mptr<T>(dst), n / sn, sn);
  });
  duet_cuda_launched("bcast_acc");
}

void reduce_rows(double alpha, const duet_tensor *src, const duet_tensor *other, duet_tensor *dst) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t n = dst->numel;
  if (n == 0) return;
  int64_t rows = src->numel / n;
  DUET_DISPATCH_FLOAT(dst->dtype, "reduce_rows", {
    rows_term<T> f = {cptr<T>(src), cptr<T>(other), n};
    add_scaled<T> w = {mptr<T>(dst), alpha};
    colsum_run<1>("reduce_rows", f, w, 1, rows, n, ctx->stream);
  });
}

void scale(double s, const duet_tensor *x, duet_tensor *y) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t n = x->numel;
  if (n == 0) return;
  DUET_DISPATCH_FLOAT(x->dtype, "scale", {
    k_scale<T><<<duet_blocks(n, THREADS), THREADS, 0, ctx->stream>>>((acc_t<T>)s, cptr<T>(x), mptr<T>(y), n);
  });
  duet_cuda_launched("scale");
}

void fill(duet_tensor *y, double value) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t n = y->numel;
  if (n == 0) return;
  DUET_DISPATCH_FLOAT(y->dtype, "fill", {
    T v = conv<T>::from((acc_t<T>)value);
    k_fill<T><<<duet_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(mptr<T>(y), v, n);
  });
  duet_cuda_launched("fill");
}

}  // namespace

extern "C" void duet_cuda_scale_matrices(duet_dtype dt, int64_t m, int64_t n, double beta, void *c,
                                         int64_t ldc, int64_t stride_c, int64_t batch) {
  DUET_CTX_OR_RETURN(ctx);
  if (m == 0 || n == 0 || batch == 0) return;
  DUET_DISPATCH_FLOAT(dt, "gemm (k = 0)", {
    k_scale_matrices<T><<<grid2d(batch * m, n, THREADS), THREADS, 0, ctx->stream>>>(
        static_cast<T *>(c), (acc_t<T>)beta, m, n, ldc, stride_c, batch);
  });
  duet_cuda_launched("gemm (k = 0)");
}

extern "C" const struct duet_kernels_elementwise duet_cuda_elementwise_kernels = {
    binary, axpy, bcast_acc, reduce_rows, scale, fill,
};

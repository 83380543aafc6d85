/* CUDA layout kernels: the strided copy and accumulate behind permute, concat, slice and
 * (un)patchify, and the embedding lookup (the CPU reference: core/cpu/layout.c). */
#include "core/cuda/cuda_util.cuh"

namespace {

/* A map's outer dims (all but the innermost) are its rows: a row's source and destination
 * offsets are found once per row, and its inner run is walked by consecutive threads. */
__device__ __forceinline__ void row_offsets(const duet_strided &m, int64_t r, int64_t *so, int64_t *dof) {
  int64_t s = m.src_offset, d = m.dst_offset;
  for (int k = m.ndim - 2; k >= 0; k--) {
    const int64_t i = r % m.shape[k];
    r /= m.shape[k];
    s += i * m.src_stride[k];
    d += i * m.dst_stride[k];
  }
  *so = s;
  *dof = d;
}

#define ROW_LOOP(r, rows) for (int64_t r = blockIdx.y; r < (rows); r += gridDim.y)
#define COL_LOOP(j, n) for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < (n); j += (int64_t)gridDim.x * blockDim.x)

template <class E> __global__ void k_copy(const E *src, E *dst, duet_strided m, int64_t rows, int64_t inner) {
  if (m.ndim == 0) {
    if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) dst[m.dst_offset] = src[m.src_offset];
    return;
  }
  const int64_t ss = m.src_stride[m.ndim - 1], ds = m.dst_stride[m.ndim - 1];
  ROW_LOOP(r, rows) {
    int64_t so, dof;
    row_offsets(m, r, &so, &dof);
    COL_LOOP(j, inner) dst[dof + j * ds] = src[so + j * ss];
  }
}

template <class T> __global__ void k_accumulate(const T *src, T *dst, duet_strided m, int64_t rows, int64_t inner) {
  if (m.ndim == 0) {
    if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0)
      dst[m.dst_offset] = st<T>(ld(dst[m.dst_offset]) + ld(src[m.src_offset]));
    return;
  }
  const int64_t ss = m.src_stride[m.ndim - 1], ds = m.dst_stride[m.ndim - 1];
  ROW_LOOP(r, rows) {
    int64_t so, dof;
    row_offsets(m, r, &so, &dof);
    COL_LOOP(j, inner) dst[dof + j * ds] = st<T>(ld(dst[dof + j * ds]) + ld(src[so + j * ss]));
  }
}

static void map_dims(const duet_strided *m, int64_t *rows, int64_t *inner) {
  *rows = 1;
  *inner = m->ndim ? m->shape[m->ndim - 1] : 1;
  for (int k = 0; k < m->ndim - 1; k++) *rows *= m->shape[k];
}

static dim3 map_grid(int64_t rows, int64_t inner, int threads) {
  int64_t bx = (inner + threads - 1) / threads;
  if (bx > 1024) bx = 1024;
  return dim3((unsigned)(bx < 1 ? 1 : bx), duet_rows_grid(rows));
}

void copy(const duet_tensor *src, duet_tensor *dst, const duet_strided *map) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t rows, inner;
  map_dims(map, &rows, &inner);
  if (rows == 0 || inner == 0) return;
  dim3 grid = map_grid(rows, inner, 256);
  switch (duet_dtype_size(dst->dtype)) {
    case 1: k_copy<uint8_t><<<grid, 256, 0, ctx->stream>>>(cptr<uint8_t>(src), mptr<uint8_t>(dst), *map, rows, inner); break;
    case 2: k_copy<uint16_t><<<grid, 256, 0, ctx->stream>>>(cptr<uint16_t>(src), mptr<uint16_t>(dst), *map, rows, inner); break;
    case 4: k_copy<uint32_t><<<grid, 256, 0, ctx->stream>>>(cptr<uint32_t>(src), mptr<uint32_t>(dst), *map, rows, inner); break;
    case 8: k_copy<uint64_t><<<grid, 256, 0, ctx->stream>>>(cptr<uint64_t>(src), mptr<uint64_t>(dst), *map, rows, inner); break;
    default: duet_cuda_record(DUET_EINVAL, "cuda copy: dtype %s", duet_dtype_name(dst->dtype)); return;
  }
  duet_cuda_launched("strided copy");
}

void accumulate(const duet_tensor *src, duet_tensor *dst, const duet_strided *map) {
  DUET_CTX_OR_RETURN(ctx);
  int64_t rows, inner;
  map_dims(map, &rows, &inner);
  if (rows == 0 || inner == 0) return;
  dim3 grid = map_grid(rows, inner, 256);
  DUET_DISPATCH_FLOAT(dst->dtype, "strided accumulate", {
    k_accumulate<T><<<grid, 256, 0, ctx->stream>>>(cptr<T>(src), mptr<T>(dst), *map, rows, inner);
  });
  duet_cuda_launched("strided accumulate");
}

__global__ void k_find_bad(const int32_t *ids, int64_t n, int64_t limit, unsigned long long *first) {
  DUET_GRID_LOOP(i, n) {
    if (ids[i] < 0 || ids[i] >= limit) atomicMin(first, (unsigned long long)i);
  }
}

/* The lowest bad position, whatever order threads find them in: atomicMin is exact. */
int64_t find_bad_id(const duet_tensor *ids, int64_t limit) {
  duet_cuda_ctx *ctx = duet_cuda_ctx_get();
  if (!ctx || ids->numel == 0) return -1;
  unsigned long long *first = static_cast<unsigned long long *>(duet_cuda_scratch(sizeof(unsigned long long)));
  if (!first) return -1;
  unsigned long long host = ~0ull;
  if (!duet_cuda_ok(cudaMemsetAsync(first, 0xff, sizeof *first, ctx->stream), "find_bad_id (memset)")) return -1;
  k_find_bad<<<duet_blocks(ids->numel, 256), 256, 0, ctx->stream>>>(cptr<int32_t>(ids), ids->numel, limit, first);
  if (!duet_cuda_launched("find_bad_id")) return -1;
  if (!duet_cuda_ok(cudaMemcpyAsync(&host, first, sizeof host, cudaMemcpyDeviceToHost, ctx->stream), "find_bad_id (copy)") ||
      !duet_cuda_ok(cudaStreamSynchronize(ctx->stream), "find_bad_id (synchronize)"))
    return -1;
  return host == ~0ull ? -1 : (int64_t)host;
}

template <class E> __global__ void k_embed(const E *table, const int32_t *ids, E *out, int64_t n, int64_t D) {
  ROW_LOOP(r, n) {
    const E *src = table + (int64_t)ids[r] * D;
    E *dst = out + r * D;
    COL_LOOP(j, D) dst[j] = src[j];
  }
}

void embedding_forward(const duet_tensor *table, const duet_tensor *ids, duet_tensor *out) {
  DUET_CTX_OR_RETURN(ctx);
  const int64_t n = ids->numel, D = table->shape[1];
  if (n == 0 || D == 0) return;
  dim3 grid = map_grid(n, D, 128);
  switch (duet_dtype_size(table->dtype)) {
    case 1: k_embed<uint8_t><<<grid, 128, 0, ctx->stream>>>(cptr<uint8_t>(table), cptr<int32_t>(ids), mptr<uint8_t>(out), n, D); break;
    case 2: k_embed<uint16_t><<<grid, 128, 0, ctx->stream>>>(cptr<uint16_t>(table), cptr<int32_t>(ids), mptr<uint16_t>(out), n, D); break;
    case 4: k_embed<uint32_t><<<grid, 128, 0, ctx->stream>>>(cptr<uint32_t>(table), cptr<int32_t>(ids), mptr<uint32_t>(out), n, D); break;
    case 8: k_embed<uint64_t><<<grid, 128, 0, ctx->stream>>>(cptr<uint64_t>(table), cptr<int32_t>(ids), mptr<uint64_t>(out), n, D); break;
    default: duet_cuda_record(DUET_EINVAL, "cuda embedding: dtype %s", duet_dtype_name(table->dtype)); return;
  }
  duet_cuda_launched("embedding");
}

/* Table rows are split into stripes; the thread of (stripe, column) scans every id in order
 * and adds the rows whose id falls in its stripe. Each table element has one owner and its
 * sum is formed in the order of the ids, like the CPU's: no atomics, the same bits every run. */
template <class T>
__global__ void k_embed_bwd(const T *dout, const int32_t *ids, T *dtable, int64_t n, int64_t D, int64_t V, int stripes) {
  const int64_t lo = V * blockIdx.y / stripes, hi = V * (blockIdx.y + 1) / stripes;
  COL_LOOP(j, D) {
    for (int64_t r = 0; r < n; r++) {
      const int64_t id = ids[r];
      if (id < lo || id >= hi) continue;
      dtable[id * D + j] = st<T>(ld(dtable[id * D + j]) + ld(dout[r * D + j]));
    }
  }
}

void embedding_backward(const duet_tensor *dout, const duet_tensor *ids, duet_tensor *dtable) {
  DUET_CTX_OR_RETURN(ctx);
  const int64_t n = ids->numel, D = dtable->shape[1], V = dtable->shape[0];
  if (n == 0 || D == 0 || V == 0) return;
  const int stripes = (int)(V < 64 ? V : 64);
  int64_t bx = (D + 127) / 128;
  dim3 grid((unsigned)(bx > 1024 ? 1024 : bx), (unsigned)stripes);
  DUET_DISPATCH_FLOAT(dtable->dtype, "embedding backward", {
    k_embed_bwd<T><<<grid, 128, 0, ctx->stream>>>(cptr<T>(dout), cptr<int32_t>(ids), mptr<T>(dtable), n, D, V, stripes);
  });
  duet_cuda_launched("embedding backward");
}

}  // namespace

extern "C" const struct duet_kernels_layout duet_cuda_layout_kernels = {
    copy, accumulate, find_bad_id, embedding_forward, embedding_backward,
};

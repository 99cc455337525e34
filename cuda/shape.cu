// Shape ops that move data (native/cpu/shape.cc on the GPU): permute, row copies (narrow, cat, split and their
// backwards), indexSelect and gather, forward and backward side by side.
//
// permute(x, y: [*size], size, inStride, ndim)                      y[i0..ik] = x[Σ i_d·inStride[d]]
// copyRows(src, srcStride, dst, dstStride, rows, len)               dst[r·dstStride + c] = src[r·srcStride + c]
// indexSelect(x: [O, S, C], index: [N], y: [O, N, C])              y[o, k, c] = x[o, index[k], c]
// indexSelectBackward(g: [O, N, C], index: [N], gx: [O, S, C])     gx[o, index[k], c] += g[o, k, c]
// gather(x: [*X], index: [*I], y: [*I])                            y[i] = x[i with i[dim] := index[i]]
// gatherBackward(g: [*I], index: [*I], gx: [*X])                   gx[i with i[dim] := index[i]] += g[i]
//
// Indices are float32/float64 values that must be integers in [0, size of dim). The CPU checks them on the host
// and throws ERR_ARGUMENT; here that would need a host synchronisation, so each kernel checks the indices it
// uses, never touches memory through a bad one, and writes NaN instead (see shape.h).
//
// The scatter-adds (backwards) give each thread one "column" of gx (all positions along dim for one choice of
// the other coordinates) and walk the index in order: no atomics, deterministic, the CPU's summation order.
#include "common.cuh"
#include "shape.h"

using namespace innflow_cuda;

namespace {

template <class T> __device__ inline T nanOf();
template <> __device__ inline float nanOf<float>() { return __int_as_float(0x7fc00000); }
template <> __device__ inline double nanOf<double>() { return __longlong_as_double(0x7ff8000000000000LL); }

// True when v is an integer in [0, limit) (false for NaN): the CPU's validIndex.
__device__ inline bool validIndex(double v, int64_t limit) {
  bool inRange = v >= 0 && v < double(limit);
  double c = inRange ? v : 0.0;
  return inRange && double(int64_t(c)) == c;
}

// Sizes and strides passed by value (kernel parameter space).
struct Dims {
  int ndim;
  int64_t size[INNFLOW_CUDA_MAX_DIMS];
  int64_t stride[INNFLOW_CUDA_MAX_DIMS];
};

// ------------------------------------------------------------------------------------------------ permute

// x: strided view of d.size with strides d.stride, y: [*d.size] contiguous, n = Π d.size
template <class T>
__global__ void permuteKernel(const T* x, T* y, int64_t n, Dims d) {
  INNFLOW_GRID_STRIDE(i, n) {
    int64_t rem = i, off = 0;
    for (int k = d.ndim - 1; k >= 0; k--) {
      int64_t idx = rem % d.size[k];
      rem /= d.size[k];
      off += idx * d.stride[k];
    }
    y[i] = x[off];
  }
}

int permute(int dtype, const void* x, void* y, const int64_t* size, const int64_t* inStride, int ndim) {
  if (ndim < 0 || ndim > INNFLOW_CUDA_MAX_DIMS)
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "permute: %d dimensions (at most %d on the GPU)", ndim, INNFLOW_CUDA_MAX_DIMS);
  Dims d{};
  d.ndim = ndim;
  int64_t n = 1;
  for (int k = 0; k < ndim; k++) {
    d.size[k] = size[k];
    d.stride[k] = inStride[k];
    n *= size[k];
  }
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    permuteKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<const T*>(x), static_cast<T*>(y), n, d);
    INNFLOW_LAUNCHED("permute");
    return INNFLOW_CUDA_OK;
  });
}

// ------------------------------------------------------------------------------------------------ row copies

// src: rows runs of len elements at stride srcStride; dst: the same at stride dstStride
template <class T>
__global__ void copyRowsKernel(const T* src, int64_t srcStride, T* dst, int64_t dstStride, int64_t rows, int64_t len) {
  INNFLOW_GRID_STRIDE(i, rows * len) {
    int64_t r = i / len, c = i - r * len;
    dst[r * dstStride + c] = src[r * srcStride + c];
  }
}

int copyRows(int dtype, const void* src, int64_t srcStride, void* dst, int64_t dstStride, int64_t rows, int64_t len) {
  if (rows <= 0 || len <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    copyRowsKernel<T><<<gridFor(rows * len), kBlock, 0, stream()>>>(static_cast<const T*>(src), srcStride, static_cast<T*>(dst),
                                                                   dstStride, rows, len);
    INNFLOW_LAUNCHED("copyRows");
    return INNFLOW_CUDA_OK;
  });
}

// ------------------------------------------------------------------------------------------------ indexSelect

// x: [outer, size, inner], index: [n], y: [outer, n, inner]
template <class T, class I>
__global__ void indexSelectKernel(const T* x, int64_t outer, int64_t size, int64_t inner, const I* index, int64_t n, T* y) {
  INNFLOW_GRID_STRIDE(i, outer * n * inner) {
    int64_t c = i % inner, t = i / inner;
    int64_t k = t % n, o = t / n;
    double v = double(index[k]);
    y[i] = validIndex(v, size) ? x[(o * size + int64_t(v)) * inner + c] : nanOf<T>();
  }
}

// g: [outer, n, inner], index: [n], gx: [outer, size, inner]; one thread per column (o, c) of gx
template <class T, class I>
__global__ void indexSelectBackwardKernel(const T* g, int64_t outer, int64_t size, int64_t inner, const I* index, int64_t n, T* gx) {
  INNFLOW_GRID_STRIDE(col, outer * inner) {
    int64_t o = col / inner, c = col % inner;
    T* dst = gx + o * size * inner + c;
    for (int64_t s = 0; s < size; s++) dst[s * inner] = T(0);
    bool bad = false;
    for (int64_t k = 0; k < n; k++) {
      double v = double(index[k]);
      if (!validIndex(v, size)) {
        bad = true;
        continue;
      }
      dst[int64_t(v) * inner] += g[(o * n + k) * inner + c];
    }
    if (bad)
      for (int64_t s = 0; s < size; s++) dst[s * inner] = nanOf<T>();
  }
}

int indexSelect(int dtype, const void* x, int64_t outer, int64_t size, int64_t inner, const void* index, int indexDtype, int64_t n,
                void* y) {
  const int64_t total = outer * n * inner;
  if (total <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    return withDtype(indexDtype, [&](auto itag) -> int {
      using I = decltype(itag);
      indexSelectKernel<T, I><<<gridFor(total), kBlock, 0, stream()>>>(static_cast<const T*>(x), outer, size, inner,
                                                                       static_cast<const I*>(index), n, static_cast<T*>(y));
      INNFLOW_LAUNCHED("indexSelect");
      return INNFLOW_CUDA_OK;
    });
  });
}

int indexSelectBackward(int dtype, const void* g, int64_t outer, int64_t size, int64_t inner, const void* index, int indexDtype,
                        int64_t n, void* gx) {
  if (outer * size * inner <= 0) return INNFLOW_CUDA_OK;
  const int64_t columns = outer * inner;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    return withDtype(indexDtype, [&](auto itag) -> int {
      using I = decltype(itag);
      indexSelectBackwardKernel<T, I><<<gridFor(columns), kBlock, 0, stream()>>>(static_cast<const T*>(g), outer, size, inner,
                                                                                 static_cast<const I*>(index), n, static_cast<T*>(gx));
      INNFLOW_LAUNCHED("indexSelectBackward");
      return INNFLOW_CUDA_OK;
    });
  });
}

// ------------------------------------------------------------------------------------------------ gather

// The index's shape and x's strides (x contiguous), with the gathering dimension.
struct GatherGeom {
  int ndim, dim;
  int64_t dimSize;                          // x's size along dim (the index limit)
  int64_t iShape[INNFLOW_CUDA_MAX_DIMS];
  int64_t xStride[INNFLOW_CUDA_MAX_DIMS];
};

int makeGeom(GatherGeom* geo, const int64_t* xShape, int ndim, int dim, const int64_t* iShape, int64_t* xNumel, int64_t* iNumel) {
  if (ndim < 1 || ndim > INNFLOW_CUDA_MAX_DIMS || dim < 0 || dim >= ndim)
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "gather: ndim %d / dim %d out of range (at most %d dimensions on the GPU)", ndim,
                       dim, INNFLOW_CUDA_MAX_DIMS);
  *geo = GatherGeom{};
  geo->ndim = ndim;
  geo->dim = dim;
  geo->dimSize = xShape[dim];
  int64_t s = 1, ni = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    geo->xStride[d] = s;
    s *= xShape[d];
    geo->iShape[d] = iShape[d];
    ni *= iShape[d];
  }
  *xNumel = s;
  *iNumel = ni;
  return INNFLOW_CUDA_OK;
}

// x: [*X], index, y: [*I]
template <class T, class I>
__global__ void gatherKernel(const T* x, const I* index, T* y, int64_t n, GatherGeom geo) {
  INNFLOW_GRID_STRIDE(i, n) {
    int64_t rem = i, off = 0;
    for (int d = geo.ndim - 1; d >= 0; d--) {
      int64_t c = rem % geo.iShape[d];
      rem /= geo.iShape[d];
      if (d != geo.dim) off += c * geo.xStride[d];
    }
    double v = double(index[i]);
    y[i] = validIndex(v, geo.dimSize) ? x[off + int64_t(v) * geo.xStride[geo.dim]] : nanOf<T>();
  }
}

// g, index: [*I] seen as [A, D, B] around dim; gx: [*X] (zeroed first); one thread per (a, b) column
template <class T, class I>
__global__ void gatherBackwardKernel(const T* g, const I* index, T* gx, int64_t A, int64_t D, int64_t B, GatherGeom geo) {
  INNFLOW_GRID_STRIDE(col, A * B) {
    int64_t a = col / B, b = col % B;
    // gx offset of the coordinates other than dim: a over dims [0, dim), b over dims (dim, ndim)
    int64_t off = 0;
    for (int d = geo.ndim - 1; d > geo.dim; d--) {
      off += (b % geo.iShape[d]) * geo.xStride[d];
      b /= geo.iShape[d];
    }
    for (int d = geo.dim - 1; d >= 0; d--) {
      off += (a % geo.iShape[d]) * geo.xStride[d];
      a /= geo.iShape[d];
    }
    T* dst = gx + off;
    const int64_t step = geo.xStride[geo.dim];
    const int64_t row0 = (col / B) * D * B + col % B;
    bool bad = false;
    for (int64_t k = 0; k < D; k++) {
      double v = double(index[row0 + k * B]);
      if (!validIndex(v, geo.dimSize)) {
        bad = true;
        continue;
      }
      dst[int64_t(v) * step] += g[row0 + k * B];
    }
    if (bad)
      for (int64_t s = 0; s < geo.dimSize; s++) dst[s * step] = nanOf<T>();
  }
}

int gather(int dtype, const void* x, const int64_t* xShape, int ndim, int dim, const void* index, int indexDtype,
           const int64_t* iShape, void* y) {
  GatherGeom geo;
  int64_t xn = 0, n = 0;
  INNFLOW_STATUS_TRY(makeGeom(&geo, xShape, ndim, dim, iShape, &xn, &n));
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    return withDtype(indexDtype, [&](auto itag) -> int {
      using I = decltype(itag);
      gatherKernel<T, I><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<const T*>(x), static_cast<const I*>(index),
                                                              static_cast<T*>(y), n, geo);
      INNFLOW_LAUNCHED("gather");
      return INNFLOW_CUDA_OK;
    });
  });
}

int gatherBackward(int dtype, const void* g, const int64_t* xShape, int ndim, int dim, const void* index, int indexDtype,
                   const int64_t* iShape, void* gx) {
  GatherGeom geo;
  int64_t xn = 0, n = 0;
  INNFLOW_STATUS_TRY(makeGeom(&geo, xShape, ndim, dim, iShape, &xn, &n));
  if (xn <= 0) return INNFLOW_CUDA_OK;
  INNFLOW_CUDA_TRY(cudaMemsetAsync(gx, 0, size_t(xn) * (dtype == INNFLOW_F64 ? 8 : 4), stream()));
  if (n <= 0) return INNFLOW_CUDA_OK;
  int64_t A = 1, B = 1;
  for (int d = 0; d < ndim; d++) {
    if (d < dim) A *= iShape[d];
    else if (d > dim) B *= iShape[d];
  }
  const int64_t D = iShape[dim];
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    return withDtype(indexDtype, [&](auto itag) -> int {
      using I = decltype(itag);
      gatherBackwardKernel<T, I><<<gridFor(A * B), kBlock, 0, stream()>>>(static_cast<const T*>(g), static_cast<const I*>(index),
                                                                          static_cast<T*>(gx), A, D, B, geo);
      INNFLOW_LAUNCHED("gatherBackward");
      return INNFLOW_CUDA_OK;
    });
  });
}

}  // namespace

extern "C" const InnflowCudaShape* innflow_cuda_shape(void) {
  static const InnflowCudaShape table = {permute, copyRows, indexSelect, indexSelectBackward, gather, gatherBackward};
  return &table;
}

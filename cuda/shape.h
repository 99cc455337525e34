// The shape family's table (cuda/shape.cu), used by native/cpu/shape.cc for CUDA tensors. All tensors are
// contiguous and row-major; dtype 0 = float32, 1 = float64 (x, y, g, gx share it); indexDtype is the dtype of
// an index tensor, which may differ from x's.
//
// Index validation differs from the CPU: the CPU reads every index on the host and throws ERR_ARGUMENT before
// writing anything; on the GPU that read would be a host synchronisation, so the kernels check each index
// themselves (an integer in [0, size)) and never read or write out of bounds with a bad one. Instead they
// write NaN: indexSelect/gather into the output element(s) that the bad index selected, the backward kernels
// into the whole gx column (every position along dim) that the bad index would have scattered into.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // y: [size[0], ..., size[ndim-1]] contiguous; y[i0, ..., ik] = x[Σ i_d · inStride[d]]. ndim in
  // [0, INNFLOW_CUDA_MAX_DIMS] (0: one element); n = Π size. Used for permute and its backward (the addon
  // merges dimensions first, as the CPU does).
  int (*permute)(int dtype, const void* x, void* y, const int64_t* size, const int64_t* inStride, int ndim);

  // For r in [0, rows): dst[r·dstStride + c] = src[r·srcStride + c], c in [0, len) (strides in elements).
  // narrow, narrowBackward, cat, split and their backwards are all such copies.
  int (*copyRows)(int dtype, const void* src, int64_t srcStride, void* dst, int64_t dstStride, int64_t rows, int64_t len);

  // x: [outer, size, inner], index: [n] (indexDtype), y: [outer, n, inner]; y[o, k, c] = x[o, index[k], c].
  int (*indexSelect)(int dtype, const void* x, int64_t outer, int64_t size, int64_t inner, const void* index,
                     int indexDtype, int64_t n, void* y);
  // g: [outer, n, inner], gx: [outer, size, inner] (written entirely: zeros, then the scatter-add of g in k
  // order, the CPU's order, so results are deterministic and equal to the CPU's).
  int (*indexSelectBackward)(int dtype, const void* g, int64_t outer, int64_t size, int64_t inner, const void* index,
                             int indexDtype, int64_t n, void* gx);

  // x: [*xShape], index and y: [*iShape] (both ndim dims, ndim in [1, INNFLOW_CUDA_MAX_DIMS];
  // iShape[d] <= xShape[d] for d != dim); y[i] = x[i with coordinate dim replaced by index[i]].
  int (*gather)(int dtype, const void* x, const int64_t* xShape, int ndim, int dim, const void* index,
                int indexDtype, const int64_t* iShape, void* y);
  // g: [*iShape], gx: [*xShape] (written entirely: zeros, then the scatter-add of g in index order along dim).
  int (*gatherBackward)(int dtype, const void* g, const int64_t* xShape, int ndim, int dim, const void* index,
                        int indexDtype, const int64_t* iShape, void* gx);
} InnflowCudaShape;

const InnflowCudaShape* innflow_cuda_shape(void);

#ifdef __cplusplus
}
#endif

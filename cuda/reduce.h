// The reduce family's table (cuda/reduce.cu), shared by the addon (native/cpu/reduce.cc) and the library.
// dtype 0 = float32, 1 = float64; tensors contiguous and row-major.
#pragma once
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// The most groups (see sum) a reduction takes on the GPU: kept and reduced groups alternate, so at most
// INNFLOW_CUDA_MAX_DIMS of each.
#define INNFLOW_CUDA_MAX_REDUCE_GROUPS (2 * INNFLOW_CUDA_MAX_DIMS)

typedef struct {
  // x: [groupSizes[0], ..., groupSizes[groups-1]] (x's shape with neighbouring dimensions of the same kind
  // merged and size-1 dimensions dropped, as reduce.cc's coalesce does; groupReduced[g] != 0 marks a summed
  // group; groups may be 0 for a single element), y: [the kept groups' sizes, in order].
  // y[o] = (dtype) (scale · Σ x over the reduced groups), accumulated in double for both dtypes, in a fixed
  // order (block/warp trees, no atomics): the same inputs give the same bits. Empty x is the caller's case
  // (it fills y); x must have at least one element.
  int (*sum)(int dtype, const void* x, void* y, const int64_t* groupSizes, const int* groupReduced, int groups,
             double scale);
} InnflowCudaReduce;

const InnflowCudaReduce* innflow_cuda_reduce(void);

#ifdef __cplusplus
}
#endif

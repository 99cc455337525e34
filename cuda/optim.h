// The optim family's table (cuda/optim.cu), used by native/cpu/optim.cc for CUDA parameters. Multi-tensor
// updates: the arrays describe `count` tensors (host arrays, index-aligned); tensor i has numels[i] elements of
// dtypes[i] (float32 and float64 may be mixed) and all its pointers are device pointers. Everything is updated
// in place, with PyTorch's formulas in the CPU's order of operations (products and sums are not fused, so the
// results equal the CPU's).
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // params, grads, expAvg, expAvgSq: [numels[i]] each; steps[i] >= 1 is parameter i's step count including
  // this step (bias corrections). One launch for all tensors.
  int (*adamStep)(int64_t count, const int* dtypes, void* const* params, const void* const* grads, void* const* expAvg,
                  void* const* expAvgSq, const int64_t* numels, const int64_t* steps, double lr, double beta1, double beta2,
                  double eps, double weightDecay);
  // params, grads, momentumBufs: [numels[i]] each; momentumBufs and fresh are NULL without momentum;
  // fresh[i] != 0 makes buffer i start as this step's gradient. One launch for all tensors.
  int (*sgdStep)(int64_t count, const int* dtypes, void* const* params, const void* const* grads, void* const* momentumBufs,
                 const int* fresh, const int64_t* numels, double lr, double momentum, double dampening, double weightDecay,
                 int nesterov);
  // grads: [numels[i]] each. *totalNorm (host) = (Σ |g|^p)^(1/p) over all elements (max |g| for p = Infinity;
  // accumulated in double), and every gradient is scaled by min(1, maxNorm / (total + 1e-6)) on the device.
  // Returning the norm to the host waits for the stream (the one synchronisation of this family).
  int (*clipGradNorm)(int64_t count, const int* dtypes, void* const* grads, const int64_t* numels, double maxNorm,
                      double normType, double* totalNorm);
} InnflowCudaOptim;

const InnflowCudaOptim* innflow_cuda_optim(void);

#ifdef __cplusplus
}
#endif

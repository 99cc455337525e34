// The loss family's table (cuda/loss.cu), shared by the addon (native/cpu/loss.cc) and the library: the Gaussian
// negative log-likelihood of a flow, forward and backward. Tensors are contiguous, row-major, of one dtype
// (0 = float32, 1 = float64): z, gz: [B, D]; logJacDet, gLogJacDet: [B]; loss, g: one value. The formulas are the
// CPU's (see there); every sum accumulates in double and is reduced deterministically (no atomics).
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // loss = (1/B)·Σ_b (½·Σ z_b² + (D/2)·log 2π − logJacDet_b); logJacDet NULL: no such term.
  int (*forward)(int dtype, const void* z, const void* logJacDet, void* loss, int64_t B, int64_t D);

  // gz = (g/B)·z, gLogJacDet = −g/B (each written unless NULL); g is read on the device.
  int (*backward)(int dtype, const void* g, const void* z, void* gz, void* gLogJacDet, int64_t B, int64_t D);
} InnflowCudaLoss;

const InnflowCudaLoss* innflow_cuda_loss(void);

#ifdef __cplusplus
}
#endif

// The actnorm family's table (cuda/actnorm.cu), shared by the addon (native/cpu/actnorm.cc) and the library:
// ActNorm's per-channel affine map with its log-determinant, forward and backward. Tensors are contiguous,
// row-major, of one dtype (0 = float32, 1 = float64): x, y, gy, gx: [B, C, S]; loc, logScale, gloc, glogScale: [C];
// logDet, gLogDet: [B]. The formulas are the CPU's (see there), evaluated in the tensor's dtype, with every sum
// accumulated in double and reduced deterministically (no atomics).
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // y = (x − loc)/e^logScale (rev: x·e^logScale + loc), logDet[b] = ∓S·Σ_c logScale_c.
  int (*forward)(int dtype, const void* x, const void* loc, const void* logScale, void* y, void* logDet, int64_t B,
                 int64_t C, int64_t S, int rev);

  // gy: [B, C, S] or NULL (zeros), gLogDet: [B] or NULL (zeros); gx, gloc, glogScale: written unless NULL.
  int (*backward)(int dtype, const void* gy, const void* gLogDet, const void* x, const void* loc, const void* logScale,
                  void* gx, void* gloc, void* glogScale, int64_t B, int64_t C, int64_t S, int rev);
} InnflowCudaActNorm;

const InnflowCudaActNorm* innflow_cuda_actnorm(void);

#ifdef __cplusplus
}
#endif

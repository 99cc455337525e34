// The lu_conv family's table (cuda/lu_conv.cu): the weight of Glow's LU-parameterised 1×1 convolution and its
// backward, the algorithm of native/cpu/lu_conv.cc carried out in double with the same order of operations.
//
// P, L, U: [n, n]; logS, sign: [n]; dtype 0 = float32, 1 = float64 (shared by every tensor of a call).
// Where the CPU throws ERR_ARGUMENT after inspecting values (P not a permutation matrix, sign not ±1, or for
// the inverse a zero or non-finite diagonal sign·exp(logS)), the GPU cannot throw without a host sync: every
// output of the call is filled with NaN instead.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // -> out: [n, n], W = P·L̃·Ũ (inverse = 0) or W⁻¹ = Ũ⁻¹·L̃⁻¹·Pᵀ (inverse = 1), with L̃ = I + strictly-lower(L),
  // Ũ = strictly-upper(U) + diag(sign·exp(logS)).
  int (*weight)(int dtype, const void* P, const void* L, const void* U, const void* logS, const void* sign, void* out,
                int64_t n, int inverse);
  // g: [n, n] the gradient of the forward's result, out: [n, n] that result -> gL: [n, n] (zero off the strict
  // lower triangle), gU: [n, n] (zero off the strict upper triangle), gLogS: [n].
  int (*weightBackward)(int dtype, const void* g, const void* P, const void* L, const void* U, const void* logS,
                        const void* sign, const void* out, void* gL, void* gU, void* gLogS, int64_t n, int inverse);
} InnflowCudaLuConv;

const InnflowCudaLuConv* innflow_cuda_lu_conv(void);

#ifdef __cplusplus
}
#endif

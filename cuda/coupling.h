// The coupling family's table (cuda/coupling.cu), shared by the addon (native/cpu/coupling.cc) and the library:
// the fused affine coupling y2 = x2·e^s + t (or its inverse) with its log-determinant, forward and backward.
// Tensors are contiguous, row-major, of one dtype (0 = float32, 1 = float64). A sample (row) b holds
//   a:  [2n] at a + b·2n   (the first n values are the raw log-scales a_s, the next n the raw shifts)
//   x2, y2, E, D, gx2, gy2: [n] at b·n
// with n = C2·(spatial size). The clamp codes are those of native/cpu/coupling.cc (it static_asserts that they
// agree); the formulas are the CPU's (see there), evaluated in the tensor's dtype, with every row sum
// accumulated in double and reduced deterministically (no atomics).
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { INNFLOW_CLAMP_TANH_DIV, INNFLOW_CLAMP_ATAN, INNFLOW_CLAMP_TANH, INNFLOW_CLAMP_SIGMOID, INNFLOW_CLAMP_NONE, INNFLOW_CLAMP_COUNT };

typedef struct {
  // a: [rows, 2n], x2, y2: [rows, n], logDet: [rows]; E, D: [rows, n] or both NULL (nothing saved).
  // y2 = x2·e^s + t (rev: (x2 − t)·e^{−s}), logDet = ±Σ_row s, E = e^{±s}, D = ∂s₀/∂a_s (before the GIN centring).
  int (*forward)(int kind, int dtype, const void* a, const void* x2, void* y2, void* logDet, void* E, void* D,
                 int64_t rows, int64_t n, double preScale, double clamp, int gin, int rev);

  // gy2: [rows, n] or NULL, gLogDet: [rows] or NULL; a, x2, E, D as saved by forward.
  // ga: [rows, 2n] (always written), gx2: [rows, n] or NULL (not needed).
  int (*backward)(int kind, int dtype, const void* gy2, const void* gLogDet, const void* a, const void* x2,
                  const void* E, const void* D, void* ga, void* gx2, int64_t rows, int64_t n, double preScale,
                  int gin, int rev);

  // catAffinePermute: x1: [B, C1, S], y2: [B, C2, S], scale: [C] or NULL, shift: [C], perm: [C] (indexDtype),
  // z: [B, C, S] with z[:, j] = src[:, perm[j]]·scale[perm[j]] + shift[perm[j]], src = cat(x1, y2) along 1.
  // A perm that is not a permutation of 0..C−1 gives NaN everywhere (no host synchronisation to report it).
  int (*catAffinePermute)(int dtype, const void* x1, const void* y2, const void* scale, const void* shift,
                          const void* perm, int indexDtype, void* z, int64_t B, int64_t C1, int64_t C2, int64_t S);

  // Its backward: gx1, gy2 (always written) = gz[:, perm⁻¹[k]]·scale[k]; gscale, gshift: [C] or NULL,
  // the Σ over batch and S of gz[:, perm⁻¹[k]]·src[:, k] and of gz[:, perm⁻¹[k]].
  int (*catAffinePermuteBackward)(int dtype, const void* gz, const void* x1, const void* y2, const void* scale,
                                  const void* perm, int indexDtype, void* gx1, void* gy2, void* gscale, void* gshift,
                                  int64_t B, int64_t C1, int64_t C2, int64_t S);

  // permuteAffineSplit, the inverse: z: [B, C, S] -> x1: [B, C1, S], x2: [B, C2, S] with
  // src[:, k] = (z[:, perm[k]] − shift[k]) / scale[k] (scale NULL: no division), src = cat(x1, x2) along 1;
  // perm is the gather index here (the forward's inverse permutation), NaN results unless a permutation.
  int (*permuteAffineSplit)(int dtype, const void* z, const void* scale, const void* shift, const void* perm,
                            int indexDtype, void* x1, void* x2, int64_t B, int64_t C1, int64_t C2, int64_t S);

  // Its backward: gx1, gx2 or NULL (zeros); gz (always written), gscale, gshift: [C] or NULL.
  int (*permuteAffineSplitBackward)(int dtype, const void* gx1, const void* gx2, const void* z, const void* scale,
                                    const void* shift, const void* perm, int indexDtype, void* gz, void* gscale,
                                    void* gshift, int64_t B, int64_t C1, int64_t C2, int64_t S);
} InnflowCudaCoupling;

const InnflowCudaCoupling* innflow_cuda_coupling(void);

#ifdef __cplusplus
}
#endif

// The linalg family's table (cuda/linalg.cu): LU with partial pivoting, slogdet, inverse, triangular solve and
// Householder QR on the GPU, forward and backward, each the algorithm of native/cpu/linalg.cc carried out in
// double with the same order of operations (so the same pivot choices, ties broken the same way).
//
// Shapes: every matrix argument is a contiguous batch of `batch` row-major matrices; dtype 0 = float32,
// 1 = float64 (all tensors of a call share it). Nothing here synchronises with the host.
//
// Where the CPU throws ERR_ARGUMENT after inspecting values (a singular matrix: zero pivot, zero on a triangular
// diagonal), the GPU cannot throw without a host sync: the outputs of that matrix are filled with NaN instead
// (the other matrices of the batch are computed normally). slogdet of a singular matrix is not an error on
// either device: sign 0, logabsdet -inf.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // A: [batch, n, n] -> P, L, U: [batch, n, n], A = P·L·U (P a permutation, L unit lower, U upper).
  int (*lu)(int dtype, const void* A, void* P, void* L, void* U, int64_t batch, int64_t n);
  // gL, gU: [batch, n, n] or NULL (not both NULL); P, L, U: [batch, n, n] -> gA: [batch, n, n] (written in
  // full; NaN for a matrix whose U has a zero on its diagonal).
  int (*luBackward)(int dtype, const void* gL, const void* gU, const void* P, const void* L, const void* U, void* gA,
                    int64_t batch, int64_t n);
  // A: [batch, n, n] -> sign, logabsdet: [batch] (singular: 0, -inf; n == 0: 1, 0).
  int (*slogdet)(int dtype, const void* A, void* sign, void* logabsdet, int64_t batch, int64_t n);
  // g: [batch], A: [batch, n, n] -> gA = g·A⁻ᵀ: [batch, n, n] (NaN for a singular matrix).
  int (*slogdetBackward)(int dtype, const void* g, const void* A, void* gA, int64_t batch, int64_t n);
  // A: [batch, n, n] -> Ainv: [batch, n, n] (NaN for a singular matrix).
  int (*inverse)(int dtype, const void* A, void* Ainv, int64_t batch, int64_t n);
  // g, Ainv: [batch, n, n] -> gA = -Ainvᵀ·g·Ainvᵀ: [batch, n, n].
  int (*inverseBackward)(int dtype, const void* g, const void* Ainv, void* gA, int64_t batch, int64_t n);
  // A: [batch, n, n]; B and X: left (A·X = B) [batch, n, k], right (X·A = B) [batch, k, n]. Only the upper
  // (or lower) triangle of A is read, its diagonal only when !unit (a zero there: X of that matrix is NaN).
  int (*solveTriangular)(int dtype, const void* A, const void* B, void* X, int64_t batch, int64_t n, int64_t k,
                         int upper, int left, int unit);
  // g, X shaped like B; gA: [batch, n, n] or NULL, gB shaped like B or NULL.
  int (*solveTriangularBackward)(int dtype, const void* g, const void* A, const void* X, void* gA, void* gB,
                                 int64_t batch, int64_t n, int64_t k, int upper, int left, int unit);
  // A: [batch, m, n], m >= n -> Q: [batch, m, n], R: [batch, n, n] (LAPACK geqrf's sign convention).
  int (*qr)(int dtype, const void* A, void* Q, void* R, int64_t batch, int64_t m, int64_t n);
  // gQ: [batch, m, n] or NULL, gR: [batch, n, n] or NULL; Q, R -> gA: [batch, m, n] (NaN for a matrix whose
  // R has a zero on its diagonal).
  int (*qrBackward)(int dtype, const void* gQ, const void* gR, const void* Q, const void* R, void* gA, int64_t batch,
                    int64_t m, int64_t n);
} InnflowCudaLinalg;

const InnflowCudaLinalg* innflow_cuda_linalg(void);

#ifdef __cplusplus
}
#endif

// The matmul family's table (cuda/matmul.cu), shared by the addon and the library. Used by native/cpu/matmul.cc
// and by the families whose CPU code calls gemm (conv, linalg, lu_conv).
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The activations linear can apply in its epilogue (linearActivation, activationGrad).
#define INNFLOW_ACT_NONE 0
#define INNFLOW_ACT_RELU 1
#define INNFLOW_ACT_TANH 2
#define INNFLOW_ACT_COUNT 3

typedef struct {
  // Row-major, strided-batched: for b in [0, batch): C_b = alpha · op(A_b) · op(B_b) + beta · C_b, with
  // op(X) = X or Xᵀ, A_b = A + b·strideA (elements), op(A) M×K, op(B) K×N, lda/ldb/ldc row strides.
  // Computed through cuBLAS (column-major) as Cᵀ = op(B)ᵀ op(A)ᵀ. dtype 0 = float32, 1 = float64.
  // M, N or batch ≤ 0: nothing. K ≤ 0 or alpha = 0: C_b = beta · C_b (zeros when beta = 0, C not read).
  // A stride of 0 shares one matrix over the batch (inputs only: strideC must not be 0 when batch > 1).
  int (*gemm)(int dtype, int transA, int transB, int64_t M, int64_t N, int64_t K, double alpha, const void* A,
              int64_t lda, int64_t strideA, const void* B, int64_t ldb, int64_t strideB, double beta, void* C,
              int64_t ldc, int64_t strideC, int64_t batch);

  // Matrix products over a broadcast batch, summed into C's batch (torch.matmul's batch rules and their
  // gradients). batch: the batch shape, ndim ≤ INNFLOW_CUDA_MAX_DIMS dims (ndim 0: one product). aBatch, bBatch,
  // cBatch: each operand's batch shape written with ndim dims (leading 1s added), each dim equal to batch's or 1.
  // A: numel(aBatch) contiguous matrices, M×K row-major (K×M when transA); B: K×N (N×K when transB); C: M×N.
  // For every batch index i: P_i = op(A[a(i)]) · op(B[b(i)]), and C[c] = Σ_{i : c(i) = c} P_i in increasing i
  // (overwritten; zeros where no i maps to c, e.g. an empty batch). Sums over more than one product go through
  // a scratch buffer of numel(batch)·M·N values, float32 accumulated in double; deterministic.
  int (*batchedMatmul)(int dtype, int transA, int transB, int64_t M, int64_t N, int64_t K, const void* A,
                       const int64_t* aBatch, const void* B, const int64_t* bBatch, void* C, const int64_t* cBatch,
                       const int64_t* batch, int ndim);

  // y: [outer, mid, inner], v: [mid] — y[o, m, i] = v[m] (a bias preloaded into a GEMM's output).
  int (*broadcastMid)(int dtype, const void* v, int64_t outer, int64_t mid, int64_t inner, void* y);

  // x: [outer, mid, inner], out: [mid] — out[m] = (accumulate ? out[m] : 0) + Σ_{o, i} x[o, m, i]
  // (bias gradients: linear's column sums with inner = 1, conv2d's per-channel sums). Float32 accumulated in
  // double; a fixed two-pass tree (the same order for the same sizes), no atomics: deterministic.
  int (*sumOuterInner)(int dtype, const void* x, int64_t outer, int64_t mid, int64_t inner, void* out, int accumulate);

  // The arithmetic of float32 GEMMs (gemm and everything built on it): 0 'highest' (full float32, the
  // default), 1 'high' (TF32 tensor cores), 2 'medium' (bfloat16 tensor cores). float64 is never affected.
  int (*setMathMode)(int mode);

  // x: [rows, in], w: [out, in], bias: [out] | NULL, y: [rows, out] (row-major, contiguous) —
  // y = act(x·wᵀ + bias), act an INNFLOW_ACT_* code. One cuBLASLt matmul with the bias (and relu) in its
  // epilogue where cuBLASLt offers one for the dtype and pointers; otherwise bias rows, gemm, activation kernel.
  // Follows setMathMode for float32.
  int (*linearActivation)(int dtype, int act, const void* x, const void* w, const void* bias, int64_t rows,
                          int64_t in, int64_t out, void* y);

  // g, y, gz: [n] — gz = g·act'(z) written from the activation's output y = act(z): relu g where y > 0 (else 0),
  // tanh g·(1 − y²), none g.
  int (*activationGrad)(int dtype, int act, const void* g, const void* y, int64_t n, void* gz);
} InnflowCudaMatmul;

const InnflowCudaMatmul* innflow_cuda_matmul(void);

#ifdef __cplusplus
}
#endif

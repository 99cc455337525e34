// The matmul family's table (cuda/matmul.cu), shared by the addon and the library. Used by native/cpu/matmul.cc
// and by the families whose CPU code calls gemm (conv, linalg, lu_conv).
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // Row-major, strided-batched: for b in [0, batch): C_b = alpha · op(A_b) · op(B_b) + beta · C_b, with
  // op(X) = X or Xᵀ, A_b = A + b·strideA (elements), op(A) M×K, op(B) K×N, lda/ldb/ldc row strides.
  // Computed through cuBLAS (column-major) as Cᵀ = op(B)ᵀ op(A)ᵀ. dtype 0 = float32, 1 = float64.
  int (*gemm)(int dtype, int transA, int transB, int64_t M, int64_t N, int64_t K, double alpha, const void* A,
              int64_t lda, int64_t strideA, const void* B, int64_t ldb, int64_t strideB, double beta, void* C,
              int64_t ldc, int64_t strideC, int64_t batch);
} InnflowCudaMatmul;

const InnflowCudaMatmul* innflow_cuda_matmul(void);

#ifdef __cplusplus
}
#endif

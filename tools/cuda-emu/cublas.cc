// The emulator's cuBLAS and cuBLASLt: column-major GEMMs computed on the CPU (through OpenBLAS where the build found it,
// otherwise in double precision, rounded once), queued on the stream like the library's kernels (so a capture records them). The fast float32 compute types round
// the operands first, as the tensor cores read them: TF32 keeps 10 mantissa bits, bfloat16 keeps 7.
// INNFLOW_CUDA_EMU_LT_UNSUPPORTED=1 makes cuBLASLt find no algorithm, to exercise the callers' fallback.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#ifdef INNFLOW_EMU_WITH_BLAS
#include <cblas.h>
#endif

#include "cublasLt.h"

namespace emu {
cudaError_t enqueue(cudaStream_t stream, std::function<cudaError_t()> op);
}

struct EmuCublas {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};
struct EmuLt {};
struct EmuLtDesc {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  cublasOperation_t transA = CUBLAS_OP_N, transB = CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
};
struct EmuLtLayout {
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
};
struct EmuLtPreference {};

namespace {

enum class Rounding { None, TF32, BF16 };

// Round to nearest even, keeping `bits` of float32's 23 mantissa bits (NaN and infinity pass unchanged).
float roundMantissa(float v, int bits) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7F800000u) == 0x7F800000u) return v;
  const int drop = 23 - bits;
  const uint32_t half = 1u << (drop - 1), mask = (1u << drop) - 1;
  const uint32_t lsb = (u >> drop) & 1u;
  u = (u + half - 1 + lsb) & ~mask;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

template <class T>
double operand(T v, Rounding r) {
  if (r == Rounding::TF32) return roundMantissa(float(v), 10);
  if (r == Rounding::BF16) return roundMantissa(float(v), 7);
  return double(v);
}

// C (m × n, column-major, ldc) = alpha · op(A) · op(B) + beta · C for one matrix, in double; C is not read when beta
// is 0 (it may hold anything, NaN included).
template <class T>
void gemmLoops(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb, T beta, T* c,
               int ldc, Rounding r) {
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      double acc = 0;
      for (int p = 0; p < k; p++) {
        const T av = ta ? a[p + int64_t(i) * lda] : a[i + int64_t(p) * lda];
        const T bv = tb ? b[j + int64_t(p) * ldb] : b[p + int64_t(j) * ldb];
        acc += operand(av, r) * operand(bv, r);
      }
      T& out = c[i + int64_t(j) * ldc];
      out = beta == T(0) ? T(double(alpha) * acc) : T(double(alpha) * acc + double(beta) * double(out));
    }
}

#ifdef INNFLOW_EMU_WITH_BLAS
// Through OpenBLAS (the emulator is then fast enough for whole benchmark workloads): operands to round are copied
// rounded first. BLAS, too, does not read C when beta is 0.
void blasGemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
              float beta, float* c, int ldc) {
  cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc);
}
void blasGemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b, int ldb,
              double beta, double* c, int ldc) {
  cblas_dgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc);
}
template <class T>
std::vector<T> roundedCopy(const T* x, int rows, int cols, int ld, Rounding r) {
  std::vector<T> out(size_t(rows) * size_t(cols));
  for (int j = 0; j < cols; j++)
    for (int i = 0; i < rows; i++) out[i + size_t(j) * rows] = T(operand(x[i + int64_t(j) * ld], r));
  return out;
}
#endif

template <class T>
void gemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda, long long sA, const T* B, int ldb,
          long long sB, T beta, T* C, int ldc, long long sC, int batch, Rounding r) {
  for (int q = 0; q < batch; q++) {
    const T* a = A + q * sA;
    const T* b = B + q * sB;
    T* c = C + q * sC;
#ifdef INNFLOW_EMU_WITH_BLAS
    if (m > 0 && n > 0) {
      if (r == Rounding::None) {
        blasGemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      } else {
        // the stored shapes of A (m × k, or k × m transposed) and B (k × n, or n × k)
        const std::vector<T> ar = roundedCopy(a, ta ? k : m, ta ? m : k, lda, r);
        const std::vector<T> br = roundedCopy(b, tb ? n : k, tb ? k : n, ldb, r);
        blasGemm(ta, tb, m, n, k, alpha, ar.data(), std::max(1, ta ? k : m), br.data(), std::max(1, tb ? n : k), beta, c,
                 ldc);
      }
    }
    continue;
#endif
    gemmLoops(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, r);
  }
}

bool badShape(int m, int n, int k, int lda, int ldb, int ldc, bool ta, bool tb, int batch) {
  if (m < 0 || n < 0 || k < 0 || batch < 0) return true;
  if (ldc < (m > 1 ? m : 1)) return true;
  if (lda < ((ta ? k : m) > 1 ? (ta ? k : m) : 1)) return true;
  if (ldb < ((tb ? n : k) > 1 ? (tb ? n : k) : 1)) return true;
  return false;
}

Rounding roundingFor(cublasComputeType_t c) {
  if (c == CUBLAS_COMPUTE_32F_FAST_TF32) return Rounding::TF32;
  if (c == CUBLAS_COMPUTE_32F_FAST_16BF) return Rounding::BF16;
  return Rounding::None;
}

template <class T>
cublasStatus_t queueGemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const T* alpha,
                         const T* A, int lda, long long sA, const T* B, int ldb, long long sB, const T* beta, T* C, int ldc,
                         long long sC, int batch, Rounding r) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  const bool tA = ta != CUBLAS_OP_N, tB = tb != CUBLAS_OP_N;
  if (badShape(m, n, k, lda, ldb, ldc, tA, tB, batch)) return CUBLAS_STATUS_INVALID_VALUE;
  const T al = *alpha, be = *beta;  // host pointer mode: read at the call
  cudaError_t e = emu::enqueue(h->stream, [=]() {
    gemm<T>(tA, tB, m, n, k, al, A, lda, sA, B, ldb, sB, be, C, ldc, sC, batch, r);
    return cudaSuccess;
  });
  return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new EmuCublas();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void*, size_t) { return CUBLAS_STATUS_SUCCESS; }
const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda, long long sA, const float* B, int ldb,
                                         long long sB, const float* beta, float* C, int ldc, long long sC, int batch) {
  // the handle's math mode: TF32 tensor-op math rounds float32 operands like CUBLAS_COMPUTE_32F_FAST_TF32
  const Rounding r = h && h->math == CUBLAS_TF32_TENSOR_OP_MATH ? Rounding::TF32 : Rounding::None;
  return queueGemm<float>(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch, r);
}
cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                         const double* alpha, const double* A, int lda, long long sA, const double* B,
                                         int ldb, long long sB, const double* beta, double* C, int ldc, long long sC,
                                         int batch) {
  return queueGemm<double>(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch, Rounding::None);
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                          const void* alpha, const void* A, cudaDataType At, int lda, long long sA,
                                          const void* B, cudaDataType Bt, int ldb, long long sB, const void* beta, void* C,
                                          cudaDataType Ct, int ldc, long long sC, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t) {
  if (At != CUDA_R_32F || Bt != CUDA_R_32F || Ct != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32 && compute != CUBLAS_COMPUTE_32F_FAST_16BF &&
      compute != CUBLAS_COMPUTE_32F_PEDANTIC)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  return queueGemm<float>(h, ta, tb, m, n, k, static_cast<const float*>(alpha), static_cast<const float*>(A), lda, sA,
                          static_cast<const float*>(B), ldb, sB, static_cast<const float*>(beta), static_cast<float*>(C),
                          ldc, sC, batch, roundingFor(compute));
}

// ------------------------------------------------------------------------------------------------ cuBLASLt

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = new EmuLt();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
  *desc = new EmuLtDesc{compute, scale};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const void* buf,
                                              size_t size) {
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
      if (size != sizeof(cublasOperation_t)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&d->transA, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_TRANSB:
      if (size != sizeof(cublasOperation_t)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&d->transB, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      if (size != sizeof(cublasLtEpilogue_t)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&d->epilogue, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      if (size != sizeof(void*)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&d->bias, buf, size);
      return CUBLAS_STATUS_SUCCESS;
    default:
      return CUBLAS_STATUS_INVALID_VALUE;
  }
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  if (ld < int64_t(rows)) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = new EmuLtLayout{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  *pref = new EmuLtPreference();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
                                                    const void*, size_t) {
  return CUBLAS_STATUS_SUCCESS;
}

namespace {

// op(A) is m × k, op(B) k × n and D m × n: the layouts must agree, as cuBLASLt checks.
bool ltShapes(const EmuLtDesc* d, const EmuLtLayout* a, const EmuLtLayout* b, const EmuLtLayout* c, uint64_t* m,
              uint64_t* n, uint64_t* k) {
  const uint64_t am = d->transA == CUBLAS_OP_N ? a->rows : a->cols, ak = d->transA == CUBLAS_OP_N ? a->cols : a->rows;
  const uint64_t bk = d->transB == CUBLAS_OP_N ? b->rows : b->cols, bn = d->transB == CUBLAS_OP_N ? b->cols : b->rows;
  if (ak != bk || c->rows != am || c->cols != bn || a->type != b->type || a->type != c->type) return false;
  *m = am;
  *n = bn;
  *k = ak;
  return true;
}

}  // namespace

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t,
                                              cublasLtMatmulPreference_t, int requested,
                                              cublasLtMatmulHeuristicResult_t* results, int* returned) {
  *returned = 0;
  uint64_t m, n, k;
  if (requested < 1 || !ltShapes(d, a, b, c, &m, &n, &k)) return CUBLAS_STATUS_INVALID_VALUE;
  if (std::getenv("INNFLOW_CUDA_EMU_LT_UNSUPPORTED")) return CUBLAS_STATUS_NOT_SUPPORTED;
  std::memset(&results[0], 0, sizeof results[0]);
  results[0].state = CUBLAS_STATUS_SUCCESS;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t d, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t Al, const void* B, cublasLtMatrixLayout_t Bl, const void* beta,
                              const void* C, cublasLtMatrixLayout_t Cl, void* D, cublasLtMatrixLayout_t Dl,
                              const cublasLtMatmulAlgo_t* algo, void*, size_t, cudaStream_t stream) {
  uint64_t m, n, k;
  if (!handle || !algo || !ltShapes(d, Al, Bl, Dl, &m, &n, &k)) return CUBLAS_STATUS_INVALID_VALUE;
  if (C != D || Cl->ld != Dl->ld) return CUBLAS_STATUS_NOT_SUPPORTED;
  const bool bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS || d->epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
  const bool relu = d->epilogue == CUBLASLT_EPILOGUE_RELU || d->epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
  if (bias && !d->bias) return CUBLAS_STATUS_INVALID_VALUE;
  const bool tA = d->transA != CUBLAS_OP_N, tB = d->transB != CUBLAS_OP_N;
  const Rounding r = roundingFor(d->compute);
  const void* biasPtr = d->bias;
  const int lda = int(Al->ld), ldb = int(Bl->ld), ldd = int(Dl->ld);
  auto run = [=](auto zero) {
    using T = decltype(zero);
    const T al = *static_cast<const T*>(alpha), be = *static_cast<const T*>(beta);
    return emu::enqueue(stream, [=]() {
      T* out = static_cast<T*>(D);
      gemm<T>(tA, tB, int(m), int(n), int(k), al, static_cast<const T*>(A), lda, 0, static_cast<const T*>(B), ldb, 0, be,
              out, ldd, 0, 1, r);
      for (uint64_t j = 0; j < n; j++)
        for (uint64_t i = 0; i < m; i++) {
          T& v = out[i + j * uint64_t(ldd)];
          if (bias) v = v + static_cast<const T*>(biasPtr)[i];
          if (relu) v = v > T(0) ? v : T(0);
        }
      return cudaSuccess;
    });
  };
  cudaError_t e = Dl->type == CUDA_R_64F ? run(double(0)) : Dl->type == CUDA_R_32F ? run(float(0)) : cudaErrorInvalidValue;
  return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

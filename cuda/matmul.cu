// The matmul family on the GPU: strided-batched GEMM through cuBLAS (row-major, as the CPU's gemm), products
// over a broadcast batch with their reductions (matmul and its gradients), and the small kernels of linear
// (bias rows, bias gradient). See matmul.h for the table.
//
// gemm(A: [batch] op(A) M×K, B: [batch] op(B) K×N, C: [batch] M×N)   C_b = alpha·op(A_b)·op(B_b) + beta·C_b
// batchedMatmul(A: [aBatch] matrices, B: [bBatch], C: [cBatch]; batch) C[c] = Σ_{i→c} op(A[a(i)])·op(B[b(i)])
// broadcastMid(v: [mid], y: [outer, mid, inner])                     y[o, m, i] = v[m]
// sumOuterInner(x: [outer, mid, inner], out: [mid])                  out[m] (+)= Σ_{o,i} x[o, m, i]
// setMathMode(0 | 1 | 2)                                             float32 GEMM arithmetic: fp32 | TF32 | bf16
// linearActivation(x: [rows, in], w: [out, in], bias: [out] | -, y: [rows, out])  y = act(x·wᵀ + bias)
// activationGrad(g, y, gz: [n])                                      gz = g·act'(z) from y = act(z)
#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "common.cuh"
#include "matmul.h"

using namespace innflow_cuda;

namespace {

// 0 'highest', 1 'high' (TF32), 2 'medium' (bfloat16): float32 GEMMs only.
int gMathMode = 0;

// cuBLAS takes at most this many matrices per strided-batched call here (older releases launch the batch
// on gridDim.y/z); larger batches are split into several calls.
constexpr int64_t kMaxBatchPerCall = 65535;

// ---------------------------------------------------------------------------------------------- scale
// C: [batch] M×N with row stride ldc and batch stride strideC — C = beta·C (zeros when beta = 0, C not read).
template <class T>
__global__ void scaleKernel(T* C, int64_t M, int64_t N, int64_t ldc, int64_t strideC, int64_t batch, T beta) {
  const int64_t n = batch * M * N;
  INNFLOW_GRID_STRIDE(i, n) {
    const int64_t b = i / (M * N), r = (i / N) % M, c = i % N;
    T* p = C + b * strideC + r * ldc + c;
    *p = beta == T(0) ? T(0) : beta * *p;
  }
}

template <class T>
int scaleMatrices(T* C, int64_t M, int64_t N, int64_t ldc, int64_t strideC, int64_t batch, T beta) {
  if (beta == T(1)) return INNFLOW_CUDA_OK;
  if (strideC == 0) batch = 1;  // one matrix shared by the batch: scaled once
  const int64_t n = batch * M * N;
  if (n <= 0) return INNFLOW_CUDA_OK;
  scaleKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(C, M, N, ldc, strideC, batch, beta);
  INNFLOW_LAUNCHED("gemm (scale)");
  return INNFLOW_CUDA_OK;
}

// ---------------------------------------------------------------------------------------------- gemm

cublasStatus_t stridedBatched(cublasOperation_t opB, cublasOperation_t opA, int n, int m, int k, const float* alpha,
                              const float* B, int ldb, long long sB, const float* A, int lda, long long sA,
                              const float* beta, float* C, int ldc, long long sC, int count) {
  if (gMathMode == 0)
    return cublasSgemmStridedBatched(cublas(), opB, opA, n, m, k, alpha, B, ldb, sB, A, lda, sA, beta, C, ldc, sC,
                                     count);
  const cublasComputeType_t compute = gMathMode == 1 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_FAST_16BF;
  return cublasGemmStridedBatchedEx(cublas(), opB, opA, n, m, k, alpha, B, CUDA_R_32F, ldb, sB, A, CUDA_R_32F, lda,
                                    sA, beta, C, CUDA_R_32F, ldc, sC, count, compute, CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t stridedBatched(cublasOperation_t opB, cublasOperation_t opA, int n, int m, int k, const double* alpha,
                              const double* B, int ldb, long long sB, const double* A, int lda, long long sA,
                              const double* beta, double* C, int ldc, long long sC, int count) {
  return cublasDgemmStridedBatched(cublas(), opB, opA, n, m, k, alpha, B, ldb, sB, A, lda, sA, beta, C, ldc, sC,
                                   count);
}

bool fitsInt(int64_t v) { return v >= 0 && v <= int64_t(INT_MAX); }

// Row-major C (M×N, ldc) is column-major Cᵀ (N×M, ldc): Cᵀ = op(B)ᵀ·op(A)ᵀ, where the row-major B (ldb) read
// column-major is Bᵀ, so op(B)ᵀ is cuBLAS's op = transB applied to it, and the same for A.
template <class T>
int gemmT(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          int64_t strideA, const T* B, int64_t ldb, int64_t strideB, T beta, T* C, int64_t ldc, int64_t strideC,
          int64_t batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return INNFLOW_CUDA_OK;
  if (K <= 0 || alpha == T(0)) return scaleMatrices(C, M, N, ldc, strideC, batch, beta);
  // cuBLAS rejects leading dimensions below the row length even where they are never used (one row)
  const int64_t la = std::max<int64_t>({lda, transA ? M : K, 1}), lb = std::max<int64_t>({ldb, transB ? K : N, 1});
  const int64_t lc = std::max<int64_t>({ldc, N, 1});
  if (!fitsInt(M) || !fitsInt(N) || !fitsInt(K) || !fitsInt(la) || !fitsInt(lb) || !fitsInt(lc))
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT,
                       "gemm: sizes beyond cuBLAS's 32-bit limits (M %lld, N %lld, K %lld, lda %lld, ldb %lld, "
                       "ldc %lld)",
                       (long long)M, (long long)N, (long long)K, (long long)la, (long long)lb, (long long)lc);
  const cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxBatchPerCall) {
    const int count = int(std::min(kMaxBatchPerCall, batch - b0));
    INNFLOW_CUBLAS_TRY(stridedBatched(opB, opA, int(N), int(M), int(K), &alpha, B + b0 * strideB, int(lb), strideB,
                                      A + b0 * strideA, int(la), strideA, &beta, C + b0 * strideC, int(lc), strideC,
                                      count));
  }
  return INNFLOW_CUDA_OK;
}

int gemm(int dtype, int transA, int transB, int64_t M, int64_t N, int64_t K, double alpha, const void* A, int64_t lda,
         int64_t strideA, const void* B, int64_t ldb, int64_t strideB, double beta, void* C, int64_t ldc,
         int64_t strideC, int64_t batch) {
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    return gemmT<T>(transA != 0, transB != 0, M, N, K, T(alpha), static_cast<const T*>(A), lda, strideA,
                    static_cast<const T*>(B), ldb, strideB, T(beta), static_cast<T*>(C), ldc, strideC, batch);
  });
}

// ---------------------------------------------------------------------------------------------- batched matmul

// The dims of the batch that a reduction keeps (C's) and sums over, with their strides in the batch's linear
// index. Passed by value.
struct ReduceIndex {
  int kept, summed;
  int64_t keptSize[INNFLOW_CUDA_MAX_DIMS], keptStride[INNFLOW_CUDA_MAX_DIMS];
  int64_t sumSize[INNFLOW_CUDA_MAX_DIMS], sumStride[INNFLOW_CUDA_MAX_DIMS];
  int64_t count;  // products summed into each matrix of C
};

// P: [numel(batch)] M×N products, C: [numel(cBatch)] M×N (mn = M·N each) —
// C[c, e] = Σ_r P[i(c, r), e] over the summed dims in increasing batch index (float32 in double).
template <class T>
__global__ void reduceBatchKernel(const T* P, T* C, int64_t n, int64_t mn, ReduceIndex ri) {
  INNFLOW_GRID_STRIDE(j, n) {
    const int64_t c = j / mn, e = j % mn;
    int64_t base = 0, rem = c;
    for (int d = ri.kept - 1; d >= 0; d--) {
      base += (rem % ri.keptSize[d]) * ri.keptStride[d];
      rem /= ri.keptSize[d];
    }
    double acc = 0.0;
    for (int64_t r = 0; r < ri.count; r++) {
      int64_t i = base, q = r;
      for (int d = ri.summed - 1; d >= 0; d--) {
        i += (q % ri.sumSize[d]) * ri.sumStride[d];
        q /= ri.sumSize[d];
      }
      acc += double(P[i * mn + e]);
    }
    C[j] = T(acc);
  }
}

// One batch dimension of the products, after dropping size-1 dims and merging neighbours: its size and each
// operand's stride (elements; 0 where the operand is broadcast). Operand 2 is the output.
struct BatchDim {
  int64_t size;
  int64_t stride[3];
};

// Element strides of an operand's matrices along each batch dim (0 where it has size 1).
void operandStrides(const int64_t* shape, int ndim, int64_t matrixSize, int64_t* strides) {
  int64_t st = matrixSize;
  for (int d = ndim - 1; d >= 0; d--) {
    strides[d] = shape[d] == 1 ? 0 : st;
    st *= shape[d];
  }
}

// Products P_i = op(A[a(i)])·op(B[b(i)]) written to `out` at out's strides (which never broadcast), as a few
// strided-batched GEMMs: the batch dims are merged where every operand's strides allow, the innermost merged
// dim becomes cuBLAS's batch and the others are looped over here.
template <class T>
int batchProducts(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const T* A, const int64_t* aBatch,
                  const T* B, const int64_t* bBatch, T* out, const int64_t* outBatch, const int64_t* batch, int ndim) {
  int64_t sa[INNFLOW_CUDA_MAX_DIMS], sb[INNFLOW_CUDA_MAX_DIMS], so[INNFLOW_CUDA_MAX_DIMS];
  operandStrides(aBatch, ndim, M * K, sa);
  operandStrides(bBatch, ndim, K * N, sb);
  operandStrides(outBatch, ndim, M * N, so);
  std::vector<BatchDim> dims;  // outermost first
  for (int d = 0; d < ndim; d++)
    if (batch[d] > 1) dims.push_back({batch[d], {sa[d], sb[d], so[d]}});
  std::vector<BatchDim> merged;  // innermost first while building
  for (int d = int(dims.size()) - 1; d >= 0; d--) {
    const BatchDim& cur = dims[size_t(d)];
    if (!merged.empty()) {
      BatchDim& inner = merged.back();
      bool ok = true;
      for (int k = 0; k < 3; k++) ok = ok && cur.stride[k] == inner.stride[k] * inner.size;
      if (ok) {
        inner.size *= cur.size;
        continue;
      }
    }
    merged.push_back(cur);
  }
  std::reverse(merged.begin(), merged.end());  // outermost first
  const int64_t lda = transA ? M : K, ldb = transB ? K : N;
  if (merged.empty())
    return gemmT<T>(transA, transB, M, N, K, T(1), A, lda, 0, B, ldb, 0, T(0), out, N, 0, 1);
  const BatchDim inner = merged.back();
  int64_t outer = 1;
  for (size_t d = 0; d + 1 < merged.size(); d++) outer *= merged[d].size;
  for (int64_t o = 0; o < outer; o++) {
    int64_t offA = 0, offB = 0, offC = 0, rem = o;
    for (int d = int(merged.size()) - 2; d >= 0; d--) {
      const int64_t idx = rem % merged[size_t(d)].size;
      rem /= merged[size_t(d)].size;
      offA += idx * merged[size_t(d)].stride[0];
      offB += idx * merged[size_t(d)].stride[1];
      offC += idx * merged[size_t(d)].stride[2];
    }
    INNFLOW_STATUS_TRY(gemmT<T>(transA, transB, M, N, K, T(1), A + offA, lda, inner.stride[0], B + offB, ldb,
                                inner.stride[1], T(0), out + offC, N, inner.stride[2], inner.size));
  }
  return INNFLOW_CUDA_OK;
}

template <class T>
int batchedMatmulT(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const T* A, const int64_t* aBatch,
                   const T* B, const int64_t* bBatch, T* C, const int64_t* cBatch, const int64_t* batch, int ndim) {
  if (ndim < 0 || ndim > INNFLOW_CUDA_MAX_DIMS)
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "batched matmul: %d batch dimensions (at most %d on the GPU)", ndim,
                       INNFLOW_CUDA_MAX_DIMS);
  int64_t nBatch = 1, nC = 1;
  for (int d = 0; d < ndim; d++) {
    if ((aBatch[d] != 1 && aBatch[d] != batch[d]) || (bBatch[d] != 1 && bBatch[d] != batch[d]) ||
        (cBatch[d] != 1 && cBatch[d] != batch[d]))
      return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "batched matmul: operand batch dim %d does not broadcast to %lld",
                         d, (long long)batch[d]);
    nBatch *= batch[d];
    nC *= cBatch[d];
  }
  const int64_t mn = M * N;
  if (mn <= 0 || nC <= 0) return INNFLOW_CUDA_OK;  // C is empty
  if (nBatch == 0) return scaleMatrices(C, 1, nC * mn, 0, 0, 1, T(0));  // no product reaches C: zeros
  if (nC == nBatch) return batchProducts<T>(transA, transB, M, N, K, A, aBatch, B, bBatch, C, batch, batch, ndim);

  // several products per matrix of C: all of them into scratch, then summed
  Scratch scratch;
  INNFLOW_STATUS_TRY(scratch.alloc(size_t(nBatch * mn) * sizeof(T)));
  T* P = scratch.as<T>();
  INNFLOW_STATUS_TRY(batchProducts<T>(transA, transB, M, N, K, A, aBatch, B, bBatch, P, batch, batch, ndim));
  ReduceIndex ri{};
  int64_t st = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    if (cBatch[d] == batch[d] && batch[d] > 1) {
      ri.keptSize[ri.kept] = batch[d];
      ri.keptStride[ri.kept] = st;
      ri.kept++;
    } else if (batch[d] > 1) {
      ri.sumSize[ri.summed] = batch[d];
      ri.sumStride[ri.summed] = st;
      ri.summed++;
    }
    st *= batch[d];
  }
  // collected innermost first: reverse to outermost first (the kernels decompose from the last entry)
  std::reverse(ri.keptSize, ri.keptSize + ri.kept);
  std::reverse(ri.keptStride, ri.keptStride + ri.kept);
  std::reverse(ri.sumSize, ri.sumSize + ri.summed);
  std::reverse(ri.sumStride, ri.sumStride + ri.summed);
  ri.count = nBatch / nC;
  const int64_t n = nC * mn;
  reduceBatchKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(P, C, n, mn, ri);
  INNFLOW_LAUNCHED("batched matmul (sum over the batch)");
  return INNFLOW_CUDA_OK;
}

int batchedMatmul(int dtype, int transA, int transB, int64_t M, int64_t N, int64_t K, const void* A,
                  const int64_t* aBatch, const void* B, const int64_t* bBatch, void* C, const int64_t* cBatch,
                  const int64_t* batch, int ndim) {
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    return batchedMatmulT<T>(transA != 0, transB != 0, M, N, K, static_cast<const T*>(A), aBatch,
                             static_cast<const T*>(B), bBatch, static_cast<T*>(C), cBatch, batch, ndim);
  });
}

// ---------------------------------------------------------------------------------------------- bias rows

// v: [mid], y: [outer, mid, inner] — y[o, m, i] = v[m]
template <class T>
__global__ void broadcastMidKernel(const T* v, int64_t mid, int64_t inner, int64_t n, T* y) {
  INNFLOW_GRID_STRIDE(i, n) y[i] = v[(i / inner) % mid];
}

int broadcastMid(int dtype, const void* v, int64_t outer, int64_t mid, int64_t inner, void* y) {
  const int64_t n = outer * mid * inner;
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    broadcastMidKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<const T*>(v), mid, inner, n,
                                                               static_cast<T*>(y));
    INNFLOW_LAUNCHED("broadcastMid");
    return INNFLOW_CUDA_OK;
  });
}

// ---------------------------------------------------------------------------------------------- bias gradient
//
// Two passes: the reduced range (outer·inner values per m) is cut into `parts` fixed chunks whose sums land in
// partial: [parts, mid] (double), then each m adds its parts in order. The cut depends only on the sizes.

constexpr int kColTile = 32, kColRows = 8;

// inner = 1. x: [outer, mid] — partial[p, m] = Σ_{o in chunk p} x[o, m]. Block (32, 8): 32 neighbouring
// columns (coalesced reads), 8 rows at a time, the 8 row sums added in a fixed order.
template <class T>
__global__ void columnPartialKernel(const T* x, int64_t outer, int64_t mid, int64_t chunk, double* partial) {
  __shared__ double sums[kColRows][kColTile];
  const int64_t m = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t o0 = int64_t(blockIdx.y) * chunk, o1 = min(outer, o0 + chunk);
  double acc = 0.0;
  if (m < mid)
    for (int64_t o = o0 + threadIdx.y; o < o1; o += kColRows) acc += double(x[o * mid + m]);
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && m < mid) {
    double s = 0.0;
    for (int r = 0; r < kColRows; r++) s += sums[r][threadIdx.x];
    partial[int64_t(blockIdx.y) * mid + m] = s;
  }
}

// inner > 1. x: [outer, mid, inner] — partial[p, m] = Σ_{l in chunk p} x[l / inner, m, l % inner] over
// l in [0, outer·inner). One block per (m, p); a shared-memory tree for the block's 256 sums.
template <class T>
__global__ void innerPartialKernel(const T* x, int64_t outer, int64_t mid, int64_t inner, int64_t chunk,
                                   double* partial) {
  __shared__ double sums[kBlock];
  const int64_t m = blockIdx.x;
  const int64_t L = outer * inner, l0 = int64_t(blockIdx.y) * chunk, l1 = min(L, l0 + chunk);
  double acc = 0.0;
  for (int64_t l = l0 + threadIdx.x; l < l1; l += kBlock) acc += double(x[((l / inner) * mid + m) * inner + l % inner]);
  sums[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[int64_t(blockIdx.y) * mid + m] = sums[0];
}

// partial: [parts, mid], out: [mid] — out[m] = (accumulate ? out[m] : 0) + Σ_p partial[p, m]
template <class T>
__global__ void finishPartialKernel(const double* partial, int64_t parts, int64_t mid, T* out, bool accumulate) {
  INNFLOW_GRID_STRIDE(m, mid) {
    double s = accumulate ? double(out[m]) : 0.0;
    for (int64_t p = 0; p < parts; p++) s += partial[p * mid + m];
    out[m] = T(s);
  }
}

int sumOuterInner(int dtype, const void* x, int64_t outer, int64_t mid, int64_t inner, void* out, int accumulate) {
  if (mid <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    const T* X = static_cast<const T*>(x);
    T* Y = static_cast<T*>(out);
    const int64_t L = std::max<int64_t>(0, outer) * std::max<int64_t>(0, inner);
    if (L == 0) return accumulate ? INNFLOW_CUDA_OK : scaleMatrices(Y, 1, mid, 0, 0, 1, T(0));
    if (inner == 1) {
      const int64_t tiles = (mid + kColTile - 1) / kColTile;
      if (tiles > int64_t(INT_MAX))
        return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "sumOuterInner: %lld columns", (long long)mid);
      // about 256 rows per chunk (32 per thread), at most 1024 chunks
      const int64_t parts = std::min<int64_t>(1024, (outer + 255) / 256);
      const int64_t chunk = (outer + parts - 1) / parts;
      Scratch partial;
      INNFLOW_STATUS_TRY(partial.alloc(size_t(parts * mid) * sizeof(double)));
      columnPartialKernel<T><<<dim3(unsigned(tiles), unsigned(parts)), dim3(kColTile, kColRows), 0, stream()>>>(
          X, outer, mid, chunk, partial.as<double>());
      INNFLOW_LAUNCHED("sumOuterInner (columns)");
      finishPartialKernel<T><<<gridFor(mid), kBlock, 0, stream()>>>(partial.as<double>(), parts, mid, Y,
                                                                     accumulate != 0);
      INNFLOW_LAUNCHED("sumOuterInner (finish)");
      return INNFLOW_CUDA_OK;
    }
    if (mid > int64_t(INT_MAX)) return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "sumOuterInner: mid %lld", (long long)mid);
    // about 4096 values per chunk (16 per thread), at most 1024 chunks
    const int64_t parts = std::min<int64_t>(1024, (L + 4095) / 4096);
    const int64_t chunk = (L + parts - 1) / parts;
    Scratch partial;
    INNFLOW_STATUS_TRY(partial.alloc(size_t(parts * mid) * sizeof(double)));
    innerPartialKernel<T><<<dim3(unsigned(mid), unsigned(parts)), kBlock, 0, stream()>>>(X, outer, mid, inner, chunk,
                                                                                         partial.as<double>());
    INNFLOW_LAUNCHED("sumOuterInner (rows)");
    finishPartialKernel<T><<<gridFor(mid), kBlock, 0, stream()>>>(partial.as<double>(), parts, mid, Y,
                                                                   accumulate != 0);
    INNFLOW_LAUNCHED("sumOuterInner (finish)");
    return INNFLOW_CUDA_OK;
  });
}

// ---------------------------------------------------------------------------------------------- linear + activation
//
// Row-major y = x·wᵀ + b (rows × out) is column-major yᵀ = W·xᵀ + b (out × rows): the row-major w (out × in) read
// column-major is wᵀ (in × out, ld in), taken transposed (op A = T); x read column-major is xᵀ (in × rows, ld in),
// taken as is; the bias is per row of yᵀ, which is what cuBLASLt's BIAS epilogue adds (a vector of m = out values).
// relu rides in the epilogue too (RELU_BIAS / RELU); tanh, which cuBLASLt has no epilogue for, is a kernel after
// the BIAS epilogue. Where cuBLASLt offers no algorithm for the dtype, sizes and pointers (float64 epilogues on
// some releases, no input features, a misaligned bias), the bias rows, gemm and activation kernel run instead.

__device__ inline float actTanh(float v) { return tanhf(v); }
__device__ inline double actTanh(double v) { return tanh(v); }

// y: [n] in place — y = act(y) (relu: y > 0 ? y : 0, tanh).
template <class T>
__global__ void activationKernel(T* y, int64_t n, int act) {
  INNFLOW_GRID_STRIDE(i, n) {
    const T v = y[i];
    y[i] = act == INNFLOW_ACT_RELU ? (v > T(0) ? v : T(0)) : actTanh(v);
  }
}

// g, y, gz: [n] — gz = g where y > 0 (relu), g·(1 − y²) (tanh), g (none).
template <class T>
__global__ void activationGradKernel(const T* g, const T* y, T* gz, int64_t n, int act) {
  INNFLOW_GRID_STRIDE(i, n) {
    const T gi = g[i], yi = y[i];
    gz[i] = act == INNFLOW_ACT_RELU ? (yi > T(0) ? gi : T(0)) : act == INNFLOW_ACT_TANH ? gi * (T(1) - yi * yi) : gi;
  }
}

template <class T>
int applyActivation(T* y, int64_t n, int act) {
  if (act == INNFLOW_ACT_NONE || n <= 0) return INNFLOW_CUDA_OK;
  activationKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(y, n, act);
  INNFLOW_LAUNCHED("linear (activation)");
  return INNFLOW_CUDA_OK;
}

// The largest power of two (up to 256) that the address is a multiple of.
uint32_t alignmentOf(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 1;
  while (al < 256 && a % (al * 2) == 0) al *= 2;
  return al;
}

// The cuBLASLt descriptors of one call, destroyed on every return.
struct LtDescs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDescs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// The heuristic's choice for a problem (or that there was none), kept: the heuristic costs more host time than
// the descriptors, and a captured step replays the same problem.
using LtKey = std::tuple<int, int, int, bool, int64_t, int64_t, int64_t, uint32_t, uint32_t, uint32_t>;
struct LtChoice {
  bool found;
  cublasLtMatmulAlgo_t algo;
};
std::mutex gLtMutex;
std::map<LtKey, LtChoice> gLtChoices;

// y = act(x·wᵀ + bias) through one cuBLASLt matmul with the epilogue; *done = false (nothing run) when cuBLASLt
// has no algorithm for it.
template <class T>
int ltLinear(int act, const T* x, const T* w, const T* bias, int64_t rows, int64_t in, int64_t out, T* y,
             bool* done) {
  *done = false;
  constexpr bool f64 = std::is_same<T, double>::value;
  const cudaDataType_t dataType = f64 ? CUDA_R_64F : CUDA_R_32F;
  // setMatmulPrecision, as gemm: float32 'highest' is full float32 (no TF32), 'high' TF32, 'medium' bfloat16
  const cublasComputeType_t compute = f64 ? CUBLAS_COMPUTE_64F
                                      : gMathMode == 1 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                      : gMathMode == 2 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                                       : CUBLAS_COMPUTE_32F;
  const bool relu = act == INNFLOW_ACT_RELU;
  const cublasLtEpilogue_t epilogue = bias ? (relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                                           : (relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
  const uint32_t alX = alignmentOf(x), alW = alignmentOf(w), alY = alignmentOf(y);

  LtDescs d;
  INNFLOW_CUBLAS_TRY(cublasLtMatmulDescCreate(&d.op, compute, dataType));
  const cublasOperation_t opA = CUBLAS_OP_T, opB = CUBLAS_OP_N;
  INNFLOW_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
  INNFLOW_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));
  INNFLOW_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  if (bias) {
    const void* bp = bias;
    INNFLOW_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof(bp)));
  }
  INNFLOW_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&d.a, dataType, uint64_t(in), uint64_t(out), in));
  INNFLOW_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&d.b, dataType, uint64_t(in), uint64_t(rows), in));
  INNFLOW_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&d.c, dataType, uint64_t(out), uint64_t(rows), out));

  const LtKey key{int(sizeof(T)), int(compute), int(epilogue), bias != nullptr, rows, in, out, alX, alW, alY};
  LtChoice choice{};
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(gLtMutex);
    auto it = gLtChoices.find(key);
    if (it != gLtChoices.end()) {
      choice = it->second;
      known = true;
    }
  }
  if (!known) {
    INNFLOW_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&d.pref));
    const uint64_t ws = cublasLtWorkspaceBytes();
    INNFLOW_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                            sizeof(ws)));
    INNFLOW_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alW,
                                                            sizeof(alW)));
    INNFLOW_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alX,
                                                            sizeof(alX)));
    INNFLOW_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alY,
                                                            sizeof(alY)));
    INNFLOW_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alY,
                                                            sizeof(alY)));
    cublasLtMatmulHeuristicResult_t result;
    std::memset(&result, 0, sizeof(result));
    int count = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(cublasLt(), d.op, d.a, d.b, d.c, d.c, d.pref, 1, &result, &count);
    // NOT_SUPPORTED (or no result): this combination has no kernel; the caller falls back
    if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) INNFLOW_CUBLAS_TRY(st);
    choice.found = st == CUBLAS_STATUS_SUCCESS && count > 0 && result.state == CUBLAS_STATUS_SUCCESS;
    if (choice.found) choice.algo = result.algo;
    std::lock_guard<std::mutex> lock(gLtMutex);
    gLtChoices[key] = choice;
  }
  if (!choice.found) return INNFLOW_CUDA_OK;
  const T alpha = T(1), beta = T(0);
  INNFLOW_CUBLAS_TRY(cublasLtMatmul(cublasLt(), d.op, &alpha, w, d.a, x, d.b, &beta, y, d.c, y, d.c, &choice.algo,
                                    cublasLtWorkspace(), cublasLtWorkspaceBytes(), stream()));
  *done = true;
  return INNFLOW_CUDA_OK;
}

template <class T>
int linearActivationT(int act, const T* x, const T* w, const T* bias, int64_t rows, int64_t in, int64_t out, T* y) {
  if (rows <= 0 || out <= 0) return INNFLOW_CUDA_OK;
  // cuBLASLt wants k ≥ 1; the bias vector 16-byte aligned to be safe with every kernel
  const bool tryLt = in > 0 && (!bias || alignmentOf(bias) >= 16);
  if (tryLt) {
    bool done = false;
    INNFLOW_STATUS_TRY(ltLinear<T>(act, x, w, bias, rows, in, out, y, &done));
    if (done) return act == INNFLOW_ACT_TANH ? applyActivation<T>(y, rows * out, act) : INNFLOW_CUDA_OK;
  }
  // bias rows, the GEMM onto them (beta = 1), then the activation: the unfused path's arithmetic
  if (bias) {
    broadcastMidKernel<T><<<gridFor(rows * out), kBlock, 0, stream()>>>(bias, out, 1, rows * out, y);
    INNFLOW_LAUNCHED("linear (bias rows)");
  }
  INNFLOW_STATUS_TRY(gemmT<T>(false, true, rows, out, in, T(1), x, in, 0, w, in, 0, bias ? T(1) : T(0), y, out, 0, 1));
  return applyActivation<T>(y, rows * out, act);
}

int linearActivation(int dtype, int act, const void* x, const void* w, const void* bias, int64_t rows, int64_t in,
                     int64_t out, void* y) {
  if (act < 0 || act >= INNFLOW_ACT_COUNT)
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "linear: unknown activation code %d", act);
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    return linearActivationT<T>(act, static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias),
                                rows, in, out, static_cast<T*>(y));
  });
}

int activationGrad(int dtype, int act, const void* g, const void* y, int64_t n, void* gz) {
  if (act < 0 || act >= INNFLOW_ACT_COUNT)
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "linear backward: unknown activation code %d", act);
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    activationGradKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<const T*>(g), static_cast<const T*>(y),
                                                                 static_cast<T*>(gz), n, act);
    INNFLOW_LAUNCHED("linear backward (activation gradient)");
    return INNFLOW_CUDA_OK;
  });
}

// ---------------------------------------------------------------------------------------------- math mode

int setMathMode(int mode) {
  if (mode < 0 || mode > 2)
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "matmul math mode must be 0 (highest), 1 (high) or 2 (medium), got %d",
                       mode);
  gMathMode = mode;
  return INNFLOW_CUDA_OK;
}

}  // namespace

extern "C" const InnflowCudaMatmul* innflow_cuda_matmul(void) {
  static const InnflowCudaMatmul table = {gemm,        batchedMatmul,    broadcastMid,  sumOuterInner,
                                          setMathMode, linearActivation, activationGrad};
  return &table;
}

// What every .cu file of the backend shares: the stream and library handles, error recording, launch
// geometry, dtype dispatch, broadcast indexing and scratch buffers.
//
// Error handling: every extern "C" entry point returns an innflow_cuda_status. Use INNFLOW_CUDA_TRY on CUDA
// runtime calls, INNFLOW_CUBLAS_TRY on cuBLAS calls and INNFLOW_LAUNCHED(name) after every kernel launch; each
// records a message (innflow_cuda_last_error) and returns from the entry point.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <type_traits>

#include "backend.h"

namespace innflow_cuda {

// The one stream all work goes to, and the library handles bound to it (created by innflow_cuda_probe).
cudaStream_t stream();
cublasHandle_t cublas();
cublasLtHandle_t cublasLt();
// A workspace for cuBLASLt (32 MiB, allocated once at start-up).
void* cublasLtWorkspace();
size_t cublasLtWorkspaceBytes();

// Records the message for innflow_cuda_last_error() and returns `status`.
int recordError(int status, const char* format, ...);
// Turns a CUDA runtime error into a status (out of memory becomes INNFLOW_CUDA_OOM).
int cudaFailure(cudaError_t err, const char* what, const char* file, int line);
int cublasFailure(cublasStatus_t st, const char* what, const char* file, int line);

#define INNFLOW_CUDA_TRY(expr)                                                       \
  do {                                                                               \
    cudaError_t innflow_err_ = (expr);                                               \
    if (innflow_err_ != cudaSuccess)                                                 \
      return ::innflow_cuda::cudaFailure(innflow_err_, #expr, __FILE__, __LINE__);   \
  } while (0)

#define INNFLOW_CUBLAS_TRY(expr)                                                     \
  do {                                                                               \
    cublasStatus_t innflow_st_ = (expr);                                             \
    if (innflow_st_ != CUBLAS_STATUS_SUCCESS)                                        \
      return ::innflow_cuda::cublasFailure(innflow_st_, #expr, __FILE__, __LINE__);  \
  } while (0)

// After a <<<...>>> launch: a bad configuration is reported here; faults inside the kernel surface at the next
// synchronising call (a device-to-host copy), with CUDA's message.
#define INNFLOW_LAUNCHED(name) INNFLOW_CUDA_TRY(cudaPeekAtLastError())

// Propagates a failed status from a helper that already recorded its message.
#define INNFLOW_STATUS_TRY(expr)          \
  do {                                    \
    int innflow_s_ = (expr);              \
    if (innflow_s_ != INNFLOW_CUDA_OK)    \
      return innflow_s_;                  \
  } while (0)

constexpr int kBlock = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, never more than needed.
inline unsigned gridFor(int64_t n, int block = kBlock) {
  int64_t blocks = (n + block - 1) / block;
  if (blocks < 1) blocks = 1;
  if (blocks > 65535LL * 8) blocks = 65535LL * 8;
  return static_cast<unsigned>(blocks);
}

#define INNFLOW_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

// The sum of v over the block, the same on every thread: a fixed tree (the result does not depend on timing).
// blockDim.x must be a power of two; tree is blockDim.x doubles of shared memory. Every thread must call it.
__device__ inline double blockSum(double v, double* tree) {
  tree[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) tree[threadIdx.x] += tree[threadIdx.x + s];
    __syncthreads();
  }
  const double r = tree[0];
  __syncthreads();  // tree[0] is read before the next sum overwrites it
  return r;
}

// Calls f(T{}) with T = float or double for the ABI's dtype code.
template <class F>
inline int withDtype(int dtype, F&& f) {
  if (dtype == INNFLOW_F32) return f(float{});
  if (dtype == INNFLOW_F64) return f(double{});
  return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "unknown dtype code %d", dtype);
}

// Index arithmetic for broadcasting: for an output linear index, the element offsets of up to 3 operands.
// Passed to kernels by value (it lives in the kernel's parameter space).
struct Broadcast {
  int ndim;
  int64_t shape[INNFLOW_CUDA_MAX_DIMS];
  int64_t strides[3][INNFLOW_CUDA_MAX_DIMS];  // 0 where the operand is broadcast

  __host__ __device__ void offsets(int64_t i, int64_t* off, int operands) const {
    for (int k = 0; k < operands; k++) off[k] = 0;
    for (int d = ndim - 1; d >= 0; d--) {
      int64_t idx = i % shape[d];
      i /= shape[d];
      for (int k = 0; k < operands; k++) off[k] += idx * strides[k][d];
    }
  }
};

// Builds a Broadcast for `out` (ndim dims) from operand shapes right-aligned against it; false if ndim is too large.
bool makeBroadcast(Broadcast* b, const int64_t* outShape, int ndim, const int64_t* const* operandShapes,
                   const int* operandNdims, int operands);

// A stream-ordered scratch buffer from the pool, freed (stream-ordered, so after the kernels that use it)
// when it goes out of scope.
struct Scratch {
  void* ptr = nullptr;
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  int alloc(size_t bytes) { return innflow_cuda_alloc(&ptr, bytes ? bytes : 1); }
  template <class T> T* as() const { return static_cast<T*>(ptr); }
  ~Scratch() {
    if (ptr) innflow_cuda_free(ptr);
  }
};

}  // namespace innflow_cuda

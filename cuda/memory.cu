// Device memory: a stream-ordered caching pool (cudaMallocAsync on the one stream; the pool keeps freed blocks),
// copies between host and device, fill and dtype conversion.
//
// innflow_cuda_alloc(&p, bytes)                      stream-ordered allocation
// innflow_cuda_free(p)                               stream-ordered free (safe right after queuing kernels on p)
// innflow_cuda_copy(dst, src, bytes, kind)           H2D / D2D queued; D2H waits for the stream
// innflow_cuda_fill(dtype, y: [n], n, value)
// innflow_cuda_cast(srcDtype, x: [n], dstDtype, y: [n], n)
#include "common.cuh"

using namespace innflow_cuda;

extern "C" int innflow_cuda_alloc(void** ptr, size_t bytes) {
  *ptr = nullptr;
  cudaError_t err = cudaMallocAsync(ptr, bytes ? bytes : 1, stream());
  if (err == cudaErrorMemoryAllocation) {
    // Give cached blocks back and try once more before reporting out-of-memory.
    cudaGetLastError();
    cudaStreamSynchronize(stream());
    innflow_cuda_empty_cache();
    err = cudaMallocAsync(ptr, bytes ? bytes : 1, stream());
  }
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t freeBytes = 0, totalBytes = 0;
    cudaMemGetInfo(&freeBytes, &totalBytes);
    return recordError(INNFLOW_CUDA_OOM, "out of device memory allocating %zu bytes (%zu of %zu bytes free)", bytes,
                       freeBytes, totalBytes);
  }
  INNFLOW_CUDA_TRY(err);
  return INNFLOW_CUDA_OK;
}

extern "C" int innflow_cuda_free(void* ptr) {
  if (ptr) INNFLOW_CUDA_TRY(cudaFreeAsync(ptr, stream()));
  return INNFLOW_CUDA_OK;
}

extern "C" int innflow_cuda_copy(void* dst, const void* src, size_t bytes, int kind) {
  if (bytes == 0) return INNFLOW_CUDA_OK;
  switch (kind) {
    case INNFLOW_COPY_H2D:
      // From pageable host memory the copy is staged before the call returns, so the caller may free src.
      INNFLOW_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
      return INNFLOW_CUDA_OK;
    case INNFLOW_COPY_D2H:
      INNFLOW_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
      INNFLOW_CUDA_TRY(cudaStreamSynchronize(stream()));
      return INNFLOW_CUDA_OK;
    case INNFLOW_COPY_D2D:
      INNFLOW_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
      return INNFLOW_CUDA_OK;
  }
  return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "unknown copy kind %d", kind);
}

extern "C" int innflow_cuda_synchronize(void) {
  INNFLOW_CUDA_TRY(cudaStreamSynchronize(stream()));
  return INNFLOW_CUDA_OK;
}

extern "C" int innflow_cuda_pool_stats(size_t* usedBytes, size_t* reservedBytes) {
  cudaMemPool_t pool;
  INNFLOW_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, 0));
  uint64_t used = 0, reserved = 0;
  INNFLOW_CUDA_TRY(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used));
  INNFLOW_CUDA_TRY(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved));
  *usedBytes = size_t(used);
  *reservedBytes = size_t(reserved);
  return INNFLOW_CUDA_OK;
}

extern "C" int innflow_cuda_empty_cache(void) {
  cudaMemPool_t pool;
  INNFLOW_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, 0));
  INNFLOW_CUDA_TRY(cudaStreamSynchronize(stream()));
  INNFLOW_CUDA_TRY(cudaMemPoolTrimTo(pool, 0));
  return INNFLOW_CUDA_OK;
}

namespace {

template <class T>
__global__ void fillKernel(T* y, int64_t n, T value) {
  INNFLOW_GRID_STRIDE(i, n) y[i] = value;
}

template <class S, class D>
__global__ void castKernel(const S* x, D* y, int64_t n) {
  INNFLOW_GRID_STRIDE(i, n) y[i] = static_cast<D>(x[i]);
}

}  // namespace

extern "C" int innflow_cuda_fill(int dtype, void* y, int64_t n, double value) {
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    fillKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<T*>(y), n, static_cast<T>(value));
    INNFLOW_LAUNCHED("fill");
    return INNFLOW_CUDA_OK;
  });
}

extern "C" int innflow_cuda_cast(int srcDtype, const void* x, int dstDtype, void* y, int64_t n) {
  if (n <= 0) return INNFLOW_CUDA_OK;
  if (srcDtype == dstDtype)
    return innflow_cuda_copy(y, x, size_t(n) * (srcDtype == INNFLOW_F32 ? 4 : 8), INNFLOW_COPY_D2D);
  return withDtype(srcDtype, [&](auto stag) -> int {
    using S = decltype(stag);
    return withDtype(dstDtype, [&](auto dtag) -> int {
      using D = decltype(dtag);
      castKernel<S, D><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<const S*>(x), static_cast<D*>(y), n);
      INNFLOW_LAUNCHED("cast");
      return INNFLOW_CUDA_OK;
    });
  });
}

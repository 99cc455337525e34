// Device memory: a stream-ordered caching pool (cudaMallocAsync on the one stream; the pool keeps freed blocks),
// copies between host and device, fill and dtype conversion.
//
// innflow_cuda_alloc(&p, bytes)                      stream-ordered allocation
// innflow_cuda_free(p)                               stream-ordered free (safe right after queuing kernels on p)
// innflow_cuda_copy(dst, src, bytes, kind)           H2D (small ones through pinned staging) and D2D queued;
//                                                    D2H waits for the stream
// innflow_cuda_fill(dtype, y: [n], n, value)
// innflow_cuda_cast(srcDtype, x: [n], dstDtype, y: [n], n)
#include <cstring>
#include <vector>

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

namespace {

// Pinned staging for host-to-device copies. A copy from pageable memory may make the driver wait for the stream
// (CUDA's "API synchronization behavior"), which would stall the host behind all queued GPU work at every upload of
// a tensor, an index list or the optimiser's parameter table. Small uploads are therefore copied into a pinned
// block first and sent from there; each block is reused once the event recorded after its copy has completed,
// so the host never waits unless it has more than it can stage in flight.
struct StagingBlock {
  char* data = nullptr;
  size_t bytes = 0;
  cudaEvent_t done = nullptr;
  bool busy = false;
};

constexpr size_t kStagingLimit = size_t(4) << 20;  // larger uploads (data sets) go straight from pageable memory
std::vector<StagingBlock>& stagingBlocks() {
  static std::vector<StagingBlock>* blocks = new std::vector<StagingBlock>();  // lives as long as the process
  return *blocks;
}

// A free pinned block of at least `bytes` (a completed one is reused; otherwise a new one is made).
int takeStagingBlock(size_t bytes, StagingBlock** out) {
  std::vector<StagingBlock>& blocks = stagingBlocks();
  StagingBlock* best = nullptr;
  for (StagingBlock& b : blocks) {
    if (b.busy) {
      cudaError_t q = cudaEventQuery(b.done);
      if (q == cudaErrorNotReady) continue;
      INNFLOW_CUDA_TRY(q);
      b.busy = false;
    }
    if (b.bytes >= bytes && (!best || b.bytes < best->bytes)) best = &b;
  }
  if (!best) {
    StagingBlock b;
    b.bytes = bytes < 4096 ? 4096 : bytes;
    // round to a power of two so that blocks are reused across slightly different sizes
    size_t p = 4096;
    while (p < b.bytes) p <<= 1;
    b.bytes = p;
    INNFLOW_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&b.data), b.bytes));
    cudaError_t err = cudaEventCreateWithFlags(&b.done, cudaEventDisableTiming);
    if (err != cudaSuccess) {
      cudaFreeHost(b.data);
      INNFLOW_CUDA_TRY(err);
    }
    blocks.push_back(b);
    best = &blocks.back();
  }
  *out = best;
  return INNFLOW_CUDA_OK;
}

int uploadStaged(void* dst, const void* src, size_t bytes) {
  StagingBlock* block = nullptr;
  INNFLOW_STATUS_TRY(takeStagingBlock(bytes, &block));
  std::memcpy(block->data, src, bytes);
  INNFLOW_CUDA_TRY(cudaMemcpyAsync(dst, block->data, bytes, cudaMemcpyHostToDevice, stream()));
  INNFLOW_CUDA_TRY(cudaEventRecord(block->done, stream()));
  block->busy = true;
  return INNFLOW_CUDA_OK;
}

}  // namespace

extern "C" int innflow_cuda_copy(void* dst, const void* src, size_t bytes, int kind) {
  if (bytes == 0) return INNFLOW_CUDA_OK;
  switch (kind) {
    case INNFLOW_COPY_H2D:
      // Either way the caller may free src as soon as this returns.
      if (bytes <= kStagingLimit) return uploadStaged(dst, src, bytes);
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

// Device discovery, the stream and library handles, and error recording for the CUDA backend.
//
// innflow_cuda_probe(why, len)         -> 0 | error code, reason in why; creates stream + cuBLAS/cuBLASLt handles
// innflow_cuda_device_name(name, len)  -> 0 | error code
// innflow_cuda_mem_info(&free, &total) -> 0 | error code
// innflow_cuda_last_error()            -> message of the last failure on this thread
#include <cstdarg>
#include <cstring>

#include "common.cuh"

namespace innflow_cuda {
namespace {

cudaStream_t gStream = nullptr;
cublasHandle_t gCublas = nullptr;
cublasLtHandle_t gCublasLt = nullptr;
void* gLtWorkspace = nullptr;
constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;
thread_local char gLastError[512] = "";

void copyReason(char* out, size_t n, const char* text) {
  if (!out || n == 0) return;
  std::snprintf(out, n, "%s", text);
}

}  // namespace

cudaStream_t stream() { return gStream; }
cublasHandle_t cublas() { return gCublas; }
cublasLtHandle_t cublasLt() { return gCublasLt; }
void* cublasLtWorkspace() { return gLtWorkspace; }
size_t cublasLtWorkspaceBytes() { return kLtWorkspaceBytes; }

int recordError(int status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(gLastError, sizeof gLastError, format, args);
  va_end(args);
  return status;
}

int cudaFailure(cudaError_t err, const char* what, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so that later calls are not blamed for it
  int status = err == cudaErrorMemoryAllocation ? INNFLOW_CUDA_OOM : INNFLOW_CUDA_ERROR;
  return recordError(status, "%s (%s) at %s:%d in %s", cudaGetErrorString(err), cudaGetErrorName(err), file, line, what);
}

int cublasFailure(cublasStatus_t st, const char* what, const char* file, int line) {
  int status = st == CUBLAS_STATUS_ALLOC_FAILED ? INNFLOW_CUDA_OOM : INNFLOW_CUDA_ERROR;
  return recordError(status, "cuBLAS status %d (%s) at %s:%d in %s", int(st), cublasGetStatusString(st), file, line, what);
}

bool makeBroadcast(Broadcast* b, const int64_t* outShape, int ndim, const int64_t* const* operandShapes,
                   const int* operandNdims, int operands) {
  if (ndim > INNFLOW_CUDA_MAX_DIMS || operands > 3) return false;
  b->ndim = ndim;
  for (int d = 0; d < INNFLOW_CUDA_MAX_DIMS; d++) {
    b->shape[d] = d < ndim ? outShape[d] : 1;
    for (int k = 0; k < 3; k++) b->strides[k][d] = 0;
  }
  for (int k = 0; k < operands; k++) {
    int64_t stride = 1;
    for (int i = operandNdims[k] - 1; i >= 0; i--) {
      int o = ndim - operandNdims[k] + i;
      if (o < 0) return false;
      b->strides[k][o] = operandShapes[k][i] == 1 ? 0 : stride;
      stride *= operandShapes[k][i];
    }
  }
  return true;
}

}  // namespace innflow_cuda

using namespace innflow_cuda;

extern "C" int innflow_cuda_abi_version(void) { return INNFLOW_CUDA_ABI_VERSION; }

extern "C" const char* innflow_cuda_last_error(void) { return gLastError; }

extern "C" int innflow_cuda_probe(char* why, size_t whyLength) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaErrorInsufficientDriver) {
    copyReason(why, whyLength, "no CUDA driver is installed (or it is older than the CUDA runtime innflow was built with)");
    return 1;
  }
  if (err == cudaErrorNoDevice || (err == cudaSuccess && count == 0)) {
    copyReason(why, whyLength, "no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver)");
    return 2;
  }
  if (err != cudaSuccess) {
    char text[256];
    std::snprintf(text, sizeof text, "the CUDA runtime failed to start: %s", cudaGetErrorString(err));
    copyReason(why, whyLength, text);
    return 3;
  }
  if (gStream == nullptr) {
    err = cudaSetDevice(0);
    if (err == cudaSuccess) err = cudaStreamCreateWithFlags(&gStream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
      char text[256];
      std::snprintf(text, sizeof text, "the CUDA stream could not be created: %s", cudaGetErrorString(err));
      copyReason(why, whyLength, text);
      return 3;
    }
    // Keep freed memory in the stream-ordered pool instead of returning it to the driver at every sync:
    // a training step allocates the same sizes again and again.
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
      uint64_t threshold = UINT64_MAX;
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
    }
  }
  if (gCublas == nullptr) {
    cublasStatus_t status = cublasCreate(&gCublas);
    if (status != CUBLAS_STATUS_SUCCESS) {
      gCublas = nullptr;
      char text[256];
      std::snprintf(text, sizeof text, "cuBLAS could not be initialised (status %d: %s)", int(status), cublasGetStatusString(status));
      copyReason(why, whyLength, text);
      return 4;
    }
    cublasSetStream(gCublas, gStream);
    // 'highest' precision: no TF32 unless asked for (setMatmulPrecision).
    cublasSetMathMode(gCublas, CUBLAS_DEFAULT_MATH);
  }
  if (gCublasLt == nullptr) {
    cublasStatus_t status = cublasLtCreate(&gCublasLt);
    if (status != CUBLAS_STATUS_SUCCESS) {
      gCublasLt = nullptr;
      char text[256];
      std::snprintf(text, sizeof text, "cuBLASLt could not be initialised (status %d)", int(status));
      copyReason(why, whyLength, text);
      return 4;
    }
    if (cudaMalloc(&gLtWorkspace, kLtWorkspaceBytes) != cudaSuccess) {
      copyReason(why, whyLength, "could not allocate the 32 MiB cuBLASLt workspace on the device");
      return 5;
    }
    // cuBLAS uses the same workspace (calls are ordered on the one stream): eager calls and calls captured in a
    // compiled step's CUDA graph, which must not allocate one, then choose the same kernels.
    cublasSetWorkspace(gCublas, gLtWorkspace, kLtWorkspaceBytes);
  }
  copyReason(why, whyLength, "");
  return 0;
}

extern "C" int innflow_cuda_device_name(char* name, size_t nameLength) {
  cudaDeviceProp prop;
  cudaError_t err = cudaGetDeviceProperties(&prop, 0);
  if (err != cudaSuccess) return int(err);
  copyReason(name, nameLength, prop.name);
  return 0;
}

extern "C" int innflow_cuda_mem_info(size_t* freeBytes, size_t* totalBytes) {
  cudaError_t err = cudaMemGetInfo(freeBytes, totalBytes);
  return err == cudaSuccess ? 0 : int(err);
}

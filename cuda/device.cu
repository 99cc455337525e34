// Device discovery for the CUDA backend: whether a driver, a device and cuBLAS are usable, and why not.
//
// innflow_cuda_probe(why, len)        -> 0 | error code, reason in why
// innflow_cuda_device_name(name, len) -> 0 | error code
// innflow_cuda_mem_info(&free, &total) -> 0 | error code
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>

#include "backend.h"

namespace {

void copyReason(char* out, size_t n, const char* text) {
  if (!out || n == 0) return;
  std::snprintf(out, n, "%s", text);
}

}  // namespace

extern "C" int innflow_cuda_abi_version(void) { return INNFLOW_CUDA_ABI_VERSION; }

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
  cublasHandle_t handle = nullptr;
  cublasStatus_t status = cublasCreate(&handle);
  if (status != CUBLAS_STATUS_SUCCESS) {
    char text[256];
    std::snprintf(text, sizeof text, "cuBLAS could not be initialised (status %d)", int(status));
    copyReason(why, whyLength, text);
    return 4;
  }
  cublasDestroy(handle);
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

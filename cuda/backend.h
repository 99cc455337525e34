// The interface between the addon (native/) and the CUDA backend library (libinnflow_cuda.so), which the
// addon opens with dlopen at run time, so that the addon loads on machines without a GPU, a driver or
// cuBLAS. Plain C, so that the two sides can be built by different compilers.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INNFLOW_CUDA_ABI_VERSION 1

// The ABI version the library was built with (the addon refuses a library of another version).
int innflow_cuda_abi_version(void);

// 0 when a usable device is present (driver, device and a working cuBLAS handle); otherwise a non-zero
// code and the reason in `why` ("no CUDA driver is installed", "no CUDA device is visible", ...).
int innflow_cuda_probe(char* why, size_t whyLength);

// The name of device 0 (after a successful probe).
int innflow_cuda_device_name(char* name, size_t nameLength);

// Free and total device memory in bytes (after a successful probe).
int innflow_cuda_mem_info(size_t* freeBytes, size_t* totalBytes);

#ifdef __cplusplus
}
#endif

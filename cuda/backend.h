// The interface between the addon (native/) and the CUDA backend library (libinnflow_cuda.so), which the
// addon opens with dlopen. Plain C, so that the two sides can be built by different compilers.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INNFLOW_CUDA_ABI_VERSION 1

// Returns 0 when a usable device is present; otherwise a non-zero code and a reason in `why`
// ("no CUDA driver", "no CUDA device", "cuBLAS could not be loaded", ...).
int innflow_cuda_probe(char* why, size_t whyLength);
int innflow_cuda_abi_version(void);

#ifdef __cplusplus
}
#endif

// The interface between the addon (native/) and the CUDA backend library (libinnflow_cuda.so), which the
// addon opens with dlopen at run time, so that the addon loads on machines without a GPU, a driver or
// cuBLAS. Plain C, so that the two sides can be built by different compilers.
//
// Conventions shared by every function of the library, including the op-family tables (cuda/<family>.h):
// - every function returns an innflow_cuda_status; on failure innflow_cuda_last_error() says what failed
//   (per thread) and the addon turns it into an InnflowError (ERR_OOM, or ERR_DEVICE for any other CUDA error);
// - all device work is queued on one stream (innflow_cuda_stream); nothing synchronises with the host except
//   innflow_cuda_copy(..., INNFLOW_COPY_D2H) and innflow_cuda_synchronize;
// - dtype is 0 for float32 and 1 for float64 (innflow::DType); tensors are contiguous and row-major.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INNFLOW_CUDA_ABI_VERSION 4

typedef enum { INNFLOW_CUDA_OK = 0, INNFLOW_CUDA_ERROR = 1, INNFLOW_CUDA_OOM = 2, INNFLOW_CUDA_BAD_ARGUMENT = 3 } innflow_cuda_status;
typedef enum { INNFLOW_F32 = 0, INNFLOW_F64 = 1 } innflow_cuda_dtype;
typedef enum { INNFLOW_COPY_H2D = 0, INNFLOW_COPY_D2H = 1, INNFLOW_COPY_D2D = 2 } innflow_cuda_copy_kind;

// The most dimensions a broadcasting or permuting kernel handles on the GPU (the addon checks first).
#define INNFLOW_CUDA_MAX_DIMS 8

// ---- device discovery (device.cu)

// The ABI version the library was built with (the addon refuses a library of another version).
int innflow_cuda_abi_version(void);

// 0 when a usable device is present (driver, device and a working cuBLAS handle); otherwise a non-zero
// code and the reason in `why` ("no CUDA driver is installed", "no CUDA device is visible", ...).
// On success it also creates the stream, the cuBLAS/cuBLASLt handles and configures the memory pool.
int innflow_cuda_probe(char* why, size_t whyLength);

// The name of device 0 (after a successful probe).
int innflow_cuda_device_name(char* name, size_t nameLength);

// Free and total device memory in bytes (after a successful probe).
int innflow_cuda_mem_info(size_t* freeBytes, size_t* totalBytes);

// The message of the last failed call on this thread ("" when none).
const char* innflow_cuda_last_error(void);

// ---- memory (memory.cu): a stream-ordered caching pool (cudaMallocAsync with an unlimited release threshold)

int innflow_cuda_alloc(void** ptr, size_t bytes);
int innflow_cuda_free(void* ptr);
int innflow_cuda_copy(void* dst, const void* src, size_t bytes, int kind);
int innflow_cuda_synchronize(void);
// Bytes handed out and bytes held by the pool (reserved); empty_cache returns unused pool memory to the driver.
int innflow_cuda_pool_stats(size_t* usedBytes, size_t* reservedBytes);
int innflow_cuda_empty_cache(void);
// y[i] = value, for n elements of dtype.
int innflow_cuda_fill(int dtype, void* y, int64_t n, double value);
// y[i] = (dstDtype) x[i]: dtype conversion (or a plain copy when the dtypes agree).
int innflow_cuda_cast(int srcDtype, const void* x, int dstDtype, void* y, int64_t n);

// ---- graphs (graph.cu): the static stretches of a compiled training step (native/capture.h)

// Starts capturing the stream: until innflow_cuda_graph_end, work queued on it is recorded, not run.
int innflow_cuda_graph_begin(void);
// Ends the capture and instantiates the graph; *graph is an opaque executable graph.
int innflow_cuda_graph_end(void** graph);
// Ends a capture that failed half-way and discards it.
int innflow_cuda_graph_abort(void);
// Queues one replay of the graph on the stream.
int innflow_cuda_graph_launch(void* graph);
int innflow_cuda_graph_destroy(void* graph);

#ifdef __cplusplus
}
#endif

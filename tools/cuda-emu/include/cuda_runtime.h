// The CUDA runtime as the emulator provides it: the subset of the API that cuda/*.cu uses, and the device-side
// built-ins (threadIdx, __syncthreads, __shfl_down_sync, the rounding intrinsics) for code compiled as host C++.
// See tools/cuda-emu/README.md: kernels run on the CPU, one block at a time, each thread of a block a fiber that
// switches at barriers; memory is host memory; the one stream runs work at once, or records it while capturing.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "library_types.h"

// ---- keywords of CUDA C++ that mean nothing (or `static`) in host C++
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// One block runs at a time on the emulator's thread, so a block's shared variables can be function statics.
#define __shared__ static
#define __constant__

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};

// ---- errors, streams, events, graphs, memory pools
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureWrongThread = 908,
  cudaErrorIllegalState = 401,
  cudaErrorUnknown = 999,
};

typedef struct EmuStream* cudaStream_t;
typedef struct EmuEvent* cudaEvent_t;
typedef struct EmuGraph* cudaGraph_t;
typedef struct EmuGraphExec* cudaGraphExec_t;
typedef struct EmuMemPool* cudaMemPool_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1, cudaStreamCaptureStatusInvalidated = 2 };
enum cudaMemPoolAttr {
  cudaMemPoolReuseFollowEventDependencies = 1,
  cudaMemPoolReuseAllowOpportunistic = 2,
  cudaMemPoolReuseAllowInternalDependencies = 3,
  cudaMemPoolAttrReleaseThreshold = 4,
  cudaMemPoolAttrReservedMemCurrent = 5,
  cudaMemPoolAttrReservedMemHigh = 6,
  cudaMemPoolAttrUsedMemCurrent = 7,
  cudaMemPoolAttrUsedMemHigh = 8
};
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
  int multiProcessorCount;
  int maxThreadsPerBlock;
  size_t sharedMemPerBlock;
};

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes);
const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaDeviceSynchronize(void);

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventSynchronize(cudaEvent_t event);

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t stream);
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value);
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value);
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, size_t minBytesToKeep);

// ---- the emulator's side of kernel launches and of the device built-ins
namespace emu {

// The running thread of the running block (the emulator's fiber scheduler sets it).
struct ThreadContext {
  uint3 threadIdx, blockIdx;
  dim3 blockDim, gridDim;
  unsigned linear;  // threadIdx.x + blockDim.x · (threadIdx.y + blockDim.y · threadIdx.z)
};
extern ThreadContext* current;  // kernels run one at a time, under the emulator's lock

// Waits for every thread of the block (__syncthreads); returns the AND (or count) of the values the threads passed.
int blockBarrier(int value);
// Exchanges an 8-byte value within the warp: returns the value the lane `src` passed (its own when src is out of range).
uint64_t warpExchange(uint64_t value, int src);
unsigned laneId();

struct Config {
  dim3 grid, block;
  size_t sharedBytes;
  cudaStream_t stream;
  Config(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), sharedBytes(s), stream(st) {}
};

// Queues (or records, while capturing) one launch: `body` runs once per thread, with `current` set.
// `kernel` names the launch ("name at file:line") for the emulator's messages.
void launchKernel(const char* kernel, const Config& config, std::function<void()> body);

template <class... P>
struct Launch {
  void (*kernel)(P...);
  const char* name;
  const Config* config = nullptr;
  Launch& operator[](const Config& c) {
    config = &c;
    return *this;
  }
  // Arguments convert to the kernel's parameter types as in a call, and are copied (kernel parameters live in the
  // launch, not in the caller's variables: a captured graph replays them as they were).
  template <class... A>
  void operator()(A&&... args) {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    void (*fn)(P...) = kernel;
    launchKernel(name, *config, [fn, params]() { std::apply(fn, params); });
  }
};
template <class... P>
Launch<P...> launcher(void (*kernel)(P...), const char* name) {
  return Launch<P...>{kernel, name};
}

template <class T>
inline T bitCast(const void* p) {
  T v;
  memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace emu

#define threadIdx (::emu::current->threadIdx)
#define blockIdx (::emu::current->blockIdx)
#define blockDim (::emu::current->blockDim)
#define gridDim (::emu::current->gridDim)
#define warpSize 32

inline void __syncthreads() { ::emu::blockBarrier(1); }
inline int __syncthreads_and(int p) { return ::emu::blockBarrier(p != 0); }

template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "__shfl_down_sync: 8-byte values at most");
  (void)mask;
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof v);
  const unsigned lane = ::emu::laneId();
  const unsigned segment = lane / unsigned(width) * unsigned(width);
  const int src = (lane - segment + delta < unsigned(width)) ? int(lane + delta) : int(lane);
  uint64_t got = ::emu::warpExchange(bits, src);
  T r;
  memcpy(&r, &got, sizeof r);
  return r;
}

// Device min/max as CUDA overloads them (mixed integer widths included).
template <class A, class B>
inline typename std::common_type<A, B>::type min(A a, B b) {
  typedef typename std::common_type<A, B>::type C;
  return C(b) < C(a) ? C(b) : C(a);
}
template <class A, class B>
inline typename std::common_type<A, B>::type max(A a, B b) {
  typedef typename std::common_type<A, B>::type C;
  return C(a) < C(b) ? C(b) : C(a);
}

// Correctly rounded intrinsics: the emulator is built with -ffp-contract=off, so these are the plain operations.
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __longlong_as_double(long long v) { return ::emu::bitCast<double>(&v); }
inline long long __double_as_longlong(double v) { return ::emu::bitCast<long long>(&v); }
inline float __int_as_float(int v) { return ::emu::bitCast<float>(&v); }
inline int __float_as_int(float v) { return ::emu::bitCast<int>(&v); }
using std::isinf;
using std::isnan;

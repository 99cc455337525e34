// The emulator's CUDA runtime: one device, one in-order stream whose work runs at once (or is recorded while the
// stream captures a graph), memory from the host heap, and kernels run block by block on the calling thread.
//
// What it checks as CUDA would, so that a bug shows here before it costs GPU time:
// - launch configurations (block and grid limits) fail with cudaErrorInvalidConfiguration, as on the GPU;
// - memory from cudaMalloc/cudaMallocAsync is filled with 0xFF bytes (a NaN in every float), not zeros, so a kernel
//   that reads what it never wrote shows it;
// - while a stream captures, its work is recorded, not run; synchronising it fails the capture
//   (cudaErrorStreamCaptureUnsupported) and so does work on the legacy default stream; memory allocated during a
//   capture belongs to the graph (one address, live from a launch until freed, and a graph whose allocation is still
//   live cannot be launched again); a graph replays its copies from the host addresses recorded at capture;
// - __syncthreads and warp shuffles wait for the threads they name; a barrier that not every live thread of the
//   block reaches stops the process with the kernel's name (a deadlock on the GPU);
// - INNFLOW_CUDA_EMU_ORDER=reverse runs blocks and threads in the opposite order, to expose order-dependent kernels.
//
// Each thread of a block runs as a fiber (its own stack, switched by a few instructions: x86-64 only) that gives way
// only at barriers, so threads run one after another until one waits for the others.
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda_runtime.h"

// the device built-ins are macros over emu::current; here they are the names of fields
#undef threadIdx
#undef blockIdx
#undef blockDim
#undef gridDim

struct EmuEvent {};
struct EmuMemPool {
  uint64_t releaseThreshold = 0;
};

namespace emu {
namespace {

[[noreturn]] void fatal(const char* what, const char* kernel) {
  std::fprintf(stderr, "cuda-emu: %s (kernel %s)\n", what, kernel ? kernel : "?");
  std::fflush(stderr);
  std::abort();
}

using Node = std::function<cudaError_t()>;

// Memory allocated while a graph was being captured: it has one address for the graph's life and is live from a
// launch of the graph until freed.
struct GraphAllocation {
  size_t bytes = 0;
  bool live = false;
  bool orphaned = false;  // the graph is gone; free it once it is not live
};

struct Graph {
  std::vector<Node> nodes;
  std::vector<void*> allocations;  // owned by the graph
  ~Graph();
};

}  // namespace
}  // namespace emu

struct EmuStream {
  bool capturing = false;
  bool invalidated = false;
  std::shared_ptr<emu::Graph> capture;
};
struct EmuGraph {
  std::shared_ptr<emu::Graph> graph;
};
struct EmuGraphExec {
  std::shared_ptr<emu::Graph> graph;
};

#if !defined(__x86_64__)
#error "the CUDA emulator's fibers are written for x86-64"
#endif

// Saves the callee-saved registers on the running stack, stores its stack pointer in *from, continues on the stack `to`
// (where a switch saved its registers, or which fiberStack prepared). glibc's swapcontext would also save the signal
// mask, a system call per switch; a kernel with a barrier per step switches millions of times.
extern "C" void innflow_emu_switch(void** from, void* to);
asm(R"(
  .text
  .globl innflow_emu_switch
  .hidden innflow_emu_switch
  .type innflow_emu_switch, @function
innflow_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size innflow_emu_switch, .-innflow_emu_switch
)");

namespace emu {

ThreadContext* current = nullptr;

namespace {

std::recursive_mutex gMutex;
thread_local cudaError_t gLastError = cudaSuccess;
EmuMemPool gPool;
std::vector<EmuStream*> gStreams;
std::unordered_map<void*, size_t> gAllocations;          // device memory handed out, with its size in bytes
std::unordered_map<void*, GraphAllocation> gGraphAllocs;  // the part of it that belongs to graphs
uint64_t gUsedBytes = 0;
constexpr uint64_t kTotalBytes = uint64_t(16) << 30;

cudaError_t fail(cudaError_t err) {
  gLastError = err;
  return err;
}

EmuStream* capturingStream() {
  for (EmuStream* s : gStreams)
    if (s->capturing) return s;
  return nullptr;
}

// Runs `op` now, or records it when `stream` is capturing. Work on the legacy default stream while another
// stream captures is an implicit synchronisation with it, which invalidates the capture, as on the GPU.
cudaError_t submit(cudaStream_t stream, Node op) {
  if (stream == nullptr) {
    if (EmuStream* s = capturingStream()) {
      s->invalidated = true;
      return fail(cudaErrorStreamCaptureUnsupported);
    }
    return op();
  }
  if (stream->capturing) {
    if (stream->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
    stream->capture->nodes.push_back(std::move(op));
    return cudaSuccess;
  }
  return op();
}

// Exactly `bytes` (at least 1), 256-byte aligned like cudaMalloc, so that a build with -fsanitize=address sees an
// access one element past the end; the pool's statistics count 256-byte granules.
void* allocateBytes(size_t bytes) {
  const size_t exact = bytes ? bytes : 1, rounded = (exact + 255) / 256 * 256;
  if (gUsedBytes + rounded > kTotalBytes) return nullptr;
  void* p = nullptr;
  if (posix_memalign(&p, 256, exact) != 0) return nullptr;
  std::memset(p, 0xFF, exact);
  gAllocations[p] = exact;
  gUsedBytes += rounded;
  return p;
}

void releaseBytes(void* p) {
  auto it = gAllocations.find(p);
  gUsedBytes -= (it->second + 255) / 256 * 256;
  gAllocations.erase(it);
  std::free(p);
}

// A graph's memory goes with it; what a launch left allocated goes when it is freed.
Graph::~Graph() {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  for (void* p : allocations) {
    GraphAllocation& a = gGraphAllocs[p];
    if (a.live) {
      a.orphaned = true;
    } else {
      gGraphAllocs.erase(p);
      releaseBytes(p);
    }
  }
}

// ---------------------------------------------------------------------------------------------- kernels

constexpr size_t kStackBytes = 128 << 10;
constexpr int kMaxThreads = 1024;

struct Fiber {
  enum State { Ready, AtBlockBarrier, AtWarpBarrier, Done };
  void* sp = nullptr;
  State state = Ready;
  ThreadContext thread;
  int value = 0;
  uint64_t exchange = 0;
  int source = 0;
};

struct BlockRun {
  const std::function<void()>* body = nullptr;
  const char* kernel = nullptr;  // "name at file:line" of the launch
  int threads = 0;
  int blockResult = 0;
  void* scheduler = nullptr;
  std::vector<Fiber> fiber;
  char* stacks = nullptr;
};

BlockRun gRun;

// INNFLOW_CUDA_EMU_ORDER=reverse runs the blocks of a grid, and the threads of a block between two barriers, last
// first: a kernel whose result depends on the order (a missing __syncthreads, blocks reading what other blocks
// write) then gives another answer than in the default order.
bool reversed() {
  static const bool r = [] {
    const char* v = std::getenv("INNFLOW_CUDA_EMU_ORDER");
    return v && std::string(v) == "reverse";
  }();
  return r;
}

Fiber& runningFiber() { return gRun.fiber[current->linear]; }

// Where a fiber starts (innflow_emu_switch "returns" into it); it never returns: once the thread is done it switches
// to the scheduler for good.
void fiberMain() {
  (*gRun.body)();
  Fiber& f = runningFiber();
  f.state = Fiber::Done;
  innflow_emu_switch(&f.sp, gRun.scheduler);
  fatal("a finished fiber was resumed", gRun.kernel);
}

// A fresh stack for innflow_emu_switch to continue on: six zero registers, then fiberMain as the return address, placed
// so that fiberMain starts with the stack aligned as after a call.
void* fiberStack(char* base) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(base) + kStackBytes) & ~uintptr_t(15);
  void** ret = reinterpret_cast<void**>(top - 16);
  *ret = reinterpret_cast<void*>(&fiberMain);
  void** sp = ret - 6;
  for (int i = 0; i < 6; i++) sp[i] = nullptr;
  return sp;
}

void yieldToScheduler() {
  Fiber& f = runningFiber();
  innflow_emu_switch(&f.sp, gRun.scheduler);
}

void runBlockFibers(const ThreadContext& base) {
  const int n = gRun.threads;
  for (int t = 0; t < n; t++) {
    Fiber& f = gRun.fiber[t];
    f.state = Fiber::Ready;
    f.thread = base;
    f.thread.threadIdx = uint3{unsigned(t) % base.blockDim.x, unsigned(t) / base.blockDim.x % base.blockDim.y,
                               unsigned(t) / (base.blockDim.x * base.blockDim.y)};
    f.thread.linear = unsigned(t);
    f.sp = fiberStack(gRun.stacks + size_t(t) * kStackBytes);
  }
  for (;;) {
    bool ran = false;
    for (int k = 0; k < n; k++) {
      Fiber& f = gRun.fiber[reversed() ? n - 1 - k : k];
      if (f.state != Fiber::Ready) continue;
      current = &f.thread;
      innflow_emu_switch(&gRun.scheduler, f.sp);
      ran = true;
    }
    int done = 0, atBlock = 0;
    for (int t = 0; t < n; t++) {
      done += gRun.fiber[t].state == Fiber::Done;
      atBlock += gRun.fiber[t].state == Fiber::AtBlockBarrier;
    }
    if (done == n) break;
    bool released = false;
    if (atBlock > 0 && atBlock + done == n) {
      int all = 1;
      for (int t = 0; t < n; t++)
        if (gRun.fiber[t].state == Fiber::AtBlockBarrier) all &= gRun.fiber[t].value;
      gRun.blockResult = all;
      for (int t = 0; t < n; t++)
        if (gRun.fiber[t].state == Fiber::AtBlockBarrier) gRun.fiber[t].state = Fiber::Ready;
      released = true;
    }
    for (int w = 0; w * 32 < n; w++) {
      const int t0 = w * 32, t1 = std::min(n, t0 + 32);
      int waiting = 0, live = 0;
      for (int t = t0; t < t1; t++) {
        live += gRun.fiber[t].state != Fiber::Done;
        waiting += gRun.fiber[t].state == Fiber::AtWarpBarrier;
      }
      if (waiting == 0 || waiting != live) continue;
      uint64_t values[32];
      for (int t = t0; t < t1; t++) values[t - t0] = gRun.fiber[t].exchange;
      for (int t = t0; t < t1; t++) {
        Fiber& f = gRun.fiber[t];
        if (f.state != Fiber::AtWarpBarrier) continue;
        const int src = f.source;
        const bool valid = src >= t0 && src < t1 && gRun.fiber[src].state == Fiber::AtWarpBarrier;
        f.exchange = valid ? values[src - t0] : f.exchange;
        f.state = Fiber::Ready;
      }
      released = true;
    }
    if (!ran && !released) fatal("deadlock: some threads of a block wait at a barrier that others never reach", gRun.kernel);
  }
}

cudaError_t runKernel(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  if (gRun.stacks == nullptr) {
    void* m = mmap(nullptr, kStackBytes * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) fatal("cannot map the fiber stacks", kernel);
    gRun.stacks = static_cast<char*>(m);
    gRun.fiber.resize(kMaxThreads);
  }
  gRun.body = &body;
  gRun.kernel = kernel;
  gRun.threads = int(block.x * block.y * block.z);
  ThreadContext base;
  base.blockDim = block;
  base.gridDim = grid;
  ThreadContext* saved = current;
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  for (uint64_t k = 0; k < blocks; k++) {
    const uint64_t b = reversed() ? blocks - 1 - k : k;
    base.blockIdx = uint3{unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / (uint64_t(grid.x) * grid.y))};
    runBlockFibers(base);
  }
  current = saved;
  return cudaSuccess;
}

}  // namespace

int blockBarrier(int value) {
  Fiber& f = runningFiber();
  f.state = Fiber::AtBlockBarrier;
  f.value = value;
  yieldToScheduler();
  return gRun.blockResult;
}

uint64_t warpExchange(uint64_t value, int src) {
  Fiber& f = runningFiber();
  f.state = Fiber::AtWarpBarrier;
  f.exchange = value;
  f.source = int(current->linear / 32 * 32) + src;  // src is a lane of this warp

  yieldToScheduler();
  return f.exchange;
}

unsigned laneId() { return current->linear % 32; }

void launchKernel(const char* kernel, const Config& config, std::function<void()> body) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  const dim3 g = config.grid, b = config.block;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  if (b.x == 0 || b.y == 0 || b.z == 0 || g.x == 0 || g.y == 0 || g.z == 0 || b.x > 1024 || b.y > 1024 || b.z > 64 ||
      threads > kMaxThreads || g.x > 2147483647u || g.y > 65535 || g.z > 65535 || config.sharedBytes > 48 * 1024) {
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  submit(config.stream, [kernel, g, b, body]() { return runKernel(kernel, g, b, body); });
}

}  // namespace emu

using namespace emu;

// ------------------------------------------------------------------------------------------- device, errors

cudaError_t cudaGetDeviceCount(int* count) {
  *count = std::getenv("INNFLOW_CUDA_EMU_NO_DEVICE") ? 0 : 1;
  return *count ? cudaSuccess : cudaErrorNoDevice;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "CUDA emulator (CPU)");
  prop->totalGlobalMem = kTotalBytes;
  prop->major = 9;
  prop->multiProcessorCount = 1;
  prop->maxThreadsPerBlock = 1024;
  prop->sharedMemPerBlock = 48 * 1024;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  *freeBytes = kTotalBytes - gUsedBytes;
  *totalBytes = kTotalBytes;
  return cudaSuccess;
}
const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorIllegalState: return "the graph's memory is still allocated from its previous launch";
    default: return cudaGetErrorName(err);
  }
}
cudaError_t cudaGetLastError(void) {
  cudaError_t e = gLastError;
  gLastError = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return gLastError; }
cudaError_t cudaDeviceSynchronize(void) { return capturingStream() ? fail(cudaErrorStreamCaptureUnsupported) : cudaSuccess; }

// ------------------------------------------------------------------------------------------- streams, events

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  *stream = new EmuStream();
  gStreams.push_back(*stream);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  for (size_t i = 0; i < gStreams.size(); i++)
    if (gStreams[i] == stream) gStreams.erase(gStreams.begin() + long(i));
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  EmuStream* s = stream ? stream : capturingStream();
  if (s && s->capturing) {
    s->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  if (!stream || stream->capturing) return fail(cudaErrorIllegalState);
  stream->capturing = true;
  stream->invalidated = false;
  stream->capture = std::make_shared<Graph>();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  *graph = nullptr;
  if (!stream || !stream->capturing) return fail(cudaErrorIllegalState);
  stream->capturing = false;
  std::shared_ptr<Graph> g = std::move(stream->capture);
  if (stream->invalidated) {
    stream->invalidated = false;
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = new EmuGraph{std::move(g)};
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  if (!stream) {
    *status = cudaStreamCaptureStatusNone;
    return cudaSuccess;
  }
  *status = !stream->capturing ? cudaStreamCaptureStatusNone
            : stream->invalidated ? cudaStreamCaptureStatusInvalidated
                                  : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  *event = new EmuEvent();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  (void)event;
  return submit(stream, []() { return cudaSuccess; });
}
// Work runs when it is queued, so every recorded event has completed (one recorded in a capture, too: the emulator
// does not track which graph node it belongs to).
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }

// ------------------------------------------------------------------------------------------------- graphs

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!graph) return fail(cudaErrorInvalidValue);
  *exec = new EmuGraphExec{graph->graph};
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  if (!exec) return fail(cudaErrorInvalidResourceHandle);
  std::shared_ptr<Graph> g = exec->graph;
  cudaError_t err = submit(stream, [g]() {
    for (void* p : g->allocations)
      if (gGraphAllocs[p].live) return fail(cudaErrorIllegalState);
    for (const Node& node : g->nodes) {
      cudaError_t e = node();
      if (e != cudaSuccess) return fail(e);
    }
    return cudaSuccess;
  });
  return err;
}

// ------------------------------------------------------------------------------------------------- memory

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  *ptr = allocateBytes(bytes);
  return *ptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* ptr) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  if (!ptr) return cudaSuccess;
  if (!gAllocations.count(ptr) || gGraphAllocs.count(ptr)) return fail(cudaErrorInvalidValue);
  releaseBytes(ptr);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  *ptr = std::malloc(bytes ? bytes : 1);
  return *ptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  *ptr = nullptr;
  if (stream && stream->capturing) {
    if (stream->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
    void* p = allocateBytes(bytes);
    if (!p) return fail(cudaErrorMemoryAllocation);
    gGraphAllocs[p] = GraphAllocation{bytes, false, false};
    stream->capture->allocations.push_back(p);
    stream->capture->nodes.push_back([p]() {
      gGraphAllocs[p].live = true;
      std::memset(p, 0xFF, gAllocations[p]);
      return cudaSuccess;
    });
    *ptr = p;
    return cudaSuccess;
  }
  if (stream == nullptr && capturingStream()) return fail(cudaErrorStreamCaptureUnsupported);
  *ptr = allocateBytes(bytes);
  return *ptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  if (!ptr) return cudaSuccess;
  if (!gAllocations.count(ptr)) return fail(cudaErrorInvalidValue);
  return submit(stream, [ptr]() {
    auto graphOwned = gGraphAllocs.find(ptr);
    if (graphOwned != gGraphAllocs.end()) {
      if (!graphOwned->second.live) return fail(cudaErrorInvalidValue);  // freed twice in one launch, or never allocated
      graphOwned->second.live = false;
      std::memset(ptr, 0xFF, gAllocations[ptr]);
      if (graphOwned->second.orphaned) {
        gGraphAllocs.erase(graphOwned);
        releaseBytes(ptr);
      }
      return cudaSuccess;
    }
    if (!gAllocations.count(ptr)) return fail(cudaErrorInvalidValue);  // a replayed free of memory freed before
    releaseBytes(ptr);
    return cudaSuccess;
  });
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  return submit(stream, [dst, src, bytes]() {
    std::memmove(dst, src, bytes);
    return cudaSuccess;
  });
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  return submit(stream, [ptr, value, bytes]() {
    std::memset(ptr, value, bytes);
    return cudaSuccess;
  });
}
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *pool = &gPool;
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  if (attr == cudaMemPoolAttrReleaseThreshold) pool->releaseThreshold = *static_cast<uint64_t*>(value);
  return cudaSuccess;
}
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t, cudaMemPoolAttr attr, void* value) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  if (attr == cudaMemPoolAttrUsedMemCurrent || attr == cudaMemPoolAttrReservedMemCurrent) {
    *static_cast<uint64_t*>(value) = gUsedBytes;
    return cudaSuccess;
  }
  return fail(cudaErrorInvalidValue);
}
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t, size_t) { return cudaSuccess; }

namespace emu {
// For the cuBLAS shims: queue library work on a stream (run now, or record it while capturing).
cudaError_t enqueue(cudaStream_t stream, std::function<cudaError_t()> op) {
  std::lock_guard<std::recursive_mutex> lock(gMutex);
  return submit(stream, std::move(op));
}
}  // namespace emu

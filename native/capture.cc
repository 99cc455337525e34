// Programs: the kernels of one captured training step, replayed with one native call (see capture.h).
//
// captureBegin()                 starts keeping kernels (ERR_CAPTURE if a capture is already running)
// captureEnd(useGraphs, planMemory) -> prog
//                                stops and returns the Program (an external); with planMemory, storages made during
//                                the capture that only the Program can reach share one arena by lifetime
// captureAbort()                 stops and discards what was kept
// isCapturing() -> boolean
// capturePause() / captureResume()  ops in between run but are not kept (state made once: optimiser moments,
//                                   ActNorm's data-dependent initialisation); pauses nest
// runProgram(prog)               replays every kept kernel in order
// programInfo(prog) -> { kernels, dynamicKernels, cudaKernels, graphs, plannedBytes, arenaBytes }
// releaseProgram(prog)           frees the Program's kernels (and the tensors they own) now, not at GC
// setSlot(slot, values)          overwrites a ScalarSlot's values (same length)
#include "capture.h"

#include <algorithm>
#include <mutex>
#include <string>

#include "cuda.h"

namespace innflow {
namespace {

struct Kernel {
  Device device;
  Replay replay;
  std::function<void()> run;
};

// A stretch of kernels replayed one way: a CUDA graph for static GPU kernels, from the host otherwise.
struct Segment {
  size_t begin = 0, end = 0;
  bool graph = false;
  void* exec = nullptr;  // the instantiated graph, made at the first replay
};

struct GraphApi {
  int (*begin)() = nullptr;
  int (*end)(void**) = nullptr;
  int (*abort)() = nullptr;
  int (*launch)(void*) = nullptr;
  int (*destroy)(void*) = nullptr;
};

const GraphApi& graphApi() {
  static GraphApi api = [] {
    GraphApi a;
    a.begin = reinterpret_cast<int (*)()>(cudaSymbol("innflow_cuda_graph_begin"));
    a.end = reinterpret_cast<int (*)(void**)>(cudaSymbol("innflow_cuda_graph_end"));
    a.abort = reinterpret_cast<int (*)()>(cudaSymbol("innflow_cuda_graph_abort"));
    a.launch = reinterpret_cast<int (*)(void*)>(cudaSymbol("innflow_cuda_graph_launch"));
    a.destroy = reinterpret_cast<int (*)(void*)>(cudaSymbol("innflow_cuda_graph_destroy"));
    return a;
  }();
  return api;
}

struct Program {
  std::vector<Kernel> kernels;
  std::vector<std::weak_ptr<Storage>> allocations;  // made while capturing: the memory plan's candidates
  size_t plannedBytes = 0, arenaBytes = 0;
  bool useGraphs = true;
  bool planned = false;
  bool released = false;
  std::vector<Segment> segments;

  ~Program() { releaseGraphs(); }

  void releaseGraphs() {
    for (Segment& s : segments)
      if (s.exec) {
        graphApi().destroy(s.exec);  // from a finaliser: never throws; a broken context reports at the next call
        s.exec = nullptr;
      }
  }

  bool usesCuda() const {
    for (const Kernel& k : kernels)
      if (k.device == Device::CUDA) return true;
    return false;
  }

  // Static GPU kernels that follow each other become one graph; everything else runs from the host.
  void plan() {
    segments.clear();
    const bool graphs = useGraphs && usesCuda();
    size_t i = 0;
    while (i < kernels.size()) {
      Segment s;
      s.begin = i;
      s.graph = graphs && kernels[i].device == Device::CUDA && kernels[i].replay == Replay::Static;
      while (i < kernels.size()) {
        bool g = graphs && kernels[i].device == Device::CUDA && kernels[i].replay == Replay::Static;
        if (g != s.graph) break;
        i++;
      }
      s.end = i;
      segments.push_back(s);
    }
    planned = true;
  }

  void runHost(const Segment& s) {
    for (size_t k = s.begin; k < s.end; k++) kernels[k].run();
  }

  // Captures the segment's kernels as a graph (queued work is recorded, not run), then instantiates it.
  void captureGraph(Segment& s) {
    const GraphApi& api = graphApi();
    cudaCheck(api.begin(), "compileStep: starting the CUDA graph capture");
    try {
      runHost(s);
    } catch (const NativeError& e) {
      api.abort();
      fail("ERR_CAPTURE", std::string("compileStep: a kernel could not be captured in a CUDA graph (") + e.what() +
                              "); compile the step with { cudaGraphs: false } to replay it from the host");
    } catch (...) {
      api.abort();  // never leave the stream capturing: later work would be recorded, not run
      throw;
    }
    void* exec = nullptr;
    int status = api.end(&exec);
    if (status != INNFLOW_CUDA_OK) {
      try {
        cudaCheck(status, "compileStep: ending the CUDA graph capture");
      } catch (const NativeError& e) {
        fail("ERR_CAPTURE", std::string(e.what()) + "; compile the step with { cudaGraphs: false } to replay it from the host");
      }
    }
    s.exec = exec;
  }

  void run() {
    if (released) fail("ERR_DISPOSED", "runProgram: the compiled step was released");
    if (!planned) plan();
    for (Segment& s : segments) {
      if (!s.graph) {
        runHost(s);
        continue;
      }
      if (!s.exec) captureGraph(s);
      cudaCheck(graphApi().launch(s.exec), "compiled step");
    }
  }
};

// The Program being captured (one at a time: JavaScript runs the step function on one thread).
std::unique_ptr<Program> current;
int pauses = 0;
int64_t tracedKernel = -1;  // the index of the kept kernel running now, -1 outside kernels
std::mutex traceMutex;

void updateTracing() { gTraceAccesses.store(current && pauses == 0, std::memory_order_relaxed); }

// The memory plan. Candidates are the storages made while capturing that are still alive, held by no JavaScript
// handle, touched by at least one kept kernel and never touched outside one (a storage filled at an entry point, such
// as a constant's pristine copy, carries values from capture into every replay). Each lives from the first to the last
// kernel that touches it; storages whose lifetimes do not overlap share memory in one arena per device (first fit by
// offset, in order of first use). Kernels read their tensors' addresses when they run, so moving a storage is
// invisible to them; a kernel that took an address before it ran would have touched the storage outside a kernel,
// which pins it.
void planMemory(Program& p) {
  struct Item {
    std::shared_ptr<Storage> s;
    size_t size;
    int64_t first, last;
    size_t offset;
  };
  for (Device device : {Device::CPU, Device::CUDA}) {
    std::vector<Item> items;
    for (auto& w : p.allocations) {
      std::shared_ptr<Storage> s = w.lock();
      if (!s || s->device != device || s->arena || s->handles > 0 || s->plan.pinned || s->plan.first < 0) continue;
      items.push_back(Item{s, (s->bytes + 255) / 256 * 256, s->plan.first, s->plan.last, 0});
    }
    if (items.empty()) continue;
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.first < b.first; });
    std::vector<const Item*> live;  // placed items still alive, sorted by offset
    size_t total = 0;
    for (Item& it : items) {
      live.erase(std::remove_if(live.begin(), live.end(), [&](const Item* q) { return q->last < it.first; }), live.end());
      size_t offset = 0;
      for (const Item* q : live) {
        if (q->offset >= offset + it.size) break;
        offset = std::max(offset, q->offset + q->size);
      }
      it.offset = offset;
      live.insert(std::upper_bound(live.begin(), live.end(), offset, [](size_t o, const Item* q) { return o < q->offset; }), &it);
      total = std::max(total, offset + it.size);
    }
    std::shared_ptr<void> arena = makeArena(total, device);
    for (Item& it : items) {
      p.plannedBytes += it.s->bytes;
      moveIntoArena(*it.s, arena, it.offset);
    }
    p.arenaBytes += total;
  }
}

Program* programArg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsExternal()) fail("ERR_ARGUMENT", "expected a compiled step's program");
  return info[i].As<Napi::External<Program>>().Data();
}

Napi::Value CaptureBegin(const Napi::CallbackInfo& info) {
  if (current) fail("ERR_CAPTURE", "compileStep: a step is already being captured (captures do not nest)");
  current = std::make_unique<Program>();
  pauses = 0;
  tracedKernel = -1;
  updateTracing();
  return info.Env().Undefined();
}

Napi::Value CaptureEnd(const Napi::CallbackInfo& info) {
  if (!current) fail("ERR_CAPTURE", "compileStep: no step is being captured");
  bool useGraphs = info.Length() > 0 && info[0].IsBoolean() ? info[0].As<Napi::Boolean>().Value() : true;
  bool plan = info.Length() > 1 && info[1].IsBoolean() ? info[1].As<Napi::Boolean>().Value() : false;
  pauses = 0;
  Program* p = current.release();
  updateTracing();
  p->useGraphs = useGraphs;
  if (plan) {
    try {
      planMemory(*p);
    } catch (...) {
      delete p;
      throw;
    }
  }
  return Napi::External<Program>::New(info.Env(), p, [](Napi::Env, Program* q) { delete q; });
}

Napi::Value CaptureAbort(const Napi::CallbackInfo& info) {
  current.reset();
  pauses = 0;
  updateTracing();
  return info.Env().Undefined();
}

Napi::Value IsCapturing(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), capturing()); }

Napi::Value CapturePause(const Napi::CallbackInfo& info) {
  if (current) pauses++;
  updateTracing();
  return info.Env().Undefined();
}

Napi::Value CaptureResume(const Napi::CallbackInfo& info) {
  if (current && pauses > 0) pauses--;
  updateTracing();
  return info.Env().Undefined();
}

Napi::Value RunProgram(const Napi::CallbackInfo& info) {
  Program* p = programArg(info, 0);
  if (current) fail("ERR_CAPTURE", "compileStep: a compiled step cannot run while another step is being captured");
  p->run();
  return info.Env().Undefined();
}

Napi::Value ProgramInfo(const Napi::CallbackInfo& info) {
  Program* p = programArg(info, 0);
  int64_t dynamicKernels = 0, cudaKernels = 0, graphs = 0;
  for (const Kernel& k : p->kernels) {
    if (k.replay == Replay::Dynamic) dynamicKernels++;
    if (k.device == Device::CUDA) cudaKernels++;
  }
  for (const Segment& s : p->segments)
    if (s.graph) graphs++;
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("kernels", Napi::Number::New(env, double(p->kernels.size())));
  o.Set("dynamicKernels", Napi::Number::New(env, double(dynamicKernels)));
  o.Set("cudaKernels", Napi::Number::New(env, double(cudaKernels)));
  o.Set("graphs", Napi::Number::New(env, double(graphs)));
  o.Set("plannedBytes", Napi::Number::New(env, double(p->plannedBytes)));
  o.Set("arenaBytes", Napi::Number::New(env, double(p->arenaBytes)));
  return o;
}

Napi::Value ReleaseProgram(const Napi::CallbackInfo& info) {
  Program* p = programArg(info, 0);
  p->releaseGraphs();
  p->segments.clear();
  p->kernels.clear();
  p->kernels.shrink_to_fit();
  p->released = true;
  return info.Env().Undefined();
}

Napi::Value SetSlot(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsExternal()) fail("ERR_ARGUMENT", "setSlot: expected a scalar slot");
  auto* slot = info[0].As<Napi::External<std::shared_ptr<ScalarSlot>>>().Data();
  std::vector<double> values;
  if (info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
    Napi::Float64Array a = info[1].As<Napi::Float64Array>();
    values.assign(a.Data(), a.Data() + a.ElementLength());
  } else if (info[1].IsArray()) {
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t k = 0; k < a.Length(); k++) {
      Napi::Value v = a.Get(k);
      if (!v.IsNumber()) fail("ERR_ARGUMENT", "setSlot: values must be numbers");
      values.push_back(v.As<Napi::Number>().DoubleValue());
    }
  } else {
    fail("ERR_ARGUMENT", "setSlot: values must be a number[] or Float64Array");
  }
  if (values.size() != (*slot)->values.size())
    fail("ERR_ARGUMENT", "setSlot: expected " + std::to_string((*slot)->values.size()) + " values, got " +
                             std::to_string(values.size()));
  (*slot)->values = std::move(values);
  return info.Env().Undefined();
}

}  // namespace

std::atomic<bool> gTraceAccesses{false};

bool capturing() { return current && pauses == 0; }

void beginKernelTrace() {
  std::lock_guard<std::mutex> lock(traceMutex);
  tracedKernel = int64_t(current->kernels.size());
}
void endKernelTrace() {
  std::lock_guard<std::mutex> lock(traceMutex);
  tracedKernel = -1;
}

void noteStorageAccess(Storage* s) {
  if (!s || !s->plan.candidate) return;
  std::lock_guard<std::mutex> lock(traceMutex);
  if (tracedKernel < 0) {
    s->plan.pinned = true;
    return;
  }
  if (s->plan.first < 0) s->plan.first = tracedKernel;
  s->plan.last = std::max(s->plan.last, tracedKernel);
}

void noteCaptureAllocation(const std::shared_ptr<Storage>& s) {
  s->plan.candidate = true;
  current->allocations.push_back(s);
}

void keepKernel(Device device, Replay replay, std::function<void()> f) {
  current->kernels.push_back(Kernel{device, replay, std::move(f)});
}

void refuseWhileCapturing(const char* what) {
  if (capturing())
    fail("ERR_CAPTURE", std::string(what) +
                            ": values cannot be read on the host while a step is being captured (compileStep): a value "
                            "read now would be frozen into every replay. Return the tensor from the step function and "
                            "read it after the step.");
}

Napi::Value wrapSlot(Napi::Env env, const std::shared_ptr<ScalarSlot>& slot) {
  return Napi::External<std::shared_ptr<ScalarSlot>>::New(env, new std::shared_ptr<ScalarSlot>(slot),
                                                          [](Napi::Env, std::shared_ptr<ScalarSlot>* s) { delete s; });
}

void registerCapture(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "captureBegin", CaptureBegin);
  defineFunction(env, exports, "captureEnd", CaptureEnd);
  defineFunction(env, exports, "captureAbort", CaptureAbort);
  defineFunction(env, exports, "isCapturing", IsCapturing);
  defineFunction(env, exports, "capturePause", CapturePause);
  defineFunction(env, exports, "captureResume", CaptureResume);
  defineFunction(env, exports, "runProgram", RunProgram);
  defineFunction(env, exports, "programInfo", ProgramInfo);
  defineFunction(env, exports, "releaseProgram", ReleaseProgram);
  defineFunction(env, exports, "setSlot", SetSlot);
}

}  // namespace innflow

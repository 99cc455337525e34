// Captured training steps (compileStep in lib/framework/compile-step.ts).
//
// While a step is being captured, every entry point that computes something runs its kernel as usual and also
// keeps it, as a closure that owns the tensors it reads and writes, in a Program. Replaying the Program runs the
// same kernels on the same storages with one native call: no JavaScript, no argument parsing, no allocation of
// outputs (they were made once, during capture, and are overwritten by each replay). On the GPU the Program's
// static stretches are captured once more as CUDA graphs (cuda/graph.cu) and replayed with cudaGraphLaunch.
//
// What an entry point does:
//   Tensor y = emptyLike(x.shape, x.dtype, x);          // outputs are made outside the kernel ...
//   launch(x.device(), [=] { ...compute y from x... });  // ... and the kernel captures tensors by value
//   return wrap(env, y);
// A kernel must own everything it uses (Tensor copies, scalars, vectors), never pointers into the handles
// of the call, and must write every output it returns: a replay that allocated a fresh output would leave the
// captured one stale.
#pragma once
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "common.h"

namespace innflow {

// How a kept kernel is replayed on the GPU. Static kernels read nothing from the host when they run, so a CUDA
// graph may freeze their launch parameters. Dynamic kernels do (random numbers take the generator's offset,
// optimiser steps take their scalars from a ScalarSlot, host<->device copies read host memory, a gradient norm is
// read back): they are launched from the host between graph segments. On the CPU both kinds run alike.
enum class Replay { Static, Dynamic };

// Values a kernel reads when it runs, which the TypeScript layer may change between replays (an optimiser's
// learning rate and step counts). Handed to JavaScript as an external by the entry point that made it.
struct ScalarSlot {
  std::vector<double> values;
};

// True while a step is being captured.
bool capturing();

// Adds f to the Program under capture. Use launch()/launchDynamic(), which run f first.
void keepKernel(Device device, Replay replay, std::function<void()> f);

// The memory plan's trace: while a captured kernel runs, the storages it touches are attributed to it
// (Tensor::data/raw note them); storages touched outside any kernel are pinned.
void beginKernelTrace();
void endKernelTrace();

template <class F>
void runTraced(F& f) {
  beginKernelTrace();
  try {
    f();
  } catch (...) {
    endKernelTrace();
    throw;
  }
  endKernelTrace();
}

// Runs f now and, while a step is being captured, keeps it for replay.
template <class F>
void launch(Device device, F&& f) {
  if (!capturing()) return f();
  runTraced(f);
  keepKernel(device, Replay::Static, std::function<void()>(std::forward<F>(f)));
}
template <class F>
void launchDynamic(Device device, F&& f) {
  if (!capturing()) return f();
  runTraced(f);
  keepKernel(device, Replay::Dynamic, std::function<void()>(std::forward<F>(f)));
}

// Called by emptyTensor for each storage made while capturing: a candidate for the memory plan.
void noteCaptureAllocation(const std::shared_ptr<Storage>& s);

// tensor.cc: an arena of `bytes` on `device` from the device's allocator (freed when the last owner goes), and the
// move of a storage into it (its own memory goes back to the allocator).
std::shared_ptr<void> makeArena(size_t bytes, Device device);
void moveIntoArena(Storage& s, const std::shared_ptr<void>& arena, size_t offset);

// ERR_CAPTURE while a step is being captured: a value read on the host during capture would be frozen into every
// replay (what: "item", "toArray", ...).
void refuseWhileCapturing(const char* what);

// Wraps a scalar slot for JavaScript (entry points that take scalars which change between steps return one while
// capturing).
Napi::Value wrapSlot(Napi::Env env, const std::shared_ptr<ScalarSlot>& slot);

void registerCapture(Napi::Env env, Napi::Object exports);

}  // namespace innflow

// Counter-based random numbers (Philox-4x32-10). Element i of a draw depends only on (seed, offset + i/4), so
// the CPU and the GPU produce the same numbers for the same seed, in any thread layout.
//
// rand(shape)  : U(0, 1), exclusive of both ends
// randn(shape) : N(0, 1) by Box-Muller on consecutive uniform pairs
// randperm(n)  : a uniform random permutation (Fisher-Yates driven by the same stream), as float values
//
// Inside a compiled step each draw is a dynamic kernel: a replay reserves fresh blocks of the stream when it runs,
// so replayed steps draw the numbers eager steps would.
//
// Each takes an optional last argument device ('cpu' | 'cuda', default 'cpu'). On CUDA, rand and randn run
// cuda/random.cu with the same seed and the same reserved blocks, so they draw the CPU's numbers (rand bit for
// bit; randn up to the last bits of the device's double log/sin/cos); randperm is made on the host, as on the
// CPU, and copied to the device.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>
#include <numeric>

#include "../../cuda/philox.h"
#include "../../cuda/random.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"

namespace innflow {
namespace {

struct PhiloxState {
  uint64_t seed = 0x853c49e6748fea9bULL;
  uint64_t offset = 0;  // in blocks of four 32-bit outputs
};
PhiloxState state;

using innflow_philox::philox;
using innflow_philox::toUniform;

// Reserves ceil(n / 4) blocks of the stream and returns the first.
uint64_t reserveBlocks(int64_t n) {
  uint64_t first = state.offset;
  state.offset += uint64_t((n + 3) / 4);
  return first;
}

const InnflowCudaRandom& cudaRandom() { return cudaTable<InnflowCudaRandom>("innflow_cuda_random"); }

template <class T, class F>
void fillBlocks(T* out, int64_t n, uint64_t first, F transform) {
  int64_t blocks = (n + 3) / 4;
  parallelFor(blocks, 1024, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      uint32_t r[4];
      philox(state.seed, first + uint64_t(b), r);
      double v[4];
      transform(r, v);
      for (int k = 0; k < 4 && b * 4 + k < n; k++) out[b * 4 + k] = static_cast<T>(v[k]);
    }
  });
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  double s = numberArg(info, 0, "seed");
  if (!(s >= 0) || std::floor(s) != s || s > 9007199254740991.0)
    fail("ERR_ARGUMENT", "manualSeed: seed must be a non-negative integer, got " + std::to_string(s));
  state.seed = static_cast<uint64_t>(s) * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
  state.offset = 0;
  return info.Env().Undefined();
}

// The generator state as 32 hex digits (the key, then the block offset), for checkpoints that must resume
// the random stream exactly (torch.get_rng_state).
Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(state.seed),
                static_cast<unsigned long long>(state.offset));
  return Napi::String::New(info.Env(), buf);
}

Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) fail("ERR_ARGUMENT", "setRngState: state must be a string from getRngState()");
  std::string s = info[0].As<Napi::String>().Utf8Value();
  bool ok = s.size() == 32;
  for (char ch : s) ok = ok && std::isxdigit(static_cast<unsigned char>(ch));
  if (!ok) fail("ERR_ARGUMENT", "setRngState: state must be 32 hex digits (from getRngState()), got '" + s + "'");
  state.seed = std::stoull(s.substr(0, 16), nullptr, 16);
  state.offset = std::stoull(s.substr(16, 16), nullptr, 16);
  return info.Env().Undefined();
}

Napi::Value Rand(const Napi::CallbackInfo& info) {
  Shape shape = shapeArg(info, 0, "shape");
  DType dtype = dtypeArg(info, 1, "dtype");
  Device device = deviceArg(info, 2, "rand");
  Tensor t = emptyTensor(shape, dtype, device);
  launchDynamic(device, [t] {
    uint64_t first = reserveBlocks(t.numel());
    if (t.onCuda()) {
      cudaCheck(cudaRandom().rand(cudaDtype(t.dtype), t.raw(), t.numel(), state.seed, first), "rand");
      return;
    }
    INNFLOW_DISPATCH(t.dtype, T, {
      fillBlocks(t.data<T>(), t.numel(), first, [](const uint32_t r[4], double v[4]) {
        for (int k = 0; k < 4; k++) v[k] = toUniform(r[k]);
      });
    });
  });
  return wrap(info.Env(), std::move(t));
}

Napi::Value Randn(const Napi::CallbackInfo& info) {
  Shape shape = shapeArg(info, 0, "shape");
  DType dtype = dtypeArg(info, 1, "dtype");
  Device device = deviceArg(info, 2, "randn");
  Tensor t = emptyTensor(shape, dtype, device);
  launchDynamic(device, [t] {
    uint64_t first = reserveBlocks(t.numel());
    if (t.onCuda()) {
      cudaCheck(cudaRandom().randn(cudaDtype(t.dtype), t.raw(), t.numel(), state.seed, first), "randn");
      return;
    }
    INNFLOW_DISPATCH(t.dtype, T, {
      fillBlocks(t.data<T>(), t.numel(), first, [](const uint32_t r[4], double v[4]) {
        for (int k = 0; k < 4; k += 2) {
          double radius = std::sqrt(-2.0 * std::log(toUniform(r[k])));
          double angle = 2.0 * M_PI * toUniform(r[k + 1]);
          v[k] = radius * std::cos(angle);
          v[k + 1] = radius * std::sin(angle);
        }
      });
    });
  });
  return wrap(info.Env(), std::move(t));
}

Napi::Value Randperm(const Napi::CallbackInfo& info) {
  int64_t n = intArg(info, 0, "n");
  if (n < 0) fail("ERR_ARGUMENT", "randperm: n must be >= 0");
  DType dtype = dtypeArg(info, 1, "dtype");
  Device device = deviceArg(info, 2, "randperm");
  Tensor t = emptyTensor({n}, dtype, device);
  launchDynamic(device, [t, n] {
    std::vector<int64_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    uint64_t first = reserveBlocks(n);
    for (int64_t i = n - 1; i > 0; i--) {
      uint32_t r[4];
      philox(state.seed, first + uint64_t(i / 4), r);
      int64_t j = static_cast<int64_t>(toUniform(r[i % 4]) * double(i + 1));
      if (j > i) j = i;
      std::swap(perm[i], perm[j]);
    }
    INNFLOW_DISPATCH(t.dtype, T, {
      if (t.onCuda()) {
        // made on the host, then copied (the copy is staged before cudaCopy returns, so `host` may go)
        std::vector<T> host(perm.begin(), perm.end());
        cudaCopy(t.raw(), host.data(), host.size() * sizeof(T), INNFLOW_COPY_H2D);
      } else {
        for (int64_t i = 0; i < n; i++) t.data<T>()[i] = static_cast<T>(perm[i]);
      }
    });
  });
  return wrap(info.Env(), std::move(t));
}

}  // namespace

void registerRandom(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "manualSeed", ManualSeed);
  defineFunction(env, exports, "getRngState", GetRngState);
  defineFunction(env, exports, "setRngState", SetRngState);
  defineFunction(env, exports, "rand", Rand);
  defineFunction(env, exports, "randn", Randn);
  defineFunction(env, exports, "randperm", Randperm);
}

}  // namespace innflow

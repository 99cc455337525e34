// Opens the CUDA backend library (libinnflow_cuda.so, next to the addon) at run time and reports whether CUDA
// is usable and, if not, exactly why. The addon itself never links CUDA, so it loads everywhere.
//
// cudaStatus() -> { available: boolean, reason: string, deviceName: string | null }
// cudaMemInfo() -> { freeBytes, totalBytes, usedBytes, reservedBytes }
// cudaSynchronize() -> waits for all queued GPU work (for timing)
#include <dlfcn.h>

#include <string>
#include <vector>

#include "cuda.h"

namespace innflow {
namespace {

// Set once the library has loaded and its probe found a device; the hooks then run (cudaWhenLoaded).
bool loadedAndAvailable = false;
std::vector<void (*)()>& loadHooks() {
  static std::vector<void (*)()> hooks;
  return hooks;
}

struct CudaBackend {
  bool loaded = false;
  bool available = false;
  void* lib = nullptr;
  std::string reason;
  std::string deviceName;
  int (*deviceNameFn)(char*, size_t) = nullptr;
  int (*memInfoFn)(size_t*, size_t*) = nullptr;
  const char* (*lastError)() = nullptr;
  int (*alloc)(void**, size_t) = nullptr;
  int (*release)(void*) = nullptr;
  int (*copy)(void*, const void*, size_t, int) = nullptr;
  int (*synchronize)() = nullptr;
  int (*poolStats)(size_t*, size_t*) = nullptr;
  int (*emptyCache)() = nullptr;
};

std::string addonDirectory() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&addonDirectory), &info) == 0 || !info.dli_fname) return "";
  std::string path = info.dli_fname;
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

template <class F>
bool bind(void* lib, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  return fn != nullptr;
}

CudaBackend& backend() {
  static CudaBackend b;
  if (b.loaded) return b;
  b.loaded = true;
#ifndef INNFLOW_CUDA_LIBRARY
  b.reason = "innflow was built without the CUDA backend (nvcc or cuBLAS was not found at build time)";
  return b;
#else
  std::string path = addonDirectory() + INNFLOW_CUDA_LIBRARY;
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* err = dlerror();
    b.reason = std::string("the CUDA backend library could not be loaded (") + (err ? err : path) + ")";
    return b;
  }
  int (*abi)() = nullptr;
  int (*probe)(char*, size_t) = nullptr;
  bool ok = bind(lib, "innflow_cuda_abi_version", abi) && bind(lib, "innflow_cuda_probe", probe) &&
            bind(lib, "innflow_cuda_device_name", b.deviceNameFn) && bind(lib, "innflow_cuda_mem_info", b.memInfoFn);
  if (!ok) {
    b.reason = "the CUDA backend library " + path + " lacks innflow's entry points";
    return b;
  }
  if (abi() != INNFLOW_CUDA_ABI_VERSION) {
    b.reason = "the CUDA backend library " + path + " was built for another version of innflow";
    return b;
  }
  ok = bind(lib, "innflow_cuda_last_error", b.lastError) && bind(lib, "innflow_cuda_alloc", b.alloc) &&
       bind(lib, "innflow_cuda_free", b.release) && bind(lib, "innflow_cuda_copy", b.copy) &&
       bind(lib, "innflow_cuda_synchronize", b.synchronize) && bind(lib, "innflow_cuda_pool_stats", b.poolStats) &&
       bind(lib, "innflow_cuda_empty_cache", b.emptyCache);
  if (!ok) {
    b.reason = "the CUDA backend library " + path + " lacks innflow's memory entry points";
    return b;
  }
  char why[512] = {0};
  if (probe(why, sizeof why) != 0) {
    b.reason = why;
    return b;
  }
  char name[256] = {0};
  if (b.deviceNameFn(name, sizeof name) == 0) b.deviceName = name;
  b.lib = lib;
  b.available = true;
  loadedAndAvailable = true;
  for (auto fn : loadHooks()) {
    try {
      fn();  // a hook that fails leaves its setting at the default; the call that sets it again reports the error
    } catch (...) {
    }
  }
  return b;
#endif
}

Napi::Value CudaStatus(const Napi::CallbackInfo& info) {
  CudaBackend& b = backend();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", Napi::Boolean::New(env, b.available));
  o.Set("reason", b.available ? env.Null() : Napi::String::New(env, b.reason));
  o.Set("deviceName", b.available ? Napi::String::New(env, b.deviceName) : env.Null());
  return o;
}

Napi::Value CudaMemInfo(const Napi::CallbackInfo& info) {
  requireCuda("cuda.memory");
  CudaBackend& b = backend();
  size_t freeBytes = 0, totalBytes = 0, used = 0, reserved = 0;
  if (b.memInfoFn(&freeBytes, &totalBytes) != 0) fail("ERR_DEVICE", "cudaMemGetInfo failed");
  cudaPoolStats(&used, &reserved);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("freeBytes", Napi::Number::New(info.Env(), double(freeBytes)));
  o.Set("totalBytes", Napi::Number::New(info.Env(), double(totalBytes)));
  o.Set("usedBytes", Napi::Number::New(info.Env(), double(used)));
  o.Set("reservedBytes", Napi::Number::New(info.Env(), double(reserved)));
  return o;
}

Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  requireCuda("cuda.synchronize");
  cudaCheck(backend().synchronize(), "cuda.synchronize");
  return info.Env().Undefined();
}

}  // namespace

bool cudaUsable() { return backend().available; }


bool cudaLoaded() { return loadedAndAvailable; }

void cudaWhenLoaded(void (*fn)()) {
  if (loadedAndAvailable) fn();
  else loadHooks().push_back(fn);
}

void requireCuda(const char* op) {
  CudaBackend& b = backend();
  if (!b.available) fail("ERR_CUDA_UNAVAILABLE", std::string(op) + ": CUDA is unavailable: " + b.reason);
}

void* cudaSymbol(const char* name) {
  requireCuda(name);
  void* sym = dlsym(backend().lib, name);
  if (!sym) fail("ERR_CUDA_UNAVAILABLE", std::string("the CUDA backend library lacks ") + name + " (was it built from another version of innflow?)");
  return sym;
}

void cudaCheck(int status, const char* op) {
  if (status == INNFLOW_CUDA_OK) return;
  const char* msg = backend().lastError ? backend().lastError() : "unknown CUDA error";
  if (status == INNFLOW_CUDA_OOM) fail("ERR_OOM", std::string(op) + ": " + msg);
  if (status == INNFLOW_CUDA_BAD_ARGUMENT) fail("ERR_ARGUMENT", std::string(op) + ": " + msg);
  fail("ERR_DEVICE", std::string(op) + ": CUDA error: " + msg);
}

void* cudaAllocate(size_t bytes) {
  requireCuda("allocate");
  void* p = nullptr;
  cudaCheck(backend().alloc(&p, bytes), "allocate");
  return p;
}

void cudaRelease(void* ptr) {
  // Called from destructors: never throws. A failure here means the context is already broken, and the next
  // call that checks its status reports it.
  if (ptr && backend().available) backend().release(ptr);
}

void cudaCopy(void* dst, const void* src, size_t bytes, int kind) {
  requireCuda("copy");
  cudaCheck(backend().copy(dst, src, bytes, kind), "copy");
}

void cudaPoolStats(size_t* usedBytes, size_t* reservedBytes) {
  *usedBytes = *reservedBytes = 0;
  CudaBackend& b = backend();
  if (b.available) cudaCheck(b.poolStats(usedBytes, reservedBytes), "cuda.memory");
}

void cudaEmptyCache() {
  CudaBackend& b = backend();
  if (b.available) cudaCheck(b.emptyCache(), "emptyCache");
}

void cudaFill(DType dtype, void* y, int64_t n, double value) {
  static auto fill = reinterpret_cast<int (*)(int, void*, int64_t, double)>(cudaSymbol("innflow_cuda_fill"));
  cudaCheck(fill(cudaDtype(dtype), y, n, value), "fill");
}

void cudaCast(DType srcDtype, const void* x, DType dstDtype, void* y, int64_t n) {
  static auto cast = reinterpret_cast<int (*)(int, const void*, int, void*, int64_t)>(cudaSymbol("innflow_cuda_cast"));
  cudaCheck(cast(cudaDtype(srcDtype), x, cudaDtype(dstDtype), y, n), "cast");
}

void registerCuda(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "cudaStatus", CudaStatus);
  defineFunction(env, exports, "cudaMemInfo", CudaMemInfo);
  defineFunction(env, exports, "cudaSynchronize", CudaSynchronize);
}

}  // namespace innflow

// Opens the CUDA backend library (libinnflow_cuda.so, next to the addon) at run time and reports whether CUDA
// is usable and, if not, exactly why. The addon itself never links CUDA, so it loads everywhere.
//
// cudaStatus() -> { available: boolean, reason: string, deviceName: string | null }
#include <dlfcn.h>

#include <string>

#include "../cuda/backend.h"
#include "common.h"

namespace innflow {
namespace {

struct CudaBackend {
  bool loaded = false;
  bool available = false;
  std::string reason;
  std::string deviceName;
  int (*deviceNameFn)(char*, size_t) = nullptr;
  int (*memInfoFn)(size_t*, size_t*) = nullptr;
};

std::string addonDirectory() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&addonDirectory), &info) == 0 || !info.dli_fname) return "";
  std::string path = info.dli_fname;
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
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
  auto abi = reinterpret_cast<int (*)()>(dlsym(lib, "innflow_cuda_abi_version"));
  auto probe = reinterpret_cast<int (*)(char*, size_t)>(dlsym(lib, "innflow_cuda_probe"));
  b.deviceNameFn = reinterpret_cast<int (*)(char*, size_t)>(dlsym(lib, "innflow_cuda_device_name"));
  b.memInfoFn = reinterpret_cast<int (*)(size_t*, size_t*)>(dlsym(lib, "innflow_cuda_mem_info"));
  if (!abi || !probe || !b.deviceNameFn || !b.memInfoFn) {
    b.reason = "the CUDA backend library " + path + " lacks innflow's entry points";
    return b;
  }
  if (abi() != INNFLOW_CUDA_ABI_VERSION) {
    b.reason = "the CUDA backend library " + path + " was built for another version of innflow";
    return b;
  }
  char why[512] = {0};
  if (probe(why, sizeof why) != 0) {
    b.reason = why;
    return b;
  }
  char name[256] = {0};
  if (b.deviceNameFn(name, sizeof name) == 0) b.deviceName = name;
  b.available = true;
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
  CudaBackend& b = backend();
  if (!b.available) fail("ERR_CUDA_UNAVAILABLE", "CUDA is unavailable: " + b.reason);
  size_t freeBytes = 0, totalBytes = 0;
  if (b.memInfoFn(&freeBytes, &totalBytes) != 0) fail("ERR_CUDA_UNAVAILABLE", "cudaMemGetInfo failed");
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("freeBytes", Napi::Number::New(info.Env(), double(freeBytes)));
  o.Set("totalBytes", Napi::Number::New(info.Env(), double(totalBytes)));
  return o;
}

}  // namespace

void registerCuda(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "cudaStatus", CudaStatus);
  defineFunction(env, exports, "cudaMemInfo", CudaMemInfo);
}

}  // namespace innflow

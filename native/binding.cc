// The addon's entry point: registers every op family and turns native failures into InnflowErrors.
#include <new>

#include "common.h"
#include "ops.h"
#include "parallel.h"

namespace innflow {
namespace {

// The InnflowError class of the TypeScript layer, handed over once at load time (lib/binding.ts), so that
// errors thrown here are instances of the same class the user catches.
Napi::FunctionReference* errorClass = nullptr;

Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& message) {
  if (errorClass && !errorClass->IsEmpty()) {
    Napi::Object obj = errorClass->New({Napi::String::New(env, code), Napi::String::New(env, message)});
    return Napi::Error(env, obj);
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass expects a constructor");
  if (!errorClass) errorClass = new Napi::FunctionReference();
  *errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int64_t n = intArg(info, 0, "n");
  if (n < 1 || n > 1024) fail("ERR_ARGUMENT", "setNumThreads: n must be between 1 and 1024, got " + std::to_string(n));
  setNumThreads(static_cast<int>(n));
  return info.Env().Undefined();
}
Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), numThreads()); }

Napi::Value Trampoline(const Napi::CallbackInfo& info) {
  auto fn = reinterpret_cast<NativeFn>(info.Data());
  return guarded(info.Env(), [&]() { return fn(info); });
}

}  // namespace

Napi::Value guarded(Napi::Env env, const std::function<Napi::Value()>& f) {
  try {
    return f();
  } catch (const NativeError& e) {
    throw makeError(env, e.code, e.what());
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw makeError(env, "ERR_OOM", "out of host memory");
  } catch (const std::exception& e) {
    throw makeError(env, "ERR_NATIVE", e.what());
  }
}

void defineFunction(Napi::Env env, Napi::Object exports, const char* name, NativeFn fn) {
  exports.Set(name, Napi::Function::New(env, Trampoline, name, reinterpret_cast<void*>(fn)));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  defineFunction(env, exports, "setNumThreads", SetNumThreads);
  defineFunction(env, exports, "getNumThreads", GetNumThreads);
  registerTensor(env, exports);
  registerCuda(env, exports);
  registerRandom(env, exports);
  registerElementwise(env, exports);
  registerReduce(env, exports);
  registerShapeOps(env, exports);
  registerMatmul(env, exports);
  registerConv(env, exports);
  registerLinalg(env, exports);
  registerOptim(env, exports);
  registerLuConv(env, exports);
  registerCoupling(env, exports);
  registerActNorm(env, exports);
  registerLoss(env, exports);
  registerCapture(env, exports);
  return exports;
}

}  // namespace innflow

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return innflow::Init(env, exports); }
NODE_API_MODULE(innflow, InitAddon)

// Shared vocabulary of the native layer: dtypes, shapes, the C++ tensor the kernels see, errors, and the
// helpers every op family uses to read arguments and wrap results for JavaScript.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace innflow {

enum class DType : int { F32 = 0, F64 = 1 };
inline size_t dtypeSize(DType d) { return d == DType::F32 ? 4 : 8; }
inline const char* dtypeName(DType d) { return d == DType::F32 ? "float32" : "float64"; }

using Shape = std::vector<int64_t>;
int64_t numelOf(const Shape& s);
std::string shapeString(const Shape& s);

// Where a tensor's memory lives. CUDA memory comes from the backend library's stream-ordered pool.
enum class Device : int { CPU = 0, CUDA = 1 };
inline const char* deviceName(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

// What a compiled step's memory plan (native/capture.cc) knows of a storage made while the step was captured: the
// first and last kept kernel that touched it, and whether it was touched outside any kernel (its values then come
// from outside the program and must persist: it is never moved).
struct StoragePlan {
  bool candidate = false;
  bool pinned = false;
  int64_t first = -1, last = -1;
};

// A block of memory taken from the caching allocator of its device; shared by a tensor and its reshaped views.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  // JavaScript handles holding this storage (TensorHandle): a compiled step shares memory only between storages
  // nobody outside the step can see.
  int handles = 0;
  StoragePlan plan;
  // Set when a compiled step's memory plan moved this storage into the step's arena: data points into it, and the
  // arena (not this storage) owns the memory.
  std::shared_ptr<void> arena;
  explicit Storage(size_t bytes, Device device = Device::CPU);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

// While a step is being captured, every access to a tensor's memory is noted for the memory plan (capture.cc).
// (Atomic because kernels read it from the thread pool's workers; set only between kernels.)
extern std::atomic<bool> gTraceAccesses;
void noteStorageAccess(Storage* s);

// What a kernel sees: contiguous row-major data, a shape and a dtype.
struct Tensor {
  std::shared_ptr<Storage> storage;
  Shape shape;
  DType dtype = DType::F32;
  int64_t numel() const { return numelOf(shape); }
  int64_t dim() const { return static_cast<int64_t>(shape.size()); }
  template <class T> T* data() const {
    if (gTraceAccesses.load(std::memory_order_relaxed)) noteStorageAccess(storage.get());
    return static_cast<T*>(storage->data);
  }
  void* raw() const {
    if (gTraceAccesses.load(std::memory_order_relaxed)) noteStorageAccess(storage.get());
    return storage->data;
  }
  Device device() const { return storage ? storage->device : Device::CPU; }
  bool onCuda() const { return device() == Device::CUDA; }
};

// Allocates an uninitialised contiguous tensor.
Tensor emptyTensor(const Shape& shape, DType dtype, Device device = Device::CPU);
Tensor zerosTensor(const Shape& shape, DType dtype, Device device = Device::CPU);
// An uninitialised tensor on x's device.
inline Tensor emptyLike(const Shape& shape, DType dtype, const Tensor& x) { return emptyTensor(shape, dtype, x.device()); }

// The error every native entry point throws; becomes an InnflowError with `code` in JavaScript.
struct NativeError : std::runtime_error {
  std::string code;
  NativeError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};
[[noreturn]] inline void fail(const char* code, const std::string& msg) { throw NativeError(code, msg); }

// ---- argument access (each throws ERR_ARGUMENT / ERR_DISPOSED with the argument's name) ----
const Tensor& tensorArg(const Napi::CallbackInfo& info, size_t i, const char* name);
bool isTensor(const Napi::Value& v);
double numberArg(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t intArg(const Napi::CallbackInfo& info, size_t i, const char* name);
bool boolArg(const Napi::CallbackInfo& info, size_t i, const char* name);
Shape shapeArg(const Napi::CallbackInfo& info, size_t i, const char* name);
std::vector<int64_t> intListArg(const Napi::CallbackInfo& info, size_t i, const char* name);
std::vector<Tensor> tensorListArg(const Napi::CallbackInfo& info, size_t i, const char* name);
DType dtypeArg(const Napi::CallbackInfo& info, size_t i, const char* name);
// The optional device argument ('cpu' | 'cuda', default 'cpu'); 'cuda' where CUDA is unusable is
// ERR_CUDA_UNAVAILABLE with the reason, naming `op`.
Device deviceArg(const Napi::CallbackInfo& info, size_t i, const char* op);

// Wraps a kernel result as a JavaScript tensor handle.
Napi::Value wrap(Napi::Env env, Tensor t);
Napi::Value wrapOrNull(Napi::Env env, const Tensor* t);

// Dispatches on dtype: DISPATCH(t.dtype, T, { kernel<T>(...); })
#define INNFLOW_DISPATCH(dt, T, ...)            \
  do {                                          \
    if ((dt) == ::innflow::DType::F32) {        \
      using T = float;                          \
      __VA_ARGS__                               \
    } else {                                    \
      using T = double;                         \
      __VA_ARGS__                               \
    }                                           \
  } while (0)

void requireSameDtype(const Tensor& a, const Tensor& b, const char* op);
// ERR_DEVICE unless a and b live on the same device (no op moves data between devices implicitly).
void requireSameDevice(const Tensor& a, const Tensor& b, const char* op);

// Runs f, turning a NativeError (or any C++ exception) into a JavaScript InnflowError with its code.
Napi::Value guarded(Napi::Env env, const std::function<Napi::Value()>& f);

// Registration: every op family exposes `registerX(env, exports)` and calls `defineFunction` for its entry points.
using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);
void defineFunction(Napi::Env env, Napi::Object exports, const char* name, NativeFn fn);

}  // namespace innflow

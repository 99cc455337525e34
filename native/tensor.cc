// Tensor storage, the caching host allocator, the JavaScript handle that owns a tensor, and the argument
// helpers shared by every op family.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

#include "common.h"
#include "capture.h"
#include "cuda.h"
#include "tensor_handle.h"

namespace innflow {

// ---------------------------------------------------------------------------------------------------------
// Caching allocator: freed blocks are kept in size buckets (powers of two above 4 KiB, 64-byte steps below)
// and handed out again, because a training step allocates the same sizes every time.

namespace {
struct Allocator {
  std::mutex mutex;
  std::multimap<size_t, void*> cache;  // rounded size -> block
  size_t cachedBytes = 0;
  int64_t liveBytes = 0;
  int64_t peakBytes = 0;  // high-water mark of liveBytes since the last resetPeak()
  int64_t liveStorages = 0;
  size_t cacheLimit = size_t(2) << 30;

  static size_t roundUp(size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes <= 4096) return (bytes + 63) / 64 * 64;
    size_t p = 4096;
    while (p < bytes) p <<= 1;
    // Beyond 1 MiB a power of two wastes too much: round to 1/8 of the power instead.
    if (p > (size_t(1) << 20)) {
      size_t step = p / 8;
      return (bytes + step - 1) / step * step;
    }
    return p;
  }

  void* take(size_t bytes, size_t* rounded) {
    size_t r = roundUp(bytes);
    *rounded = r;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(r);
    void* p = nullptr;
    if (it != cache.end()) {
      p = it->second;
      cache.erase(it);
      cachedBytes -= r;
    } else {
      p = std::aligned_alloc(64, r);
      if (!p) {
        releaseCacheLocked();
        p = std::aligned_alloc(64, r);
      }
      if (!p) fail("ERR_OOM", "out of host memory allocating " + std::to_string(bytes) + " bytes");
    }
    liveBytes += static_cast<int64_t>(r);
    if (liveBytes > peakBytes) peakBytes = liveBytes;
    liveStorages++;
    return p;
  }

  // A block of exactly `bytes` (64-byte multiple), outside the size classes and the cache: a compiled step's arena
  // is allocated once, so rounding it up to a class would only waste memory.
  void* takeExact(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex);
    void* p = std::aligned_alloc(64, bytes);
    if (!p) {
      releaseCacheLocked();
      p = std::aligned_alloc(64, bytes);
    }
    if (!p) fail("ERR_OOM", "out of host memory allocating " + std::to_string(bytes) + " bytes");
    liveBytes += static_cast<int64_t>(bytes);
    if (liveBytes > peakBytes) peakBytes = liveBytes;
    liveStorages++;
    return p;
  }

  void giveExact(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex);
    liveBytes -= static_cast<int64_t>(bytes);
    liveStorages--;
    std::free(p);
  }

  void give(void* p, size_t r) {
    std::lock_guard<std::mutex> lock(mutex);
    liveBytes -= static_cast<int64_t>(r);
    liveStorages--;
    if (cachedBytes + r > cacheLimit) {
      std::free(p);
      return;
    }
    cache.emplace(r, p);
    cachedBytes += r;
  }

  void releaseCacheLocked() {
    for (auto& kv : cache) std::free(kv.second);
    cache.clear();
    cachedBytes = 0;
  }
};

Allocator& allocator() {
  static Allocator* a = new Allocator();  // leaked on purpose: storages may outlive static destruction
  return *a;
}
int64_t liveHandles = 0;
}  // namespace

int64_t liveCudaBytes = 0;
int64_t liveCudaStorages = 0;

Storage::Storage(size_t nbytes, Device dev) : device(dev) {
  if (dev == Device::CPU) {
    data = allocator().take(nbytes, &bytes);
    return;
  }
  data = cudaAllocate(nbytes);
  bytes = nbytes;
  liveCudaBytes += int64_t(nbytes);
  liveCudaStorages++;
}
Storage::~Storage() {
  if (arena) return;  // the arena's memory: freed with the arena
  if (device == Device::CPU) {
    allocator().give(data, bytes);
    return;
  }
  cudaRelease(data);
  liveCudaBytes -= int64_t(bytes);
  liveCudaStorages--;
}

std::shared_ptr<void> makeArena(size_t bytes, Device device) {
  if (device == Device::CPU) {
    const size_t exact = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = allocator().takeExact(exact);
    return std::shared_ptr<void>(p, [exact](void* q) { allocator().giveExact(q, exact); });
  }
  void* p = cudaAllocate(bytes);
  liveCudaBytes += int64_t(bytes);
  liveCudaStorages++;
  return std::shared_ptr<void>(p, [bytes](void* q) {
    cudaRelease(q);
    liveCudaBytes -= int64_t(bytes);
    liveCudaStorages--;
  });
}

void moveIntoArena(Storage& s, const std::shared_ptr<void>& arena, size_t offset) {
  if (s.device == Device::CPU) {
    allocator().give(s.data, s.bytes);
  } else {
    cudaRelease(s.data);
    liveCudaBytes -= int64_t(s.bytes);
    liveCudaStorages--;
  }
  s.data = static_cast<char*>(arena.get()) + offset;
  s.arena = arena;
}

int64_t numelOf(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shapeString(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); i++) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

Tensor emptyTensor(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    if (d < 0) fail("ERR_SHAPE", "negative dimension in shape " + shapeString(shape));
  Tensor t;
  t.shape = shape;
  t.dtype = dtype;
  t.storage = std::make_shared<Storage>(static_cast<size_t>(numelOf(shape)) * dtypeSize(dtype), device);
  if (capturing()) noteCaptureAllocation(t.storage);
  return t;
}

Tensor zerosTensor(const Shape& shape, DType dtype, Device device) {
  Tensor t = emptyTensor(shape, dtype, device);
  if (device == Device::CUDA)
    cudaFill(dtype, t.raw(), t.numel(), 0.0);
  else
    std::memset(t.storage->data, 0, static_cast<size_t>(t.numel()) * dtypeSize(dtype));
  return t;
}

void requireSameDevice(const Tensor& a, const Tensor& b, const char* op) {
  if (a.device() != b.device())
    fail("ERR_DEVICE", std::string(op) + ": tensors are on different devices (" + deviceName(a.device()) + " and " +
                           deviceName(b.device()) + "); move one with .to({ device })");
}

void requireSameDtype(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype != b.dtype)
    fail("ERR_DTYPE", std::string(op) + ": dtypes differ (" + dtypeName(a.dtype) + " and " + dtypeName(b.dtype) + ")");
}

// The tensor itself when it is on the CPU, else a host copy (this is where reading a device tensor waits for it).
static Tensor onHost(const Tensor& t) {
  if (!t.onCuda()) return t;
  Tensor h = emptyTensor(t.shape, t.dtype);
  cudaCopy(h.raw(), t.raw(), size_t(t.numel()) * dtypeSize(t.dtype), INNFLOW_COPY_D2H);
  return h;
}

// Copies src's bytes into dst (same numel and dtype), across devices as needed.
static void copyBytes(const Tensor& dst, const Tensor& src) {
  size_t bytes = size_t(src.numel()) * dtypeSize(src.dtype);
  if (bytes == 0) return;
  if (!src.onCuda() && !dst.onCuda()) std::memcpy(dst.raw(), src.raw(), bytes);
  else cudaCopy(dst.raw(), src.raw(), bytes, !src.onCuda() ? INNFLOW_COPY_H2D : !dst.onCuda() ? INNFLOW_COPY_D2H : INNFLOW_COPY_D2D);
}

// Runs a copy between a and b's devices as a kernel of the step being captured. A copy within one device is
// static; a copy between host and device reads or writes host memory when it runs, so it is dynamic.
template <class F>
static void launchCopy(const Tensor& a, const Tensor& b, F&& f) {
  Device d = a.onCuda() || b.onCuda() ? Device::CUDA : Device::CPU;
  if (a.device() == b.device()) launch(d, std::forward<F>(f));
  else launchDynamic(d, std::forward<F>(f));
}

// A copy of t on `device` (same dtype).
static Tensor copyToDevice(const Tensor& t, Device device) {
  Tensor y = emptyTensor(t.shape, t.dtype, device);
  launchCopy(y, t, [=] { copyBytes(y, t); });
  return y;
}

// ---------------------------------------------------------------------------------------------------------
// TensorHandle: the JavaScript object that owns one tensor. dispose() frees at once; the finalizer is a net.

Napi::FunctionReference* TensorHandle::constructor = nullptr;

Napi::Function TensorHandle::Init(Napi::Env env) {
  Napi::Function cls = DefineClass(env, "TensorHandle",
                                   {InstanceMethod("shape", &TensorHandle::GetShape),
                                    InstanceMethod("dtype", &TensorHandle::GetDtype),
                                    InstanceMethod("device", &TensorHandle::GetDevice),
                                    InstanceMethod("meta", &TensorHandle::GetMeta),
                                    InstanceMethod("toArray", &TensorHandle::ToArray),
                                    InstanceMethod("readInto", &TensorHandle::ReadInto),
                                    InstanceMethod("item", &TensorHandle::Item),
                                    InstanceMethod("dispose", &TensorHandle::Dispose),
                                    InstanceMethod("isDisposed", &TensorHandle::IsDisposed),
                                    InstanceMethod("sharesStorage", &TensorHandle::SharesStorage)});
  constructor = new Napi::FunctionReference(Napi::Persistent(cls));
  return cls;
}

// A handle made by `new TensorHandle()` from JavaScript holds nothing and behaves as disposed.
TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}
TensorHandle::~TensorHandle() {
  if (!disposed_) {
    liveHandles--;
    if (tensor_.storage) tensor_.storage->handles--;
  }
}

void TensorHandle::set(Tensor t) {
  if (disposed_) liveHandles++;
  else if (tensor_.storage) tensor_.storage->handles--;
  tensor_ = std::move(t);
  if (tensor_.storage) tensor_.storage->handles++;
  disposed_ = false;
}

void TensorHandle::release() {
  if (disposed_) return;
  disposed_ = true;
  if (tensor_.storage) tensor_.storage->handles--;
  tensor_.storage.reset();
  liveHandles--;
}

const Tensor& TensorHandle::get(const char* what) const {
  if (disposed_) fail("ERR_DISPOSED", std::string(what) + ": tensor was disposed");
  return tensor_;
}

Napi::Value TensorHandle::GetShape(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const Tensor& t = get("shape");
    Napi::Array a = Napi::Array::New(info.Env(), t.shape.size());
    for (size_t i = 0; i < t.shape.size(); i++)
      a.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), double(t.shape[i])));
    return a;
  });
}
Napi::Value TensorHandle::GetDtype(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtypeName(get("dtype").dtype)); });
}
// [dtype, device, ...shape] in one call: every Tensor made in JavaScript reads all three, and a call across
// N-API costs more than building the array.
Napi::Value TensorHandle::GetMeta(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const Tensor& t = get("meta");
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env, t.shape.size() + 2);
    a.Set(0u, Napi::String::New(env, dtypeName(t.dtype)));
    a.Set(1u, Napi::String::New(env, deviceName(t.device())));
    for (size_t i = 0; i < t.shape.size(); i++) a.Set(static_cast<uint32_t>(i + 2), Napi::Number::New(env, double(t.shape[i])));
    return a;
  });
}
Napi::Value TensorHandle::GetDevice(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), deviceName(get("device").device())); });
}
Napi::Value TensorHandle::ToArray(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    refuseWhileCapturing("toArray");
    const Tensor t = onHost(get("toArray"));
    size_t n = static_cast<size_t>(t.numel());
    if (t.dtype == DType::F32) {
      auto arr = Napi::Float32Array::New(info.Env(), n);
      if (n) std::memcpy(arr.Data(), t.storage->data, n * 4);
      return arr;
    }
    auto arr = Napi::Float64Array::New(info.Env(), n);
    if (n) std::memcpy(arr.Data(), t.storage->data, n * 8);
    return arr;
  });
}
// Copies the values into a Float32Array/Float64Array that JavaScript made (so it belongs to the caller's realm).
Napi::Value TensorHandle::ReadInto(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    refuseWhileCapturing("toArray");
    const Tensor& dev = get("toArray");
    size_t n = static_cast<size_t>(dev.numel());
    bool ok = info.Length() > 0 && info[0].IsTypedArray();
    if (ok) {
      Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
      napi_typedarray_type want = dev.dtype == DType::F32 ? napi_float32_array : napi_float64_array;
      ok = ta.TypedArrayType() == want && ta.ElementLength() == n;
    }
    if (!ok) fail("ERR_ARGUMENT", "readInto: expected a typed array of the tensor's dtype and length");
    void* out = static_cast<uint8_t*>(info[0].As<Napi::TypedArray>().ArrayBuffer().Data()) + info[0].As<Napi::TypedArray>().ByteOffset();
    if (n == 0) return info.Env().Undefined();
    if (dev.onCuda()) cudaCopy(out, dev.raw(), n * dtypeSize(dev.dtype), INNFLOW_COPY_D2H);
    else std::memcpy(out, dev.raw(), n * dtypeSize(dev.dtype));
    return info.Env().Undefined();
  });
}
Napi::Value TensorHandle::Item(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    refuseWhileCapturing("item");
    const Tensor& dev = get("item");
    if (dev.numel() != 1) fail("ERR_SHAPE", "item: expected a tensor with one element, got shape " + shapeString(dev.shape));
    const Tensor t = onHost(dev);
    double v = t.dtype == DType::F32 ? double(t.data<float>()[0]) : t.data<double>()[0];
    return Napi::Number::New(info.Env(), v);
  });
}
Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}
Napi::Value TensorHandle::IsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }
Napi::Value TensorHandle::SharesStorage(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const Tensor& a = get("sharesStorage");
    const Tensor& b = tensorArg(info, 0, "other");
    return Napi::Boolean::New(info.Env(), a.storage == b.storage);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Argument helpers

bool isTensor(const Napi::Value& v) {
  return v.IsObject() && v.As<Napi::Object>().InstanceOf(TensorHandle::constructor->Value());
}

static std::string argLabel(size_t i, const char* name) { return std::string("argument ") + name + " (#" + std::to_string(i) + ")"; }

const Tensor& tensorArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !isTensor(info[i])) fail("ERR_ARGUMENT", argLabel(i, name) + " must be a tensor");
  return TensorHandle::Unwrap(info[i].As<Napi::Object>())->get(name);
}
double numberArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) fail("ERR_ARGUMENT", argLabel(i, name) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}
int64_t intArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double v = numberArg(info, i, name);
  if (std::floor(v) != v) fail("ERR_ARGUMENT", argLabel(i, name) + " must be an integer");
  return static_cast<int64_t>(v);
}
bool boolArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsBoolean()) fail("ERR_ARGUMENT", argLabel(i, name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}
std::vector<int64_t> intListArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsArray()) fail("ERR_ARGUMENT", argLabel(i, name) + " must be an array of integers");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsNumber()) fail("ERR_ARGUMENT", argLabel(i, name) + " must be an array of integers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::floor(d) != d) fail("ERR_ARGUMENT", argLabel(i, name) + " must be an array of integers");
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}
Shape shapeArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Shape s = intListArg(info, i, name);
  for (int64_t d : s)
    if (d < 0) fail("ERR_SHAPE", argLabel(i, name) + " has a negative dimension: " + shapeString(s));
  return s;
}
std::vector<Tensor> tensorListArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsArray()) fail("ERR_ARGUMENT", argLabel(i, name) + " must be an array of tensors");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<Tensor> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!isTensor(v)) fail("ERR_ARGUMENT", argLabel(i, name) + " must be an array of tensors");
    out.push_back(TensorHandle::Unwrap(v.As<Napi::Object>())->get(name));
  }
  return out;
}
DType dtypeArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i < info.Length() && info[i].IsString()) {
    std::string s = info[i].As<Napi::String>().Utf8Value();
    if (s == "float32") return DType::F32;
    if (s == "float64") return DType::F64;
  }
  fail("ERR_DTYPE", argLabel(i, name) + " must be 'float32' or 'float64'");
}

Napi::Value wrap(Napi::Env env, Tensor t) {
  Napi::Object obj = TensorHandle::constructor->New({});
  TensorHandle* h = TensorHandle::Unwrap(obj);
  h->set(std::move(t));
  return obj;
}
Napi::Value wrapOrNull(Napi::Env env, const Tensor* t) { return t ? wrap(env, *t) : env.Null(); }

// ---------------------------------------------------------------------------------------------------------
// Creation, copies and memory statistics

Device deviceArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || info[i].IsUndefined()) return Device::CPU;
  if (info[i].IsString()) {
    std::string s = info[i].As<Napi::String>().Utf8Value();
    if (s == "cpu") return Device::CPU;
    if (s == "cuda") {
      requireCuda(op);
      return Device::CUDA;
    }
  }
  fail("ERR_ARGUMENT", std::string(op) + ": argument device (#" + std::to_string(i) + ") must be 'cpu' or 'cuda'");
}

namespace {

// dst = (dst's dtype) src, on their (common) device.
void castInto(const Tensor& dst, const Tensor& src) {
  int64_t n = src.numel();
  if (dst.onCuda()) {
    cudaCast(src.dtype, src.raw(), dst.dtype, dst.raw(), n);
    return;
  }
  INNFLOW_DISPATCH(src.dtype, S, {
    const S* s = src.data<S>();
    INNFLOW_DISPATCH(dst.dtype, D, {
      D* d = dst.data<D>();
      for (int64_t k = 0; k < n; k++) d[k] = static_cast<D>(s[k]);
    });
  });
}

Napi::Value FromArray(const Napi::CallbackInfo& info) {
  Shape shape = shapeArg(info, 1, "shape");
  DType dtype = dtypeArg(info, 2, "dtype");
  Device device = deviceArg(info, 3, "tensor");
  Tensor t = emptyTensor(shape, dtype);
  size_t n = static_cast<size_t>(t.numel());
  Napi::Value src = info[0];
  auto fill = [&](auto get) {
    INNFLOW_DISPATCH(dtype, T, {
      T* d = t.data<T>();
      for (size_t k = 0; k < n; k++) d[k] = static_cast<T>(get(k));
    });
  };
  if (src.IsTypedArray()) {
    Napi::TypedArray ta = src.As<Napi::TypedArray>();
    if (ta.ElementLength() != n)
      fail("ERR_SHAPE", "tensor: " + std::to_string(ta.ElementLength()) + " values do not fill shape " + shapeString(shape));
    if (ta.TypedArrayType() == napi_float32_array) {
      const float* p = src.As<Napi::Float32Array>().Data();
      if (dtype == DType::F32) { if (n) std::memcpy(t.storage->data, p, n * 4); }
      else fill([&](size_t k) { return double(p[k]); });
    } else if (ta.TypedArrayType() == napi_float64_array) {
      const double* p = src.As<Napi::Float64Array>().Data();
      if (dtype == DType::F64) { if (n) std::memcpy(t.storage->data, p, n * 8); }
      else fill([&](size_t k) { return p[k]; });
    } else {
      fail("ERR_ARGUMENT", "tensor: values must be a number[], Float32Array or Float64Array");
    }
  } else if (src.IsArray()) {
    Napi::Array a = src.As<Napi::Array>();
    if (a.Length() != n)
      fail("ERR_SHAPE", "tensor: " + std::to_string(a.Length()) + " values do not fill shape " + shapeString(shape));
    std::vector<double> tmp(n);
    for (uint32_t k = 0; k < n; k++) {
      Napi::Value v = a.Get(k);
      if (!v.IsNumber()) fail("ERR_ARGUMENT", "tensor: value #" + std::to_string(k) + " is not a number");
      tmp[k] = v.As<Napi::Number>().DoubleValue();
    }
    fill([&](size_t k) { return tmp[k]; });
  } else {
    fail("ERR_ARGUMENT", "tensor: values must be a number[], Float32Array or Float64Array");
  }
  if (device == Device::CUDA) t = copyToDevice(t, Device::CUDA);
  if (capturing()) {
    // A constant made inside a captured step: each replay restores its values, in case a later kernel of the
    // step overwrote them in place.
    Tensor pristine = emptyTensor(t.shape, t.dtype, t.device());
    copyBytes(pristine, t);
    launch(t.device(), [=] { copyBytes(t, pristine); });
  }
  return wrap(info.Env(), std::move(t));
}

Napi::Value Full(const Napi::CallbackInfo& info) {
  Shape shape = shapeArg(info, 0, "shape");
  double v = numberArg(info, 1, "value");
  DType dtype = dtypeArg(info, 2, "dtype");
  Device device = deviceArg(info, 3, "full");
  Tensor t = emptyTensor(shape, dtype, device);
  launch(device, [=] {
    if (t.onCuda()) cudaFill(t.dtype, t.raw(), t.numel(), v);
    else INNFLOW_DISPATCH(t.dtype, T, { std::fill_n(t.data<T>(), t.numel(), static_cast<T>(v)); });
  });
  return wrap(info.Env(), std::move(t));
}

// Copy, optionally converting dtype.
Napi::Value Cast(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  DType dtype = dtypeArg(info, 1, "dtype");
  Tensor y = emptyTensor(x.shape, dtype, x.device());
  launch(x.device(), [x, y] { castInto(y, x); });
  return wrap(info.Env(), std::move(y));
}

// Overwrites dst's values with src's (same shape; dtype converted). Used by optimisers and state loading.
Napi::Value CopyInto(const Napi::CallbackInfo& info) {
  const Tensor& dst = tensorArg(info, 0, "dst");
  const Tensor& src = tensorArg(info, 1, "src");
  if (dst.shape != src.shape)
    fail("ERR_SHAPE", "copy: shapes differ (" + shapeString(dst.shape) + " and " + shapeString(src.shape) + ")");
  Tensor d = dst, sr = src;
  if (dst.device() == src.device()) {
    launch(dst.device(), [d, sr] { castInto(d, sr); });
  } else {
    // Across devices (state dicts loaded from disk into GPU modules): move src to dst's device, then convert.
    Tensor moved = emptyTensor(src.shape, src.dtype, dst.device());
    launchCopy(moved, src, [moved, sr] {
      copyBytes(moved, sr);
    });
    launch(dst.device(), [d, moved] { castInto(d, moved); });
  }
  return info.Env().Undefined();
}

// A view with another shape over the same storage (contiguous data makes every reshape a view).
Napi::Value Reshape(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  Shape shape = shapeArg(info, 1, "shape");
  if (numelOf(shape) != x.numel())
    fail("ERR_SHAPE", "reshape: cannot view shape " + shapeString(x.shape) + " as " + shapeString(shape));
  Tensor y = x;
  y.shape = shape;
  return wrap(info.Env(), std::move(y));
}

// A copy of x on another device (same dtype).
Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  Device device = deviceArg(info, 1, "to");
  return wrap(info.Env(), copyToDevice(x, device));
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("tensors", Napi::Number::New(info.Env(), double(liveHandles)));
  o.Set("storages", Napi::Number::New(info.Env(), double(a.liveStorages)));
  o.Set("bytes", Napi::Number::New(info.Env(), double(a.liveBytes)));
  o.Set("cachedBytes", Napi::Number::New(info.Env(), double(a.cachedBytes)));
  o.Set("peakBytes", Napi::Number::New(info.Env(), double(a.peakBytes)));
  o.Set("cudaStorages", Napi::Number::New(info.Env(), double(liveCudaStorages)));
  o.Set("cudaBytes", Napi::Number::New(info.Env(), double(liveCudaBytes)));
  return o;
}

// Restarts the host high-water mark at the bytes live now.
Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.peakBytes = a.liveBytes;
  return info.Env().Undefined();
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  {
    Allocator& a = allocator();
    std::lock_guard<std::mutex> lock(a.mutex);
    a.releaseCacheLocked();
  }
  if (cudaLoaded()) cudaEmptyCache();
  return info.Env().Undefined();
}

}  // namespace

void registerTensor(Napi::Env env, Napi::Object exports) {
  exports.Set("TensorHandle", TensorHandle::Init(env));
  defineFunction(env, exports, "fromArray", FromArray);
  defineFunction(env, exports, "full", Full);
  defineFunction(env, exports, "cast", Cast);
  defineFunction(env, exports, "copyInto", CopyInto);
  defineFunction(env, exports, "reshape", Reshape);
  defineFunction(env, exports, "toDevice", ToDevice);
  defineFunction(env, exports, "memory", Memory);
  defineFunction(env, exports, "emptyCache", EmptyCache);
  defineFunction(env, exports, "resetPeak", ResetPeak);
}

}  // namespace innflow

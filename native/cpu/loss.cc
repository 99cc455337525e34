// The Gaussian negative log-likelihood of a normalizing flow, forward and backward side by side.
//
// gaussianNll(z: [B, *E], logJacDet: [B] | null) -> loss: []
//   loss = (1/B)·Σ_b (½·Σ_e z_be² + (D/2)·log 2π − logJacDet_b),   D = |E| (elements per sample)
// gaussianNllBackward(g: [], z, needZ, needLogJacDet) -> [gz: like z | null, gLogJacDet: [B] | null]
//   gz = (g/B)·z,   gLogJacDet_b = −g/B
// The mean training loss of lib/train/objective.ts (nllLoss) in one pass: −mean(log N(z; 0, I) + logJacDet) for
// a standard normal latent. Without logJacDet its term is left out (the further latents of a flow with several
// outputs). Each row's Σ z² is taken in double (float64: one accumulator in order; float32: 8 interleaved lanes,
// which GCC vectorises), then the rows in order: the result does not depend on the thread count.
// CUDA tensors run cuda/loss.cu (same formulas).
//
// Compiled steps (native/capture.h): both entry points check their arguments and allocate their outputs, then
// run everything (either device) through launch(); the backward reads g when it runs.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "../../cuda/loss.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"

namespace innflow {
namespace {

const InnflowCudaLoss& gpu() { return cudaTable<InnflowCudaLoss>("innflow_cuda_loss"); }

// Same grain as elementwise.cc: below ~256k elements a call stays on the calling thread.
constexpr int64_t kGrain = 262144;
const double kLog2Pi = std::log(2 * M_PI);

// Σ v[j]² over [0, n) in double, in a fixed order.
template <class T>
__attribute__((noinline)) double rowSquares(const T* __restrict v, int64_t n) {
  if (std::is_same<T, double>::value) {
    double acc = 0;
    for (int64_t j = 0; j < n; j++) acc += double(v[j]) * double(v[j]);
    return acc;
  }
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; l++) lanes[l] += double(v[j + l]) * double(v[j + l]);
  double acc = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; j < n; j++) acc += double(v[j]) * double(v[j]);
  return acc;
}

template <class T>
void forwardCpu(const T* z, const T* ljd, T* loss, int64_t B, int64_t D) {
  std::vector<double> rows(static_cast<size_t>(B));
  double* rs = rows.data();
  parallelFor(B, std::max<int64_t>(1, kGrain / std::max<int64_t>(D, 1)), [&](int64_t rb, int64_t re) {
    for (int64_t b = rb; b < re; b++) rs[b] = rowSquares<T>(z + b * D, D);
  });
  const double c = 0.5 * double(D) * kLog2Pi;
  double total = 0;
  for (int64_t b = 0; b < B; b++) total += 0.5 * rs[b] + c - (ljd ? double(ljd[b]) : 0.0);
  loss[0] = T(total / double(B));
}

template <class T>
void backwardCpu(const T* g, const T* z, T* gz, T* gljd, int64_t B, int64_t D) {
  const double s = double(g[0]) / double(B);
  const T sz = T(s);
  if (gz)
    parallelFor(B * D, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) gz[i] = z[i] * sz;
    });
  if (gljd) std::fill_n(gljd, B, T(-s));
}

// z: (B, ...) with at least one axis.
void checkZ(const Tensor& z, const char* op) {
  if (z.dim() < 1) fail("ERR_SHAPE", std::string(op) + ": z must have shape (B, ...), got a 0-d tensor");
}

Napi::Value GaussianNll(const Napi::CallbackInfo& info) {
  const char* op = "gaussianNll";
  const Tensor& z = tensorArg(info, 0, "z");
  const bool hasLjd = info.Length() > 1 && isTensor(info[1]);
  checkZ(z, op);
  const int64_t B = z.shape[0];
  const int64_t D = B == 0 ? 0 : z.numel() / B;
  Tensor ljd;
  if (hasLjd) {
    ljd = tensorArg(info, 1, "logJacDet");
    if (ljd.shape != Shape{B})
      fail("ERR_SHAPE", std::string(op) + ": logJacDet must have shape (" + std::to_string(B) + ") for z of shape " +
                            shapeString(z.shape) + ", got " + shapeString(ljd.shape));
    requireSameDtype(ljd, z, op);
    requireSameDevice(ljd, z, op);
  }
  Tensor loss = emptyLike({}, z.dtype, z);
  launch(z.device(), [=] {
    if (z.onCuda()) {
      cudaCheck(gpu().forward(cudaDtype(z.dtype), z.raw(), hasLjd ? ljd.raw() : nullptr, loss.raw(), B, D), op);
      return;
    }
    INNFLOW_DISPATCH(z.dtype, T, { forwardCpu<T>(z.data<T>(), hasLjd ? ljd.data<T>() : nullptr, loss.data<T>(), B, D); });
  });
  return wrap(info.Env(), std::move(loss));
}

Napi::Value GaussianNllBackward(const Napi::CallbackInfo& info) {
  const char* op = "gaussianNll backward";
  const Tensor& g = tensorArg(info, 0, "g");
  const Tensor& z = tensorArg(info, 1, "z");
  const bool needZ = boolArg(info, 2, "needZ");
  const bool needLjd = boolArg(info, 3, "needLogJacDet");
  checkZ(z, op);
  if (g.numel() != 1) fail("ERR_SHAPE", std::string(op) + ": g must hold one value, got shape " + shapeString(g.shape));
  requireSameDtype(g, z, op);
  requireSameDevice(g, z, op);
  const int64_t B = z.shape[0];
  const int64_t D = B == 0 ? 0 : z.numel() / B;
  Tensor gz, gljd;
  if (needZ) gz = emptyLike(z.shape, z.dtype, z);
  if (needLjd) gljd = emptyLike({B}, z.dtype, z);
  launch(z.device(), [=] {
    if (z.onCuda()) {
      cudaCheck(gpu().backward(cudaDtype(z.dtype), g.raw(), z.raw(), needZ ? gz.raw() : nullptr,
                               needLjd ? gljd.raw() : nullptr, B, D),
                op);
      return;
    }
    INNFLOW_DISPATCH(z.dtype, T, {
      backwardCpu<T>(g.data<T>(), z.data<T>(), needZ ? gz.data<T>() : nullptr, needLjd ? gljd.data<T>() : nullptr, B, D);
    });
  });
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, needZ ? wrap(env, std::move(gz)) : env.Null());
  result.Set(1u, needLjd ? wrap(env, std::move(gljd)) : env.Null());
  return result;
}

}  // namespace

void registerLoss(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "gaussianNll", GaussianNll);
  defineFunction(env, exports, "gaussianNllBackward", GaussianNllBackward);
}

}  // namespace innflow

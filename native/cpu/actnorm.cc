// ActNorm's per-channel affine map with its log-determinant, forward and backward side by side.
//
// actnorm(x: [B, C, *S], loc: [1, C, 1..] | [C], logScale: like loc, rev) -> [y: [B, C, *S], logDet: [B]]
//   e_c = exp(logScale_c)
//   forward  y = (x − loc_c) / e_c,   logDet_b = −nPix·Σ_c logScale_c
//   rev      y = x·e_c + loc_c,       logDet_b = +nPix·Σ_c logScale_c
// nPix = |S| (the elements of one channel of one sample). The same operations and roundings as the op chain of
// lib/modules/actnorm.ts before fusion (exp, sub, div / mul, add; sum, mul), so float64 results agree with it
// bit for bit; the Σ over C accumulates in double (float32 too, as the reduce family does).
//
// actnormBackward(gy: [B, C, *S] | null, gLogDet: [B] | null, x, loc, logScale, rev, needX, needLoc, needLogScale)
//     -> [gx | null, gloc | null, glogScale | null]
//   forward  gx = gy/e,  gloc_c = −Σ_{b,s} gy/e,  glogScale_c = −Σ_{b,s} gy·y − nPix·Σ_b gLogDet_b
//   rev      gx = gy·e,  gloc_c = Σ_{b,s} gy,     glogScale_c =  Σ_{b,s} gy·x·e + nPix·Σ_b gLogDet_b
// An absent gy counts as zeros, an absent gLogDet too. The sums over (b, s) are taken per (b, c) row in double
// (each row in order), then per channel over b in order: the result does not depend on the thread count.
// CUDA tensors run cuda/actnorm.cu (same formulas; CUDA's exp there).
//
// Compiled steps (native/capture.h): both entry points check their arguments and allocate their outputs, then
// run everything (either device) through launch().
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../../cuda/actnorm.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"
#include "fast_math.h"

namespace innflow {
namespace {

const InnflowCudaActNorm& gpu() { return cudaTable<InnflowCudaActNorm>("innflow_cuda_actnorm"); }

// Same grain as elementwise.cc: below ~256k elements a call stays on the calling thread.
constexpr int64_t kGrain = 262144;

struct Dims {
  int64_t B, C, S;
};

// x: (B, C, *S); loc and logScale: (C) or (1, C, 1, ...) of x's rank; one dtype and device.
Dims checkArgs(const Tensor& x, const Tensor& loc, const Tensor& logScale, const char* op) {
  if (x.dim() < 2) fail("ERR_SHAPE", std::string(op) + ": x must have shape (B, C, ...), got " + shapeString(x.shape));
  Dims d{x.shape[0], x.shape[1], 1};
  for (int64_t k = 2; k < x.dim(); k++) d.S *= x.shape[k];
  for (const auto& [p, name] : {std::pair<const Tensor*, const char*>{&loc, "loc"}, {&logScale, "logScale"}}) {
    bool ok = p->shape == Shape{d.C};
    if (!ok && p->dim() == x.dim()) {
      ok = true;
      for (int64_t k = 0; k < p->dim(); k++) ok = ok && p->shape[k] == (k == 1 ? d.C : 1);
    }
    if (!ok)
      fail("ERR_SHAPE", std::string(op) + ": " + name + " must have shape (1, " + std::to_string(d.C) +
                            ", 1, ...) of x's rank or (" + std::to_string(d.C) + ") for x of shape " + shapeString(x.shape) +
                            ", got " + shapeString(p->shape));
    requireSameDtype(*p, x, op);
    requireSameDevice(*p, x, op);
  }
  return d;
}

// ------------------------------------------------------------------------------------------------ forward

// One (b, c) row of S values.
template <class T, bool REV>
__attribute__((noinline)) void forwardRow(const T* __restrict xr, T* __restrict yr, int64_t S, const T loc, const T e) {
  for (int64_t j = 0; j < S; j++) yr[j] = REV ? xr[j] * e + loc : (xr[j] - loc) / e;
}

template <class T>
void forwardCpu(const T* x, const T* loc, const T* ls, T* y, T* ld, const Dims d, bool rev) {
  std::vector<T> e(static_cast<size_t>(d.C));
  double sum = 0;
  for (int64_t c = 0; c < d.C; c++) {
    e[c] = expOf(ls[c]);
    sum += double(ls[c]);
  }
  const T v = T(sum) * T(rev ? double(d.S) : -double(d.S));
  std::fill_n(ld, d.B, v);
  const T* ep = e.data();
  parallelFor(d.B * d.C, std::max<int64_t>(1, kGrain / std::max<int64_t>(d.S, 1)), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; r++) {
      const int64_t c = r % d.C;
      if (rev) forwardRow<T, true>(x + r * d.S, y + r * d.S, d.S, loc[c], ep[c]);
      else forwardRow<T, false>(x + r * d.S, y + r * d.S, d.S, loc[c], ep[c]);
    }
  });
}

// ------------------------------------------------------------------------------------------------ backward

// One (b, c) row: gx (if wanted), Σ gy and Σ gy·∂y/∂logScale in double into sums[0..1].
template <class T, bool REV>
__attribute__((noinline)) void backwardRow(const T* __restrict gyr, const T* __restrict xr, T* __restrict gxr, int64_t S,
                                           const T loc, const T e, double* sums) {
  double sg = 0, sl = 0;
  for (int64_t j = 0; j < S; j++) {
    const T g = gyr[j];
    if (REV) {
      if (gxr) gxr[j] = g * e;
      sg += double(g);
      sl += double(g * (xr[j] * e));
    } else {
      const T ge = g / e;
      if (gxr) gxr[j] = ge;
      sg += double(ge);
      sl += double(g * ((xr[j] - loc) / e));
    }
  }
  sums[0] = sg;
  sums[1] = sl;
}

template <class T>
void backwardCpu(const T* gy, const T* gl, const T* x, const T* loc, const T* ls, T* gx, T* gloc, T* gls, const Dims d,
                 bool rev) {
  double sumGl = 0;
  if (gl)
    for (int64_t b = 0; b < d.B; b++) sumGl += double(gl[b]);
  // the log-det's share of glogScale: ±nPix·Σ_b gLogDet (each channel alike)
  const T ldPart = T(sumGl) * T(rev ? double(d.S) : -double(d.S));
  if (!gy) {
    if (gx) std::fill_n(gx, d.B * d.C * d.S, T(0));
    if (gloc) std::fill_n(gloc, d.C, T(0));
    if (gls) std::fill_n(gls, d.C, ldPart);
    return;
  }
  std::vector<T> e(static_cast<size_t>(d.C));
  for (int64_t c = 0; c < d.C; c++) e[c] = expOf(ls[c]);
  std::vector<double> rowSums(static_cast<size_t>(2 * d.B * d.C));
  const T* ep = e.data();
  double* rs = rowSums.data();
  parallelFor(d.B * d.C, std::max<int64_t>(1, kGrain / std::max<int64_t>(d.S, 1)), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; r++) {
      const int64_t c = r % d.C;
      T* gxr = gx ? gx + r * d.S : nullptr;
      if (rev) backwardRow<T, true>(gy + r * d.S, x + r * d.S, gxr, d.S, loc[c], ep[c], rs + 2 * r);
      else backwardRow<T, false>(gy + r * d.S, x + r * d.S, gxr, d.S, loc[c], ep[c], rs + 2 * r);
    }
  });
  for (int64_t c = 0; c < d.C; c++) {
    double sg = 0, sl = 0;
    for (int64_t b = 0; b < d.B; b++) {
      sg += rs[2 * (b * d.C + c)];
      sl += rs[2 * (b * d.C + c) + 1];
    }
    if (gloc) gloc[c] = rev ? T(sg) : T(-sg);
    if (gls) gls[c] = (rev ? T(sl) : T(-sl)) + ldPart;
  }
}

// ------------------------------------------------------------------------------------------------ entry points

Napi::Value ActNorm(const Napi::CallbackInfo& info) {
  const char* op = "actnorm";
  const Tensor& x = tensorArg(info, 0, "x");
  const Tensor& loc = tensorArg(info, 1, "loc");
  const Tensor& logScale = tensorArg(info, 2, "logScale");
  const bool rev = boolArg(info, 3, "rev");
  const Dims d = checkArgs(x, loc, logScale, op);
  Tensor y = emptyLike(x.shape, x.dtype, x);
  Tensor logDet = emptyLike({d.B}, x.dtype, x);
  launch(x.device(), [=] {
    if (x.onCuda()) {
      cudaCheck(gpu().forward(cudaDtype(x.dtype), x.raw(), loc.raw(), logScale.raw(), y.raw(), logDet.raw(), d.B, d.C,
                              d.S, rev ? 1 : 0),
                op);
      return;
    }
    INNFLOW_DISPATCH(x.dtype, T, {
      forwardCpu<T>(x.data<T>(), loc.data<T>(), logScale.data<T>(), y.data<T>(), logDet.data<T>(), d, rev);
    });
  });
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, wrap(env, std::move(y)));
  result.Set(1u, wrap(env, std::move(logDet)));
  return result;
}

Napi::Value ActNormBackward(const Napi::CallbackInfo& info) {
  const char* op = "actnorm backward";
  const bool hasGy = info.Length() > 0 && isTensor(info[0]);
  const bool hasGl = info.Length() > 1 && isTensor(info[1]);
  const Tensor& x = tensorArg(info, 2, "x");
  const Tensor& loc = tensorArg(info, 3, "loc");
  const Tensor& logScale = tensorArg(info, 4, "logScale");
  const bool rev = boolArg(info, 5, "rev");
  const bool needX = boolArg(info, 6, "needX");
  const bool needLoc = boolArg(info, 7, "needLoc");
  const bool needLogScale = boolArg(info, 8, "needLogScale");
  const Dims d = checkArgs(x, loc, logScale, op);
  Tensor gy, gl;
  if (hasGy) {
    gy = tensorArg(info, 0, "gy");
    if (gy.shape != x.shape)
      fail("ERR_SHAPE", std::string(op) + ": gy must have shape " + shapeString(x.shape) + ", got " + shapeString(gy.shape));
    requireSameDtype(gy, x, op);
    requireSameDevice(gy, x, op);
  }
  if (hasGl) {
    gl = tensorArg(info, 1, "gLogDet");
    if (gl.shape != Shape{d.B})
      fail("ERR_SHAPE", std::string(op) + ": gLogDet must have shape " + shapeString({d.B}) + ", got " + shapeString(gl.shape));
    requireSameDtype(gl, x, op);
    requireSameDevice(gl, x, op);
  }
  Tensor gx, gloc, gls;
  if (needX) gx = emptyLike(x.shape, x.dtype, x);
  if (needLoc) gloc = emptyLike(loc.shape, x.dtype, x);
  if (needLogScale) gls = emptyLike(logScale.shape, x.dtype, x);
  launch(x.device(), [=] {
    if (x.onCuda()) {
      cudaCheck(gpu().backward(cudaDtype(x.dtype), hasGy ? gy.raw() : nullptr, hasGl ? gl.raw() : nullptr, x.raw(),
                               loc.raw(), logScale.raw(), needX ? gx.raw() : nullptr, needLoc ? gloc.raw() : nullptr,
                               needLogScale ? gls.raw() : nullptr, d.B, d.C, d.S, rev ? 1 : 0),
                op);
      return;
    }
    INNFLOW_DISPATCH(x.dtype, T, {
      backwardCpu<T>(hasGy ? gy.data<T>() : nullptr, hasGl ? gl.data<T>() : nullptr, x.data<T>(), loc.data<T>(),
                     logScale.data<T>(), needX ? gx.data<T>() : nullptr, needLoc ? gloc.data<T>() : nullptr,
                     needLogScale ? gls.data<T>() : nullptr, d, rev);
    });
  });
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, 3);
  result.Set(0u, needX ? wrap(env, std::move(gx)) : env.Null());
  result.Set(1u, needLoc ? wrap(env, std::move(gloc)) : env.Null());
  result.Set(2u, needLogScale ? wrap(env, std::move(gls)) : env.Null());
  return result;
}

}  // namespace

void registerActNorm(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "actnorm", ActNorm);
  defineFunction(env, exports, "actnormBackward", ActNormBackward);
}

}  // namespace innflow

// The fused affine coupling of the coupling blocks and AllInOneBlock, forward and backward side by side.
//
// affineCoupling(a: [B, 2·C2, *S], x2: [B, C2, *S], kind, preScale, clamp, gin, rev, save)
//     -> [y2: [B, C2, *S], logDet: [B], E: [B, C2, *S] | null, D: [B, C2, *S] | null]
// affineCouplingBackward(gy2 | null, gLogDet: [B] | null, a, x2, E, D, kind, preScale, gin, rev, needX2)
//     -> [ga: [B, 2·C2, *S], gx2 | null]
//
// Per sample (a row of n = C2·|S| values; a's row holds a_s then a_t, each n long):
//   u  = preScale·a_s,   t = preScale·a_t
//   s₀ = clamp·tanh(u/clamp)        kind TANH_DIV (AllInOneBlock's soft clamp)
//      | (0.636·clamp)·atan(u)      kind ATAN     (the coupling blocks' default; u is not divided by clamp)
//      | clamp·tanh(u)              kind TANH
//      | (σ(u) − ½)·(2·clamp)       kind SIGMOID
//      | u                          kind NONE
//   s  = s₀ − mean_row(s₀) with gin, else s₀
//   forward  y2 = x2·e^s + t,          logDet = Σ_row s
//   rev      y2 = (x2 − t)·e^{−s},     logDet = −Σ_row s
// Every step is the operation (and the rounding) of the op chain the modules used before (out.mul(0.1), split,
// div, tanh, mul, mean, sub, exp, mul, add, sum), so float64 results agree with it bit for bit, float32 ones up to
// the order of the double row sums. With save, E = e^{±s} and D = ∂s₀/∂a_s are kept for the backward:
//   forward  gx2 = gy2·E,  gs = gy2·x2·E + gLogDet,        ga_t = preScale·gy2
//   rev      gx2 = gy2·E,  gs = −gy2·(x2 − t)·E − gLogDet,  ga_t = −preScale·gy2·E
//   gin      gs ← gs − mean_row(gs);   ga_s = gs·D
// An absent gy2 counts as zeros. Row sums accumulate in double (float32 too, as the reduce family does).
//
// The loops over a row are branch-free (fastExp/fastTanh for float32) so that GCC vectorises them; each row is
// finished while it is in L1 (the sums read back a small row buffer). Rows are split over the thread pool with
// the elementwise family's grain. CUDA tensors run cuda/coupling.cu (same formulas; CUDA's expf/tanhf there).
//
// Compiled steps (native/capture.h): each entry point checks its arguments and allocates its outputs, then runs
// its kernel (either device) through launch(), so a replay recomputes the outputs in place. The permutation of
// catAffinePermute / permuteAffineSplit is checked at the call and read again by the kernel each time it runs (as
// the GPU kernels read it), so a replay follows a permutation overwritten in place; one that is no longer a
// permutation then gives NaN results, as on the GPU.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "../../cuda/coupling.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"
#include "fast_math.h"

namespace innflow {
namespace {

enum ClampKind : int { K_TANH_DIV, K_ATAN, K_TANH, K_SIGMOID, K_NONE, K_COUNT };
const char* kClampNames[K_COUNT] = {"TANH_DIV", "ATAN", "TANH", "SIGMOID", "NONE"};
static_assert(int(K_TANH_DIV) == int(INNFLOW_CLAMP_TANH_DIV) && int(K_ATAN) == int(INNFLOW_CLAMP_ATAN) &&
                  int(K_TANH) == int(INNFLOW_CLAMP_TANH) && int(K_SIGMOID) == int(INNFLOW_CLAMP_SIGMOID) &&
                  int(K_NONE) == int(INNFLOW_CLAMP_NONE) && int(K_COUNT) == int(INNFLOW_CLAMP_COUNT),
              "clamp codes differ from cuda/coupling.h");

// FrEIA's constant of the 'ATAN' soft clamp (lib/modules/coupling-base.ts ATAN_FACTOR).
constexpr double kAtanFactor = 0.636;

const InnflowCudaCoupling& gpu() { return cudaTable<InnflowCudaCoupling>("innflow_cuda_coupling"); }

// Same grain as elementwise.cc: below ~256k elements a call stays on the calling thread.
constexpr int64_t kGrain = 262144;

// The constants of a call in the dtype, as the op chain converted them (each a 0-d tensor of the dtype there).
template <class T>
struct Consts {
  T ps;      // preScale
  T clamp;   // clamp (TANH_DIV divides and multiplies by it, TANH multiplies)
  T k;       // ATAN: clamp·0.636, SIGMOID: 2·clamp (computed in double, as JavaScript did)
  T dScale;  // the factor of D that does not depend on u: preScale, preScale·clamp, preScale·k
};

template <class T>
Consts<T> makeConsts(int kind, double preScale, double clamp) {
  Consts<T> c;
  c.ps = T(preScale);
  c.clamp = T(clamp);
  const double k = kind == K_ATAN ? clamp * kAtanFactor : kind == K_SIGMOID ? 2 * clamp : clamp;
  c.k = T(k);
  c.dScale = kind == K_TANH_DIV || kind == K_NONE ? T(preScale) : T(preScale * k);
  return c;
}

// s₀ and ∂s₀/∂a for one raw log-scale a.
template <class T, int K>
__attribute__((always_inline)) inline void softClamp(T a, const Consts<T>& c, T& s0, T& d) {
  const T u = a * c.ps;
  if (K == K_TANH_DIV) {
    const T th = tanhOf(u / c.clamp);
    s0 = th * c.clamp;
    d = c.dScale * (T(1) - th * th);
  } else if (K == K_ATAN) {
    s0 = std::atan(u) * c.k;
    d = c.dScale / (T(1) + u * u);
  } else if (K == K_TANH) {
    const T th = tanhOf(u);
    s0 = th * c.clamp;
    d = c.dScale * (T(1) - th * th);
  } else if (K == K_SIGMOID) {
    const T sg = sigmoidOf(u);
    s0 = (sg - T(0.5)) * c.k;
    d = c.dScale * (sg * (T(1) - sg));
  } else {
    s0 = u;
    d = c.dScale;
  }
}

// Σ v[0..n) in double. float64: one accumulator in order (the reduce family's order, so logDet matches the op
// chain bit for bit); float32: 8 interleaved accumulators, which GCC vectorises (the float32 result is rounded
// from a double sum either way).
template <class T>
inline double rowSum(const T* __restrict v, int64_t n) {
  if (std::is_same<T, double>::value) {
    double acc = 0;
    for (int64_t j = 0; j < n; j++) acc += double(v[j]);
    return acc;
  }
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; l++) lanes[l] += double(v[j + l]);
  double acc = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; j < n; j++) acc += double(v[j]);
  return acc;
}

template <class F>
void withKind(int kind, F&& f) {
  switch (kind) {
    case K_TANH_DIV: f(std::integral_constant<int, K_TANH_DIV>()); return;
    case K_ATAN: f(std::integral_constant<int, K_ATAN>()); return;
    case K_TANH: f(std::integral_constant<int, K_TANH>()); return;
    case K_SIGMOID: f(std::integral_constant<int, K_SIGMOID>()); return;
    default: f(std::integral_constant<int, K_NONE>()); return;
  }
}

template <class F>
void withBool(bool v, F&& f) {
  if (v) f(std::true_type());
  else f(std::false_type());
}

// ------------------------------------------------------------------------------------------------ forward
// The row loops live in functions of their own whose pointers are __restrict parameters: with restrict-qualified
// locals GCC still had to prove that the seven row pointers do not overlap, gave up past its limit of alias
// checks and left the loops scalar (7 ns per value instead of under 1). They are compiled twice, for AVX2 and
// for baseline x86-64, and the loader picks one (target_clones): 8-wide instead of 4-wide vectors, the same
// arithmetic (AVX2 alone allows no fused multiply-adds), so the results do not depend on the CPU.

// One row: s (gin: s₀) into buf, y2 unless gin, E and D when saving. Returns nothing; the caller sums buf.
template <class T, int K, bool REV, bool SAVE, bool GIN>
__attribute__((noinline, target_clones("avx2", "default"))) void forwardPass1(const T* __restrict ar, const T* __restrict tr, const T* __restrict xr,
                                            T* __restrict yr, T* __restrict buf, T* __restrict Er, T* __restrict Dr,
                                            int64_t n, const Consts<T> c) {
  for (int64_t j = 0; j < n; j++) {
    T s, d;
    softClamp<T, K>(ar[j], c, s, d);
    buf[j] = s;
    if (SAVE) Dr[j] = d;
    if (!GIN) {
      const T t = tr[j] * c.ps;
      const T e = expOf(REV ? -s : s);
      yr[j] = REV ? (xr[j] - t) * e : xr[j] * e + t;
      if (SAVE) Er[j] = e;
    }
  }
}

// Without GIN, a block of rows in one call: s into bufs (rows × n), y2, and E and D when saving. One call per row
// (n = 32 in a 64-dimensional AllInOneBlock) ran four vectors of its long tanh/exp dependency chains at a time; a
// block of rows in one loop lets the iterations overlap (0.60 → 0.51 ms for 4096 × 32 values on one core).
template <class T, int K, bool REV, bool SAVE>
__attribute__((noinline, target_clones("avx2", "default"))) void forwardBlock(const T* __restrict as, const T* __restrict xs,
                                            T* __restrict ys, T* __restrict bufs, T* __restrict Es, T* __restrict Ds,
                                            int64_t rows, int64_t n, const Consts<T> c) {
  // Two passes, the soft clamp and then the exponential: each has half the dependency chain of the two together, so
  // more iterations fit in the core's window at once (0.51 → 0.44 ms). The arithmetic is the same either way.
  for (int64_t r = 0; r < rows; r++) {
    const T* ar = as + r * 2 * n;
    for (int64_t j = 0; j < n; j++) {
      T s, d;
      softClamp<T, K>(ar[j], c, s, d);
      bufs[r * n + j] = s;
      if (SAVE) Ds[r * n + j] = d;
    }
  }
  for (int64_t r = 0; r < rows; r++) {
    const T* tr = as + r * 2 * n + n;
    for (int64_t j = 0; j < n; j++) {
      const T s = bufs[r * n + j];
      const T t = tr[j] * c.ps;
      const T e = expOf(REV ? -s : s);
      ys[r * n + j] = REV ? (xs[r * n + j] - t) * e : xs[r * n + j] * e + t;
      if (SAVE) Es[r * n + j] = e;
    }
  }
}

// GIN's second pass over a row: s = s₀ − mean (back into buf), y2, E.
template <class T, bool REV, bool SAVE>
__attribute__((noinline, target_clones("avx2", "default"))) void forwardPass2(const T* __restrict tr, const T* __restrict xr, T* __restrict yr,
                                            T* __restrict buf, T* __restrict Er, int64_t n, const T mean, const T ps) {
  for (int64_t j = 0; j < n; j++) {
    const T s = buf[j] - mean;
    buf[j] = s;
    const T t = tr[j] * ps;
    const T e = expOf(REV ? -s : s);
    yr[j] = REV ? (xr[j] - t) * e : xr[j] * e + t;
    if (SAVE) Er[j] = e;
  }
}

template <class T, int K, bool REV, bool SAVE>
void forwardRows(const T* as, const T* xs, T* ys, T* lds, T* Es, T* Ds, int64_t rows, int64_t n, const Consts<T> c,
                 bool gin) {
  parallelFor(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), [&](int64_t rb, int64_t re) {
    if (!gin) {
      // blocks of about 4k values: their s stay in L1 for the row sums
      const int64_t block = std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1));
      std::vector<T> buffer(static_cast<size_t>(block * n));
      for (int64_t r0 = rb; r0 < re; r0 += block) {
        const int64_t m = std::min(block, re - r0);
        forwardBlock<T, K, REV, SAVE>(as + r0 * 2 * n, xs + r0 * n, ys + r0 * n, buffer.data(), SAVE ? Es + r0 * n : nullptr,
                                      SAVE ? Ds + r0 * n : nullptr, m, n, c);
        for (int64_t r = 0; r < m; r++) {
          const T sum = T(rowSum(buffer.data() + r * n, n));
          lds[r0 + r] = REV ? -sum : sum;
        }
      }
      return;
    }
    std::vector<T> buffer(static_cast<size_t>(n));
    T* buf = buffer.data();
    for (int64_t r = rb; r < re; r++) {
      const T* ar = as + r * 2 * n;
      const T* xr = xs + r * n;
      T* yr = ys + r * n;
      T* Er = SAVE ? Es + r * n : nullptr;
      T* Dr = SAVE ? Ds + r * n : nullptr;
      if (gin) {
        // s₀ first, centred once its row mean is known
        forwardPass1<T, K, REV, SAVE, true>(ar, ar + n, xr, yr, buf, Er, Dr, n, c);
        const T mean = T(rowSum(buf, n) * (1.0 / double(n)));
        forwardPass2<T, REV, SAVE>(ar + n, xr, yr, buf, Er, n, mean, c.ps);
      } else {
        forwardPass1<T, K, REV, SAVE, false>(ar, ar + n, xr, yr, buf, Er, Dr, n, c);
      }
      const T sum = T(rowSum(buf, n));
      lds[r] = REV ? -sum : sum;
    }
  });
}

// ------------------------------------------------------------------------------------------------ backward

// One row with gy2: gs (times D unless GIN, where it goes to buf to be centred), ga_t, gx2 if wanted.
template <class T, bool REV, bool GIN, bool GX>
__attribute__((noinline, target_clones("avx2", "default"))) void backwardPass(const T* __restrict gyr, const T* __restrict tr, const T* __restrict xr,
                                            const T* __restrict Er, const T* __restrict Dr, T* __restrict dst,
                                            T* __restrict gtr, T* __restrict gxr, int64_t n, const T gl, const T p) {
  for (int64_t j = 0; j < n; j++) {
    const T g = gyr[j], e = Er[j];
    const T ge = g * e;
    const T gs = REV ? -(ge * (xr[j] - tr[j] * p)) - gl : ge * xr[j] + gl;
    dst[j] = GIN ? gs : gs * Dr[j];
    gtr[j] = REV ? -(ge * p) : g * p;
    if (GX) gxr[j] = ge;
  }
}

// ga_s = (buf − mean)·D.
template <class T>
__attribute__((noinline)) void centredTimes(const T* __restrict buf, const T* __restrict Dr, T* __restrict gsr,
                                            int64_t n, const T mean) {
  for (int64_t j = 0; j < n; j++) gsr[j] = (buf[j] - mean) * Dr[j];
}

template <class T, bool REV, bool GY>
void backwardRows(const T* gys, const T* gls, const T* as, const T* xs, const T* Es, const T* Ds, T* gas, T* gxs,
                  int64_t rows, int64_t n, T ps, bool gin) {
  parallelFor(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), [&](int64_t rb, int64_t re) {
    std::vector<T> buffer(gin ? static_cast<size_t>(n) : 0);
    T* buf = buffer.data();
    for (int64_t r = rb; r < re; r++) {
      const T gl = gls ? gls[r] : T(0);
      const T* tr = as + r * 2 * n + n;
      const T* Dr = Ds + r * n;
      T* gsr = gas + r * 2 * n;  // ga_s
      T* gtr = gsr + n;          // ga_t
      T* dst = gin ? buf : gsr;  // gs, centred first with gin
      if (GY) {
        const T* gyr = gys + r * n;
        const T* xr = xs + r * n;
        const T* Er = Es + r * n;
        T* gxr = gxs ? gxs + r * n : nullptr;
        if (gin) {
          if (gxr) backwardPass<T, REV, true, true>(gyr, tr, xr, Er, Dr, dst, gtr, gxr, n, gl, ps);
          else backwardPass<T, REV, true, false>(gyr, tr, xr, Er, Dr, dst, gtr, gxr, n, gl, ps);
        } else {
          if (gxr) backwardPass<T, REV, false, true>(gyr, tr, xr, Er, Dr, dst, gtr, gxr, n, gl, ps);
          else backwardPass<T, REV, false, false>(gyr, tr, xr, Er, Dr, dst, gtr, gxr, n, gl, ps);
        }
      } else {
        // only the log-det has a gradient: gs = ±gLogDet everywhere (zero once centred), no shift gradient
        const T gs = REV ? -gl : gl;
        if (gin) std::fill_n(gsr, n, T(0) * gs);
        else
          for (int64_t j = 0; j < n; j++) gsr[j] = gs * Dr[j];
        std::fill_n(gtr, n, T(0));
        continue;
      }
      if (gin) centredTimes<T>(buf, Dr, gsr, n, T(rowSum(buf, n) * (1.0 / double(n))));
    }
  });
}

// ------------------------------------------------------------------------------------------------ entry points

int clampKindArg(const Napi::CallbackInfo& info, size_t i) {
  const int64_t kind = intArg(info, i, "clampKind");
  if (kind < 0 || kind >= K_COUNT) fail("ERR_ARGUMENT", "affineCoupling: unknown clamp kind " + std::to_string(kind));
  return int(kind);
}

// n (values per row of x2) after checking a: (B, 2·C2, *S) against x2: (B, C2, *S).
int64_t checkShapes(const Tensor& a, const Tensor& x2, const char* op) {
  bool ok = a.dim() >= 2 && x2.dim() == a.dim() && a.shape[0] == x2.shape[0] && a.shape[1] == 2 * x2.shape[1];
  for (int64_t d = 2; ok && d < a.dim(); d++) ok = a.shape[d] == x2.shape[d];
  if (!ok)
    fail("ERR_SHAPE", std::string(op) + ": a must have shape (B, 2·C2, ...) for x2 of shape (B, C2, ...), got a " +
                          shapeString(a.shape) + " and x2 " + shapeString(x2.shape));
  requireSameDtype(a, x2, op);
  requireSameDevice(a, x2, op);
  return x2.shape[0] == 0 ? 0 : x2.numel() / x2.shape[0];
}

void requireShape(const Tensor& t, const Shape& shape, const char* op, const char* name) {
  if (t.shape != shape)
    fail("ERR_SHAPE", std::string(op) + ": " + name + " must have shape " + shapeString(shape) + ", got " + shapeString(t.shape));
}

Napi::Value AffineCoupling(const Napi::CallbackInfo& info) {
  const char* op = "affineCoupling";
  const Tensor& a = tensorArg(info, 0, "a");
  const Tensor& x2 = tensorArg(info, 1, "x2");
  const int kind = clampKindArg(info, 2);
  const double preScale = numberArg(info, 3, "preScale");
  const double clamp = numberArg(info, 4, "clamp");
  const bool gin = boolArg(info, 5, "gin");
  const bool rev = boolArg(info, 6, "rev");
  const bool save = boolArg(info, 7, "save");
  const int64_t n = checkShapes(a, x2, op);
  const int64_t rows = x2.shape[0];
  Tensor y2 = emptyLike(x2.shape, x2.dtype, x2);
  Tensor logDet = emptyLike({rows}, x2.dtype, x2);
  Tensor E, D;
  if (save) {
    E = emptyLike(x2.shape, x2.dtype, x2);
    D = emptyLike(x2.shape, x2.dtype, x2);
  }
  launch(x2.device(), [=] {
    if (rows > 0 && n == 0) {  // empty rows: y2 is empty, Σ s = 0 (and a mean of nothing is not taken)
      if (x2.onCuda()) cudaFill(x2.dtype, logDet.raw(), rows, 0.0);
      else INNFLOW_DISPATCH(x2.dtype, T, { std::fill_n(logDet.data<T>(), rows, T(0)); });
    } else if (rows > 0 && x2.onCuda()) {
      cudaCheck(gpu().forward(kind, cudaDtype(x2.dtype), a.raw(), x2.raw(), y2.raw(), logDet.raw(),
                              save ? E.raw() : nullptr, save ? D.raw() : nullptr, rows, n, preScale, clamp, gin ? 1 : 0,
                              rev ? 1 : 0),
                op);
    } else if (rows > 0) {
      INNFLOW_DISPATCH(x2.dtype, T, {
        const Consts<T> c = makeConsts<T>(kind, preScale, clamp);
        withKind(kind, [&](auto kc) {
          constexpr int K = decltype(kc)::value;
          withBool(rev, [&](auto rc) {
            constexpr bool REV = decltype(rc)::value;
            withBool(save, [&](auto sc) {
              constexpr bool SAVE = decltype(sc)::value;
              forwardRows<T, K, REV, SAVE>(a.data<T>(), x2.data<T>(), y2.data<T>(), logDet.data<T>(),
                                           SAVE ? E.data<T>() : nullptr, SAVE ? D.data<T>() : nullptr, rows, n, c, gin);
            });
          });
        });
      });
    }
  });
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, 4);
  result.Set(0u, wrap(env, std::move(y2)));
  result.Set(1u, wrap(env, std::move(logDet)));
  result.Set(2u, save ? wrap(env, std::move(E)) : env.Null());
  result.Set(3u, save ? wrap(env, std::move(D)) : env.Null());
  return result;
}

Napi::Value AffineCouplingBackward(const Napi::CallbackInfo& info) {
  const char* op = "affineCoupling backward";
  const bool hasGy = info.Length() > 0 && isTensor(info[0]);
  const bool hasGl = info.Length() > 1 && isTensor(info[1]);
  const Tensor& a = tensorArg(info, 2, "a");
  const Tensor& x2 = tensorArg(info, 3, "x2");
  const Tensor& E = tensorArg(info, 4, "E");
  const Tensor& D = tensorArg(info, 5, "D");
  const int kind = clampKindArg(info, 6);
  const double preScale = numberArg(info, 7, "preScale");
  const bool gin = boolArg(info, 8, "gin");
  const bool rev = boolArg(info, 9, "rev");
  const bool needX2 = boolArg(info, 10, "needX2");
  (void)kind;  // D already holds the clamp's derivative
  const int64_t n = checkShapes(a, x2, op);
  const int64_t rows = x2.shape[0];
  requireShape(E, x2.shape, op, "E");
  requireShape(D, x2.shape, op, "D");
  for (const Tensor* t : {&E, &D}) {
    requireSameDtype(*t, x2, op);
    requireSameDevice(*t, x2, op);
  }
  Tensor gy, gl;
  if (hasGy) {
    gy = tensorArg(info, 0, "gy2");
    requireShape(gy, x2.shape, op, "gy2");
    requireSameDtype(gy, x2, op);
    requireSameDevice(gy, x2, op);
  }
  if (hasGl) {
    gl = tensorArg(info, 1, "gLogDet");
    requireShape(gl, {rows}, op, "gLogDet");
    requireSameDtype(gl, x2, op);
    requireSameDevice(gl, x2, op);
  }
  const bool wantGx = needX2 && hasGy;  // without gy2, gx2 is zero: null
  Tensor ga = emptyLike(a.shape, a.dtype, a);
  Tensor gx;
  if (wantGx) gx = emptyLike(x2.shape, x2.dtype, x2);
  launch(x2.device(), [=] {
    if (rows == 0 || n == 0) return;
    if (x2.onCuda()) {
      cudaCheck(gpu().backward(kind, cudaDtype(x2.dtype), hasGy ? gy.raw() : nullptr, hasGl ? gl.raw() : nullptr,
                               a.raw(), x2.raw(), E.raw(), D.raw(), ga.raw(), wantGx ? gx.raw() : nullptr, rows, n,
                               preScale, gin ? 1 : 0, rev ? 1 : 0),
                op);
      return;
    }
    INNFLOW_DISPATCH(x2.dtype, T, {
      withBool(rev, [&](auto rc) {
        constexpr bool REV = decltype(rc)::value;
        withBool(hasGy, [&](auto gc) {
          constexpr bool GY = decltype(gc)::value;
          backwardRows<T, REV, GY>(GY ? gy.data<T>() : nullptr, hasGl ? gl.data<T>() : nullptr, a.data<T>(),
                                   x2.data<T>(), E.data<T>(), D.data<T>(), ga.data<T>(),
                                   wantGx ? gx.data<T>() : nullptr, rows, n, T(preScale), gin);
        });
      });
    });
  });
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, wrap(env, std::move(ga)));
  result.Set(1u, wantGx ? wrap(env, std::move(gx)) : env.Null());
  return result;
}

// ------------------------------------------------------------------------------------------------ catAffinePermute
//
// catAffinePermute(x1: [B, C1, *S], y2: [B, C2, *S], scale: [C] | [1, C, 1..] | null, shift: like scale,
//                  perm: [C] index) -> z: [B, C, *S]
//   z[:, j] = src[:, k]·scale[k] + shift[k] with k = perm[j], src = cat(x1, y2) along 1 (without scale: src + shift)
// catAffinePermuteBackward(gz, x1, y2, scale | null, perm, needScale, needShift)
//     -> [gx1, gy2, gscale | null, gshift | null]
//   gsrc[:, k] = gz[:, perm⁻¹[k]]·scale[k],  gscale[k] = Σ_{b,s} gz[:, perm⁻¹[k]]·src[:, k],  gshift[k] = Σ gz[:, perm⁻¹[k]]
// The end of AllInOneBlock's forward (cat, ·Ψ, +b, indexSelect) in one pass. Same roundings as that op chain
// (the product, then the sum, in the dtype; the gradient sums of Ψ and b in double, batch-major then spatial,
// the reduce family's order), so float64 results agree bit for bit. perm must be a permutation of 0..C−1
// (ERR_ARGUMENT otherwise; on the GPU the kernels write NaN instead, as indexSelect's do).

struct CatShapes {
  int64_t B, C1, C2, S;
  Shape zShape;
};

CatShapes checkCatShapes(const Tensor& x1, const Tensor& y2, const char* op) {
  bool ok = x1.dim() >= 2 && y2.dim() == x1.dim() && x1.shape[0] == y2.shape[0];
  for (int64_t d = 2; ok && d < x1.dim(); d++) ok = x1.shape[d] == y2.shape[d];
  if (!ok)
    fail("ERR_SHAPE", std::string(op) + ": x1 and y2 must have shapes (B, C1, ...) and (B, C2, ...) with the same batch and spatial sizes, got " +
                          shapeString(x1.shape) + " and " + shapeString(y2.shape));
  requireSameDtype(x1, y2, op);
  requireSameDevice(x1, y2, op);
  CatShapes c;
  c.B = x1.shape[0];
  c.C1 = x1.shape[1];
  c.C2 = y2.shape[1];
  c.S = 1;
  for (int64_t d = 2; d < x1.dim(); d++) c.S *= x1.shape[d];
  c.zShape = x1.shape;
  c.zShape[1] = c.C1 + c.C2;
  return c;
}

// scale and shift: C values, shape (C) or (1, C, 1, ...) of z's rank.
void checkChannelParam(const Tensor& p, const CatShapes& c, const Tensor& like, const char* op, const char* name) {
  const int64_t C = c.C1 + c.C2;
  bool ok = p.shape == Shape{C};
  if (!ok && p.dim() == int64_t(c.zShape.size())) {
    ok = true;
    for (int64_t d = 0; d < p.dim(); d++) ok = ok && p.shape[d] == (d == 1 ? C : 1);
  }
  if (!ok)
    fail("ERR_SHAPE", std::string(op) + ": " + name + " must have shape (" + std::to_string(C) + ") or (1, " + std::to_string(C) +
                          ", 1, ...) for z of shape " + shapeString(c.zShape) + ", got " + shapeString(p.shape));
  requireSameDtype(p, like, op);
  requireSameDevice(p, like, op);
}

// The permutation held by perm (a CPU index tensor of C values, C checked) and its inverse. Returns -1, or the
// first position whose value is not an integer in [0, C) or repeats an earlier one (p and inv are then partial).
// Never throws: kernels call it each time they run.
int64_t decodePermutation(const Tensor& perm, int64_t C, std::vector<int64_t>& p, std::vector<int64_t>& inv) {
  p.assign(size_t(C), 0);
  inv.assign(size_t(C), -1);
  int64_t bad = -1;
  INNFLOW_DISPATCH(perm.dtype, T, {
    const T* v = perm.data<T>();
    for (int64_t j = 0; j < C; j++) {
      const double d = double(v[j]);
      const bool inRange = d >= 0 && d < double(C);  // false for NaN
      if (!inRange || double(int64_t(d)) != d || inv[size_t(d)] >= 0) {
        bad = j;
        break;
      }
      const int64_t k = int64_t(d);
      p[j] = k;
      inv[k] = j;
    }
  });
  return bad;
}

// The call's check of the permutation (a CPU index tensor of C integers, each once): ERR_SHAPE / ERR_ARGUMENT.
void checkPermutation(const Tensor& perm, int64_t C, const char* op, const char* name = "perm") {
  if (perm.shape != Shape{C})
    fail("ERR_SHAPE", std::string(op) + ": " + name + " must have shape (" + std::to_string(C) + "), got " + shapeString(perm.shape));
  std::vector<int64_t> p, inv;
  const int64_t j = decodePermutation(perm, C, p, inv);
  if (j < 0) return;
  double d = 0;
  INNFLOW_DISPATCH(perm.dtype, T, { d = double(perm.data<T>()[j]); });
  const bool inRange = d >= 0 && d < double(C);
  if (!inRange || double(int64_t(d)) != d)
    fail("ERR_ARGUMENT", std::string(op) + ": " + name + " value " + std::to_string(d) + " at position " + std::to_string(j) +
                             " is not an integer in [0, " + std::to_string(C) + ")");
  const int64_t k = int64_t(d);
  fail("ERR_ARGUMENT", std::string(op) + ": " + name + " is not a permutation (" + std::to_string(k) + " at positions " +
                           std::to_string(inv[k]) + " and " + std::to_string(j) + ")");
}

// Fills the tensors a kernel could not compute (its permutation changed into a non-permutation) with NaN.
void fillNaN(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->storage)
      INNFLOW_DISPATCH(t->dtype, T, { std::fill_n(t->data<T>(), t->numel(), std::numeric_limits<T>::quiet_NaN()); });
}

template <class T, bool SCALE>
void catAffinePermuteRows(const T* x1, const T* y2, const T* scale, const T* shift, const int64_t* perm, T* z,
                          const CatShapes& c) {
  const int64_t C = c.C1 + c.C2, S = c.S, C1 = c.C1, C2 = c.C2;
  // the parameters in output order
  std::vector<T> scP(SCALE ? size_t(C) : 0), shP(static_cast<size_t>(C));
  for (int64_t j = 0; j < C; j++) {
    if (SCALE) scP[j] = scale[perm[j]];
    shP[j] = shift[perm[j]];
  }
  parallelFor(c.B, std::max<int64_t>(1, kGrain / std::max<int64_t>(C * S, 1)), [&](int64_t rb, int64_t re) {
    for (int64_t b = rb; b < re; b++) {
      const T* x1r = x1 + b * C1 * S;
      const T* y2r = y2 + b * C2 * S;
      T* zr = z + b * C * S;
      if (S == 1) {
        for (int64_t j = 0; j < C; j++) {
          const int64_t k = perm[j];
          const T v = k < C1 ? x1r[k] : y2r[k - C1];
          zr[j] = SCALE ? v * scP[j] + shP[j] : v + shP[j];
        }
        continue;
      }
      for (int64_t j = 0; j < C; j++) {
        const int64_t k = perm[j];
        const T* sp = k < C1 ? x1r + k * S : y2r + (k - C1) * S;
        T* zp = zr + j * S;
        const T sc = SCALE ? scP[j] : T(1), sh = shP[j];
        if (SCALE)
          for (int64_t s = 0; s < S; s++) zp[s] = sp[s] * sc + sh;
        else
          for (int64_t s = 0; s < S; s++) zp[s] = sp[s] + sh;
      }
    }
  });
}

// Work split over channel ranges; each channel's sums run over the batch, then the spatial positions, in order.
template <class T, bool SCALE>
void catAffinePermuteBackwardRows(const T* gz, const T* x1, const T* y2, const T* scale, const int64_t* inv, T* gx1,
                                  T* gy2, T* gscale, T* gshift, const CatShapes& c) {
  const int64_t C = c.C1 + c.C2, S = c.S, C1 = c.C1, C2 = c.C2, B = c.B;
  parallelFor(C, std::max<int64_t>(1, kGrain / std::max<int64_t>(B * S, 1)), [&](int64_t kb, int64_t ke) {
    std::vector<double> accSc(size_t(ke - kb), 0.0), accSh(size_t(ke - kb), 0.0);
    for (int64_t b = 0; b < B; b++) {
      const T* gzr = gz + b * C * S;
      for (int64_t k = kb; k < ke; k++) {
        const T* gp = gzr + inv[k] * S;
        const T* sp = k < C1 ? x1 + (b * C1 + k) * S : y2 + (b * C2 + k - C1) * S;
        T* dp = k < C1 ? gx1 + (b * C1 + k) * S : gy2 + (b * C2 + k - C1) * S;
        const T sc = SCALE ? scale[k] : T(1);
        double aSc = accSc[k - kb], aSh = accSh[k - kb];
        for (int64_t s = 0; s < S; s++) {
          const T g = gp[s];
          dp[s] = SCALE ? g * sc : g;
          aSh += double(g);
          if (SCALE) aSc += double(T(g * sp[s]));
        }
        accSc[k - kb] = aSc;
        accSh[k - kb] = aSh;
      }
    }
    for (int64_t k = kb; k < ke; k++) {
      if (gscale) gscale[k] = T(accSc[k - kb]);
      if (gshift) gshift[k] = T(accSh[k - kb]);
    }
  });
}

Napi::Value CatAffinePermute(const Napi::CallbackInfo& info) {
  const char* op = "catAffinePermute";
  const Tensor& x1 = tensorArg(info, 0, "x1");
  const Tensor& y2 = tensorArg(info, 1, "y2");
  const bool hasScale = info.Length() > 2 && isTensor(info[2]);
  const Tensor& shift = tensorArg(info, 3, "shift");
  const Tensor& perm = tensorArg(info, 4, "perm");
  const CatShapes c = checkCatShapes(x1, y2, op);
  const int64_t C = c.C1 + c.C2;
  Tensor scale;
  if (hasScale) {
    scale = tensorArg(info, 2, "scale");
    checkChannelParam(scale, c, x1, op, "scale");
  }
  checkChannelParam(shift, c, x1, op, "shift");
  requireSameDevice(perm, x1, op);
  if (x1.onCuda()) {
    if (perm.shape != Shape{C})
      fail("ERR_SHAPE", std::string(op) + ": perm must have shape (" + std::to_string(C) + "), got " + shapeString(perm.shape));
  } else {
    checkPermutation(perm, C, op);
  }
  Tensor z = emptyLike(c.zShape, x1.dtype, x1);
  launch(x1.device(), [=] {
    if (x1.onCuda()) {
      cudaCheck(gpu().catAffinePermute(cudaDtype(x1.dtype), x1.raw(), y2.raw(), hasScale ? scale.raw() : nullptr,
                                       shift.raw(), perm.raw(), cudaDtype(perm.dtype), z.raw(), c.B, c.C1, c.C2, c.S),
                op);
      return;
    }
    std::vector<int64_t> p, inv;
    if (decodePermutation(perm, C, p, inv) >= 0) return fillNaN({&z});
    if (z.numel() == 0) return;
    INNFLOW_DISPATCH(x1.dtype, T, {
      if (hasScale)
        catAffinePermuteRows<T, true>(x1.data<T>(), y2.data<T>(), scale.data<T>(), shift.data<T>(), p.data(), z.data<T>(), c);
      else
        catAffinePermuteRows<T, false>(x1.data<T>(), y2.data<T>(), nullptr, shift.data<T>(), p.data(), z.data<T>(), c);
    });
  });
  return wrap(info.Env(), std::move(z));
}

Napi::Value CatAffinePermuteBackward(const Napi::CallbackInfo& info) {
  const char* op = "catAffinePermute backward";
  const Tensor& gz = tensorArg(info, 0, "gz");
  const Tensor& x1 = tensorArg(info, 1, "x1");
  const Tensor& y2 = tensorArg(info, 2, "y2");
  const bool hasScale = info.Length() > 3 && isTensor(info[3]);
  const Tensor& shift = tensorArg(info, 4, "shift");
  const Tensor& perm = tensorArg(info, 5, "perm");
  const bool needScale = boolArg(info, 6, "needScale") && hasScale;
  const bool needShift = boolArg(info, 7, "needShift");
  const CatShapes c = checkCatShapes(x1, y2, op);
  const int64_t C = c.C1 + c.C2;
  Tensor scale;
  if (hasScale) {
    scale = tensorArg(info, 3, "scale");
    checkChannelParam(scale, c, x1, op, "scale");
  }
  checkChannelParam(shift, c, x1, op, "shift");
  requireShape(gz, c.zShape, op, "gz");
  requireSameDtype(gz, x1, op);
  requireSameDevice(gz, x1, op);
  requireSameDevice(perm, x1, op);
  if (x1.onCuda()) {
    if (perm.shape != Shape{C})
      fail("ERR_SHAPE", std::string(op) + ": perm must have shape (" + std::to_string(C) + "), got " + shapeString(perm.shape));
  } else {
    checkPermutation(perm, C, op);
  }
  Tensor gx1 = emptyLike(x1.shape, x1.dtype, x1), gy2 = emptyLike(y2.shape, y2.dtype, y2);
  Tensor gscale, gshift;
  if (needScale) gscale = emptyLike(scale.shape, scale.dtype, x1);
  if (needShift) gshift = emptyLike(shift.shape, shift.dtype, x1);
  launch(x1.device(), [=] {
    if (x1.onCuda()) {
      cudaCheck(gpu().catAffinePermuteBackward(cudaDtype(x1.dtype), gz.raw(), x1.raw(), y2.raw(),
                                               hasScale ? scale.raw() : nullptr, perm.raw(), cudaDtype(perm.dtype),
                                               gx1.raw(), gy2.raw(), needScale ? gscale.raw() : nullptr,
                                               needShift ? gshift.raw() : nullptr, c.B, c.C1, c.C2, c.S),
                op);
      return;
    }
    std::vector<int64_t> p, inv;
    if (decodePermutation(perm, C, p, inv) >= 0) return fillNaN({&gx1, &gy2, &gscale, &gshift});
    if (C == 0) return;
    INNFLOW_DISPATCH(x1.dtype, T, {
      T* gsc = needScale ? gscale.data<T>() : nullptr;
      T* gsh = needShift ? gshift.data<T>() : nullptr;
      if (hasScale)
        catAffinePermuteBackwardRows<T, true>(gz.data<T>(), x1.data<T>(), y2.data<T>(), scale.data<T>(), inv.data(),
                                              gx1.data<T>(), gy2.data<T>(), gsc, gsh, c);
      else
        catAffinePermuteBackwardRows<T, false>(gz.data<T>(), x1.data<T>(), y2.data<T>(), nullptr, inv.data(),
                                               gx1.data<T>(), gy2.data<T>(), gsc, gsh, c);
    });
  });
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, 4);
  result.Set(0u, wrap(env, std::move(gx1)));
  result.Set(1u, wrap(env, std::move(gy2)));
  result.Set(2u, needScale ? wrap(env, std::move(gscale)) : env.Null());
  result.Set(3u, needShift ? wrap(env, std::move(gshift)) : env.Null());
  return result;
}

// ------------------------------------------------------------------------------------------------ permuteAffineSplit
//
// permuteAffineSplit(z: [B, C, *S], scale | null, shift, index, c1) -> [x1: [B, c1, *S], x2: [B, C − c1, *S]]
//   src[:, k] = (z[:, index[k]] − shift[k]) / scale[k] (without scale: z[:, index[k]] − shift[k]), split at c1
//   index is the inverse permutation perm⁻¹ (the index of indexSelect in the chain; a permutation, checked)
// permuteAffineSplitBackward(gx1 | null, gx2 | null, z, scale | null, shift, index, c1, needScale, needShift)
//     -> [gz, gscale | null, gshift | null]
//   w = z[:, index[k]] − shift[k],  gw = gsrc[:, k]·(1/scale[k]),  gz[:, index[k]] = gw,
//   gscale[k] = Σ gsrc·(−w/scale[k]²),  gshift[k] = Σ (−gw)
// The inverse of catAffinePermute: AllInOneBlock's reverse pass (indexSelect(1, index), −b, /Ψ, split), with
// that chain's roundings (the derivatives as the elementwise family writes them), so float64 agrees bit for bit.

template <class T, bool SCALE>
void permuteAffineSplitRows(const T* z, const T* scale, const T* shift, const int64_t* index, T* x1, T* x2,
                            const CatShapes& c) {
  const int64_t C = c.C1 + c.C2, S = c.S, C1 = c.C1, C2 = c.C2;
  parallelFor(c.B, std::max<int64_t>(1, kGrain / std::max<int64_t>(C * S, 1)), [&](int64_t rb, int64_t re) {
    for (int64_t b = rb; b < re; b++) {
      const T* zr = z + b * C * S;
      for (int64_t k = 0; k < C; k++) {
        const T* zp = zr + index[k] * S;
        T* dp = k < C1 ? x1 + (b * C1 + k) * S : x2 + (b * C2 + k - C1) * S;
        const T sh = shift[k], sc = SCALE ? scale[k] : T(1);
        for (int64_t s = 0; s < S; s++) {
          const T w = zp[s] - sh;
          dp[s] = SCALE ? w / sc : w;
        }
      }
    }
  });
}

template <class T, bool SCALE>
void permuteAffineSplitBackwardRows(const T* gx1, const T* gx2, const T* z, const T* scale, const T* shift,
                                    const int64_t* index, T* gz, T* gscale, T* gshift, const CatShapes& c) {
  const int64_t C = c.C1 + c.C2, S = c.S, C1 = c.C1, C2 = c.C2, B = c.B;
  parallelFor(C, std::max<int64_t>(1, kGrain / std::max<int64_t>(B * S, 1)), [&](int64_t kb, int64_t ke) {
    std::vector<double> accSc(size_t(ke - kb), 0.0), accSh(size_t(ke - kb), 0.0);
    for (int64_t b = 0; b < B; b++) {
      for (int64_t k = kb; k < ke; k++) {
        const int64_t at = k < C1 ? (b * C1 + k) * S : (b * C2 + k - C1) * S;
        const T* gp = k < C1 ? (gx1 ? gx1 + at : nullptr) : (gx2 ? gx2 + at : nullptr);  // null: zeros
        const T* zp = z + (b * C + index[k]) * S;
        T* dp = gz + (b * C + index[k]) * S;
        const T sh = shift[k], sc = SCALE ? scale[k] : T(1);
        const T rsc = T(1) / sc, sc2 = sc * sc;
        double aSc = accSc[k - kb], aSh = accSh[k - kb];
        for (int64_t s = 0; s < S; s++) {
          const T g = gp ? gp[s] : T(0);
          const T gw = SCALE ? g * rsc : g;
          dp[s] = gw;
          aSh += double(-gw);
          if (SCALE) aSc += double(g * (-(zp[s] - sh) / sc2));
        }
        accSc[k - kb] = aSc;
        accSh[k - kb] = aSh;
      }
    }
    for (int64_t k = kb; k < ke; k++) {
      if (gscale) gscale[k] = T(accSc[k - kb]);
      if (gshift) gshift[k] = T(accSh[k - kb]);
    }
  });
}

// z: (B, C, *S) split at c1 into the shapes of x1 and x2 (checked: 0 < c1 < C is not required, 0 ≤ c1 ≤ C is).
CatShapes splitShapes(const Tensor& z, int64_t c1, const char* op) {
  if (z.dim() < 2) fail("ERR_SHAPE", std::string(op) + ": z must have shape (B, C, ...), got " + shapeString(z.shape));
  if (c1 < 0 || c1 > z.shape[1])
    fail("ERR_ARGUMENT", std::string(op) + ": c1 must be in [0, " + std::to_string(z.shape[1]) + "], got " + std::to_string(c1));
  CatShapes c;
  c.B = z.shape[0];
  c.C1 = c1;
  c.C2 = z.shape[1] - c1;
  c.S = 1;
  for (int64_t d = 2; d < z.dim(); d++) c.S *= z.shape[d];
  c.zShape = z.shape;
  return c;
}

Napi::Value PermuteAffineSplit(const Napi::CallbackInfo& info) {
  const char* op = "permuteAffineSplit";
  const Tensor& z = tensorArg(info, 0, "z");
  const bool hasScale = info.Length() > 1 && isTensor(info[1]);
  const Tensor& shift = tensorArg(info, 2, "shift");
  const Tensor& perm = tensorArg(info, 3, "index");
  const CatShapes c = splitShapes(z, intArg(info, 4, "c1"), op);
  const int64_t C = c.C1 + c.C2;
  Tensor scale;
  if (hasScale) {
    scale = tensorArg(info, 1, "scale");
    checkChannelParam(scale, c, z, op, "scale");
  }
  checkChannelParam(shift, c, z, op, "shift");
  requireSameDevice(perm, z, op);
  if (z.onCuda()) {
    if (perm.shape != Shape{C})
      fail("ERR_SHAPE", std::string(op) + ": index must have shape (" + std::to_string(C) + "), got " + shapeString(perm.shape));
  } else {
    checkPermutation(perm, C, op, "index");
  }
  Shape s1 = z.shape, s2 = z.shape;
  s1[1] = c.C1;
  s2[1] = c.C2;
  Tensor x1 = emptyLike(s1, z.dtype, z), x2 = emptyLike(s2, z.dtype, z);
  launch(z.device(), [=] {
    if (z.onCuda()) {
      cudaCheck(gpu().permuteAffineSplit(cudaDtype(z.dtype), z.raw(), hasScale ? scale.raw() : nullptr, shift.raw(),
                                         perm.raw(), cudaDtype(perm.dtype), x1.raw(), x2.raw(), c.B, c.C1, c.C2, c.S),
                op);
      return;
    }
    std::vector<int64_t> p, inv;
    if (decodePermutation(perm, C, p, inv) >= 0) return fillNaN({&x1, &x2});
    if (z.numel() == 0) return;
    INNFLOW_DISPATCH(z.dtype, T, {
      if (hasScale)
        permuteAffineSplitRows<T, true>(z.data<T>(), scale.data<T>(), shift.data<T>(), p.data(), x1.data<T>(), x2.data<T>(), c);
      else
        permuteAffineSplitRows<T, false>(z.data<T>(), nullptr, shift.data<T>(), p.data(), x1.data<T>(), x2.data<T>(), c);
    });
  });
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, wrap(env, std::move(x1)));
  result.Set(1u, wrap(env, std::move(x2)));
  return result;
}

Napi::Value PermuteAffineSplitBackward(const Napi::CallbackInfo& info) {
  const char* op = "permuteAffineSplit backward";
  const bool hasG1 = info.Length() > 0 && isTensor(info[0]);
  const bool hasG2 = info.Length() > 1 && isTensor(info[1]);
  const Tensor& z = tensorArg(info, 2, "z");
  const bool hasScale = info.Length() > 3 && isTensor(info[3]);
  const Tensor& shift = tensorArg(info, 4, "shift");
  const Tensor& perm = tensorArg(info, 5, "index");
  const CatShapes c = splitShapes(z, intArg(info, 6, "c1"), op);
  const bool needScale = boolArg(info, 7, "needScale") && hasScale;
  const bool needShift = boolArg(info, 8, "needShift");
  const int64_t C = c.C1 + c.C2;
  Tensor scale, g1, g2;
  if (hasScale) {
    scale = tensorArg(info, 3, "scale");
    checkChannelParam(scale, c, z, op, "scale");
  }
  checkChannelParam(shift, c, z, op, "shift");
  requireSameDevice(perm, z, op);
  Shape s1 = z.shape, s2 = z.shape;
  s1[1] = c.C1;
  s2[1] = c.C2;
  if (hasG1) {
    g1 = tensorArg(info, 0, "gx1");
    requireShape(g1, s1, op, "gx1");
    requireSameDtype(g1, z, op);
    requireSameDevice(g1, z, op);
  }
  if (hasG2) {
    g2 = tensorArg(info, 1, "gx2");
    requireShape(g2, s2, op, "gx2");
    requireSameDtype(g2, z, op);
    requireSameDevice(g2, z, op);
  }
  if (z.onCuda()) {
    if (perm.shape != Shape{C})
      fail("ERR_SHAPE", std::string(op) + ": index must have shape (" + std::to_string(C) + "), got " + shapeString(perm.shape));
  } else {
    checkPermutation(perm, C, op, "index");
  }
  Tensor gz = emptyLike(z.shape, z.dtype, z);
  Tensor gscale, gshift;
  if (needScale) gscale = emptyLike(scale.shape, scale.dtype, z);
  if (needShift) gshift = emptyLike(shift.shape, shift.dtype, z);
  launch(z.device(), [=] {
    if (z.onCuda()) {
      cudaCheck(gpu().permuteAffineSplitBackward(cudaDtype(z.dtype), hasG1 ? g1.raw() : nullptr,
                                                 hasG2 ? g2.raw() : nullptr, z.raw(), hasScale ? scale.raw() : nullptr,
                                                 shift.raw(), perm.raw(), cudaDtype(perm.dtype), gz.raw(),
                                                 needScale ? gscale.raw() : nullptr, needShift ? gshift.raw() : nullptr,
                                                 c.B, c.C1, c.C2, c.S),
                op);
      return;
    }
    std::vector<int64_t> p, inv;
    if (decodePermutation(perm, C, p, inv) >= 0) return fillNaN({&gz, &gscale, &gshift});
    if (C == 0) return;
    INNFLOW_DISPATCH(z.dtype, T, {
      const T* g1p = hasG1 ? g1.data<T>() : nullptr;
      const T* g2p = hasG2 ? g2.data<T>() : nullptr;
      T* gsc = needScale ? gscale.data<T>() : nullptr;
      T* gsh = needShift ? gshift.data<T>() : nullptr;
      if (hasScale)
        permuteAffineSplitBackwardRows<T, true>(g1p, g2p, z.data<T>(), scale.data<T>(), shift.data<T>(), p.data(),
                                                gz.data<T>(), gsc, gsh, c);
      else
        permuteAffineSplitBackwardRows<T, false>(g1p, g2p, z.data<T>(), nullptr, shift.data<T>(), p.data(),
                                                 gz.data<T>(), gsc, gsh, c);
    });
  });
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, 3);
  result.Set(0u, wrap(env, std::move(gz)));
  result.Set(1u, needScale ? wrap(env, std::move(gscale)) : env.Null());
  result.Set(2u, needShift ? wrap(env, std::move(gshift)) : env.Null());
  return result;
}

}  // namespace

void registerCoupling(Napi::Env env, Napi::Object exports) {
  Napi::Object kinds = Napi::Object::New(env);
  for (int i = 0; i < K_COUNT; i++) kinds.Set(kClampNames[i], Napi::Number::New(env, i));
  exports.Set("couplingClampKinds", kinds);
  defineFunction(env, exports, "affineCoupling", AffineCoupling);
  defineFunction(env, exports, "affineCouplingBackward", AffineCouplingBackward);
  defineFunction(env, exports, "catAffinePermute", CatAffinePermute);
  defineFunction(env, exports, "catAffinePermuteBackward", CatAffinePermuteBackward);
  defineFunction(env, exports, "permuteAffineSplit", PermuteAffineSplit);
  defineFunction(env, exports, "permuteAffineSplitBackward", PermuteAffineSplitBackward);
}

}  // namespace innflow

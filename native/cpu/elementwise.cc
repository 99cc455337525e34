// Elementwise ops with NumPy broadcasting, forward and backward side by side.
//
// unary(op, x: [*], p0, p1)              -> y: [*]
// unaryBackward(op, g: [*], x, y, p0, p1) -> gx: [*]              (gx = g · f'(x))
// binary(op, a: [*A], b: [*B] | number)   -> y: [broadcast(A, B)]
// binaryBackward(op, g: [*Y], a, b, needA, needB) -> [ga: [*A] | null, gb: [*B] | null]
// where(cond: [*C], a: [*A], b: [*B])     -> y: [broadcast(C, A, B)]   (cond != 0 picks a)
// whereBackward(g, cond, aShape, bShape)  -> [ga, gb]
//
// Parameters p0, p1 of the unary ops: softplus (beta, threshold), leakyRelu (slope), elu (alpha),
// clamp (min, max), powScalar (exponent). A number in place of b is a 0-d tensor of a's dtype (on the GPU it
// is passed to the kernel by value).
//
// CUDA tensors run the same formulas in cuda/elementwise.cu (all inputs on one device, else ERR_DEVICE; float32
// tanh is CUDA's tanhf there). A broadcasting op on CUDA indexes at most INNFLOW_CUDA_MAX_DIMS dimensions after
// merging neighbouring ones (cudaGeometry), ERR_SHAPE beyond.
//
// Every entry point checks its arguments and allocates its results first, then runs the kernel through
// launch() (capture.h), so that a compiled step replays it into the same results; the gradients of broadcast
// operands are summed down inside the same kernel (sumInto, into results allocated at the call).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../../cuda/elementwise.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"
#include "fast_math.h"
#include "kernels.h"

namespace innflow {

enum UnaryOp : int {
  U_NEG, U_EXP, U_LOG, U_SQRT, U_SQUARE, U_TANH, U_ATAN, U_SIGMOID, U_SOFTPLUS, U_RELU, U_LEAKY_RELU, U_ELU,
  U_ABS, U_CLAMP, U_POW, U_LOG1P, U_EXPM1, U_SIN, U_COS, U_RECIPROCAL, U_SIGN, U_COUNT
};
static const char* kUnaryNames[U_COUNT] = {"neg", "exp", "log", "sqrt", "square", "tanh", "atan",
                                           "sigmoid", "softplus", "relu", "leakyRelu", "elu", "abs", "clamp",
                                           "powScalar", "log1p", "expm1", "sin", "cos", "reciprocal", "sign"};

enum BinaryOp : int { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAXIMUM, B_MINIMUM, B_ATAN2, B_GT, B_LT, B_GE, B_LE, B_EQ, B_NE, B_COUNT };
static const char* kBinaryNames[B_COUNT] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                            "atan2", "gt", "lt", "ge", "le", "eq", "ne"};

// The GPU table uses these op codes (cuda/elementwise.h).
#define INNFLOW_SAME_OP(X) static_assert(int(X) == int(INNFLOW_##X), "op code " #X " differs from cuda/elementwise.h");
INNFLOW_SAME_OP(U_NEG) INNFLOW_SAME_OP(U_EXP) INNFLOW_SAME_OP(U_LOG) INNFLOW_SAME_OP(U_SQRT)
INNFLOW_SAME_OP(U_SQUARE) INNFLOW_SAME_OP(U_TANH) INNFLOW_SAME_OP(U_ATAN) INNFLOW_SAME_OP(U_SIGMOID)
INNFLOW_SAME_OP(U_SOFTPLUS) INNFLOW_SAME_OP(U_RELU) INNFLOW_SAME_OP(U_LEAKY_RELU) INNFLOW_SAME_OP(U_ELU)
INNFLOW_SAME_OP(U_ABS) INNFLOW_SAME_OP(U_CLAMP) INNFLOW_SAME_OP(U_POW) INNFLOW_SAME_OP(U_LOG1P)
INNFLOW_SAME_OP(U_EXPM1) INNFLOW_SAME_OP(U_SIN) INNFLOW_SAME_OP(U_COS) INNFLOW_SAME_OP(U_RECIPROCAL)
INNFLOW_SAME_OP(U_SIGN) INNFLOW_SAME_OP(U_COUNT)
INNFLOW_SAME_OP(B_ADD) INNFLOW_SAME_OP(B_SUB) INNFLOW_SAME_OP(B_MUL) INNFLOW_SAME_OP(B_DIV) INNFLOW_SAME_OP(B_POW)
INNFLOW_SAME_OP(B_MAXIMUM) INNFLOW_SAME_OP(B_MINIMUM) INNFLOW_SAME_OP(B_ATAN2) INNFLOW_SAME_OP(B_GT)
INNFLOW_SAME_OP(B_LT) INNFLOW_SAME_OP(B_GE) INNFLOW_SAME_OP(B_LE) INNFLOW_SAME_OP(B_EQ) INNFLOW_SAME_OP(B_NE)
INNFLOW_SAME_OP(B_COUNT)
#undef INNFLOW_SAME_OP

static const InnflowCudaElementwise& gpu() { return cudaTable<InnflowCudaElementwise>("innflow_cuda_elementwise"); }

// The shapes a broadcasting GPU kernel indexes with: the output and its operands (which broadcast to it, as
// checked before) right-aligned, with size-1 output dimensions dropped and neighbouring dimensions merged
// where every operand is stretched along both or along neither. The element order and every operand's offsets
// stay the same, with fewer dimensions: same shapes become one dimension. ERR_SHAPE when more than
// INNFLOW_CUDA_MAX_DIMS remain.
struct CudaGeometry {
  Shape out;
  std::vector<Shape> operands;
};

static CudaGeometry cudaGeometry(const Shape& out, const std::vector<const Shape*>& operands, const char* op) {
  CudaGeometry geo;
  geo.operands.resize(operands.size());
  std::vector<bool> previous;
  for (size_t d = 0; d < out.size(); d++) {
    if (out[d] == 1) continue;
    std::vector<bool> full(operands.size());  // operand k runs along d (else it is broadcast)
    for (size_t k = 0; k < operands.size(); k++) {
      const Shape& s = *operands[k];
      const size_t lead = out.size() - s.size();
      full[k] = d >= lead && s[d - lead] != 1;
    }
    if (!geo.out.empty() && full == previous) {
      geo.out.back() *= out[d];
      for (size_t k = 0; k < operands.size(); k++)
        if (full[k]) geo.operands[k].back() *= out[d];
    } else {
      geo.out.push_back(out[d]);
      for (size_t k = 0; k < operands.size(); k++) geo.operands[k].push_back(full[k] ? out[d] : 1);
      previous = full;
    }
  }
  if (geo.out.size() > INNFLOW_CUDA_MAX_DIMS)
    fail("ERR_SHAPE", std::string(op) + ": broadcasting CUDA tensors supports at most " +
                          std::to_string(INNFLOW_CUDA_MAX_DIMS) + " dimensions (after merging), got output shape " +
                          shapeString(out));
  return geo;
}

// Waking the pool costs tens of µs on small VMs: below ~256k elements (1 MiB of float32) an elementwise op
// stays on the calling thread (moons-b256 ran 25% faster on two threads with this than with 64k).
static constexpr int64_t kGrain = 262144;

// ------------------------------------------------------------------------------------------------ unary

template <class T>
__attribute__((always_inline)) static inline T unaryForward(int op, T x, T p0, T p1) {
  switch (op) {
    case U_NEG: return -x;
    case U_EXP: return expOf(x);
    case U_LOG: return std::log(x);
    case U_SQRT: return std::sqrt(x);
    case U_SQUARE: return x * x;
    case U_TANH: return tanhOf(x);
    case U_ATAN: return std::atan(x);
    case U_SIGMOID: return sigmoidOf(x);
    case U_SOFTPLUS: return p0 * x > p1 ? x : std::log1p(std::exp(p0 * x)) / p0;
    case U_RELU: return x > 0 ? x : T(0);
    case U_LEAKY_RELU: return x > 0 ? x : p0 * x;
    case U_ELU: return x > 0 ? x : p0 * std::expm1(x);
    case U_ABS: return std::abs(x);
    case U_CLAMP: return std::min(std::max(x, p0), p1);
    case U_POW: return std::pow(x, p0);
    case U_LOG1P: return std::log1p(x);
    case U_EXPM1: return std::expm1(x);
    case U_SIN: return std::sin(x);
    case U_COS: return std::cos(x);
    case U_RECIPROCAL: return T(1) / x;
    case U_SIGN: return T((x > 0) - (x < 0));
  }
  return x;
}

// dy/dx, from x and y (whichever is cheaper or more accurate).
template <class T>
__attribute__((always_inline)) static inline T unaryDerivative(int op, T x, T y, T p0, T p1) {
  switch (op) {
    case U_NEG: return T(-1);
    case U_EXP: return y;
    case U_LOG: return T(1) / x;
    case U_SQRT: return T(0.5) / y;
    case U_SQUARE: return T(2) * x;
    case U_TANH: return T(1) - y * y;
    case U_ATAN: return T(1) / (T(1) + x * x);
    case U_SIGMOID: return y * (T(1) - y);
    case U_SOFTPLUS: {
      T z = p0 * x;
      return z > p1 ? T(1) : sigmoidOf(z);
    }
    case U_RELU: return T(x > T(0));
    case U_LEAKY_RELU: return p0 + (T(1) - p0) * T(x > T(0));
    case U_ELU: return x > 0 ? T(1) : y + p0;
    case U_ABS: return T(x > T(0)) - T(x < T(0));
    case U_CLAMP: return T(x >= p0) * T(x <= p1);
    case U_POW: return p0 == T(0) ? T(0) : p0 * std::pow(x, p0 - T(1));
    case U_LOG1P: return T(1) / (T(1) + x);
    case U_EXPM1: return y + T(1);
    case U_SIN: return std::cos(x);
    case U_COS: return -std::sin(x);
    case U_RECIPROCAL: return -y * y;
    case U_SIGN: return T(0);
  }
  return T(0);
}

// Calls f(std::integral_constant<int, OP>()) for the runtime op, so that every loop is compiled once per op:
// the switch inside unaryForward/binaryForward folds away and the simple ops vectorise.
template <class F>
static void withUnaryOp(int op, F&& f) {
  switch (op) {
#define INNFLOW_CASE(OP) \
  case OP:               \
    f(std::integral_constant<int, OP>());  \
    return;
    INNFLOW_CASE(U_NEG) INNFLOW_CASE(U_EXP) INNFLOW_CASE(U_LOG) INNFLOW_CASE(U_SQRT) INNFLOW_CASE(U_SQUARE)
    INNFLOW_CASE(U_TANH) INNFLOW_CASE(U_ATAN) INNFLOW_CASE(U_SIGMOID) INNFLOW_CASE(U_SOFTPLUS) INNFLOW_CASE(U_RELU)
    INNFLOW_CASE(U_LEAKY_RELU) INNFLOW_CASE(U_ELU) INNFLOW_CASE(U_ABS) INNFLOW_CASE(U_CLAMP) INNFLOW_CASE(U_POW)
    INNFLOW_CASE(U_LOG1P) INNFLOW_CASE(U_EXPM1) INNFLOW_CASE(U_SIN) INNFLOW_CASE(U_COS) INNFLOW_CASE(U_RECIPROCAL)
    INNFLOW_CASE(U_SIGN)
#undef INNFLOW_CASE
  }
}

// g · dy/dx. The piecewise activations are written as selects of g, which the compiler turns into
// branch-free vector code; as a product with a 0/1 factor GCC emitted a branch, and with activations of random
// sign it mispredicted half the time (relu's backward ran 20x slower than its forward).
template <class T>
__attribute__((always_inline)) static inline T unaryGrad(int op, T g, T x, T y, T p0, T p1) {
  switch (op) {
    case U_RELU: return x > T(0) ? g : T(0);
    case U_LEAKY_RELU: return g * (x > T(0) ? T(1) : p0);
    case U_ELU: return g * (x > T(0) ? T(1) : y + p0);
    default: return g * unaryDerivative<T>(op, x, y, p0, p1);
  }
}

// The loops of the unary ops and their gradients, in functions of their own: parameters taken by value and
// __restrict pointers let GCC vectorise them, and target_clones compiles each twice, for AVX2 and for baseline
// x86-64, the loader choosing (8-wide instead of 4-wide; no fused multiply-adds either way, so the results do not
// depend on the CPU).
template <class T, int OP>
__attribute__((noinline, target_clones("avx2", "default"))) void unaryLoop(const T* __restrict x, T* __restrict y,
                                                                          int64_t n, const T p0, const T p1) {
  for (int64_t i = 0; i < n; i++) y[i] = unaryForward<T>(OP, x[i], p0, p1);
}

template <class T, int OP>
__attribute__((noinline, target_clones("avx2", "default"))) void unaryGradLoop(const T* __restrict g, const T* __restrict x,
                                                                              const T* __restrict y, T* __restrict gx,
                                                                              int64_t n, const T p0, const T p1) {
  for (int64_t i = 0; i < n; i++) gx[i] = unaryGrad<T>(OP, g[i], x[i], y[i], p0, p1);
}

static int unaryOpArg(const Napi::CallbackInfo& info) {
  int64_t op = intArg(info, 0, "op");
  if (op < 0 || op >= U_COUNT) fail("ERR_ARGUMENT", "unknown unary op " + std::to_string(op));
  return static_cast<int>(op);
}

static Napi::Value Unary(const Napi::CallbackInfo& info) {
  int op = unaryOpArg(info);
  const Tensor& x = tensorArg(info, 1, "x");
  double p0 = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0.0;
  double p1 = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().DoubleValue() : 0.0;
  Tensor y = emptyLike(x.shape, x.dtype, x);
  launch(x.device(), [=] {
    if (x.onCuda()) {
      cudaCheck(gpu().unary(op, cudaDtype(x.dtype), x.raw(), y.raw(), x.numel(), p0, p1), kUnaryNames[op]);
      return;
    }
    INNFLOW_DISPATCH(x.dtype, T, {
      const T* xs = x.data<T>();
      T* ys = y.data<T>();
      T q0 = T(p0), q1 = T(p1);
      withUnaryOp(op, [&](auto opc) {
        constexpr int OP = decltype(opc)::value;
        parallelFor(x.numel(), kGrain, [&](int64_t b, int64_t e) { unaryLoop<T, OP>(xs + b, ys + b, e - b, q0, q1); });
      });
    });
  });
  return wrap(info.Env(), std::move(y));
}

static Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  int op = unaryOpArg(info);
  const Tensor& g = tensorArg(info, 1, "g");
  const Tensor& x = tensorArg(info, 2, "x");
  const Tensor& y = tensorArg(info, 3, "y");
  double p0 = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : 0.0;
  double p1 = info.Length() > 5 && info[5].IsNumber() ? info[5].As<Napi::Number>().DoubleValue() : 0.0;
  if (g.shape != x.shape || y.shape != x.shape)
    fail("ERR_SHAPE", std::string(kUnaryNames[op]) + " backward: gradient shape " + shapeString(g.shape) +
                          " differs from input shape " + shapeString(x.shape));
  requireSameDtype(g, x, kUnaryNames[op]);
  requireSameDtype(y, x, kUnaryNames[op]);  // both kernels read y as x's dtype
  requireSameDevice(g, x, kUnaryNames[op]);
  requireSameDevice(x, y, kUnaryNames[op]);
  Tensor gx = emptyLike(x.shape, x.dtype, x);
  launch(x.device(), [=] {
    if (x.onCuda()) {
      cudaCheck(gpu().unaryBackward(op, cudaDtype(x.dtype), g.raw(), x.raw(), y.raw(), gx.raw(), x.numel(), p0, p1),
                kUnaryNames[op]);
      return;
    }
    INNFLOW_DISPATCH(x.dtype, T, {
      const T *gs = g.data<T>(), *xs = x.data<T>(), *ys = y.data<T>();
      T* out = gx.data<T>();
      T q0 = T(p0), q1 = T(p1);
      withUnaryOp(op, [&](auto opc) {
        constexpr int OP = decltype(opc)::value;
        parallelFor(x.numel(), kGrain, [&](int64_t b, int64_t e) { unaryGradLoop<T, OP>(gs + b, xs + b, ys + b, out + b, e - b, q0, q1); });
      });
    });
  });
  return wrap(info.Env(), std::move(gx));
}

// ------------------------------------------------------------------------------------------------ broadcasting

Shape broadcastShapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; i++) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      fail("ERR_SHAPE", std::string(op) + ": shapes " + shapeString(a) + " and " + shapeString(b) + " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Element strides of an operand of shape `s` read at the indices of `out` (0 where it is broadcast).
static std::vector<int64_t> broadcastStrides(const Shape& s, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  int64_t stride = 1;
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; i--) {
    size_t o = out.size() - s.size() + size_t(i);
    st[o] = s[i] == 1 ? 0 : stride;
    stride *= s[i];
  }
  return st;
}

// Walks out's linear indices [begin, end) and calls f(outIndex, offset0, offset1, offset2).
template <int N, class F>
static void forEachBroadcast(const Shape& out, const std::vector<int64_t> (&strides)[N], int64_t begin, int64_t end, F f) {
  const int64_t nd = int64_t(out.size());
  if (nd == 0) {
    if (begin < end) {
      int64_t off[3] = {0, 0, 0};
      f(0, off);
    }
    return;
  }
  std::vector<int64_t> idx(nd);
  int64_t off[3] = {0, 0, 0};
  int64_t rem = begin;
  for (int64_t d = nd - 1; d >= 0; d--) {
    idx[d] = rem % out[d];
    rem /= out[d];
    for (int k = 0; k < N; k++) off[k] += idx[d] * strides[k][d];
  }
  const int64_t inner = out[nd - 1];
  int64_t innerStride[3] = {0, 0, 0};
  for (int k = 0; k < N; k++) innerStride[k] = strides[k][nd - 1];
  for (int64_t i = begin; i < end;) {
    int64_t run = std::min(end - i, inner - idx[nd - 1]);
    for (int64_t r = 0; r < run; r++) {
      f(i + r, off);
      for (int k = 0; k < N; k++) off[k] += innerStride[k];
    }
    i += run;
    idx[nd - 1] += run;
    if (idx[nd - 1] < inner) continue;  // only at the end of the range
    // next row: rewind the innermost dimension and carry into the outer ones
    idx[nd - 1] = 0;
    for (int k = 0; k < N; k++) off[k] -= innerStride[k] * inner;
    for (int64_t d = nd - 2; d >= 0; d--) {
      for (int k = 0; k < N; k++) off[k] += strides[k][d];
      if (++idx[d] < out[d]) break;
      for (int k = 0; k < N; k++) off[k] -= strides[k][d] * out[d];
      idx[d] = 0;
    }
  }
}

// A 0-d tensor holding a JavaScript number, in the given dtype.
static Tensor scalarTensor(double v, DType dtype) {
  Tensor t = emptyTensor({}, dtype);
  INNFLOW_DISPATCH(dtype, T, { t.data<T>()[0] = static_cast<T>(v); });
  return t;
}

// A tensor operand, or a JavaScript number: on the CPU a 0-d tensor of `like`'s dtype; with a CUDA `like` a
// shape-only 0-d tensor (no storage) and the value, which the GPU kernel takes by value.
struct Operand {
  Tensor t;
  bool number = false;
  double value = 0;
};

static Operand operandArg(const Napi::CallbackInfo& info, size_t i, const char* name, const Tensor& like) {
  Operand o;
  if (i < info.Length() && info[i].IsNumber()) {
    o.number = true;
    o.value = info[i].As<Napi::Number>().DoubleValue();
    if (like.onCuda()) o.t.dtype = like.dtype;  // shape {}, no storage: never read as a tensor
    else o.t = scalarTensor(o.value, like.dtype);
    return o;
  }
  o.t = tensorArg(info, i, name);
  return o;
}

// ERR_DEVICE unless the operand is a number or lives on a's device.
static void requireOperandDevice(const Tensor& a, const Operand& b, const char* op) {
  if (!b.number) requireSameDevice(a, b.t, op);
}

// The device pointer the GPU kernels take for an operand (null for a number).
static const void* cudaOperand(const Operand& b) { return b.number ? nullptr : b.t.raw(); }

// ------------------------------------------------------------------------------------------------ binary

template <class T>
__attribute__((always_inline)) static inline T binaryForward(int op, T a, T b) {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return std::pow(a, b);
    case B_MAXIMUM: return a > b ? a : b;
    case B_MINIMUM: return a < b ? a : b;
    case B_ATAN2: return std::atan2(a, b);
    case B_GT: return T(a > b);
    case B_LT: return T(a < b);
    case B_GE: return T(a >= b);
    case B_LE: return T(a <= b);
    case B_EQ: return T(a == b);
    case B_NE: return T(a != b);
  }
  return T(0);
}

// ∂y/∂a and ∂y/∂b. Ties of maximum/minimum share the gradient equally, as PyTorch does.
template <class T>
__attribute__((always_inline)) static inline void binaryDerivatives(int op, T a, T b, T* da, T* db) {
  switch (op) {
    case B_ADD: *da = 1; *db = 1; return;
    case B_SUB: *da = 1; *db = -1; return;
    case B_MUL: *da = b; *db = a; return;
    case B_DIV: *da = T(1) / b; *db = -a / (b * b); return;
    case B_POW: {
      *da = b == T(0) ? T(0) : b * std::pow(a, b - T(1));
      *db = a > T(0) ? std::pow(a, b) * std::log(a) : T(0);
      return;
    }
    case B_MAXIMUM: *da = a > b ? T(1) : (a == b ? T(0.5) : T(0)); *db = T(1) - *da; return;
    case B_MINIMUM: *da = a < b ? T(1) : (a == b ? T(0.5) : T(0)); *db = T(1) - *da; return;
    case B_ATAN2: {
      T r = a * a + b * b;
      *da = b / r;
      *db = -a / r;
      return;
    }
    default: *da = 0; *db = 0; return;
  }
}

template <class F>
static void withBinaryOp(int op, F&& f) {
  switch (op) {
#define INNFLOW_CASE(OP) \
  case OP:               \
    f(std::integral_constant<int, OP>());  \
    return;
    INNFLOW_CASE(B_ADD) INNFLOW_CASE(B_SUB) INNFLOW_CASE(B_MUL) INNFLOW_CASE(B_DIV) INNFLOW_CASE(B_POW)
    INNFLOW_CASE(B_MAXIMUM) INNFLOW_CASE(B_MINIMUM) INNFLOW_CASE(B_ATAN2) INNFLOW_CASE(B_GT) INNFLOW_CASE(B_LT)
    INNFLOW_CASE(B_GE) INNFLOW_CASE(B_LE) INNFLOW_CASE(B_EQ) INNFLOW_CASE(B_NE)
#undef INNFLOW_CASE
  }
}

static int binaryOpArg(const Napi::CallbackInfo& info) {
  int64_t op = intArg(info, 0, "op");
  if (op < 0 || op >= B_COUNT) fail("ERR_ARGUMENT", "unknown binary op " + std::to_string(op));
  return static_cast<int>(op);
}

// y = a OP b on the CPU, broadcast to y's shape.
static void binaryCpu(int op, const Tensor& a, const Tensor& b, const Tensor& y) {
  const Shape& out = y.shape;
  const int64_t n = y.numel();
  INNFLOW_DISPATCH(a.dtype, T, {
    const T *as = a.data<T>(), *bs = b.data<T>();
    T* ys = y.data<T>();
    withBinaryOp(op, [&](auto opc) {
      constexpr int OP = decltype(opc)::value;
      if (a.shape == out && b.shape == out) {
        parallelFor(n, kGrain, [&](int64_t s, int64_t e) {
          for (int64_t i = s; i < e; i++) ys[i] = binaryForward<T>(OP, as[i], bs[i]);
        });
      } else if (a.shape == out && b.numel() == 1) {
        const T bv = bs[0];
        parallelFor(n, kGrain, [&](int64_t s, int64_t e) {
          for (int64_t i = s; i < e; i++) ys[i] = binaryForward<T>(OP, as[i], bv);
        });
      } else if (b.shape == out && a.numel() == 1) {
        const T av = as[0];
        parallelFor(n, kGrain, [&](int64_t s, int64_t e) {
          for (int64_t i = s; i < e; i++) ys[i] = binaryForward<T>(OP, av, bs[i]);
        });
      } else {
        const std::vector<int64_t> st[2] = {broadcastStrides(a.shape, out), broadcastStrides(b.shape, out)};
        parallelFor(n, kGrain, [&](int64_t s, int64_t e) {
          forEachBroadcast<2>(out, st, s, e, [&](int64_t i, const int64_t* off) { ys[i] = binaryForward<T>(OP, as[off[0]], bs[off[1]]); });
        });
      }
    });
  });
}

static Napi::Value Binary(const Napi::CallbackInfo& info) {
  int op = binaryOpArg(info);
  const Tensor& a = tensorArg(info, 1, "a");
  Operand bo = operandArg(info, 2, "b", a);
  const Tensor& b = bo.t;
  requireSameDtype(a, b, kBinaryNames[op]);
  Shape out = broadcastShapes(a.shape, b.shape, kBinaryNames[op]);
  requireOperandDevice(a, bo, kBinaryNames[op]);
  Tensor y = emptyLike(out, a.dtype, a);
  if (a.onCuda()) {
    const CudaGeometry geo = cudaGeometry(out, {&a.shape, &b.shape}, kBinaryNames[op]);
    launch(a.device(), [=] {
      const Shape &sa = geo.operands[0], &sb = geo.operands[1];
      cudaCheck(gpu().binary(op, cudaDtype(a.dtype), a.raw(), sa.data(), int(sa.size()), cudaOperand(bo), sb.data(),
                             int(sb.size()), bo.value, y.raw(), geo.out.data(), int(geo.out.size())),
                kBinaryNames[op]);
    });
  } else {
    launch(a.device(), [=] { binaryCpu(op, a, b, y); });
  }
  return wrap(info.Env(), std::move(y));
}

// The gradient of a broadcast operand: a full-size buffer the kernel writes, then (when the operand was
// broadcast) its sum down to the operand's shape. Both are made at the call; the kernel writes both.
struct OperandGrad {
  Tensor full, out;
  bool reduce = false;
  SumPlan plan;
};

static OperandGrad operandGrad(bool need, const Shape& outShape, const Shape& shape, const Tensor& like) {
  OperandGrad r;
  if (!need) return r;
  r.full = emptyLike(outShape, like.dtype, like);
  r.reduce = shape != outShape;
  if (r.reduce) {
    r.plan = planSumToShape(outShape, shape, like.device());
    r.out = emptyLike(shape, like.dtype, like);
  } else {
    r.out = r.full;
  }
  return r;
}

static void finishOperandGrad(const OperandGrad& r) {
  if (r.reduce) sumInto(r.full, r.out, r.plan);
}

static Napi::Value operandGradsToJs(Napi::Env env, bool needA, const OperandGrad& ga, bool needB, const OperandGrad& gb) {
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, needA ? wrap(env, ga.out) : env.Null());
  result.Set(1u, needB ? wrap(env, gb.out) : env.Null());
  return result;
}

static Napi::Value BinaryBackward(const Napi::CallbackInfo& info) {
  int op = binaryOpArg(info);
  const Tensor& g = tensorArg(info, 1, "g");
  const Tensor& a = tensorArg(info, 2, "a");
  Operand bo = operandArg(info, 3, "b", a);
  const Tensor& b = bo.t;
  bool needA = boolArg(info, 4, "needA"), needB = boolArg(info, 5, "needB");
  requireSameDtype(a, b, kBinaryNames[op]);
  requireSameDtype(g, a, kBinaryNames[op]);
  Shape out = broadcastShapes(a.shape, b.shape, kBinaryNames[op]);
  if (g.shape != out)
    fail("ERR_SHAPE", std::string(kBinaryNames[op]) + " backward: gradient shape " + shapeString(g.shape) +
                          " differs from output shape " + shapeString(out));
  requireOperandDevice(a, bo, kBinaryNames[op]);
  requireSameDevice(g, a, kBinaryNames[op]);
  const OperandGrad ga = operandGrad(needA, out, a.shape, a), gb = operandGrad(needB, out, b.shape, a);
  if (a.onCuda()) {
    const CudaGeometry geo = cudaGeometry(out, {&a.shape, &b.shape}, kBinaryNames[op]);
    launch(a.device(), [=] {
      const Shape &sa = geo.operands[0], &sb = geo.operands[1];
      cudaCheck(gpu().binaryBackward(op, cudaDtype(a.dtype), g.raw(), a.raw(), sa.data(), int(sa.size()), cudaOperand(bo),
                                     sb.data(), int(sb.size()), bo.value, needA ? ga.full.raw() : nullptr,
                                     needB ? gb.full.raw() : nullptr, geo.out.data(), int(geo.out.size())),
                kBinaryNames[op]);
      finishOperandGrad(ga);
      finishOperandGrad(gb);
    });
    return operandGradsToJs(info.Env(), needA, ga, needB, gb);
  }
  launch(a.device(), [=] {
    INNFLOW_DISPATCH(a.dtype, T, {
      const T *gs = g.data<T>(), *as = a.data<T>(), *bs = b.data<T>();
      T* gaOut = needA ? ga.full.data<T>() : nullptr;
      T* gbOut = needB ? gb.full.data<T>() : nullptr;
      withBinaryOp(op, [&](auto opc) {
        constexpr int OP = decltype(opc)::value;
        if (a.shape == out && b.shape == out) {
          parallelFor(numelOf(out), kGrain, [&](int64_t s, int64_t e) {
            for (int64_t i = s; i < e; i++) {
              T da, db;
              binaryDerivatives<T>(OP, as[i], bs[i], &da, &db);
              if (gaOut) gaOut[i] = gs[i] * da;
              if (gbOut) gbOut[i] = gs[i] * db;
            }
          });
          return;
        }
        const std::vector<int64_t> st[3] = {broadcastStrides(out, out), broadcastStrides(a.shape, out), broadcastStrides(b.shape, out)};
        parallelFor(numelOf(out), kGrain, [&](int64_t s, int64_t e) {
          forEachBroadcast<3>(out, st, s, e, [&](int64_t i, const int64_t* off) {
            T da, db;
            binaryDerivatives<T>(OP, as[off[1]], bs[off[2]], &da, &db);
            if (gaOut) gaOut[i] = gs[i] * da;
            if (gbOut) gbOut[i] = gs[i] * db;
          });
        });
      });
    });
    finishOperandGrad(ga);
    finishOperandGrad(gb);
  });
  return operandGradsToJs(info.Env(), needA, ga, needB, gb);
}

// ------------------------------------------------------------------------------------------------ where

static Napi::Value Where(const Napi::CallbackInfo& info) {
  const Tensor& cond = tensorArg(info, 0, "cond");
  const Tensor& a = tensorArg(info, 1, "a");
  Operand bo = operandArg(info, 2, "b", a);
  const Tensor& b = bo.t;
  requireSameDtype(a, b, "where");
  requireSameDtype(cond, a, "where");
  Shape out = broadcastShapes(broadcastShapes(cond.shape, a.shape, "where"), b.shape, "where");
  requireSameDevice(cond, a, "where");
  requireOperandDevice(a, bo, "where");
  Tensor y = emptyLike(out, a.dtype, a);
  if (a.onCuda()) {
    const CudaGeometry geo = cudaGeometry(out, {&cond.shape, &a.shape, &b.shape}, "where");
    launch(a.device(), [=] {
      const Shape &sc = geo.operands[0], &sa = geo.operands[1], &sb = geo.operands[2];
      cudaCheck(gpu().where(cudaDtype(a.dtype), cond.raw(), sc.data(), int(sc.size()), a.raw(), sa.data(), int(sa.size()),
                            cudaOperand(bo), sb.data(), int(sb.size()), bo.value, y.raw(), geo.out.data(),
                            int(geo.out.size())),
                "where");
    });
    return wrap(info.Env(), std::move(y));
  }
  launch(a.device(), [=] {
    INNFLOW_DISPATCH(a.dtype, T, {
      const T *cs = cond.data<T>(), *as = a.data<T>(), *bs = b.data<T>();
      T* ys = y.data<T>();
      const std::vector<int64_t> st[3] = {broadcastStrides(cond.shape, out), broadcastStrides(a.shape, out), broadcastStrides(b.shape, out)};
      parallelFor(y.numel(), kGrain, [&](int64_t s, int64_t e) {
        forEachBroadcast<3>(out, st, s, e, [&](int64_t i, const int64_t* off) { ys[i] = cs[off[0]] != T(0) ? as[off[1]] : bs[off[2]]; });
      });
    });
  });
  return wrap(info.Env(), std::move(y));
}

static Napi::Value WhereBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  const Tensor& cond = tensorArg(info, 1, "cond");
  Shape aShape = shapeArg(info, 2, "aShape");
  Shape bShape = shapeArg(info, 3, "bShape");
  bool needA = boolArg(info, 4, "needA"), needB = boolArg(info, 5, "needB");
  requireSameDtype(g, cond, "where backward");
  requireSameDevice(g, cond, "where backward");
  // both kernels index cond through the broadcast, so it must really broadcast to g
  if (broadcastShapes(cond.shape, g.shape, "where backward") != g.shape)
    fail("ERR_SHAPE", "where backward: condition shape " + shapeString(cond.shape) + " does not broadcast to " +
                          shapeString(g.shape));
  const OperandGrad ga = operandGrad(needA, g.shape, aShape, g), gb = operandGrad(needB, g.shape, bShape, g);
  if (g.onCuda()) {
    const CudaGeometry geo = cudaGeometry(g.shape, {&cond.shape}, "where backward");
    launch(g.device(), [=] {
      const Shape& sc = geo.operands[0];
      cudaCheck(gpu().whereBackward(cudaDtype(g.dtype), g.raw(), geo.out.data(), int(geo.out.size()), cond.raw(),
                                    sc.data(), int(sc.size()), needA ? ga.full.raw() : nullptr, needB ? gb.full.raw() : nullptr),
                "where backward");
      finishOperandGrad(ga);
      finishOperandGrad(gb);
    });
    return operandGradsToJs(info.Env(), needA, ga, needB, gb);
  }
  launch(g.device(), [=] {
    INNFLOW_DISPATCH(g.dtype, T, {
      const T *gs = g.data<T>(), *cs = cond.data<T>();
      T* gaOut = needA ? ga.full.data<T>() : nullptr;
      T* gbOut = needB ? gb.full.data<T>() : nullptr;
      const std::vector<int64_t> st[1] = {broadcastStrides(cond.shape, g.shape)};
      parallelFor(g.numel(), kGrain, [&](int64_t s, int64_t e) {
        forEachBroadcast<1>(g.shape, st, s, e, [&](int64_t i, const int64_t* off) {
          bool pickA = cs[off[0]] != T(0);
          if (gaOut) gaOut[i] = pickA ? gs[i] : T(0);
          if (gbOut) gbOut[i] = pickA ? T(0) : gs[i];
        });
      });
    });
    finishOperandGrad(ga);
    finishOperandGrad(gb);
  });
  return operandGradsToJs(info.Env(), needA, ga, needB, gb);
}

// ------------------------------------------------------------------------------------------------ expand

ExpandPlan planExpand(const Shape& from, const Shape& target, double scale, Device device) {
  if (broadcastShapes(from, target, "expand") != target)
    fail("ERR_SHAPE", "expand: shape " + shapeString(from) + " does not broadcast to " + shapeString(target));
  ExpandPlan p;
  p.from = from;
  p.target = target;
  p.scale = scale;
  if (device == Device::CUDA) {
    const CudaGeometry geo = cudaGeometry(target, {&from}, "expand");
    p.cudaOut = geo.out;
    p.cudaFrom = geo.operands[0];
  }
  return p;
}

void expandInto(const Tensor& g, const Tensor& y, const ExpandPlan& p) {
  if (g.onCuda()) {
    cudaCheck(gpu().expand(cudaDtype(g.dtype), g.raw(), p.cudaFrom.data(), int(p.cudaFrom.size()), p.scale, y.raw(),
                           p.cudaOut.data(), int(p.cudaOut.size())),
              "expand");
    return;
  }
  INNFLOW_DISPATCH(g.dtype, T, {
    const T* gs = g.data<T>();
    T* ys = y.data<T>();
    const T sc = T(p.scale);
    const std::vector<int64_t> st[1] = {broadcastStrides(p.from, p.target)};
    parallelFor(numelOf(p.target), kGrain, [&](int64_t s, int64_t e) {
      forEachBroadcast<1>(p.target, st, s, e, [&](int64_t i, const int64_t* off) { ys[i] = gs[off[0]] * sc; });
    });
  });
}

Tensor expandTo(const Tensor& g, const Shape& target, double scale) {
  ExpandPlan p = planExpand(g.shape, target, scale, g.device());
  Tensor y = emptyLike(target, g.dtype, g);
  expandInto(g, y, p);
  return y;
}

static Napi::Value Expand(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "x");
  Shape target = shapeArg(info, 1, "shape");
  ExpandPlan plan = planExpand(g.shape, target, 1.0, g.device());
  Tensor y = emptyLike(target, g.dtype, g);
  launch(g.device(), [=, plan = std::move(plan)] { expandInto(g, y, plan); });
  return wrap(info.Env(), std::move(y));
}

static Napi::Value BroadcastShape(const Napi::CallbackInfo& info) {
  Shape a = shapeArg(info, 0, "a"), b = shapeArg(info, 1, "b");
  Shape out = broadcastShapes(a, b, "broadcast");
  Napi::Array arr = Napi::Array::New(info.Env(), out.size());
  for (size_t i = 0; i < out.size(); i++) arr.Set(uint32_t(i), Napi::Number::New(info.Env(), double(out[i])));
  return arr;
}

static Napi::Object opTable(Napi::Env env, const char* const* names, int count) {
  Napi::Object o = Napi::Object::New(env);
  for (int i = 0; i < count; i++) o.Set(names[i], Napi::Number::New(env, i));
  return o;
}

void registerElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("unaryOps", opTable(env, kUnaryNames, U_COUNT));
  exports.Set("binaryOps", opTable(env, kBinaryNames, B_COUNT));
  defineFunction(env, exports, "unary", Unary);
  defineFunction(env, exports, "unaryBackward", UnaryBackward);
  defineFunction(env, exports, "binary", Binary);
  defineFunction(env, exports, "binaryBackward", BinaryBackward);
  defineFunction(env, exports, "where", Where);
  defineFunction(env, exports, "whereBackward", WhereBackward);
  defineFunction(env, exports, "broadcastShape", BroadcastShape);
  defineFunction(env, exports, "expand", Expand);
}

}  // namespace innflow

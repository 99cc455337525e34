// Elementwise ops with NumPy broadcasting on the GPU, forward and backward side by side: the device side of
// native/cpu/elementwise.cc, with the same formulas (see cuda/elementwise.h for the table).
//
// unary(op, x: [n]) -> y: [n]                       unaryBackward(op, g, x, y: [n]) -> gx: [n]
// binary(op, a: [*A], b: [*B] | scalar) -> y: [Y]    binaryBackward(op, g: [Y], a, b) -> ga, gb: [Y]
// where(cond: [*C], a: [*A], b: [*B] | scalar) -> y  whereBackward(g: [Y], cond: [*C]) -> ga, gb: [Y]
// expand(x: [*X], scale) -> y: [Y]
//
// One thread per output element (grid-stride). The op code is a kernel argument: it is the same for every
// thread, so the switch costs no divergence, and these kernels are bound by memory traffic anyway.
#include "common.cuh"
#include "elementwise.h"

using namespace innflow_cuda;

namespace {

// ------------------------------------------------------------------------------------------------ math
// The dtype's libm function, spelled out so that float never silently becomes double (or the reverse).

__device__ inline float mExp(float x) { return expf(x); }
__device__ inline double mExp(double x) { return exp(x); }
__device__ inline float mLog(float x) { return logf(x); }
__device__ inline double mLog(double x) { return log(x); }
__device__ inline float mSqrt(float x) { return sqrtf(x); }
__device__ inline double mSqrt(double x) { return sqrt(x); }
__device__ inline float mTanh(float x) { return tanhf(x); }
__device__ inline double mTanh(double x) { return tanh(x); }
__device__ inline float mAtan(float x) { return atanf(x); }
__device__ inline double mAtan(double x) { return atan(x); }
__device__ inline float mAtan2(float y, float x) { return atan2f(y, x); }
__device__ inline double mAtan2(double y, double x) { return atan2(y, x); }
__device__ inline float mLog1p(float x) { return log1pf(x); }
__device__ inline double mLog1p(double x) { return log1p(x); }
__device__ inline float mExpm1(float x) { return expm1f(x); }
__device__ inline double mExpm1(double x) { return expm1(x); }
__device__ inline float mAbs(float x) { return fabsf(x); }
__device__ inline double mAbs(double x) { return fabs(x); }
__device__ inline float mPow(float x, float y) { return powf(x, y); }
__device__ inline double mPow(double x, double y) { return pow(x, y); }
__device__ inline float mSin(float x) { return sinf(x); }
__device__ inline double mSin(double x) { return sin(x); }
__device__ inline float mCos(float x) { return cosf(x); }
__device__ inline double mCos(double x) { return cos(x); }

// ------------------------------------------------------------------------------------------------ unary

template <class T>
__device__ inline T unaryForward(int op, T x, T p0, T p1) {
  switch (op) {
    case INNFLOW_U_NEG: return -x;
    case INNFLOW_U_EXP: return mExp(x);
    case INNFLOW_U_LOG: return mLog(x);
    case INNFLOW_U_SQRT: return mSqrt(x);
    case INNFLOW_U_SQUARE: return x * x;
    case INNFLOW_U_TANH: return mTanh(x);
    case INNFLOW_U_ATAN: return mAtan(x);
    case INNFLOW_U_SIGMOID: return x >= 0 ? T(1) / (T(1) + mExp(-x)) : mExp(x) / (T(1) + mExp(x));
    case INNFLOW_U_SOFTPLUS: return p0 * x > p1 ? x : mLog1p(mExp(p0 * x)) / p0;
    case INNFLOW_U_RELU: return x > 0 ? x : T(0);
    case INNFLOW_U_LEAKY_RELU: return x > 0 ? x : p0 * x;
    case INNFLOW_U_ELU: return x > 0 ? x : p0 * mExpm1(x);
    case INNFLOW_U_ABS: return mAbs(x);
    case INNFLOW_U_CLAMP: {
      // std::min(std::max(x, p0), p1) exactly (a NaN x stays NaN)
      T m = x < p0 ? p0 : x;
      return p1 < m ? p1 : m;
    }
    case INNFLOW_U_POW: return mPow(x, p0);
    case INNFLOW_U_LOG1P: return mLog1p(x);
    case INNFLOW_U_EXPM1: return mExpm1(x);
    case INNFLOW_U_SIN: return mSin(x);
    case INNFLOW_U_COS: return mCos(x);
    case INNFLOW_U_RECIPROCAL: return T(1) / x;
    case INNFLOW_U_SIGN: return T((x > 0) - (x < 0));
  }
  return x;
}

// dy/dx from x and the forward's output y (as unaryDerivative in elementwise.cc).
template <class T>
__device__ inline T unaryDerivative(int op, T x, T y, T p0, T p1) {
  switch (op) {
    case INNFLOW_U_NEG: return T(-1);
    case INNFLOW_U_EXP: return y;
    case INNFLOW_U_LOG: return T(1) / x;
    case INNFLOW_U_SQRT: return T(0.5) / y;
    case INNFLOW_U_SQUARE: return T(2) * x;
    case INNFLOW_U_TANH: return T(1) - y * y;
    case INNFLOW_U_ATAN: return T(1) / (T(1) + x * x);
    case INNFLOW_U_SIGMOID: return y * (T(1) - y);
    case INNFLOW_U_SOFTPLUS: {
      T z = p0 * x;
      if (z > p1) return T(1);
      return z >= 0 ? T(1) / (T(1) + mExp(-z)) : mExp(z) / (T(1) + mExp(z));
    }
    case INNFLOW_U_RELU: return T(x > T(0));
    case INNFLOW_U_LEAKY_RELU: return p0 + (T(1) - p0) * T(x > T(0));
    case INNFLOW_U_ELU: return x > 0 ? T(1) : y + p0;
    case INNFLOW_U_ABS: return T(x > T(0)) - T(x < T(0));
    case INNFLOW_U_CLAMP: return T(x >= p0) * T(x <= p1);
    case INNFLOW_U_POW: return p0 == T(0) ? T(0) : p0 * mPow(x, p0 - T(1));
    case INNFLOW_U_LOG1P: return T(1) / (T(1) + x);
    case INNFLOW_U_EXPM1: return y + T(1);
    case INNFLOW_U_SIN: return mCos(x);
    case INNFLOW_U_COS: return -mSin(x);
    case INNFLOW_U_RECIPROCAL: return -y * y;
    case INNFLOW_U_SIGN: return T(0);
  }
  return T(0);
}

// g · dy/dx; the piecewise activations select g (so a non-finite g is not multiplied by 0), as on the CPU.
template <class T>
__device__ inline T unaryGrad(int op, T g, T x, T y, T p0, T p1) {
  switch (op) {
    case INNFLOW_U_RELU: return x > T(0) ? g : T(0);
    case INNFLOW_U_LEAKY_RELU: return g * (x > T(0) ? T(1) : p0);
    case INNFLOW_U_ELU: return g * (x > T(0) ? T(1) : y + p0);
    default: return g * unaryDerivative<T>(op, x, y, p0, p1);
  }
}

// x, y: [n]
template <class T>
__global__ void unaryKernel(int op, const T* __restrict__ x, T* __restrict__ y, int64_t n, T p0, T p1) {
  INNFLOW_GRID_STRIDE(i, n) y[i] = unaryForward<T>(op, x[i], p0, p1);
}

// g, x, y, gx: [n]
template <class T>
__global__ void unaryBackwardKernel(int op, const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ y,
                                    T* __restrict__ gx, int64_t n, T p0, T p1) {
  INNFLOW_GRID_STRIDE(i, n) gx[i] = unaryGrad<T>(op, g[i], x[i], y[i], p0, p1);
}

// ------------------------------------------------------------------------------------------------ binary

template <class T>
__device__ inline T binaryForward(int op, T a, T b) {
  switch (op) {
    case INNFLOW_B_ADD: return a + b;
    case INNFLOW_B_SUB: return a - b;
    case INNFLOW_B_MUL: return a * b;
    case INNFLOW_B_DIV: return a / b;
    case INNFLOW_B_POW: return mPow(a, b);
    case INNFLOW_B_MAXIMUM: return a > b ? a : b;
    case INNFLOW_B_MINIMUM: return a < b ? a : b;
    case INNFLOW_B_ATAN2: return mAtan2(a, b);
    case INNFLOW_B_GT: return T(a > b);
    case INNFLOW_B_LT: return T(a < b);
    case INNFLOW_B_GE: return T(a >= b);
    case INNFLOW_B_LE: return T(a <= b);
    case INNFLOW_B_EQ: return T(a == b);
    case INNFLOW_B_NE: return T(a != b);
  }
  return T(0);
}

// ∂y/∂a and ∂y/∂b; ties of maximum/minimum share the gradient equally (as binaryDerivatives on the CPU).
template <class T>
__device__ inline void binaryDerivatives(int op, T a, T b, T* da, T* db) {
  switch (op) {
    case INNFLOW_B_ADD: *da = 1; *db = 1; return;
    case INNFLOW_B_SUB: *da = 1; *db = -1; return;
    case INNFLOW_B_MUL: *da = b; *db = a; return;
    case INNFLOW_B_DIV: *da = T(1) / b; *db = -a / (b * b); return;
    case INNFLOW_B_POW:
      *da = b == T(0) ? T(0) : b * mPow(a, b - T(1));
      *db = a > T(0) ? mPow(a, b) * mLog(a) : T(0);
      return;
    case INNFLOW_B_MAXIMUM: *da = a > b ? T(1) : (a == b ? T(0.5) : T(0)); *db = T(1) - *da; return;
    case INNFLOW_B_MINIMUM: *da = a < b ? T(1) : (a == b ? T(0.5) : T(0)); *db = T(1) - *da; return;
    case INNFLOW_B_ATAN2: {
      T r = a * a + b * b;
      *da = b / r;
      *db = -a / r;
      return;
    }
    default: *da = 0; *db = 0; return;
  }
}

// a: [*A], b: [*B] or the scalar bs (b == nullptr), y: [Y] with n elements. direct: A (and B) equal Y, so the
// operands are read at the output index (bc is unused then).
template <class T>
__global__ void binaryKernel(int op, const T* __restrict__ a, const T* __restrict__ b, T bs, T* __restrict__ y, int64_t n,
                             Broadcast bc, bool direct) {
  INNFLOW_GRID_STRIDE(i, n) {
    int64_t off[2] = {i, i};
    if (!direct) bc.offsets(i, off, 2);
    y[i] = binaryForward<T>(op, a[off[0]], b ? b[off[1]] : bs);
  }
}

// g, ga, gb: [Y] (n elements; ga/gb may be null), a: [*A], b: [*B] or the scalar bs.
template <class T>
__global__ void binaryBackwardKernel(int op, const T* __restrict__ g, const T* __restrict__ a, const T* __restrict__ b,
                                     T bs, T* __restrict__ ga, T* __restrict__ gb, int64_t n, Broadcast bc, bool direct) {
  INNFLOW_GRID_STRIDE(i, n) {
    int64_t off[2] = {i, i};
    if (!direct) bc.offsets(i, off, 2);
    T da, db;
    binaryDerivatives<T>(op, a[off[0]], b ? b[off[1]] : bs, &da, &db);
    const T gi = g[i];
    if (ga) ga[i] = gi * da;
    if (gb) gb[i] = gi * db;
  }
}

// ------------------------------------------------------------------------------------------------ where / expand

// cond: [*C], a: [*A], b: [*B] or the scalar bs, y: [Y] (n elements)
template <class T>
__global__ void whereKernel(const T* __restrict__ cond, const T* __restrict__ a, const T* __restrict__ b, T bs,
                            T* __restrict__ y, int64_t n, Broadcast bc) {
  INNFLOW_GRID_STRIDE(i, n) {
    int64_t off[3];
    bc.offsets(i, off, 3);
    y[i] = cond[off[0]] != T(0) ? a[off[1]] : (b ? b[off[2]] : bs);
  }
}

// g, ga, gb: [Y] (n elements; ga/gb may be null), cond: [*C]
template <class T>
__global__ void whereBackwardKernel(const T* __restrict__ g, const T* __restrict__ cond, T* __restrict__ ga,
                                    T* __restrict__ gb, int64_t n, Broadcast bc) {
  INNFLOW_GRID_STRIDE(i, n) {
    int64_t off[1];
    bc.offsets(i, off, 1);
    const bool pickA = cond[off[0]] != T(0);
    if (ga) ga[i] = pickA ? g[i] : T(0);
    if (gb) gb[i] = pickA ? T(0) : g[i];
  }
}

// x: [*X], y: [Y] (n elements)
template <class T>
__global__ void expandKernel(const T* __restrict__ x, T scale, T* __restrict__ y, int64_t n, Broadcast bc) {
  INNFLOW_GRID_STRIDE(i, n) {
    int64_t off[1];
    bc.offsets(i, off, 1);
    y[i] = x[off[0]] * scale;
  }
}

// ------------------------------------------------------------------------------------------------ host side

int64_t numelOf(const int64_t* shape, int ndim) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  return n;
}

bool sameShape(const int64_t* a, int an, const int64_t* b, int bn) {
  if (an != bn) return false;
  for (int d = 0; d < an; d++)
    if (a[d] != b[d]) return false;
  return true;
}

// Broadcast geometry for up to 3 operands, or a recorded bad-argument status.
int broadcastFor(Broadcast* bc, const int64_t* outShape, int outNdim, const int64_t* const* shapes, const int* ndims,
                 int operands, const char* op) {
  *bc = Broadcast{};
  if (!makeBroadcast(bc, outShape, outNdim, shapes, ndims, operands))
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "%s: cannot broadcast on the GPU (output has %d dimensions, at most %d)",
                       op, outNdim, INNFLOW_CUDA_MAX_DIMS);
  return INNFLOW_CUDA_OK;
}

bool validUnary(int op) { return op >= 0 && op < INNFLOW_U_COUNT; }
bool validBinary(int op) { return op >= 0 && op < INNFLOW_B_COUNT; }

int unary(int op, int dtype, const void* x, void* y, int64_t n, double p0, double p1) {
  if (!validUnary(op)) return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "unknown unary op %d", op);
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    unaryKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(op, static_cast<const T*>(x), static_cast<T*>(y), n, T(p0), T(p1));
    INNFLOW_LAUNCHED("unary");
    return INNFLOW_CUDA_OK;
  });
}

int unaryBackward(int op, int dtype, const void* g, const void* x, const void* y, void* gx, int64_t n, double p0,
                  double p1) {
  if (!validUnary(op)) return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "unknown unary op %d", op);
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    unaryBackwardKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(op, static_cast<const T*>(g), static_cast<const T*>(x),
                                                                  static_cast<const T*>(y), static_cast<T*>(gx), n, T(p0),
                                                                  T(p1));
    INNFLOW_LAUNCHED("unaryBackward");
    return INNFLOW_CUDA_OK;
  });
}

// The broadcast geometry of a binary op: direct when no operand needs broadcasting (then bc stays unused and
// any number of dimensions works).
int binaryGeometry(const int64_t* aShape, int aNdim, const void* b, const int64_t* bShape, int bNdim,
                   const int64_t* outShape, int outNdim, Broadcast* bc, bool* direct, const char* op) {
  *bc = Broadcast{};
  *direct = sameShape(aShape, aNdim, outShape, outNdim) && (b == nullptr || sameShape(bShape, bNdim, outShape, outNdim));
  if (*direct) return INNFLOW_CUDA_OK;
  static const int64_t kNone[1] = {1};
  const int64_t* shapes[2] = {aShape, b ? bShape : kNone};
  const int ndims[2] = {aNdim, b ? bNdim : 0};
  return broadcastFor(bc, outShape, outNdim, shapes, ndims, 2, op);
}

int binary(int op, int dtype, const void* a, const int64_t* aShape, int aNdim, const void* b, const int64_t* bShape,
           int bNdim, double bScalar, void* y, const int64_t* outShape, int outNdim) {
  if (!validBinary(op)) return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "unknown binary op %d", op);
  const int64_t n = numelOf(outShape, outNdim);
  if (n <= 0) return INNFLOW_CUDA_OK;
  Broadcast bc;
  bool direct;
  INNFLOW_STATUS_TRY(binaryGeometry(aShape, aNdim, b, bShape, bNdim, outShape, outNdim, &bc, &direct, "binary"));
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    binaryKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(op, static_cast<const T*>(a), static_cast<const T*>(b),
                                                           T(bScalar), static_cast<T*>(y), n, bc, direct);
    INNFLOW_LAUNCHED("binary");
    return INNFLOW_CUDA_OK;
  });
}

int binaryBackward(int op, int dtype, const void* g, const void* a, const int64_t* aShape, int aNdim, const void* b,
                   const int64_t* bShape, int bNdim, double bScalar, void* ga, void* gb, const int64_t* outShape,
                   int outNdim) {
  if (!validBinary(op)) return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "unknown binary op %d", op);
  const int64_t n = numelOf(outShape, outNdim);
  if (n <= 0 || (ga == nullptr && gb == nullptr)) return INNFLOW_CUDA_OK;
  Broadcast bc;
  bool direct;
  INNFLOW_STATUS_TRY(binaryGeometry(aShape, aNdim, b, bShape, bNdim, outShape, outNdim, &bc, &direct, "binary backward"));
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    binaryBackwardKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(op, static_cast<const T*>(g), static_cast<const T*>(a),
                                                                   static_cast<const T*>(b), T(bScalar), static_cast<T*>(ga),
                                                                   static_cast<T*>(gb), n, bc, direct);
    INNFLOW_LAUNCHED("binaryBackward");
    return INNFLOW_CUDA_OK;
  });
}

int where(int dtype, const void* cond, const int64_t* condShape, int condNdim, const void* a, const int64_t* aShape,
          int aNdim, const void* b, const int64_t* bShape, int bNdim, double bScalar, void* y, const int64_t* outShape,
          int outNdim) {
  const int64_t n = numelOf(outShape, outNdim);
  if (n <= 0) return INNFLOW_CUDA_OK;
  static const int64_t kNone[1] = {1};
  const int64_t* shapes[3] = {condShape, aShape, b ? bShape : kNone};
  const int ndims[3] = {condNdim, aNdim, b ? bNdim : 0};
  Broadcast bc;
  INNFLOW_STATUS_TRY(broadcastFor(&bc, outShape, outNdim, shapes, ndims, 3, "where"));
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    whereKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<const T*>(cond), static_cast<const T*>(a),
                                                          static_cast<const T*>(b), T(bScalar), static_cast<T*>(y), n, bc);
    INNFLOW_LAUNCHED("where");
    return INNFLOW_CUDA_OK;
  });
}

int whereBackward(int dtype, const void* g, const int64_t* gShape, int gNdim, const void* cond, const int64_t* condShape,
                  int condNdim, void* ga, void* gb) {
  const int64_t n = numelOf(gShape, gNdim);
  if (n <= 0 || (ga == nullptr && gb == nullptr)) return INNFLOW_CUDA_OK;
  const int64_t* shapes[1] = {condShape};
  const int ndims[1] = {condNdim};
  Broadcast bc;
  INNFLOW_STATUS_TRY(broadcastFor(&bc, gShape, gNdim, shapes, ndims, 1, "where backward"));
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    whereBackwardKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<const T*>(g), static_cast<const T*>(cond),
                                                                  static_cast<T*>(ga), static_cast<T*>(gb), n, bc);
    INNFLOW_LAUNCHED("whereBackward");
    return INNFLOW_CUDA_OK;
  });
}

int expand(int dtype, const void* x, const int64_t* xShape, int xNdim, double scale, void* y, const int64_t* outShape,
           int outNdim) {
  const int64_t n = numelOf(outShape, outNdim);
  if (n <= 0) return INNFLOW_CUDA_OK;
  Broadcast bc{};
  if (sameShape(xShape, xNdim, outShape, outNdim)) {
    // no broadcasting (any number of dimensions): read x flat
    bc.ndim = 1;
    bc.shape[0] = n;
    bc.strides[0][0] = 1;
  } else {
    const int64_t* shapes[1] = {xShape};
    const int ndims[1] = {xNdim};
    INNFLOW_STATUS_TRY(broadcastFor(&bc, outShape, outNdim, shapes, ndims, 1, "expand"));
  }
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    expandKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<const T*>(x), T(scale), static_cast<T*>(y), n, bc);
    INNFLOW_LAUNCHED("expand");
    return INNFLOW_CUDA_OK;
  });
}

}  // namespace

extern "C" const InnflowCudaElementwise* innflow_cuda_elementwise(void) {
  static const InnflowCudaElementwise table = {unary, unaryBackward, binary, binaryBackward, where, whereBackward, expand};
  return &table;
}

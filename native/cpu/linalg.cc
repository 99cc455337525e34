// Small dense linear algebra: LU with partial pivoting, slogdet, inverse, triangular solve and Householder QR,
// forward and backward side by side.
//
// Every entry point takes one matrix or a batch of them (..., m, n): the leading dimensions are flattened and
// the matrices are shared out over the thread pool, one matrix per task. The matrices this library meets are
// small (up to a few hundred rows), so each is factored by plain loops in one thread; no LAPACK.
// Every kernel copies its matrix into double and works there, so a float32 result is the float64 result on
// the same (float32) input rounded once, and pivot choices are the same in both dtypes.
//
// lu(A: [*, n, n])                             -> [P, L, U]: each [*, n, n], A = P·L·U (torch.linalg.lu):
//                                                 P a permutation matrix, L unit lower triangular, U upper
// luBackward(gL | null, gU | null, P, L, U)    -> gA: [*, n, n]        (needs U non-singular)
// slogdet(A: [*, n, n])                        -> [sign: [*], logabsdet: [*]] (singular: sign 0, -inf)
// slogdetBackward(g: [*], A: [*, n, n])        -> gA = g · A^{-T}      (needs A non-singular)
// inverse(A: [*, n, n])                        -> Ainv: [*, n, n]      (singular: ERR_ARGUMENT)
// inverseBackward(g: [*, n, n], Ainv)          -> gA = -Ainvᵀ · g · Ainvᵀ
// solveTriangular(A: [*, n, n], B, upper, left, unit)
//                                              -> X shaped like B; left: A·X = B with B [*, n, k];
//                                                 right: X·A = B with B [*, k, n]. Only the upper (or lower)
//                                                 triangle of A is read, its diagonal only when !unit.
// solveTriangularBackward(g, A, X, upper, left, unit, needA, needB)
//                                              -> [gA | null, gB | null]; gA lives on the triangle that was read
// qr(A: [*, m, n], m >= n)                     -> [Q: [*, m, n], R: [*, n, n]]   reduced QR, A = Q·R
// qrBackward(gQ | null, gR | null, Q, R)       -> gA: [*, m, n]        (needs R non-singular, i.e. full rank)
//
// QR sign convention (that of LAPACK's geqrf, hence of torch.linalg.qr on the CPU): the reflector of column j
// maps x = A⁽ʲ⁾[j:, j] to beta·e1 with beta = -sign(x0)·‖x‖ (sign(0) = +), so R[j][j] has the sign opposite to
// the pivot it replaced; when x is already a multiple of e1 no reflection is made and R[j][j] = x0. Callers
// that want a positive diagonal (orthogonal initialisation) multiply Q's columns by sign(diag(R)).
//
// CUDA tensors: every entry point validates as for the CPU, requires all its tensors on one device, and runs
// the same algorithm on the GPU (cuda/linalg.cu, same pivot choices, computed in double). One difference:
// where the CPU throws ERR_ARGUMENT after inspecting values (a singular matrix in inverse, slogdetBackward,
// luBackward, qrBackward, solveTriangular and its backward), the GPU cannot without a host synchronisation;
// the outputs of that matrix are NaN instead.
//
// Compiled steps (native/capture.h): every entry point allocates its outputs and then runs its kernel through
// launch(), so a replay recomputes them in place. The value checks above are made by the kernel itself: it
// writes NaN for the matrix it cannot handle and reports the first such matrix, and the call throws after the
// kernel has run. A replay has no caller to throw to, so there the CPU, like the GPU, leaves NaN.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../../cuda/linalg.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"

namespace innflow {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Shapes and batches

struct Dims {
  int64_t batch;  // number of matrices
  int64_t rows, cols;
};

Dims matrixDims(const Tensor& t, const char* op, const char* name) {
  if (t.dim() < 2)
    fail("ERR_SHAPE", std::string(op) + ": " + name + " must be a matrix or a batch of matrices (..., m, n), got shape " +
                          shapeString(t.shape));
  int64_t rows = t.shape[t.dim() - 2], cols = t.shape[t.dim() - 1];
  int64_t batch = 1;
  for (int64_t d = 0; d < t.dim() - 2; d++) batch *= t.shape[d];
  return {batch, rows, cols};
}

Dims squareDims(const Tensor& t, const char* op, const char* name) {
  Dims d = matrixDims(t, op, name);
  if (d.rows != d.cols)
    fail("ERR_SHAPE", std::string(op) + ": " + name + " must be square (..., n, n), got shape " + shapeString(t.shape));
  return d;
}

Shape batchShape(const Tensor& t) { return Shape(t.shape.begin(), t.shape.end() - 2); }

Shape withMatrix(const Shape& batch, int64_t rows, int64_t cols) {
  Shape s = batch;
  s.push_back(rows);
  s.push_back(cols);
  return s;
}

void requireShape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
  if (t.shape != expected)
    fail("ERR_SHAPE", std::string(op) + ": " + name + " must have shape " + shapeString(expected) + ", got " +
                          shapeString(t.shape));
}

// A tensor argument that may be null (an output that received no gradient).
const Tensor* optionalTensorArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i < info.Length() && (info[i].IsNull() || info[i].IsUndefined())) return nullptr;
  return &tensorArg(info, i, name);
}

// Marks a matrix whose outputs cannot be computed (a singular matrix): NaN, as on the GPU.
template <class T>
void fillNaN(T* dst, int64_t count) {
  std::fill_n(dst, count, std::numeric_limits<T>::quiet_NaN());
}

template <class T>
void load(const T* src, int64_t count, double* dst) {
  for (int64_t i = 0; i < count; i++) dst[i] = double(src[i]);
}
template <class T>
void store(const double* src, int64_t count, T* dst) {
  for (int64_t i = 0; i < count; i++) dst[i] = T(src[i]);
}

// Runs body(b) for every matrix of the batch over the thread pool. Exceptions must not leave a worker thread,
// so a body reports failure by returning false; the lowest failing index is returned (-1 when none failed).
template <class F>
int64_t forEachMatrix(int64_t batch, int64_t workPerMatrix, const F& body) {
  std::atomic<int64_t> firstFailure{std::numeric_limits<int64_t>::max()};
  int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(workPerMatrix, 1));
  parallelFor(batch, grain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; b++)
      if (!body(b)) {
        int64_t prev = firstFailure.load();
        while (b < prev && !firstFailure.compare_exchange_weak(prev, b)) {
        }
      }
  });
  int64_t f = firstFailure.load();
  return f == std::numeric_limits<int64_t>::max() ? -1 : f;
}

const InnflowCudaLinalg& cudaLinalg() { return cudaTable<InnflowCudaLinalg>("innflow_cuda_linalg"); }

std::string whichMatrix(int64_t batchIndex, int64_t batch) {
  return batch > 1 ? " (matrix " + std::to_string(batchIndex) + " of the batch)" : "";
}

// ---------------------------------------------------------------------------------------------------------
// Building blocks on row-major double matrices

// LU with partial pivoting in place: a (n×n) ends with L's multipliers below the diagonal (its unit diagonal
// implied) and U on and above it; row i of the factored matrix is row perm[i] of the input (Π·A = L·U).
// A zero column below the diagonal is skipped, as LAPACK's getrf does, so singular matrices factor with a
// zero pivot in U. Returns the sign of the permutation.
int luInPlace(double* a, int64_t n, int64_t* perm) {
  int sign = 1;
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  for (int64_t k = 0; k < n; k++) {
    int64_t p = k;
    double best = std::fabs(a[k * n + k]);
    for (int64_t i = k + 1; i < n; i++) {
      double v = std::fabs(a[i * n + k]);
      if (v > best) {
        best = v;
        p = i;
      }
    }
    if (p != k) {
      for (int64_t j = 0; j < n; j++) std::swap(a[k * n + j], a[p * n + j]);
      std::swap(perm[k], perm[p]);
      sign = -sign;
    }
    const double pivot = a[k * n + k];
    if (pivot == 0) continue;
    const double* rowK = a + k * n;
    for (int64_t i = k + 1; i < n; i++) {
      double* rowI = a + i * n;
      const double l = rowI[k] / pivot;
      rowI[k] = l;
      if (l != 0)
        for (int64_t j = k + 1; j < n; j++) rowI[j] -= l * rowK[j];
    }
  }
  return sign;
}

bool zeroOnDiagonal(const double* t, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (t[i * n + i] == 0) return true;
  return false;
}

// Solves op(T)·X = B for X in place of B (n×k), with op(T) = T or Tᵀ. Only T's upper (or lower) triangle is
// read, and its diagonal only when !unit. Works on whole rows of B, so the inner loop runs over contiguous k.
void triSolveLeft(const double* t, int64_t n, bool upper, bool trans, bool unit, double* b, int64_t k) {
  auto at = [&](int64_t i, int64_t j) { return trans ? t[j * n + i] : t[i * n + j]; };
  const bool forward = upper == trans;  // op(T) is lower triangular: substitute from the first row down
  for (int64_t s = 0; s < n; s++) {
    const int64_t i = forward ? s : n - 1 - s;
    double* rowI = b + i * k;
    const int64_t j0 = forward ? 0 : i + 1, j1 = forward ? i : n;
    for (int64_t j = j0; j < j1; j++) {
      const double c = at(i, j);
      if (c == 0) continue;
      const double* rowJ = b + j * k;
      for (int64_t c2 = 0; c2 < k; c2++) rowI[c2] -= c * rowJ[c2];
    }
    if (!unit) {
      const double d = t[i * n + i];
      for (int64_t c2 = 0; c2 < k; c2++) rowI[c2] /= d;
    }
  }
}

// Solves X·op(T) = B for X in place of B (k×n), as op(T)ᵀ·Xᵀ = Bᵀ through a transposed copy.
void triSolveRight(const double* t, int64_t n, bool upper, bool trans, bool unit, double* b, int64_t k) {
  std::vector<double> bt(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < k; r++)
    for (int64_t c = 0; c < n; c++) bt[c * k + r] = b[r * n + c];
  triSolveLeft(t, n, upper, !trans, unit, bt.data(), k);
  for (int64_t r = 0; r < k; r++)
    for (int64_t c = 0; c < n; c++) b[r * n + c] = bt[c * k + r];
}

// The inverse of Π·A = L·U (lu packed as luInPlace leaves it): A⁻¹ = U⁻¹·L⁻¹·Π.
void inverseFromLu(const double* lu, const int64_t* perm, int64_t n, double* out) {
  std::fill_n(out, n * n, 0.0);
  for (int64_t i = 0; i < n; i++) out[i * n + perm[i]] = 1;
  triSolveLeft(lu, n, /*upper=*/false, false, /*unit=*/true, out, n);
  triSolveLeft(lu, n, /*upper=*/true, false, /*unit=*/false, out, n);
}

// ---------------------------------------------------------------------------------------------------------
// lu / luBackward

template <class T>
void luKernel(const T* A, T* P, T* L, T* U, int64_t batch, int64_t n) {
  const int64_t nn = n * n;
  forEachMatrix(batch, nn * n, [&](int64_t b) {
    std::vector<double> a(static_cast<size_t>(nn));
    std::vector<int64_t> perm(static_cast<size_t>(n));
    load(A + b * nn, nn, a.data());
    luInPlace(a.data(), n, perm.data());
    T *p = P + b * nn, *l = L + b * nn, *u = U + b * nn;
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) {
        const double v = a[i * n + j];
        l[i * n + j] = T(j < i ? v : (j == i ? 1.0 : 0.0));
        u[i * n + j] = T(j >= i ? v : 0.0);
        p[i * n + j] = 0;
      }
    // A = P·L·U with P = Πᵀ: column i of P has its one in row perm[i]
    for (int64_t i = 0; i < n; i++) p[perm[i] * n + i] = 1;
    return true;
  });
}

Napi::Value Lu(const Napi::CallbackInfo& info) {
  const Tensor& A = tensorArg(info, 0, "A");
  Dims d = squareDims(A, "lu", "A");
  Tensor P = emptyLike(A.shape, A.dtype, A), L = emptyLike(A.shape, A.dtype, A), U = emptyLike(A.shape, A.dtype, A);
  launch(A.device(), [=] {
    if (A.onCuda())
      cudaCheck(cudaLinalg().lu(cudaDtype(A.dtype), A.raw(), P.raw(), L.raw(), U.raw(), d.batch, d.rows), "lu");
    else
      INNFLOW_DISPATCH(A.dtype, T, { luKernel<T>(A.data<T>(), P.data<T>(), L.data<T>(), U.data<T>(), d.batch, d.rows); });
  });
  Napi::Array out = Napi::Array::New(info.Env(), 3);
  out.Set(0u, wrap(info.Env(), P));
  out.Set(1u, wrap(info.Env(), L));
  out.Set(2u, wrap(info.Env(), U));
  return out;
}

// From dA = P·(dL·U + L·dU): X = L⁻¹·Pᵀ·dA·U⁻¹ = L⁻¹·dL + dU·U⁻¹ splits into its strictly lower part
// (L⁻¹·dL, since L has a constant unit diagonal) and its upper part (dU·U⁻¹). Pairing with gL and gU gives
// gA = P·L⁻ᵀ·M·U⁻ᵀ with M = tril(Lᵀ·gL, -1) + triu(gU·Uᵀ). Only the strictly lower part of gL and the
// upper part of gU take part, as they should: the other entries of L and U are constants.
template <class T>
int64_t luBackwardKernel(const T* gL, const T* gU, const T* P, const T* L, const T* U, T* gA, int64_t batch, int64_t n) {
  const int64_t nn = n * n;
  return forEachMatrix(batch, nn * n, [&](int64_t b) {
    const int64_t off = b * nn;
    std::vector<double> l(static_cast<size_t>(nn)), u(static_cast<size_t>(nn)), m(static_cast<size_t>(nn), 0.0);
    load(L + off, nn, l.data());
    load(U + off, nn, u.data());
    if (zeroOnDiagonal(u.data(), n)) {
      fillNaN(gA + off, nn);
      return false;
    }
    if (gL) {
      const T* g = gL + off;
      for (int64_t k = 0; k < n; k++)  // (Lᵀ·gL)[i][j] = Σ_k L[k][i]·gL[k][j], with k >= i as L is lower
        for (int64_t i = 1; i <= k; i++) {
          const double lki = l[k * n + i];
          if (lki == 0) continue;
          for (int64_t j = 0; j < i; j++) m[i * n + j] += lki * double(g[k * n + j]);
        }
    }
    if (gU) {
      const T* g = gU + off;
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) {
          double s = 0;
          for (int64_t k = j; k < n; k++) s += double(g[i * n + k]) * u[j * n + k];
          m[i * n + j] = s;
        }
    }
    triSolveRight(u.data(), n, /*upper=*/true, /*trans=*/true, false, m.data(), n);  // M·U⁻ᵀ
    triSolveLeft(l.data(), n, /*upper=*/false, /*trans=*/true, true, m.data(), n);   // L⁻ᵀ·(M·U⁻ᵀ)
    // rows of P·Z: P's column i has its one in row r, which receives row i of Z
    const T* p = P + off;
    T* out = gA + off;
    std::fill_n(out, nn, T(0));  // rows P does not reach (P not a permutation matrix) stay zero
    for (int64_t i = 0; i < n; i++) {
      int64_t r = 0;
      while (r < n - 1 && p[r * n + i] == 0) r++;
      for (int64_t j = 0; j < n; j++) out[r * n + j] = T(m[i * n + j]);
    }
    return true;
  });
}

Napi::Value LuBackward(const Napi::CallbackInfo& info) {
  const Tensor* gLArg = optionalTensorArg(info, 0, "gL");
  const Tensor* gUArg = optionalTensorArg(info, 1, "gU");
  const Tensor& P = tensorArg(info, 2, "P");
  const Tensor& L = tensorArg(info, 3, "L");
  const Tensor& U = tensorArg(info, 4, "U");
  Dims d = squareDims(U, "lu backward", "U");
  requireShape(P, U.shape, "lu backward", "P");
  requireShape(L, U.shape, "lu backward", "L");
  requireSameDtype(P, U, "lu backward");
  requireSameDtype(L, U, "lu backward");
  for (const Tensor* g : {gLArg, gUArg})
    if (g) {
      requireShape(*g, U.shape, "lu backward", "the gradient");
      requireSameDtype(*g, U, "lu backward");
    }
  requireSameDevice(P, U, "lu backward");
  requireSameDevice(L, U, "lu backward");
  for (const Tensor* g : {gLArg, gUArg})
    if (g) requireSameDevice(*g, U, "lu backward");
  const bool hasGL = gLArg != nullptr, hasGU = gUArg != nullptr;
  const Tensor gL = hasGL ? *gLArg : Tensor(), gU = hasGU ? *gUArg : Tensor();
  Tensor gA = emptyLike(U.shape, U.dtype, U);  // written in full by either device
  auto failed = std::make_shared<int64_t>(-1);
  launch(U.device(), [=] {
    if (U.onCuda()) {  // a singular U gives NaN there instead of ERR_ARGUMENT (no host sync)
      cudaCheck(cudaLinalg().luBackward(cudaDtype(U.dtype), hasGL ? gL.raw() : nullptr, hasGU ? gU.raw() : nullptr,
                                        P.raw(), L.raw(), U.raw(), gA.raw(), d.batch, d.rows),
                "lu backward");
      return;
    }
    INNFLOW_DISPATCH(U.dtype, T, {
      *failed = luBackwardKernel<T>(hasGL ? gL.data<T>() : nullptr, hasGU ? gU.data<T>() : nullptr, P.data<T>(),
                                    L.data<T>(), U.data<T>(), gA.data<T>(), d.batch, d.rows);
    });
  });
  if (*failed >= 0)
    fail("ERR_ARGUMENT", "lu backward: the matrix is singular (zero pivot in U)" + whichMatrix(*failed, d.batch) +
                             "; the LU factors are not differentiable there");
  return wrap(info.Env(), gA);
}

// ---------------------------------------------------------------------------------------------------------
// slogdet / slogdetBackward

template <class T>
void slogdetKernel(const T* A, T* sign, T* logabsdet, int64_t batch, int64_t n) {
  const int64_t nn = n * n;
  forEachMatrix(batch, nn * n, [&](int64_t b) {
    std::vector<double> a(static_cast<size_t>(nn));
    std::vector<int64_t> perm(static_cast<size_t>(n));
    load(A + b * nn, nn, a.data());
    double s = luInPlace(a.data(), n, perm.data());
    double lad = 0;
    for (int64_t i = 0; i < n; i++) {
      const double u = a[i * n + i];
      if (u == 0) {
        s = 0;
        lad = -std::numeric_limits<double>::infinity();
        break;
      }
      if (u < 0) s = -s;
      lad += std::log(std::fabs(u));  // a sum of logs: the determinant itself may overflow
    }
    sign[b] = T(s);
    logabsdet[b] = T(lad);
    return true;
  });
}

Napi::Value Slogdet(const Napi::CallbackInfo& info) {
  const Tensor& A = tensorArg(info, 0, "A");
  Dims d = squareDims(A, "slogdet", "A");
  Shape bs = batchShape(A);
  Tensor sign = emptyLike(bs, A.dtype, A), lad = emptyLike(bs, A.dtype, A);
  launch(A.device(), [=] {
    if (A.onCuda())
      cudaCheck(cudaLinalg().slogdet(cudaDtype(A.dtype), A.raw(), sign.raw(), lad.raw(), d.batch, d.rows), "slogdet");
    else
      INNFLOW_DISPATCH(A.dtype, T, { slogdetKernel<T>(A.data<T>(), sign.data<T>(), lad.data<T>(), d.batch, d.rows); });
  });
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, wrap(info.Env(), sign));
  out.Set(1u, wrap(info.Env(), lad));
  return out;
}

// d log|det A| = tr(A⁻¹·dA), so gA = g·A⁻ᵀ. The inverse is recomputed here rather than kept from the
// forward pass: it costs the same O(n³) and the forward pass stays cheap when no gradient is wanted.
template <class T>
int64_t slogdetBackwardKernel(const T* g, const T* A, T* gA, int64_t batch, int64_t n) {
  const int64_t nn = n * n;
  return forEachMatrix(batch, nn * n, [&](int64_t b) {
    std::vector<double> a(static_cast<size_t>(nn)), inv(static_cast<size_t>(nn));
    std::vector<int64_t> perm(static_cast<size_t>(n));
    load(A + b * nn, nn, a.data());
    luInPlace(a.data(), n, perm.data());
    if (zeroOnDiagonal(a.data(), n)) {
      fillNaN(gA + b * nn, nn);
      return false;
    }
    inverseFromLu(a.data(), perm.data(), n, inv.data());
    const double gb = double(g[b]);
    T* out = gA + b * nn;
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) out[i * n + j] = T(gb * inv[j * n + i]);
    return true;
  });
}

Napi::Value SlogdetBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  const Tensor& A = tensorArg(info, 1, "A");
  Dims d = squareDims(A, "slogdet backward", "A");
  requireShape(g, batchShape(A), "slogdet backward", "g");
  requireSameDtype(g, A, "slogdet backward");
  requireSameDevice(g, A, "slogdet backward");
  Tensor gA = emptyLike(A.shape, A.dtype, A);
  auto failed = std::make_shared<int64_t>(-1);
  launch(A.device(), [=] {
    if (A.onCuda()) {  // a singular matrix gives NaN instead of ERR_ARGUMENT (no host sync)
      cudaCheck(cudaLinalg().slogdetBackward(cudaDtype(A.dtype), g.raw(), A.raw(), gA.raw(), d.batch, d.rows),
                "slogdet backward");
      return;
    }
    INNFLOW_DISPATCH(A.dtype, T, {
      *failed = slogdetBackwardKernel<T>(g.data<T>(), A.data<T>(), gA.data<T>(), d.batch, d.rows);
    });
  });
  if (*failed >= 0)
    fail("ERR_ARGUMENT", "slogdet backward: the matrix is singular" + whichMatrix(*failed, d.batch) +
                             "; log|det| is not differentiable there");
  return wrap(info.Env(), gA);
}

// ---------------------------------------------------------------------------------------------------------
// inverse / inverseBackward

template <class T>
int64_t inverseKernel(const T* A, T* out, int64_t batch, int64_t n) {
  const int64_t nn = n * n;
  return forEachMatrix(batch, nn * n, [&](int64_t b) {
    std::vector<double> a(static_cast<size_t>(nn)), inv(static_cast<size_t>(nn));
    std::vector<int64_t> perm(static_cast<size_t>(n));
    load(A + b * nn, nn, a.data());
    luInPlace(a.data(), n, perm.data());
    if (zeroOnDiagonal(a.data(), n)) {
      fillNaN(out + b * nn, nn);
      return false;
    }
    inverseFromLu(a.data(), perm.data(), n, inv.data());
    store(inv.data(), nn, out + b * nn);
    return true;
  });
}

Napi::Value Inverse(const Napi::CallbackInfo& info) {
  const Tensor& A = tensorArg(info, 0, "A");
  Dims d = squareDims(A, "inverse", "A");
  Tensor out = emptyLike(A.shape, A.dtype, A);
  auto failed = std::make_shared<int64_t>(-1);
  launch(A.device(), [=] {
    if (A.onCuda()) {  // a singular matrix gives NaN instead of ERR_ARGUMENT (no host sync)
      cudaCheck(cudaLinalg().inverse(cudaDtype(A.dtype), A.raw(), out.raw(), d.batch, d.rows), "inverse");
      return;
    }
    INNFLOW_DISPATCH(A.dtype, T, { *failed = inverseKernel<T>(A.data<T>(), out.data<T>(), d.batch, d.rows); });
  });
  if (*failed >= 0) fail("ERR_ARGUMENT", "inverse: matrix is singular" + whichMatrix(*failed, d.batch));
  return wrap(info.Env(), out);
}

// d(A⁻¹) = -A⁻¹·dA·A⁻¹, so gA = -A⁻ᵀ·g·A⁻ᵀ, written with the saved output Y = A⁻¹.
template <class T>
void inverseBackwardKernel(const T* g, const T* Y, T* gA, int64_t batch, int64_t n) {
  const int64_t nn = n * n;
  forEachMatrix(batch, 2 * nn * n, [&](int64_t b) {
    std::vector<double> y(static_cast<size_t>(nn)), gy(static_cast<size_t>(nn), 0.0);
    load(Y + b * nn, nn, y.data());
    const T* gb = g + b * nn;
    // gy = g·Yᵀ
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t k = 0; k < n; k++) s += double(gb[i * n + k]) * y[j * n + k];
        gy[i * n + j] = s;
      }
    // gA = -Yᵀ·gy, accumulated row by row of Y so the inner loop is contiguous
    std::vector<double> acc(static_cast<size_t>(nn), 0.0);
    for (int64_t k = 0; k < n; k++)
      for (int64_t i = 0; i < n; i++) {
        const double yki = y[k * n + i];
        if (yki == 0) continue;
        for (int64_t j = 0; j < n; j++) acc[i * n + j] -= yki * gy[k * n + j];
      }
    store(acc.data(), nn, gA + b * nn);
    return true;
  });
}

Napi::Value InverseBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  const Tensor& Y = tensorArg(info, 1, "Ainv");
  Dims d = squareDims(Y, "inverse backward", "Ainv");
  requireShape(g, Y.shape, "inverse backward", "g");
  requireSameDtype(g, Y, "inverse backward");
  requireSameDevice(g, Y, "inverse backward");
  Tensor gA = emptyLike(Y.shape, Y.dtype, Y);
  launch(Y.device(), [=] {
    if (Y.onCuda())
      cudaCheck(cudaLinalg().inverseBackward(cudaDtype(Y.dtype), g.raw(), Y.raw(), gA.raw(), d.batch, d.rows),
                "inverse backward");
    else
      INNFLOW_DISPATCH(Y.dtype, T, { inverseBackwardKernel<T>(g.data<T>(), Y.data<T>(), gA.data<T>(), d.batch, d.rows); });
  });
  return wrap(info.Env(), gA);
}

// ---------------------------------------------------------------------------------------------------------
// solveTriangular / solveTriangularBackward

// The shape B must have for A: left [*, n, k], right [*, k, n], with the batch of A.
struct TriDims {
  int64_t batch, n, k;
};

TriDims triangularDims(const Tensor& A, const Tensor& B, bool left, const char* op) {
  Dims da = squareDims(A, op, "A");
  Dims db = matrixDims(B, op, "B");
  const int64_t n = da.rows;
  const int64_t bn = left ? db.rows : db.cols;
  if (batchShape(A) != batchShape(B) || bn != n)
    fail("ERR_SHAPE", std::string(op) + ": B must have shape " +
                          shapeString(withMatrix(batchShape(A), left ? n : -1, left ? -1 : n)) +
                          " (-1: any size) for A of shape " + shapeString(A.shape) + ", got " + shapeString(B.shape));
  return {da.batch, n, left ? db.cols : db.rows};
}

template <class T>
int64_t solveTriangularKernel(const T* A, const T* B, T* X, int64_t batch, int64_t n, int64_t k, bool upper, bool left,
                              bool unit) {
  const int64_t nn = n * n, nk = n * k;
  return forEachMatrix(batch, nn * std::max<int64_t>(k, 1), [&](int64_t b) {
    std::vector<double> a(static_cast<size_t>(nn)), x(static_cast<size_t>(nk));
    load(A + b * nn, nn, a.data());
    if (!unit && zeroOnDiagonal(a.data(), n)) {
      fillNaN(X + b * nk, nk);
      return false;
    }
    load(B + b * nk, nk, x.data());
    if (left) triSolveLeft(a.data(), n, upper, false, unit, x.data(), k);
    else triSolveRight(a.data(), n, upper, false, unit, x.data(), k);
    store(x.data(), nk, X + b * nk);
    return true;
  });
}

Napi::Value SolveTriangular(const Napi::CallbackInfo& info) {
  const Tensor& A = tensorArg(info, 0, "A");
  const Tensor& B = tensorArg(info, 1, "B");
  bool upper = boolArg(info, 2, "upper"), left = boolArg(info, 3, "left"), unit = boolArg(info, 4, "unitriangular");
  requireSameDtype(A, B, "solveTriangular");
  TriDims d = triangularDims(A, B, left, "solveTriangular");
  requireSameDevice(A, B, "solveTriangular");
  Tensor X = emptyLike(B.shape, B.dtype, B);
  auto failed = std::make_shared<int64_t>(-1);
  launch(A.device(), [=] {
    if (A.onCuda()) {  // a zero on A's diagonal gives NaN instead of ERR_ARGUMENT (no host sync)
      cudaCheck(cudaLinalg().solveTriangular(cudaDtype(A.dtype), A.raw(), B.raw(), X.raw(), d.batch, d.n, d.k, upper,
                                             left, unit),
                "solveTriangular");
      return;
    }
    INNFLOW_DISPATCH(A.dtype, T, {
      *failed = solveTriangularKernel<T>(A.data<T>(), B.data<T>(), X.data<T>(), d.batch, d.n, d.k, upper, left, unit);
    });
  });
  if (*failed >= 0)
    fail("ERR_ARGUMENT", "solveTriangular: matrix is singular (zero on the diagonal of A)" + whichMatrix(*failed, d.batch));
  return wrap(info.Env(), X);
}

// left  (A·X = B):  gB = A⁻ᵀ·g,  gA = -gB·Xᵀ
// right (X·A = B):  gB = g·A⁻ᵀ,  gA = -Xᵀ·gB
// gA is kept on the entries the forward pass read (the triangle, without the diagonal when unitriangular):
// the others never influenced X.
// The forward pass refused a zero on the diagonal (!unit); it is checked again here, since a division by it would
// give inf silently: that matrix's gradients are NaN and its index is returned (the lowest, -1 when none).
template <class T>
int64_t solveTriangularBackwardKernel(const T* g, const T* A, const T* X, T* gA, T* gB, int64_t batch, int64_t n,
                                      int64_t k, bool upper, bool left, bool unit) {
  const int64_t nn = n * n, nk = n * k;
  return forEachMatrix(batch, 2 * nn * std::max<int64_t>(k, 1), [&](int64_t b) {
    std::vector<double> a(static_cast<size_t>(nn)), gb(static_cast<size_t>(nk));
    load(A + b * nn, nn, a.data());
    if (!unit && zeroOnDiagonal(a.data(), n)) {
      if (gA) fillNaN(gA + b * nn, nn);
      if (gB) fillNaN(gB + b * nk, nk);
      return false;
    }
    load(g + b * nk, nk, gb.data());
    if (left) triSolveLeft(a.data(), n, upper, /*trans=*/true, unit, gb.data(), k);
    else triSolveRight(a.data(), n, upper, /*trans=*/true, unit, gb.data(), k);
    if (gB) store(gb.data(), nk, gB + b * nk);
    if (gA) {
      const T* x = X + b * nk;
      T* out = gA + b * nn;
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
          const bool read = upper ? (unit ? j > i : j >= i) : (unit ? j < i : j <= i);
          double s = 0;
          if (read) {
            if (left)
              for (int64_t c = 0; c < k; c++) s -= gb[i * k + c] * double(x[j * k + c]);
            else
              for (int64_t r = 0; r < k; r++) s -= double(x[r * n + i]) * gb[r * n + j];
          }
          out[i * n + j] = T(s);
        }
    }
    return true;
  });
}

Napi::Value SolveTriangularBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  const Tensor& A = tensorArg(info, 1, "A");
  const Tensor& X = tensorArg(info, 2, "X");
  bool upper = boolArg(info, 3, "upper"), left = boolArg(info, 4, "left"), unit = boolArg(info, 5, "unitriangular");
  bool needA = boolArg(info, 6, "needA"), needB = boolArg(info, 7, "needB");
  requireSameDtype(A, X, "solveTriangular backward");
  requireSameDtype(g, X, "solveTriangular backward");
  TriDims d = triangularDims(A, X, left, "solveTriangular backward");
  requireShape(g, X.shape, "solveTriangular backward", "g");
  requireSameDevice(A, X, "solveTriangular backward");
  requireSameDevice(g, X, "solveTriangular backward");
  Tensor gA, gB;
  if (needA) gA = emptyLike(A.shape, A.dtype, A);
  if (needB) gB = emptyLike(X.shape, X.dtype, X);
  auto failed = std::make_shared<int64_t>(-1);
  launch(A.device(), [=] {
    if (A.onCuda()) {  // a zero on A's diagonal gives NaN instead of ERR_ARGUMENT (no host sync)
      cudaCheck(cudaLinalg().solveTriangularBackward(cudaDtype(A.dtype), g.raw(), A.raw(), X.raw(),
                                                     needA ? gA.raw() : nullptr, needB ? gB.raw() : nullptr, d.batch,
                                                     d.n, d.k, upper, left, unit),
                "solveTriangular backward");
      return;
    }
    INNFLOW_DISPATCH(A.dtype, T, {
      *failed = solveTriangularBackwardKernel<T>(g.data<T>(), A.data<T>(), X.data<T>(), needA ? gA.data<T>() : nullptr,
                                                 needB ? gB.data<T>() : nullptr, d.batch, d.n, d.k, upper, left, unit);
    });
  });
  if (*failed >= 0)
    fail("ERR_ARGUMENT", "solveTriangular backward: matrix is singular (zero on the diagonal of A)" +
                             whichMatrix(*failed, d.batch));
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, wrapOrNull(info.Env(), needA ? &gA : nullptr));
  out.Set(1u, wrapOrNull(info.Env(), needB ? &gB : nullptr));
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// qr / qrBackward

// Householder QR of a (m×n, m >= n) in place: R on and above the diagonal, the reflectors' vectors v (with an
// implied leading 1) below it, their scales in tau. H_j = I - tau_j·v_j·v_jᵀ, Q = H_0·H_1·…·H_{n-1}.
// Applies H = I - tau·v·vᵀ to columns c0.. of x (m×n), where v = (1, v[(j+1)·ldv + j], ...) occupies rows j..
// of column j of `v`. Row by row, so the inner loops run over contiguous columns of x.
void applyReflector(const double* v, int64_t m, int64_t ldv, int64_t j, double* x, int64_t n, int64_t c0, double tau,
                    std::vector<double>& w) {
  if (c0 >= n) return;
  w.assign(static_cast<size_t>(n), 0.0);
  for (int64_t c = c0; c < n; c++) w[c] = x[j * n + c];
  for (int64_t i = j + 1; i < m; i++) {
    const double vi = v[i * ldv + j];
    for (int64_t c = c0; c < n; c++) w[c] += vi * x[i * n + c];
  }
  for (int64_t c = c0; c < n; c++) {
    w[c] *= tau;
    x[j * n + c] -= w[c];
  }
  for (int64_t i = j + 1; i < m; i++) {
    const double vi = v[i * ldv + j];
    for (int64_t c = c0; c < n; c++) x[i * n + c] -= vi * w[c];
  }
}

void householderInPlace(double* a, int64_t m, int64_t n, double* tau) {
  std::vector<double> work;
  for (int64_t j = 0; j < n; j++) {
    // ‖x‖ with a scale, so large entries do not overflow the sum of squares
    double scale = 0;
    for (int64_t i = j; i < m; i++) scale = std::max(scale, std::fabs(a[i * n + j]));
    double tail = 0;
    if (scale > 0)
      for (int64_t i = j + 1; i < m; i++) {
        const double v = a[i * n + j] / scale;
        tail += v * v;
      }
    const double alpha = a[j * n + j];
    if (tail == 0) {  // already a multiple of e1: no reflection (LAPACK's larfg does the same)
      tau[j] = 0;
      continue;
    }
    const double ra = alpha / scale;
    const double norm = scale * std::sqrt(ra * ra + tail);
    const double beta = alpha >= 0 ? -norm : norm;
    tau[j] = (beta - alpha) / beta;
    const double inv = 1.0 / (alpha - beta);
    for (int64_t i = j + 1; i < m; i++) a[i * n + j] *= inv;
    a[j * n + j] = beta;
    applyReflector(a, m, n, j, a, n, j + 1, tau[j], work);
  }
}

template <class T>
void qrKernel(const T* A, T* Q, T* R, int64_t batch, int64_t m, int64_t n) {
  const int64_t mn = m * n, nn = n * n;
  forEachMatrix(batch, 2 * mn * n, [&](int64_t b) {
    std::vector<double> a(static_cast<size_t>(mn)), tau(static_cast<size_t>(n)), q(static_cast<size_t>(mn), 0.0);
    load(A + b * mn, mn, a.data());
    householderInPlace(a.data(), m, n, tau.data());
    // Q = H_0·…·H_{n-1}·I[:, :n], applied from the last reflector; H_j leaves columns < j of the partial
    // product untouched (they are still unit vectors above row j), so only columns j.. are updated.
    for (int64_t i = 0; i < n; i++) q[i * n + i] = 1;
    std::vector<double> work;
    for (int64_t j = n - 1; j >= 0; j--)
      if (tau[j] != 0) applyReflector(a.data(), m, n, j, q.data(), n, j, tau[j], work);
    store(q.data(), mn, Q + b * mn);
    T* r = R + b * nn;
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) r[i * n + j] = T(j >= i ? a[i * n + j] : 0.0);
    return true;
  });
}

Napi::Value Qr(const Napi::CallbackInfo& info) {
  const Tensor& A = tensorArg(info, 0, "A");
  Dims d = matrixDims(A, "qr", "A");
  if (d.rows < d.cols)
    fail("ERR_SHAPE", "qr: A must have at least as many rows as columns (m >= n), got shape " + shapeString(A.shape));
  Shape bs = batchShape(A);
  Tensor Q = emptyLike(A.shape, A.dtype, A), R = emptyLike(withMatrix(bs, d.cols, d.cols), A.dtype, A);
  launch(A.device(), [=] {
    if (A.onCuda())
      cudaCheck(cudaLinalg().qr(cudaDtype(A.dtype), A.raw(), Q.raw(), R.raw(), d.batch, d.rows, d.cols), "qr");
    else
      INNFLOW_DISPATCH(A.dtype, T, { qrKernel<T>(A.data<T>(), Q.data<T>(), R.data<T>(), d.batch, d.rows, d.cols); });
  });
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, wrap(info.Env(), Q));
  out.Set(1u, wrap(info.Env(), R));
  return out;
}

// From dA = dQ·R + Q·dR with QᵀdQ antisymmetric and dR·R⁻¹ upper triangular, X = Qᵀ·dA·R⁻¹ splits into
// those two parts through its strictly lower triangle. Pairing with gQ and gR gives
// gA = (gQ + Q·K)·R⁻ᵀ, K the symmetric matrix whose upper triangle is that of N = gR·Rᵀ - Qᵀ·gQ.
// Only the upper triangle of gR takes part (R's lower triangle is a constant zero).
template <class T>
int64_t qrBackwardKernel(const T* gQ, const T* gR, const T* Q, const T* R, T* gA, int64_t batch, int64_t m, int64_t n) {
  const int64_t mn = m * n, nn = n * n;
  return forEachMatrix(batch, 3 * mn * n, [&](int64_t b) {
    std::vector<double> q(static_cast<size_t>(mn)), r(static_cast<size_t>(nn)), nmat(static_cast<size_t>(nn), 0.0), out(static_cast<size_t>(mn), 0.0);
    load(Q + b * mn, mn, q.data());
    load(R + b * nn, nn, r.data());
    if (zeroOnDiagonal(r.data(), n)) {
      fillNaN(gA + b * mn, mn);
      return false;
    }
    const T* gq = gQ ? gQ + b * mn : nullptr;
    const T* gr = gR ? gR + b * nn : nullptr;
    if (gr)
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) {
          double s = 0;
          for (int64_t k = j; k < n; k++) s += double(gr[i * n + k]) * r[j * n + k];
          nmat[i * n + j] = s;
        }
    if (gq)
      for (int64_t k = 0; k < m; k++)  // -(Qᵀ·gQ), a row of Q and of gQ at a time
        for (int64_t i = 0; i < n; i++) {
          const double qki = q[k * n + i];
          for (int64_t j = i; j < n; j++) nmat[i * n + j] -= qki * double(gq[k * n + j]);
        }
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < i; j++) nmat[i * n + j] = nmat[j * n + i];
    // out = gQ + Q·K
    if (gq) load(gq, mn, out.data());
    for (int64_t i = 0; i < m; i++)
      for (int64_t k = 0; k < n; k++) {
        const double qik = q[i * n + k];
        if (qik == 0) continue;
        for (int64_t j = 0; j < n; j++) out[i * n + j] += qik * nmat[k * n + j];
      }
    triSolveRight(r.data(), n, /*upper=*/true, /*trans=*/true, false, out.data(), m);  // ·R⁻ᵀ
    store(out.data(), mn, gA + b * mn);
    return true;
  });
}

Napi::Value QrBackward(const Napi::CallbackInfo& info) {
  const Tensor* gQArg = optionalTensorArg(info, 0, "gQ");
  const Tensor* gRArg = optionalTensorArg(info, 1, "gR");
  const Tensor& Q = tensorArg(info, 2, "Q");
  const Tensor& R = tensorArg(info, 3, "R");
  Dims dq = matrixDims(Q, "qr backward", "Q");
  Dims dr = squareDims(R, "qr backward", "R");
  if (dr.rows != dq.cols || batchShape(Q) != batchShape(R) || dq.rows < dq.cols)
    fail("ERR_SHAPE", "qr backward: Q " + shapeString(Q.shape) + " and R " + shapeString(R.shape) + " do not match");
  requireSameDtype(Q, R, "qr backward");
  if (gQArg) {
    requireShape(*gQArg, Q.shape, "qr backward", "gQ");
    requireSameDtype(*gQArg, Q, "qr backward");
  }
  if (gRArg) {
    requireShape(*gRArg, R.shape, "qr backward", "gR");
    requireSameDtype(*gRArg, R, "qr backward");
  }
  requireSameDevice(Q, R, "qr backward");
  if (gQArg) requireSameDevice(*gQArg, Q, "qr backward");
  if (gRArg) requireSameDevice(*gRArg, Q, "qr backward");
  const bool hasGQ = gQArg != nullptr, hasGR = gRArg != nullptr;
  const Tensor gQ = hasGQ ? *gQArg : Tensor(), gR = hasGR ? *gRArg : Tensor();
  Tensor gA = emptyLike(Q.shape, Q.dtype, Q);
  auto failed = std::make_shared<int64_t>(-1);
  launch(Q.device(), [=] {
    if (Q.onCuda()) {  // a singular R gives NaN instead of ERR_ARGUMENT (no host sync)
      cudaCheck(cudaLinalg().qrBackward(cudaDtype(Q.dtype), hasGQ ? gQ.raw() : nullptr, hasGR ? gR.raw() : nullptr,
                                        Q.raw(), R.raw(), gA.raw(), dq.batch, dq.rows, dq.cols),
                "qr backward");
      return;
    }
    INNFLOW_DISPATCH(Q.dtype, T, {
      *failed = qrBackwardKernel<T>(hasGQ ? gQ.data<T>() : nullptr, hasGR ? gR.data<T>() : nullptr, Q.data<T>(),
                                    R.data<T>(), gA.data<T>(), dq.batch, dq.rows, dq.cols);
    });
  });
  if (*failed >= 0)
    fail("ERR_ARGUMENT", "qr backward: R is singular (A is rank deficient)" + whichMatrix(*failed, dq.batch) +
                             "; the QR factors are not differentiable there");
  return wrap(info.Env(), gA);
}

}  // namespace

void registerLinalg(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "lu", Lu);
  defineFunction(env, exports, "luBackward", LuBackward);
  defineFunction(env, exports, "slogdet", Slogdet);
  defineFunction(env, exports, "slogdetBackward", SlogdetBackward);
  defineFunction(env, exports, "inverse", Inverse);
  defineFunction(env, exports, "inverseBackward", InverseBackward);
  defineFunction(env, exports, "solveTriangular", SolveTriangular);
  defineFunction(env, exports, "solveTriangularBackward", SolveTriangularBackward);
  defineFunction(env, exports, "qr", Qr);
  defineFunction(env, exports, "qrBackward", QrBackward);
}

}  // namespace innflow

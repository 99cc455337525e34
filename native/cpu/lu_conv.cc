// The weight of Glow's invertible 1×1 convolution from its LU factors (Kingma & Dhariwal 2018, section 3.2),
// and its inverse by substitution, forward and backward side by side.
//
// luConvWeight(P: [n, n], L: [n, n], U: [n, n], logS: [n], sign: [n], inverse: bool) -> [n, n]
//     inverse = false: W   = P·L̃·Ũ
//     inverse = true:  W⁻¹ = Ũ⁻¹·L̃⁻¹·Pᵀ   (forward substitution through L̃, back substitution through Ũ)
//     with L̃ = I + strictly-lower(L), Ũ = strictly-upper(U) + diag(sign·exp(logS)).
//     P must be a permutation matrix and sign must hold ±1; the other triangles of L and U are never read,
//     so L and U may be stored as full matrices (a module keeps zeros there).
// luConvWeightBackward(g: [n, n], P, L, U, logS, sign, out: [n, n], inverse: bool) -> [gL, gU, gLogS]
//     g is the gradient of the forward's result, out that result (W, or W⁻¹ when inverse).
//     gL: [n, n] (zero off the strict lower triangle), gU: [n, n] (zero off the strict upper triangle), gLogS: [n].
//
// Why a kernel of its own: the module needs W (or W⁻¹) once per step, and assembling it from ops (masks,
// diag, exp, two matmuls, two triangular solves) costs a dozen small ops and their tape entries; here it is
// one O(n³) loop nest in double with the permutation applied as an index map, and the inverse never goes
// through a general matrix inverse (the factors are already triangular).
//
// Backward (M = L̃·Ũ, W = P·M):  gM = Pᵀ·gW,  gL̃ = gM·Ũᵀ,  gŨ = L̃ᵀ·gM;
//     gL = strictly-lower(gL̃), gU = strictly-upper(gŨ), gLogS_i = gŨ_ii·sign_i·exp(logS_i).
// For the inverse V = W⁻¹: dV = −V·dW·V, so gW = −Vᵀ·gV·Vᵀ, then as above.
//
// CUDA tensors (all inputs on one device): the same computation on the GPU (cuda/lu_conv.cu, in double, same
// order of operations). The checks on values (P a permutation matrix, sign ±1, the inverse's diagonal finite
// and non-zero) cannot throw there without a host synchronisation: a failing call returns all-NaN outputs.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "../../cuda/lu_conv.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"

namespace innflow {
namespace {

struct Factors {
  int64_t n;
  std::vector<int64_t> perm;  // P[i][perm[i]] = 1, so (P·M)[i, :] = M[perm[i], :]
  std::vector<double> L, U;   // L̃ and Ũ, full n×n, in double
};

void requireOneDevice(const Tensor& P, std::initializer_list<const Tensor*> others, const char* op) {
  for (const Tensor* t : others) requireSameDevice(P, *t, op);
}

void requireShape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
  if (t.shape != expected)
    fail("ERR_SHAPE", std::string(op) + ": " + name + " must have shape " + shapeString(expected) + ", got " + shapeString(t.shape));
}

// The checks on values (P a permutation matrix, sign ±1; with `inverse`, Ũ's diagonal finite and non-zero), made
// at the call: "" when they pass, the message of the first that fails otherwise.
template <class T>
std::string factorError(const Tensor& P, const Tensor& logS, const Tensor& sign, int64_t n, bool inverse, const char* op) {
  std::vector<char> used(static_cast<size_t>(n), 0);
  const T* p = P.data<T>();
  for (int64_t i = 0; i < n; i++) {
    bool found = false;
    for (int64_t j = 0; j < n; j++) {
      T v = p[i * n + j];
      if (v == T(1)) {
        if (found || used[j])
          return std::string(op) + ": P must be a permutation matrix (row " + std::to_string(i) + " or column " +
                 std::to_string(j) + " has more than one 1)";
        found = true;
        used[j] = 1;
      } else if (v != T(0)) {
        return std::string(op) + ": P must be a permutation matrix (entries 0 or 1), found " + std::to_string(double(v)) +
               " at (" + std::to_string(i) + ", " + std::to_string(j) + ")";
      }
    }
    if (!found) return std::string(op) + ": P must be a permutation matrix (row " + std::to_string(i) + " has no 1)";
  }
  const T* sg = sign.data<T>();
  for (int64_t i = 0; i < n; i++)
    if (sg[i] != T(1) && sg[i] != T(-1))
      return std::string(op) + ": sign must hold only 1 and -1, found " + std::to_string(double(sg[i])) + " at " + std::to_string(i);
  if (inverse) {
    const T* ls = logS.data<T>();
    for (int64_t i = 0; i < n; i++) {
      const double d = double(sg[i]) * std::exp(double(ls[i]));  // Ũ[i][i], as readFactors makes it
      if (d == 0 || !std::isfinite(d))
        return std::string(op) + ": the weight is singular (exp(logS) underflowed or overflowed)";
    }
  }
  return "";
}

// L̃, Ũ and the permutation in double. False when P is not a permutation matrix or sign not ±1: the values were
// checked at the call (factorError), so this only happens when a compiled step replays on other values, and the
// kernel then writes NaN, as the GPU does.
template <class T>
bool readFactors(const Tensor& P, const Tensor& L, const Tensor& U, const Tensor& logS, const Tensor& sign, int64_t n,
                 Factors* out) {
  Factors& f = *out;
  f.n = n;
  f.perm.assign(static_cast<size_t>(n), -1);
  std::vector<char> used(static_cast<size_t>(n), 0);
  const T* p = P.data<T>();
  for (int64_t i = 0; i < n; i++) {
    for (int64_t j = 0; j < n; j++) {
      T v = p[i * n + j];
      if (v == T(1)) {
        if (f.perm[i] >= 0 || used[j]) return false;
        f.perm[i] = j;
        used[j] = 1;
      } else if (v != T(0)) {
        return false;
      }
    }
    if (f.perm[i] < 0) return false;
  }
  const T* l = L.data<T>();
  const T* u = U.data<T>();
  const T* ls = logS.data<T>();
  const T* sg = sign.data<T>();
  f.L.assign(static_cast<size_t>(n * n), 0.0);
  f.U.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; i++) {
    if (sg[i] != T(1) && sg[i] != T(-1)) return false;
    for (int64_t j = 0; j < i; j++) f.L[i * n + j] = double(l[i * n + j]);
    f.L[i * n + i] = 1.0;
    f.U[i * n + i] = double(sg[i]) * std::exp(double(ls[i]));
    for (int64_t j = i + 1; j < n; j++) f.U[i * n + j] = double(u[i * n + j]);
  }
  return true;
}

template <class T>
void fillNaN(const Tensor& t) {
  std::fill_n(t.data<T>(), t.numel(), std::numeric_limits<T>::quiet_NaN());
}

// W = P·L̃·Ũ: row i of W is row perm[i] of L̃·Ũ; both factors triangular, so each dot product is short.
void assemble(const Factors& f, double* W) {
  const int64_t n = f.n;
  for (int64_t i = 0; i < n; i++) {
    const int64_t r = f.perm[i];
    double* w = W + i * n;
    for (int64_t j = 0; j < n; j++) w[j] = 0;
    for (int64_t k = 0; k <= r; k++) {  // L̃[r][k] is zero for k > r
      const double lrk = f.L[r * n + k];
      if (lrk == 0) continue;
      for (int64_t j = k; j < n; j++) w[j] += lrk * f.U[k * n + j];  // Ũ[k][j] is zero for j < k
    }
  }
}

// V = Ũ⁻¹·L̃⁻¹·Pᵀ, one column at a time: column c of Pᵀ is e_{perm[c]}; solve L̃·y = e (unit diagonal, so y is
// zero above row perm[c]), then Ũ·v = y. A zero on Ũ's diagonal cannot happen (exp > 0, sign ±1) unless exp
// underflows, which is reported.
bool invert(const Factors& f, double* V) {
  const int64_t n = f.n;
  std::vector<double> y(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++)
    if (f.U[i * n + i] == 0 || !std::isfinite(f.U[i * n + i])) return false;
  for (int64_t c = 0; c < n; c++) {
    const int64_t r = f.perm[c];
    for (int64_t i = 0; i < n; i++) {
      double s = i == r ? 1.0 : 0.0;
      for (int64_t k = r; k < i; k++) s -= f.L[i * n + k] * y[k];
      y[i] = i < r ? 0.0 : s;
    }
    for (int64_t i = n - 1; i >= 0; i--) {
      double s = y[i];
      for (int64_t k = i + 1; k < n; k++) s -= f.U[i * n + k] * v[k];
      v[i] = s / f.U[i * n + i];
    }
    for (int64_t i = 0; i < n; i++) V[i * n + c] = v[i];
  }
  return true;
}

int64_t checkArgs(const Tensor& P, const Tensor& L, const Tensor& U, const Tensor& logS, const Tensor& sign, const char* op) {
  if (P.dim() != 2 || P.shape[0] != P.shape[1])
    fail("ERR_SHAPE", std::string(op) + ": P must be a square matrix (n, n), got " + shapeString(P.shape));
  const int64_t n = P.shape[0];
  requireShape(L, {n, n}, op, "L");
  requireShape(U, {n, n}, op, "U");
  requireShape(logS, {n}, op, "logS");
  requireShape(sign, {n}, op, "sign");
  for (const Tensor* t : {&L, &U, &logS, &sign}) requireSameDtype(P, *t, op);
  return n;
}

template <class T>
void store(const std::vector<double>& src, const Tensor& dst) {
  T* d = dst.data<T>();
  for (size_t i = 0; i < src.size(); i++) d[i] = T(src[i]);
}

Napi::Value LuConvWeight(const Napi::CallbackInfo& info) {
  const char* op = "luConvWeight";
  const Tensor& P = tensorArg(info, 0, "P");
  const Tensor& L = tensorArg(info, 1, "L");
  const Tensor& U = tensorArg(info, 2, "U");
  const Tensor& logS = tensorArg(info, 3, "logS");
  const Tensor& sign = tensorArg(info, 4, "sign");
  const bool inverse = boolArg(info, 5, "inverse");
  const int64_t n = checkArgs(P, L, U, logS, sign, op);
  requireOneDevice(P, {&L, &U, &logS, &sign}, op);
  Tensor out = emptyLike({n, n}, P.dtype, P);
  if (!P.onCuda()) {
    // (on the GPU these checks would need a host synchronisation: a failing call returns NaN there)
    std::string error;
    INNFLOW_DISPATCH(P.dtype, T, { error = factorError<T>(P, logS, sign, n, inverse, op); });
    if (!error.empty()) fail("ERR_ARGUMENT", error);
  }
  launch(P.device(), [P, L, U, logS, sign, out, n, inverse] {
    if (P.onCuda()) {
      cudaCheck(cudaTable<InnflowCudaLuConv>("innflow_cuda_lu_conv")
                    .weight(cudaDtype(P.dtype), P.raw(), L.raw(), U.raw(), logS.raw(), sign.raw(), out.raw(), n, inverse),
                "luConvWeight");
      return;
    }
    INNFLOW_DISPATCH(P.dtype, T, {
      Factors f;
      std::vector<double> W(static_cast<size_t>(n * n));
      bool ok = readFactors<T>(P, L, U, logS, sign, n, &f);
      if (ok) {
        if (inverse) ok = invert(f, W.data());
        else assemble(f, W.data());
      }
      if (ok) store<T>(W, out);
      else fillNaN<T>(out);
    });
  });
  return wrap(info.Env(), out);
}

Napi::Value LuConvWeightBackward(const Napi::CallbackInfo& info) {
  const char* op = "luConvWeightBackward";
  const Tensor& g = tensorArg(info, 0, "g");
  const Tensor& P = tensorArg(info, 1, "P");
  const Tensor& L = tensorArg(info, 2, "L");
  const Tensor& U = tensorArg(info, 3, "U");
  const Tensor& logS = tensorArg(info, 4, "logS");
  const Tensor& sign = tensorArg(info, 5, "sign");
  const Tensor& out = tensorArg(info, 6, "out");
  const bool inverse = boolArg(info, 7, "inverse");
  const int64_t n = checkArgs(P, L, U, logS, sign, op);
  requireShape(g, {n, n}, op, "g");
  requireShape(out, {n, n}, op, "out");
  requireSameDtype(P, g, op);
  requireSameDtype(P, out, op);
  requireOneDevice(P, {&L, &U, &logS, &sign, &g, &out}, op);
  Tensor gL = emptyLike({n, n}, P.dtype, P), gU = emptyLike({n, n}, P.dtype, P), gLogS = emptyLike({n}, P.dtype, P);
  if (!P.onCuda()) {
    std::string error;
    INNFLOW_DISPATCH(P.dtype, T, { error = factorError<T>(P, logS, sign, n, false, op); });
    if (!error.empty()) fail("ERR_ARGUMENT", error);
  }
  launch(P.device(), [g, P, L, U, logS, sign, out, gL, gU, gLogS, n, inverse] {
    if (P.onCuda()) {
      cudaCheck(cudaTable<InnflowCudaLuConv>("innflow_cuda_lu_conv")
                    .weightBackward(cudaDtype(P.dtype), g.raw(), P.raw(), L.raw(), U.raw(), logS.raw(), sign.raw(),
                                    out.raw(), gL.raw(), gU.raw(), gLogS.raw(), n, inverse),
                "luConvWeightBackward");
      return;
    }
    INNFLOW_DISPATCH(P.dtype, T, {
      Factors f;
      if (!readFactors<T>(P, L, U, logS, sign, n, &f)) {
        fillNaN<T>(gL);
        fillNaN<T>(gU);
        fillNaN<T>(gLogS);
        return;
      }
      const T* gp = g.data<T>();
      const size_t nn = static_cast<size_t>(n * n);
      std::vector<double> gW(nn);
      if (inverse) {
        // gW = −Vᵀ·gV·Vᵀ with V the saved inverse: first t = gV·Vᵀ, then gW = −Vᵀ·t
        const T* vp = out.data<T>();
        std::vector<double> V(nn), t(nn, 0.0);
        for (size_t i = 0; i < nn; i++) V[i] = double(vp[i]);
        for (int64_t i = 0; i < n; i++)
          for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += double(gp[i * n + k]) * V[j * n + k];
            t[i * n + j] = s;
          }
        for (size_t i = 0; i < nn; i++) gW[i] = 0;
        for (int64_t k = 0; k < n; k++)
          for (int64_t i = 0; i < n; i++) {
            const double vki = V[k * n + i];
            if (vki == 0) continue;
            for (int64_t j = 0; j < n; j++) gW[i * n + j] -= vki * t[k * n + j];
          }
      } else {
        for (size_t i = 0; i < nn; i++) gW[i] = double(gp[i]);
      }
      // gM = Pᵀ·gW: row perm[i] of gM is row i of gW
      std::vector<double> gM(nn);
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) gM[f.perm[i] * n + j] = gW[i * n + j];
      // gL̃ = gM·Ũᵀ, kept on the strict lower triangle: gL[i][j] = Σ_{k>=j} gM[i][k]·Ũ[j][k]
      std::vector<double> outL(nn, 0.0), outU(nn, 0.0), outS(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++) {
          double s = 0;
          for (int64_t k = j; k < n; k++) s += gM[i * n + k] * f.U[j * n + k];
          outL[i * n + j] = s;
        }
      // gŨ = L̃ᵀ·gM, kept on and above the diagonal: gŨ[i][j] = Σ_{k>=i} L̃[k][i]·gM[k][j]
      for (int64_t i = 0; i < n; i++)
        for (int64_t k = i; k < n; k++) {
          const double lki = f.L[k * n + i];
          if (lki == 0) continue;
          for (int64_t j = i; j < n; j++) outU[i * n + j] += lki * gM[k * n + j];
        }
      for (int64_t i = 0; i < n; i++) {
        outS[i] = outU[i * n + i] * f.U[i * n + i];  // d(sign·e^{logS})/dlogS = sign·e^{logS}
        outU[i * n + i] = 0;
      }
      store<T>(outL, gL);
      store<T>(outU, gU);
      store<T>(outS, gLogS);
    });
  });
  Napi::Env env = info.Env();
  Napi::Array result = Napi::Array::New(env, 3);
  result.Set(0u, wrap(env, gL));
  result.Set(1u, wrap(env, gU));
  result.Set(2u, wrap(env, gLogS));
  return result;
}

}  // namespace

void registerLuConv(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "luConvWeight", LuConvWeight);
  defineFunction(env, exports, "luConvWeightBackward", LuConvWeightBackward);
}

}  // namespace innflow

// The weight of Glow's LU-parameterised invertible 1×1 convolution and its backward on the GPU (the CUDA twin
// of native/cpu/lu_conv.cc): W = P·L̃·Ũ, or W⁻¹ = Ũ⁻¹·L̃⁻¹·Pᵀ by substitution, with L̃ = I + strictly-lower(L)
// and Ũ = strictly-upper(U) + diag(sign·exp(logS)).
//
// Every step is the CPU's loop carried out in double with the same order of operations, spread over threads
// where the CPU's iterations are independent: one thread per element of W and of the gradients (each summing
// in the CPU's order), one thread per column of W⁻¹ (each doing the CPU's two substitutions for its column).
// Products and sums use __dmul_rn/__dadd_rn/__dsub_rn so that nvcc does not fuse them into FMAs (the CPU build
// has none); only exp may differ from the CPU's in the last place.
//
// Validation the CPU does on values (P a permutation matrix, sign ±1, for the inverse a finite non-zero
// diagonal of Ũ) cannot throw here without a host synchronisation: a device flag records a failure and every
// output of the call is then NaN (see lu_conv.h).
#include <cmath>

#include "common.cuh"
#include "lu_conv.h"

using namespace innflow_cuda;

namespace {

__device__ __forceinline__ double addMul(double acc, double a, double b) { return __dadd_rn(acc, __dmul_rn(a, b)); }
__device__ __forceinline__ double subMul(double acc, double a, double b) { return __dsub_rn(acc, __dmul_rn(a, b)); }
__device__ __forceinline__ double nanValue() { return __longlong_as_double(0x7ff8000000000000LL); }

// The CPU's readFactors, one row per thread: perm[i] = the column of row i's single 1 (P[i][perm[i]] = 1),
// Lt = L̃ and Ut = Ũ in double. Sets *bad when row i of P is not a permutation row (entries other than 0 and
// 1, no 1, or two), when sign[i] is not ±1, and (checkDiagonal, for the inverse) when Ũ[i][i] is zero or not
// finite. *bad must be zero beforehand; it is only ever set to 1.
// P, L, U: [n, n], logS, sign: [n] -> perm: [n], Lt, Ut: [n, n] doubles, bad: [1]
template <class T>
__global__ void factorsKernel(const T* P, const T* L, const T* U, const T* logS, const T* sign, int64_t n, bool checkDiagonal,
                              int64_t* perm, double* Lt, double* Ut, int* bad) {
  INNFLOW_GRID_STRIDE(i, n) {
    int64_t col = -1;
    bool ok = true;
    for (int64_t j = 0; j < n; j++) {
      const T v = P[i * n + j];
      if (v == T(1)) {
        if (col >= 0) ok = false;
        col = j;
      } else if (v != T(0)) {
        ok = false;
      }
    }
    if (col < 0) ok = false;
    perm[i] = ok ? col : -1;
    if (sign[i] != T(1) && sign[i] != T(-1)) ok = false;
    for (int64_t j = 0; j < n; j++) {
      Lt[i * n + j] = j < i ? double(L[i * n + j]) : (j == i ? 1.0 : 0.0);
      Ut[i * n + j] = j > i ? double(U[i * n + j]) : 0.0;
    }
    const double d = double(sign[i]) * exp(double(logS[i]));
    Ut[i * n + i] = d;
    if (checkDiagonal && (d == 0 || !isfinite(d))) ok = false;
    if (!ok) *bad = 1;
  }
}

// The column half of the CPU's permutation check: two rows whose 1 is in the same column set *bad.
// perm: [n] -> bad: [1]
__global__ void duplicateColumnKernel(const int64_t* perm, int64_t n, int* bad) {
  INNFLOW_GRID_STRIDE(i, n) {
    for (int64_t k = 0; k < i; k++)
      if (perm[i] >= 0 && perm[k] == perm[i]) *bad = 1;
  }
}

// The CPU's assemble: W[i][j] = Σ_{k <= min(r, j)} L̃[r][k]·Ũ[k][j] with r = perm[i], zero L̃[r][k] skipped, summed
// in k order. perm: [n], Lt, Ut: [n, n] doubles, bad: [1] -> W: [n, n]
template <class T>
__global__ void assembleKernel(const int64_t* perm, const double* Lt, const double* Ut, const int* bad, T* W, int64_t n) {
  INNFLOW_GRID_STRIDE(e, n * n) {
    if (*bad) {
      W[e] = T(nanValue());
      continue;
    }
    const int64_t i = e / n, j = e % n, r = perm[i];
    double s = 0;
    for (int64_t k = 0; k <= r; k++) {
      const double lrk = Lt[r * n + k];
      if (lrk == 0) continue;
      if (k <= j) s = addMul(s, lrk, Ut[k * n + j]);
    }
    W[e] = T(s);
  }
}

// The CPU's invert, one column c of V = Ũ⁻¹·L̃⁻¹·Pᵀ per thread: L̃·y = e_{perm[c]} (forward substitution from row
// perm[c]), then Ũ·v = y (back substitution). perm: [n], Lt, Ut: [n, n] doubles, bad: [1];
// yWork, vWork: [n, n] doubles (row c for column c) -> V: [n, n]
template <class T>
__global__ void invertKernel(const int64_t* perm, const double* Lt, const double* Ut, const int* bad, double* yWork,
                             double* vWork, T* V, int64_t n) {
  INNFLOW_GRID_STRIDE(c, n) {
    if (*bad) {
      for (int64_t i = 0; i < n; i++) V[i * n + c] = T(nanValue());
      continue;
    }
    double *y = yWork + c * n, *v = vWork + c * n;
    const int64_t r = perm[c];
    for (int64_t i = 0; i < n; i++) {
      double s = i == r ? 1.0 : 0.0;
      for (int64_t k = r; k < i; k++) s = subMul(s, Lt[i * n + k], y[k]);
      y[i] = i < r ? 0.0 : s;
    }
    for (int64_t i = n - 1; i >= 0; i--) {
      double s = y[i];
      for (int64_t k = i + 1; k < n; k++) s = subMul(s, Ut[i * n + k], v[k]);
      v[i] = s / Ut[i * n + i];
    }
    for (int64_t i = 0; i < n; i++) V[i * n + c] = T(v[i]);
  }
}

// Inverse backward, first product: t = gV·Vᵀ, t[i][j] = Σ_k gV[i][k]·V[j][k].  g, V: [n, n] -> t: [n, n] doubles
template <class T>
__global__ void gradTKernel(const T* g, const T* V, double* t, int64_t n) {
  INNFLOW_GRID_STRIDE(e, n * n) {
    const int64_t i = e / n, j = e % n;
    double s = 0;
    for (int64_t k = 0; k < n; k++) s = addMul(s, double(g[i * n + k]), double(V[j * n + k]));
    t[e] = s;
  }
}

// Inverse backward, second product: gW = −Vᵀ·t, gW[i][j] = 0 − Σ_k V[k][i]·t[k][j] (zero V[k][i] skipped).
// V: [n, n], t: [n, n] doubles -> gW: [n, n] doubles
template <class T>
__global__ void gradWKernel(const T* V, const double* t, double* gW, int64_t n) {
  INNFLOW_GRID_STRIDE(e, n * n) {
    const int64_t i = e / n, j = e % n;
    double s = 0;
    for (int64_t k = 0; k < n; k++) {
      const double vki = double(V[k * n + i]);
      if (vki == 0) continue;
      s = subMul(s, vki, t[k * n + j]);
    }
    gW[e] = s;
  }
}

// invPerm[perm[i]] = i (invPerm filled with -1 beforehand; rows of an invalid P are skipped, and the outputs
// are NaN then anyway). perm: [n] -> invPerm: [n]
__global__ void invertPermKernel(const int64_t* perm, int64_t* invPerm, int64_t n) {
  INNFLOW_GRID_STRIDE(i, n) {
    if (perm[i] >= 0) invPerm[perm[i]] = i;
  }
}

__global__ void fillIndexKernel(int64_t* y, int64_t n, int64_t value) {
  INNFLOW_GRID_STRIDE(i, n) y[i] = value;
}

// gM = Pᵀ·gW: row perm[i] of gM is row i of gW, i.e. row r of gM is row invPerm[r] of gW (gW = g when the
// forward was W itself, gWd otherwise). g: [n, n] or gWd: [n, n] doubles, invPerm: [n] -> gM: [n, n] doubles
template <class T>
__global__ void gatherKernel(const T* g, const double* gWd, const int64_t* invPerm, double* gM, int64_t n) {
  INNFLOW_GRID_STRIDE(e, n * n) {
    const int64_t r = e / n, j = e % n, i = invPerm[r];
    gM[e] = i < 0 ? nanValue() : (gWd ? gWd[i * n + j] : double(g[i * n + j]));
  }
}

// gL[i][j] (j < i) = Σ_{k>=j} gM[i][k]·Ũ[j][k]; gŨ[i][j] (j >= i) = Σ_{k>=i} L̃[k][i]·gM[k][j] (zero L̃[k][i]
// skipped); gU = gŨ off the diagonal, gLogS[i] = gŨ[i][i]·Ũ[i][i]; zeros elsewhere, all NaN when *bad.
// gM, Lt, Ut: [n, n] doubles, bad: [1] -> gL, gU: [n, n], gLogS: [n]
template <class T>
__global__ void factorGradKernel(const double* gM, const double* Lt, const double* Ut, const int* bad, T* gL, T* gU,
                                 T* gLogS, int64_t n) {
  INNFLOW_GRID_STRIDE(e, n * n) {
    const int64_t i = e / n, j = e % n;
    if (*bad) {
      gL[e] = T(nanValue());
      gU[e] = T(nanValue());
      if (i == j) gLogS[i] = T(nanValue());
      continue;
    }
    double sl = 0, su = 0;
    if (j < i) {
      for (int64_t k = j; k < n; k++) sl = addMul(sl, gM[i * n + k], Ut[j * n + k]);
    } else {
      for (int64_t k = i; k < n; k++) {
        const double lki = Lt[k * n + i];
        if (lki == 0) continue;
        su = addMul(su, lki, gM[k * n + j]);
      }
    }
    gL[e] = T(sl);
    if (i == j) {
      gLogS[i] = T(su * Ut[i * n + i]);  // d(sign·e^{logS})/dlogS = sign·e^{logS}
      gU[e] = T(0);
    } else {
      gU[e] = T(su);
    }
  }
}

// The factors of a call: perm, L̃, Ũ and the failure flag, in scratch memory.
struct FactorScratch {
  Scratch perm, lt, ut, bad;
};

template <class T>
int readFactors(FactorScratch& f, const void* P, const void* L, const void* U, const void* logS, const void* sign, int64_t n,
                bool checkDiagonal) {
  INNFLOW_STATUS_TRY(f.perm.alloc(sizeof(int64_t) * n));
  INNFLOW_STATUS_TRY(f.lt.alloc(sizeof(double) * n * n));
  INNFLOW_STATUS_TRY(f.ut.alloc(sizeof(double) * n * n));
  INNFLOW_STATUS_TRY(f.bad.alloc(sizeof(int)));
  INNFLOW_CUDA_TRY(cudaMemsetAsync(f.bad.ptr, 0, sizeof(int), stream()));
  factorsKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<const T*>(P), static_cast<const T*>(L),
                                                         static_cast<const T*>(U), static_cast<const T*>(logS),
                                                         static_cast<const T*>(sign), n, checkDiagonal,
                                                         f.perm.as<int64_t>(), f.lt.as<double>(), f.ut.as<double>(),
                                                         f.bad.as<int>());
  INNFLOW_LAUNCHED("luConvWeight (factors)");
  duplicateColumnKernel<<<gridFor(n), kBlock, 0, stream()>>>(f.perm.as<int64_t>(), n, f.bad.as<int>());
  INNFLOW_LAUNCHED("luConvWeight (permutation check)");
  return INNFLOW_CUDA_OK;
}

int weightImpl(int dtype, const void* P, const void* L, const void* U, const void* logS, const void* sign, void* out,
               int64_t n, int inverse) {
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    FactorScratch f;
    INNFLOW_STATUS_TRY(readFactors<T>(f, P, L, U, logS, sign, n, inverse != 0));
    if (inverse) {
      Scratch y, v;
      INNFLOW_STATUS_TRY(y.alloc(sizeof(double) * n * n));
      INNFLOW_STATUS_TRY(v.alloc(sizeof(double) * n * n));
      invertKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(f.perm.as<int64_t>(), f.lt.as<double>(), f.ut.as<double>(),
                                                            f.bad.as<int>(), y.as<double>(), v.as<double>(),
                                                            static_cast<T*>(out), n);
      INNFLOW_LAUNCHED("luConvWeight (inverse)");
    } else {
      assembleKernel<T><<<gridFor(n * n), kBlock, 0, stream()>>>(f.perm.as<int64_t>(), f.lt.as<double>(),
                                                                  f.ut.as<double>(), f.bad.as<int>(),
                                                                  static_cast<T*>(out), n);
      INNFLOW_LAUNCHED("luConvWeight");
    }
    return INNFLOW_CUDA_OK;
  });
}

int weightBackwardImpl(int dtype, const void* g, const void* P, const void* L, const void* U, const void* logS,
                       const void* sign, const void* out, void* gL, void* gU, void* gLogS, int64_t n, int inverse) {
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    const int64_t nn = n * n;
    FactorScratch f;
    INNFLOW_STATUS_TRY(readFactors<T>(f, P, L, U, logS, sign, n, /*checkDiagonal=*/false));
    Scratch t, gW, invPerm, gM;
    if (inverse) {
      // gW = −Vᵀ·gV·Vᵀ with V the saved inverse: first t = gV·Vᵀ, then gW = −Vᵀ·t
      INNFLOW_STATUS_TRY(t.alloc(sizeof(double) * nn));
      INNFLOW_STATUS_TRY(gW.alloc(sizeof(double) * nn));
      gradTKernel<T><<<gridFor(nn), kBlock, 0, stream()>>>(static_cast<const T*>(g), static_cast<const T*>(out),
                                                            t.as<double>(), n);
      INNFLOW_LAUNCHED("luConvWeightBackward (gV·Vᵀ)");
      gradWKernel<T><<<gridFor(nn), kBlock, 0, stream()>>>(static_cast<const T*>(out), t.as<double>(), gW.as<double>(), n);
      INNFLOW_LAUNCHED("luConvWeightBackward (−Vᵀ·t)");
    }
    INNFLOW_STATUS_TRY(invPerm.alloc(sizeof(int64_t) * n));
    INNFLOW_STATUS_TRY(gM.alloc(sizeof(double) * nn));
    fillIndexKernel<<<gridFor(n), kBlock, 0, stream()>>>(invPerm.as<int64_t>(), n, -1);
    INNFLOW_LAUNCHED("luConvWeightBackward (inverse permutation)");
    invertPermKernel<<<gridFor(n), kBlock, 0, stream()>>>(f.perm.as<int64_t>(), invPerm.as<int64_t>(), n);
    INNFLOW_LAUNCHED("luConvWeightBackward (inverse permutation)");
    gatherKernel<T><<<gridFor(nn), kBlock, 0, stream()>>>(static_cast<const T*>(g), inverse ? gW.as<double>() : nullptr,
                                                           invPerm.as<int64_t>(), gM.as<double>(), n);
    INNFLOW_LAUNCHED("luConvWeightBackward (Pᵀ·gW)");
    factorGradKernel<T><<<gridFor(nn), kBlock, 0, stream()>>>(gM.as<double>(), f.lt.as<double>(), f.ut.as<double>(),
                                                               f.bad.as<int>(), static_cast<T*>(gL), static_cast<T*>(gU),
                                                               static_cast<T*>(gLogS), n);
    INNFLOW_LAUNCHED("luConvWeightBackward (factor gradients)");
    return INNFLOW_CUDA_OK;
  });
}

}  // namespace

extern "C" const InnflowCudaLuConv* innflow_cuda_lu_conv(void) {
  static const InnflowCudaLuConv table = {weightImpl, weightBackwardImpl};
  return &table;
}

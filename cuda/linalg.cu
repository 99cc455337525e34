// Small dense linear algebra on the GPU: LU with partial pivoting, slogdet, inverse, triangular solve and
// Householder QR, forward and backward side by side (the CUDA twin of native/cpu/linalg.cc).
//
// Design: the matrices are small (up to a few hundred rows), so every kernel carries out the CPU's algorithm
// literally, in double, with the same order of floating-point operations:
// - factorisations (LU, QR) run one thread block per matrix on a double copy in global scratch memory, with
//   __syncthreads between pivot steps; the pivot is found by a block reduction that picks the first row of
//   largest |a| (as the CPU's strict `>` scan does), so pivot choices are the CPU's;
// - triangular solves run one thread per independent right-hand side (a column of B, or a row for X·A = B),
//   each doing the CPU's substitution for that column in the CPU's order;
// - the products inside the backward formulas are one thread per output element, summing in the CPU's order.
// Products that feed a sum are written with __dmul_rn/__dadd_rn/__dsub_rn so that nvcc does not fuse them into
// FMAs, not even across statements (the CPU build has no FMA): the results agree with the CPU's bit for bit except where exp/log differ in the
// last place, and float32 results are the double results rounded once, as on the CPU.
//
// Errors: where the CPU throws ERR_ARGUMENT on a singular matrix (after inspecting values), the GPU cannot
// throw without a host synchronisation; it fills that matrix's outputs with NaN instead (see linalg.h).
#include <cmath>

#include "common.cuh"
#include "linalg.h"

using namespace innflow_cuda;

namespace {

// ---------------------------------------------------------------------------------------------------------
// Helpers

// acc + a·b and acc - a·b, rounded after the product as the CPU does (no fused multiply-add).
__device__ __forceinline__ double addMul(double acc, double a, double b) { return __dadd_rn(acc, __dmul_rn(a, b)); }
__device__ __forceinline__ double subMul(double acc, double a, double b) { return __dsub_rn(acc, __dmul_rn(a, b)); }

__device__ __forceinline__ double nanValue() { return __longlong_as_double(0x7ff8000000000000LL); }

// Threads per block of the one-block-per-matrix kernels (a power of two: the pivot reduction halves it).
constexpr int kMatBlock = 256;

// Blocks for a block-per-matrix kernel (each block loops over matrices b = blockIdx.x, += gridDim.x).
inline unsigned matrixBlocks(int64_t batch) {
  return static_cast<unsigned>(batch < 65535LL * 8 ? (batch < 1 ? 1 : batch) : 65535LL * 8);
}

template <class T>
__global__ void fillNanKernel(T* y, int64_t n) {
  // y: [n]
  INNFLOW_GRID_STRIDE(i, n) y[i] = T(nanValue());
}

// flag[b] = 1 when matrix b of t ([batch, n, n]) has a zero on its diagonal, else 0.
template <class Tt>
__global__ void diagZeroKernel(const Tt* t, int64_t batch, int64_t n, int* flag) {
  // t: [batch, n, n], flag: [batch]
  INNFLOW_GRID_STRIDE(b, batch) {
    int zero = 0;
    for (int64_t i = 0; i < n; i++)
      if (t[b * n * n + i * n + i] == Tt(0)) zero = 1;
    flag[b] = zero;
  }
}

// The CPU's triSolveLeft for one column of the right-hand side: solves op(T)·x = b in place of x, with
// x(i) = x[i·rs], op(T) = T (n×n, row-major) or Tᵀ. Only T's upper (or lower) triangle is read, its diagonal
// only when !unit. The same operations in the same order as the CPU loop for column c2.
template <class Tt>
__device__ void triSolveColumn(const Tt* t, int64_t n, bool upper, bool trans, bool unit, double* x, int64_t rs) {
  const bool forward = upper == trans;  // op(T) is lower triangular: substitute from the first row down
  for (int64_t s = 0; s < n; s++) {
    const int64_t i = forward ? s : n - 1 - s;
    double xi = x[i * rs];
    const int64_t j0 = forward ? 0 : i + 1, j1 = forward ? i : n;
    for (int64_t j = j0; j < j1; j++) {
      const double c = double(trans ? t[j * n + i] : t[i * n + j]);
      if (c == 0) continue;
      xi = subMul(xi, c, x[j * rs]);
    }
    if (!unit) xi = xi / double(t[i * n + i]);
    x[i * rs] = xi;
  }
}

// ---------------------------------------------------------------------------------------------------------
// LU with partial pivoting, block-cooperative (every thread of the block calls it with the same arguments)

struct PivotShared {
  double val[kMatBlock];
  int64_t idx[kMatBlock];
};

// The CPU's luInPlace on a (n×n doubles in global memory): Π·A = L·U in place, row i of the result is row
// perm[i] of the input; a zero pivot column is skipped. Returns the permutation's sign (in every thread).
// Ends with a __syncthreads, so a and perm are visible to the whole block.
__device__ int luInPlaceBlock(double* a, int64_t n, int64_t* perm, PivotShared& sh) {
  const int tid = threadIdx.x, nt = blockDim.x;
  for (int64_t i = tid; i < n; i += nt) perm[i] = i;
  int sign = 1;
  __syncthreads();
  for (int64_t k = 0; k < n; k++) {
    // Pivot: the CPU scans i = k.. keeping the first strictly larger |a[i][k]|, so it takes the first row of
    // the largest value; NaNs never compare larger (and a NaN at row k keeps row k, handled below).
    double best = -1.0;  // below every |value|: "no candidate"
    int64_t bestIdx = n;
    for (int64_t i = k + tid; i < n; i += nt) {  // ascending within a thread: the first of equal values wins
      const double v = fabs(a[i * n + k]);
      if (v > best) {
        best = v;
        bestIdx = i;
      }
    }
    sh.val[tid] = best;
    sh.idx[tid] = bestIdx;
    __syncthreads();
    for (int s = nt / 2; s > 0; s >>= 1) {
      if (tid < s) {
        const double v = sh.val[tid + s];
        const int64_t id = sh.idx[tid + s];
        if (v > sh.val[tid] || (v == sh.val[tid] && id < sh.idx[tid])) {
          sh.val[tid] = v;
          sh.idx[tid] = id;
        }
      }
      __syncthreads();
    }
    const int64_t p = isnan(a[k * n + k]) ? k : sh.idx[0];
    __syncthreads();  // everyone has read sh before the next step overwrites it
    if (p != k) {
      for (int64_t j = tid; j < n; j += nt) {
        const double t = a[k * n + j];
        a[k * n + j] = a[p * n + j];
        a[p * n + j] = t;
      }
      if (tid == 0) {
        const int64_t t = perm[k];
        perm[k] = perm[p];
        perm[p] = t;
      }
      sign = -sign;
      __syncthreads();
    }
    const double pivot = a[k * n + k];
    if (pivot == 0) continue;  // the same value in every thread: a uniform branch
    for (int64_t i = k + 1 + tid; i < n; i += nt) a[i * n + k] = a[i * n + k] / pivot;
    __syncthreads();
    const int64_t w = n - k - 1;
    for (int64_t e = tid; e < w * w; e += nt) {
      const int64_t i = k + 1 + e / w, j = k + 1 + e % w;
      const double l = a[i * n + k];
      if (l != 0) a[i * n + j] = subMul(a[i * n + j], l, a[k * n + j]);
    }
    __syncthreads();
  }
  __syncthreads();
  return sign;
}

// Whether the packed LU (or any n×n matrix) has a zero on its diagonal; the answer in every thread.
__device__ bool zeroOnDiagonalBlock(const double* a, int64_t n, int* flag) {
  if (threadIdx.x == 0) {
    int zero = 0;
    for (int64_t i = 0; i < n; i++)
      if (a[i * n + i] == 0) zero = 1;
    *flag = zero;
  }
  __syncthreads();
  const bool zero = *flag != 0;
  __syncthreads();
  return zero;
}

// The CPU's inverseFromLu: out = U⁻¹·L⁻¹·Π from the packed LU, one column per thread. Ends synchronised.
__device__ void inverseFromLuBlock(const double* lu, const int64_t* perm, int64_t n, double* out) {
  const int tid = threadIdx.x, nt = blockDim.x;
  for (int64_t e = tid; e < n * n; e += nt) out[e] = 0;
  __syncthreads();
  for (int64_t i = tid; i < n; i += nt) out[i * n + perm[i]] = 1;
  __syncthreads();
  for (int64_t c = tid; c < n; c += nt) {
    triSolveColumn(lu, n, /*upper=*/false, false, /*unit=*/true, out + c, n);
    triSolveColumn(lu, n, /*upper=*/true, false, /*unit=*/false, out + c, n);
  }
  __syncthreads();
}

// ---------------------------------------------------------------------------------------------------------
// lu / luBackward

// A: [batch, n, n] -> P, L, U: [batch, n, n]; work: [batch, n, n] doubles, perm: [batch, n]
template <class T>
__global__ void luKernel(const T* A, T* P, T* L, T* U, int64_t batch, int64_t n, double* work, int64_t* permWork) {
  __shared__ PivotShared sh;
  const int tid = threadIdx.x, nt = blockDim.x;
  const int64_t nn = n * n;
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    double* a = work + b * nn;
    int64_t* perm = permWork + b * n;
    for (int64_t e = tid; e < nn; e += nt) a[e] = double(A[b * nn + e]);
    __syncthreads();
    luInPlaceBlock(a, n, perm, sh);
    T *p = P + b * nn, *l = L + b * nn, *u = U + b * nn;
    for (int64_t e = tid; e < nn; e += nt) {
      const int64_t i = e / n, j = e % n;
      const double v = a[e];
      l[e] = T(j < i ? v : (j == i ? 1.0 : 0.0));
      u[e] = T(j >= i ? v : 0.0);
      p[e] = T(0);
    }
    __syncthreads();
    // A = P·L·U with P = Πᵀ: column i of P has its one in row perm[i]
    for (int64_t i = tid; i < n; i += nt) p[perm[i] * n + i] = T(1);
    __syncthreads();
  }
}

// M = tril(Lᵀ·gL, -1) + triu(gU·Uᵀ), the CPU's sums in its order (strictly lower: Σ_{k>=i} L[k][i]·gL[k][j]
// skipping zero L[k][i]; upper: Σ_{k>=j} gU[i][k]·U[j][k]).
// gL, gU: [batch, n, n] or null; L, U: [batch, n, n] -> m: [batch, n, n] doubles
template <class T>
__global__ void luBackwardMKernel(const T* gL, const T* gU, const T* L, const T* U, double* m, int64_t batch, int64_t n) {
  const int64_t nn = n * n;
  INNFLOW_GRID_STRIDE(e, batch * nn) {
    const int64_t b = e / nn, i = (e % nn) / n, j = e % n;
    const T *l = L + b * nn, *u = U + b * nn;
    double s = 0;
    if (i > j) {
      if (gL) {
        const T* g = gL + b * nn;
        for (int64_t k = i; k < n; k++) {
          const double lki = double(l[k * n + i]);
          if (lki == 0) continue;
          s = addMul(s, lki, double(g[k * n + j]));
        }
      }
    } else if (gU) {
      const T* g = gU + b * nn;
      for (int64_t k = j; k < n; k++) s = addMul(s, double(g[i * n + k]), double(u[j * n + k]));
    }
    m[e] = s;
  }
}

// In place on m ([batch, n, n] doubles): each row r ← row r · U⁻ᵀ (the CPU's triSolveRight(U, upper, trans)).
template <class T>
__global__ void luBackwardRightKernel(const T* U, double* m, int64_t batch, int64_t n) {
  // U: [batch, n, n]; one thread per row of m
  INNFLOW_GRID_STRIDE(e, batch * n) {
    const int64_t b = e / n, r = e % n;
    triSolveColumn(U + b * n * n, n, /*upper=*/true, /*trans=*/false, /*unit=*/false, m + b * n * n + r * n, 1);
  }
}

// In place on m ([batch, n, n] doubles): each column c ← L⁻ᵀ · column c (the CPU's triSolveLeft(L, lower, trans, unit)).
template <class T>
__global__ void luBackwardLeftKernel(const T* L, double* m, int64_t batch, int64_t n) {
  // L: [batch, n, n]; one thread per column of m
  INNFLOW_GRID_STRIDE(e, batch * n) {
    const int64_t b = e / n, c = e % n;
    triSolveColumn(L + b * n * n, n, /*upper=*/false, /*trans=*/true, /*unit=*/true, m + b * n * n + c, n);
  }
}

// gA = P·Z: P's column i has its one in row r (the CPU's scan: the first r with P[r][i] != 0, else n - 1),
// which receives row i of Z = m. A singular U (flag) gives NaN rows.
// P: [batch, n, n], m: [batch, n, n] doubles, flag: [batch] -> gA: [batch, n, n] (zero-filled beforehand)
template <class T>
__global__ void luBackwardScatterKernel(const T* P, const double* m, const int* flag, T* gA, int64_t batch, int64_t n) {
  INNFLOW_GRID_STRIDE(e, batch * n) {
    const int64_t b = e / n, i = e % n, nn = n * n;
    const T* p = P + b * nn;
    int64_t r = 0;
    while (r < n - 1 && p[r * n + i] == T(0)) r++;
    for (int64_t j = 0; j < n; j++) gA[b * nn + r * n + j] = flag[b] ? T(nanValue()) : T(m[b * nn + i * n + j]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// slogdet / slogdetBackward

// A: [batch, n, n] -> sign, logabsdet: [batch]; work: [batch, n, n], perm: [batch, n]
template <class T>
__global__ void slogdetKernel(const T* A, T* sign, T* logabsdet, int64_t batch, int64_t n, double* work, int64_t* permWork) {
  __shared__ PivotShared sh;
  const int tid = threadIdx.x, nt = blockDim.x;
  const int64_t nn = n * n;
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    double* a = work + b * nn;
    for (int64_t e = tid; e < nn; e += nt) a[e] = double(A[b * nn + e]);
    __syncthreads();
    double s = luInPlaceBlock(a, n, permWork + b * n, sh);
    if (tid == 0) {
      double lad = 0;
      for (int64_t i = 0; i < n; i++) {  // the CPU's loop, in its order
        const double u = a[i * n + i];
        if (u == 0) {
          s = 0;
          lad = -INFINITY;
          break;
        }
        if (u < 0) s = -s;
        lad += log(fabs(u));
      }
      sign[b] = T(s);
      logabsdet[b] = T(lad);
    }
    __syncthreads();
  }
}

// gA = g·A⁻ᵀ (NaN for a singular matrix, where the CPU throws).
// g: [batch], A: [batch, n, n] -> gA: [batch, n, n]; work, inv: [batch, n, n], perm: [batch, n]
template <class T>
__global__ void slogdetBackwardKernel(const T* g, const T* A, T* gA, int64_t batch, int64_t n, double* work, double* invWork,
                                      int64_t* permWork) {
  __shared__ PivotShared sh;
  __shared__ int flag;
  const int tid = threadIdx.x, nt = blockDim.x;
  const int64_t nn = n * n;
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    double *a = work + b * nn, *inv = invWork + b * nn;
    int64_t* perm = permWork + b * n;
    for (int64_t e = tid; e < nn; e += nt) a[e] = double(A[b * nn + e]);
    __syncthreads();
    luInPlaceBlock(a, n, perm, sh);
    T* out = gA + b * nn;
    if (zeroOnDiagonalBlock(a, n, &flag)) {
      for (int64_t e = tid; e < nn; e += nt) out[e] = T(nanValue());
    } else {
      inverseFromLuBlock(a, perm, n, inv);
      const double gb = double(g[b]);
      for (int64_t e = tid; e < nn; e += nt) {
        const int64_t i = e / n, j = e % n;
        out[e] = T(gb * inv[j * n + i]);
      }
    }
    __syncthreads();
  }
}

// ---------------------------------------------------------------------------------------------------------
// inverse / inverseBackward

// A: [batch, n, n] -> Ainv: [batch, n, n] (NaN for a singular matrix, where the CPU throws)
template <class T>
__global__ void inverseKernel(const T* A, T* Ainv, int64_t batch, int64_t n, double* work, double* invWork, int64_t* permWork) {
  __shared__ PivotShared sh;
  __shared__ int flag;
  const int tid = threadIdx.x, nt = blockDim.x;
  const int64_t nn = n * n;
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    double *a = work + b * nn, *inv = invWork + b * nn;
    int64_t* perm = permWork + b * n;
    for (int64_t e = tid; e < nn; e += nt) a[e] = double(A[b * nn + e]);
    __syncthreads();
    luInPlaceBlock(a, n, perm, sh);
    T* out = Ainv + b * nn;
    if (zeroOnDiagonalBlock(a, n, &flag)) {
      for (int64_t e = tid; e < nn; e += nt) out[e] = T(nanValue());
    } else {
      inverseFromLuBlock(a, perm, n, inv);
      for (int64_t e = tid; e < nn; e += nt) out[e] = T(inv[e]);
    }
    __syncthreads();
  }
}

// gy = g·Yᵀ: gy[i][j] = Σ_k g[i][k]·Y[j][k].  g, Y: [batch, n, n] -> gy: [batch, n, n] doubles
template <class T>
__global__ void inverseBackwardGyKernel(const T* g, const T* Y, double* gy, int64_t batch, int64_t n) {
  const int64_t nn = n * n;
  INNFLOW_GRID_STRIDE(e, batch * nn) {
    const int64_t b = e / nn, i = (e % nn) / n, j = e % n;
    const T *gb = g + b * nn, *y = Y + b * nn;
    double s = 0;
    for (int64_t k = 0; k < n; k++) s = addMul(s, double(gb[i * n + k]), double(y[j * n + k]));
    gy[e] = s;
  }
}

// gA = -Yᵀ·gy: gA[i][j] = 0 - Σ_k Y[k][i]·gy[k][j] (zero Y[k][i] skipped, as on the CPU).
// Y: [batch, n, n], gy: [batch, n, n] doubles -> gA: [batch, n, n]
template <class T>
__global__ void inverseBackwardGaKernel(const T* Y, const double* gy, T* gA, int64_t batch, int64_t n) {
  const int64_t nn = n * n;
  INNFLOW_GRID_STRIDE(e, batch * nn) {
    const int64_t b = e / nn, i = (e % nn) / n, j = e % n;
    const T* y = Y + b * nn;
    const double* gyb = gy + b * nn;
    double acc = 0;
    for (int64_t k = 0; k < n; k++) {
      const double yki = double(y[k * n + i]);
      if (yki == 0) continue;
      acc = subMul(acc, yki, gyb[k * n + j]);
    }
    gA[e] = T(acc);
  }
}

// ---------------------------------------------------------------------------------------------------------
// solveTriangular / solveTriangularBackward

// One thread per right-hand side: left (A·X = B, B [batch, n, k]): column c of matrix b; right (X·A = B,
// B [batch, k, n]): row c, solved as the CPU's triSolveRight does (op(A)ᵀ·xᵀ = bᵀ). trans solves with Aᵀ.
// B is read into x (doubles, laid out like B), solved in place and, when out is non-null, stored to out.
// A singular A (flag[b], when flag is non-null) gives NaN.
template <class T>
__global__ void triSolveKernel(const T* A, const T* B, double* x, T* out, const int* flag, int64_t batch, int64_t n,
                               int64_t k, bool upper, bool left, bool trans, bool unit) {
  const int64_t nk = n * k;
  INNFLOW_GRID_STRIDE(e, batch * k) {
    const int64_t b = e / k, c = e % k;
    const int64_t off = b * nk + (left ? c : c * n), rs = left ? k : 1;
    double* xc = x + off;
    if (flag && flag[b]) {
      for (int64_t i = 0; i < n; i++) xc[i * rs] = nanValue();
    } else {
      for (int64_t i = 0; i < n; i++) xc[i * rs] = double(B[off + i * rs]);
      triSolveColumn(A + b * n * n, n, upper, left ? trans : !trans, unit, xc, rs);
    }
    if (out)
      for (int64_t i = 0; i < n; i++) out[off + i * rs] = T(xc[i * rs]);
  }
}

// gA on the triangle the forward pass read: left gA = -gB·Xᵀ, right gA = -Xᵀ·gB; zero elsewhere.
// gb: [batch, n, k] (left) or [batch, k, n] (right) doubles, X like it -> gA: [batch, n, n]
template <class T>
__global__ void triSolveBackwardGaKernel(const double* gb, const T* X, const int* flag, T* gA, int64_t batch, int64_t n,
                                         int64_t k, bool upper, bool left, bool unit) {
  const int64_t nn = n * n, nk = n * k;
  INNFLOW_GRID_STRIDE(e, batch * nn) {
    const int64_t b = e / nn, i = (e % nn) / n, j = e % n;
    const double* g = gb + b * nk;
    const T* x = X + b * nk;
    const bool read = upper ? (unit ? j > i : j >= i) : (unit ? j < i : j <= i);
    double s = 0;
    if (read) {
      if (left)
        for (int64_t c = 0; c < k; c++) s = subMul(s, g[i * k + c], double(x[j * k + c]));
      else
        for (int64_t r = 0; r < k; r++) s = subMul(s, double(x[r * n + i]), g[r * n + j]);
    }
    gA[e] = flag && flag[b] ? T(nanValue()) : T(s);
  }
}

// ---------------------------------------------------------------------------------------------------------
// qr / qrBackward

// The CPU's applyReflector for one column c of x (m rows, row stride ldx): H = I - tau·v·vᵀ with
// v = (1, v[(j+1)·ldv + j], ...) in column j of `v`, rows j.. .
__device__ void applyReflectorColumn(const double* v, int64_t m, int64_t ldv, int64_t j, double* x, int64_t ldx, int64_t c,
                                     double tau) {
  double w = x[j * ldx + c];
  for (int64_t i = j + 1; i < m; i++) w = addMul(w, v[i * ldv + j], x[i * ldx + c]);
  w = __dmul_rn(w, tau);  // rounded here: nvcc would otherwise fuse it into the subtraction below
  x[j * ldx + c] = x[j * ldx + c] - w;
  for (int64_t i = j + 1; i < m; i++) x[i * ldx + c] = subMul(x[i * ldx + c], v[i * ldv + j], w);
}

// Householder QR, one block per matrix: the CPU's householderInPlace (thread 0 computes each reflector's
// norm and scale in the CPU's order; the reflector is applied one column per thread), then Q one column per
// thread (each column takes the reflectors j <= c from the last to the first).
// A: [batch, m, n] -> Q: [batch, m, n], R: [batch, n, n]; aWork, qWork: [batch, m, n], tauWork: [batch, n]
template <class T>
__global__ void qrKernel(const T* A, T* Q, T* R, int64_t batch, int64_t m, int64_t n, double* aWork, double* qWork,
                         double* tauWork) {
  __shared__ double shInv, shBeta;
  __shared__ int shSkip;
  const int tid = threadIdx.x, nt = blockDim.x;
  const int64_t mn = m * n, nn = n * n;
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    double *a = aWork + b * mn, *q = qWork + b * mn, *tau = tauWork + b * n;
    for (int64_t e = tid; e < mn; e += nt) {
      a[e] = double(A[b * mn + e]);
      q[e] = e / n == e % n ? 1.0 : 0.0;
    }
    __syncthreads();
    for (int64_t j = 0; j < n; j++) {
      if (tid == 0) {
        // ‖x‖ with a scale, so large entries do not overflow the sum of squares (std::max ignores NaN this way)
        double scale = 0;
        for (int64_t i = j; i < m; i++) {
          const double v = fabs(a[i * n + j]);
          scale = scale < v ? v : scale;
        }
        double tail = 0;
        if (scale > 0)
          for (int64_t i = j + 1; i < m; i++) {
            const double v = a[i * n + j] / scale;
            tail = addMul(tail, v, v);
          }
        const double alpha = a[j * n + j];
        if (tail == 0) {  // already a multiple of e1: no reflection
          tau[j] = 0;
          shInv = 0;
          shBeta = 0;
          shSkip = 1;
        } else {
          const double ra = alpha / scale;
          const double norm = __dmul_rn(scale, sqrt(addMul(tail, ra, ra)));  // unfused with beta - alpha below
          const double beta = alpha >= 0 ? -norm : norm;
          tau[j] = (beta - alpha) / beta;
          shInv = 1.0 / (alpha - beta);
          shBeta = beta;
          shSkip = 0;
        }
      }
      __syncthreads();
      const bool skip = shSkip != 0;
      const double inv = shInv, beta = shBeta, tj = tau[j];
      __syncthreads();  // all have read the shared values before thread 0 writes the next column's
      if (skip) continue;
      for (int64_t i = j + 1 + tid; i < m; i += nt) a[i * n + j] = __dmul_rn(a[i * n + j], inv);
      if (tid == 0) a[j * n + j] = beta;
      __syncthreads();
      for (int64_t c = j + 1 + tid; c < n; c += nt) applyReflectorColumn(a, m, n, j, a, n, c, tj);
      __syncthreads();
    }
    for (int64_t c = tid; c < n; c += nt)
      for (int64_t j = c; j >= 0; j--)  // reflectors n-1..0, of which those with j <= c touch column c
        if (tau[j] != 0) applyReflectorColumn(a, m, n, j, q, n, c, tau[j]);
    __syncthreads();
    for (int64_t e = tid; e < mn; e += nt) Q[b * mn + e] = T(q[e]);
    for (int64_t e = tid; e < nn; e += nt) {
      const int64_t i = e / n, j = e % n;
      R[b * nn + e] = T(j >= i ? a[i * n + j] : 0.0);
    }
    __syncthreads();
  }
}

// K: symmetric, its upper triangle that of N = gR·Rᵀ - Qᵀ·gQ, in the CPU's order (for i <= j:
// Σ_{k>=j} gR[i][k]·R[j][k], then minus Q[k][i]·gQ[k][j] for k = 0..m-1).
// gQ: [batch, m, n] or null, gR: [batch, n, n] or null, Q, R -> kmat: [batch, n, n] doubles
template <class T>
__global__ void qrBackwardKKernel(const T* gQ, const T* gR, const T* Q, const T* R, double* kmat, int64_t batch, int64_t m,
                                  int64_t n) {
  const int64_t nn = n * n, mn = m * n;
  INNFLOW_GRID_STRIDE(e, batch * nn) {
    const int64_t b = e / nn, r = (e % nn) / n, c = e % n;
    const int64_t i = r < c ? r : c, j = r < c ? c : r;
    double s = 0;
    if (gR) {
      const T *g = gR + b * nn, *rr = R + b * nn;
      for (int64_t k = j; k < n; k++) s = addMul(s, double(g[i * n + k]), double(rr[j * n + k]));
    }
    if (gQ) {
      const T *g = gQ + b * mn, *q = Q + b * mn;
      for (int64_t k = 0; k < m; k++) s = subMul(s, double(q[k * n + i]), double(g[k * n + j]));
    }
    kmat[e] = s;
  }
}

// out = gQ + Q·K: out[i][j] = gQ[i][j] (or 0) + Σ_k Q[i][k]·K[k][j] (zero Q[i][k] skipped, as on the CPU).
// gQ: [batch, m, n] or null, Q: [batch, m, n], kmat: [batch, n, n] doubles -> out: [batch, m, n] doubles
template <class T>
__global__ void qrBackwardOutKernel(const T* gQ, const T* Q, const double* kmat, double* out, int64_t batch, int64_t m,
                                    int64_t n) {
  const int64_t nn = n * n, mn = m * n;
  INNFLOW_GRID_STRIDE(e, batch * mn) {
    const int64_t b = e / mn, i = (e % mn) / n, j = e % n;
    const T* q = Q + b * mn;
    const double* kb = kmat + b * nn;
    double s = gQ ? double(gQ[e]) : 0.0;
    for (int64_t k = 0; k < n; k++) {
      const double qik = double(q[i * n + k]);
      if (qik == 0) continue;
      s = addMul(s, qik, kb[k * n + j]);
    }
    out[e] = s;
  }
}

// gA = out·R⁻ᵀ, one row of out per thread (the CPU's triSolveRight(R, upper, trans)); NaN where R is singular.
// R: [batch, n, n], out: [batch, m, n] doubles (solved in place), flag: [batch] -> gA: [batch, m, n]
template <class T>
__global__ void qrBackwardSolveKernel(const T* R, double* out, const int* flag, T* gA, int64_t batch, int64_t m, int64_t n) {
  INNFLOW_GRID_STRIDE(e, batch * m) {
    const int64_t b = e / m, r = e % m;
    double* x = out + b * m * n + r * n;
    T* g = gA + b * m * n + r * n;
    if (flag[b]) {
      for (int64_t j = 0; j < n; j++) g[j] = T(nanValue());
      continue;
    }
    triSolveColumn(R + b * n * n, n, /*upper=*/true, /*trans=*/false, /*unit=*/false, x, 1);
    for (int64_t j = 0; j < n; j++) g[j] = T(x[j]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Entry points

#define LAUNCH_MATRIX(kernel, batch) kernel<<<matrixBlocks(batch), kMatBlock, 0, stream()>>>
#define LAUNCH_ELEMENTS(kernel, count) kernel<<<gridFor(count), kBlock, 0, stream()>>>

int luImpl(int dtype, const void* A, void* P, void* L, void* U, int64_t batch, int64_t n) {
  if (batch <= 0 || n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    Scratch work, perm;
    INNFLOW_STATUS_TRY(work.alloc(sizeof(double) * batch * n * n));
    INNFLOW_STATUS_TRY(perm.alloc(sizeof(int64_t) * batch * n));
    LAUNCH_MATRIX(luKernel<T>, batch)(static_cast<const T*>(A), static_cast<T*>(P), static_cast<T*>(L), static_cast<T*>(U),
                                      batch, n, work.as<double>(), perm.as<int64_t>());
    INNFLOW_LAUNCHED("lu");
    return INNFLOW_CUDA_OK;
  });
}

int luBackwardImpl(int dtype, const void* gL, const void* gU, const void* P, const void* L, const void* U, void* gA,
                   int64_t batch, int64_t n) {
  if (batch <= 0 || n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    const int64_t nn = n * n;
    Scratch m, flag;
    INNFLOW_STATUS_TRY(m.alloc(sizeof(double) * batch * nn));
    INNFLOW_STATUS_TRY(flag.alloc(sizeof(int) * batch));
    INNFLOW_STATUS_TRY(innflow_cuda_fill(dtype, gA, batch * nn, 0.0));
    LAUNCH_ELEMENTS(diagZeroKernel<T>, batch)(static_cast<const T*>(U), batch, n, flag.as<int>());
    INNFLOW_LAUNCHED("lu backward (diagonal check)");
    LAUNCH_ELEMENTS(luBackwardMKernel<T>, batch * nn)(static_cast<const T*>(gL), static_cast<const T*>(gU),
                                                      static_cast<const T*>(L), static_cast<const T*>(U), m.as<double>(),
                                                      batch, n);
    INNFLOW_LAUNCHED("lu backward (M)");
    LAUNCH_ELEMENTS(luBackwardRightKernel<T>, batch * n)(static_cast<const T*>(U), m.as<double>(), batch, n);
    INNFLOW_LAUNCHED("lu backward (M·U⁻ᵀ)");
    LAUNCH_ELEMENTS(luBackwardLeftKernel<T>, batch * n)(static_cast<const T*>(L), m.as<double>(), batch, n);
    INNFLOW_LAUNCHED("lu backward (L⁻ᵀ·M)");
    LAUNCH_ELEMENTS(luBackwardScatterKernel<T>, batch * n)(static_cast<const T*>(P), m.as<double>(), flag.as<int>(),
                                                           static_cast<T*>(gA), batch, n);
    INNFLOW_LAUNCHED("lu backward (P·Z)");
    return INNFLOW_CUDA_OK;
  });
}

int slogdetImpl(int dtype, const void* A, void* sign, void* logabsdet, int64_t batch, int64_t n) {
  if (batch <= 0) return INNFLOW_CUDA_OK;  // n == 0 still writes sign 1, logabsdet 0 per matrix
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    Scratch work, perm;
    INNFLOW_STATUS_TRY(work.alloc(sizeof(double) * batch * n * n));
    INNFLOW_STATUS_TRY(perm.alloc(sizeof(int64_t) * batch * n));
    LAUNCH_MATRIX(slogdetKernel<T>, batch)(static_cast<const T*>(A), static_cast<T*>(sign), static_cast<T*>(logabsdet),
                                           batch, n, work.as<double>(), perm.as<int64_t>());
    INNFLOW_LAUNCHED("slogdet");
    return INNFLOW_CUDA_OK;
  });
}

int slogdetBackwardImpl(int dtype, const void* g, const void* A, void* gA, int64_t batch, int64_t n) {
  if (batch <= 0 || n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    Scratch work, inv, perm;
    INNFLOW_STATUS_TRY(work.alloc(sizeof(double) * batch * n * n));
    INNFLOW_STATUS_TRY(inv.alloc(sizeof(double) * batch * n * n));
    INNFLOW_STATUS_TRY(perm.alloc(sizeof(int64_t) * batch * n));
    LAUNCH_MATRIX(slogdetBackwardKernel<T>, batch)(static_cast<const T*>(g), static_cast<const T*>(A), static_cast<T*>(gA),
                                                   batch, n, work.as<double>(), inv.as<double>(), perm.as<int64_t>());
    INNFLOW_LAUNCHED("slogdet backward");
    return INNFLOW_CUDA_OK;
  });
}

int inverseImpl(int dtype, const void* A, void* Ainv, int64_t batch, int64_t n) {
  if (batch <= 0 || n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    Scratch work, inv, perm;
    INNFLOW_STATUS_TRY(work.alloc(sizeof(double) * batch * n * n));
    INNFLOW_STATUS_TRY(inv.alloc(sizeof(double) * batch * n * n));
    INNFLOW_STATUS_TRY(perm.alloc(sizeof(int64_t) * batch * n));
    LAUNCH_MATRIX(inverseKernel<T>, batch)(static_cast<const T*>(A), static_cast<T*>(Ainv), batch, n, work.as<double>(),
                                           inv.as<double>(), perm.as<int64_t>());
    INNFLOW_LAUNCHED("inverse");
    return INNFLOW_CUDA_OK;
  });
}

int inverseBackwardImpl(int dtype, const void* g, const void* Ainv, void* gA, int64_t batch, int64_t n) {
  if (batch <= 0 || n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    const int64_t count = batch * n * n;
    Scratch gy;
    INNFLOW_STATUS_TRY(gy.alloc(sizeof(double) * count));
    LAUNCH_ELEMENTS(inverseBackwardGyKernel<T>, count)(static_cast<const T*>(g), static_cast<const T*>(Ainv),
                                                       gy.as<double>(), batch, n);
    INNFLOW_LAUNCHED("inverse backward (g·Yᵀ)");
    LAUNCH_ELEMENTS(inverseBackwardGaKernel<T>, count)(static_cast<const T*>(Ainv), gy.as<double>(), static_cast<T*>(gA),
                                                       batch, n);
    INNFLOW_LAUNCHED("inverse backward (-Yᵀ·gy)");
    return INNFLOW_CUDA_OK;
  });
}

int solveTriangularImpl(int dtype, const void* A, const void* B, void* X, int64_t batch, int64_t n, int64_t k, int upper,
                        int left, int unit) {
  if (batch <= 0 || n <= 0 || k <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    Scratch x, flag;
    INNFLOW_STATUS_TRY(x.alloc(sizeof(double) * batch * n * k));
    if (!unit) {
      INNFLOW_STATUS_TRY(flag.alloc(sizeof(int) * batch));
      LAUNCH_ELEMENTS(diagZeroKernel<T>, batch)(static_cast<const T*>(A), batch, n, flag.as<int>());
      INNFLOW_LAUNCHED("solveTriangular (diagonal check)");
    }
    LAUNCH_ELEMENTS(triSolveKernel<T>, batch * k)(static_cast<const T*>(A), static_cast<const T*>(B), x.as<double>(),
                                                  static_cast<T*>(X), unit ? nullptr : flag.as<int>(), batch, n, k,
                                                  upper != 0, left != 0, /*trans=*/false, unit != 0);
    INNFLOW_LAUNCHED("solveTriangular");
    return INNFLOW_CUDA_OK;
  });
}

int solveTriangularBackwardImpl(int dtype, const void* g, const void* A, const void* X, void* gA, void* gB, int64_t batch,
                                int64_t n, int64_t k, int upper, int left, int unit) {
  if (batch <= 0 || n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    if (k <= 0) {  // B is empty: gA is all zeros (an empty sum), gB empty
      if (gA) INNFLOW_STATUS_TRY(innflow_cuda_fill(dtype, gA, batch * n * n, 0.0));
      return INNFLOW_CUDA_OK;
    }
    Scratch gb, flag;
    INNFLOW_STATUS_TRY(gb.alloc(sizeof(double) * batch * n * k));
    if (!unit) {
      INNFLOW_STATUS_TRY(flag.alloc(sizeof(int) * batch));
      LAUNCH_ELEMENTS(diagZeroKernel<T>, batch)(static_cast<const T*>(A), batch, n, flag.as<int>());
      INNFLOW_LAUNCHED("solveTriangular backward (diagonal check)");
    }
    const int* f = unit ? nullptr : flag.as<int>();
    LAUNCH_ELEMENTS(triSolveKernel<T>, batch * k)(static_cast<const T*>(A), static_cast<const T*>(g), gb.as<double>(),
                                                  static_cast<T*>(gB), f, batch, n, k, upper != 0, left != 0,
                                                  /*trans=*/true, unit != 0);
    INNFLOW_LAUNCHED("solveTriangular backward (gB)");
    if (gA) {
      LAUNCH_ELEMENTS(triSolveBackwardGaKernel<T>, batch * n * n)(gb.as<double>(), static_cast<const T*>(X), f,
                                                                  static_cast<T*>(gA), batch, n, k, upper != 0,
                                                                  left != 0, unit != 0);
      INNFLOW_LAUNCHED("solveTriangular backward (gA)");
    }
    return INNFLOW_CUDA_OK;
  });
}

int qrImpl(int dtype, const void* A, void* Q, void* R, int64_t batch, int64_t m, int64_t n) {
  if (batch <= 0 || n <= 0) return INNFLOW_CUDA_OK;  // m >= n: Q [batch, m, 0] and R [batch, 0, 0] are empty
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    Scratch a, q, tau;
    INNFLOW_STATUS_TRY(a.alloc(sizeof(double) * batch * m * n));
    INNFLOW_STATUS_TRY(q.alloc(sizeof(double) * batch * m * n));
    INNFLOW_STATUS_TRY(tau.alloc(sizeof(double) * batch * n));
    LAUNCH_MATRIX(qrKernel<T>, batch)(static_cast<const T*>(A), static_cast<T*>(Q), static_cast<T*>(R), batch, m, n,
                                      a.as<double>(), q.as<double>(), tau.as<double>());
    INNFLOW_LAUNCHED("qr");
    return INNFLOW_CUDA_OK;
  });
}

int qrBackwardImpl(int dtype, const void* gQ, const void* gR, const void* Q, const void* R, void* gA, int64_t batch,
                   int64_t m, int64_t n) {
  if (batch <= 0 || n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    Scratch kmat, out, flag;
    INNFLOW_STATUS_TRY(kmat.alloc(sizeof(double) * batch * n * n));
    INNFLOW_STATUS_TRY(out.alloc(sizeof(double) * batch * m * n));
    INNFLOW_STATUS_TRY(flag.alloc(sizeof(int) * batch));
    LAUNCH_ELEMENTS(diagZeroKernel<T>, batch)(static_cast<const T*>(R), batch, n, flag.as<int>());
    INNFLOW_LAUNCHED("qr backward (diagonal check)");
    LAUNCH_ELEMENTS(qrBackwardKKernel<T>, batch * n * n)(static_cast<const T*>(gQ), static_cast<const T*>(gR),
                                                         static_cast<const T*>(Q), static_cast<const T*>(R),
                                                         kmat.as<double>(), batch, m, n);
    INNFLOW_LAUNCHED("qr backward (K)");
    LAUNCH_ELEMENTS(qrBackwardOutKernel<T>, batch * m * n)(static_cast<const T*>(gQ), static_cast<const T*>(Q),
                                                           kmat.as<double>(), out.as<double>(), batch, m, n);
    INNFLOW_LAUNCHED("qr backward (gQ + Q·K)");
    LAUNCH_ELEMENTS(qrBackwardSolveKernel<T>, batch * m)(static_cast<const T*>(R), out.as<double>(), flag.as<int>(),
                                                         static_cast<T*>(gA), batch, m, n);
    INNFLOW_LAUNCHED("qr backward (·R⁻ᵀ)");
    return INNFLOW_CUDA_OK;
  });
}

#undef LAUNCH_MATRIX
#undef LAUNCH_ELEMENTS

}  // namespace

extern "C" const InnflowCudaLinalg* innflow_cuda_linalg(void) {
  static const InnflowCudaLinalg table = {
      luImpl,      luBackwardImpl,      slogdetImpl,         slogdetBackwardImpl,         inverseImpl,
      inverseBackwardImpl, solveTriangularImpl, solveTriangularBackwardImpl, qrImpl, qrBackwardImpl,
  };
  return &table;
}

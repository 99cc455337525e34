// The fused affine coupling on the GPU: the device side of native/cpu/coupling.cc (formulas there; table in
// cuda/coupling.h).
//
// One thread block per row (sample), grid-stride over the rows; the threads of a block stride over the row's n
// values, and the row sums (log-det, the GIN means) are each thread's partial sum in double followed by a tree
// in shared memory: deterministic, no atomics. With GIN the forward parks s₀ in y2 and the backward parks gs in
// ga_s between the two passes (each thread reads back only what it wrote itself).
#include "common.cuh"
#include "coupling.h"

using namespace innflow_cuda;

namespace {

__device__ inline float mExp(float x) { return expf(x); }
__device__ inline double mExp(double x) { return exp(x); }
__device__ inline float mTanh(float x) { return tanhf(x); }
__device__ inline double mTanh(double x) { return tanh(x); }
__device__ inline float mAtan(float x) { return atanf(x); }
__device__ inline double mAtan(double x) { return atan(x); }

template <class T>
__device__ inline T mSigmoid(T x) {
  return x >= T(0) ? T(1) / (T(1) + mExp(-x)) : mExp(x) / (T(1) + mExp(x));
}

constexpr double kAtanFactor = 0.636;  // native/cpu/coupling.cc

template <class T>
struct Consts {
  T ps, clamp, k, dScale;
};

template <class T>
Consts<T> makeConsts(int kind, double preScale, double clamp) {
  Consts<T> c;
  c.ps = T(preScale);
  c.clamp = T(clamp);
  const double k = kind == INNFLOW_CLAMP_ATAN ? clamp * kAtanFactor : kind == INNFLOW_CLAMP_SIGMOID ? 2 * clamp : clamp;
  c.k = T(k);
  c.dScale = kind == INNFLOW_CLAMP_TANH_DIV || kind == INNFLOW_CLAMP_NONE ? T(preScale) : T(preScale * k);
  return c;
}

// s₀ and ∂s₀/∂a for one raw log-scale a (the kind is the same for every thread: no divergence).
template <class T>
__device__ inline void softClamp(int kind, T a, const Consts<T>& c, T& s0, T& d) {
  const T u = a * c.ps;
  switch (kind) {
    case INNFLOW_CLAMP_TANH_DIV: {
      const T th = mTanh(u / c.clamp);
      s0 = th * c.clamp;
      d = c.dScale * (T(1) - th * th);
      return;
    }
    case INNFLOW_CLAMP_ATAN:
      s0 = mAtan(u) * c.k;
      d = c.dScale / (T(1) + u * u);
      return;
    case INNFLOW_CLAMP_TANH: {
      const T th = mTanh(u);
      s0 = th * c.clamp;
      d = c.dScale * (T(1) - th * th);
      return;
    }
    case INNFLOW_CLAMP_SIGMOID: {
      const T sg = mSigmoid(u);
      s0 = (sg - T(0.5)) * c.k;
      d = c.dScale * (sg * (T(1) - sg));
      return;
    }
    default:
      s0 = u;
      d = c.dScale;
      return;
  }
}

constexpr int kMaxThreads = 256;

template <class T>
__global__ void forwardKernel(int kind, const T* __restrict__ a, const T* __restrict__ x2, T* __restrict__ y2,
                              T* __restrict__ logDet, T* __restrict__ E, T* __restrict__ D, int64_t rows, int64_t n,
                              Consts<T> c, int gin, int rev) {
  __shared__ double tree[kMaxThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* ar = a + r * 2 * n;
    const T* tr = ar + n;
    const T* xr = x2 + r * n;
    T* yr = y2 + r * n;
    T mean = T(0);
    if (gin) {
      double part = 0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        T s0, d;
        softClamp(kind, ar[j], c, s0, d);
        yr[j] = s0;  // parked until the mean is known
        if (D) D[r * n + j] = d;
        part += double(s0);
      }
      mean = T(blockSum(part, tree) * (1.0 / double(n)));
    }
    double part = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      T s, d;
      if (gin) {
        s = yr[j] - mean;
      } else {
        softClamp(kind, ar[j], c, s, d);
        if (D) D[r * n + j] = d;
      }
      const T t = tr[j] * c.ps;
      const T e = mExp(rev ? -s : s);
      yr[j] = rev ? (xr[j] - t) * e : xr[j] * e + t;
      if (E) E[r * n + j] = e;
      part += double(s);
    }
    const double sum = blockSum(part, tree);
    if (threadIdx.x == 0) logDet[r] = rev ? -T(sum) : T(sum);
  }
}

template <class T>
__global__ void backwardKernel(const T* __restrict__ gy2, const T* __restrict__ gLogDet, const T* __restrict__ a,
                               const T* __restrict__ x2, const T* __restrict__ E, const T* __restrict__ D,
                               T* __restrict__ ga, T* __restrict__ gx2, int64_t rows, int64_t n, T ps, int gin, int rev) {
  __shared__ double tree[kMaxThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T gl = gLogDet ? gLogDet[r] : T(0);
    const T* tr = a + r * 2 * n + n;
    T* gsr = ga + r * 2 * n;
    T* gtr = gsr + n;
    double part = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const int64_t i = r * n + j;
      T gs, gt;
      if (gy2) {
        const T g = gy2[i], e = E[i];
        const T ge = g * e;
        gs = rev ? -(ge * (x2[i] - tr[j] * ps)) - gl : ge * x2[i] + gl;
        gt = rev ? -(ge * ps) : g * ps;
        if (gx2) gx2[i] = ge;
      } else {
        gs = rev ? -gl : gl;
        gt = T(0);
      }
      gtr[j] = gt;
      if (gin) {
        gsr[j] = gs;  // parked until the mean is known
        part += double(gs);
      } else {
        gsr[j] = gs * D[i];
      }
    }
    if (gin) {
      const T mean = T(blockSum(part, tree) * (1.0 / double(n)));
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) gsr[j] = (gsr[j] - mean) * D[r * n + j];
    }
  }
}

// Threads per block for rows of n values: a power of two, small rows do not idle 256 threads.
int threadsFor(int64_t n) { return n >= 256 ? 256 : n >= 64 ? 64 : 32; }
unsigned blocksFor(int64_t rows) { return unsigned(rows < 65535LL * 8 ? rows : 65535LL * 8); }

int forward(int kind, int dtype, const void* a, const void* x2, void* y2, void* logDet, void* E, void* D, int64_t rows,
            int64_t n, double preScale, double clamp, int gin, int rev) {
  if (kind < 0 || kind >= INNFLOW_CLAMP_COUNT)
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "affineCoupling: unknown clamp kind %d", kind);
  if (rows <= 0 || n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    forwardKernel<T><<<blocksFor(rows), threadsFor(n), 0, stream()>>>(
        kind, static_cast<const T*>(a), static_cast<const T*>(x2), static_cast<T*>(y2), static_cast<T*>(logDet),
        static_cast<T*>(E), static_cast<T*>(D), rows, n, makeConsts<T>(kind, preScale, clamp), gin, rev);
    INNFLOW_LAUNCHED("affineCoupling");
    return INNFLOW_CUDA_OK;
  });
}

int backward(int kind, int dtype, const void* gy2, const void* gLogDet, const void* a, const void* x2, const void* E,
             const void* D, void* ga, void* gx2, int64_t rows, int64_t n, double preScale, int gin, int rev) {
  if (kind < 0 || kind >= INNFLOW_CLAMP_COUNT)
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "affineCoupling backward: unknown clamp kind %d", kind);
  if (rows <= 0 || n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    backwardKernel<T><<<blocksFor(rows), threadsFor(n), 0, stream()>>>(
        static_cast<const T*>(gy2), static_cast<const T*>(gLogDet), static_cast<const T*>(a), static_cast<const T*>(x2),
        static_cast<const T*>(E), static_cast<const T*>(D), static_cast<T*>(ga), static_cast<T*>(gx2), rows, n,
        T(preScale), gin, rev);
    INNFLOW_LAUNCHED("affineCoupling backward");
    return INNFLOW_CUDA_OK;
  });
}

// ------------------------------------------------------------------------------------------------ catAffinePermute
// A one-block kernel inverts perm into inv[0..C), sets inv[C] to 1 unless perm is a permutation of 0..C−1
// (every k found at a position i with perm[i] = k: C values onto C values; the other kernels then write NaN)
// and copies perm as integers to inv[C + 1 ..].
// The backward gives each channel k of src a thread block: gsrc[:, k] and the two sums over (batch, S) in a
// fixed tree, no atomics.

// True when v is an integer in [0, limit) (false for NaN), as the CPU checks.
__device__ inline bool validIndexOf(double v, int64_t limit) {
  bool inRange = v >= 0 && v < double(limit);
  double c = inRange ? v : 0.0;
  return inRange && double(int64_t(c)) == c;
}

template <class T> __device__ inline T nanValue();
template <> __device__ inline float nanValue<float>() { return __int_as_float(0x7fc00000); }
template <> __device__ inline double nanValue<double>() { return __longlong_as_double(0x7ff8000000000000LL); }

template <class I>
__global__ void invertPermKernel(const I* __restrict__ perm, int64_t C, int64_t* __restrict__ inv) {
  for (int64_t k = threadIdx.x; k < C; k += blockDim.x) inv[k] = -1;
  __syncthreads();
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const double v = double(perm[j]);
    const bool valid = validIndexOf(v, C);
    if (valid) inv[int64_t(v)] = j;  // a repeated value: one of its positions wins, caught below
    inv[C + 1 + j] = valid ? int64_t(v) : 0;
  }
  __syncthreads();
  int ok = 1;
  for (int64_t k = threadIdx.x; k < C; k += blockDim.x) {
    const int64_t i = inv[k];
    ok &= (i >= 0 && double(perm[i]) == double(k)) ? 1 : 0;
  }
  ok = __syncthreads_and(ok);
  if (threadIdx.x == 0) inv[C] = ok ? 0 : 1;
}

template <class T, class I>
__global__ void catAffinePermuteKernel(const T* __restrict__ x1, const T* __restrict__ y2, const T* __restrict__ scale,
                                       const T* __restrict__ shift, const I* __restrict__ perm,
                                       const int64_t* __restrict__ inv, T* __restrict__ z, int64_t B, int64_t C1,
                                       int64_t C2, int64_t S) {
  const int64_t C = C1 + C2;
  const bool bad = inv[C] != 0;
  INNFLOW_GRID_STRIDE(i, B * C * S) {
    if (bad) {
      z[i] = nanValue<T>();
      continue;
    }
    const int64_t s = i % S, t = i / S, j = t % C, b = t / C;
    const int64_t k = int64_t(perm[j]);
    const T v = k < C1 ? x1[(b * C1 + k) * S + s] : y2[(b * C2 + k - C1) * S + s];
    z[i] = scale ? v * scale[k] + shift[k] : v + shift[k];
  }
}

template <class T>
__global__ void catAffinePermuteBackwardKernel(const T* __restrict__ gz, const T* __restrict__ x1, const T* __restrict__ y2,
                                               const T* __restrict__ scale, const int64_t* __restrict__ inv,
                                               T* __restrict__ gx1, T* __restrict__ gy2, T* __restrict__ gscale,
                                               T* __restrict__ gshift, int64_t B, int64_t C1, int64_t C2, int64_t S) {
  __shared__ double tree[kMaxThreads];
  const int64_t C = C1 + C2;
  const bool bad = inv[C] != 0;
  for (int64_t k = blockIdx.x; k < C; k += gridDim.x) {
    const int64_t j = bad ? 0 : inv[k];
    const T sc = scale ? scale[k] : T(1);
    double pSc = 0, pSh = 0;
    for (int64_t idx = threadIdx.x; idx < B * S; idx += blockDim.x) {
      const int64_t b = idx / S, s = idx % S;
      const int64_t at = k < C1 ? (b * C1 + k) * S + s : (b * C2 + k - C1) * S + s;
      const T* src = k < C1 ? x1 : y2;
      T* dst = k < C1 ? gx1 : gy2;
      const T g = bad ? nanValue<T>() : gz[(b * C + j) * S + s];
      dst[at] = scale ? g * sc : g;
      pSh += double(g);
      if (scale) pSc += double(T(g * src[at]));
    }
    const double sumSc = blockSum(pSc, tree);
    const double sumSh = blockSum(pSh, tree);
    if (threadIdx.x == 0) {
      if (gscale) gscale[k] = T(sumSc);
      if (gshift) gshift[k] = T(sumSh);
    }
  }
}

// inv, the flag and perm (2C + 1 values) for perm, in a scratch buffer that lives as long as `buf`.
int invertPerm(const void* perm, int indexDtype, int64_t C, Scratch& buf, const char* op) {
  int rc = buf.alloc(size_t(2 * C + 1) * sizeof(int64_t));
  if (rc != INNFLOW_CUDA_OK) return rc;
  return withDtype(indexDtype, [&](auto itag) -> int {
    using I = decltype(itag);
    invertPermKernel<I><<<1, kMaxThreads, 0, stream()>>>(static_cast<const I*>(perm), C, buf.as<int64_t>());
    INNFLOW_LAUNCHED(op);
    return INNFLOW_CUDA_OK;
  });
}

int catAffinePermute(int dtype, const void* x1, const void* y2, const void* scale, const void* shift, const void* perm,
                     int indexDtype, void* z, int64_t B, int64_t C1, int64_t C2, int64_t S) {
  const int64_t C = C1 + C2, total = B * C * S;
  if (total <= 0) return INNFLOW_CUDA_OK;
  Scratch inv;
  int rc = invertPerm(perm, indexDtype, C, inv, "catAffinePermute (perm)");
  if (rc != INNFLOW_CUDA_OK) return rc;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    return withDtype(indexDtype, [&](auto itag) -> int {
      using I = decltype(itag);
      catAffinePermuteKernel<T, I><<<gridFor(total), kBlock, 0, stream()>>>(
          static_cast<const T*>(x1), static_cast<const T*>(y2), static_cast<const T*>(scale), static_cast<const T*>(shift),
          static_cast<const I*>(perm), inv.as<int64_t>(), static_cast<T*>(z), B, C1, C2, S);
      INNFLOW_LAUNCHED("catAffinePermute");
      return INNFLOW_CUDA_OK;
    });
  });
}

int catAffinePermuteBackward(int dtype, const void* gz, const void* x1, const void* y2, const void* scale,
                             const void* perm, int indexDtype, void* gx1, void* gy2, void* gscale, void* gshift,
                             int64_t B, int64_t C1, int64_t C2, int64_t S) {
  const int64_t C = C1 + C2;
  if (C <= 0) return INNFLOW_CUDA_OK;
  Scratch inv;
  int rc = invertPerm(perm, indexDtype, C, inv, "catAffinePermute backward (perm)");
  if (rc != INNFLOW_CUDA_OK) return rc;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    catAffinePermuteBackwardKernel<T><<<blocksFor(C), threadsFor(B * S), 0, stream()>>>(
        static_cast<const T*>(gz), static_cast<const T*>(x1), static_cast<const T*>(y2), static_cast<const T*>(scale),
        inv.as<int64_t>(), static_cast<T*>(gx1), static_cast<T*>(gy2), static_cast<T*>(gscale), static_cast<T*>(gshift),
        B, C1, C2, S);
    INNFLOW_LAUNCHED("catAffinePermute backward");
    return INNFLOW_CUDA_OK;
  });
}

// ------------------------------------------------------------------------------------------------ permuteAffineSplit
// perm here is the gather index of the reverse pass (perm⁻¹ of the forward): src[:, k] = f(z[:, perm[k]]); the
// kernels read it from the checked copy in the scratch buffer (index = inv + C + 1).

template <class T>
__global__ void permuteAffineSplitKernel(const T* __restrict__ z, const T* __restrict__ scale, const T* __restrict__ shift,
                                         const int64_t* __restrict__ inv, T* __restrict__ x1, T* __restrict__ x2,
                                         int64_t B, int64_t C1, int64_t C2, int64_t S) {
  const int64_t C = C1 + C2;
  const bool bad = inv[C] != 0;
  // i runs over src = cat(x1, x2) as [B, C, S]
  INNFLOW_GRID_STRIDE(i, B * C * S) {
    const int64_t s = i % S, t = i / S, k = t % C, b = t / C;
    T* dst = k < C1 ? x1 + (b * C1 + k) * S + s : x2 + (b * C2 + k - C1) * S + s;
    if (bad) {
      *dst = nanValue<T>();
      continue;
    }
    const T w = z[(b * C + inv[C + 1 + k]) * S + s] - shift[k];
    *dst = scale ? w / scale[k] : w;
  }
}

template <class T>
__global__ void permuteAffineSplitBackwardKernel(const T* __restrict__ gx1, const T* __restrict__ gx2, const T* __restrict__ z,
                                                 const T* __restrict__ scale, const T* __restrict__ shift,
                                                 const int64_t* __restrict__ inv, T* __restrict__ gz, T* __restrict__ gscale,
                                                 T* __restrict__ gshift, int64_t B, int64_t C1, int64_t C2, int64_t S) {
  __shared__ double tree[kMaxThreads];
  const int64_t C = C1 + C2;
  const bool bad = inv[C] != 0;
  for (int64_t k = blockIdx.x; k < C; k += gridDim.x) {
    const int64_t j = bad ? 0 : inv[C + 1 + k];
    const T sh = shift[k], sc = scale ? scale[k] : T(1);
    const T rsc = T(1) / sc, sc2 = sc * sc;
    const T* g = k < C1 ? gx1 : gx2;
    double pSc = 0, pSh = 0;
    for (int64_t idx = threadIdx.x; idx < B * S; idx += blockDim.x) {
      const int64_t b = idx / S, s = idx % S;
      const int64_t at = k < C1 ? (b * C1 + k) * S + s : (b * C2 + k - C1) * S + s;
      const int64_t zi = (b * C + j) * S + s;
      const T gv = bad ? nanValue<T>() : g ? g[at] : T(0);
      const T gw = scale ? gv * rsc : gv;
      if (!bad) gz[zi] = gw;
      pSh += double(-gw);
      if (scale) pSc += double(gv * (-(z[zi] - sh) / sc2));
    }
    const double sumSc = blockSum(pSc, tree);
    const double sumSh = blockSum(pSh, tree);
    if (threadIdx.x == 0) {
      if (gscale) gscale[k] = T(sumSc);
      if (gshift) gshift[k] = T(sumSh);
    }
  }
}

// With a bad perm the backward above cannot place gz through inv: this fills it with NaN.
template <class T>
__global__ void nanFillKernel(const int64_t* __restrict__ inv, int64_t C, T* __restrict__ out, int64_t n) {
  if (inv[C] == 0) return;
  INNFLOW_GRID_STRIDE(i, n) out[i] = nanValue<T>();
}

int permuteAffineSplit(int dtype, const void* z, const void* scale, const void* shift, const void* perm, int indexDtype,
                       void* x1, void* x2, int64_t B, int64_t C1, int64_t C2, int64_t S) {
  const int64_t C = C1 + C2, total = B * C * S;
  if (total <= 0) return INNFLOW_CUDA_OK;
  Scratch inv;
  int rc = invertPerm(perm, indexDtype, C, inv, "permuteAffineSplit (perm)");
  if (rc != INNFLOW_CUDA_OK) return rc;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    permuteAffineSplitKernel<T><<<gridFor(total), kBlock, 0, stream()>>>(
        static_cast<const T*>(z), static_cast<const T*>(scale), static_cast<const T*>(shift), inv.as<int64_t>(),
        static_cast<T*>(x1), static_cast<T*>(x2), B, C1, C2, S);
    INNFLOW_LAUNCHED("permuteAffineSplit");
    return INNFLOW_CUDA_OK;
  });
}

int permuteAffineSplitBackward(int dtype, const void* gx1, const void* gx2, const void* z, const void* scale,
                               const void* shift, const void* perm, int indexDtype, void* gz, void* gscale, void* gshift,
                               int64_t B, int64_t C1, int64_t C2, int64_t S) {
  const int64_t C = C1 + C2;
  if (C <= 0) return INNFLOW_CUDA_OK;
  Scratch inv;
  int rc = invertPerm(perm, indexDtype, C, inv, "permuteAffineSplit backward (perm)");
  if (rc != INNFLOW_CUDA_OK) return rc;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    permuteAffineSplitBackwardKernel<T><<<blocksFor(C), threadsFor(B * S), 0, stream()>>>(
        static_cast<const T*>(gx1), static_cast<const T*>(gx2), static_cast<const T*>(z), static_cast<const T*>(scale),
        static_cast<const T*>(shift), inv.as<int64_t>(), static_cast<T*>(gz), static_cast<T*>(gscale),
        static_cast<T*>(gshift), B, C1, C2, S);
    INNFLOW_LAUNCHED("permuteAffineSplit backward");
    if (B * C * S > 0) {
      nanFillKernel<T><<<gridFor(B * C * S), kBlock, 0, stream()>>>(inv.as<int64_t>(), C, static_cast<T*>(gz), B * C * S);
      INNFLOW_LAUNCHED("permuteAffineSplit backward");
    }
    return INNFLOW_CUDA_OK;
  });
}

}  // namespace

extern "C" const InnflowCudaCoupling* innflow_cuda_coupling(void) {
  static const InnflowCudaCoupling table = {forward, backward, catAffinePermute, catAffinePermuteBackward, permuteAffineSplit,
                                                permuteAffineSplitBackward};
  return &table;
}

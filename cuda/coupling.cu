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

// The sum of v over the block (blockDim.x a power of two ≤ kMaxThreads), the same on every thread; a fixed tree.
__device__ inline double blockSum(double v, double* tree) {
  tree[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) tree[threadIdx.x] += tree[threadIdx.x + s];
    __syncthreads();
  }
  const double r = tree[0];
  __syncthreads();  // tree[0] is read before the next sum overwrites it
  return r;
}

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

}  // namespace

extern "C" const InnflowCudaCoupling* innflow_cuda_coupling(void) {
  static const InnflowCudaCoupling table = {forward, backward};
  return &table;
}

// ActNorm on the GPU: the device side of native/cpu/actnorm.cc (formulas there; table in cuda/actnorm.h).
//
// Forward: one grid-stride kernel for y (e^logScale recomputed per element from the channel's value) and a
// one-block kernel for the log-det (Σ_c logScale in double, a fixed tree). Backward: one thread block per
// channel, its threads striding over the channel's B·S values; gx is written on the way and the sums over
// (b, s) (and Σ_b gLogDet) are per-thread partial sums in double followed by a tree in shared memory:
// deterministic, no atomics.
#include "actnorm.h"
#include "common.cuh"

using namespace innflow_cuda;

namespace {

__device__ inline float mExp(float x) { return expf(x); }
__device__ inline double mExp(double x) { return exp(x); }

constexpr int kMaxThreads = 256;

// x, y: [B, C, S]; loc, logScale: [C]
template <class T>
__global__ void forwardKernel(const T* __restrict__ x, const T* __restrict__ loc, const T* __restrict__ logScale,
                              T* __restrict__ y, int64_t C, int64_t S, int64_t total, int rev) {
  INNFLOW_GRID_STRIDE(i, total) {
    const int64_t c = (i / S) % C;
    const T e = mExp(logScale[c]);
    y[i] = rev ? x[i] * e + loc[c] : (x[i] - loc[c]) / e;
  }
}

// logScale: [C] -> logDet: [B], every entry ∓S·Σ_c logScale_c (one block)
template <class T>
__global__ void logDetKernel(const T* __restrict__ logScale, T* __restrict__ logDet, int64_t B, int64_t C, T factor) {
  __shared__ double tree[kMaxThreads];
  double part = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) part += double(logScale[c]);
  const T v = T(blockSum(part, tree)) * factor;
  for (int64_t b = threadIdx.x; b < B; b += blockDim.x) logDet[b] = v;
}

// gy, x, gx: [B, C, S]; gLogDet: [B]; loc, logScale, gloc, glogScale: [C]. One block per channel.
template <class T>
__global__ void backwardKernel(const T* __restrict__ gy, const T* __restrict__ gLogDet, const T* __restrict__ x,
                               const T* __restrict__ loc, const T* __restrict__ logScale, T* __restrict__ gx,
                               T* __restrict__ gloc, T* __restrict__ glogScale, int64_t B, int64_t C, int64_t S,
                               T factor, int rev) {
  __shared__ double tree[kMaxThreads];
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const T e = mExp(logScale[c]), l = loc[c];
    double pg = 0, pl = 0, pd = 0;
    for (int64_t idx = threadIdx.x; idx < B * S; idx += blockDim.x) {
      const int64_t b = idx / S, s = idx % S;
      const int64_t i = (b * C + c) * S + s;
      if (!gy) {
        if (gx) gx[i] = T(0);  // as the CPU: zeros, not 0·e (NaN where e overflows)
        continue;
      }
      const T g = gy[i];
      if (rev) {
        if (gx) gx[i] = g * e;
        pg += double(g);
        pl += double(g * (x[i] * e));
      } else {
        const T ge = g / e;
        if (gx) gx[i] = ge;
        pg += double(ge);
        pl += double(g * ((x[i] - l) / e));
      }
    }
    if (gLogDet)
      for (int64_t b = threadIdx.x; b < B; b += blockDim.x) pd += double(gLogDet[b]);
    const double sg = blockSum(pg, tree);
    const double sl = blockSum(pl, tree);
    const double sd = blockSum(pd, tree);
    if (threadIdx.x == 0) {
      if (gloc) gloc[c] = rev ? T(sg) : T(-sg);
      if (glogScale) glogScale[c] = (rev ? T(sl) : T(-sl)) + T(sd) * factor;
    }
  }
}

int threadsFor(int64_t n) { return n >= 256 ? 256 : n >= 64 ? 64 : 32; }
unsigned blocksFor(int64_t rows) { return unsigned(rows < 65535LL * 8 ? rows : 65535LL * 8); }

int forward(int dtype, const void* x, const void* loc, const void* logScale, void* y, void* logDet, int64_t B, int64_t C,
            int64_t S, int rev) {
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    const int64_t total = B * C * S;
    if (total > 0) {
      forwardKernel<T><<<gridFor(total), kBlock, 0, stream()>>>(static_cast<const T*>(x), static_cast<const T*>(loc),
                                                                 static_cast<const T*>(logScale), static_cast<T*>(y), C,
                                                                 S, total, rev);
      INNFLOW_LAUNCHED("actnorm");
    }
    if (B > 0) {
      logDetKernel<T><<<1, kMaxThreads, 0, stream()>>>(static_cast<const T*>(logScale), static_cast<T*>(logDet), B, C,
                                                       T(rev ? double(S) : -double(S)));
      INNFLOW_LAUNCHED("actnorm (log-det)");
    }
    return INNFLOW_CUDA_OK;
  });
}

int backward(int dtype, const void* gy, const void* gLogDet, const void* x, const void* loc, const void* logScale,
             void* gx, void* gloc, void* glogScale, int64_t B, int64_t C, int64_t S, int rev) {
  if (C <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    backwardKernel<T><<<blocksFor(C), threadsFor(B * S > B ? B * S : B), 0, stream()>>>(
        static_cast<const T*>(gy), static_cast<const T*>(gLogDet), static_cast<const T*>(x), static_cast<const T*>(loc),
        static_cast<const T*>(logScale), static_cast<T*>(gx), static_cast<T*>(gloc), static_cast<T*>(glogScale), B, C, S,
        T(rev ? double(S) : -double(S)), rev);
    INNFLOW_LAUNCHED("actnorm backward");
    return INNFLOW_CUDA_OK;
  });
}

}  // namespace

extern "C" const InnflowCudaActNorm* innflow_cuda_actnorm(void) {
  static const InnflowCudaActNorm table = {forward, backward};
  return &table;
}

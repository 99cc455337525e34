// The Gaussian negative log-likelihood on the GPU: the device side of native/cpu/loss.cc (formulas there; table
// in cuda/loss.h).
//
// Forward: one thread block per sample (grid-stride over the samples) takes ½·Σ z² + (D/2)·log 2π − logJacDet
// in double into a scratch row, then one block sums the rows: each a per-thread partial sum in double followed by
// a tree in shared memory, deterministic, no atomics. Backward: one grid-stride kernel writes gz and gLogJacDet,
// reading g on the device.
#include "common.cuh"
#include "loss.h"

using namespace innflow_cuda;

namespace {

constexpr int kMaxThreads = 256;
constexpr double kLog2Pi = 1.8378770664093454835606594728112;  // log(2π)

// z: [B, D], logJacDet: [B] or NULL -> rows: [B] (double)
template <class T>
__global__ void rowKernel(const T* __restrict__ z, const T* __restrict__ logJacDet, double* __restrict__ rows, int64_t B,
                          int64_t D, double c) {
  __shared__ double tree[kMaxThreads];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    double part = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double v = double(z[b * D + j]);
      part += v * v;
    }
    const double q = blockSum(part, tree);
    if (threadIdx.x == 0) rows[b] = 0.5 * q + c - (logJacDet ? double(logJacDet[b]) : 0.0);
  }
}

// rows: [B] -> loss: [] = Σ rows / B (one block; B = 0 gives NaN, as the CPU)
template <class T>
__global__ void meanKernel(const double* __restrict__ rows, T* __restrict__ loss, int64_t B) {
  __shared__ double tree[kMaxThreads];
  double part = 0;
  for (int64_t b = threadIdx.x; b < B; b += blockDim.x) part += rows[b];
  const double total = blockSum(part, tree);
  if (threadIdx.x == 0) loss[0] = T(total / double(B));
}

// g: [] ; z, gz: [B·D]; gLogJacDet: [B]; i runs over max(B·D, B)
template <class T>
__global__ void backwardKernel(const T* __restrict__ g, const T* __restrict__ z, T* __restrict__ gz,
                               T* __restrict__ gLogJacDet, int64_t B, int64_t total, int64_t n) {
  const double s = double(g[0]) / double(B);
  const T sz = T(s);
  INNFLOW_GRID_STRIDE(i, n) {
    if (gz && i < total) gz[i] = z[i] * sz;
    if (gLogJacDet && i < B) gLogJacDet[i] = T(-s);
  }
}

int threadsFor(int64_t n) { return n >= 256 ? 256 : n >= 64 ? 64 : 32; }
unsigned blocksFor(int64_t rows) { return unsigned(rows < 65535LL * 8 ? rows : 65535LL * 8); }

int forward(int dtype, const void* z, const void* logJacDet, void* loss, int64_t B, int64_t D) {
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    Scratch rows;
    INNFLOW_STATUS_TRY(rows.alloc(size_t(B > 0 ? B : 1) * sizeof(double)));
    if (B > 0) {
      rowKernel<T><<<blocksFor(B), threadsFor(D), 0, stream()>>>(static_cast<const T*>(z), static_cast<const T*>(logJacDet),
                                                                 rows.as<double>(), B, D, 0.5 * double(D) * kLog2Pi);
      INNFLOW_LAUNCHED("gaussianNll");
    }
    meanKernel<T><<<1, kMaxThreads, 0, stream()>>>(rows.as<double>(), static_cast<T*>(loss), B);
    INNFLOW_LAUNCHED("gaussianNll (mean)");
    return INNFLOW_CUDA_OK;
  });
}

int backward(int dtype, const void* g, const void* z, void* gz, void* gLogJacDet, int64_t B, int64_t D) {
  const int64_t total = B * D, n = total > B ? total : B;
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    backwardKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(static_cast<const T*>(g), static_cast<const T*>(z),
                                                           static_cast<T*>(gz), static_cast<T*>(gLogJacDet), B, total, n);
    INNFLOW_LAUNCHED("gaussianNll backward");
    return INNFLOW_CUDA_OK;
  });
}

}  // namespace

extern "C" const InnflowCudaLoss* innflow_cuda_loss(void) {
  static const InnflowCudaLoss table = {forward, backward};
  return &table;
}

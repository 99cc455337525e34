// Counter-based random numbers on the GPU: the same Philox-4x32-10 and the same transforms as
// native/cpu/random.cc, one thread per block of four outputs.
//
// rand(y: [n], seed, firstBlock)   y[4b + k] = toUniform(philox(seed, firstBlock + b)[k])
// randn(y: [n], seed, firstBlock)  y[4b + k] = Box-Muller of the uniforms (k & ~1, k | 1) of block b
#include "common.cuh"
#include "philox.h"
#include "random.h"

using namespace innflow_cuda;

namespace {

using innflow_philox::philox;
using innflow_philox::toUniform;

// y: [n]; one thread per block of four outputs (the last block may be partial)
template <class T, bool Normal>
__global__ void randomKernel(T* y, int64_t n, uint64_t seed, uint64_t firstBlock) {
  const int64_t blocks = (n + 3) / 4;
  INNFLOW_GRID_STRIDE(b, blocks) {
    uint32_t r[4];
    philox(seed, firstBlock + uint64_t(b), r);
    double v[4];
    if (Normal) {
      for (int k = 0; k < 4; k += 2) {
        // __dmul_rn keeps the products unfused, as the host computes them
        double radius = sqrt(__dmul_rn(-2.0, log(toUniform(r[k]))));
        double angle = __dmul_rn(2.0 * M_PI, toUniform(r[k + 1]));
        v[k] = __dmul_rn(radius, cos(angle));
        v[k + 1] = __dmul_rn(radius, sin(angle));
      }
    } else {
      for (int k = 0; k < 4; k++) v[k] = toUniform(r[k]);
    }
    for (int k = 0; k < 4 && b * 4 + k < n; k++) y[b * 4 + k] = static_cast<T>(v[k]);
  }
}

template <bool Normal>
int draw(int dtype, void* y, int64_t n, uint64_t seed, uint64_t firstBlock) {
  if (n <= 0) return INNFLOW_CUDA_OK;
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    randomKernel<T, Normal><<<gridFor((n + 3) / 4), kBlock, 0, stream()>>>(static_cast<T*>(y), n, seed, firstBlock);
    INNFLOW_LAUNCHED(Normal ? "randn" : "rand");
    return INNFLOW_CUDA_OK;
  });
}

int randUniform(int dtype, void* y, int64_t n, uint64_t seed, uint64_t firstBlock) { return draw<false>(dtype, y, n, seed, firstBlock); }
int randNormal(int dtype, void* y, int64_t n, uint64_t seed, uint64_t firstBlock) { return draw<true>(dtype, y, n, seed, firstBlock); }

}  // namespace

extern "C" const InnflowCudaRandom* innflow_cuda_random(void) {
  static const InnflowCudaRandom table = {randUniform, randNormal};
  return &table;
}

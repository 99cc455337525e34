// Counter-based random numbers on the GPU: the same Philox-4x32-10 and the same transforms as
// native/cpu/random.cc, one thread per block of four outputs.
//
// rand(y: [n], seed, firstBlock)   y[4b + k] = toUniform(philox(seed, firstBlock + b)[k])
// randn(y: [n], seed, firstBlock)  y[4b + k] = Box-Muller of the uniforms (k & ~1, k | 1) of block b
#include "common.cuh"
#include "random.h"

using namespace innflow_cuda;

namespace {

__device__ inline void philoxRound(uint32_t ctr[4], const uint32_t key[2]) {
  const uint64_t p0 = uint64_t(0xD2511F53u) * ctr[0];
  const uint64_t p1 = uint64_t(0xCD9E8D57u) * ctr[2];
  uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
  uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
  uint32_t out0 = hi1 ^ ctr[1] ^ key[0], out2 = hi0 ^ ctr[3] ^ key[1];
  ctr[0] = out0;
  ctr[1] = lo1;
  ctr[2] = out2;
  ctr[3] = lo0;
}

// Ten rounds on the 128-bit counter (block, 0) with the seed as key (random.cc's philox).
__device__ inline void philox(uint64_t seed, uint64_t block, uint32_t out[4]) {
  uint32_t ctr[4] = {uint32_t(block), uint32_t(block >> 32), 0u, 0u};
  uint32_t key[2] = {uint32_t(seed), uint32_t(seed >> 32)};
  for (int r = 0; r < 10; r++) {
    philoxRound(ctr, key);
    if (r < 9) {
      key[0] += 0x9E3779B9u;
      key[1] += 0xBB67AE85u;
    }
  }
  for (int k = 0; k < 4; k++) out[k] = ctr[k];
}

// Exact in double (a 33-bit integer times a power of two), as on the CPU.
__device__ inline double toUniform(uint32_t x) { return (double(x) + 0.5) * (1.0 / 4294967296.0); }

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

// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the one generator behind
// rand/randn/randperm on both devices: native/cpu/random.cc and cuda/random.cu include this same code, so the CPU
// and the GPU draw the same bits for the same seed and counter.
//
// philox(seed, block) -> four 32-bit outputs of the counter (block, 0) under the key seed; toUniform maps one to
// (0, 1), exactly in double (a 33-bit integer times a power of two).
#pragma once
#include <stdint.h>

#if defined(__CUDACC__)
#define INNFLOW_HOST_DEVICE __host__ __device__
#else
#define INNFLOW_HOST_DEVICE
#endif

namespace innflow_philox {

INNFLOW_HOST_DEVICE inline void round(uint32_t ctr[4], const uint32_t key[2]) {
  const uint64_t p0 = uint64_t(0xD2511F53u) * ctr[0];
  const uint64_t p1 = uint64_t(0xCD9E8D57u) * ctr[2];
  const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
  const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
  const uint32_t out0 = hi1 ^ ctr[1] ^ key[0], out2 = hi0 ^ ctr[3] ^ key[1];
  ctr[0] = out0;
  ctr[1] = lo1;
  ctr[2] = out2;
  ctr[3] = lo0;
}

// Ten rounds on the 128-bit counter (block, 0) with the seed as key; the key is bumped between rounds.
INNFLOW_HOST_DEVICE inline void philox(uint64_t seed, uint64_t block, uint32_t out[4]) {
  uint32_t ctr[4] = {uint32_t(block), uint32_t(block >> 32), 0u, 0u};
  uint32_t key[2] = {uint32_t(seed), uint32_t(seed >> 32)};
  for (int r = 0; r < 10; r++) {
    round(ctr, key);
    if (r < 9) {
      key[0] += 0x9E3779B9u;
      key[1] += 0xBB67AE85u;
    }
  }
  for (int k = 0; k < 4; k++) out[k] = ctr[k];
}

INNFLOW_HOST_DEVICE inline double toUniform(uint32_t x) { return (double(x) + 0.5) * (1.0 / 4294967296.0); }

}  // namespace innflow_philox

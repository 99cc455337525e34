// The random family's table (cuda/random.cu), used by native/cpu/random.cc for CUDA tensors.
//
// The generator state (seed, offset) stays on the host in random.cc, which reserves ceil(n / 4) Philox blocks
// per draw exactly as for a CPU draw and passes the first block here; element i of a draw is output i % 4 of
// Philox-4x32-10 on block firstBlock + i / 4 with the seed as key, so a CUDA draw equals the CPU draw made at
// the same point of the stream.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // y: [n] of dtype; y[i] = U(0, 1) = (x + 0.5) / 2^32 with x the 32-bit output i (computed in double, as on
  // the CPU: bit-identical to it).
  int (*rand)(int dtype, void* y, int64_t n, uint64_t seed, uint64_t firstBlock);
  // y: [n] of dtype; Box-Muller on the uniform pairs (0, 1) and (2, 3) of each block, in double as on the CPU
  // (the device's log/sin/cos may differ from the host libm's by an ulp or two of double).
  int (*randn)(int dtype, void* y, int64_t n, uint64_t seed, uint64_t firstBlock);
} InnflowCudaRandom;

const InnflowCudaRandom* innflow_cuda_random(void);

#ifdef __cplusplus
}
#endif

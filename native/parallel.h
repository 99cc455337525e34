// One process-wide thread pool for the CPU kernels. Kernels split work with parallelFor; nested calls run inline.
#pragma once
#include <cstdint>
#include <functional>

namespace innflow {
void setNumThreads(int n);
int numThreads();
// Calls fn(begin, end) over [0, n) in contiguous chunks of at least `grain` items, on all threads.
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
}  // namespace innflow

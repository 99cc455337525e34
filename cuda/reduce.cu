// Sums over any set of dimensions on the GPU: the device side of native/cpu/reduce.cc (see cuda/reduce.h).
//
// sum(x: [groups...], groupReduced, scale) -> y: [kept groups...]
//
// Every output o sums R = Π(reduced group sizes) elements of x, in double (float32 and float64 alike, as the
// CPU does), and writes (T)(acc · scale). Three deterministic schemes, picked by R (no atomics, so the same
// inputs give the same bits):
//   R ≤ 16          one thread per output, summing in order;
//   R ≤ 4096        one warp per output: lanes stride over r, then a shuffle tree;
//   R > 4096        one block per (output, slice of ≤ 32768 elements): threads stride, a shared-memory tree;
//                   with more than one slice, a second kernel adds each output's slice sums in slice order.
#include "common.cuh"
#include "reduce.h"

using namespace innflow_cuda;

namespace {

// x's groups split into the kept ones (which index y) and the reduced ones, each with its element stride in x.
struct ReduceGeometry {
  int nKept, nRed;
  int64_t keptSize[INNFLOW_CUDA_MAX_DIMS], keptStride[INNFLOW_CUDA_MAX_DIMS];
  int64_t redSize[INNFLOW_CUDA_MAX_DIMS], redStride[INNFLOW_CUDA_MAX_DIMS];

  // offset in x of output o's first element
  __device__ int64_t keptOffset(int64_t o) const {
    int64_t off = 0;
    for (int g = nKept - 1; g >= 0; g--) {
      off += (o % keptSize[g]) * keptStride[g];
      o /= keptSize[g];
    }
    return off;
  }
  // offset of the r-th summed element relative to keptOffset
  __device__ int64_t redOffset(int64_t r) const {
    int64_t off = 0;
    for (int g = nRed - 1; g >= 0; g--) {
      off += (r % redSize[g]) * redStride[g];
      r /= redSize[g];
    }
    return off;
  }
};

constexpr int64_t kThreadMax = 16;    // R up to this: a thread per output
constexpr int64_t kWarpMax = 4096;    // R up to this: a warp per output
constexpr int64_t kSlice = 32768;     // elements per block in the block scheme
constexpr int64_t kMaxSlices = 1024;

// x: [groups], y: [nOut]; R summed elements per output, one thread each
template <class T>
__global__ void sumThreadKernel(const T* __restrict__ x, T* __restrict__ y, int64_t nOut, int64_t R, ReduceGeometry geo,
                                double scale) {
  INNFLOW_GRID_STRIDE(o, nOut) {
    const T* base = x + geo.keptOffset(o);
    double acc = 0;
    for (int64_t r = 0; r < R; r++) acc += double(base[geo.redOffset(r)]);
    y[o] = T(acc * scale);
  }
}

// x: [groups], y: [nOut]; one warp per output (blockDim.x a multiple of 32)
template <class T>
__global__ void sumWarpKernel(const T* __restrict__ x, T* __restrict__ y, int64_t nOut, int64_t R, ReduceGeometry geo,
                              double scale) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t o = warp; o < nOut; o += warps) {  // uniform across the warp: every lane reaches the shuffles
    const T* base = x + geo.keptOffset(o);
    double acc = 0;
    for (int64_t r = lane; r < R; r += 32) acc += double(base[geo.redOffset(r)]);
    for (int s = 16; s > 0; s >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, s);
    if (lane == 0) y[o] = T(acc * scale);
  }
}

// x: [groups]; work item w = o · slices + s sums output o's elements [s·sliceLen, min(R, (s+1)·sliceLen)).
// slices == 1: y[o] = (T)(sum · scale); otherwise partial[w] = sum (finished by sumSlicesKernel).
template <class T>
__global__ void sumBlockKernel(const T* __restrict__ x, T* __restrict__ y, double* __restrict__ partial, int64_t nOut,
                               int64_t R, int64_t slices, int64_t sliceLen, ReduceGeometry geo, double scale) {
  __shared__ double tree[kBlock];
  const int tid = threadIdx.x;
  for (int64_t w = blockIdx.x; w < nOut * slices; w += gridDim.x) {  // uniform across the block
    const int64_t o = w / slices, s = w % slices;
    const int64_t begin = s * sliceLen;
    const int64_t end = begin + sliceLen < R ? begin + sliceLen : R;
    const T* base = x + geo.keptOffset(o);
    double acc = 0;
    for (int64_t r = begin + tid; r < end; r += kBlock) acc += double(base[geo.redOffset(r)]);
    tree[tid] = acc;
    __syncthreads();
    for (int half = kBlock / 2; half > 0; half >>= 1) {
      if (tid < half) tree[tid] += tree[tid + half];
      __syncthreads();
    }
    if (tid == 0) {
      if (slices == 1) y[o] = T(tree[0] * scale);
      else partial[w] = tree[0];
    }
    __syncthreads();  // tree[0] is read before the next item overwrites it
  }
}

// partial: [nOut, slices], y: [nOut].  y[o] = (T)((Σ_s partial[o, s], in order) · scale)
template <class T>
__global__ void sumSlicesKernel(const double* __restrict__ partial, T* __restrict__ y, int64_t nOut, int64_t slices,
                                double scale) {
  INNFLOW_GRID_STRIDE(o, nOut) {
    double acc = 0;
    for (int64_t s = 0; s < slices; s++) acc += partial[o * slices + s];
    y[o] = T(acc * scale);
  }
}

int sum(int dtype, const void* x, void* y, const int64_t* groupSizes, const int* groupReduced, int groups, double scale) {
  if (groups < 0) return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "sum: negative group count %d", groups);
  ReduceGeometry geo{};
  int64_t stride = 1, nOut = 1, R = 1;
  // strides from the last group; kept and reduced groups listed in x's order
  int64_t strides[INNFLOW_CUDA_MAX_REDUCE_GROUPS];
  if (groups > INNFLOW_CUDA_MAX_REDUCE_GROUPS)
    return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "sum: %d groups of dimensions, at most %d on the GPU", groups,
                       INNFLOW_CUDA_MAX_REDUCE_GROUPS);
  for (int g = groups - 1; g >= 0; g--) {
    if (groupSizes[g] <= 0) return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "sum: group %d has size %lld", g, (long long)groupSizes[g]);
    strides[g] = stride;
    stride *= groupSizes[g];
  }
  for (int g = 0; g < groups; g++) {
    if (groupReduced[g]) {
      if (geo.nRed == INNFLOW_CUDA_MAX_DIMS)
        return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "sum: more than %d reduced groups", INNFLOW_CUDA_MAX_DIMS);
      geo.redSize[geo.nRed] = groupSizes[g];
      geo.redStride[geo.nRed++] = strides[g];
      R *= groupSizes[g];
    } else {
      if (geo.nKept == INNFLOW_CUDA_MAX_DIMS)
        return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "sum: more than %d kept groups", INNFLOW_CUDA_MAX_DIMS);
      geo.keptSize[geo.nKept] = groupSizes[g];
      geo.keptStride[geo.nKept++] = strides[g];
      nOut *= groupSizes[g];
    }
  }
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    if (R <= kThreadMax) {
      sumThreadKernel<T><<<gridFor(nOut), kBlock, 0, stream()>>>(xs, ys, nOut, R, geo, scale);
      INNFLOW_LAUNCHED("sum (thread per output)");
      return INNFLOW_CUDA_OK;
    }
    if (R <= kWarpMax) {
      sumWarpKernel<T><<<gridFor(nOut * 32), kBlock, 0, stream()>>>(xs, ys, nOut, R, geo, scale);
      INNFLOW_LAUNCHED("sum (warp per output)");
      return INNFLOW_CUDA_OK;
    }
    int64_t slices = (R + kSlice - 1) / kSlice;
    if (slices > kMaxSlices) slices = kMaxSlices;
    const int64_t sliceLen = (R + slices - 1) / slices;
    const int64_t items = nOut * slices;
    const unsigned blocks = items < 65535LL * 8 ? unsigned(items) : 65535u * 8u;
    if (slices == 1) {
      sumBlockKernel<T><<<blocks, kBlock, 0, stream()>>>(xs, ys, nullptr, nOut, R, 1, sliceLen, geo, scale);
      INNFLOW_LAUNCHED("sum (block per output)");
      return INNFLOW_CUDA_OK;
    }
    Scratch partial;
    INNFLOW_STATUS_TRY(partial.alloc(size_t(items) * sizeof(double)));
    sumBlockKernel<T><<<blocks, kBlock, 0, stream()>>>(xs, ys, partial.as<double>(), nOut, R, slices, sliceLen, geo, scale);
    INNFLOW_LAUNCHED("sum (block per slice)");
    sumSlicesKernel<T><<<gridFor(nOut), kBlock, 0, stream()>>>(partial.as<double>(), ys, nOut, slices, scale);
    INNFLOW_LAUNCHED("sum (slices)");
    return INNFLOW_CUDA_OK;
  });
}

}  // namespace

extern "C" const InnflowCudaReduce* innflow_cuda_reduce(void) {
  static const InnflowCudaReduce table = {sum};
  return &table;
}

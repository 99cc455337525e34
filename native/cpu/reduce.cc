// Reductions over any set of dimensions, forward and backward side by side.
//
// reduceSum(x: [*X], dims, keepdim, mean)        -> y: X without dims (or with them as 1)
// reduceSumBackward(g: [*Y], xShape, dims, mean) -> gx: [*X]   (g broadcast back, / count for the mean)
// sumToShape(g: [*G], target)                    -> [*target]  (the backward of broadcasting)
//
// float32 data is accumulated in double, so float32 sums agree with float64 ones to float32 rounding.
// CUDA tensors are summed by cuda/reduce.cu (also in double, deterministically: no atomics); sumToShape and
// sumDims, which the other families call, work on both devices.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../../cuda/reduce.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"
#include "kernels.h"

namespace innflow {
namespace {

// Dimensions merged into runs of "kept" or "reduced" ones: reducing dims {1,2} of (A,B,C,D) is the same as
// reducing the middle of (A, B·C, D).
struct Group {
  int64_t size;
  bool reduced;
};

std::vector<Group> coalesce(const Shape& shape, const std::vector<bool>& reduced) {
  std::vector<Group> groups;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;  // size-1 dims change nothing
    if (!groups.empty() && groups.back().reduced == reduced[d]) groups.back().size *= shape[d];
    else groups.push_back({shape[d], reduced[d]});
  }
  return groups;
}

template <class T>
void sumKernel(const T* x, T* y, const std::vector<Group>& groups, double scale) {
  // element strides of each group in x
  std::vector<int64_t> stride(groups.size());
  int64_t s = 1;
  for (int64_t g = int64_t(groups.size()) - 1; g >= 0; g--) {
    stride[g] = s;
    s *= groups[g].size;
  }
  const bool innerReduced = !groups.empty() && groups.back().reduced;
  const int64_t inner = groups.empty() ? 1 : groups.back().size;
  const size_t nOuter = groups.empty() ? 0 : groups.size() - 1;
  // offsets of every combination of the outer reduced groups, and the kept ones (in output order)
  std::vector<int64_t> redOffsets{0}, keptOffsets{0};
  for (size_t g = 0; g < nOuter; g++) {
    std::vector<int64_t>& list = groups[g].reduced ? redOffsets : keptOffsets;
    std::vector<int64_t> next;
    next.reserve(list.size() * groups[g].size);
    for (int64_t base : list)
      for (int64_t i = 0; i < groups[g].size; i++) next.push_back(base + i * stride[g]);
    list.swap(next);
  }
  const int64_t nKept = int64_t(keptOffsets.size());
  if (innerReduced) {
    // each output sums a contiguous run of `inner` for every outer reduced offset
    parallelFor(nKept, std::max<int64_t>(1, 8192 / std::max<int64_t>(inner * int64_t(redOffsets.size()), 1)),
                [&](int64_t b, int64_t e) {
                  for (int64_t o = b; o < e; o++) {
                    double acc = 0;
                    for (int64_t r : redOffsets) {
                      const T* p = x + keptOffsets[o] + r;
                      for (int64_t j = 0; j < inner; j++) acc += double(p[j]);
                    }
                    y[o] = T(acc * scale);
                  }
                });
  } else {
    // each output row of `inner` contiguous values accumulates rows of x
    const int64_t chunk = 256;
    const int64_t chunksPerRow = (inner + chunk - 1) / chunk;
    parallelFor(nKept * chunksPerRow, 1, [&](int64_t b, int64_t e) {
      double acc[chunk];
      for (int64_t w = b; w < e; w++) {
        int64_t o = w / chunksPerRow, c0 = (w % chunksPerRow) * chunk, len = std::min(chunk, inner - c0);
        std::fill_n(acc, len, 0.0);
        for (int64_t r : redOffsets) {
          const T* p = x + keptOffsets[o] + r + c0;
          for (int64_t j = 0; j < len; j++) acc[j] += double(p[j]);
        }
        T* q = y + o * inner + c0;
        for (int64_t j = 0; j < len; j++) q[j] = T(acc[j] * scale);
      }
    });
  }
}

std::vector<bool> reducedMask(const Shape& shape, const std::vector<int64_t>& dims, const char* op) {
  std::vector<bool> mask(shape.size(), false);
  for (int64_t d : dims) {
    if (d < 0 || d >= int64_t(shape.size()))
      fail("ERR_ARGUMENT", std::string(op) + ": dimension " + std::to_string(d) + " out of range for shape " + shapeString(shape));
    if (mask[d]) fail("ERR_ARGUMENT", std::string(op) + ": dimension " + std::to_string(d) + " given twice");
    mask[d] = true;
  }
  return mask;
}

Tensor reduceSum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool mean) {
  std::vector<bool> mask = reducedMask(x.shape, dims, mean ? "mean" : "sum");
  Shape out;
  int64_t count = 1;
  for (size_t d = 0; d < x.shape.size(); d++) {
    if (mask[d]) {
      count *= x.shape[d];
      if (keepdim) out.push_back(1);
    } else {
      out.push_back(x.shape[d]);
    }
  }
  Tensor y = emptyLike(out, x.dtype, x);
  if (y.numel() == 0) return y;
  if (x.numel() == 0) {  // an empty sum is 0, an empty mean 0/0 = NaN (as in PyTorch and NumPy)
    if (x.onCuda()) cudaFill(y.dtype, y.raw(), y.numel(), mean ? double(NAN) : 0.0);
    else INNFLOW_DISPATCH(y.dtype, T, { std::fill_n(y.data<T>(), y.numel(), mean ? T(NAN) : T(0)); });
    return y;
  }
  double scale = mean ? 1.0 / double(count) : 1.0;
  std::vector<Group> groups = coalesce(x.shape, mask);
  if (x.onCuda()) {
    const char* op = mean ? "mean" : "sum";
    if (groups.size() > INNFLOW_CUDA_MAX_REDUCE_GROUPS)
      fail("ERR_SHAPE", std::string(op) + ": reducing CUDA tensors supports at most " +
                            std::to_string(INNFLOW_CUDA_MAX_REDUCE_GROUPS) +
                            " alternating runs of kept and reduced dimensions, got shape " + shapeString(x.shape));
    std::vector<int64_t> sizes;
    std::vector<int> reducedFlags;
    for (const Group& g : groups) {
      sizes.push_back(g.size);
      reducedFlags.push_back(g.reduced ? 1 : 0);
    }
    cudaCheck(cudaTable<InnflowCudaReduce>("innflow_cuda_reduce")
                  .sum(cudaDtype(x.dtype), x.raw(), y.raw(), sizes.data(), reducedFlags.data(), int(groups.size()), scale),
              op);
    return y;
  }
  INNFLOW_DISPATCH(x.dtype, T, { sumKernel<T>(x.data<T>(), y.data<T>(), groups, scale); });
  return y;
}

std::vector<int64_t> dimsArg(const Napi::CallbackInfo& info, size_t i) {
  std::vector<int64_t> dims = intListArg(info, i, "dims");
  std::sort(dims.begin(), dims.end());
  return dims;
}

Napi::Value ReduceSum(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  std::vector<int64_t> dims = dimsArg(info, 1);
  bool keepdim = boolArg(info, 2, "keepdim");
  bool mean = boolArg(info, 3, "mean");
  return wrap(info.Env(), reduceSum(x, dims, keepdim, mean));
}

Napi::Value ReduceSumBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  Shape xShape = shapeArg(info, 1, "xShape");
  std::vector<int64_t> dims = dimsArg(info, 2);
  bool mean = boolArg(info, 3, "mean");
  std::vector<bool> mask = reducedMask(xShape, dims, "sum backward");
  Shape kept;  // g's shape with the reduced dims as 1
  int64_t count = 1;
  for (size_t d = 0; d < xShape.size(); d++) {
    kept.push_back(mask[d] ? 1 : xShape[d]);
    if (mask[d]) count *= xShape[d];
  }
  if (numelOf(kept) != g.numel())
    fail("ERR_SHAPE", "sum backward: gradient shape " + shapeString(g.shape) + " does not match " + shapeString(kept));
  Tensor gk = g;
  gk.shape = kept;
  return wrap(info.Env(), expandTo(gk, xShape, mean ? 1.0 / double(count) : 1.0));
}

Napi::Value SumToShape(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  Shape target = shapeArg(info, 1, "target");
  return wrap(info.Env(), sumToShape(g, target));
}

}  // namespace

Tensor sumDims(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return reduceSum(x, dims, keepdim, false); }

Tensor sumToShape(const Tensor& g, const Shape& target) {
  if (target.size() > g.shape.size())
    fail("ERR_SHAPE", "cannot reduce shape " + shapeString(g.shape) + " to " + shapeString(target));
  size_t lead = g.shape.size() - target.size();
  std::vector<int64_t> dims;
  for (size_t d = 0; d < g.shape.size(); d++) {
    if (d < lead) dims.push_back(int64_t(d));
    else if (target[d - lead] == 1 && g.shape[d] != 1) dims.push_back(int64_t(d));
    else if (target[d - lead] != g.shape[d])
      fail("ERR_SHAPE", "cannot reduce shape " + shapeString(g.shape) + " to " + shapeString(target));
  }
  Tensor out = reduceSum(g, dims, true, false);
  out.shape = target;
  return out;
}

void registerReduce(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "reduceSum", ReduceSum);
  defineFunction(env, exports, "reduceSumBackward", ReduceSumBackward);
  defineFunction(env, exports, "sumToShape", SumToShape);
}

}  // namespace innflow

// Reductions over any set of dimensions, forward and backward side by side.
//
// reduceSum(x: [*X], dims, keepdim, mean)        -> y: X without dims (or with them as 1)
// reduceSumBackward(g: [*Y], xShape, dims, mean) -> gx: [*X]   (g broadcast back, / count for the mean)
// sumToShape(g: [*G], target)                    -> [*target]  (the backward of broadcasting)
//
// float32 data is accumulated in double, so float32 sums agree with float64 ones to float32 rounding.
// CUDA tensors are summed by cuda/reduce.cu (also in double, deterministically: no atomics); sumToShape and
// sumDims, which the other families call, work on both devices. Each entry point allocates its result and
// runs its kernel through launch() (capture.h), so that a compiled step replays it; the planSum*/sumInto
// halves (kernels.h) let other families do the same with the sums they need.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../../cuda/reduce.h"
#include "../capture.h"
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
void sumKernel(const T* x, T* y, const std::vector<int64_t>& sizes, const std::vector<int>& reduced, double scale) {
  const size_t nGroups = sizes.size();
  // element strides of each group in x
  std::vector<int64_t> stride(nGroups);
  int64_t s = 1;
  for (int64_t g = int64_t(nGroups) - 1; g >= 0; g--) {
    stride[g] = s;
    s *= sizes[g];
  }
  const bool innerReduced = nGroups > 0 && reduced.back();
  const int64_t inner = nGroups == 0 ? 1 : sizes.back();
  const size_t nOuter = nGroups == 0 ? 0 : nGroups - 1;
  // offsets of every combination of the outer reduced groups, and the kept ones (in output order)
  std::vector<int64_t> redOffsets{0}, keptOffsets{0};
  for (size_t g = 0; g < nOuter; g++) {
    std::vector<int64_t>& list = reduced[g] ? redOffsets : keptOffsets;
    std::vector<int64_t> next;
    next.reserve(list.size() * sizes[g]);
    for (int64_t base : list)
      for (int64_t i = 0; i < sizes[g]; i++) next.push_back(base + i * stride[g]);
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
  SumPlan plan = planSumDims(x.shape, dims, keepdim, mean, x.device());
  Tensor y = emptyLike(plan.out, x.dtype, x);
  launch(x.device(), [=, plan = std::move(plan)] { sumInto(x, y, plan); });
  return wrap(info.Env(), std::move(y));
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
  ExpandPlan plan = planExpand(kept, xShape, mean ? 1.0 / double(count) : 1.0, g.device());
  Tensor gx = emptyLike(xShape, g.dtype, g);
  launch(g.device(), [=, plan = std::move(plan)] { expandInto(gk, gx, plan); });
  return wrap(info.Env(), std::move(gx));
}

Napi::Value SumToShape(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  Shape target = shapeArg(info, 1, "target");
  SumPlan plan = planSumToShape(g.shape, target, g.device());
  Tensor y = emptyLike(target, g.dtype, g);
  launch(g.device(), [=, plan = std::move(plan)] { sumInto(g, y, plan); });
  return wrap(info.Env(), std::move(y));
}

}  // namespace

SumPlan planSumDims(const Shape& x, const std::vector<int64_t>& dims, bool keepdim, bool mean, Device device) {
  const char* op = mean ? "mean" : "sum";
  std::vector<bool> mask = reducedMask(x, dims, op);
  SumPlan p;
  p.mean = mean;
  int64_t count = 1;
  for (size_t d = 0; d < x.size(); d++) {
    if (mask[d]) {
      count *= x[d];
      if (keepdim) p.out.push_back(1);
    } else {
      p.out.push_back(x[d]);
    }
  }
  p.scale = mean ? 1.0 / double(count) : 1.0;
  for (const Group& g : coalesce(x, mask)) {
    p.sizes.push_back(g.size);
    p.reduced.push_back(g.reduced ? 1 : 0);
  }
  if (device == Device::CUDA && numelOf(x) > 0 && numelOf(p.out) > 0 && p.sizes.size() > INNFLOW_CUDA_MAX_REDUCE_GROUPS)
    fail("ERR_SHAPE", std::string(op) + ": reducing CUDA tensors supports at most " + std::to_string(INNFLOW_CUDA_MAX_REDUCE_GROUPS) +
                          " alternating runs of kept and reduced dimensions, got shape " + shapeString(x));
  return p;
}

SumPlan planSumToShape(const Shape& g, const Shape& target, Device device) {
  if (target.size() > g.size()) fail("ERR_SHAPE", "cannot reduce shape " + shapeString(g) + " to " + shapeString(target));
  size_t lead = g.size() - target.size();
  std::vector<int64_t> dims;
  for (size_t d = 0; d < g.size(); d++) {
    if (d < lead) dims.push_back(int64_t(d));
    else if (target[d - lead] == 1 && g[d] != 1) dims.push_back(int64_t(d));
    else if (target[d - lead] != g[d])
      fail("ERR_SHAPE", "cannot reduce shape " + shapeString(g) + " to " + shapeString(target));
  }
  SumPlan p = planSumDims(g, dims, true, false, device);
  p.out = target;
  return p;
}

void sumInto(const Tensor& x, const Tensor& y, const SumPlan& p) {
  const int64_t n = y.numel();
  if (n == 0) return;
  if (x.numel() == 0) {  // an empty sum is 0, an empty mean 0/0 = NaN (as in PyTorch and NumPy)
    if (y.onCuda()) cudaFill(y.dtype, y.raw(), n, p.mean ? double(NAN) : 0.0);
    else INNFLOW_DISPATCH(y.dtype, T, { std::fill_n(y.data<T>(), n, p.mean ? T(NAN) : T(0)); });
    return;
  }
  if (x.onCuda()) {
    cudaCheck(cudaTable<InnflowCudaReduce>("innflow_cuda_reduce")
                  .sum(cudaDtype(x.dtype), x.raw(), y.raw(), p.sizes.data(), p.reduced.data(), int(p.sizes.size()), p.scale),
              p.mean ? "mean" : "sum");
    return;
  }
  INNFLOW_DISPATCH(x.dtype, T, { sumKernel<T>(x.data<T>(), y.data<T>(), p.sizes, p.reduced, p.scale); });
}

Tensor sumDims(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  SumPlan p = planSumDims(x.shape, dims, keepdim, false, x.device());
  Tensor y = emptyLike(p.out, x.dtype, x);
  sumInto(x, y, p);
  return y;
}

Tensor sumToShape(const Tensor& g, const Shape& target) {
  SumPlan p = planSumToShape(g.shape, target, g.device());
  Tensor y = emptyLike(target, g.dtype, g);
  sumInto(g, y, p);
  return y;
}

void registerReduce(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "reduceSum", ReduceSum);
  defineFunction(env, exports, "reduceSumBackward", ReduceSumBackward);
  defineFunction(env, exports, "sumToShape", SumToShape);
}

}  // namespace innflow

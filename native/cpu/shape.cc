// Shape ops that move data (copies into new contiguous tensors), forward and backward side by side.
//
// permute(x: [*X], dims)                         -> y: [X[dims[0]], X[dims[1]], ...]
// permuteBackward(g: [*Y], dims)                 -> gx: g permuted by the inverse of dims
// narrow(x: [.., S, ..], dim, start, length)     -> y: [.., length, ..]      (y = x[.., start:start+length, ..])
// narrowBackward(g: [.., L, ..], xShape, dim, start) -> gx: [*xShape]       (g placed at start, zeros elsewhere)
// cat(xs: [.., S_i, ..][], dim)                  -> y: [.., ΣS_i, ..]
// catBackward(g: [.., ΣS_i, ..], sizes, dim, need: bool[]) -> [g_i: [.., S_i, ..] | null]
// split(x: [.., ΣS_i, ..], sizes, dim)           -> [y_i: [.., S_i, ..]]
// splitBackward(gs: ([.., S_i, ..] | null)[], xShape, sizes, dim, dtype) -> gx: [*xShape]  (null pieces = zeros)
// indexSelect(x: [.., S, ..], dim, index: [N] | number[])     -> y: [.., N, ..]     (y[.., k, ..] = x[.., index[k], ..])
// indexSelectBackward(g: [.., N, ..], xShape, dim, index)     -> gx: [*xShape]      (scatter-add of g)
// gather(x: [*X], dim, index: [*I])              -> y: [*I]   (y[i] = x[i with i[dim] replaced by index[i]])
// gatherBackward(g: [*I], xShape, dim, index)    -> gx: [*xShape]  (scatter-add of g)
//
// An index is a float32 or float64 tensor (of any dtype relative to x) or a JavaScript number[]; its values
// must be integers in [0, size of dim). Every index is checked before anything is written, so a bad one throws
// ERR_ARGUMENT and never reads or writes out of bounds.
//
// CUDA tensors run the kernels of cuda/shape.cu. Every tensor argument must be on x's device (ERR_DEVICE). An
// index TENSOR on the GPU is not read on the host (that would synchronise): its values are checked inside the
// kernels, which write NaN where an index is bad instead of throwing (see cuda/shape.h). An index given as a
// number[] is checked on the host as on the CPU, then copied to the device.
//
// Every entry point allocates its results, then runs its kernel through launch() (capture.h) so that a
// compiled step replays it; scatter-adds zero their result inside the kernel, at every replay. On the CPU a
// replay reads an index tensor's values again (they may have changed in place) and checks them again:
// ERR_ARGUMENT from the replay if one is bad.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "../../cuda/shape.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"
#include "../tensor_handle.h"
#include "kernels.h"

namespace innflow {
namespace {

// Elements per parallel chunk: below this a copy is cheaper than waking the pool.
constexpr int64_t kGrain = 16384;

// A tensor seen as [outer, size, inner] around one dimension: every op here moves whole `inner` runs.
struct Around {
  int64_t outer = 1, size = 1, inner = 1;
};
Around around(const Shape& s, int64_t dim) {
  Around a;
  for (int64_t d = 0; d < int64_t(s.size()); d++) {
    if (d < dim) a.outer *= s[d];
    else if (d == dim) a.size = s[d];
    else a.inner *= s[d];
  }
  return a;
}

const InnflowCudaShape& cudaShape() { return cudaTable<InnflowCudaShape>("innflow_cuda_shape"); }

int64_t checkDim(const char* op, int64_t dim, size_t ndim) {
  if (dim < 0 || dim >= int64_t(std::max<size_t>(ndim, 1)))
    fail("ERR_ARGUMENT", std::string(op) + ": dimension " + std::to_string(dim) + " out of range for " + std::to_string(ndim) + " dimensions");
  return dim;
}

// Copies `rows` runs of `len` elements of width `elem` bytes: run r goes from src + r·srcStride to
// dst + r·dstStride (strides in elements). The workhorse of narrow, cat and split.
void copyRuns(const char* src, int64_t srcStride, char* dst, int64_t dstStride, int64_t rows, int64_t len, size_t elem) {
  if (rows == 0 || len == 0) return;
  parallelFor(rows, std::max<int64_t>(1, kGrain / len), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) std::memcpy(dst + size_t(r * dstStride) * elem, src + size_t(r * srcStride) * elem, size_t(len) * elem);
  });
}

// copyRuns for either device (src and dst on the device of `onCuda`; strides in elements).
void copyRunsOn(bool onCuda, DType dtype, const char* src, int64_t srcStride, char* dst, int64_t dstStride, int64_t rows, int64_t len,
                const char* op) {
  if (onCuda) cudaCheck(cudaShape().copyRows(cudaDtype(dtype), src, srcStride, dst, dstStride, rows, len), op);
  else copyRuns(src, srcStride, dst, dstStride, rows, len, dtypeSize(dtype));
}

// Zeroes t (inside a kept kernel, so that every replay starts from zeros again).
void zeroFill(const Tensor& t) {
  if (t.onCuda()) cudaFill(t.dtype, t.raw(), t.numel(), 0.0);
  else std::memset(t.raw(), 0, size_t(t.numel()) * dtypeSize(t.dtype));
}

// ------------------------------------------------------------------------------------------------ permute

// Output dimensions after dropping size-1 ones and merging neighbours that are also neighbours in x, so a
// permute that only moves size-1 dims becomes a plain copy and (A,B,C)->(C,A,B) becomes a 2-D transpose.
struct StridedDims {
  std::vector<int64_t> size, inStride;
};
StridedDims coalescePermute(const Shape& outShape, const std::vector<int64_t>& inStride) {
  StridedDims c;
  for (size_t d = 0; d < outShape.size(); d++) {
    if (outShape[d] == 1) continue;
    if (!c.size.empty() && c.inStride.back() == inStride[d] * outShape[d]) {
      c.size.back() *= outShape[d];
      c.inStride.back() = inStride[d];
    } else {
      c.size.push_back(outShape[d]);
      c.inStride.push_back(inStride[d]);
    }
  }
  return c;
}

// y (contiguous, shape c.size) = x read with strides c.inStride.
template <class T>
void stridedCopy(const T* x, T* y, const StridedDims& c) {
  const int64_t k = int64_t(c.size.size());
  if (k == 0) {
    y[0] = x[0];
    return;
  }
  int64_t n = 1;
  for (int64_t s : c.size) n *= s;
  const int64_t last = k - 1;
  if (c.inStride[last] == 1) {
    // innermost runs are contiguous in x too: copy rows, walking the outer index with a carry
    const int64_t len = c.size[last], rows = n / len;
    parallelFor(rows, std::max<int64_t>(1, kGrain / len), [&](int64_t b, int64_t e) {
      std::vector<int64_t> idx(size_t(k), 0);
      int64_t off = 0, rem = b;
      for (int64_t d = last - 1; d >= 0; d--) {
        idx[d] = rem % c.size[d];
        rem /= c.size[d];
        off += idx[d] * c.inStride[d];
      }
      for (int64_t r = b; r < e; r++) {
        std::memcpy(y + r * len, x + off, size_t(len) * sizeof(T));
        for (int64_t d = last - 1; d >= 0; d--) {
          off += c.inStride[d];
          if (++idx[d] < c.size[d]) break;
          off -= c.inStride[d] * c.size[d];
          idx[d] = 0;
        }
      }
    });
    return;
  }
  // A transpose between output dim j (contiguous in x) and the last output dim (contiguous in y): copy in
  // square tiles so that both the reads and the writes of a tile stay in cache.
  int64_t j = 0;
  while (c.inStride[j] != 1) j++;  // exists: x's innermost non-1 dimension has stride 1
  std::vector<int64_t> outStride(static_cast<size_t>(k));
  for (int64_t d = last, s = 1; d >= 0; d--) {
    outStride[d] = s;
    s *= c.size[d];
  }
  std::vector<int64_t> bSize, bIn, bOut;  // the remaining ("batch") dimensions
  for (int64_t d = 0; d < k; d++)
    if (d != j && d != last) {
      bSize.push_back(c.size[d]);
      bIn.push_back(c.inStride[d]);
      bOut.push_back(outStride[d]);
    }
  constexpr int64_t kTile = 16;  // a tile row is one 64-byte line of float32; larger tiles conflict in cache sets on power-of-two strides
  const int64_t sj = c.size[j], sl = c.size[last], xl = c.inStride[last], yj = outStride[j];
  const int64_t tj = (sj + kTile - 1) / kTile, tl = (sl + kTile - 1) / kTile;
  const int64_t batches = n / (sj * sl), items = batches * tj * tl;
  parallelFor(items, std::max<int64_t>(1, kGrain / (kTile * kTile)), [&](int64_t b, int64_t e) {
    for (int64_t w = b; w < e; w++) {
      int64_t batch = w / (tj * tl), t = w % (tj * tl);
      int64_t j0 = (t / tl) * kTile, l0 = (t % tl) * kTile;
      int64_t xo = 0, yo = 0;
      for (int64_t d = int64_t(bSize.size()) - 1; d >= 0; d--) {
        int64_t i = batch % bSize[d];
        batch /= bSize[d];
        xo += i * bIn[d];
        yo += i * bOut[d];
      }
      const int64_t j1 = std::min(sj, j0 + kTile), l1 = std::min(sl, l0 + kTile);
      for (int64_t jj = j0; jj < j1; jj++) {
        const T* src = x + xo + jj;
        T* dst = y + yo + jj * yj;
        for (int64_t ll = l0; ll < l1; ll++) dst[ll] = src[ll * xl];
      }
    }
  });
}

std::vector<int64_t> permutationArg(const Napi::CallbackInfo& info, size_t i, size_t ndim, const char* op) {
  std::vector<int64_t> dims = intListArg(info, i, "dims");
  std::vector<bool> seen(ndim, false);
  bool ok = dims.size() == ndim;
  for (int64_t d : dims) {
    if (!ok) break;
    if (d < 0 || d >= int64_t(ndim) || seen[d]) ok = false;
    else seen[d] = true;
  }
  if (!ok) fail("ERR_ARGUMENT", std::string(op) + ": dims must be a permutation of 0.." + std::to_string(int64_t(ndim) - 1));
  return dims;
}

Tensor permuteCompute(const Tensor& x, const std::vector<int64_t>& dims) {
  std::vector<int64_t> xStride(x.shape.size());
  for (int64_t d = x.dim() - 1, s = 1; d >= 0; d--) {
    xStride[d] = s;
    s *= x.shape[d];
  }
  Shape outShape(dims.size());
  std::vector<int64_t> inStride(dims.size());
  for (size_t i = 0; i < dims.size(); i++) {
    outShape[i] = x.shape[dims[i]];
    inStride[i] = xStride[dims[i]];
  }
  Tensor y = emptyLike(outShape, x.dtype, x);
  if (y.numel() == 0) return y;
  StridedDims c = coalescePermute(outShape, inStride);
  if (x.onCuda()) {
    if (c.size.size() > INNFLOW_CUDA_MAX_DIMS)
      fail("ERR_SHAPE", "permute: on CUDA at most " + std::to_string(INNFLOW_CUDA_MAX_DIMS) + " dimensions remain after merging, got " +
                            std::to_string(c.size.size()) + " (shape " + shapeString(x.shape) + ")");
    launch(x.device(), [=] {
      cudaCheck(cudaShape().permute(cudaDtype(x.dtype), x.raw(), y.raw(), c.size.data(), c.inStride.data(), int(c.size.size())), "permute");
    });
    return y;
  }
  launch(x.device(), [=] { INNFLOW_DISPATCH(x.dtype, T, { stridedCopy<T>(x.data<T>(), y.data<T>(), c); }); });
  return y;
}

Napi::Value Permute(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  std::vector<int64_t> dims = permutationArg(info, 1, x.shape.size(), "permute");
  return wrap(info.Env(), permuteCompute(x, dims));
}

// The gradient of y = permute(x, dims) is g permuted back: output dim i of the forward is x's dim dims[i].
Napi::Value PermuteBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  std::vector<int64_t> dims = permutationArg(info, 1, g.shape.size(), "permute backward");
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); i++) inverse[dims[i]] = int64_t(i);
  return wrap(info.Env(), permuteCompute(g, inverse));
}

// ------------------------------------------------------------------------------------------------ narrow

void checkRange(const char* op, const Shape& s, int64_t dim, int64_t start, int64_t length) {
  if (start < 0 || length < 0 || start + length > s[dim])
    fail("ERR_ARGUMENT", std::string(op) + ": range [" + std::to_string(start) + ", " + std::to_string(start + length) +
                             ") does not fit dimension " + std::to_string(dim) + " of shape " + shapeString(s));
}

Napi::Value Narrow(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  if (x.dim() == 0) fail("ERR_SHAPE", "narrow: x must have at least one dimension");
  int64_t dim = checkDim("narrow", intArg(info, 1, "dim"), x.shape.size());
  int64_t start = intArg(info, 2, "start"), length = intArg(info, 3, "length");
  checkRange("narrow", x.shape, dim, start, length);
  Shape outShape = x.shape;
  outShape[dim] = length;
  Tensor y = emptyLike(outShape, x.dtype, x);
  Around a = around(x.shape, dim);
  size_t elem = dtypeSize(x.dtype);
  launch(x.device(), [=] {
    copyRunsOn(x.onCuda(), x.dtype, static_cast<const char*>(x.raw()) + size_t(start * a.inner) * elem, a.size * a.inner,
               static_cast<char*>(y.raw()), length * a.inner, a.outer, length * a.inner, "narrow");
  });
  return wrap(info.Env(), std::move(y));
}

Napi::Value NarrowBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  Shape xShape = shapeArg(info, 1, "xShape");
  if (xShape.empty()) fail("ERR_SHAPE", "narrow backward: x must have at least one dimension");
  int64_t dim = checkDim("narrow backward", intArg(info, 2, "dim"), xShape.size());
  int64_t start = intArg(info, 3, "start");
  if (g.shape.size() != xShape.size()) fail("ERR_SHAPE", "narrow backward: gradient " + shapeString(g.shape) + " does not fit " + shapeString(xShape));
  const int64_t length = g.shape[dim];
  for (size_t d = 0; d < xShape.size(); d++)
    if (int64_t(d) != dim && g.shape[d] != xShape[d])
      fail("ERR_SHAPE", "narrow backward: gradient " + shapeString(g.shape) + " does not fit " + shapeString(xShape));
  checkRange("narrow backward", xShape, dim, start, length);
  Tensor gx = emptyLike(xShape, g.dtype, g);
  Around a = around(xShape, dim);
  size_t elem = dtypeSize(g.dtype);
  launch(g.device(), [=] {
    zeroFill(gx);
    copyRunsOn(g.onCuda(), g.dtype, static_cast<const char*>(g.raw()), length * a.inner,
               static_cast<char*>(gx.raw()) + size_t(start * a.inner) * elem, a.size * a.inner, a.outer, length * a.inner,
               "narrow backward");
  });
  return wrap(info.Env(), std::move(gx));
}

// ------------------------------------------------------------------------------------------------ cat / split

// The piece shapes of a split of `whole` along dim, checking that sizes fill it.
void checkSizes(const char* op, const Shape& whole, int64_t dim, const std::vector<int64_t>& sizes) {
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) fail("ERR_ARGUMENT", std::string(op) + ": sizes must be non-negative");
    total += s;
  }
  if (total != whole[dim])
    fail("ERR_ARGUMENT", std::string(op) + ": sizes sum to " + std::to_string(total) + " but dimension " + std::to_string(dim) +
                             " of shape " + shapeString(whole) + " has " + std::to_string(whole[dim]));
}

// Concatenates pieces along dim into a tensor of shape `outShape` on `device`; a missing piece (present[p]
// false) contributes zeros.
Tensor joinPieces(const std::vector<Tensor>& pieces, const std::vector<bool>& present, const std::vector<int64_t>& sizes,
                  const Shape& outShape, int64_t dim, DType dtype, Device device, const char* op) {
  Tensor y = emptyTensor(outShape, dtype, device);
  if (y.numel() == 0) return y;
  Around a = around(outShape, dim);
  const int64_t P = int64_t(pieces.size());
  std::vector<int64_t> offset(P + 1, 0);  // element offset of each piece inside an output row
  for (int64_t p = 0; p < P; p++) offset[p + 1] = offset[p] + sizes[p] * a.inner;
  launch(device, [=] {
    const size_t elem = dtypeSize(dtype);
    const int64_t rowLen = offset[P];
    char* dst = static_cast<char*>(y.raw());
    if (device == Device::CUDA) {
      // one row copy per piece (zeros first when a piece is missing)
      if (std::find(present.begin(), present.end(), false) != present.end()) cudaFill(dtype, y.raw(), y.numel(), 0.0);
      for (int64_t p = 0; p < P; p++) {
        const int64_t len = offset[p + 1] - offset[p];
        if (present[p])
          copyRunsOn(true, dtype, static_cast<const char*>(pieces[p].raw()), len, dst + size_t(offset[p]) * elem, rowLen, a.outer, len, op);
      }
      return;
    }
    // one work item per (outer row, piece): a single pass over the pool, however many pieces there are
    parallelFor(a.outer * P, std::max<int64_t>(1, kGrain * P / std::max<int64_t>(rowLen, 1)), [&](int64_t b, int64_t e) {
      for (int64_t w = b; w < e; w++) {
        int64_t o = w / P, p = w % P, len = offset[p + 1] - offset[p];
        char* d = dst + size_t(o * rowLen + offset[p]) * elem;
        if (present[p]) std::memcpy(d, static_cast<const char*>(pieces[p].raw()) + size_t(o * len) * elem, size_t(len) * elem);
        else std::memset(d, 0, size_t(len) * elem);
      }
    });
  });
  return y;
}

// Cuts x along dim into pieces of the given sizes; pieces with need[p] == false are not made.
std::vector<Tensor> cutPieces(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim, const std::vector<bool>& need, const char* op) {
  const int64_t P = int64_t(sizes.size());
  std::vector<Tensor> out(P);
  Around a = around(x.shape, dim);
  std::vector<int64_t> offset(P + 1, 0);
  for (int64_t p = 0; p < P; p++) offset[p + 1] = offset[p] + sizes[p] * a.inner;
  for (int64_t p = 0; p < P; p++) {
    if (!need[p]) continue;
    Shape s = x.shape;
    s[dim] = sizes[p];
    out[p] = emptyLike(s, x.dtype, x);
  }
  if (x.numel() == 0) return out;
  launch(x.device(), [=] {
    const int64_t rowLen = offset[P];
    const size_t elem = dtypeSize(x.dtype);
    const char* src = static_cast<const char*>(x.raw());
    if (x.onCuda()) {
      for (int64_t p = 0; p < P; p++) {
        const int64_t len = offset[p + 1] - offset[p];
        if (need[p])
          copyRunsOn(true, x.dtype, src + size_t(offset[p]) * elem, rowLen, static_cast<char*>(out[p].raw()), len, a.outer, len, op);
      }
      return;
    }
    parallelFor(a.outer * P, std::max<int64_t>(1, kGrain * P / std::max<int64_t>(rowLen, 1)), [&](int64_t b, int64_t e) {
      for (int64_t w = b; w < e; w++) {
        int64_t o = w / P, p = w % P, len = offset[p + 1] - offset[p];
        if (!need[p] || len == 0) continue;
        std::memcpy(static_cast<char*>(out[p].raw()) + size_t(o * len) * elem, src + size_t(o * rowLen + offset[p]) * elem, size_t(len) * elem);
      }
    });
  });
  return out;
}

Napi::Value piecesToJs(Napi::Env env, const std::vector<Tensor>& pieces, const std::vector<bool>& need) {
  Napi::Array arr = Napi::Array::New(env, pieces.size());
  for (size_t p = 0; p < pieces.size(); p++) arr.Set(uint32_t(p), need[p] ? wrap(env, pieces[p]) : env.Null());
  return arr;
}

Napi::Value Cat(const Napi::CallbackInfo& info) {
  std::vector<Tensor> xs = tensorListArg(info, 0, "tensors");
  if (xs.empty()) fail("ERR_ARGUMENT", "cat: expected at least one tensor");
  const Tensor& first = xs[0];
  if (first.dim() == 0) fail("ERR_SHAPE", "cat: zero-dimensional tensors cannot be concatenated");
  int64_t dim = checkDim("cat", intArg(info, 1, "dim"), first.shape.size());
  Shape outShape = first.shape;
  outShape[dim] = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& t : xs) {
    requireSameDtype(first, t, "cat");
    requireSameDevice(first, t, "cat");
    bool ok = t.shape.size() == first.shape.size();
    for (size_t d = 0; ok && d < t.shape.size(); d++) ok = int64_t(d) == dim || t.shape[d] == first.shape[d];
    if (!ok) fail("ERR_SHAPE", "cat: shape " + shapeString(t.shape) + " does not match " + shapeString(first.shape) + " outside dimension " + std::to_string(dim));
    outShape[dim] += t.shape[dim];
    sizes.push_back(t.shape[dim]);
  }
  std::vector<bool> present(xs.size(), true);
  return wrap(info.Env(), joinPieces(xs, present, sizes, outShape, dim, first.dtype, first.device(), "cat"));
}

Napi::Value CatBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  if (g.dim() == 0) fail("ERR_SHAPE", "cat backward: the gradient must have at least one dimension");
  std::vector<int64_t> sizes = intListArg(info, 1, "sizes");
  int64_t dim = checkDim("cat backward", intArg(info, 2, "dim"), g.shape.size());
  checkSizes("cat backward", g.shape, dim, sizes);
  std::vector<bool> need(sizes.size(), true);
  if (info.Length() > 3 && info[3].IsArray()) {
    Napi::Array a = info[3].As<Napi::Array>();
    if (a.Length() != sizes.size()) fail("ERR_ARGUMENT", "cat backward: need must have one flag per piece");
    for (uint32_t p = 0; p < a.Length(); p++) need[p] = a.Get(p).ToBoolean().Value();
  }
  return piecesToJs(info.Env(), cutPieces(g, sizes, dim, need, "cat backward"), need);
}

Napi::Value Split(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  if (x.dim() == 0) fail("ERR_SHAPE", "split: x must have at least one dimension");
  std::vector<int64_t> sizes = intListArg(info, 1, "sizes");
  int64_t dim = checkDim("split", intArg(info, 2, "dim"), x.shape.size());
  checkSizes("split", x.shape, dim, sizes);
  std::vector<bool> need(sizes.size(), true);
  return piecesToJs(info.Env(), cutPieces(x, sizes, dim, need, "split"), need);
}

// An array entry that is a tensor handle, or nullptr for null/undefined.
const Tensor* optionalTensor(const Napi::Value& v, const char* what) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!isTensor(v)) fail("ERR_ARGUMENT", std::string(what) + " must be an array of tensors or nulls");
  return &TensorHandle::Unwrap(v.As<Napi::Object>())->get(what);
}

Napi::Value SplitBackward(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArray()) fail("ERR_ARGUMENT", "split backward: grads must be an array of tensors or nulls");
  Shape xShape = shapeArg(info, 1, "xShape");
  if (xShape.empty()) fail("ERR_SHAPE", "split backward: x must have at least one dimension");
  std::vector<int64_t> sizes = intListArg(info, 2, "sizes");
  int64_t dim = checkDim("split backward", intArg(info, 3, "dim"), xShape.size());
  DType dtype = dtypeArg(info, 4, "dtype");
  checkSizes("split backward", xShape, dim, sizes);
  Napi::Array arr = info[0].As<Napi::Array>();
  if (arr.Length() != sizes.size()) fail("ERR_ARGUMENT", "split backward: expected one gradient (or null) per piece");
  std::vector<Tensor> pieces(sizes.size());
  std::vector<bool> present(sizes.size(), false);
  const Tensor* firstPiece = nullptr;  // the result goes to the pieces' device (the CPU when all are null)
  for (uint32_t p = 0; p < arr.Length(); p++) {
    const Tensor* t = optionalTensor(arr.Get(p), "split backward: grads");
    if (!t) continue;
    if (firstPiece) requireSameDevice(*firstPiece, *t, "split backward");
    else firstPiece = t;
    Shape want = xShape;
    want[dim] = sizes[p];
    if (t->shape != want)
      fail("ERR_SHAPE", "split backward: gradient " + std::to_string(p) + " has shape " + shapeString(t->shape) + ", expected " + shapeString(want));
    if (t->dtype != dtype) fail("ERR_DTYPE", std::string("split backward: gradient dtype ") + dtypeName(t->dtype) + " differs from " + dtypeName(dtype));
    pieces[p] = *t;
    present[p] = true;
  }
  return wrap(info.Env(), joinPieces(pieces, present, sizes, xShape, dim, dtype, firstPiece ? firstPiece->device() : Device::CPU, "split backward"));
}

// ------------------------------------------------------------------------------------------------ indices

// True when d is an integer in [0, limit). Branch-free (the cast only sees in-range values), so the check
// loop vectorises; std::floor would be a libm call per element on baseline x86-64.
inline bool validIndex(double d, double limit) {
  bool inRange = d >= 0 && d < limit;  // false for NaN
  double c = inRange ? d : 0.0;
  return inRange & (double(int64_t(c)) == c);
}

// Checks that every value of an index tensor is an integer in [0, limit), in one read-only pass, before any
// kernel uses it (ERR_ARGUMENT naming the first bad position otherwise).
void checkIndex(const Tensor& index, int64_t limit, const char* op) {
  const int64_t n = index.numel();
  const double lim = double(limit);
  std::atomic<bool> allValid{true};
  INNFLOW_DISPATCH(index.dtype, T, {
    const T* v = index.data<T>();
    parallelFor(n, kGrain, [&](int64_t b, int64_t e) {
      bool ok = true;
      for (int64_t i = b; i < e; i++) ok &= validIndex(double(v[i]), lim);
      if (!ok) allValid.store(false);
    });
    if (!allValid.load()) {
      int64_t bad = 0;
      while (validIndex(double(v[bad]), lim)) bad++;
      fail("ERR_ARGUMENT", std::string(op) + ": index value " + std::to_string(double(v[bad])) + " at position " + std::to_string(bad) +
                               " is not an integer in [0, " + std::to_string(limit) + ")");
    }
  });
}

// A checked index tensor's values as int64 (for short indices, read many times).
std::vector<int64_t> readIndex(const Tensor& index, int64_t limit, const char* op) {
  checkIndex(index, limit, op);
  std::vector<int64_t> out(static_cast<size_t>(index.numel()));
  INNFLOW_DISPATCH(index.dtype, T, {
    const T* v = index.data<T>();
    for (size_t i = 0; i < out.size(); i++) out[i] = int64_t(v[i]);
  });
  return out;
}

std::vector<int64_t> readIndexList(const Napi::Value& value, int64_t limit, const char* op) {
  Napi::Array a = value.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
    if (!validIndex(d, double(limit)))
      fail("ERR_ARGUMENT", std::string(op) + ": index at position " + std::to_string(k) + " is not an integer in [0, " + std::to_string(limit) + ")");
    out[k] = int64_t(d);
  }
  return out;
}

// indexSelect's index argument on the CPU: a 1-D tensor (on like's device) or a number[], checked and read.
// A tensor's values are read again, and checked again, at each replay of a compiled step (fresh(); they may
// have changed in place); a number[] is a constant.
struct HostIndex {
  std::vector<int64_t> values;
  Tensor tensor;
  bool fromTensor = false;
  int64_t limit = 0;
  void fresh(const char* op) {
    if (fromTensor) values = readIndex(tensor, limit, op);
  }
};
HostIndex selectIndexArg(const Napi::CallbackInfo& info, size_t i, int64_t limit, const char* op, const Tensor& like) {
  HostIndex h;
  h.limit = limit;
  if (i < info.Length() && info[i].IsArray()) {
    h.values = readIndexList(info[i], limit, op);
    return h;
  }
  const Tensor& index = tensorArg(info, i, "index");
  if (index.dim() != 1) fail("ERR_SHAPE", std::string(op) + ": index must be 1-D, got shape " + shapeString(index.shape));
  requireSameDevice(like, index, op);
  h.values = readIndex(index, limit, op);
  h.tensor = index;
  h.fromTensor = true;
  return h;
}

// indexSelect's index argument for a CUDA op: a 1-D CUDA tensor, used as it is (its values are checked by the
// kernels), or a number[], checked here and copied to the device as float64.
struct DeviceIndex {
  Tensor values;
  int64_t n = 0;
};
DeviceIndex deviceIndexArg(const Napi::CallbackInfo& info, size_t i, int64_t limit, const char* op, const Tensor& like) {
  DeviceIndex d;
  if (i < info.Length() && info[i].IsArray()) {
    std::vector<int64_t> idx = readIndexList(info[i], limit, op);
    std::vector<double> host(idx.begin(), idx.end());
    d.values = emptyTensor({int64_t(host.size())}, DType::F64, Device::CUDA);
    cudaCopy(d.values.raw(), host.data(), host.size() * sizeof(double), INNFLOW_COPY_H2D);  // staged before it returns
  } else {
    const Tensor& index = tensorArg(info, i, "index");
    if (index.dim() != 1) fail("ERR_SHAPE", std::string(op) + ": index must be 1-D, got shape " + shapeString(index.shape));
    requireSameDevice(like, index, op);
    d.values = index;
  }
  d.n = d.values.numel();
  return d;
}

// ------------------------------------------------------------------------------------------------ indexSelect

Napi::Value IndexSelect(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  if (x.dim() == 0) fail("ERR_SHAPE", "indexSelect: x must have at least one dimension");
  int64_t dim = checkDim("indexSelect", intArg(info, 1, "dim"), x.shape.size());
  if (x.onCuda()) {
    DeviceIndex di = deviceIndexArg(info, 2, x.shape[dim], "indexSelect", x);
    Shape outShape = x.shape;
    outShape[dim] = di.n;
    Tensor y = emptyLike(outShape, x.dtype, x);
    Around a = around(x.shape, dim);
    launch(x.device(), [=] {
      cudaCheck(cudaShape().indexSelect(cudaDtype(x.dtype), x.raw(), a.outer, a.size, a.inner, di.values.raw(), cudaDtype(di.values.dtype),
                                        di.n, y.raw()),
                "indexSelect");
    });
    return wrap(info.Env(), std::move(y));
  }
  HostIndex hi = selectIndexArg(info, 2, x.shape[dim], "indexSelect", x);
  const int64_t n = int64_t(hi.values.size());
  Shape outShape = x.shape;
  outShape[dim] = n;
  Tensor y = emptyTensor(outShape, x.dtype);
  if (y.numel() == 0) return wrap(info.Env(), std::move(y));
  Around a = around(x.shape, dim);
  launch(x.device(), [=, hi = std::move(hi), replay = false]() mutable {
    if (replay) hi.fresh("indexSelect");
    replay = true;
    const int64_t* ip = hi.values.data();
    if (a.inner == 1) {
      // selecting columns (a permutation of features): a plain gather; a memcpy per element costs ~10x more
      INNFLOW_DISPATCH(x.dtype, T, {
        const T* xs = x.data<T>();
        T* ys = y.data<T>();
        parallelFor(a.outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
          for (int64_t o = b; o < e; o++) {
            const T* row = xs + o * a.size;
            T* out = ys + o * n;
            for (int64_t k = 0; k < n; k++) out[k] = row[ip[k]];
          }
        });
      });
      return;
    }
    const size_t elem = dtypeSize(x.dtype);
    const char* src = static_cast<const char*>(x.raw());
    char* dst = static_cast<char*>(y.raw());
    // row (o, k) of y is the run x[o, idx[k], :]
    parallelFor(a.outer * n, std::max<int64_t>(1, kGrain / a.inner), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; r++) {
        int64_t o = r / n, k = r % n;
        std::memcpy(dst + size_t(r * a.inner) * elem, src + size_t((o * a.size + ip[k]) * a.inner) * elem, size_t(a.inner) * elem);
      }
    });
  });
  return wrap(info.Env(), std::move(y));
}

// Repeated indices add up. Work is split over (outer row, block of inner columns): two items never touch the
// same element of gx, so no atomics are needed and the sum order is fixed (deterministic results).
Napi::Value IndexSelectBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  Shape xShape = shapeArg(info, 1, "xShape");
  if (xShape.empty()) fail("ERR_SHAPE", "indexSelect backward: x must have at least one dimension");
  int64_t dim = checkDim("indexSelect backward", intArg(info, 2, "dim"), xShape.size());
  if (g.onCuda()) {
    DeviceIndex di = deviceIndexArg(info, 3, xShape[dim], "indexSelect backward", g);
    Shape want = xShape;
    want[dim] = di.n;
    if (g.shape != want) fail("ERR_SHAPE", "indexSelect backward: gradient shape " + shapeString(g.shape) + " differs from " + shapeString(want));
    Tensor gx = emptyLike(xShape, g.dtype, g);  // the kernel writes every element
    Around a = around(xShape, dim);
    launch(g.device(), [=] {
      cudaCheck(cudaShape().indexSelectBackward(cudaDtype(g.dtype), g.raw(), a.outer, a.size, a.inner, di.values.raw(),
                                                cudaDtype(di.values.dtype), di.n, gx.raw()),
                "indexSelect backward");
    });
    return wrap(info.Env(), std::move(gx));
  }
  HostIndex hi = selectIndexArg(info, 3, xShape[dim], "indexSelect backward", g);
  const int64_t n = int64_t(hi.values.size());
  Shape want = xShape;
  want[dim] = n;
  if (g.shape != want) fail("ERR_SHAPE", "indexSelect backward: gradient shape " + shapeString(g.shape) + " differs from " + shapeString(want));
  Tensor gx = emptyTensor(xShape, g.dtype);
  Around a = around(xShape, dim);
  launch(g.device(), [=, hi = std::move(hi), replay = false]() mutable {
    if (replay) hi.fresh("indexSelect backward");
    replay = true;
    zeroFill(gx);
    if (g.numel() == 0) return;
    const int64_t* ip = hi.values.data();
    if (a.inner == 1) {
      // scattering columns back: per row, in index order (the same order of additions as the blocked loop below)
      INNFLOW_DISPATCH(g.dtype, T, {
        const T* gs = g.data<T>();
        T* out = gx.data<T>();
        parallelFor(a.outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
          for (int64_t o = b; o < e; o++) {
            const T* src = gs + o * n;
            T* row = out + o * a.size;
            for (int64_t k = 0; k < n; k++) row[ip[k]] += src[k];
          }
        });
      });
      return;
    }
    constexpr int64_t kBlock = 512;
    const int64_t blocks = (a.inner + kBlock - 1) / kBlock;
    INNFLOW_DISPATCH(g.dtype, T, {
      const T* gs = g.data<T>();
      T* out = gx.data<T>();
      parallelFor(a.outer * blocks, std::max<int64_t>(1, kGrain / std::max<int64_t>(n * std::min(kBlock, a.inner), 1)), [&](int64_t b, int64_t e) {
        for (int64_t w = b; w < e; w++) {
          int64_t o = w / blocks, c0 = (w % blocks) * kBlock, c1 = std::min(a.inner, c0 + kBlock);
          for (int64_t k = 0; k < n; k++) {
            const T* src = gs + (o * n + k) * a.inner;
            T* dst = out + (o * a.size + ip[k]) * a.inner;
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
          }
        }
      });
    });
  });
  return wrap(info.Env(), std::move(gx));
}

// ------------------------------------------------------------------------------------------------ gather

// The index seen as [A, D, B] around dim (A: dims before it, B: dims after). Element (a, k, b) reads
// x[offA[a] + index·xStride + offB[b]]: offA and offB hold x's offsets of the other coordinates, which differ
// from the index's own because index.size(d) may be smaller than x.size(d).
struct GatherPlan {
  int64_t A = 1, D = 1, B = 1, xStride = 1;
  std::vector<int64_t> offA, offB;
};

void checkGatherShapes(const Shape& xShape, const Shape& iShape, int64_t dim, const char* op) {
  if (xShape.size() != iShape.size())
    fail("ERR_SHAPE", std::string(op) + ": index must have as many dimensions as x (" + shapeString(iShape) + " vs " + shapeString(xShape) + ")");
  for (size_t d = 0; d < xShape.size(); d++)
    if (int64_t(d) != dim && iShape[d] > xShape[d])
      fail("ERR_SHAPE", std::string(op) + ": index shape " + shapeString(iShape) + " exceeds x's " + shapeString(xShape) + " in dimension " + std::to_string(d));
}

GatherPlan planGather(const Shape& xShape, const Shape& iShape, int64_t dim, const char* op) {
  checkGatherShapes(xShape, iShape, dim, op);
  // a 0-d x and index behave as shape [1]
  Shape xs = xShape.empty() ? Shape{1} : xShape, is = iShape.empty() ? Shape{1} : iShape;
  std::vector<int64_t> stride(xs.size());
  for (int64_t d = int64_t(xs.size()) - 1, s = 1; d >= 0; d--) {
    stride[d] = s;
    s *= xs[d];
  }
  GatherPlan p;
  p.xStride = stride[dim];
  p.D = is[dim];
  p.offA = {0};
  p.offB = {0};
  for (int64_t d = 0; d < int64_t(is.size()); d++) {
    if (d == dim) continue;
    std::vector<int64_t>& list = d < dim ? p.offA : p.offB;
    std::vector<int64_t> next;
    next.reserve(list.size() * size_t(is[d]));
    for (int64_t base : list)
      for (int64_t i = 0; i < is[d]; i++) next.push_back(base + i * stride[d]);
    list.swap(next);
  }
  p.A = int64_t(p.offA.size());
  p.B = int64_t(p.offB.size());
  return p;
}

Napi::Value Gather(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  int64_t dim = checkDim("gather", intArg(info, 1, "dim"), x.shape.size());
  const Tensor& index = tensorArg(info, 2, "index");
  requireSameDevice(x, index, "gather");
  if (x.onCuda()) {
    checkGatherShapes(x.shape, index.shape, dim, "gather");
    // a 0-d x and index behave as shape [1]
    Shape xs = x.shape.empty() ? Shape{1} : x.shape, is = index.shape.empty() ? Shape{1} : index.shape;
    if (xs.size() > INNFLOW_CUDA_MAX_DIMS)
      fail("ERR_SHAPE", "gather: at most " + std::to_string(INNFLOW_CUDA_MAX_DIMS) + " dimensions on CUDA, got shape " + shapeString(x.shape));
    Tensor y = emptyLike(index.shape, x.dtype, x);
    launch(x.device(), [=] {
      cudaCheck(cudaShape().gather(cudaDtype(x.dtype), x.raw(), xs.data(), int(xs.size()), int(dim), index.raw(), cudaDtype(index.dtype),
                                   is.data(), y.raw()),
                "gather");
    });
    return wrap(info.Env(), std::move(y));
  }
  GatherPlan p = planGather(x.shape, index.shape, dim, "gather");
  const int64_t limit = x.shape.empty() ? 1 : x.shape[dim];
  checkIndex(index, limit, "gather");
  Tensor y = emptyTensor(index.shape, x.dtype);
  const int64_t n = y.numel();
  if (n == 0) return wrap(info.Env(), std::move(y));
  // the index is read by the kernel: at a replay its values may have changed, so they are checked again
  launch(x.device(), [=, p = std::move(p), replay = false]() mutable {
    if (replay) checkIndex(index, limit, "gather");
    replay = true;
    INNFLOW_DISPATCH(x.dtype, T, {
      INNFLOW_DISPATCH(index.dtype, I, {
        const T* xs = x.data<T>();
        const I* is = index.data<I>();
        T* ys = y.data<T>();
        // element i = (a, k, j) of [A, D, B]; the counters are carried so that B = 1 (gathering along the last
        // dimension) costs no division per element
        parallelFor(n, kGrain, [&](int64_t b, int64_t e) {
          int64_t j = b % p.B, r = b / p.B, k = r % p.D, a = r / p.D;
          int64_t base = p.offA[a];
          for (int64_t i = b; i < e; i++) {
            ys[i] = xs[base + int64_t(is[i]) * p.xStride + p.offB[j]];
            if (++j == p.B) {
              j = 0;
              if (++k == p.D) {
                k = 0;
                if (++a < p.A) base = p.offA[a];
              }
            }
          }
        });
      });
    });
  });
  return wrap(info.Env(), std::move(y));
}

// Scatter-add. Elements that differ in a coordinate other than dim land on different elements of gx, so the
// work is split over (a, block of b) and each item walks k serially: race-free and deterministic.
Napi::Value GatherBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  Shape xShape = shapeArg(info, 1, "xShape");
  int64_t dim = checkDim("gather backward", intArg(info, 2, "dim"), xShape.size());
  const Tensor& index = tensorArg(info, 3, "index");
  if (g.shape != index.shape)
    fail("ERR_SHAPE", "gather backward: gradient shape " + shapeString(g.shape) + " differs from the index's " + shapeString(index.shape));
  requireSameDevice(g, index, "gather backward");
  if (g.onCuda()) {
    checkGatherShapes(xShape, index.shape, dim, "gather backward");
    Shape xs = xShape.empty() ? Shape{1} : xShape, is = index.shape.empty() ? Shape{1} : index.shape;
    if (xs.size() > INNFLOW_CUDA_MAX_DIMS)
      fail("ERR_SHAPE", "gather backward: at most " + std::to_string(INNFLOW_CUDA_MAX_DIMS) + " dimensions on CUDA, got shape " + shapeString(xShape));
    Tensor gx = emptyLike(xShape, g.dtype, g);  // zeroed by the library, then scattered into
    launch(g.device(), [=] {
      cudaCheck(cudaShape().gatherBackward(cudaDtype(g.dtype), g.raw(), xs.data(), int(xs.size()), int(dim), index.raw(),
                                           cudaDtype(index.dtype), is.data(), gx.raw()),
                "gather backward");
    });
    return wrap(info.Env(), std::move(gx));
  }
  GatherPlan p = planGather(xShape, index.shape, dim, "gather backward");
  const int64_t limit = xShape.empty() ? 1 : xShape[dim];
  checkIndex(index, limit, "gather backward");
  Tensor gx = emptyTensor(xShape, g.dtype);
  launch(g.device(), [=, p = std::move(p), replay = false]() mutable {
    if (replay) checkIndex(index, limit, "gather backward");
    replay = true;
    zeroFill(gx);
    if (g.numel() == 0) return;
    constexpr int64_t kBlock = 512;
    const int64_t blocks = (p.B + kBlock - 1) / kBlock;
    INNFLOW_DISPATCH(g.dtype, T, {
      INNFLOW_DISPATCH(index.dtype, I, {
        const T* gs = g.data<T>();
        const I* is = index.data<I>();
        T* out = gx.data<T>();
        parallelFor(p.A * blocks, std::max<int64_t>(1, kGrain / std::max<int64_t>(p.D * std::min(kBlock, p.B), 1)), [&](int64_t b, int64_t e) {
          for (int64_t w = b; w < e; w++) {
            const int64_t a = w / blocks, c0 = (w % blocks) * kBlock, c1 = std::min(p.B, c0 + kBlock);
            T* dst = out + p.offA[a];
            const int64_t row0 = a * p.D * p.B;
            if (p.B == 1) {  // gathering along the last dimension: one pass over the row
              for (int64_t k = 0; k < p.D; k++) dst[int64_t(is[row0 + k]) * p.xStride] += gs[row0 + k];
              continue;
            }
            for (int64_t k = 0; k < p.D; k++) {
              const int64_t row = row0 + k * p.B;
              for (int64_t j = c0; j < c1; j++) dst[int64_t(is[row + j]) * p.xStride + p.offB[j]] += gs[row + j];
            }
          }
        });
      });
    });
  });
  return wrap(info.Env(), std::move(gx));
}

}  // namespace

void registerShapeOps(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "permute", Permute);
  defineFunction(env, exports, "permuteBackward", PermuteBackward);
  defineFunction(env, exports, "narrow", Narrow);
  defineFunction(env, exports, "narrowBackward", NarrowBackward);
  defineFunction(env, exports, "cat", Cat);
  defineFunction(env, exports, "catBackward", CatBackward);
  defineFunction(env, exports, "split", Split);
  defineFunction(env, exports, "splitBackward", SplitBackward);
  defineFunction(env, exports, "indexSelect", IndexSelect);
  defineFunction(env, exports, "indexSelectBackward", IndexSelectBackward);
  defineFunction(env, exports, "gather", Gather);
  defineFunction(env, exports, "gatherBackward", GatherBackward);
}

}  // namespace innflow

// C++ functions that one CPU op family offers to the others (the JavaScript entry points live in each file).
#pragma once
#include <functional>

#include "../common.h"

namespace innflow {

// reduce.cc: sums g over the dimensions that broadcasting added or stretched, so the result has `target`'s
// shape (the backward of every broadcasting op). Returns a copy when the shapes already agree.
Tensor sumToShape(const Tensor& g, const Shape& target);
// reduce.cc: sum over `dims` (sorted, unique, non-negative), keeping them as size-1 dimensions if keepdim.
Tensor sumDims(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);

// reduce.cc: the same sums split in two for kept kernels (capture.h): plan* checks the shapes at the call
// (ERR_SHAPE / ERR_ARGUMENT) and says what to compute; sumInto, called inside the kernel, writes the sum of x
// into y, which the caller allocated with `out`'s shape (or any shape of as many elements) on x's device.
struct SumPlan {
  Shape out;                  // the result's shape
  std::vector<int64_t> sizes;  // x's dimensions merged into alternating runs ...
  std::vector<int> reduced;    // ... each kept (0) or summed (1)
  double scale = 1;            // 1, or 1/count for a mean
  bool mean = false;
};
SumPlan planSumDims(const Shape& x, const std::vector<int64_t>& dims, bool keepdim, bool mean, Device device);
SumPlan planSumToShape(const Shape& g, const Shape& target, Device device);
void sumInto(const Tensor& x, const Tensor& y, const SumPlan& plan);

// elementwise.cc: the broadcast shape of a and b, or ERR_SHAPE naming `op`.
Shape broadcastShapes(const Shape& a, const Shape& b, const char* op);

// elementwise.cc: g broadcast to `target` (g's shape must broadcast to it), times scale.
Tensor expandTo(const Tensor& g, const Shape& target, double scale);

// elementwise.cc: expandTo split in two like the sums: planExpand checks at the call, expandInto (inside the
// kernel) writes g (of the planned shape) broadcast to the target, times scale, into y (the target's shape).
struct ExpandPlan {
  Shape from, target;
  double scale = 1;
  Shape cudaOut, cudaFrom;  // the merged shapes the GPU kernel indexes (CUDA tensors only)
};
ExpandPlan planExpand(const Shape& from, const Shape& target, double scale, Device device);
void expandInto(const Tensor& g, const Tensor& y, const ExpandPlan& plan);

// matmul.cc: row-major C = alpha * op(A) * op(B) + beta * C, with op(X) = X or Xᵀ; A is M×K after op,
// B is K×N after op; lda/ldb/ldc are row strides. Uses OpenBLAS when built with it, unless the built-in
// kernel is selected (INNFLOW_GEMM=builtin, or setGemmBackend('builtin')).
template <class T>
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc);

// matmul.cc: parallelFor for loops whose bodies call gemm: each body's GEMM then runs on its own thread
// (calling OpenBLAS from inside a plain parallelFor could race on OpenBLAS's thread count).
void gemmParallelLoop(int64_t n, const std::function<void(int64_t, int64_t)>& body);

}  // namespace innflow

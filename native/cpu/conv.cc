// 2-D convolution (cross-correlation, as torch.nn.functional.conv2d) by im2col + GEMM, forward and backward.
//
// conv2d(x: [N, C, H, W], w: [O, C, KH, KW], bias: [O] | null, strideH, strideW, padH, padW)
//     -> y: [N, O, HO, WO]      HO = (H + 2·padH − KH) / strideH + 1, WO = (W + 2·padW − KW) / strideW + 1
// conv2dBackward(g: [N, O, HO, WO], x, w, strideH, strideW, padH, padW, needX, needW, needBias)
//     -> [gx: [N, C, H, W] | null, gw: [O, C, KH, KW] | null, gbias: [O] | null]
//
// Per sample, col (C·KH·KW × HO·WO) holds the input patch under every output position (zero padding
// included), so that y_n = w (O × C·KH·KW) · col + bias, gw = Σ_n g_n · col_nᵀ and gcol_n = wᵀ · g_n, which
// col2im adds back onto the input positions the patches came from. A 1×1 kernel with stride 1 and no padding
// needs no col: the sample itself (C × H·W) is col.
//
// Samples are independent: with at least as many samples as threads, each thread takes whole samples with
// single-threaded GEMMs (no synchronisation per sample); with fewer, the samples run one after the other
// with threaded im2col and GEMMs.
//
// CUDA tensors go to the conv table of the CUDA backend (cuda/conv.cu: the same im2col + GEMM scheme over
// chunks of samples, col2im as a gather).
#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "../../cuda/conv.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"
#include "kernels.h"

namespace innflow {

// matmul.cc: parallelFor whose body's GEMMs each run on their calling thread (not yet listed in kernels.h).

namespace {

struct ConvGeom {
  int64_t N, C, H, W, O, KH, KW, SH, SW, PH, PW, HO, WO;
  int64_t rows() const { return C * KH * KW; }  // of col
  int64_t cols() const { return HO * WO; }      // of col
  bool direct() const { return KH == 1 && KW == 1 && SH == 1 && SW == 1 && PH == 0 && PW == 0; }
};

ConvGeom convGeom(const Tensor& x, const Tensor& w, const Tensor* bias, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  requireSameDtype(x, w, "conv2d");
  if (x.dim() != 4) fail("ERR_SHAPE", "conv2d: x must be 4-D (N, C, H, W), got shape " + shapeString(x.shape));
  if (w.dim() != 4) fail("ERR_SHAPE", "conv2d: weight must be 4-D (O, C, KH, KW), got shape " + shapeString(w.shape));
  if (x.shape[1] != w.shape[1])
    fail("ERR_SHAPE", "conv2d: x " + shapeString(x.shape) + " has " + std::to_string(x.shape[1]) + " channels but weight " +
                          shapeString(w.shape) + " expects " + std::to_string(w.shape[1]));
  if (w.shape[2] < 1 || w.shape[3] < 1) fail("ERR_SHAPE", "conv2d: empty kernel in weight " + shapeString(w.shape));
  if (sh < 1 || sw < 1) fail("ERR_ARGUMENT", "conv2d: strides must be positive, got " + std::to_string(sh) + ", " + std::to_string(sw));
  if (ph < 0 || pw < 0) fail("ERR_ARGUMENT", "conv2d: padding must be non-negative, got " + std::to_string(ph) + ", " + std::to_string(pw));
  if (bias) {
    requireSameDtype(x, *bias, "conv2d");
    if (bias->dim() != 1 || bias->shape[0] != w.shape[0])
      fail("ERR_SHAPE", "conv2d: bias " + shapeString(bias->shape) + " does not match weight " + shapeString(w.shape) +
                            " (expected [" + std::to_string(w.shape[0]) + "])");
  }
  ConvGeom g{x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0], w.shape[2], w.shape[3], sh, sw, ph, pw, 0, 0};
  if (g.H + 2 * ph < g.KH || g.W + 2 * pw < g.KW)
    fail("ERR_SHAPE", "conv2d: the padded input " + std::to_string(g.H + 2 * ph) + "x" + std::to_string(g.W + 2 * pw) +
                          " of x " + shapeString(x.shape) + " is smaller than the kernel " + std::to_string(g.KH) + "x" +
                          std::to_string(g.KW));
  g.HO = (g.H + 2 * ph - g.KH) / sh + 1;
  g.WO = (g.W + 2 * pw - g.KW) / sw + 1;
  return g;
}

// The output columns ow whose input column ow·s − p + j lies in [0, W): [lo, hi).
inline void validRange(int64_t j, int64_t s, int64_t p, int64_t W, int64_t WO, int64_t* lo, int64_t* hi) {
  // ow·s ≥ p − j  and  ow·s ≤ W − 1 + p − j
  const int64_t a = p - j, b = W - 1 + p - j;
  *lo = a <= 0 ? 0 : (a + s - 1) / s;
  *hi = b < 0 ? 0 : std::min(WO, b / s + 1);
  if (*lo > *hi) *lo = *hi;
}

// Rows [r0, r1) of col for one sample x (C × H × W).
template <class T>
void im2col(const ConvGeom& g, const T* x, T* col, int64_t r0, int64_t r1) {
  const int64_t P = g.cols();
  for (int64_t r = r0; r < r1; r++) {
    const int64_t c = r / (g.KH * g.KW), i = (r / g.KW) % g.KH, j = r % g.KW;
    int64_t lo, hi;
    validRange(j, g.SW, g.PW, g.W, g.WO, &lo, &hi);
    T* dst = col + r * P;
    for (int64_t oh = 0; oh < g.HO; oh++, dst += g.WO) {
      const int64_t ih = oh * g.SH - g.PH + i;
      if (ih < 0 || ih >= g.H) {
        std::fill_n(dst, g.WO, T(0));
        continue;
      }
      // input column of output column ow: ow·SW − PW + j, inside the row for ow in [lo, hi)
      const T* src = x + (c * g.H + ih) * g.W;
      const int64_t shift = j - g.PW;
      std::fill_n(dst, lo, T(0));
      if (g.SW == 1 && hi > lo) std::memcpy(dst + lo, src + lo + shift, size_t(hi - lo) * sizeof(T));
      else
        for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * g.SW + shift];
      std::fill_n(dst + hi, g.WO - hi, T(0));
    }
  }
}

// gx (C × H × W, one sample) += col2im(gcol) for channels [c0, c1): channels own disjoint parts of gx, so
// they may run in parallel.
template <class T>
void col2im(const ConvGeom& g, const T* gcol, T* gx, int64_t c0, int64_t c1) {
  const int64_t P = g.cols();
  for (int64_t c = c0; c < c1; c++)
    for (int64_t i = 0; i < g.KH; i++)
      for (int64_t j = 0; j < g.KW; j++) {
        const int64_t r = (c * g.KH + i) * g.KW + j;
        int64_t lo, hi;
        validRange(j, g.SW, g.PW, g.W, g.WO, &lo, &hi);
        const T* src = gcol + r * P;
        for (int64_t oh = 0; oh < g.HO; oh++, src += g.WO) {
          const int64_t ih = oh * g.SH - g.PH + i;
          if (ih < 0 || ih >= g.H) continue;
          T* dst = gx + (c * g.H + ih) * g.W;
          const int64_t shift = j - g.PW;
          for (int64_t ow = lo; ow < hi; ow++) dst[ow * g.SW + shift] += src[ow];
        }
      }
}

bool batchParallel(int64_t n) { return numThreads() > 1 && n >= numThreads(); }

// The whole col of one sample, split over the pool when `threaded`.
template <class T>
void im2colSample(const ConvGeom& g, const T* xn, T* col, bool threaded) {
  const int64_t K = g.rows(), grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(g.cols(), 1));
  if (threaded) parallelFor(K, grain, [&](int64_t r0, int64_t r1) { im2col(g, xn, col, r0, r1); });
  else im2col(g, xn, col, 0, K);
}

template <class T>
void convForward(const ConvGeom& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t K = g.rows(), P = g.cols(), xSize = g.C * g.H * g.W, ySize = g.O * P;
  // y_n = w · col_n (+ bias, preloaded into y_n so that the GEMM adds onto it)
  auto sample = [&](int64_t n, T* col, bool threaded) {
    const T* xn = x + n * xSize;
    T* yn = y + n * ySize;
    if (!g.direct()) im2colSample(g, xn, col, threaded);
    if (bias)
      for (int64_t o = 0; o < g.O; o++) std::fill_n(yn + o * P, P, bias[o]);
    gemm<T>(false, false, g.O, P, K, T(1), w, K, g.direct() ? xn : col, P, bias ? T(1) : T(0), yn, P);
  };
  const size_t colSize = g.direct() ? 0 : size_t(K * P);
  if (batchParallel(g.N)) {
    gemmParallelLoop(g.N, [&](int64_t n0, int64_t n1) {
      std::vector<T> col(colSize);
      for (int64_t n = n0; n < n1; n++) sample(n, col.data(), false);
    });
  } else {
    std::vector<T> col(colSize);
    for (int64_t n = 0; n < g.N; n++) sample(n, col.data(), true);
  }
}

template <class T>
void convBackward(const ConvGeom& g, const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb) {
  const int64_t K = g.rows(), P = g.cols(), xSize = g.C * g.H * g.W, ySize = g.O * P, wSize = g.O * K;
  const bool direct = g.direct();
  // Samples [n0, n1): gx_n = col2im(wᵀ·g_n); gwAcc (+)= Σ g_n·col_nᵀ (the first product overwrites when
  // `fresh`); uses its own col buffers.
  auto samples = [&](int64_t n0, int64_t n1, T* gwAcc, bool fresh, bool threaded) {
    std::vector<T> col(gw && !direct ? size_t(K * P) : 0), gcol(gx && !direct ? size_t(K * P) : 0);
    for (int64_t n = n0; n < n1; n++) {
      const T* gn = gy + n * ySize;
      const T* xn = x + n * xSize;
      if (gw) {
        if (!direct) im2colSample(g, xn, col.data(), threaded);
        const T stepBeta = fresh && n == n0 ? T(0) : T(1);
        gemm<T>(false, true, g.O, K, P, T(1), gn, P, direct ? xn : col.data(), P, stepBeta, gwAcc, K);
      }
      if (gx) {
        T* gxn = gx + n * xSize;
        if (direct) {
          gemm<T>(true, false, K, P, g.O, T(1), w, K, gn, P, T(0), gxn, P);
        } else {
          gemm<T>(true, false, K, P, g.O, T(1), w, K, gn, P, T(0), gcol.data(), P);
          std::fill_n(gxn, xSize, T(0));
          if (threaded) parallelFor(g.C, 1, [&](int64_t c0, int64_t c1) { col2im(g, gcol.data(), gxn, c0, c1); });
          else col2im(g, gcol.data(), gxn, 0, g.C);
        }
      }
    }
  };
  if (gw && g.N == 0) std::fill_n(gw, wSize, T(0));
  if (!gw && !gx) {
    // only the bias gradient
  } else if (batchParallel(g.N)) {
    // one group of samples per thread, each summing its own part of gw; the parts are added at the end
    const int64_t groups = numThreads();
    std::vector<T> parts(gw ? size_t((groups - 1) * wSize) : 0);
    gemmParallelLoop(groups, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; q++) {
        T* acc = gw ? (q == 0 ? gw : parts.data() + (q - 1) * wSize) : nullptr;
        const int64_t n0 = g.N * q / groups, n1 = g.N * (q + 1) / groups;
        if (acc && n0 == n1) std::fill_n(acc, wSize, T(0));
        samples(n0, n1, acc, true, false);
      }
    });
    if (gw)
      parallelFor(wSize, 4096, [&](int64_t i0, int64_t i1) {
        for (int64_t q = 1; q < groups; q++) {
          const T* part = parts.data() + (q - 1) * wSize;
          for (int64_t i = i0; i < i1; i++) gw[i] += part[i];
        }
      });
  } else if (g.N > 0) {
    samples(0, g.N, gw, true, true);
  }
  if (gb) {
    // gbias[o] = Σ_n Σ_p g[n, o, p]
    parallelFor(g.O, std::max<int64_t>(1, 16384 / std::max<int64_t>(g.N * P, 1)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) {
        T s = T(0);
        for (int64_t n = 0; n < g.N; n++) {
          const T* row = gy + n * ySize + o * P;
          for (int64_t p = 0; p < P; p++) s += row[p];
        }
        gb[o] = s;
      }
    });
  }
}

InnflowConvGeom cudaGeom(const ConvGeom& g) {
  return InnflowConvGeom{g.N, g.C, g.H, g.W, g.O, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.HO, g.WO};
}

const InnflowCudaConv& cudaConv() { return cudaTable<InnflowCudaConv>("innflow_cuda_conv"); }

const Tensor* optionalTensorArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return &tensorArg(info, i, name);
}

// Both entry points check the arguments and make their outputs at the call, then compute in one kept kernel
// (capture.h), which owns copies of the tensors it reads and writes.
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  const Tensor& w = tensorArg(info, 1, "weight");
  const Tensor* biasArg = optionalTensorArg(info, 2, "bias");
  const ConvGeom g = convGeom(x, w, biasArg, intArg(info, 3, "strideH"), intArg(info, 4, "strideW"),
                              intArg(info, 5, "padH"), intArg(info, 6, "padW"));
  requireSameDevice(x, w, "conv2d");
  if (biasArg) requireSameDevice(x, *biasArg, "conv2d");
  Tensor y = emptyLike({g.N, g.O, g.HO, g.WO}, x.dtype, x);
  if (y.numel() == 0) return wrap(info.Env(), std::move(y));
  const bool hasBias = biasArg != nullptr;
  Tensor bias = hasBias ? *biasArg : Tensor();
  launch(x.device(), [x, w, bias, hasBias, y, g] {
    if (x.onCuda()) {
      const InnflowConvGeom cg = cudaGeom(g);
      cudaCheck(cudaConv().conv2d(cudaDtype(x.dtype), &cg, x.raw(), w.raw(), hasBias ? bias.raw() : nullptr, y.raw()),
                "conv2d");
      return;
    }
    INNFLOW_DISPATCH(x.dtype, T, {
      convForward<T>(g, x.data<T>(), w.data<T>(), hasBias ? bias.data<T>() : nullptr, y.data<T>());
    });
  });
  return wrap(info.Env(), std::move(y));
}

Napi::Value Conv2dBackward(const Napi::CallbackInfo& info) {
  const Tensor& gy = tensorArg(info, 0, "g");
  const Tensor& x = tensorArg(info, 1, "x");
  const Tensor& w = tensorArg(info, 2, "weight");
  const ConvGeom g = convGeom(x, w, nullptr, intArg(info, 3, "strideH"), intArg(info, 4, "strideW"),
                              intArg(info, 5, "padH"), intArg(info, 6, "padW"));
  const bool needX = boolArg(info, 7, "needX"), needW = boolArg(info, 8, "needW"), needB = boolArg(info, 9, "needBias");
  requireSameDtype(gy, x, "conv2d backward");
  const Shape yShape{g.N, g.O, g.HO, g.WO};
  if (gy.shape != yShape)
    fail("ERR_SHAPE", "conv2d backward: gradient shape " + shapeString(gy.shape) + " differs from the output shape " +
                          shapeString(yShape));
  requireSameDevice(x, w, "conv2d backward");
  requireSameDevice(gy, x, "conv2d backward");
  Tensor gx, gw, gb;
  if (needX) gx = emptyLike(x.shape, x.dtype, x);
  if (needW) gw = emptyLike(w.shape, w.dtype, w);
  if (needB) gb = emptyLike({g.O}, x.dtype, x);
  // which gradients are written (an empty one has nothing to write)
  const bool doX = needX && gx.numel() > 0, doW = needW && gw.numel() > 0, doB = needB && gb.numel() > 0;
  if (doX || doW || doB)
    launch(x.device(), [gy, x, w, gx, gw, gb, doX, doW, doB, g] {
      if (x.onCuda()) {
        const InnflowConvGeom cg = cudaGeom(g);
        cudaCheck(cudaConv().conv2dBackward(cudaDtype(x.dtype), &cg, gy.raw(), x.raw(), w.raw(), doX ? gx.raw() : nullptr,
                                            doW ? gw.raw() : nullptr, doB ? gb.raw() : nullptr),
                  "conv2d backward");
        return;
      }
      INNFLOW_DISPATCH(x.dtype, T, {
        convBackward<T>(g, gy.data<T>(), x.data<T>(), w.data<T>(), doX ? gx.data<T>() : nullptr,
                        doW ? gw.data<T>() : nullptr, doB ? gb.data<T>() : nullptr);
      });
    });
  Napi::Array out = Napi::Array::New(info.Env(), 3);
  out.Set(0u, wrapOrNull(info.Env(), needX ? &gx : nullptr));
  out.Set(1u, wrapOrNull(info.Env(), needW ? &gw : nullptr));
  out.Set(2u, wrapOrNull(info.Env(), needB ? &gb : nullptr));
  return out;
}

}  // namespace

void registerConv(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "conv2d", Conv2d);
  defineFunction(env, exports, "conv2dBackward", Conv2dBackward);
}

}  // namespace innflow

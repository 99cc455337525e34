// The conv family on the GPU: 2-D convolution by im2col + GEMM (cuBLAS through the matmul table), as
// native/cpu/conv.cc does it, for a chunk of samples at a time.
//
// conv2d(x: [N, C, H, W], w: [O, C, KH, KW], bias: [O] | null)           -> y: [N, O, HO, WO]
// conv2dBackward(gy: [N, O, HO, WO], x, w)                               -> gx | null, gw | null, gb | null
//
// col_n (K × P, K = C·KH·KW, P = HO·WO) holds the input patch under every output position (zeros where the
// patch hangs over the padding): y_n = w (O × K) · col_n + bias, gw = Σ_n g_n · col_nᵀ, gcol_n = wᵀ · g_n, and
// gx_n gathers, for each input position, the gcol entries of the patches that read it (col2im without
// atomics). A 1×1 kernel with stride 1 and no padding needs no col: x_n (C × H·W) is col_n.
//
// Samples go in chunks whose scratch (col, gcol, per-sample gw products) stays under kScratchElements; the
// chunk's GEMMs are one strided-batched call each. gw sums the chunk's per-sample products in sample order
// (float32 in double), chunk after chunk, so the result does not depend on timing.
#include <algorithm>

#include "common.cuh"
#include "conv.h"
#include "matmul.h"

using namespace innflow_cuda;

namespace {

constexpr int64_t kScratchElements = int64_t(1) << 26;

bool direct(const InnflowConvGeom& g) {
  return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PH == 0 && g.PW == 0;
}

// x: [ns, C, H, W] (the chunk's samples) -> col: [ns, K, P], K = C·KH·KW rows r = (c·KH + i)·KW + j,
// P = HO·WO columns p = oh·WO + ow: col[s, r, p] = x[s, c, oh·SH − PH + i, ow·SW − PW + j], 0 outside x.
template <class T>
__global__ void im2colKernel(const T* x, InnflowConvGeom g, int64_t n, T* col) {
  const int64_t P = g.HO * g.WO, K = g.C * g.KH * g.KW;
  INNFLOW_GRID_STRIDE(e, n) {
    const int64_t p = e % P, r = (e / P) % K, s = e / (P * K);
    const int64_t ow = p % g.WO, oh = p / g.WO;
    const int64_t j = r % g.KW, i = (r / g.KW) % g.KH, c = r / (g.KW * g.KH);
    const int64_t ih = oh * g.SH - g.PH + i, iw = ow * g.SW - g.PW + j;
    col[e] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? x[((s * g.C + c) * g.H + ih) * g.W + iw] : T(0);
  }
}

// gcol: [ns, K, P] -> gx: [ns, C, H, W]: gx[s, c, h, w] = Σ_{i, j} gcol[s, (c·KH + i)·KW + j, oh·WO + ow] over
// the kernel offsets (i, j) for which h = oh·SH − PH + i and w = ow·SW − PW + j hold with 0 ≤ oh < HO,
// 0 ≤ ow < WO; added in increasing (i, j) as the CPU's col2im does. One thread per element of gx: no atomics.
template <class T>
__global__ void col2imKernel(const T* gcol, InnflowConvGeom g, int64_t n, T* gx) {
  const int64_t P = g.HO * g.WO, K = g.C * g.KH * g.KW;
  INNFLOW_GRID_STRIDE(e, n) {
    const int64_t w = e % g.W, h = (e / g.W) % g.H, c = (e / (g.W * g.H)) % g.C, s = e / (g.W * g.H * g.C);
    const T* src = gcol + s * K * P;
    T acc = T(0);
    for (int64_t i = 0; i < g.KH; i++) {
      const int64_t th = h + g.PH - i;  // = oh·SH
      if (th < 0 || th % g.SH != 0) continue;
      const int64_t oh = th / g.SH;
      if (oh >= g.HO) continue;
      for (int64_t j = 0; j < g.KW; j++) {
        const int64_t tw = w + g.PW - j;  // = ow·SW
        if (tw < 0 || tw % g.SW != 0) continue;
        const int64_t ow = tw / g.SW;
        if (ow >= g.WO) continue;
        acc += src[((c * g.KH + i) * g.KW + j) * P + oh * g.WO + ow];
      }
    }
    gx[e] = acc;
  }
}

template <class T>
int im2col(const InnflowConvGeom& g, const T* x, int64_t ns, T* col) {
  const int64_t n = ns * g.C * g.KH * g.KW * g.HO * g.WO;
  if (n <= 0) return INNFLOW_CUDA_OK;
  im2colKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(x, g, n, col);
  INNFLOW_LAUNCHED("conv2d (im2col)");
  return INNFLOW_CUDA_OK;
}

template <class T>
int col2im(const InnflowConvGeom& g, const T* gcol, int64_t ns, T* gx) {
  const int64_t n = ns * g.C * g.H * g.W;
  if (n <= 0) return INNFLOW_CUDA_OK;
  col2imKernel<T><<<gridFor(n), kBlock, 0, stream()>>>(gcol, g, n, gx);
  INNFLOW_LAUNCHED("conv2d backward (col2im)");
  return INNFLOW_CUDA_OK;
}

// Samples per chunk: as many as keep perSample·chunk under kScratchElements, at least one.
int64_t chunkFor(int64_t N, int64_t perSample) {
  if (perSample <= 0) return std::max<int64_t>(N, 1);
  return std::max<int64_t>(1, std::min<int64_t>(N, kScratchElements / perSample));
}

template <class T>
int conv2dT(int dtype, const InnflowConvGeom& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t K = g.C * g.KH * g.KW, P = g.HO * g.WO, xSize = g.C * g.H * g.W, ySize = g.O * P;
  if (g.N * ySize <= 0) return INNFLOW_CUDA_OK;
  const InnflowCudaMatmul* mm = innflow_cuda_matmul();
  // y_n = w · col_n (+ bias, preloaded into y so that the GEMM adds onto it)
  if (bias) INNFLOW_STATUS_TRY(mm->broadcastMid(dtype, bias, g.N, g.O, P, y));
  const double beta = bias ? 1.0 : 0.0;
  if (direct(g))
    return mm->gemm(dtype, 0, 0, g.O, P, K, 1.0, w, K, 0, x, P, xSize, beta, y, P, ySize, g.N);
  const int64_t chunk = chunkFor(g.N, K * P);
  Scratch col;
  INNFLOW_STATUS_TRY(col.alloc(size_t(chunk * K * P) * sizeof(T)));
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t ns = std::min(chunk, g.N - n0);
    INNFLOW_STATUS_TRY(im2col<T>(g, x + n0 * xSize, ns, col.as<T>()));
    INNFLOW_STATUS_TRY(mm->gemm(dtype, 0, 0, g.O, P, K, 1.0, w, K, 0, col.as<T>(), P, K * P, beta, y + n0 * ySize, P,
                                ySize, ns));
  }
  return INNFLOW_CUDA_OK;
}

template <class T>
int conv2dBackwardT(int dtype, const InnflowConvGeom& g, const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb) {
  const int64_t K = g.C * g.KH * g.KW, P = g.HO * g.WO, xSize = g.C * g.H * g.W, ySize = g.O * P, wSize = g.O * K;
  const InnflowCudaMatmul* mm = innflow_cuda_matmul();
  const bool dir = direct(g);
  // gbias[o] = Σ_n Σ_p g[n, o, p] (zeros for an empty batch)
  if (gb) INNFLOW_STATUS_TRY(mm->sumOuterInner(dtype, gy, g.N, g.O, P, gb, 0));
  if (gw && g.N == 0) INNFLOW_STATUS_TRY(innflow_cuda_fill(dtype, gw, wSize, 0.0));
  if ((!gw && !gx) || g.N == 0) return INNFLOW_CUDA_OK;

  if (gx && dir) {
    // gx_n = wᵀ · g_n, straight into gx (C × H·W is K × P)
    INNFLOW_STATUS_TRY(mm->gemm(dtype, 1, 0, K, P, g.O, 1.0, w, K, 0, gy, P, ySize, 0.0, gx, P, xSize, g.N));
    gx = nullptr;  // done
    if (!gw) return INNFLOW_CUDA_OK;
  }
  // per sample: col (for gw, unless direct), gcol (for gx), the sample's product g_n · col_nᵀ (for gw)
  const int64_t perSample = (gw && !dir ? K * P : 0) + (gx ? K * P : 0) + (gw ? wSize : 0);
  const int64_t chunk = chunkFor(g.N, perSample);
  Scratch col, gcol, parts;
  if (gw && !dir) INNFLOW_STATUS_TRY(col.alloc(size_t(chunk * K * P) * sizeof(T)));
  if (gx) INNFLOW_STATUS_TRY(gcol.alloc(size_t(chunk * K * P) * sizeof(T)));
  if (gw) INNFLOW_STATUS_TRY(parts.alloc(size_t(chunk * wSize) * sizeof(T)));
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t ns = std::min(chunk, g.N - n0);
    const T* gn = gy + n0 * ySize;
    if (gw) {
      const T* cols = x + n0 * xSize;
      if (!dir) {
        INNFLOW_STATUS_TRY(im2col<T>(g, x + n0 * xSize, ns, col.as<T>()));
        cols = col.as<T>();
      }
      // parts_s = g_s (O × P) · col_sᵀ (P × K), then gw (+)= Σ_s parts_s in sample order
      INNFLOW_STATUS_TRY(mm->gemm(dtype, 0, 1, g.O, K, P, 1.0, gn, P, ySize, cols, P, K * P, 0.0, parts.as<T>(), K,
                                  wSize, ns));
      INNFLOW_STATUS_TRY(mm->sumOuterInner(dtype, parts.as<T>(), ns, wSize, 1, gw, n0 > 0 ? 1 : 0));
    }
    if (gx) {
      // gcol_s = wᵀ (K × O) · g_s (O × P), gathered back onto the input positions
      INNFLOW_STATUS_TRY(mm->gemm(dtype, 1, 0, K, P, g.O, 1.0, w, K, 0, gn, P, ySize, 0.0, gcol.as<T>(), P, K * P, ns));
      INNFLOW_STATUS_TRY(col2im<T>(g, gcol.as<T>(), ns, gx + n0 * xSize));
    }
  }
  return INNFLOW_CUDA_OK;
}

int conv2d(int dtype, const InnflowConvGeom* g, const void* x, const void* w, const void* bias, void* y) {
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    return conv2dT<T>(dtype, *g, static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias),
                      static_cast<T*>(y));
  });
}

int conv2dBackward(int dtype, const InnflowConvGeom* g, const void* gy, const void* x, const void* w, void* gx,
                   void* gw, void* gb) {
  return withDtype(dtype, [&](auto tag) -> int {
    using T = decltype(tag);
    return conv2dBackwardT<T>(dtype, *g, static_cast<const T*>(gy), static_cast<const T*>(x),
                              static_cast<const T*>(w), static_cast<T*>(gx), static_cast<T*>(gw), static_cast<T*>(gb));
  });
}

}  // namespace

extern "C" const InnflowCudaConv* innflow_cuda_conv(void) {
  static const InnflowCudaConv table = {conv2d, conv2dBackward};
  return &table;
}

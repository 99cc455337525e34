// Optimiser updates and gradient clipping on the GPU (native/cpu/optim.cc's multi-tensor kernels).
//
// adamStep(params/grads/expAvg/expAvgSq: [n_i]..., steps)   one launch over every tensor
// sgdStep(params/grads/momentumBufs: [n_i]..., fresh)       one launch over every tensor
// clipGradNorm(grads: [n_i]...) -> total norm             partial norms per chunk, one block combines them,
//                                                          a scale launch, then the norm is read back
//
// The work list: every tensor is cut into chunks of at most kChunk elements; a block takes one chunk at a time
// (grid-stride over chunks), so a few large tensors and many small ones spread evenly. The tensor descriptors
// and the chunk list are built on the host and copied to a Scratch buffer (stream-ordered, no synchronisation).
// Each chunk belongs to one tensor, so the dtype branch is uniform within a block.
//
// Bit-equality with the CPU: nvcc would fuse a·b + c into one FMA (one rounding instead of two); the host build
// never does (no -mfma), so every product and sum here goes through __fmul_rn/__fadd_rn-style intrinsics, which
// are never fused. Division and square root are IEEE round-to-nearest (nvcc's defaults, made explicit).
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.cuh"
#include "optim.h"

using namespace innflow_cuda;

namespace {

constexpr int64_t kChunk = 8192;

// ---- unfused IEEE arithmetic
__device__ inline float add(float a, float b) { return __fadd_rn(a, b); }
__device__ inline double add(double a, double b) { return __dadd_rn(a, b); }
__device__ inline float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ inline double sub(double a, double b) { return __dsub_rn(a, b); }
__device__ inline float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double mul(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float div(float a, float b) { return __fdiv_rn(a, b); }
__device__ inline double div(double a, double b) { return __ddiv_rn(a, b); }
__device__ inline float sqrtRn(float a) { return __fsqrt_rn(a); }
__device__ inline double sqrtRn(double a) { return __dsqrt_rn(a); }

// One tensor of a multi-tensor call (pointers unused by an op are null).
struct TensorDesc {
  void* p;
  const void* g;
  void* m;  // Adam's first moment / SGD's momentum buffer
  void* v;  // Adam's second moment
  int64_t n;
  int dtype;
  int fresh;        // SGD: the buffer starts as this step's gradient
  double stepSize;  // Adam: T(lr / (1 - beta1^step)), exactly the T value the CPU uses
  double bc2Sqrt;   // Adam: T(sqrt(1 - beta2^step))
};

struct Chunk {
  int64_t tensor, begin, end;
};

// Descriptors then chunks, in one device buffer.
struct WorkList {
  Scratch buffer;
  const TensorDesc* descs = nullptr;
  const Chunk* chunks = nullptr;
  int64_t chunkCount = 0;
};

int upload(WorkList* w, const std::vector<TensorDesc>& descs) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < descs.size(); i++)
    for (int64_t b = 0; b < descs[i].n; b += kChunk) chunks.push_back({int64_t(i), b, std::min(descs[i].n, b + kChunk)});
  w->chunkCount = int64_t(chunks.size());
  if (chunks.empty()) return INNFLOW_CUDA_OK;
  const size_t descBytes = descs.size() * sizeof(TensorDesc), chunkBytes = chunks.size() * sizeof(Chunk);
  INNFLOW_STATUS_TRY(w->buffer.alloc(descBytes + chunkBytes));
  char* base = w->buffer.as<char>();
  // through the pinned staging of memory.cu: no wait for the stream, and the vectors may go when this returns
  INNFLOW_STATUS_TRY(innflow_cuda_copy(base, descs.data(), descBytes, INNFLOW_COPY_H2D));
  INNFLOW_STATUS_TRY(innflow_cuda_copy(base + descBytes, chunks.data(), chunkBytes, INNFLOW_COPY_H2D));
  w->descs = reinterpret_cast<const TensorDesc*>(base);
  w->chunks = reinterpret_cast<const Chunk*>(base + descBytes);  // descBytes is a multiple of 8
  return INNFLOW_CUDA_OK;
}

unsigned chunkGrid(int64_t chunks) { return unsigned(std::min<int64_t>(chunks, 65535LL * 8)); }

#define INNFLOW_FOR_CHUNKS(c, count) for (int64_t c = blockIdx.x; c < (count); c += gridDim.x)

// ------------------------------------------------------------------------------------------------- Adam

struct AdamArgs {
  double lr, beta1, beta2, eps, wd;
};

// PyTorch's single-tensor Adam in the CPU's order of operations (optim.cc's adamPiece).
template <class T>
__device__ void adamRange(const TensorDesc& t, int64_t b, int64_t e, const AdamArgs& a) {
  T* p = static_cast<T*>(t.p);
  const T* g = static_cast<const T*>(t.g);
  T* m = static_cast<T*>(t.m);
  T* v = static_cast<T*>(t.v);
  const T beta1 = T(a.beta1), beta2 = T(a.beta2), eps = T(a.eps), wd = T(a.wd);
  const T stepSize = T(t.stepSize), bc2Sqrt = T(t.bc2Sqrt);
  const T w = sub(T(1), beta1);
  const T oneMinusBeta2 = sub(T(1), beta2);
  for (int64_t k = b + threadIdx.x; k < e; k += blockDim.x) {
    T grad = g[k];
    if (wd != T(0)) grad = add(grad, mul(wd, p[k]));
    T mk = m[k];
    // torch.lerp switches formula at weight 0.5
    mk = w < T(0.5) ? add(mk, mul(w, sub(grad, mk))) : sub(grad, mul(sub(grad, mk), sub(T(1), w)));
    m[k] = mk;
    T vk = add(mul(v[k], beta2), mul(mul(oneMinusBeta2, grad), grad));
    v[k] = vk;
    T denom = add(div(sqrtRn(vk), bc2Sqrt), eps);
    p[k] = add(p[k], div(mul(-stepSize, mk), denom));
  }
}

// every tensor of descs, chunk by chunk
__global__ void adamKernel(const TensorDesc* descs, const Chunk* chunks, int64_t chunkCount, AdamArgs a) {
  INNFLOW_FOR_CHUNKS(c, chunkCount) {
    const Chunk ch = chunks[c];
    const TensorDesc t = descs[ch.tensor];
    if (t.dtype == INNFLOW_F32) adamRange<float>(t, ch.begin, ch.end, a);
    else adamRange<double>(t, ch.begin, ch.end, a);
  }
}

// The bias-corrected step size and sqrt(1 - beta2^t) as the CPU computes them for dtype T.
template <class T>
void adamScalars(double lr, double beta1, double beta2, int64_t step, double* stepSize, double* bc2Sqrt) {
  const double bc1 = 1.0 - std::pow(double(T(beta1)), double(step));
  const double bc2 = 1.0 - std::pow(double(T(beta2)), double(step));
  *stepSize = double(T(double(T(lr)) / bc1));
  *bc2Sqrt = double(T(std::sqrt(bc2)));
}

int adamStep(int64_t count, const int* dtypes, void* const* params, const void* const* grads, void* const* expAvg,
             void* const* expAvgSq, const int64_t* numels, const int64_t* steps, double lr, double beta1, double beta2, double eps,
             double weightDecay) {
  std::vector<TensorDesc> descs(size_t(count < 0 ? 0 : count));
  for (int64_t i = 0; i < count; i++) {
    if (dtypes[i] != INNFLOW_F32 && dtypes[i] != INNFLOW_F64) return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "adamStep: unknown dtype code %d", dtypes[i]);
    TensorDesc& d = descs[size_t(i)];
    d = TensorDesc{params[i], grads[i], expAvg[i], expAvgSq[i], numels[i], dtypes[i], 0, 0.0, 0.0};
    if (dtypes[i] == INNFLOW_F32) adamScalars<float>(lr, beta1, beta2, steps[i], &d.stepSize, &d.bc2Sqrt);
    else adamScalars<double>(lr, beta1, beta2, steps[i], &d.stepSize, &d.bc2Sqrt);
  }
  WorkList w;
  INNFLOW_STATUS_TRY(upload(&w, descs));
  if (w.chunkCount == 0) return INNFLOW_CUDA_OK;
  adamKernel<<<chunkGrid(w.chunkCount), kBlock, 0, stream()>>>(w.descs, w.chunks, w.chunkCount, AdamArgs{lr, beta1, beta2, eps, weightDecay});
  INNFLOW_LAUNCHED("adamStep");
  return INNFLOW_CUDA_OK;
}

// -------------------------------------------------------------------------------------------------- SGD

struct SgdArgs {
  double lr, momentum, dampening, wd;
  int nesterov;
};

// PyTorch's SGD in the CPU's order of operations (optim.cc's sgdPiece); t.m is null without momentum.
template <class T>
__device__ void sgdRange(const TensorDesc& t, int64_t b, int64_t e, const SgdArgs& a) {
  T* p = static_cast<T*>(t.p);
  const T* g = static_cast<const T*>(t.g);
  T* buf = static_cast<T*>(t.m);
  const T lr = T(a.lr), momentum = T(a.momentum), dampening = T(a.dampening), wd = T(a.wd);
  for (int64_t k = b + threadIdx.x; k < e; k += blockDim.x) {
    T d = g[k];
    if (wd != T(0)) d = add(d, mul(wd, p[k]));
    if (buf) {
      T bk = t.fresh ? d : add(mul(buf[k], momentum), mul(sub(T(1), dampening), d));
      buf[k] = bk;
      d = a.nesterov ? add(d, mul(momentum, bk)) : bk;
    }
    p[k] = add(p[k], mul(-lr, d));
  }
}

__global__ void sgdKernel(const TensorDesc* descs, const Chunk* chunks, int64_t chunkCount, SgdArgs a) {
  INNFLOW_FOR_CHUNKS(c, chunkCount) {
    const Chunk ch = chunks[c];
    const TensorDesc t = descs[ch.tensor];
    if (t.dtype == INNFLOW_F32) sgdRange<float>(t, ch.begin, ch.end, a);
    else sgdRange<double>(t, ch.begin, ch.end, a);
  }
}

int sgdStep(int64_t count, const int* dtypes, void* const* params, const void* const* grads, void* const* momentumBufs, const int* fresh,
            const int64_t* numels, double lr, double momentum, double dampening, double weightDecay, int nesterov) {
  std::vector<TensorDesc> descs(size_t(count < 0 ? 0 : count));
  for (int64_t i = 0; i < count; i++) {
    if (dtypes[i] != INNFLOW_F32 && dtypes[i] != INNFLOW_F64) return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "sgdStep: unknown dtype code %d", dtypes[i]);
    descs[size_t(i)] = TensorDesc{params[i], grads[i], momentumBufs ? momentumBufs[i] : nullptr, nullptr, numels[i], dtypes[i],
                                  momentumBufs && fresh && fresh[i] != 0 ? 1 : 0, 0.0, 0.0};
  }
  WorkList w;
  INNFLOW_STATUS_TRY(upload(&w, descs));
  if (w.chunkCount == 0) return INNFLOW_CUDA_OK;
  sgdKernel<<<chunkGrid(w.chunkCount), kBlock, 0, stream()>>>(w.descs, w.chunks, w.chunkCount,
                                                              SgdArgs{lr, momentum, dampening, weightDecay, nesterov});
  INNFLOW_LAUNCHED("sgdStep");
  return INNFLOW_CUDA_OK;
}

// ------------------------------------------------------------------------------------- gradient clipping

// How two partial norms combine: a sum, or a maximum in which NaN wins (as the CPU's loop: once NaN, stays NaN).
__device__ inline double combine(double acc, double a, bool inf) {
  if (inf) return (isnan(a) || a > acc) ? a : acc;
  return __dadd_rn(acc, a);
}

// Reduces one value per thread over the block in a fixed tree order (deterministic); the result is in s[0].
__device__ double blockCombine(double mine, bool inf) {
  __shared__ double s[kBlock];
  s[threadIdx.x] = mine;
  __syncthreads();
  for (int width = kBlock / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) s[threadIdx.x] = combine(s[threadIdx.x], s[threadIdx.x + width], inf);
    __syncthreads();
  }
  double r = s[0];
  __syncthreads();
  return r;
}

// partial[c] = Σ |g|^p (or max |g|) over chunk c, accumulated in double
__global__ void normPartialKernel(const TensorDesc* descs, const Chunk* chunks, int64_t chunkCount, double p, double* partial) {
  const bool inf = isinf(p);
  INNFLOW_FOR_CHUNKS(c, chunkCount) {
    const Chunk ch = chunks[c];
    const TensorDesc t = descs[ch.tensor];
    double acc = 0;
    for (int64_t k = ch.begin + threadIdx.x; k < ch.end; k += blockDim.x) {
      double a = t.dtype == INNFLOW_F32 ? fabs(double(static_cast<const float*>(t.g)[k])) : fabs(static_cast<const double*>(t.g)[k]);
      acc = combine(acc, inf ? a : p == 2 ? __dmul_rn(a, a) : p == 1 ? a : pow(a, p), inf);
    }
    double total = blockCombine(acc, inf);
    if (threadIdx.x == 0) partial[c] = total;
  }
}

// One block: out[0] = the total norm, out[1] = the clipping coefficient (the CPU's formulas)
__global__ void normFinishKernel(const double* partial, int64_t chunkCount, double p, double maxNorm, double* out) {
  const bool inf = isinf(p);
  double acc = 0;
  for (int64_t c = threadIdx.x; c < chunkCount; c += blockDim.x) acc = combine(acc, partial[c], inf);
  double total = blockCombine(acc, inf);
  if (threadIdx.x == 0) {
    double norm = inf ? total : p == 2 ? sqrt(total) : p == 1 ? total : pow(total, 1.0 / p);
    double ratio = maxNorm / (norm + 1e-6);
    out[0] = norm;
    out[1] = isnan(norm) ? norm : (ratio < 1.0 ? ratio : 1.0);  // std::min(1.0, ratio)
  }
}

// every gradient *= T(coef[0])
__global__ void scaleKernel(const TensorDesc* descs, const Chunk* chunks, int64_t chunkCount, const double* coef) {
  const double c64 = *coef;
  INNFLOW_FOR_CHUNKS(c, chunkCount) {
    const Chunk ch = chunks[c];
    const TensorDesc t = descs[ch.tensor];
    if (t.dtype == INNFLOW_F32) {
      float* g = static_cast<float*>(const_cast<void*>(t.g));
      const float cf = float(c64);
      for (int64_t k = ch.begin + threadIdx.x; k < ch.end; k += blockDim.x) g[k] = __fmul_rn(g[k], cf);
    } else {
      double* g = static_cast<double*>(const_cast<void*>(t.g));
      for (int64_t k = ch.begin + threadIdx.x; k < ch.end; k += blockDim.x) g[k] = __dmul_rn(g[k], c64);
    }
  }
}

int clipGradNorm(int64_t count, const int* dtypes, void* const* grads, const int64_t* numels, double maxNorm, double normType,
                 double* totalNorm) {
  *totalNorm = 0;
  std::vector<TensorDesc> descs(size_t(count < 0 ? 0 : count));
  for (int64_t i = 0; i < count; i++) {
    if (dtypes[i] != INNFLOW_F32 && dtypes[i] != INNFLOW_F64)
      return recordError(INNFLOW_CUDA_BAD_ARGUMENT, "clipGradNorm: unknown dtype code %d", dtypes[i]);
    descs[size_t(i)] = TensorDesc{nullptr, grads[i], nullptr, nullptr, numels[i], dtypes[i], 0, 0.0, 0.0};
  }
  WorkList w;
  INNFLOW_STATUS_TRY(upload(&w, descs));
  if (w.chunkCount == 0) return INNFLOW_CUDA_OK;  // no elements: the norm is 0 and there is nothing to scale
  Scratch sums;  // chunkCount partials, then the norm and the coefficient
  INNFLOW_STATUS_TRY(sums.alloc(size_t(w.chunkCount + 2) * sizeof(double)));
  double* partial = sums.as<double>();
  double* result = partial + w.chunkCount;
  normPartialKernel<<<chunkGrid(w.chunkCount), kBlock, 0, stream()>>>(w.descs, w.chunks, w.chunkCount, normType, partial);
  INNFLOW_LAUNCHED("clipGradNorm (partial norms)");
  normFinishKernel<<<1, kBlock, 0, stream()>>>(partial, w.chunkCount, normType, maxNorm, result);
  INNFLOW_LAUNCHED("clipGradNorm (total)");
  scaleKernel<<<chunkGrid(w.chunkCount), kBlock, 0, stream()>>>(w.descs, w.chunks, w.chunkCount, result + 1);
  INNFLOW_LAUNCHED("clipGradNorm (scale)");
  // the API returns the norm as a number: this copy waits for the stream
  INNFLOW_CUDA_TRY(cudaMemcpyAsync(totalNorm, result, sizeof(double), cudaMemcpyDeviceToHost, stream()));
  INNFLOW_CUDA_TRY(cudaStreamSynchronize(stream()));
  return INNFLOW_CUDA_OK;
}

}  // namespace

extern "C" const InnflowCudaOptim* innflow_cuda_optim(void) {
  static const InnflowCudaOptim table = {adamStep, sgdStep, clipGradNorm};
  return &table;
}

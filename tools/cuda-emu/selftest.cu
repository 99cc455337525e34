// The emulator's own checks: the CUDA semantics that test/cuda relies on it to reproduce. Built (translated like
// cuda/*.cu) as build-emu/Release/cuda_emu_selftest by `npm run build:cuda-emu`; test/cuda-emu runs it. Prints one
// line per check and exits non-zero if any failed.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <vector>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) failures++;
}

// out[blockIdx.x] = Σ in[blockIdx.x · blockDim.x + t] by a shared-memory tree (blockDim.x a power of two).
__global__ void treeSum(const double* in, double* out) {
  __shared__ double tree[1024];
  const unsigned t = threadIdx.x;
  tree[t] = in[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) tree[t] += tree[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = tree[0];
}

// out[w] = Σ of warp w's 32 values, by shuffles; lanes of other warps run the same code at the same time.
__global__ void warpSum(const float* in, float* out) {
  float v = in[threadIdx.x];
  for (int s = 16; s > 0; s >>= 1) v += __shfl_down_sync(0xffffffffu, v, s);
  if ((threadIdx.x & 31) == 0) out[threadIdx.x / 32] = v;
}

// flag[0] = whether every thread saw a positive value (__syncthreads_and), written by thread 0.
__global__ void allPositive(const float* in, int* flag) {
  const int ok = __syncthreads_and(in[threadIdx.x] > 0);
  if (threadIdx.x == 0) flag[0] = ok;
}

__global__ void addOne(float* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += 1;
}

// 2-D grid and block: each thread writes its global coordinates.
__global__ void coordinates(int* out, int width) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  out[y * width + x] = y * 1000 + x;
}

}  // namespace

int main() {
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);

  {  // shared memory and barriers
    const int blocks = 3, threads = 256;
    std::vector<double> h(blocks * threads);
    for (size_t i = 0; i < h.size(); i++) h[i] = double(i % 17) - 3;
    double *in, *out;
    cudaMalloc(reinterpret_cast<void**>(&in), h.size() * sizeof(double));
    cudaMalloc(reinterpret_cast<void**>(&out), blocks * sizeof(double));
    cudaMemcpy(in, h.data(), h.size() * sizeof(double), cudaMemcpyHostToDevice);
    treeSum<<<blocks, threads, 0, s>>>(in, out);
    double got[blocks];
    cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost);
    bool ok = true;
    for (int b = 0; b < blocks; b++) {
      double want = 0;
      for (int t = 0; t < threads; t++) want += h[b * threads + t];
      ok = ok && got[b] == want;
    }
    check(ok, "__syncthreads: a shared-memory tree sums each block");
    cudaFree(in);
    cudaFree(out);
  }
  {  // shuffles, per warp
    std::vector<float> h(96);
    for (int i = 0; i < 96; i++) h[i] = float(i);
    float *in, *out;
    cudaMalloc(reinterpret_cast<void**>(&in), 96 * sizeof(float));
    cudaMalloc(reinterpret_cast<void**>(&out), 3 * sizeof(float));
    cudaMemcpy(in, h.data(), 96 * sizeof(float), cudaMemcpyHostToDevice);
    warpSum<<<1, 96, 0, s>>>(in, out);
    float got[3];
    cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost);
    check(got[0] == 496 && got[1] == 1520 && got[2] == 2544, "__shfl_down_sync: each of three warps sums its own lanes");
    h[77] = -1;
    cudaMemcpy(in, h.data(), 96 * sizeof(float), cudaMemcpyHostToDevice);
    int* flag;
    cudaMalloc(reinterpret_cast<void**>(&flag), sizeof(int));
    allPositive<<<1, 95, 0, s>>>(in + 1, flag);  // thread 76 reads in[77] = -1
    int f = -1;
    cudaMemcpy(&f, flag, sizeof f, cudaMemcpyDeviceToHost);
    check(f == 0, "__syncthreads_and: one thread's false makes it false for all");
    cudaFree(in);
    cudaFree(out);
    cudaFree(flag);
  }
  {  // 2-D geometry
    int* out;
    cudaMalloc(reinterpret_cast<void**>(&out), 6 * 8 * sizeof(int));
    coordinates<<<dim3(2, 3), dim3(4, 2), 0, s>>>(out, 8);
    int got[48];
    cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost);
    bool ok = true;
    for (int y = 0; y < 6; y++)
      for (int x = 0; x < 8; x++) ok = ok && got[y * 8 + x] == y * 1000 + x;
    check(ok, "2-D grids and blocks: blockIdx, blockDim and threadIdx in x and y");
    cudaFree(out);
  }
  {  // launch limits and fresh memory
    float* x;
    cudaMalloc(reinterpret_cast<void**>(&x), 4 * sizeof(float));
    float fresh[4];
    cudaMemcpy(fresh, x, sizeof fresh, cudaMemcpyDeviceToHost);
    check(std::isnan(fresh[0]) && std::isnan(fresh[3]), "fresh device memory reads as NaN");
    addOne<<<1, 2048, 0, s>>>(x, 4);
    check(cudaPeekAtLastError() == cudaErrorInvalidConfiguration && cudaGetLastError() == cudaErrorInvalidConfiguration &&
              cudaGetLastError() == cudaSuccess,
          "a block of 2048 threads is an invalid configuration (non-sticky)");
    addOne<<<dim3(1, 70000), 32, 0, s>>>(x, 4);
    check(cudaGetLastError() == cudaErrorInvalidConfiguration, "a grid of 70000 blocks in y is an invalid configuration");
    cudaFree(x);
  }
  {  // capture: recorded, not run; replayed by each launch
    float* x;
    cudaMalloc(reinterpret_cast<void**>(&x), sizeof(float));
    cudaMemsetAsync(x, 0, sizeof(float), s);
    cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
    addOne<<<1, 32, 0, s>>>(x, 1);
    cudaStreamCaptureStatus st;
    cudaStreamIsCapturing(s, &st);
    cudaGraph_t g = nullptr;
    cudaError_t end = cudaStreamEndCapture(s, &g);
    float v = -1;
    cudaMemcpy(&v, x, sizeof v, cudaMemcpyDeviceToHost);
    check(st == cudaStreamCaptureStatusActive && end == cudaSuccess && v == 0, "a captured kernel does not run");
    cudaGraphExec_t e = nullptr;
    cudaGraphInstantiate(&e, g, 0);
    cudaGraphDestroy(g);
    cudaGraphLaunch(e, s);
    cudaGraphLaunch(e, s);
    cudaMemcpy(&v, x, sizeof v, cudaMemcpyDeviceToHost);
    check(v == 2, "each graph launch runs it once");
    cudaGraphExecDestroy(e);

    cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
    check(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported, "synchronising a capturing stream fails");
    end = cudaStreamEndCapture(s, &g);
    cudaStreamIsCapturing(s, &st);
    check(end == cudaErrorStreamCaptureInvalidated && g == nullptr && st == cudaStreamCaptureStatusNone,
          "... and invalidates the capture, which then ends without a graph");
    cudaGetLastError();

    cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
    check(cudaMemsetAsync(x, 0, sizeof(float), nullptr) == cudaErrorStreamCaptureUnsupported,
          "work on the legacy stream during a capture fails");
    cudaStreamEndCapture(s, &g);
    cudaGetLastError();
    cudaFree(x);
  }
  {  // graph memory
    cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
    void *kept = nullptr, *scratch = nullptr;
    cudaMallocAsync(&kept, 64, s);
    cudaMallocAsync(&scratch, 64, s);
    cudaFreeAsync(scratch, s);
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(s, &g);
    cudaGraphExec_t e = nullptr;
    cudaGraphInstantiate(&e, g, 0);
    cudaGraphDestroy(g);
    check(cudaGraphLaunch(e, s) == cudaSuccess, "a graph with allocations launches");
    check(cudaGraphLaunch(e, s) == cudaErrorIllegalState,
          "... but not again while an allocation it made is still live");
    cudaGetLastError();
    cudaFreeAsync(kept, s);
    check(cudaGraphLaunch(e, s) == cudaSuccess, "... and again once it is freed");
    cudaFreeAsync(kept, s);
    cudaGraphExecDestroy(e);
  }
  cudaStreamDestroy(s);
  std::printf("%d failed\n", failures);
  return failures == 0 ? 0 : 1;
}

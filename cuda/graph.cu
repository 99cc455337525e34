// CUDA graphs for compiled training steps: native/capture.cc captures each stretch of a step's static GPU kernels
// once, by running them while the stream is in capture mode, and replays it with one cudaGraphLaunch.
//
// innflow_cuda_graph_begin()         -> starts capturing the stream (work is recorded, not run)
// innflow_cuda_graph_end(&graph)     -> ends the capture, instantiates it; graph is a cudaGraphExec_t
// innflow_cuda_graph_abort()         -> ends a failed capture and discards it
// innflow_cuda_graph_launch(graph)   -> queues one replay on the stream
// innflow_cuda_graph_destroy(graph)
//
// Allocations made by kernels during capture (scratch buffers from the stream-ordered pool) become the graph's
// own memory nodes; the tensors a step reads and writes were allocated before capture and stay at fixed addresses.
#include "common.cuh"

using namespace innflow_cuda;

extern "C" int innflow_cuda_graph_begin(void) {
  // cuBLAS must not allocate its workspace inside a capture: give it the preallocated one.
  INNFLOW_CUBLAS_TRY(cublasSetWorkspace(cublas(), cublasLtWorkspace(), cublasLtWorkspaceBytes()));
  // Relaxed: other threads of the process may still call CUDA APIs that are unsafe during capture (they never touch
  // this stream), and a kernel that tried a synchronising call fails the capture with CUDA's message.
  INNFLOW_CUDA_TRY(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed));
  return INNFLOW_CUDA_OK;
}

extern "C" int innflow_cuda_graph_end(void** graph) {
  cudaGraph_t g = nullptr;
  INNFLOW_CUDA_TRY(cudaStreamEndCapture(stream(), &g));
  cudaGraphExec_t exec = nullptr;
  cudaError_t err = cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  if (err != cudaSuccess) return cudaFailure(err, "cudaGraphInstantiate", __FILE__, __LINE__);
  *graph = exec;
  return INNFLOW_CUDA_OK;
}

extern "C" int innflow_cuda_graph_abort(void) {
  cudaGraph_t g = nullptr;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream(), &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
    cudaStreamEndCapture(stream(), &g);  // fails for an invalidated capture; either way the stream leaves capture mode
    if (g) cudaGraphDestroy(g);
  }
  cudaGetLastError();
  return INNFLOW_CUDA_OK;
}

extern "C" int innflow_cuda_graph_launch(void* graph) {
  INNFLOW_CUDA_TRY(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), stream()));
  return INNFLOW_CUDA_OK;
}

extern "C" int innflow_cuda_graph_destroy(void* graph) {
  INNFLOW_CUDA_TRY(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph)));
  return INNFLOW_CUDA_OK;
}

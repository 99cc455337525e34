// The CUDA backend as the rest of the addon sees it: allocation, copies and the op-family tables of
// libinnflow_cuda.so (opened at run time by cuda_loader.cc), and the conversion of its failures into errors.
//
// An op family's entry point dispatches on its inputs' device:
//   if (x.onCuda()) cudaCheck(cudaTable<InnflowCudaElementwise>("innflow_cuda_elementwise").unary(...), "unary");
//   else { ...CPU loops... }
#pragma once
#include "../cuda/backend.h"
#include "common.h"

namespace innflow {

// True when the library loaded and its probe found a usable device (loads and probes it on the first call).
bool cudaUsable();
// True when the library was already loaded and found usable; never loads it (a CPU-only program on a machine with
// a GPU must not pay for a CUDA context it does not use).
bool cudaLoaded();
// Runs fn once the library has loaded and found a device (at once if that already happened): settings made before
// CUDA was first used, such as the matmul precision, are applied then.
void cudaWhenLoaded(void (*fn)());
// ERR_CUDA_UNAVAILABLE with the probe's reason unless CUDA is usable.
void requireCuda(const char* op);
// A symbol of the loaded library (ERR_CUDA_UNAVAILABLE when the library is not usable or lacks it).
void* cudaSymbol(const char* name);
// Throws ERR_OOM or ERR_DEVICE (with the library's message) when status is not INNFLOW_CUDA_OK.
void cudaCheck(int status, const char* op);

// The library's table of one op family, fetched once (getter: "innflow_cuda_<family>").
template <class Table>
const Table& cudaTable(const char* getter) {
  static const Table* table = reinterpret_cast<const Table* (*)()>(cudaSymbol(getter))();
  return *table;
}

// Device memory from the library's pool (used by Storage).
void* cudaAllocate(size_t bytes);
void cudaRelease(void* ptr);
// Copies bytes; kind is INNFLOW_COPY_H2D / D2H / D2D.
void cudaCopy(void* dst, const void* src, size_t bytes, int kind);
// Used and reserved bytes of the device pool (zeros when CUDA is not in use).
void cudaPoolStats(size_t* usedBytes, size_t* reservedBytes);
void cudaEmptyCache();

// y[0..n) = value on the device; y = (dst dtype) x on the device.
void cudaFill(DType dtype, void* y, int64_t n, double value);
void cudaCast(DType srcDtype, const void* x, DType dstDtype, void* y, int64_t n);

// The ABI's dtype code.
inline int cudaDtype(DType d) { return d == DType::F32 ? INNFLOW_F32 : INNFLOW_F64; }

}  // namespace innflow

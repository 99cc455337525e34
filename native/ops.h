// Every op family registers its entry points here. One family per file in native/cpu/ (and, for the GPU, in cuda/).
#pragma once
#include <napi.h>

namespace innflow {
void registerTensor(Napi::Env env, Napi::Object exports);       // native/tensor.cc
void registerCuda(Napi::Env env, Napi::Object exports);         // native/cuda_loader.cc (the CUDA backend library)
void registerRandom(Napi::Env env, Napi::Object exports);       // native/cpu/random.cc
void registerElementwise(Napi::Env env, Napi::Object exports);  // native/cpu/elementwise.cc
void registerReduce(Napi::Env env, Napi::Object exports);       // native/cpu/reduce.cc
void registerShapeOps(Napi::Env env, Napi::Object exports);     // native/cpu/shape.cc
void registerMatmul(Napi::Env env, Napi::Object exports);       // native/cpu/matmul.cc
void registerConv(Napi::Env env, Napi::Object exports);         // native/cpu/conv.cc
void registerLinalg(Napi::Env env, Napi::Object exports);       // native/cpu/linalg.cc
void registerOptim(Napi::Env env, Napi::Object exports);        // native/cpu/optim.cc
void registerLuConv(Napi::Env env, Napi::Object exports);       // native/cpu/lu_conv.cc
void registerCoupling(Napi::Env env, Napi::Object exports);     // native/cpu/coupling.cc
void registerActNorm(Napi::Env env, Napi::Object exports);      // native/cpu/actnorm.cc
void registerLoss(Napi::Env env, Napi::Object exports);         // native/cpu/loss.cc
void registerCapture(Napi::Env env, Napi::Object exports);      // native/capture.cc (compiled steps)
}  // namespace innflow

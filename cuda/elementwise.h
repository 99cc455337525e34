// The elementwise family's table (cuda/elementwise.cu), shared by the addon (native/cpu/elementwise.cc) and the
// library. Tensors are contiguous, row-major, of one dtype (0 = float32, 1 = float64). Shapes are passed as
// (pointer, ndim); an operand's shape is right-aligned against the output's and broadcast where its size is 1
// (NumPy rules; the addon has checked that the shapes broadcast). A broadcasting call needs ndim ≤
// INNFLOW_CUDA_MAX_DIMS unless every operand already has the output's shape.
//
// The op codes are those of native/cpu/elementwise.cc (it static_asserts that they agree), and every formula
// is the CPU's, evaluated in the tensor's dtype — except float32 tanh, which uses CUDA's tanhf.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  INNFLOW_U_NEG, INNFLOW_U_EXP, INNFLOW_U_LOG, INNFLOW_U_SQRT, INNFLOW_U_SQUARE, INNFLOW_U_TANH, INNFLOW_U_ATAN,
  INNFLOW_U_SIGMOID, INNFLOW_U_SOFTPLUS, INNFLOW_U_RELU, INNFLOW_U_LEAKY_RELU, INNFLOW_U_ELU, INNFLOW_U_ABS,
  INNFLOW_U_CLAMP, INNFLOW_U_POW, INNFLOW_U_LOG1P, INNFLOW_U_EXPM1, INNFLOW_U_SIN, INNFLOW_U_COS,
  INNFLOW_U_RECIPROCAL, INNFLOW_U_SIGN, INNFLOW_U_COUNT
};

enum {
  INNFLOW_B_ADD, INNFLOW_B_SUB, INNFLOW_B_MUL, INNFLOW_B_DIV, INNFLOW_B_POW, INNFLOW_B_MAXIMUM, INNFLOW_B_MINIMUM,
  INNFLOW_B_ATAN2, INNFLOW_B_GT, INNFLOW_B_LT, INNFLOW_B_GE, INNFLOW_B_LE, INNFLOW_B_EQ, INNFLOW_B_NE,
  INNFLOW_B_COUNT
};

typedef struct {
  // x, y: [n].  y[i] = f_op(x[i]; p0, p1)   (p0, p1 converted to the dtype first, as on the CPU)
  int (*unary)(int op, int dtype, const void* x, void* y, int64_t n, double p0, double p1);

  // g, x, y, gx: [n].  gx[i] = g[i] · f_op'(x[i]) (computed from x and/or the forward's output y)
  int (*unaryBackward)(int op, int dtype, const void* g, const void* x, const void* y, void* gx, int64_t n, double p0,
                       double p1);

  // a: [*aShape], b: [*bShape] or, when b is NULL, the number bScalar (a 0-d operand; converted to the dtype),
  // y: [*outShape] = broadcast(aShape, bShape).  y = a op b
  int (*binary)(int op, int dtype, const void* a, const int64_t* aShape, int aNdim, const void* b,
                const int64_t* bShape, int bNdim, double bScalar, void* y, const int64_t* outShape, int outNdim);

  // g, ga, gb: [*outShape]; a, b (or bScalar) as in binary.  ga = g · ∂y/∂a, gb = g · ∂y/∂b at full output size
  // (the caller sums them down to a's and b's shapes); ga or gb may be NULL (not needed).
  int (*binaryBackward)(int op, int dtype, const void* g, const void* a, const int64_t* aShape, int aNdim,
                        const void* b, const int64_t* bShape, int bNdim, double bScalar, void* ga, void* gb,
                        const int64_t* outShape, int outNdim);

  // cond: [*condShape], a: [*aShape], b: [*bShape] or the number bScalar (b NULL), y: [*outShape].
  // y = cond != 0 ? a : b
  int (*where)(int dtype, const void* cond, const int64_t* condShape, int condNdim, const void* a,
               const int64_t* aShape, int aNdim, const void* b, const int64_t* bShape, int bNdim, double bScalar,
               void* y, const int64_t* outShape, int outNdim);

  // g, ga, gb: [*gShape], cond: [*condShape] (broadcasts to gShape).  ga = cond != 0 ? g : 0, gb = cond != 0 ? 0 : g;
  // ga or gb may be NULL.
  int (*whereBackward)(int dtype, const void* g, const int64_t* gShape, int gNdim, const void* cond,
                       const int64_t* condShape, int condNdim, void* ga, void* gb);

  // x: [*xShape] (broadcasts to outShape), y: [*outShape].  y = x · scale  (scale converted to the dtype)
  int (*expand)(int dtype, const void* x, const int64_t* xShape, int xNdim, double scale, void* y,
                const int64_t* outShape, int outNdim);
} InnflowCudaElementwise;

const InnflowCudaElementwise* innflow_cuda_elementwise(void);

#ifdef __cplusplus
}
#endif

// The conv family's table (cuda/conv.cu), shared by the addon and the library. Used by native/cpu/conv.cc.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The geometry of a conv2d, validated by the addon: x [N, C, H, W], w [O, C, KH, KW], strides SH, SW ≥ 1,
// paddings PH, PW ≥ 0, y [N, O, HO, WO] with HO = (H + 2·PH − KH) / SH + 1, WO = (W + 2·PW − KW) / SW + 1.
typedef struct {
  int64_t N, C, H, W, O, KH, KW, SH, SW, PH, PW, HO, WO;
} InnflowConvGeom;

typedef struct {
  // x: [N, C, H, W], w: [O, C, KH, KW], bias: [O] or NULL -> y: [N, O, HO, WO] (cross-correlation, zero padding)
  int (*conv2d)(int dtype, const InnflowConvGeom* g, const void* x, const void* w, const void* bias, void* y);
  // gy: [N, O, HO, WO], x, w -> gx: [N, C, H, W], gw: [O, C, KH, KW], gb: [O]; each output NULL when not wanted.
  // Deterministic: gx by gathering (no atomics), gw and gb summed over the samples in a fixed order.
  int (*conv2dBackward)(int dtype, const InnflowConvGeom* g, const void* gy, const void* x, const void* w, void* gx,
                        void* gw, void* gb);
} InnflowCudaConv;

const InnflowCudaConv* innflow_cuda_conv(void);

#ifdef __cplusplus
}
#endif

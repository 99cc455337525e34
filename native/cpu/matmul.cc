// Matrix products: GEMM (OpenBLAS or the built-in kernel), matmul with torch.matmul's semantics, and linear.
//
// matmul(a: [*A, M, K] | [K], b: [*B, K, N] | [K])     -> c: [broadcast(A, B), M, N]
//     (torch.matmul: a 1-D a is read as [1, K] and a 1-D b as [K, 1]; the added dimension is dropped from c)
// matmulBackward(g: c's shape, a, b, needA, needB)     -> [ga: a's shape | null, gb: b's shape | null]
//     ga = g·bᵀ and gb = aᵀ·g, summed over the batch dimensions that broadcasting stretched
// linear(x: [*, I], w: [O, I], bias: [O] | null, activation?: 'none' | 'relu' | 'tanh')
//                                                       -> y: [*, O]              y = act(x·wᵀ + bias)
// linearBackward(g: [*, O], x, w, needX, needW, needBias)
//                                                       -> [gx: [*, I] | null, gw: [O, I] | null, gbias: [O] | null]
// linearActivationBackward(g: [*, O], y: [*, O], x, w, activation, needX, needW, needBias)
//                                                       -> [gx | null, gw | null, gbias | null]
//     the backward of linear with an activation, from its output y: gz = g·act'(z) (relu: g where y > 0; tanh:
//     g·(1 − y²)), then linearBackward's products of gz
// catLinear(xs: [x_1: [B, n_1], ..., x_k: [B, n_k]], w: [O, Σn_i], bias: [O] | null)
//                                                       -> y: [B, O]              y = cat(xs, 1)·wᵀ + bias
// catLinearBackward(g: [B, O], xs, w, needXs: [k flags], needW, needBias)
//                                                       -> [[gx_i | null ...], gw | null, gbias | null]
//     linear over a concatenation without making it: one GEMM per part against its column block of w
// setGemmBackend(name: 'builtin' | 'openblas')          (ERR_ARGUMENT for 'openblas' when not compiled in)
// setMatmulPrecision('highest' | 'high' | 'medium')     float32 GEMM arithmetic on the GPU (fp32 | TF32 | bf16)
// getGemmBackend()                                     -> 'builtin' | 'openblas'
// setGemmKernel(name: 'auto' | 'avx512' | 'avx2' | 'generic')   (testing: which built-in micro-kernel runs)
// getGemmKernel()                                      -> the built-in micro-kernel in use
//
// CUDA tensors go to the matmul table of the CUDA backend (cuda/matmul.cu: cuBLAS strided-batched GEMMs,
// the sums over broadcast batch dimensions and the bias kernels there); the backend and kernel choices only
// concern the CPU.
//
// The backend is OpenBLAS when the addon was built with it, unless INNFLOW_GEMM=builtin is set when the addon
// loads. Every product here goes through gemm<T>; nothing is transposed into a copy, since GEMM takes both
// operands transposed or not.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#ifdef INNFLOW_WITH_OPENBLAS
#include <cblas.h>
#endif

#include "../../cuda/matmul.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"
#include "fast_math.h"
#include "kernels.h"

#if defined(__GNUC__) || defined(__clang__)
#define INNFLOW_ALWAYS_INLINE inline __attribute__((always_inline))
#define INNFLOW_UNROLL _Pragma("GCC unroll 32")
#else
#define INNFLOW_ALWAYS_INLINE inline
#define INNFLOW_UNROLL
#endif
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define INNFLOW_X86_DISPATCH 1
#endif

namespace innflow {

// Defined below; declared here because kernels.h (owned by the runtime) does not list it yet.

namespace {

enum class Backend { Builtin, OpenBLAS };
#ifdef INNFLOW_WITH_OPENBLAS
Backend backend = Backend::OpenBLAS;
#else
Backend backend = Backend::Builtin;
#endif

// True on the threads of a gemmParallelLoop: a GEMM there runs on its calling thread only, because the
// pool's threads are already busy with the other iterations.
thread_local bool serialGemm = false;

// parallelFor for bodies that may throw (an allocation failing): an exception must not leave a pool thread,
// so the first one is kept and rethrown on the calling thread once every chunk has finished.
void parallelForCatching(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  std::exception_ptr error;
  std::mutex mutex;
  parallelFor(n, grain, [&](int64_t b, int64_t e) {
    try {
      fn(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!error) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
}

// ======================================================================================== built-in GEMM
//
// GotoBLAS/BLIS structure. For each KC-long slice of k, op(B) is copied into panels of NR columns
// (interleaved by k) and op(A), block by block, into panels of MR rows (interleaved by k). The micro-kernel
// then reads both with unit stride whatever the transposes, and keeps an MR×NR tile of C in vector registers
// over the whole slice: per k it loads NR/L vectors of B, broadcasts MR values of A, and does MR·NR/L FMAs.
// Work is split into tiles of C (a block of rows × a part of the columns), one task each. Within a tile the
// A micro-panel (KC·MR values) stays in L1 while the tile's B panels (KC × its columns) stream from L2, and
// C is read and written once per slice of k.
//
// Two shapes that are common in small networks get their own treatment, since an MR×NR tile would be mostly
// padding: few columns with both operands contiguous along k (x·wᵀ of a layer with few outputs) become dot
// products vectorised along k, with no packing; other products with few columns (or few rows) run as
// Cᵀ = op(B)ᵀ·op(A)ᵀ with a micro-kernel of 2 or 4 rows, storing the tiles transposed.
//
// The kernels are written with GCC/Clang vector types (no intrinsics), so the same source compiles to NEON,
// SSE2, AVX2+FMA or AVX-512; on x86 the AVX2 and AVX-512 copies are compiled with target attributes and
// picked at run time, so the addon still runs on any x86-64.

template <class T>
using MacroFn = void (*)(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T alpha,
                         T beta, bool transC);

template <class T, int VB>
struct VecOf {
  typedef T type __attribute__((vector_size(VB)));
};

// C[0:mr, 0:nr] = alpha · (Ap panel · Bp panel) + beta · C (C not read when beta is 0: it may be uninitialised).
// With transC the tile is stored transposed: element (r, j) at c[j·ldc + r].
template <class T, int VB, int MR, int NV>
INNFLOW_ALWAYS_INLINE void microTile(int64_t kc, const T* __restrict a, const T* __restrict b, T* __restrict c,
                                     int64_t ldc, int64_t mr, int64_t nr, T alpha, T beta, bool transC) {
  using V = typename VecOf<T, VB>::type;
  constexpr int L = VB / int(sizeof(T));
  constexpr int NR = NV * L;
  V acc[MR][NV];
  INNFLOW_UNROLL for (int r = 0; r < MR; r++) {
    INNFLOW_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = V{};
  }
  for (int64_t k = 0; k < kc; k++) {
    V bv[NV];
    INNFLOW_UNROLL for (int v = 0; v < NV; v++) std::memcpy(&bv[v], b + k * NR + v * L, sizeof(V));
    INNFLOW_UNROLL for (int r = 0; r < MR; r++) {
      const T ar = a[k * MR + r];
      INNFLOW_UNROLL for (int v = 0; v < NV; v++) acc[r][v] += bv[v] * ar;
    }
  }
  if (mr == MR && nr == NR && !transC) {
    INNFLOW_UNROLL for (int r = 0; r < MR; r++) {
      INNFLOW_UNROLL for (int v = 0; v < NV; v++) {
        T* p = c + r * ldc + v * L;
        V out = acc[r][v] * alpha;
        if (beta != T(0)) {
          V old;
          std::memcpy(&old, p, sizeof(V));
          out += old * beta;
        }
        std::memcpy(p, &out, sizeof(V));
      }
    }
    return;
  }
  alignas(64) T tile[MR * NR];
  INNFLOW_UNROLL for (int r = 0; r < MR; r++) {
    INNFLOW_UNROLL for (int v = 0; v < NV; v++) std::memcpy(tile + r * NR + v * L, &acc[r][v], sizeof(V));
  }
  const int64_t rowStride = transC ? 1 : ldc, colStride = transC ? ldc : 1;
  for (int64_t r = 0; r < mr; r++)
    for (int64_t j = 0; j < nr; j++) {
      T* p = c + r * rowStride + j * colStride;
      *p = beta != T(0) ? alpha * tile[r * NR + j] + beta * *p : alpha * tile[r * NR + j];
    }
}

// One tile of C (mc × nc) from a packed A block and packed B panels: one row panel of A at a time against
// every column panel. Stamped out once per instruction set.
#define INNFLOW_DEFINE_MACRO_KERNEL(NAME, ATTR)                                                                   \
  template <class T, int VB, int MR, int NV>                                                                      \
  ATTR void NAME(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T alpha, T beta, \
                 bool transC) {                                                                                   \
    constexpr int64_t NR = NV * (VB / int(sizeof(T)));                                                            \
    for (int64_t i = 0; i < mc; i += MR)                                                                          \
      for (int64_t j = 0; j < nc; j += NR)                                                                        \
        microTile<T, VB, MR, NV>(kc, Ap + i * kc, Bp + j * kc, transC ? C + j * ldc + i : C + i * ldc + j, ldc,   \
                                 std::min<int64_t>(MR, mc - i), std::min<int64_t>(NR, nc - j), alpha, beta,       \
                                 transC);                                                                         \
  }

INNFLOW_DEFINE_MACRO_KERNEL(macroGeneric, )
#ifdef INNFLOW_X86_DISPATCH
INNFLOW_DEFINE_MACRO_KERNEL(macroAvx2, __attribute__((target("avx2,fma"))))
INNFLOW_DEFINE_MACRO_KERNEL(macroAvx512, __attribute__((target("avx512f,avx2,fma"))))
#endif

// Products with few columns whose operands both run along k in memory (x·wᵀ for a layer with few outputs):
// each C[i][j] is a dot product of row i of A and row j of Bt, vectorised along k, RB rows × CB columns at a
// time. No packing (which would cost as much as the arithmetic here); A is read once. Rows [i0, i1) of C.
template <class T>
using DotFn = void (*)(int64_t i0, int64_t i1, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* Bt,
                       int64_t ldbt, T beta, T* C, int64_t ldc);

#define INNFLOW_DEFINE_DOT_KERNEL(NAME, ATTR)                                                                    \
  template <class T, int VB, int RB, int CB>                                                                     \
  ATTR void NAME(int64_t i0, int64_t i1, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* Bt,     \
                 int64_t ldbt, T beta, T* C, int64_t ldc) {                                                      \
    using V = typename VecOf<T, VB>::type;                                                                       \
    constexpr int L = VB / int(sizeof(T));                                                                       \
    for (int64_t i = i0; i < i1; i += RB) {                                                                      \
      const int64_t rows = std::min<int64_t>(RB, i1 - i);                                                        \
      for (int64_t j = 0; j < N; j += CB) {                                                                      \
        const int64_t cols = std::min<int64_t>(CB, N - j);                                                       \
        /* a short last block repeats its last row/column: computed, never stored */                             \
        const T* a[RB];                                                                                          \
        const T* b[CB];                                                                                          \
        INNFLOW_UNROLL for (int r = 0; r < RB; r++) a[r] = A + (i + std::min<int64_t>(r, rows - 1)) * lda;        \
        INNFLOW_UNROLL for (int c = 0; c < CB; c++) b[c] = Bt + (j + std::min<int64_t>(c, cols - 1)) * ldbt;      \
        V acc[RB][CB];                                                                                           \
        INNFLOW_UNROLL for (int r = 0; r < RB; r++) {                                                            \
          INNFLOW_UNROLL for (int c = 0; c < CB; c++) acc[r][c] = V{};                                           \
        }                                                                                                        \
        int64_t k = 0;                                                                                           \
        for (; k + L <= K; k += L) {                                                                             \
          V av[RB], bv[CB];                                                                                      \
          INNFLOW_UNROLL for (int r = 0; r < RB; r++) std::memcpy(&av[r], a[r] + k, sizeof(V));                  \
          INNFLOW_UNROLL for (int c = 0; c < CB; c++) std::memcpy(&bv[c], b[c] + k, sizeof(V));                  \
          INNFLOW_UNROLL for (int r = 0; r < RB; r++) {                                                          \
            INNFLOW_UNROLL for (int c = 0; c < CB; c++) acc[r][c] += av[r] * bv[c];                              \
          }                                                                                                      \
        }                                                                                                        \
        for (int64_t r = 0; r < rows; r++)                                                                       \
          for (int64_t c = 0; c < cols; c++) {                                                                   \
            T sum = T(0);                                                                                        \
            for (int l = 0; l < L; l++) sum += acc[r][c][l];                                                     \
            for (int64_t kk = k; kk < K; kk++) sum += a[r][kk] * b[c][kk];                                       \
            T* p = C + (i + r) * ldc + j + c;                                                                    \
            *p = beta != T(0) ? alpha * sum + beta * *p : alpha * sum;                                           \
          }                                                                                                      \
      }                                                                                                          \
    }                                                                                                            \
  }

INNFLOW_DEFINE_DOT_KERNEL(dotGeneric, )
#ifdef INNFLOW_X86_DISPATCH
INNFLOW_DEFINE_DOT_KERNEL(dotAvx2, __attribute__((target("avx2,fma"))))
INNFLOW_DEFINE_DOT_KERNEL(dotAvx512, __attribute__((target("avx512f,avx2,fma"))))
#endif

// A micro-kernel shape: MR rows (the macro-kernel instantiated for it) by NR columns.
template <class T>
struct MicroKernel {
  int64_t mr;
  MacroFn<T> macro;
};

template <class T>
struct KernelConfig {
  int64_t nr;       // micro-tile columns (two vectors)
  MicroKernel<T> full;       // the widest MR: all the registers
  MicroKernel<T> narrow[2];  // fewer rows, for products with only a few rows (after the swap below, few columns)
  int64_t kc;       // slice of k: an A micro-panel (KC·MR) fills ~20 KiB of L1
  int64_t ncTile;   // most columns per tile: its B panels (KC·ncTile) fill ~384 KiB of L2
  int64_t mcTile;   // most rows per tile
  int64_t ncPack;   // columns of B packed at once (shared by all tiles)
  DotFn<T> dot;     // the dot-product kernel for few columns
  int64_t dotRows;  // rows it handles at a time

  // The smallest micro-kernel that covers m rows in one panel, or the full one.
  const MicroKernel<T>& forRows(int64_t m) const {
    for (const MicroKernel<T>& k : narrow)
      if (m <= k.mr) return k;
    return full;
  }
};

template <class T, int VB, int MR>
KernelConfig<T> makeConfig(MicroKernel<T> small0, MicroKernel<T> small1, MacroFn<T> fn,
                           DotFn<T> dot, int64_t dotRows) {
  constexpr int64_t NR = 2 * VB / int64_t(sizeof(T)), S = int64_t(sizeof(T));
  const int64_t kc = std::clamp<int64_t>(20480 / (MR * S) / 16 * 16, 128, 384);
  const int64_t ncTile = std::max<int64_t>(NR, 393216 / (kc * S) / NR * NR);
  return {NR, {MR, fn}, {small0, small1}, kc, ncTile, 480 / MR * MR, 4096, dot, dotRows};
}

enum class Isa { Generic, Avx2, Avx512 };

bool isaSupported(Isa isa) {
  if (isa == Isa::Generic) return true;
#ifdef INNFLOW_X86_DISPATCH
  __builtin_cpu_init();
  if (isa == Isa::Avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

Isa bestIsa() {
  if (isaSupported(Isa::Avx512)) return Isa::Avx512;
  if (isaSupported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Generic;
}

Isa currentIsa = bestIsa();

template <class T>
KernelConfig<T> configFor(Isa isa) {
#ifdef INNFLOW_X86_DISPATCH
  // 2 vectors wide: AVX-512 has 32 registers (24 accumulators), AVX2 and SSE 16 (12 accumulators).
  if (isa == Isa::Avx512)
    return makeConfig<T, 64, 12>({2, &macroAvx512<T, 64, 2, 2>}, {4, &macroAvx512<T, 64, 4, 2>},
                                 &macroAvx512<T, 64, 12, 2>, &dotAvx512<T, 64, 4, 4>, 4);
  if (isa == Isa::Avx2)
    return makeConfig<T, 32, 6>({2, &macroAvx2<T, 32, 2, 2>}, {4, &macroAvx2<T, 32, 4, 2>},
                                &macroAvx2<T, 32, 6, 2>, &dotAvx2<T, 32, 2, 4>, 2);
#endif
  (void)isa;
  return makeConfig<T, 16, 6>({2, &macroGeneric<T, 16, 2, 2>}, {4, &macroGeneric<T, 16, 4, 2>},
                              &macroGeneric<T, 16, 6, 2>, &dotGeneric<T, 16, 2, 4>, 2);
}

// Built once (thread-safe static initialisation: the first GEMM may run on several threads at once).
template <class T>
const KernelConfig<T>& activeConfig() {
  static const KernelConfig<T> all[3] = {configFor<T>(Isa::Generic), configFor<T>(Isa::Avx2), configFor<T>(Isa::Avx512)};
  return all[int(currentIsa)];
}

// A per-thread, 64-byte aligned scratch buffer that only grows (packing runs on every call).
template <class T, int Tag>
T* scratch(size_t n) {
  struct Buf {
    void* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf buf;
  if (buf.n < n) {
    std::free(buf.p);
    buf.p = nullptr;
    buf.n = 0;
    size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    buf.p = std::aligned_alloc(64, bytes);
    if (!buf.p) throw std::bad_alloc();
    buf.n = n;
  }
  return static_cast<T*>(buf.p);
}

// dst[k·ldd + c] = src[c·lds + k] for c < cols, k < kc, with zeros in columns [cols, width): the transposition
// behind packing a row-major A, or a transposed B. Done 16 k at a time so that the rows of dst being written
// stay in L1 while each source row is read in cache-line runs.
template <class T>
void transposeInto(const T* src, int64_t lds, int64_t cols, int64_t width, int64_t kc, T* dst, int64_t ldd) {
  for (int64_t k0 = 0; k0 < kc; k0 += 16) {
    const int64_t k1 = std::min(kc, k0 + 16);
    for (int64_t c = 0; c < cols; c++) {
      const T* s = src + c * lds;
      for (int64_t k = k0; k < k1; k++) dst[k * ldd + c] = s[k];
    }
    for (int64_t k = k0; k < k1; k++)
      for (int64_t c = cols; c < width; c++) dst[k * ldd + c] = T(0);
  }
}

// float: 4×4 blocks transposed in registers with two rounds of shuffles, about twice as fast as the scalar
// copy (for double, 2×2 blocks gain nothing over it).
template <>
void transposeInto<float>(const float* src, int64_t lds, int64_t cols, int64_t width, int64_t kc, float* dst,
                          int64_t ldd) {
  typedef float V __attribute__((vector_size(16)));
#if defined(__clang__)
#define INNFLOW_SHUFFLE4(a, b, i0, i1, i2, i3) __builtin_shufflevector(a, b, i0, i1, i2, i3)
#else
  typedef int32_t I __attribute__((vector_size(16)));
#define INNFLOW_SHUFFLE4(a, b, i0, i1, i2, i3) __builtin_shuffle(a, b, I{i0, i1, i2, i3})
#endif
  int64_t c0 = 0;
  for (; c0 + 4 <= cols; c0 += 4) {
    const float* s0 = src + c0 * lds;
    const float *s1 = s0 + lds, *s2 = s1 + lds, *s3 = s2 + lds;
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4) {
      V a, b, c, d;
      std::memcpy(&a, s0 + k, sizeof(V));
      std::memcpy(&b, s1 + k, sizeof(V));
      std::memcpy(&c, s2 + k, sizeof(V));
      std::memcpy(&d, s3 + k, sizeof(V));
      const V t0 = INNFLOW_SHUFFLE4(a, b, 0, 4, 1, 5), t1 = INNFLOW_SHUFFLE4(a, b, 2, 6, 3, 7);
      const V t2 = INNFLOW_SHUFFLE4(c, d, 0, 4, 1, 5), t3 = INNFLOW_SHUFFLE4(c, d, 2, 6, 3, 7);
      const V r0 = INNFLOW_SHUFFLE4(t0, t2, 0, 1, 4, 5), r1 = INNFLOW_SHUFFLE4(t0, t2, 2, 3, 6, 7);
      const V r2 = INNFLOW_SHUFFLE4(t1, t3, 0, 1, 4, 5), r3 = INNFLOW_SHUFFLE4(t1, t3, 2, 3, 6, 7);
      std::memcpy(dst + (k + 0) * ldd + c0, &r0, sizeof(V));
      std::memcpy(dst + (k + 1) * ldd + c0, &r1, sizeof(V));
      std::memcpy(dst + (k + 2) * ldd + c0, &r2, sizeof(V));
      std::memcpy(dst + (k + 3) * ldd + c0, &r3, sizeof(V));
    }
    for (; k < kc; k++) {
      float* o = dst + k * ldd + c0;
      o[0] = s0[k];
      o[1] = s1[k];
      o[2] = s2[k];
      o[3] = s3[k];
    }
  }
#undef INNFLOW_SHUFFLE4
  for (int64_t k = 0; k < kc; k++) {
    float* o = dst + k * ldd;
    for (int64_t c = c0; c < cols; c++) o[c] = src[c * lds + k];
    for (int64_t c = std::max(c0, cols); c < width; c++) o[c] = 0.0f;
  }
}

// Rows [i0, i0+mc) × k [p0, p0+kc) of op(A) into panels of mr rows (zero-padded): panel at out + i·kc.
template <class T>
void packA(bool transA, const T* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int64_t mr, T* out) {
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int64_t rows = std::min(mr, mc - ip);
    T* dst = out + ip * kc;
    if (!transA) {
      // op(A)[i][k] = A[i·lda + k]: rows of A become columns of the panel
      transposeInto(A + (i0 + ip) * lda + p0, lda, rows, mr, kc, dst, mr);
    } else {
      // op(A)[i][k] = A[k·lda + i]: each k is a contiguous run of rows
      for (int64_t k = 0; k < kc; k++) {
        const T* s = A + (p0 + k) * lda + i0 + ip;
        T* d = dst + k * mr;
        for (int64_t r = 0; r < rows; r++) d[r] = s[r];
        for (int64_t r = rows; r < mr; r++) d[r] = T(0);
      }
    }
  }
}

// Panels [q0, q1) of nr columns of op(B) rows [p0, p0+kc), columns from j0 (zero-padded up to nc): at out + q·nr·kc.
template <class T>
void packB(bool transB, const T* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int64_t nr,
           int64_t q0, int64_t q1, T* out) {
  for (int64_t q = q0; q < q1; q++) {
    const int64_t j = q * nr, cols = std::min(nr, nc - j);
    T* dst = out + j * kc;
    if (!transB) {
      for (int64_t k = 0; k < kc; k++) {
        const T* s = B + (p0 + k) * ldb + j0 + j;
        T* d = dst + k * nr;
        std::memcpy(d, s, size_t(cols) * sizeof(T));
        for (int64_t c = cols; c < nr; c++) d[c] = T(0);
      }
    } else {
      // op(B)[k][j] = B[j·ldb + k]: rows of B become columns of the panel
      transposeInto(B + (j0 + j) * ldb + p0, ldb, cols, nr, kc, dst, nr);
    }
  }
}

template <class T>
void scaleMatrix(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++) {
    T* row = C + i * ldc;
    if (beta == T(0)) std::fill_n(row, N, T(0));
    else if (beta != T(1))
      for (int64_t j = 0; j < N; j++) row[j] *= beta;
  }
}

template <class T>
void builtinGemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 const T* B, int64_t ldb, T beta, T* C, int64_t ldc, bool parallel) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    scaleMatrix(M, N, beta, C, ldc);
    return;
  }
  const KernelConfig<T>& cf = activeConfig<T>();
  const int threads = numThreads();
  // below ~2^20 multiply-adds (10-20 µs on one core) waking the pool costs about as much as it saves
  parallel = parallel && threads > 1 && double(M) * double(N) * double(K) >= 1048576.0;

  if (!transA && N <= 8) {
    // few columns, rows of A contiguous along k: dot products (op(B) as N rows along k, copied if needed)
    const T* Bt = B;
    int64_t ldbt = ldb;
    if (!transB) {
      T* t = scratch<T, 0>(size_t(N * K));
      for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) t[j * K + k] = B[k * ldb + j];
      Bt = t;
      ldbt = K;
    }
    const int64_t rb = cf.dotRows, blocks = (M + rb - 1) / rb;
    auto run = [&](int64_t b0, int64_t b1) {
      cf.dot(b0 * rb, std::min(M, b1 * rb), N, K, alpha, A, lda, Bt, ldbt, beta, C, ldc);
    };
    if (parallel) parallelFor(blocks, std::max<int64_t>(1, 32768 / (rb * N * K)), run);
    else run(0, blocks);
    return;
  }

  // Few columns (or few rows) fill only part of each MR×NR tile. The tiles of Cᵀ = op(B)ᵀ·op(A)ᵀ, stored
  // transposed, cover the same product: take that orientation (with the narrow micro-kernels for few rows)
  // when it wastes much less, since storing tiles transposed costs a scattered write per element of C.
  auto used = [&](int64_t m, int64_t n) {
    const int64_t mr = cf.forRows(m).mr;
    return double(m) / double((m + mr - 1) / mr * mr) * double(n) / double((n + cf.nr - 1) / cf.nr * cf.nr);
  };
  bool transC = false;
  if (used(N, M) > 1.5 * used(M, N)) {
    std::swap(M, N);
    std::swap(A, B);
    std::swap(lda, ldb);
    const bool tA = transA;
    transA = !transB;
    transB = !tA;
    transC = true;
  }
  const MicroKernel<T>& mk = cf.forRows(M);
  const int64_t mr = mk.mr, nr = cf.nr;

  const int64_t ncMax = std::min(N, cf.ncPack), kcMax = std::min(K, cf.kc);
  T* Bp = scratch<T, 0>(size_t((ncMax + nr - 1) / nr * nr * kcMax));
  const int64_t panelsM = (M + mr - 1) / mr;

  for (int64_t jc = 0; jc < N; jc += cf.ncPack) {
    const int64_t nc = std::min(cf.ncPack, N - jc);
    const int64_t panelsN = (nc + nr - 1) / nr;
    // Tiles: row blocks × column parts, cut at panel boundaries as evenly as possible. In parallel, cut
    // finer until every thread has work and the tiles divide evenly among the threads (a small batch through
    // a wide layer gets split by columns; each part packs its rows of A again, 1/(its columns) of its work).
    int64_t mBlocks = (panelsM * mr + cf.mcTile - 1) / cf.mcTile;
    int64_t nParts = (panelsN * nr + cf.ncTile - 1) / cf.ncTile;
    if (parallel) {
      while (mBlocks * nParts < threads && (mBlocks < panelsM || nParts < panelsN)) {
        const bool splitRows = nParts >= panelsN || (mBlocks < panelsM && panelsM / mBlocks >= panelsN / nParts);
        if (splitRows) mBlocks = std::min(panelsM, mBlocks * 2);
        else nParts = std::min(panelsN, nParts * 2);
      }
      const int64_t tasks = mBlocks * nParts;
      if (tasks < 4 * threads && tasks % threads != 0) {
        for (int64_t extra = 1; extra < threads; extra++) {
          if (mBlocks + extra <= panelsM && ((mBlocks + extra) * nParts) % threads == 0) {
            mBlocks += extra;
            break;
          }
          if (nParts + extra <= panelsN && (mBlocks * (nParts + extra)) % threads == 0) {
            nParts += extra;
            break;
          }
        }
      }
    }
    const int64_t tasks = mBlocks * nParts;

    for (int64_t pc = 0; pc < K; pc += cf.kc) {
      const int64_t kc = std::min(cf.kc, K - pc);
      const T stepBeta = pc == 0 ? beta : T(1);
      auto pack = [&](int64_t q0, int64_t q1) { packB(transB, B, ldb, pc, kc, jc, nc, nr, q0, q1, Bp); };
      // a small slice of B is packed by the calling thread: one wake-up of the pool per slice, not two
      if (parallel && nc * kc >= 32768) parallelFor(panelsN, 4, pack);
      else pack(0, panelsN);

      auto compute = [&](int64_t t0, int64_t t1) {
        T* Ap = scratch<T, 1>(size_t(((panelsM + mBlocks - 1) / mBlocks) * mr * kc));
        int64_t packed = -1;  // the row block now in Ap
        for (int64_t t = t0; t < t1; t++) {
          const int64_t mb = t / nParts, part = t % nParts;
          const int64_t i0 = panelsM * mb / mBlocks * mr, i1 = std::min(M, panelsM * (mb + 1) / mBlocks * mr);
          const int64_t j0 = panelsN * part / nParts * nr, j1 = std::min(nc, panelsN * (part + 1) / nParts * nr);
          if (i0 >= i1 || j0 >= j1) continue;
          if (packed != mb) {
            packA(transA, A, lda, i0, i1 - i0, pc, kc, mr, Ap);
            packed = mb;
          }
          T* tile = transC ? C + (jc + j0) * ldc + i0 : C + i0 * ldc + jc + j0;
          mk.macro(i1 - i0, j1 - j0, kc, Ap, Bp + j0 * kc, tile, ldc, alpha, stepBeta, transC);
        }
      };
      if (parallel) parallelForCatching(tasks, 1, compute);
      else compute(0, tasks);
    }
  }
}

// ======================================================================================== OpenBLAS

#ifdef INNFLOW_WITH_OPENBLAS
bool fitsBlasInt(int64_t v) { return v >= 0 && v <= int64_t(std::numeric_limits<blasint>::max()); }

// OpenBLAS has its own threads; keep their number equal to the pool's (setNumThreads may change it at any
// time, and gemmParallelLoop sets it to 1), reading OpenBLAS's current value since that is a plain load.
void syncBlasThreads(int n) {
  if (openblas_get_num_threads() != n) openblas_set_num_threads(n);
}

void blasGemm(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, blasint(M), blasint(N),
              blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc));
}
void blasGemm(bool tA, bool tB, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
              const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, blasint(M), blasint(N),
              blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc));
}
#endif

}  // namespace

template <class T>
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scaleMatrix(M, N, beta, C, ldc);
    return;
  }
#ifdef INNFLOW_WITH_OPENBLAS
  if (backend == Backend::OpenBLAS && fitsBlasInt(M) && fitsBlasInt(N) && fitsBlasInt(K) && fitsBlasInt(lda) &&
      fitsBlasInt(ldb) && fitsBlasInt(ldc)) {
    // Below ~1M multiply-adds a product runs on the calling thread: waking OpenBLAS's threads costs more than
    // they save there (moons-b256's products are 256×512×2 or thinner).
    constexpr int64_t kSmallGemm = int64_t(1) << 20;
    if (!serialGemm) syncBlasThreads(M * N * K < kSmallGemm ? 1 : numThreads());
    // cblas rejects (and prints about) leading dimensions below the row length even for unused operands
    const int64_t la = std::max<int64_t>({lda, transA ? M : K, 1}), lb = std::max<int64_t>({ldb, transB ? K : N, 1});
    blasGemm(transA, transB, M, N, K, alpha, A, la, B, lb, beta, C, std::max<int64_t>(ldc, N));
    return;
  }
#endif
  builtinGemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, !serialGemm);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);

// Runs body over [0, n) on the pool, with every GEMM inside it on its own calling thread: for many independent
// products (a convolution's samples, a batched matmul), one product per thread beats threading each one.
void gemmParallelLoop(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
#ifdef INNFLOW_WITH_OPENBLAS
  if (backend == Backend::OpenBLAS && !serialGemm && numThreads() > 1) syncBlasThreads(1);
#endif
  parallelForCatching(n, 1, [&](int64_t b, int64_t e) {
    struct Serial {  // restored even when body throws
      bool outer = serialGemm;
      Serial() { serialGemm = true; }
      ~Serial() { serialGemm = outer; }
    } serial;
    body(b, e);
  });
}

namespace {

// ======================================================================================== matmul

struct MatmulDims {
  int64_t M = 1, K = 1, N = 1;
  Shape aBatch, bBatch, batch, out;
  int64_t nBatch = 1;
};

MatmulDims matmulDims(const Shape& a, const Shape& b) {
  if (a.empty() || b.empty())
    fail("ERR_SHAPE", "matmul: both operands need at least one dimension, got shapes " + shapeString(a) + " and " +
                          shapeString(b));
  MatmulDims d;
  const bool aVec = a.size() == 1, bVec = b.size() == 1;
  d.M = aVec ? 1 : a[a.size() - 2];
  d.K = a.back();
  const int64_t kb = bVec ? b[0] : b[b.size() - 2];
  d.N = bVec ? 1 : b.back();
  if (kb != d.K)
    fail("ERR_SHAPE", "matmul: shapes " + shapeString(a) + " and " + shapeString(b) + " cannot be multiplied (" +
                          std::to_string(d.K) + " columns against " + std::to_string(kb) + " rows)");
  d.aBatch.assign(a.begin(), a.end() - (aVec ? 1 : 2));
  d.bBatch.assign(b.begin(), b.end() - (bVec ? 1 : 2));
  d.batch = broadcastShapes(d.aBatch, d.bBatch, "matmul (batch dimensions)");
  d.nBatch = numelOf(d.batch);
  d.out = d.batch;
  if (!aVec) d.out.push_back(d.M);
  if (!bVec) d.out.push_back(d.N);
  return d;
}

// For every index of the broadcast batch, which matrix of an operand with batch shape `s` it reads.
std::vector<int64_t> batchIndex(const Shape& s, const Shape& batch) {
  const int64_t n = numelOf(batch);
  const size_t nd = batch.size(), lead = nd - s.size();
  std::vector<int64_t> stride(nd, 0);
  for (int64_t i = int64_t(nd) - 1, st = 1; i >= int64_t(lead); i--) {
    const int64_t size = s[size_t(i) - lead];
    stride[size_t(i)] = size == 1 ? 0 : st;
    st *= size;
  }
  std::vector<int64_t> out(size_t(n), 0);
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; i++) {
    out[size_t(i)] = off;
    for (int64_t d = int64_t(nd) - 1; d >= 0; d--) {
      if (++idx[size_t(d)] < batch[size_t(d)]) {
        off += stride[size_t(d)];
        break;
      }
      off -= stride[size_t(d)] * (batch[size_t(d)] - 1);
      idx[size_t(d)] = 0;
    }
  }
  return out;
}

// out[j] = Σ over the batch indices i with outIdx[i] = j of op(P[pIdx[i]]) · op(Q[qIdx[i]]) for every one of the
// nOut matrices of out (M×N each). P and Q hold matrices of pSize and qSize values.
template <class T>
void groupedGemm(bool tP, bool tQ, int64_t M, int64_t N, int64_t K, const T* P, int64_t pSize, int64_t ldp,
                 const std::vector<int64_t>& pIdx, const T* Q, int64_t qSize, int64_t ldq,
                 const std::vector<int64_t>& qIdx, T* out, int64_t nOut, const std::vector<int64_t>& outIdx) {
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(nOut));
  for (size_t i = 0; i < outIdx.size(); i++) members[size_t(outIdx[i])].push_back(int64_t(i));
  auto run = [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; j++) {
      T* o = out + j * M * N;
      const std::vector<int64_t>& list = members[size_t(j)];
      if (list.empty()) std::fill_n(o, M * N, T(0));
      for (size_t m = 0; m < list.size(); m++) {
        const int64_t i = list[m];
        gemm<T>(tP, tQ, M, N, K, T(1), P + pIdx[size_t(i)] * pSize, ldp, Q + qIdx[size_t(i)] * qSize, ldq,
                m == 0 ? T(0) : T(1), o, N);
      }
    }
  };
  // many products: one per thread; few: each one threaded
  if (nOut > 1 && nOut >= numThreads()) gemmParallelLoop(nOut, run);
  else run(0, nOut);
}

std::vector<int64_t> identityIndex(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) v[size_t(i)] = i;
  return v;
}

const InnflowCudaMatmul& cudaMatmul() { return cudaTable<InnflowCudaMatmul>("innflow_cuda_matmul"); }

// The batch of a product over a broadcast batch as the GPU's batchedMatmul takes it: the batch and both
// operands' batch shapes with the same number of dims, leaving out the dims of size 1 in the batch (ERR_SHAPE
// when more than INNFLOW_CUDA_MAX_DIMS remain).
struct CudaBatch {
  Shape a, b, batch;
  int ndim() const { return int(batch.size()); }
};

CudaBatch cudaBatch(const MatmulDims& d, const char* op) {
  CudaBatch cb;
  const size_t nd = d.batch.size(), la = nd - d.aBatch.size(), lb = nd - d.bBatch.size();
  for (size_t i = 0; i < nd; i++) {
    if (d.batch[i] == 1) continue;
    cb.batch.push_back(d.batch[i]);
    cb.a.push_back(i < la ? 1 : d.aBatch[i - la]);
    cb.b.push_back(i < lb ? 1 : d.bBatch[i - lb]);
  }
  if (cb.batch.size() > size_t(INNFLOW_CUDA_MAX_DIMS))
    fail("ERR_SHAPE", std::string(op) + ": the batch " + shapeString(d.batch) + " has " +
                          std::to_string(cb.batch.size()) + " dimensions larger than 1; CUDA handles at most " +
                          std::to_string(INNFLOW_CUDA_MAX_DIMS));
  return cb;
}

// The products of matmul and its backward, as kept kernels (capture.h): the dims and the GPU's batch layout are
// worked out (and checked) at the call; the kernel only multiplies.
Tensor matmulForward(const Tensor& a, const Tensor& b) {
  requireSameDtype(a, b, "matmul");
  MatmulDims d = matmulDims(a.shape, b.shape);
  requireSameDevice(a, b, "matmul");
  Tensor c = emptyLike(d.out, a.dtype, a);
  if (c.numel() == 0) return c;
  const bool oneB = numelOf(d.bBatch) == 1;  // one b for the whole batch: the batch of a is just more rows
  if (a.onCuda()) {
    CudaBatch cb;
    if (!oneB) cb = cudaBatch(d, "matmul");
    launch(a.device(), [a, b, c, oneB, M = d.M, K = d.K, N = d.N, nBatch = d.nBatch, cb = std::move(cb)] {
      const int dt = cudaDtype(a.dtype);
      if (oneB)
        cudaCheck(cudaMatmul().gemm(dt, 0, 0, nBatch * M, N, K, 1.0, a.raw(), K, 0, b.raw(), N, 0, 0.0, c.raw(), N, 0, 1),
                  "matmul");
      else
        cudaCheck(cudaMatmul().batchedMatmul(dt, 0, 0, M, N, K, a.raw(), cb.a.data(), b.raw(), cb.b.data(), c.raw(),
                                             cb.batch.data(), cb.batch.data(), cb.ndim()),
                  "matmul");
    });
    return c;
  }
  launch(a.device(), [a, b, c, oneB, d = std::move(d)] {
    const int64_t M = d.M, K = d.K, N = d.N;
    INNFLOW_DISPATCH(a.dtype, T, {
      const T *A = a.data<T>(), *B = b.data<T>();
      T* C = c.data<T>();
      if (oneB) {
        gemm<T>(false, false, d.nBatch * M, N, K, T(1), A, K, B, N, T(0), C, N);
      } else {
        groupedGemm<T>(false, false, M, N, K, A, M * K, K, batchIndex(d.aBatch, d.batch), B, K * N, N,
                       batchIndex(d.bBatch, d.batch), C, d.nBatch, identityIndex(d.nBatch));
      }
    });
  });
  return c;
}

// ga = g·bᵀ summed into a's batch, gb = aᵀ·g summed into b's batch (each only when asked for; the other is left
// empty).
void matmulBackward(const Tensor& g, const Tensor& a, const Tensor& b, bool needA, bool needB, Tensor* gaOut,
                    Tensor* gbOut) {
  requireSameDtype(a, b, "matmul backward");
  requireSameDtype(g, a, "matmul backward");
  MatmulDims d = matmulDims(a.shape, b.shape);
  if (g.shape != d.out)
    fail("ERR_SHAPE", "matmul backward: gradient shape " + shapeString(g.shape) + " differs from the output shape " +
                          shapeString(d.out));
  requireSameDevice(a, b, "matmul backward");
  requireSameDevice(g, a, "matmul backward");
  Tensor ga, gb;
  if (needA) ga = emptyLike(a.shape, a.dtype, a);
  if (needB) gb = emptyLike(b.shape, b.dtype, b);
  *gaOut = ga;
  *gbOut = gb;
  const bool doA = needA && ga.numel() > 0, doB = needB && gb.numel() > 0;
  if (!doA && !doB) return;
  const bool oneB = numelOf(d.bBatch) == 1;  // as in the forward: the batch of a (and g) is just more rows
  if (a.onCuda()) {
    CudaBatch cb;
    if (!oneB) cb = cudaBatch(d, "matmul backward");
    launch(a.device(), [g, a, b, ga, gb, doA, doB, oneB, M = d.M, K = d.K, N = d.N, nBatch = d.nBatch,
                        cb = std::move(cb)] {
      const int dt = cudaDtype(a.dtype);
      if (oneB) {
        if (doA)
          cudaCheck(cudaMatmul().gemm(dt, 0, 1, nBatch * M, K, N, 1.0, g.raw(), N, 0, b.raw(), N, 0, 0.0, ga.raw(), K,
                                      0, 1),
                    "matmul backward");
        if (doB)
          cudaCheck(cudaMatmul().gemm(dt, 1, 0, K, N, nBatch * M, 1.0, a.raw(), K, 0, g.raw(), N, 0, 0.0, gb.raw(), N,
                                      0, 1),
                    "matmul backward");
        return;
      }
      // ga[a's batch] = Σ g_i · b_iᵀ (M×K from M×N and K×N); gb[b's batch] = Σ a_iᵀ · g_i (K×N from M×K and M×N)
      if (doA)
        cudaCheck(cudaMatmul().batchedMatmul(dt, 0, 1, M, K, N, g.raw(), cb.batch.data(), b.raw(), cb.b.data(),
                                             ga.raw(), cb.a.data(), cb.batch.data(), cb.ndim()),
                  "matmul backward");
      if (doB)
        cudaCheck(cudaMatmul().batchedMatmul(dt, 1, 0, K, N, M, a.raw(), cb.a.data(), g.raw(), cb.batch.data(),
                                             gb.raw(), cb.b.data(), cb.batch.data(), cb.ndim()),
                  "matmul backward");
    });
    return;
  }
  launch(a.device(), [g, a, b, ga, gb, doA, doB, oneB, d = std::move(d)] {
    const int64_t M = d.M, K = d.K, N = d.N;
    INNFLOW_DISPATCH(a.dtype, T, {
      const T *A = a.data<T>(), *B = b.data<T>(), *G = g.data<T>();
      const int64_t nA = numelOf(d.aBatch), nB = numelOf(d.bBatch);
      const std::vector<int64_t> aIdx = oneB ? std::vector<int64_t>() : batchIndex(d.aBatch, d.batch);
      const std::vector<int64_t> bIdx = oneB ? std::vector<int64_t>() : batchIndex(d.bBatch, d.batch);
      if (doA) {
        T* GA = ga.data<T>();
        if (oneB) gemm<T>(false, true, d.nBatch * M, K, N, T(1), G, N, B, N, T(0), GA, K);
        else
          groupedGemm<T>(false, true, M, K, N, G, M * N, N, identityIndex(d.nBatch), B, K * N, N, bIdx, GA, nA, aIdx);
      }
      if (doB) {
        T* GB = gb.data<T>();
        // one b for the whole batch: its gradient is one product over all rows of the batch
        if (oneB) gemm<T>(true, false, K, N, d.nBatch * M, T(1), A, K, G, N, T(0), GB, N);
        else
          groupedGemm<T>(true, false, K, N, M, A, M * K, K, aIdx, G, M * N, N, identityIndex(d.nBatch), GB, nB, bIdx);
      }
    });
  });
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const Tensor& a = tensorArg(info, 0, "a");
  const Tensor& b = tensorArg(info, 1, "b");
  return wrap(info.Env(), matmulForward(a, b));
}

Napi::Value MatmulBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  const Tensor& a = tensorArg(info, 1, "a");
  const Tensor& b = tensorArg(info, 2, "b");
  const bool needA = boolArg(info, 3, "needA"), needB = boolArg(info, 4, "needB");
  Tensor ga, gb;
  matmulBackward(g, a, b, needA, needB, &ga, &gb);
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, wrapOrNull(info.Env(), needA ? &ga : nullptr));
  out.Set(1u, wrapOrNull(info.Env(), needB ? &gb : nullptr));
  return out;
}

// ======================================================================================== linear

struct LinearDims {
  int64_t rows, in, out;
  Shape yShape;
};

LinearDims linearDims(const Tensor& x, const Tensor& w, const Tensor* bias) {
  requireSameDtype(x, w, "linear");
  if (w.dim() != 2) fail("ERR_SHAPE", "linear: weight must be 2-D (out, in), got shape " + shapeString(w.shape));
  if (x.dim() < 1) fail("ERR_SHAPE", "linear: x must have at least one dimension, got shape " + shapeString(x.shape));
  LinearDims d;
  d.out = w.shape[0];
  d.in = w.shape[1];
  if (x.shape.back() != d.in)
    fail("ERR_SHAPE", "linear: x " + shapeString(x.shape) + " has " + std::to_string(x.shape.back()) +
                          " features but weight " + shapeString(w.shape) + " expects " + std::to_string(d.in));
  if (bias) {
    requireSameDtype(x, *bias, "linear");
    if (bias->dim() != 1 || bias->shape[0] != d.out)
      fail("ERR_SHAPE", "linear: bias shape " + shapeString(bias->shape) + " does not match weight " +
                            shapeString(w.shape) + " (expected [" + std::to_string(d.out) + "])");
  }
  d.rows = numelOf(Shape(x.shape.begin(), x.shape.end() - 1));
  d.yShape.assign(x.shape.begin(), x.shape.end() - 1);
  d.yShape.push_back(d.out);
  return d;
}

enum Activation : int { A_NONE = INNFLOW_ACT_NONE, A_RELU = INNFLOW_ACT_RELU, A_TANH = INNFLOW_ACT_TANH };
const char* const kActivationNames[INNFLOW_ACT_COUNT] = {"none", "relu", "tanh"};

int activationArg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return A_NONE;
  if (!info[i].IsString()) fail("ERR_ARGUMENT", "linear: activation must be 'none', 'relu' or 'tanh'");
  const std::string name = info[i].As<Napi::String>().Utf8Value();
  for (int a = 0; a < INNFLOW_ACT_COUNT; a++)
    if (name == kActivationNames[a]) return a;
  fail("ERR_ARGUMENT", "linear: activation must be 'none', 'relu' or 'tanh', got '" + name + "'");
  return A_NONE;
}

// y: [n] in place — y = act(y), with the elementwise family's formulas (relu: y > 0 ? y : 0, tanh: tanhOf), so
// that linear with an activation equals linear followed by the activation op bit for bit. Compiled for AVX2 and
// baseline x86-64 as the elementwise loops are (no fused multiply-adds either way).
template <class T, int ACT>
__attribute__((noinline, target_clones("avx2", "default"))) void activationLoop(T* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const T v = y[i];
    y[i] = ACT == A_RELU ? (v > 0 ? v : T(0)) : tanhOf(v);
  }
}

// g, y, gz: [n] — gz = g·act'(z) from y = act(z): relu g where y > 0 (y > 0 exactly where z > 0), tanh g·(1 − y²);
// the elementwise family's relu and tanh gradients, written the same way.
template <class T, int ACT>
__attribute__((noinline, target_clones("avx2", "default"))) void activationGradLoop(const T* __restrict g,
                                                                                   const T* __restrict y,
                                                                                   T* __restrict gz, int64_t n) {
  // g[i] is read unconditionally: written as `y > 0 ? g[i] : 0` GCC reads g through a masked load (vmaskmovps), which
  // made this pass over a 4096 × 256 layer take 0.57 ms instead of ~0.1 on AMD cores.
  for (int64_t i = 0; i < n; i++) {
    const T gi = g[i], yi = y[i];
    gz[i] = ACT == A_RELU ? (yi > T(0) ? gi : T(0)) : gi * (T(1) - yi * yi);
  }
}

// Rows of n values each, split over the pool when there are more than ~256k values (the elementwise grain).
template <class F>
void overRows(int64_t rows, int64_t n, F&& f) {
  parallelFor(rows, std::max<int64_t>(1, 262144 / std::max<int64_t>(n, 1)), [&](int64_t r0, int64_t r1) { f(r0, r1); });
}

// x: [rows, in], w: [O, in], bias: [O] | none, y: [rows, O] — y = act(x·wᵀ + bias). The bias rides in C (every row
// starts as the bias and the GEMM adds x·wᵀ onto it, beta = 1); the activation then runs over each block of rows
// in one pass. On the GPU: one cuBLASLt matmul with the bias and relu in its epilogue (cuda/matmul.cu).
Tensor linearForward(const Tensor& x, const Tensor& w, const Tensor* biasArg, int act = A_NONE) {
  const LinearDims d = linearDims(x, w, biasArg);
  requireSameDevice(x, w, "linear");
  if (biasArg) requireSameDevice(x, *biasArg, "linear");
  Tensor y = emptyLike(d.yShape, x.dtype, x);
  if (y.numel() == 0) return y;
  const bool hasBias = biasArg != nullptr;
  Tensor bias = hasBias ? *biasArg : Tensor();
  launch(x.device(), [x, w, y, bias, hasBias, act, rows = d.rows, in = d.in, O = d.out] {
    if (x.onCuda()) {
      const int dt = cudaDtype(x.dtype);
      if (act != A_NONE) {
        cudaCheck(cudaMatmul().linearActivation(dt, act, x.raw(), w.raw(), hasBias ? bias.raw() : nullptr, rows, in, O,
                                                y.raw()),
                  "linear");
        return;
      }
      // the bias rides in C, as on the CPU: every row starts as the bias and the GEMM adds x·wᵀ onto it
      if (hasBias) cudaCheck(cudaMatmul().broadcastMid(dt, bias.raw(), rows, O, 1, y.raw()), "linear");
      cudaCheck(cudaMatmul().gemm(dt, 0, 1, rows, O, in, 1.0, x.raw(), in, 0, w.raw(), in, 0, hasBias ? 1.0 : 0.0,
                                  y.raw(), O, 0, 1),
                "linear");
      return;
    }
    INNFLOW_DISPATCH(x.dtype, T, {
      T* Y = y.data<T>();
      if (hasBias) {
        // the bias rides in C: every row starts as the bias and the GEMM adds x·wᵀ onto it (beta = 1)
        const T* bv = bias.data<T>();
        // (pool wake-ups cost tens of µs on small machines: below 256k values the copy stays on this thread)
        overRows(rows, O, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; r++) std::memcpy(Y + r * O, bv, size_t(O) * sizeof(T));
        });
      }
      gemm<T>(false, true, rows, O, in, T(1), x.data<T>(), in, w.data<T>(), in, hasBias ? T(1) : T(0), Y, O);
      if (act == A_RELU)
        overRows(rows, O, [&](int64_t r0, int64_t r1) { activationLoop<T, A_RELU>(Y + r0 * O, (r1 - r0) * O); });
      else if (act == A_TANH)
        overRows(rows, O, [&](int64_t r0, int64_t r1) { activationLoop<T, A_TANH>(Y + r0 * O, (r1 - r0) * O); });
    });
  });
  return y;
}

// Column sums of an R×O matrix (the bias gradient) whose row r is at row(r): row ranges summed in parallel, then the
// partials added. row(r) may compute the row first (activationGradAndColumnSums); rows are summed in this split
// and order whatever they come from, so the sums agree bit for bit.
template <class T, class RowFn>
void columnSumsOf(int64_t R, int64_t O, T* out, RowFn&& row) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(numThreads(), R * O / 262144));
  std::vector<T> partial(size_t(parts * O), T(0));
  parallelFor(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      T* acc = partial.data() + p * O;
      for (int64_t r = R * p / parts; r < R * (p + 1) / parts; r++) {
        const T* v = row(r);
        for (int64_t o = 0; o < O; o++) acc[o] += v[o];
      }
    }
  });
  for (int64_t o = 0; o < O; o++) {
    T s = partial[size_t(o)];
    for (int64_t p = 1; p < parts; p++) s += partial[size_t(p * O + o)];
    out[o] = s;
  }
}

template <class T>
void columnSums(const T* g, int64_t R, int64_t O, T* out) {
  columnSumsOf<T>(R, O, out, [&](int64_t r) { return g + r * O; });
}

// gz = g·act'(z) (activationGradLoop) and, when gb is given, gb = Σ_rows gz in the same pass: each row of gz is
// summed while it is still in L1 instead of reading the whole of gz again (4 MB for a 4096 × 256 hidden layer).
template <class T, int ACT>
void activationGradAndColumnSums(const T* g, const T* y, T* gz, int64_t R, int64_t O, T* gb) {
  if (!gb) {
    overRows(R, O, [&](int64_t r0, int64_t r1) { activationGradLoop<T, ACT>(g + r0 * O, y + r0 * O, gz + r0 * O, (r1 - r0) * O); });
    return;
  }
  columnSumsOf<T>(R, O, gb, [&](int64_t r) {
    activationGradLoop<T, ACT>(g + r * O, y + r * O, gz + r * O, O);
    return static_cast<const T*>(gz + r * O);
  });
}

Napi::Value Linear(const Napi::CallbackInfo& info) {
  const Tensor& x = tensorArg(info, 0, "x");
  const Tensor& w = tensorArg(info, 1, "weight");
  const Tensor* bias = info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined() ? &tensorArg(info, 2, "bias")
                                                                                      : nullptr;
  const int act = activationArg(info, 3);
  return wrap(info.Env(), linearForward(x, w, bias, act));
}

// The products of linear's backward from the gradient G of its pre-activation output (R×O):
// gx = G·w (R×O · O×I); gw = Gᵀ·x (O×R · R×I); gbias = Σ_rows G. Run inside a kernel; the outputs are allocated by
// the entry point.
void linearProducts(const Tensor& G, const Tensor& x, const Tensor& w, const Tensor& gx, const Tensor& gw,
                    const Tensor& gb, bool needX, bool needW, bool needB, int64_t rows, int64_t in, int64_t O) {
  if (x.onCuda()) {
    const int dt = cudaDtype(x.dtype);
    const InnflowCudaMatmul& mm = cudaMatmul();
    // the same products as below; gbias = Σ_rows g with float32 summed in double
    if (needX)
      cudaCheck(mm.gemm(dt, 0, 0, rows, in, O, 1.0, G.raw(), O, 0, w.raw(), in, 0, 0.0, gx.raw(), in, 0, 1),
                "linear backward");
    if (needW)
      cudaCheck(mm.gemm(dt, 1, 0, O, in, rows, 1.0, G.raw(), O, 0, x.raw(), in, 0, 0.0, gw.raw(), in, 0, 1),
                "linear backward");
    if (needB) cudaCheck(mm.sumOuterInner(dt, G.raw(), rows, O, 1, gb.raw(), 0), "linear backward");
    return;
  }
  INNFLOW_DISPATCH(x.dtype, T, {
    const T* g = G.data<T>();
    if (needX) gemm<T>(false, false, rows, in, O, T(1), g, O, w.data<T>(), in, T(0), gx.data<T>(), in);
    if (needW) gemm<T>(true, false, O, in, rows, T(1), g, O, x.data<T>(), in, T(0), gw.data<T>(), in);
    if (needB) columnSums<T>(g, rows, O, gb.data<T>());
  });
}

// The checks both backward entry points make on g, x and w.
LinearDims linearBackwardDims(const Tensor& g, const Tensor& x, const Tensor& w) {
  const LinearDims d = linearDims(x, w, nullptr);
  requireSameDtype(g, x, "linear backward");
  if (g.shape != d.yShape)
    fail("ERR_SHAPE", "linear backward: gradient shape " + shapeString(g.shape) + " differs from the output shape " +
                          shapeString(d.yShape));
  requireSameDevice(x, w, "linear backward");
  requireSameDevice(g, x, "linear backward");
  return d;
}

Napi::Value wrapGrads(Napi::Env env, bool needX, bool needW, bool needB, Tensor* gx, Tensor* gw, Tensor* gb) {
  Napi::Array out = Napi::Array::New(env, 3);
  out.Set(0u, wrapOrNull(env, needX ? gx : nullptr));
  out.Set(1u, wrapOrNull(env, needW ? gw : nullptr));
  out.Set(2u, wrapOrNull(env, needB ? gb : nullptr));
  return out;
}

Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  const Tensor& x = tensorArg(info, 1, "x");
  const Tensor& w = tensorArg(info, 2, "weight");
  const bool needX = boolArg(info, 3, "needX"), needW = boolArg(info, 4, "needW"), needB = boolArg(info, 5, "needBias");
  const LinearDims d = linearBackwardDims(g, x, w);
  Tensor gx, gw, gb;
  if (needX) gx = emptyLike(x.shape, x.dtype, x);
  if (needW) gw = emptyLike(w.shape, w.dtype, w);
  if (needB) gb = emptyLike({d.out}, x.dtype, x);
  if (needX || needW || needB)
    launch(x.device(), [g, x, w, gx, gw, gb, needX, needW, needB, rows = d.rows, in = d.in, O = d.out] {
      linearProducts(g, x, w, gx, gw, gb, needX, needW, needB, rows, in, O);
    });
  return wrapGrads(info.Env(), needX, needW, needB, &gx, &gw, &gb);
}

// g, y: [rows, O] (y = act(x·wᵀ + b), linear's output), x: [rows, I], w: [O, I] — gz = g·act'(z) into a buffer made
// here (none: g itself), then linearBackward's products of gz, all in one kernel.
Napi::Value LinearActivationBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  const Tensor& y = tensorArg(info, 1, "y");
  const Tensor& x = tensorArg(info, 2, "x");
  const Tensor& w = tensorArg(info, 3, "weight");
  const int act = activationArg(info, 4);
  const bool needX = boolArg(info, 5, "needX"), needW = boolArg(info, 6, "needW"), needB = boolArg(info, 7, "needBias");
  const LinearDims d = linearBackwardDims(g, x, w);
  requireSameDtype(y, x, "linear backward");
  if (y.shape != d.yShape)
    fail("ERR_SHAPE", "linear backward: output shape " + shapeString(y.shape) + " differs from " +
                          shapeString(d.yShape));
  requireSameDevice(y, x, "linear backward");
  Tensor gx, gw, gb;
  if (needX) gx = emptyLike(x.shape, x.dtype, x);
  if (needW) gw = emptyLike(w.shape, w.dtype, w);
  if (needB) gb = emptyLike({d.out}, x.dtype, x);
  if (needX || needW || needB) {
    const Tensor gz = act == A_NONE ? g : emptyLike(g.shape, g.dtype, g);
    launch(x.device(), [g, y, x, w, gz, gx, gw, gb, act, needX, needW, needB, rows = d.rows, in = d.in, O = d.out] {
      if (act != A_NONE) {
        if (x.onCuda()) {
          cudaCheck(cudaMatmul().activationGrad(cudaDtype(x.dtype), act, g.raw(), y.raw(), rows * O, gz.raw()),
                    "linear backward");
        } else {
          INNFLOW_DISPATCH(x.dtype, T, {
            const T* G = g.data<T>();
            const T* Y = y.data<T>();
            T* GZ = gz.data<T>();
            T* GB = needB ? gb.data<T>() : nullptr;
            if (act == A_RELU) activationGradAndColumnSums<T, A_RELU>(G, Y, GZ, rows, O, GB);
            else activationGradAndColumnSums<T, A_TANH>(G, Y, GZ, rows, O, GB);
          });
          // the bias gradient is already summed
          linearProducts(gz, x, w, gx, gw, gb, needX, needW, false, rows, in, O);
          return;
        }
      }
      linearProducts(gz, x, w, gx, gw, gb, needX, needW, needB, rows, in, O);
    });
  }
  return wrapGrads(info.Env(), needX, needW, needB, &gx, &gw, &gb);
}

// ======================================================================================== catLinear
//
// linear over the concatenation of 2-D parts along dim 1, without making the concatenation: part i (B × n_i) meets
// the column block w[:, off_i : off_i + n_i] (row stride Σn), one GEMM each, accumulated into y. The results equal
// linear(cat(xs, 1), w, bias) up to the order of the sums over the parts.

struct CatLinearDims {
  int64_t rows, in, out;
  std::vector<int64_t> widths, offsets;  // n_i and off_i = n_1 + ... + n_{i-1}
};

CatLinearDims catLinearDims(const std::vector<Tensor>& xs, const Tensor& w, const Tensor* bias, const char* op) {
  const std::string name(op);
  if (xs.empty()) fail("ERR_ARGUMENT", name + ": needs at least one part");
  if (w.dim() != 2) fail("ERR_SHAPE", name + ": weight must be 2-D (out, Σ in), got shape " + shapeString(w.shape));
  CatLinearDims d;
  d.rows = xs[0].dim() == 2 ? xs[0].shape[0] : 0;
  d.in = 0;
  for (size_t i = 0; i < xs.size(); i++) {
    const Tensor& x = xs[i];
    requireSameDtype(x, w, op);
    requireSameDevice(x, w, op);
    if (x.dim() != 2 || x.shape[0] != d.rows)
      fail("ERR_SHAPE", name + ": part " + std::to_string(i) + " has shape " + shapeString(x.shape) +
                            "; every part must be 2-D (batch, n_i) with the batch of part 0 (" + shapeString(xs[0].shape) +
                            ")");
    d.offsets.push_back(d.in);
    d.widths.push_back(x.shape[1]);
    d.in += x.shape[1];
  }
  d.out = w.shape[0];
  if (w.shape[1] != d.in)
    fail("ERR_SHAPE", name + ": the parts have " + std::to_string(d.in) + " features in all but weight " +
                          shapeString(w.shape) + " expects " + std::to_string(w.shape[1]));
  if (bias) {
    requireSameDtype(*bias, w, op);
    requireSameDevice(*bias, w, op);
    if (bias->dim() != 1 || bias->shape[0] != d.out)
      fail("ERR_SHAPE", name + ": bias shape " + shapeString(bias->shape) + " does not match weight " +
                            shapeString(w.shape) + " (expected [" + std::to_string(d.out) + "])");
  }
  return d;
}

// A pointer to element k of t (CUDA buffers: the table takes raw pointers with their offsets applied).
inline void* offsetRaw(const Tensor& t, int64_t k) { return static_cast<char*>(t.raw()) + k * int64_t(dtypeSize(t.dtype)); }

// xs: [B, n_i] (k parts), w: [O, N] with N = Σn_i, bias: [O] | none, y: [B, O] —
// y = bias rows, then y += x_i · w[:, off_i : off_i + n_i]ᵀ for each part (lda n_i, ldb N; beta 1 after the first
// product, or from the start when the bias rides in y). GPU: the same products through the matmul table's gemm.
Napi::Value CatLinear(const Napi::CallbackInfo& info) {
  std::vector<Tensor> xs = tensorListArg(info, 0, "xs");
  const Tensor& w = tensorArg(info, 1, "weight");
  const Tensor* biasArg = info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined() ? &tensorArg(info, 2, "bias")
                                                                                          : nullptr;
  const CatLinearDims d = catLinearDims(xs, w, biasArg, "catLinear");
  Tensor y = emptyLike({d.rows, d.out}, w.dtype, w);
  if (y.numel() == 0) return wrap(info.Env(), y);
  const bool hasBias = biasArg != nullptr;
  Tensor bias = hasBias ? *biasArg : Tensor();
  launch(w.device(), [xs, w, y, bias, hasBias, d] {
    const int64_t rows = d.rows, N = d.in, O = d.out;
    if (w.onCuda()) {
      const int dt = cudaDtype(w.dtype);
      const InnflowCudaMatmul& mm = cudaMatmul();
      if (hasBias) cudaCheck(mm.broadcastMid(dt, bias.raw(), rows, O, 1, y.raw()), "catLinear");
      for (size_t i = 0; i < xs.size(); i++) {
        const double beta = hasBias || i > 0 ? 1.0 : 0.0;  // a part of width 0 with beta 0 writes zeros
        cudaCheck(mm.gemm(dt, 0, 1, rows, O, d.widths[i], 1.0, xs[i].raw(), d.widths[i], 0, offsetRaw(w, d.offsets[i]),
                          N, 0, beta, y.raw(), O, 0, 1),
                  "catLinear");
      }
      return;
    }
    INNFLOW_DISPATCH(w.dtype, T, {
      T* Y = y.data<T>();
      if (hasBias) {
        const T* bv = bias.data<T>();
        overRows(rows, O, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; r++) std::memcpy(Y + r * O, bv, size_t(O) * sizeof(T));
        });
      }
      const T* W = w.data<T>();
      for (size_t i = 0; i < xs.size(); i++)
        gemm<T>(false, true, rows, O, d.widths[i], T(1), xs[i].data<T>(), d.widths[i], W + d.offsets[i], N,
                hasBias || i > 0 ? T(1) : T(0), Y, O);
    });
  });
  return wrap(info.Env(), y);
}

// g: [B, O], xs: [B, n_i], w: [O, N] — gx_i = g · w[:, off_i : off_i + n_i] (B×O · O×n_i, ldb N);
// gw[:, off_i : off_i + n_i] = gᵀ · x_i (O×B · B×n_i, written into gw's column block, ldc N); gbias = Σ_rows g.
// needXs: one flag per part (an int list of 0/1). Every block of gw is written when needW, so it is never read
// uninitialised.
Napi::Value CatLinearBackward(const Napi::CallbackInfo& info) {
  const Tensor& g = tensorArg(info, 0, "g");
  std::vector<Tensor> xs = tensorListArg(info, 1, "xs");
  const Tensor& w = tensorArg(info, 2, "weight");
  const std::vector<int64_t> needXs = intListArg(info, 3, "needXs");
  const bool needW = boolArg(info, 4, "needW"), needB = boolArg(info, 5, "needBias");
  const CatLinearDims d = catLinearDims(xs, w, nullptr, "catLinear backward");
  requireSameDtype(g, w, "catLinear backward");
  requireSameDevice(g, w, "catLinear backward");
  if (g.shape != Shape{d.rows, d.out})
    fail("ERR_SHAPE", "catLinear backward: gradient shape " + shapeString(g.shape) + " differs from the output shape " +
                          shapeString(Shape{d.rows, d.out}));
  if (needXs.size() != xs.size())
    fail("ERR_ARGUMENT", "catLinear backward: needXs has " + std::to_string(needXs.size()) + " flags for " +
                             std::to_string(xs.size()) + " parts");
  std::vector<Tensor> gxs(xs.size());
  bool any = needW || needB;
  for (size_t i = 0; i < xs.size(); i++)
    if (needXs[i]) {
      gxs[i] = emptyLike(xs[i].shape, w.dtype, w);
      any = true;
    }
  Tensor gw, gb;
  if (needW) gw = emptyLike(w.shape, w.dtype, w);
  if (needB) gb = emptyLike({d.out}, w.dtype, w);
  if (any)
    launch(w.device(), [g, xs, w, gxs, gw, gb, needXs, needW, needB, d] {
      const int64_t rows = d.rows, N = d.in, O = d.out;
      if (w.onCuda()) {
        const int dt = cudaDtype(w.dtype);
        const InnflowCudaMatmul& mm = cudaMatmul();
        for (size_t i = 0; i < xs.size(); i++) {
          const int64_t n = d.widths[i], off = d.offsets[i];
          if (needXs[i])
            cudaCheck(mm.gemm(dt, 0, 0, rows, n, O, 1.0, g.raw(), O, 0, offsetRaw(w, off), N, 0, 0.0, gxs[i].raw(), n,
                              0, 1),
                      "catLinear backward");
          if (needW)
            cudaCheck(mm.gemm(dt, 1, 0, O, n, rows, 1.0, g.raw(), O, 0, xs[i].raw(), n, 0, 0.0, offsetRaw(gw, off), N,
                              0, 1),
                      "catLinear backward");
        }
        if (needB) cudaCheck(mm.sumOuterInner(dt, g.raw(), rows, O, 1, gb.raw(), 0), "catLinear backward");
        return;
      }
      INNFLOW_DISPATCH(w.dtype, T, {
        const T* G = g.data<T>();
        const T* W = w.data<T>();
        for (size_t i = 0; i < xs.size(); i++) {
          const int64_t n = d.widths[i], off = d.offsets[i];
          if (needXs[i]) gemm<T>(false, false, rows, n, O, T(1), G, O, W + off, N, T(0), gxs[i].data<T>(), n);
          if (needW) gemm<T>(true, false, O, n, rows, T(1), G, O, xs[i].data<T>(), n, T(0), gw.data<T>() + off, N);
        }
        if (needB) columnSums<T>(G, rows, O, gb.data<T>());
      });
    });
  Napi::Env env = info.Env();
  Napi::Array gx = Napi::Array::New(env, xs.size());
  for (size_t i = 0; i < xs.size(); i++) gx.Set(uint32_t(i), wrapOrNull(env, needXs[i] ? &gxs[i] : nullptr));
  Napi::Array out = Napi::Array::New(env, 3);
  out.Set(0u, gx);
  out.Set(1u, wrapOrNull(env, needW ? &gw : nullptr));
  out.Set(2u, wrapOrNull(env, needB ? &gb : nullptr));
  return out;
}

// ======================================================================================== backend selection

std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsString()) fail("ERR_ARGUMENT", std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

const char* backendName() { return backend == Backend::OpenBLAS ? "openblas" : "builtin"; }

Napi::Value SetGemmBackend(const Napi::CallbackInfo& info) {
  const std::string name = stringArg(info, 0, "setGemmBackend: name");
  if (name == "builtin") {
    backend = Backend::Builtin;
  } else if (name == "openblas") {
#ifdef INNFLOW_WITH_OPENBLAS
    backend = Backend::OpenBLAS;
#else
    fail("ERR_ARGUMENT", "setGemmBackend: this build of innflow has no OpenBLAS (it was not found when the addon "
                         "was compiled); only 'builtin' is available");
#endif
  } else {
    fail("ERR_ARGUMENT", "setGemmBackend: name must be 'builtin' or 'openblas', got '" + name + "'");
  }
  return info.Env().Undefined();
}

Napi::Value GetGemmBackend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), backendName()); }

const char* isaName(Isa isa) { return isa == Isa::Avx512 ? "avx512" : isa == Isa::Avx2 ? "avx2" : "generic"; }

Napi::Value SetGemmKernel(const Napi::CallbackInfo& info) {
  const std::string name = stringArg(info, 0, "setGemmKernel: name");
  Isa isa;
  if (name == "auto") isa = bestIsa();
  else if (name == "avx512") isa = Isa::Avx512;
  else if (name == "avx2") isa = Isa::Avx2;
  else if (name == "generic") isa = Isa::Generic;
  else fail("ERR_ARGUMENT", "setGemmKernel: name must be 'auto', 'avx512', 'avx2' or 'generic', got '" + name + "'");
  if (!isaSupported(isa)) fail("ERR_ARGUMENT", "setGemmKernel: this CPU does not support the '" + name + "' kernel");
  currentIsa = isa;
  return info.Env().Undefined();
}

Napi::Value GetGemmKernel(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), isaName(currentIsa)); }

// The arithmetic of float32 matrix products on the GPU: 'highest' (float32, the default), 'high' (TF32 tensor
// cores), 'medium' (bfloat16 tensor cores, float32 accumulation). The CPU computes every float32 product in float32
// whatever is set (it has no TF32, and bfloat16 would only lose digits), so the setting changes GPU results only.
int matmulPrecision = 0;
const char* const kPrecisionNames[3] = {"highest", "high", "medium"};

Napi::Value SetMatmulPrecision(const Napi::CallbackInfo& info) {
  const std::string name = stringArg(info, 0, "setMatmulPrecision: precision");
  int mode = -1;
  for (int m = 0; m < 3; m++)
    if (name == kPrecisionNames[m]) mode = m;
  if (mode < 0) fail("ERR_ARGUMENT", "setMatmulPrecision: precision must be 'highest', 'high' or 'medium', got '" + name + "'");
  // set on the GPU now if CUDA is in use; otherwise when it is first loaded (registerMatmul's hook)
  if (cudaLoaded()) cudaCheck(cudaMatmul().setMathMode(mode), "setMatmulPrecision");
  matmulPrecision = mode;
  return info.Env().Undefined();
}

Napi::Value GetMatmulPrecision(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kPrecisionNames[matmulPrecision]); }

}  // namespace

void registerMatmul(Napi::Env env, Napi::Object exports) {
  if (const char* choice = std::getenv("INNFLOW_GEMM")) {
    if (std::string(choice) == "builtin") backend = Backend::Builtin;
  }
  defineFunction(env, exports, "matmul", Matmul);
  defineFunction(env, exports, "matmulBackward", MatmulBackward);
  defineFunction(env, exports, "linear", Linear);
  defineFunction(env, exports, "linearBackward", LinearBackward);
  defineFunction(env, exports, "linearActivationBackward", LinearActivationBackward);
  defineFunction(env, exports, "catLinear", CatLinear);
  defineFunction(env, exports, "catLinearBackward", CatLinearBackward);
  defineFunction(env, exports, "setGemmBackend", SetGemmBackend);
  defineFunction(env, exports, "getGemmBackend", GetGemmBackend);
  defineFunction(env, exports, "setGemmKernel", SetGemmKernel);
  defineFunction(env, exports, "getGemmKernel", GetGemmKernel);
  defineFunction(env, exports, "setMatmulPrecision", SetMatmulPrecision);
  cudaWhenLoaded([] {
    // a failure here leaves cuBLAS at its default ('highest'); the next setMatmulPrecision reports it
    if (matmulPrecision != 0) cudaMatmul().setMathMode(matmulPrecision);
  });
  defineFunction(env, exports, "getMatmulPrecision", GetMatmulPrecision);
}

}  // namespace innflow

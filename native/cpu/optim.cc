// Optimiser updates and gradient clipping as multi-tensor kernels: one native call updates every parameter
// of a step, so a model with hundreds of small tensors costs one JavaScript -> C++ crossing, not hundreds.
// All tensors are updated IN PLACE. Lists are index-aligned; tensor i of every list has param i's shape and
// dtype (float32 and float64 parameters may be mixed in one call).
//
// adamStep(params: [P_i], grads: [P_i], expAvg: [P_i], expAvgSq: [P_i], steps: int[n],
//          lr, beta1, beta2, eps, weightDecay)                                  -> undefined
//     steps[i] is parameter i's step count INCLUDING this step (>= 1): Adam's bias corrections use it.
// sgdStep(params: [P_i], grads: [P_i], momentumBufs: [P_i] | [], fresh: int[n] | [],
//         lr, momentum, dampening, weightDecay, nesterov)                       -> undefined
//     momentumBufs/fresh are empty when momentum == 0; fresh[i] = 1 makes buffer i start as this step's
//     gradient (PyTorch's first momentum step, which skips dampening).
// clipGradNorm(grads: [P_i], maxNorm, normType)                                 -> totalNorm: number
//     total = (Σ_i Σ |g|^p)^(1/p) over all gradients (max |g| for p = Infinity); every gradient is scaled
//     by min(1, maxNorm / (total + 1e-6)), as torch.nn.utils.clip_grad_norm_ does.
//
// There is no backward here: these are updates applied outside the autograd graph.
//
// CUDA: every tensor of a call must be on the first parameter's device (ERR_DEVICE); on the GPU each step is
// one launch of cuda/optim.cu over all tensors. clipGradNorm returns a number, so on the GPU it waits for the
// device once, to read the norm back.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../../cuda/optim.h"
#include "../capture.h"
#include "../common.h"
#include "../cuda.h"
#include "../ops.h"
#include "../parallel.h"

namespace innflow {
namespace {

// Work is cut into pieces of at most kPiece elements across all tensors, so a few large tensors and many
// small ones both spread evenly over the threads. Below kSerial elements in total, threads cost more than
// they save.
constexpr int64_t kPiece = 32768;
constexpr int64_t kSerial = 65536;

struct Piece {
  size_t tensor;
  int64_t begin, end;
};

std::vector<Piece> cutPieces(const std::vector<Tensor>& ts, int64_t* total) {
  std::vector<Piece> pieces;
  *total = 0;
  for (size_t i = 0; i < ts.size(); i++) {
    int64_t n = ts[i].numel();
    *total += n;
    for (int64_t b = 0; b < n; b += kPiece) pieces.push_back({i, b, std::min(n, b + kPiece)});
  }
  return pieces;
}

void forPieces(const std::vector<Piece>& pieces, int64_t total, const std::function<void(const Piece&)>& fn) {
  int64_t n = static_cast<int64_t>(pieces.size());
  parallelFor(n, total < kSerial ? n : 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) fn(pieces[static_cast<size_t>(p)]);
  });
}

// A list must hold one tensor per parameter, each with its parameter's shape and dtype: the kernels index
// them with the parameter's element count.
void requireAligned(const std::vector<Tensor>& params, const std::vector<Tensor>& other, const char* op, const char* what) {
  if (other.size() != params.size())
    fail("ERR_ARGUMENT", std::string(op) + ": " + std::to_string(params.size()) + " parameters but " +
                             std::to_string(other.size()) + " " + what);
  for (size_t i = 0; i < params.size(); i++) {
    if (other[i].shape != params[i].shape)
      fail("ERR_SHAPE", std::string(op) + ": " + what + " #" + std::to_string(i) + " has shape " + shapeString(other[i].shape) +
                            " but its parameter has shape " + shapeString(params[i].shape));
    if (other[i].dtype != params[i].dtype)
      fail("ERR_DTYPE", std::string(op) + ": " + what + " #" + std::to_string(i) + " is " + dtypeName(other[i].dtype) +
                            " but its parameter is " + dtypeName(params[i].dtype));
  }
}

// Every tensor of `list` on the device of `ref` (ERR_DEVICE otherwise).
void requireDevice(const Tensor& ref, const std::vector<Tensor>& list, const char* op) {
  for (const Tensor& t : list) requireSameDevice(ref, t, op);
}

const InnflowCudaOptim& cudaOptim() { return cudaTable<InnflowCudaOptim>("innflow_cuda_optim"); }

// The host-side arrays of a multi-tensor CUDA call.
struct DeviceLists {
  std::vector<int> dtypes;
  std::vector<int64_t> numels;
  explicit DeviceLists(const std::vector<Tensor>& ts) {
    for (const Tensor& t : ts) {
      dtypes.push_back(cudaDtype(t.dtype));
      numels.push_back(t.numel());
    }
  }
};
std::vector<void*> pointers(const std::vector<Tensor>& ts) {
  std::vector<void*> out;
  for (const Tensor& t : ts) out.push_back(t.raw());
  return out;
}

// ------------------------------------------------------------------------------------------------- Adam

// PyTorch's single-tensor Adam, element by element and in the same order of operations, so float64 results
// agree with torch.optim.Adam to the last bits: L2 decay joins the gradient, the first moment is a lerp
// towards the gradient, the step divides by (sqrt(v) / sqrt(1 - beta2^t) + eps).
template <class T>
void adamPiece(T* p, const T* g, T* m, T* v, int64_t b, int64_t e, T lr, T beta1, T beta2, T eps, T wd, double step) {
  const double bc1 = 1.0 - std::pow(double(beta1), step);
  const double bc2 = 1.0 - std::pow(double(beta2), step);
  const T stepSize = T(double(lr) / bc1);
  const T bc2Sqrt = T(std::sqrt(bc2));
  const T w = T(1) - beta1;  // lerp weight
  const T oneMinusBeta2 = T(1) - beta2;
  for (int64_t k = b; k < e; k++) {
    T grad = g[k];
    if (wd != T(0)) grad = grad + wd * p[k];
    // torch.lerp switches formula at weight 0.5 to stay exact at both ends
    m[k] = w < T(0.5) ? m[k] + w * (grad - m[k]) : grad - (grad - m[k]) * (T(1) - w);
    v[k] = v[k] * beta2 + oneMinusBeta2 * grad * grad;
    T denom = std::sqrt(v[k]) / bc2Sqrt + eps;
    p[k] = p[k] + (-stepSize) * m[k] / denom;
  }
}

// Inside a compiled step the kernel reads lr, the betas, eps, the decay and the step counts from a ScalarSlot when it
// runs ([lr, beta1, beta2, eps, weightDecay, step_0, ...]); while capturing, adamStep returns the slot, and the
// optimiser writes the next step's values into it before each replay.
Napi::Value AdamStep(const Napi::CallbackInfo& info) {
  std::vector<Tensor> params = tensorListArg(info, 0, "params");
  std::vector<Tensor> grads = tensorListArg(info, 1, "grads");
  std::vector<Tensor> m = tensorListArg(info, 2, "expAvg");
  std::vector<Tensor> v = tensorListArg(info, 3, "expAvgSq");
  std::vector<int64_t> steps = intListArg(info, 4, "steps");
  double lr = numberArg(info, 5, "lr"), beta1 = numberArg(info, 6, "beta1"), beta2 = numberArg(info, 7, "beta2");
  double eps = numberArg(info, 8, "eps"), wd = numberArg(info, 9, "weightDecay");
  requireAligned(params, grads, "adamStep", "grads");
  requireAligned(params, m, "adamStep", "expAvg");
  requireAligned(params, v, "adamStep", "expAvgSq");
  if (steps.size() != params.size()) fail("ERR_ARGUMENT", "adamStep: one step count per parameter is required");
  for (int64_t s : steps)
    if (s < 1) fail("ERR_ARGUMENT", "adamStep: step counts must be >= 1, got " + std::to_string(s));
  if (!params.empty()) {
    requireDevice(params[0], params, "adamStep");
    requireDevice(params[0], grads, "adamStep");
    requireDevice(params[0], m, "adamStep");
    requireDevice(params[0], v, "adamStep");
  }
  auto slot = std::make_shared<ScalarSlot>();
  slot->values = {lr, beta1, beta2, eps, wd};
  for (int64_t s : steps) slot->values.push_back(double(s));
  const Device device = params.empty() ? Device::CPU : params[0].device();
  launchDynamic(device, [params, grads, m, v, slot] {
    const std::vector<double>& k = slot->values;
    const double lr = k[0], beta1 = k[1], beta2 = k[2], eps = k[3], wd = k[4];
    if (!params.empty() && params[0].onCuda()) {
      DeviceLists l(params);
      std::vector<void*> ps = pointers(params), gs = pointers(grads), ms = pointers(m), vs = pointers(v);
      std::vector<int64_t> steps(k.begin() + 5, k.end());
      cudaCheck(cudaOptim().adamStep(int64_t(params.size()), l.dtypes.data(), ps.data(), gs.data(), ms.data(), vs.data(),
                                     l.numels.data(), steps.data(), lr, beta1, beta2, eps, wd),
                "adamStep");
      return;
    }
    int64_t total = 0;
    std::vector<Piece> pieces = cutPieces(params, &total);
    forPieces(pieces, total, [&](const Piece& pc) {
      size_t i = pc.tensor;
      INNFLOW_DISPATCH(params[i].dtype, T, {
        adamPiece<T>(params[i].data<T>(), grads[i].data<T>(), m[i].data<T>(), v[i].data<T>(), pc.begin, pc.end, T(lr),
                     T(beta1), T(beta2), T(eps), T(wd), k[5 + i]);
      });
    });
  });
  return capturing() ? wrapSlot(info.Env(), slot) : info.Env().Undefined();
}

// -------------------------------------------------------------------------------------------------- SGD

// PyTorch's SGD: decay joins the gradient; the momentum buffer starts as the first gradient (no dampening),
// then buf = momentum·buf + (1 − dampening)·d; Nesterov steps along d + momentum·buf.
template <class T>
void sgdPiece(T* p, const T* g, T* buf, bool fresh, int64_t b, int64_t e, T lr, T momentum, T dampening, T wd, bool nesterov) {
  for (int64_t k = b; k < e; k++) {
    T d = g[k];
    if (wd != T(0)) d = d + wd * p[k];
    if (buf) {
      buf[k] = fresh ? d : buf[k] * momentum + (T(1) - dampening) * d;
      d = nesterov ? d + momentum * buf[k] : buf[k];
    }
    p[k] = p[k] + (-lr) * d;
  }
}

// Inside a compiled step the kernel reads [lr, momentum, dampening, weightDecay, fresh_0, ...] from a ScalarSlot
// (see AdamStep).
Napi::Value SgdStep(const Napi::CallbackInfo& info) {
  std::vector<Tensor> params = tensorListArg(info, 0, "params");
  std::vector<Tensor> grads = tensorListArg(info, 1, "grads");
  std::vector<Tensor> bufs = tensorListArg(info, 2, "momentumBufs");
  std::vector<int64_t> fresh = intListArg(info, 3, "fresh");
  double lr = numberArg(info, 4, "lr"), momentum = numberArg(info, 5, "momentum");
  double dampening = numberArg(info, 6, "dampening"), wd = numberArg(info, 7, "weightDecay");
  bool nesterov = boolArg(info, 8, "nesterov");
  requireAligned(params, grads, "sgdStep", "grads");
  const bool useMomentum = momentum != 0;
  if (useMomentum) {
    requireAligned(params, bufs, "sgdStep", "momentumBufs");
    if (fresh.size() != params.size()) fail("ERR_ARGUMENT", "sgdStep: one fresh flag per parameter is required");
  }
  if (!params.empty()) {
    requireDevice(params[0], params, "sgdStep");
    requireDevice(params[0], grads, "sgdStep");
    if (useMomentum) requireDevice(params[0], bufs, "sgdStep");
  }
  auto slot = std::make_shared<ScalarSlot>();
  slot->values = {lr, momentum, dampening, wd};
  if (useMomentum)
    for (int64_t f : fresh) slot->values.push_back(f != 0 ? 1.0 : 0.0);
  const Device device = params.empty() ? Device::CPU : params[0].device();
  launchDynamic(device, [params, grads, bufs, useMomentum, nesterov, slot] {
    const std::vector<double>& k = slot->values;
    const double lr = k[0], momentum = k[1], dampening = k[2], wd = k[3];
    if (!params.empty() && params[0].onCuda()) {
      DeviceLists l(params);
      std::vector<void*> ps = pointers(params), gs = pointers(grads), bs = useMomentum ? pointers(bufs) : std::vector<void*>();
      std::vector<int> fr;
      if (useMomentum)
        for (size_t i = 0; i < params.size(); i++) fr.push_back(k[4 + i] != 0 ? 1 : 0);
      cudaCheck(cudaOptim().sgdStep(int64_t(params.size()), l.dtypes.data(), ps.data(), gs.data(), useMomentum ? bs.data() : nullptr,
                                    useMomentum ? fr.data() : nullptr, l.numels.data(), lr, momentum, dampening, wd, nesterov ? 1 : 0),
                "sgdStep");
      return;
    }
    int64_t total = 0;
    std::vector<Piece> pieces = cutPieces(params, &total);
    forPieces(pieces, total, [&](const Piece& pc) {
      size_t i = pc.tensor;
      INNFLOW_DISPATCH(params[i].dtype, T, {
        sgdPiece<T>(params[i].data<T>(), grads[i].data<T>(), useMomentum ? bufs[i].data<T>() : nullptr,
                    useMomentum && k[4 + i] != 0, pc.begin, pc.end, T(lr), T(momentum), T(dampening), T(wd), nesterov);
      });
    });
  });
  return capturing() ? wrapSlot(info.Env(), slot) : info.Env().Undefined();
}

// ------------------------------------------------------------------------------------- gradient clipping

// Partial sums are kept per piece and combined in piece order, so the total does not depend on how many
// threads ran. They accumulate in double even for float32 gradients.
double clipGradNormKernel(const std::vector<Tensor>& grads, double maxNorm, double p);

Napi::Value ClipGradNorm(const Napi::CallbackInfo& info) {
  std::vector<Tensor> grads = tensorListArg(info, 0, "grads");
  double maxNorm = numberArg(info, 1, "maxNorm");
  double p = numberArg(info, 2, "normType");
  if (!(p > 0)) fail("ERR_ARGUMENT", "clipGradNorm: normType must be a positive number or Infinity, got " + std::to_string(p));
  if (std::isnan(maxNorm) || maxNorm < 0) fail("ERR_ARGUMENT", "clipGradNorm: maxNorm must be a non-negative number");
  if (!grads.empty()) requireDevice(grads[0], grads, "clipGradNorm");
  // The norm of this run; inside a compiled step the kernel is replayed (on the GPU from the host, since it reads
  // the norm back) and the value is not returned.
  auto norm = std::make_shared<double>(0.0);
  const Device device = grads.empty() ? Device::CPU : grads[0].device();
  launchDynamic(device, [grads, maxNorm, p, norm] { *norm = clipGradNormKernel(grads, maxNorm, p); });
  return Napi::Number::New(info.Env(), *norm);
}

// Scales grads in place so that their total p-norm is at most maxNorm; returns the norm before scaling.
double clipGradNormKernel(const std::vector<Tensor>& grads, double maxNorm, double p) {
  const bool inf = std::isinf(p);
  if (!grads.empty() && grads[0].onCuda()) {
    DeviceLists l(grads);
    std::vector<void*> gs = pointers(grads);
    double norm = 0;
    cudaCheck(cudaOptim().clipGradNorm(int64_t(grads.size()), l.dtypes.data(), gs.data(), l.numels.data(), maxNorm, p, &norm),
              "clipGradNorm");
    return norm;
  }
  int64_t total = 0;
  std::vector<Piece> pieces = cutPieces(grads, &total);
  std::vector<double> partial(pieces.size(), 0.0);
  int64_t np = static_cast<int64_t>(pieces.size());
  parallelFor(np, total < kSerial ? np : 1, [&](int64_t p0, int64_t p1) {
    for (int64_t q = p0; q < p1; q++) {
      const Piece& pc = pieces[static_cast<size_t>(q)];
      double acc = 0;
      INNFLOW_DISPATCH(grads[pc.tensor].dtype, T, {
        const T* g = grads[pc.tensor].data<T>();
        for (int64_t k = pc.begin; k < pc.end; k++) {
          double a = std::abs(double(g[k]));
          if (inf) {
            if (std::isnan(a) || a > acc) acc = a;  // once NaN, stays NaN (a > NaN is false)
          } else {
            acc += p == 2 ? a * a : p == 1 ? a : std::pow(a, p);
          }
        }
      });
      partial[static_cast<size_t>(q)] = acc;
    }
  });
  double norm = 0;
  if (inf) {
    for (double a : partial)
      if (std::isnan(a) || a > norm) norm = a;
  } else {
    double sum = 0;
    for (double a : partial) sum += a;
    norm = p == 2 ? std::sqrt(sum) : p == 1 ? sum : std::pow(sum, 1.0 / p);
  }
  // A NaN norm poisons the gradients, as in PyTorch (clamp keeps NaN), rather than passing them unscaled.
  double coef = std::isnan(norm) ? norm : std::min(1.0, maxNorm / (norm + 1e-6));
  forPieces(pieces, total, [&](const Piece& pc) {
    INNFLOW_DISPATCH(grads[pc.tensor].dtype, T, {
      T* g = grads[pc.tensor].data<T>();
      const T c = T(coef);
      for (int64_t k = pc.begin; k < pc.end; k++) g[k] = g[k] * c;
    });
  });
  return norm;
}

}  // namespace

void registerOptim(Napi::Env env, Napi::Object exports) {
  defineFunction(env, exports, "adamStep", AdamStep);
  defineFunction(env, exports, "sgdStep", SgdStep);
  defineFunction(env, exports, "clipGradNorm", ClipGradNorm);
}

}  // namespace innflow

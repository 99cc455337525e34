// Branch-free float32 exp and tanh (and the sigmoid built on them), shared by the CPU families whose loops must
// vectorise: a libm call per element keeps GCC from vectorising a loop. expOf/tanhOf/sigmoidOf pick the fast
// float32 versions and libm's for float64. Used by elementwise.cc and coupling.cc.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace innflow {

// e^x for float32 without a libm call, so that loops over it vectorise (expf is an opaque call per element, ~3 ns):
// x = n·ln 2 + r with |r| ≤ ln 2 / 2 (Cody–Waite, ln 2 split in two), e^r by Cephes' degree-6 polynomial
// (relative error below 2.5e-7), then 2ⁿ built from exponent bits in two halves so that results down to the
// subnormals (x ≥ −104) come out right. x > ln(FLT_MAX) gives +inf, NaN stays NaN. Branch-free: every test
// below is a select.
inline float fastExp(float x) {
  const float hi = 88.72283935546875f, lo = -104.f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  // round(xc·log2 e) by the 1.5·2²³ trick (no SSE4.1 round instruction needed)
  const float shifter = 12582912.f;
  const float t = xc * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  int32_t ni;
  std::memcpy(&ni, &t, 4);
  int32_t si;
  std::memcpy(&si, &shifter, 4);
  ni -= si;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.f;
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  const int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  const float y = p * s1 * s2;
  return x > hi ? std::numeric_limits<float>::infinity() : y;
}
inline float expOf(float x) { return fastExp(x); }
inline double expOf(double x) { return std::exp(x); }

// tanh for float32 in about a ns (libm's tanhf costs ~15 ns and dominated AllInOneBlock's soft clamp): its
// Taylor series to x⁹ below |x| = 0.3 (truncation < 2e-8 relative), 1 − 2/(e^{2|x|} + 1) above (a few ulp),
// ±1 beyond 9. Both forms are computed and one selected, so the loop vectorises.
inline float fastTanh(float x) {
  const float ax = std::fabs(x);
  const float x2 = x * x;
  const float small = x * (1.f + x2 * (-1.f / 3.f + x2 * (2.f / 15.f + x2 * (-17.f / 315.f + x2 * (62.f / 2835.f)))));
  const float a = ax > 9.f ? 9.f : ax;  // (NaN passes through)
  const float large = std::copysign(ax > 9.f ? 1.f : 1.f - 2.f / (fastExp(2.f * a) + 1.f), x);
  return ax < 0.3f ? small : large;
}
inline float tanhOf(float x) { return fastTanh(x); }
inline double tanhOf(double x) { return std::tanh(x); }

// σ(x) with one exponential of −|x| (never overflows), as a select so that it vectorises.
template <class T>
inline T sigmoidOf(T x) {
  const T e = expOf(-std::abs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

}  // namespace innflow

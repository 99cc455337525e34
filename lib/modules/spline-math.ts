/**
 * The numerical pieces the binned splines share (FrEIA/modules/splines): prefix sums of bin sizes, a
 * softmax, the bin search and the two in-bin transforms (rational-quadratic, Durkan et al. 2019, and
 * piecewise linear). All are compositions of differentiable ops on tensors whose last axis runs over the
 * bins or knots of one spline; there is no per-element JavaScript.
 *
 * Composed here because innflow has no native op for them yet: cumsum (done as a product with a
 * triangular 0/1 matrix), softmax (exp of the shifted input over its sum, the shift being a max built from
 * pairwise maxima), searchsorted (a count of comparisons) and a max reduction.
 */
import { InnflowError } from '../errors'
import { noGrad } from '../autograd/tape'
import { tensor, Tensor } from '../tensor'
import * as ops from '../ops'

/** Positions of knots from bin sizes: out[..., j] = Σ_{i<j} sizes[..., i] for j = 0..K (a leading 0). */
export function knotOffsets(sizes: Tensor): Tensor {
  const k = sizes.shape[sizes.ndim - 1]
  // T[i][j] = 1 when bin i lies left of knot j, so sizes·T is the exclusive-then-inclusive cumulative sum
  const t = new Array<number>(k * (k + 1)).fill(0)
  for (let i = 0; i < k; i++) for (let j = i + 1; j <= k; j++) t[i * (k + 1) + j] = 1
  return ops.matmul(sizes, tensor(t, [k, k + 1], { dtype: sizes.dtype, device: sizes.device }))
}

/** softmax over the last axis. */
export function softmaxLast(x: Tensor): Tensor {
  const k = x.shape[x.ndim - 1]
  // the shift only guards exp against overflow; it cancels in the ratio, so it carries no gradient
  const shift = noGrad(() => {
    let m = x.narrow(-1, 0, 1)
    for (let i = 1; i < k; i++) m = m.maximum(x.narrow(-1, i, 1))
    return m
  })
  const e = x.sub(shift).exp()
  return e.div(e.sum(-1, true))
}

/**
 * Bin indices of values v (shape S) among ascending knots (shape [...S, K+1]), as torch.searchsorted with
 * side 'left' gives them: upper = the number of knots strictly below v, lower = upper − 1; both come as
 * float index tensors of shape [...S, 1] for `gather`. Values outside (knot_0, knot_K] get the nearest end
 * bin, so that gathering stays in range; callers mask those out.
 */
export function searchBins(knots: Tensor, v: Tensor): { lower: Tensor; upper: Tensor } {
  const k = knots.shape[knots.ndim - 1] - 1
  return noGrad(() => {
    const upper = knots.lt(v.unsqueeze(-1)).sum(-1, true).clamp(1, k)
    return { lower: upper.sub(1), upper }
  })
}

/** The in-bin quantities a spline receives: bin edges and, per extra parameter p, `p_left` and `p_right`. */
export type BinParameters = Record<string, Tensor>

/** The output of an in-bin transform and its per-element log|dy/dx| (evaluated at the x side). */
export interface SplineResult {
  out: Tensor
  logJac: Tensor
}

/**
 * The rational-quadratic map of one bin (Durkan et al. 2019, eqs. 4–8 and 29), elementwise. With
 * w = x_{k+1} − x_k, h = y_{k+1} − y_k, s = h/w and ξ = (x − x_k)/w:
 *   y = y_k + h·[s·ξ² + δ_k·ξ(1−ξ)] / [s + (δ_{k+1} + δ_k − 2s)·ξ(1−ξ)],
 *   dy/dx = s²·[δ_{k+1}ξ² + 2sξ(1−ξ) + δ_k(1−ξ)²] / [s + (δ_{k+1} + δ_k − 2s)ξ(1−ξ)]².
 * The inverse solves the quadratic for ξ in its cancellation-free form ξ = 2c / (−b − √(b² − 4ac)); like
 * FrEIA it refuses (ERR_ARGUMENT) when a discriminant is negative, which cannot happen for values inside
 * their bin.
 */
export function rationalQuadratic(
  v: Tensor,
  xk: Tensor,
  xkp: Tensor,
  yk: Tensor,
  ykp: Tensor,
  dk: Tensor,
  dkp: Tensor,
  rev: boolean,
): SplineResult {
  const w = xkp.sub(xk)
  const h = ykp.sub(yk)
  const s = h.div(w)
  const curvature = dkp.add(dk).sub(s.mul(2))
  let xi: Tensor
  let out: Tensor
  if (!rev) {
    xi = v.sub(xk).div(w)
    const xi1 = xi.mul(xi.neg().add(1))
    out = yk.add(h.mul(s.mul(xi.square()).add(dk.mul(xi1))).div(s.add(curvature.mul(xi1))))
  } else {
    const dy = v.sub(yk)
    const a = h.mul(s.sub(dk)).add(dy.mul(curvature))
    const b = h.mul(dk).sub(dy.mul(curvature))
    const c = s.mul(dy).neg()
    const disc = b.square().sub(a.mul(c).mul(4))
    const bad = noGrad(() => disc.lt(0).sum().item())
    if (bad > 0) {
      const values = disc.toArray()
      let min = Infinity
      for (let i = 0; i < values.length; i++) min = Math.min(min, values[i])
      throw new InnflowError('ERR_ARGUMENT', `RationalQuadraticSpline (reverse): Discriminant must be positive, but is violated by ${min}`)
    }
    xi = c.mul(2).div(b.neg().sub(disc.sqrt()))
    out = xi.mul(w).add(xk)
  }
  const xi1 = xi.mul(xi.neg().add(1))
  const numerator = s.square().mul(dkp.mul(xi.square()).add(s.mul(xi1).mul(2)).add(dk.mul(xi.neg().add(1).square())))
  const denominator = s.add(curvature.mul(xi1))
  return { out, logJac: numerator.log().sub(denominator.log().mul(2)) }
}

/** The linear map of one bin: y = s·x + (y_k − s·x_k) with s = h/w; log|dy/dx| = ln h − ln w. */
export function linearBin(v: Tensor, xk: Tensor, xkp: Tensor, yk: Tensor, ykp: Tensor, rev: boolean): SplineResult {
  const w = xkp.sub(xk)
  const h = ykp.sub(yk)
  const s = h.div(w)
  const shift = yk.sub(s.mul(xk))
  const out = rev ? v.sub(shift).div(s) : v.mul(s).add(shift)
  return { out, logJac: h.log().sub(w.log()) }
}

const LN_E_MINUS_1 = Math.log(Math.E - 1)

/**
 * The derivative constraint of the rational-quadratic splines: replaces the raw inner-knot derivatives
 * `deltas` (…, K − 1) of constrained parameters by the knot derivatives (…, K + 1)
 * [s_tail, softplus(raw + ln(e − 1)) …, s_tail], s_tail = Σh/Σw, so that the spline meets its tails with
 * their slope and raw 0 gives 1.
 */
export function constrainDeltas(bins: number, p: Record<string, Tensor>): Record<string, Tensor> {
  const scale = p.heights.sum(-1, true).div(p.widths.sum(-1, true))
  // with one bin there are no inner knots (a zero-count parameter); both ends take the tail slope
  const inner = bins > 1 ? [p.deltas.add(LN_E_MINUS_1).softplus()] : []
  return { ...p, deltas: ops.cat([scale, ...inner, scale], -1) }
}

/** Moves axis 1 (channels) last: (B, C, *S) → (B, *S, C). */
export function channelsLast(x: Tensor): Tensor {
  if (x.ndim <= 2) return x
  const dims = [0, ...Array.from({ length: x.ndim - 2 }, (_, i) => i + 2), 1]
  return x.permute(dims)
}

/** Moves the last axis back to axis 1: (B, *S, C) → (B, C, *S). */
export function channelsFirst(x: Tensor): Tensor {
  if (x.ndim <= 2) return x
  const n = x.ndim
  return x.permute([0, n - 1, ...Array.from({ length: n - 2 }, (_, i) => i + 1)])
}

/** Σ over every axis but the batch axis: (B, ...) → (B,). */
export function sumExceptBatch(x: Tensor): Tensor {
  if (x.ndim === 1) return x
  return x.sum(Array.from({ length: x.ndim - 1 }, (_, i) => i + 1))
}

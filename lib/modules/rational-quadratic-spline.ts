/**
 * RationalQuadraticSpline (FrEIA/modules/splines/rational_quadratic.py): a two-sided coupling block whose
 * couplings are monotone rational-quadratic splines (Durkan et al. 2019, "Neural Spline Flows") with a
 * learned domain and affine (or identity) tails; see {@link BinnedSpline} and {@link BinnedSplineBase} for
 * the coupling scheme, parameter layout and constraints.
 *
 * Per element there are P = 3K + 1 raw parameters (3K with identity tails): widths, heights, bottom, left
 * (or total_width), then K − 1 derivatives at the inner knots. The derivatives are
 * δ = [s_tail, softplus(raw_δ + ln(e − 1)) …, s_tail] with s_tail = Σh/Σw, so the spline meets its tails
 * with their slope (C¹ overall) and raw 0 gives δ = 1; with all raw parameters zero and the default domain
 * the block is the identity. Inside bin k (w = x_{k+1} − x_k, h = y_{k+1} − y_k, s = h/w, ξ = (x − x_k)/w):
 *   y = y_k + h·[s·ξ² + δ_k·ξ(1−ξ)] / [s + (δ_{k+1} + δ_k − 2s)·ξ(1−ξ)].
 */
import { Tensor } from '../tensor'
import { Dims } from './base'
import { BinnedSpline, BinnedSplineOptions, checkSplineOptionKeys, COUPLING_SPLINE_KEYS } from './binned-spline-base'
import { BinParameters, constrainDeltas, rationalQuadratic, SplineResult } from './spline-math'

/** Options of {@link RationalQuadraticSpline} (FrEIA's keyword arguments, camelCase). */
export type RationalQuadraticSplineOptions = Omit<BinnedSplineOptions, 'parameterCounts'>

/**
 * Rational-quadratic spline coupling block.
 * @example
 * const subnet = (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, 32), new nn.ReLU(), new nn.Linear(32, cOut))
 * const inn = new SequenceINN(4)
 * inn.append(modules.RationalQuadraticSpline, { subnetConstructor: subnet, bins: 8, defaultDomain: [-4, 4, -4, 4] })
 */
export class RationalQuadraticSpline extends BinnedSpline {
  constructor(dimsIn: Dims[], opts: RationalQuadraticSplineOptions = {}) {
    const o = opts ?? {}
    const bins = (o as { bins?: unknown }).bins ?? 10
    // the derivative count follows bins; a bad bins value is reported by the base class
    const deltas = typeof bins === 'number' && Number.isInteger(bins) && bins >= 1 ? bins - 1 : 0
    // parameterCounts is set here, not by the caller (FrEIA passes it explicitly, so a user's is an error)
    checkSplineOptionKeys(new.target.name, o, COUPLING_SPLINE_KEYS)
    super(dimsIn, { ...o, parameterCounts: { deltas } } as BinnedSplineOptions, [...COUPLING_SPLINE_KEYS, 'parameterCounts'])
  }

  override constrainParameters(parameters: Record<string, Tensor>): Record<string, Tensor> {
    return constrainDeltas(this.splineBase.bins, super.constrainParameters(parameters))
  }

  protected spline(x: Tensor, b: BinParameters, rev: boolean): SplineResult {
    return rationalQuadratic(x, b.left, b.right, b.bottom, b.top, b.deltas_left, b.deltas_right, rev)
  }
}

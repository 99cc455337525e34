/**
 * LinearSpline (FrEIA/modules/splines/linear.py): a two-sided coupling block whose couplings are
 * piecewise-linear monotone splines with a learned domain and affine (or identity) tails; see
 * {@link BinnedSpline} and {@link BinnedSplineBase} for the coupling scheme, parameter layout and
 * constraints. Per element there are P = 2K + 2 raw parameters (2K + 1 with identity tails): widths,
 * heights, bottom, left (or total_width). Inside bin k the map is the line through its two knots,
 * y = (h/w)·x + (y_k − (h/w)·x_k), with log-slope ln h − ln w: continuous, but not C¹ at the knots.
 * With all raw parameters zero and the default domain the block is the identity.
 */
import { Tensor } from '../tensor'
import { Dims } from './base'
import { BinnedSpline, BinnedSplineOptions, checkSplineOptionKeys, COUPLING_SPLINE_KEYS } from './binned-spline-base'
import { BinParameters, linearBin, SplineResult } from './spline-math'

/** Options of {@link LinearSpline} (FrEIA's keyword arguments, camelCase). */
export type LinearSplineOptions = Omit<BinnedSplineOptions, 'parameterCounts'>

/**
 * Piecewise-linear spline coupling block.
 * @example
 * inn.append(modules.LinearSpline, { subnetConstructor: subnet, bins: 16 })
 */
export class LinearSpline extends BinnedSpline {
  constructor(dimsIn: Dims[], opts: LinearSplineOptions = {}) {
    const o = opts ?? {}
    // FrEIA passes parameter_counts=None itself, so a caller's is refused
    checkSplineOptionKeys(new.target.name, o, COUPLING_SPLINE_KEYS)
    super(dimsIn, o as BinnedSplineOptions, COUPLING_SPLINE_KEYS)
  }

  protected spline(x: Tensor, b: BinParameters, rev: boolean): SplineResult {
    return linearBin(x, b.left, b.right, b.bottom, b.top, rev)
  }
}

/**
 * InvertibleTanh: y = tanh(x) elementwise, invertnn's `InvertibleTanh`, mapping ℝ onto (−1, 1).
 * Reverse x = atanh(y) = ½·(ln(1 + y) − ln(1 − y)) (NaN outside [−1, 1], ±∞ at ±1). No parameters.
 *
 *   log|det J| = Σ over all non-batch entries of ln(1 − tanh² x) = Σ 2·(ln 2 − |x| − ln(1 + e^(−2|x|)))
 *
 * written so that it stays finite for large |x| (1 − tanh² x underflows to 0 in float32 for |x| > 9).
 * The reverse returns −Σ (ln(1 + y) + ln(1 − y)), the same quantity at the recovered x, negated. Shape (batch,).
 *
 * Differences from invertnn (deliberate): invertnn's forward is this map too, but its log-det API gives the
 * inverse direction's term only, detached from the graph (computed through a gradient of the inverse); here
 * forward returns the forward map's log-det and it is differentiable.
 */
import { InnflowError } from '../errors'
import { Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'

const LN2 = Math.log(2)

/** Options of {@link InvertibleTanh}: none besides dimsC (accepted and ignored). */
export type InvertibleTanhOptions = InvertibleModuleOptions

/** @internal The axes 1..ndim−1 (every non-batch axis). */
export const sampleAxes = (x: Tensor): number[] => Array.from({ length: x.ndim - 1 }, (_, i) => i + 1)

/**
 * The hyperbolic tangent as an invertible layer.
 * @example
 * inn.append(InvertibleTanh)
 */
export class InvertibleTanh extends InvertibleModule {
  constructor(dimsIn: Dims[], opts: InvertibleTanhOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    checkOptionKeys(name, opts, [])
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${this.dimsIn.length}`)
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const v = x[0]
    const axes = sampleAxes(v)
    if (!rev) {
      const a2 = v.abs().mul(-2)
      // ln(1 − tanh² x) = 2 ln 2 − 2|x| − 2·softplus(−2|x|); softplus of a non-positive argument cannot overflow
      const logDiag = a2.sub(a2.softplus().mul(2)).add(2 * LN2)
      return [[v.tanh()], logDiag.sum(axes)]
    }
    const lp = v.log1p()
    const lm = v.neg().log1p()
    return [[lp.sub(lm).mul(0.5)], lp.add(lm).sum(axes).neg()]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input`)
    return [[...inputDims[0]]]
  }
}

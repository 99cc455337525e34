/**
 * InvertibleSigmoid: y = σ(x) = 1 / (1 + e^(−x)) elementwise (FrEIA's `FrEIA.modules.InvertibleSigmoid`);
 * reverse x = ln(y / (1 − y)) (NaN outside (0, 1), as in FrEIA). No parameters.
 *
 * log|det J| = Σ over ALL non-batch entries of ln σ'(x) = −|x| − 2·ln(1 + e^(−|x|)) (the same value as FrEIA's
 * ln[1 / ((1 + eˣ)(1 + e^(−x)))], written so it does not overflow for large |x|); the reverse returns
 * −Σ (ln y + ln(1 − y)), the same quantity at the recovered x. Shape (batch,).
 *
 * Deliberate differences from FrEIA's bugs (no parity fixture uses this module): FrEIA sums the log-det over
 * axis 1 only, so for inputs of rank > 1 it returns a (batch, …) tensor instead of (batch,) (its open PRs
 * #176/#177); here the sum is over all axes. With jac = false FrEIA returns a 1-tuple that GraphINN rejects;
 * here the usual [outputs, logDet] pair is returned (the log-det is always computed, it is cheap).
 */
import { InnflowError } from '../errors'
import { Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link InvertibleSigmoid}: none besides dimsC (accepted and ignored). */
export type InvertibleSigmoidOptions = InvertibleModuleOptions

/**
 * The logistic sigmoid as an invertible layer, mapping ℝ to (0, 1).
 * @example
 * inn.append(modules.InvertibleSigmoid)
 */
export class InvertibleSigmoid extends InvertibleModule {
  constructor(dimsIn: Dims[], opts: InvertibleSigmoidOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    checkOptionKeys(name, opts, [])
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${this.dimsIn.length}`)
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const v = x[0]
    const axes = Array.from({ length: v.ndim - 1 }, (_, i) => i + 1)
    if (!rev) {
      const a = v.abs()
      // ln σ'(x) = −|x| − 2·softplus(−|x|); the softplus argument is ≤ 0, so nothing overflows
      const logDiag = a.neg().sub(a.neg().softplus().mul(2))
      return [[v.sigmoid()], logDiag.sum(axes)]
    }
    const logY = v.log()
    const log1mY = v.neg().log1p()
    return [[logY.sub(log1mY)], logY.add(log1mY).sum(axes).neg()]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input, got ${inputDims.length}`)
    return [[...inputDims[0]]]
  }
}

/**
 * InvAutoActTwoSided (FrEIA.modules.InvAutoActTwoSided): an invertible leaky-ReLU-like activation with separate
 * learned log-slopes α₊ (x > 0) and α₋ (x < 0) per channel:
 *
 *   log_slope = α₊ + ½(α₋ − α₊)(1 − sign(x))   (α₊ for x > 0, α₋ for x < 0, their mean at 0)
 *   y = x · exp(log_slope);  reverse: x = y · exp(−log_slope), selected by sign(y) = sign(x)
 *   log|det J| = Σ log_slope over every non-batch element (negated in reverse)
 *
 * `alpha_pos`, `alpha_neg` have shape (1, C, 1, ...), initialised to ln(initPos), ln(initNeg). With
 * `jac: false` the log-det is null, as FrEIA returns None.
 */
import { InnflowError } from '../errors'
import { full, Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { booleanOption, channelParamShape, nonBatchAxes, positiveOption } from './inv-auto-act'

/** Options of {@link InvAutoActTwoSided} (FrEIA's keyword arguments in camelCase). */
export interface InvAutoActTwoSidedOptions extends InvertibleModuleOptions {
  /** Initial slope for x > 0, e^α₊ (> 0). Default 2. */
  initPos?: number
  /** Initial slope for x < 0, e^α₋ (> 0). Default 0.5. */
  initNeg?: number
  /** Learn the slopes (default true); false keeps both fixed (requiresGrad = false). */
  learnable?: boolean
}

/**
 * Invertible activation with learned slopes e^α₊ (x > 0) and e^α₋ (x < 0) per channel.
 * @example new InvAutoActTwoSided([[16]], { initPos: 2, initNeg: 0.5 })
 */
export class InvAutoActTwoSided extends InvertibleModule {
  /** Log-slope for x > 0 per channel, shape (1, C, 1, ...) (key `alpha_pos`). */
  readonly alphaPos: Tensor
  /** Log-slope for x < 0 per channel, shape (1, C, 1, ...) (key `alpha_neg`). */
  readonly alphaNeg: Tensor

  constructor(dimsIn: Dims[], opts: InvAutoActTwoSidedOptions = {}) {
    super(dimsIn, opts)
    const fn = new.target.name
    const shape = channelParamShape(fn, this.dimsIn)
    const initPos = positiveOption(fn, 'initPos', opts.initPos, 2.0)
    const initNeg = positiveOption(fn, 'initNeg', opts.initNeg, 0.5)
    const learnable = booleanOption(fn, 'learnable', opts.learnable, true)
    this.alphaPos = this.registerParameter('alpha_pos', full(shape, Math.log(initPos)))
    this.alphaNeg = this.registerParameter('alpha_neg', full(shape, Math.log(initNeg)))
    if (!learnable) {
      this.alphaPos.requiresGrad = false
      this.alphaNeg.requiresGrad = false
    }
  }

  forward(x: Tensor[], c: Tensor[] = [], rev = false, jac = true): ModuleOutput {
    this.checkInputs(x)
    this.checkConditions(c, x[0].shape[0])
    // 1 − sign(x) is 0 for x > 0, 1 at 0 and 2 for x < 0
    let logSlope = this.alphaPos.add(this.alphaNeg.sub(this.alphaPos).mul(0.5).mul(x[0].sign().neg().add(1)))
    if (rev) logSlope = logSlope.neg()
    const logDet = jac ? logSlope.sum(nonBatchAxes(this.dimsIn[0].length)) : null
    return [[x[0].mul(logSlope.exp())], logDet]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name} can only use 1 input, got ${inputDims.length}`)
    return [[...inputDims[0]]]
  }
}

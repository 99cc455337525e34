/**
 * InvertibleLeakyReLU: y = x for x > 0, negativeSlope·x otherwise (elementwise), invertnn's
 * `InvertibleLeakyReLU`. Reverse: x = y for y > 0, y / negativeSlope otherwise. No parameters.
 *
 *   log|det J| = ln(negativeSlope) · #{entries with x ≤ 0}   (per sample; negated in reverse)
 *
 * (the derivative at exactly 0 is taken as negativeSlope, as the backward of torch's leaky_relu does; the
 * reverse counts y ≤ 0, which is the same set). negativeSlope must be positive — with a negative slope the
 * map is not injective — and defaults to 0.01 (torch's default).
 *
 * Differences from invertnn (deliberate): invertnn's log-det is the inverse direction's term, detached from
 * the graph; here forward returns the forward map's log-det, shape (batch,).
 */
import { argumentError, InnflowError } from '../errors'
import { leakyRelu } from '../ops/elementwise'
import { Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'
import { sampleAxes } from './invertible-tanh'

/** Options of {@link InvertibleLeakyReLU}. */
export interface InvertibleLeakyReLUOptions extends InvertibleModuleOptions {
  /** The slope for non-positive inputs, a finite number > 0. Default 0.01. */
  negativeSlope?: number
}

/**
 * The leaky ReLU as an invertible layer.
 * @example
 * inn.append(InvertibleLeakyReLU, { negativeSlope: 0.1 })
 */
export class InvertibleLeakyReLU extends InvertibleModule {
  /** The slope for x ≤ 0. */
  readonly negativeSlope: number

  constructor(dimsIn: Dims[], opts: InvertibleLeakyReLUOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['negativeSlope'])
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${this.dimsIn.length}`)
    const s = o.negativeSlope ?? 0.01
    if (typeof s !== 'number' || !Number.isFinite(s) || !(s > 0))
      throw argumentError(name, 'negativeSlope', 'a finite number > 0 (a negative or zero slope is not invertible)', o.negativeSlope)
    this.negativeSlope = s
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const v = x[0]
    const s = this.negativeSlope
    // the count of non-positive entries does not depend on the direction: sign(y) = sign(x)
    const logDet = v.le(0).sum(sampleAxes(v)).mul(rev ? -Math.log(s) : Math.log(s))
    return [[leakyRelu(v, rev ? 1 / s : s)], logDet]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input`)
    return [[...inputDims[0]]]
  }

  override extraRepr(): string {
    return `negative_slope=${this.negativeSlope}`
  }
}

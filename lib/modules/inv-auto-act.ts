/**
 * InvAutoAct (FrEIA.modules.InvAutoAct): an invertible leaky-ReLU-like activation with one learned slope per
 * channel, symmetric between the two sides:
 *
 *   y = x · exp(α · sign(x))        (slope e^α for x > 0, e^−α for x < 0, 1 at 0)
 *   x = y · exp(−α · sign(y))       (sign(y) = sign(x), since the slopes are positive)
 *   log|det J| = Σ α · sign(x) over every non-batch element (negated in reverse)
 *
 * `alpha` has shape (1, C, 1, ...) (one value per channel, broadcast over the other axes), initialised to
 * ln(slopeInit). With `jac: false` the log-det is null, as FrEIA returns None.
 */
import { argumentError, InnflowError } from '../errors'
import { full, Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'

/** Options of {@link InvAutoAct} (FrEIA's keyword arguments in camelCase). */
export interface InvAutoActOptions extends InvertibleModuleOptions {
  /** Initial slope on the positive side, e^α (> 0); the negative side starts at 1/slopeInit. Default 2. */
  slopeInit?: number
  /** Learn the slopes (default true); false keeps `alpha` fixed (requiresGrad = false). */
  learnable?: boolean
}

/** @internal A positive finite number option, or its default. */
export function positiveOption(fn: string, name: string, value: unknown, dflt: number): number {
  if (value === undefined) return dflt
  if (typeof value !== 'number' || !Number.isFinite(value) || !(value > 0)) throw argumentError(fn, `options.${name}`, 'a positive finite number', value)
  return value
}

/** @internal A boolean option, or its default. */
export function booleanOption(fn: string, name: string, value: unknown, dflt: boolean): boolean {
  if (value === undefined) return dflt
  if (typeof value !== 'boolean') throw argumentError(fn, `options.${name}`, 'a boolean', value)
  return value
}

/** @internal Checks there is exactly one input and returns the shape of a per-channel parameter, (1, C, 1, ...). */
export function channelParamShape(fn: string, dimsIn: number[][]): number[] {
  if (dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${fn} can only use 1 input, got ${dimsIn.length}`)
  const d = dimsIn[0]
  return [1, d[0], ...d.slice(1).map(() => 1)]
}

/** @internal The non-batch axes 1..rank of an input of the given rank (without batch). */
export const nonBatchAxes = (rank: number): number[] => Array.from({ length: rank }, (_, i) => i + 1)

/**
 * Invertible activation with slope e^α for x > 0 and e^−α for x < 0, α learned per channel.
 * @example new InvAutoAct([[3, 8, 8]], { slopeInit: 1.5 })
 */
export class InvAutoAct extends InvertibleModule {
  /** Log-slope per channel, shape (1, C, 1, ...) (state-dict key `alpha`). */
  readonly alpha: Tensor

  constructor(dimsIn: Dims[], opts: InvAutoActOptions = {}) {
    super(dimsIn, opts)
    const fn = new.target.name
    const shape = channelParamShape(fn, this.dimsIn)
    const slopeInit = positiveOption(fn, 'slopeInit', opts.slopeInit, 2.0)
    const learnable = booleanOption(fn, 'learnable', opts.learnable, true)
    this.alpha = this.registerParameter('alpha', full(shape, Math.log(slopeInit)))
    if (!learnable) this.alpha.requiresGrad = false
  }

  forward(x: Tensor[], c: Tensor[] = [], rev = false, jac = true): ModuleOutput {
    this.checkInputs(x)
    this.checkConditions(c, x[0].shape[0])
    let logSlope = this.alpha.mul(x[0].sign())
    if (rev) logSlope = logSlope.neg()
    const logDet = jac ? logSlope.sum(nonBatchAxes(this.dimsIn[0].length)) : null
    return [[x[0].mul(logSlope.exp())], logDet]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name} can only use 1 input, got ${inputDims.length}`)
    return [[...inputDims[0]]]
  }
}

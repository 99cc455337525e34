/**
 * LearnedElementwiseScaling (FrEIA's `LearnedElementwiseScaling`): one learned scale per ELEMENT of a sample.
 *
 *   forward  y = x · exp(s)        log|det J| = Σ s
 *   reverse  x = y · exp(−s)       log|det J| = Σ s   (FrEIA's sign bug, kept by default; see below)
 *
 * s has shape (1, ...dims), initialised to ln(initScale). State-dict key: `s`.
 *
 * FrEIA returns +Σ s in BOTH directions (the reverse should be −Σ s); the FrEIA parity fixture stores that
 * value, so it is the default here. `fixReverseLogDet: true` returns the correct −Σ s in reverse. With
 * `jac = false` the log-det is null, as in FrEIA. The log-det is a (batch,) tensor (FrEIA: shape (1,)).
 */
import { argumentError, InnflowError } from '../errors'
import { getDefaultDtype } from '../dtype'
import { full, Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'

/** Options of {@link LearnedElementwiseScaling}. */
export interface LearnedElementwiseScalingOptions extends InvertibleModuleOptions {
  /** The initial scale exp(s) of every element (default 1, i.e. s = 0). */
  initScale?: number
  /**
   * Return the correct reverse log-det −Σ s (default false: FrEIA's +Σ s, which the parity fixtures expect).
   * innflow-specific; FrEIA has no such option.
   */
  fixReverseLogDet?: boolean
}

const OPTION_NAMES = ['dimsC', 'initScale', 'fixReverseLogDet']

/**
 * A learned elementwise scaling.
 * @example
 * inn.append(modules.LearnedElementwiseScaling, { initScale: 1.3 })
 */
export class LearnedElementwiseScaling extends InvertibleModule {
  /** The log-scales s, (1, ...dims). */
  readonly s: Tensor
  private readonly fixReverse: boolean

  constructor(dimsIn: Dims[], opts: LearnedElementwiseScalingOptions = {}) {
    super(dimsIn, opts)
    for (const key of Object.keys(opts))
      if (!OPTION_NAMES.includes(key))
        throw new InnflowError('ERR_ARGUMENT', `LearnedElementwiseScaling: unknown option '${key}' (options are ${OPTION_NAMES.join(', ')})`)
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `LearnedElementwiseScaling: expected exactly one input, got ${this.dimsIn.length}`)
    if (this.dimsC.length > 0) throw new InnflowError('ERR_ARGUMENT', 'LearnedElementwiseScaling takes no conditions (dimsC must be empty)')
    const init = opts.initScale ?? 1
    if (typeof init !== 'number' || !Number.isFinite(init) || !(init > 0)) throw argumentError('LearnedElementwiseScaling', 'initScale', 'a positive number', init)
    const fix = opts.fixReverseLogDet ?? false
    if (typeof fix !== 'boolean') throw argumentError('LearnedElementwiseScaling', 'fixReverseLogDet', 'a boolean', fix)
    this.fixReverse = fix
    this.s = this.registerParameter('s', full([1, ...this.dimsIn[0]], Math.log(init), { dtype: getDefaultDtype() }))
  }

  /** Scales (forward) or unscales (rev); log-det null when jac is false. */
  forward(x: Tensor[], c: Tensor[] = [], rev = false, jac = true): ModuleOutput {
    if (c && c.length > 0) throw new InnflowError('ERR_ARGUMENT', 'LearnedElementwiseScaling takes no conditions (got conditions)')
    this.checkInputs(x)
    const h = x[0]
    const out = rev ? h.mul(this.s.neg().exp()) : h.mul(this.s.exp())
    if (!jac) return [[out], null]
    let logDet = this.s.sum()
    if (rev && this.fixReverse) logDet = logDet.neg()
    return [[out], logDet.expand([h.shape[0]])]
  }

  /** Same shape as the input. */
  outputDims(inputDims: Dims[]): number[][] {
    return inputDims.map((d) => [...d])
  }

  override extraRepr(): string {
    return `dims_in=[(${this.dimsIn[0].join(', ')})]`
  }
}

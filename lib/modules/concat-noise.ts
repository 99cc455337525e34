/**
 * ConcatNoise: augments the input with fresh noise (invertnn's `InvertibleConcatNoise`), a
 * dimension-changing layer for augmented normalizing flows:
 *
 *   forward  x (B, d₀, …) → z = cat([ε, x], axis 1) (B, size + d₀, …),   ε ~ q drawn on every call
 *   reverse  z → x = z[:, size:]  (the first `size` channels are dropped)
 *   log-det  forward: −ln q(ε) per sample;   reverse: +ln q(ε) of the dropped channels
 *
 * q is a standard normal N(0, I) over (size, …) — `new StandardNormal(size, ...dims.slice(1))` — unless the
 * `distribution` option gives another (anything with `sample(n, { dtype })` and a per-sample `logProb`).
 *
 * The log-det convention (the noise enters as an extra input with density q, so the layer is the bijection
 * (ε, x) ↦ z and its "log-det" is the change of the joint log-density, −ln q(ε)): for a flow f built with it,
 *   ln p_Z(z) + Σ log-dets = ln p(x, ε) − ln q(ε),
 * whose expectation over ε ~ q is the ELBO ≤ ln p(x) of the marginal model p(x) = ∫ p(x, ε) dε. So the usual
 * maximum-likelihood loss −(ln p_Z(z) + log-det) stays a valid (upper-bound) objective with this layer
 * anywhere in a SequenceINN or GraphINN, and it is exact in the trivial case where nothing mixes ε with x
 * (the ε terms cancel). In reverse (sampling) the returned +ln q(ε) is again the negative of the forward
 * term for the same ε, so the round-trip bookkeeping (log-det(rev) = −log-det(fwd)) holds.
 *
 * Differences from invertnn (deliberate): invertnn attaches the log-probability SUMMED OVER THE BATCH (one
 * scalar) and passes it through an InferenceContext side channel, only in the inverse direction, with the
 * sign of a log-probability; here it is per sample, shape (B,), returned as the module's log-det with the
 * sign that makes the total a density bound, in both directions.
 */
import { DType } from '../dtype'
import { StandardNormal } from '../distributions'
import { argumentError, InnflowError } from '../errors'
import { cat, narrow } from '../ops/shape'
import { Tensor } from '../tensor'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'

/** A distribution of the noise: samples (n, size, …) and their per-sample log-density (n,). */
export interface NoiseDistribution {
  /** n samples, shape (n, size, ...dims.slice(1)), in the requested dtype. */
  sample(n: number, opts?: { dtype?: DType }): Tensor
  /** ln q per sample, shape (n,). */
  logProb(z: Tensor): Tensor
}

/** Options of {@link ConcatNoise}. */
export interface ConcatNoiseOptions extends InvertibleModuleOptions {
  /** The number of noise channels put in front of the input's (required, a positive integer). */
  size?: number
  /** The noise distribution; default the standard normal over (size, ...dims.slice(1)). */
  distribution?: NoiseDistribution
}

/**
 * Prepends `size` channels of noise; its log-density enters the log-det (see the file comment).
 * @example
 * const inn = new SequenceINN(2)
 * inn.append(ConcatNoise, { size: 2 })   // (2) → (4)
 */
export class ConcatNoise extends InvertibleModule {
  /** The number of noise channels. */
  readonly size: number
  /** The noise distribution. */
  readonly distribution: NoiseDistribution

  constructor(dimsIn: Dims[], opts: ConcatNoiseOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['size', 'distribution'])
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${this.dimsIn.length}`)
    if (o.size === undefined || o.size === null) throw new InnflowError('ERR_ARGUMENT', `${name}: need to specify the size option (the number of noise channels)`)
    if (typeof o.size !== 'number' || !Number.isInteger(o.size) || o.size < 1) throw argumentError(name, 'size', 'a positive integer', o.size)
    this.size = o.size
    const d = o.distribution
    if (d === undefined || d === null) this.distribution = new StandardNormal(this.size, ...this.dimsIn[0].slice(1))
    else if (typeof d !== 'object' || typeof d.sample !== 'function' || typeof d.logProb !== 'function')
      throw argumentError(name, 'distribution', 'an object with sample(n, { dtype }) and logProb(z) (e.g. a StandardNormal)', d)
    else this.distribution = d
  }

  private noiseShape(batch: number): number[] {
    return [batch, this.size, ...this.dimsIn[0].slice(1)]
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    const name = this.constructor.name
    if (!rev) {
      this.checkInputs(x)
      const batch = x[0].shape[0]
      const noise = this.distribution.sample(batch, { dtype: x[0].dtype })
      const want = this.noiseShape(batch)
      if (!noise || noise.shape.length !== want.length || !noise.shape.every((v, i) => v === want[i]))
        throw new InnflowError('ERR_SHAPE', `${name}: the distribution's sample(${batch}) must have shape (${want.join(', ')}), got (${noise?.shape?.join(', ')})`)
      return [[cat([noise, x[0]], 1)], this.logProb(noise, batch).neg()]
    }
    this.checkInputs(x, this.outputDims(this.dimsIn))
    const batch = x[0].shape[0]
    const noise = narrow(x[0], 1, 0, this.size)
    return [[narrow(x[0], 1, this.size, this.dimsIn[0][0])], this.logProb(noise, batch)]
  }

  private logProb(noise: Tensor, batch: number): Tensor {
    const lp = this.distribution.logProb(noise)
    if (!lp || lp.shape.length !== 1 || lp.shape[0] !== batch)
      throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: the distribution's logProb must return one value per sample, shape (${batch}), got (${lp?.shape?.join(', ')})`)
    return lp
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input`)
    const d = inputDims[0]
    if (d.length < 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: needs an input with a channel axis, got ${dimsString(d)}`)
    return [[this.size + d[0], ...d.slice(1)]]
  }

  override extraRepr(): string {
    return `size=${this.size}`
  }
}

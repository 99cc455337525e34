/**
 * Distributions FrEIA users reach for: the standard normal latent (FrEIA's StandardNormalDistribution).
 */
import { checkShape } from '../dtype'
import { Device, DType } from '../dtype'
import { argumentError, InnflowError } from '../errors'
import { checkTensor, randn, Tensor } from '../tensor'

const LOG_2PI = Math.log(2 * Math.PI)

/** N(0, I) over an event of shape `eventShape` (all non-batch dimensions). */
export class StandardNormal {
  readonly eventShape: readonly number[]
  private readonly eventSize: number

  constructor(...eventShape: number[]) {
    checkShape('StandardNormal', eventShape, 'eventShape')
    if (eventShape.length === 0 || eventShape.some((d) => d === 0)) throw argumentError('StandardNormal', 'eventShape', 'positive dimensions, e.g. new StandardNormal(2)', eventShape)
    this.eventShape = Object.freeze([...eventShape])
    this.eventSize = eventShape.reduce((a, b) => a * b, 1)
  }

  /** log p(z) per sample: −½‖z‖² − (D/2)·log 2π, shape (batch,). Differentiable. */
  logProb(z: Tensor): Tensor {
    checkTensor('StandardNormal.logProb', 'z', z)
    if (z.ndim !== this.eventShape.length + 1 || !this.eventShape.every((d, i) => z.shape[i + 1] === d))
      throw new InnflowError('ERR_SHAPE', `StandardNormal.logProb: expected (batch, ${this.eventShape.join(', ')}), got (${z.shape.join(', ')})`)
    const dims = this.eventShape.map((_, i) => i + 1)
    return z.square().sum(dims).mul(-0.5).sub(0.5 * this.eventSize * LOG_2PI)
  }

  /** n samples, shape (n, ...eventShape), on `device` (default: INNFLOW_DEVICE or the CPU). */
  sample(n: number, opts: { dtype?: DType; device?: Device } = {}): Tensor {
    if (!Number.isInteger(n) || n < 1) throw argumentError('StandardNormal.sample', 'n', 'a positive integer', n)
    return randn([n, ...this.eventShape], opts)
  }
}

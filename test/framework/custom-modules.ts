/**
 * The two custom modules of FrEIA's tutorial, written against innflow's public API: a fixed random
 * elementwise scaling and a conditional swap of two inputs.
 */
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput, ones, ops, randn, Tensor } from '../../lib'

/** y = x · s with a fixed random positive s drawn at construction (a buffer, not a parameter). */
export class FixedRandomElementwiseMultiply extends InvertibleModule {
  readonly randomFactor: Tensor
  constructor(dimsIn: Dims[], opts: InvertibleModuleOptions = {}) {
    super(dimsIn, opts)
    this.randomFactor = this.registerBuffer('random_factor', randn([1, ...dimsIn[0]]).abs().add(0.5))
  }
  forward(x: Tensor[], _c: Tensor[] = [], rev = false): ModuleOutput {
    const logDet = this.randomFactor.log().sum()
    if (!rev) return [[x[0].mul(this.randomFactor)], logDet.expand([x[0].shape[0]])]
    return [[x[0].div(this.randomFactor)], logDet.neg().expand([x[0].shape[0]])]
  }
  outputDims(inputDims: Dims[]): number[][] {
    return inputDims.map((d) => [...d])
  }
}

/** Two inputs of equal shape; where the condition (batch, 1) is positive, they are swapped. */
export class ConditionalSwap extends InvertibleModule {
  constructor(dimsIn: Dims[], opts: InvertibleModuleOptions = {}) {
    super(dimsIn, opts)
    if (dimsIn.length !== 2) throw new Error('ConditionalSwap takes two inputs')
  }
  forward(x: Tensor[], c: Tensor[] = []): ModuleOutput {
    const [x1, x2] = x
    const swap = c[0].gt(0).reshape([x1.shape[0], ...x1.shape.slice(1).map(() => 1)])
    const keep = ones(swap.shape as number[], { dtype: swap.dtype }).sub(swap)
    const y1 = x1.mul(keep).add(x2.mul(swap))
    const y2 = x2.mul(keep).add(x1.mul(swap))
    return [[y1, y2], 0]
  }
  outputDims(inputDims: Dims[]): number[][] {
    return inputDims.map((d) => [...d])
  }
}


/** Splits (D,) into two halves (first ⌈D/2⌉). */
export class HalfSplit extends InvertibleModule {
  forward(x: Tensor[], _c: Tensor[] = [], rev = false): ModuleOutput {
    if (rev) return [[ops.cat(x, 1)], 0]
    const d = x[0].shape[1]
    const a = Math.ceil(d / 2)
    return [[x[0].narrow(1, 0, a), x[0].narrow(1, a, d - a)], 0]
  }
  outputDims(inputDims: Dims[]): number[][] {
    const d = inputDims[0][0]
    return [[Math.ceil(d / 2)], [d - Math.ceil(d / 2)]]
  }
}

/** Joins its inputs along the feature axis. */
export class Join extends InvertibleModule {
  forward(x: Tensor[], _c: Tensor[] = [], rev = false): ModuleOutput {
    if (!rev) return [[ops.cat(x, 1)], 0]
    let start = 0
    return [this.dimsIn.map((d) => x[0].narrow(1, (start += d[0]) - d[0], d[0])), 0]
  }
  outputDims(inputDims: Dims[]): number[][] {
    return [[inputDims.reduce((s, d) => s + d[0], 0)]]
  }
}

/** Parameter-free layers: activations, Dropout, Identity, Flatten. */
import { argumentError, InnflowError } from '../errors'
import { noGrad } from '../autograd/tape'
import { elu, leakyRelu, relu, sigmoid, tanh } from '../ops/elementwise'
import { flatten } from '../ops/view'
import { checkTensor, rand, Tensor } from '../tensor'
import { Module } from './module'

/** max(x, 0). */
export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x)
  }
}

/** x for x > 0, else negativeSlope·x. */
export class LeakyReLU extends Module {
  readonly negativeSlope: number
  constructor(negativeSlope = 0.01) {
    super()
    if (typeof negativeSlope !== 'number' || !Number.isFinite(negativeSlope)) throw argumentError('LeakyReLU', 'negativeSlope', 'a finite number', negativeSlope)
    this.negativeSlope = negativeSlope
  }
  forward(x: Tensor): Tensor {
    return leakyRelu(x, this.negativeSlope)
  }
  override extraRepr(): string {
    return `negative_slope=${this.negativeSlope}`
  }
}

/** tanh(x). */
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return tanh(x)
  }
}

/** 1 / (1 + exp(−x)). */
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return sigmoid(x)
  }
}

/** x for x > 0, else alpha·(exp(x) − 1). */
export class ELU extends Module {
  readonly alpha: number
  constructor(alpha = 1) {
    super()
    if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw argumentError('ELU', 'alpha', 'a finite number', alpha)
    this.alpha = alpha
  }
  forward(x: Tensor): Tensor {
    return elu(x, this.alpha)
  }
  override extraRepr(): string {
    return `alpha=${this.alpha}`
  }
}

/** Returns its input unchanged. */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return checkTensor('Identity', 'x', x)
  }
}

/** Merges dimensions startDim..endDim (default 1..-1: everything but the batch). */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super()
    if (!Number.isInteger(startDim)) throw argumentError('Flatten', 'startDim', 'an integer', startDim)
    if (!Number.isInteger(endDim)) throw argumentError('Flatten', 'endDim', 'an integer', endDim)
  }
  forward(x: Tensor): Tensor {
    return flatten(x, this.startDim, this.endDim)
  }
}

/**
 * Inverted dropout: in training mode each element is zeroed with probability p and the survivors are scaled
 * by 1/(1 − p), so that the expectation is unchanged; in evaluation mode it is the identity. The mask comes
 * from innflow's seeded generator.
 */
export class Dropout extends Module {
  readonly p: number
  constructor(p = 0.5) {
    super()
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new InnflowError('ERR_ARGUMENT', `Dropout: p must be a probability in [0, 1], got ${String(p)}`)
    this.p = p
  }
  forward(x: Tensor): Tensor {
    checkTensor('Dropout', 'x', x)
    if (!this.training || this.p === 0) return x
    if (this.p === 1) return x.mul(0)
    const p = this.p
    // keep with probability 1 − p: u ~ U(0, 1) survives when u >= p
    const noise = noGrad(() => {
      const u = rand([...x.shape], { dtype: x.dtype, device: x.device })
      const keepMask = u.ge(p)
      u.dispose()
      const scaled = keepMask.div(1 - p)
      keepMask.dispose()
      return scaled
    })
    return x.mul(noise)
  }
  override extraRepr(): string {
    return `p=${this.p}`
  }
}

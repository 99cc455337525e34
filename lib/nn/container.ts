/** Sequential: children named '0', '1', ... applied in order (torch.nn.Sequential). */
import { argumentError, InnflowError } from '../errors'
import { linear } from '../ops/matmul'
import { Tensor } from '../tensor'
import { ReLU } from './activation'
import { Linear } from './layers'
import { Module } from './module'

/** A layer that runs its class's own forward (an exact class, no forward set on the instance). */
const plain = (m: Module | undefined, cls: typeof Linear | typeof ReLU): boolean =>
  m !== undefined && m.constructor === cls && !Object.prototype.hasOwnProperty.call(m, 'forward')

/**
 * Applies its layers one after the other. Children are named '0', '1', ..., so parameters are
 * `0.weight`, `2.bias`, ... exactly as in PyTorch.
 *
 * A Linear immediately followed by a ReLU runs as one call, `linear(x, w, b, { activation: 'relu' })` (the same
 * numbers as the two layers, bit for bit on the CPU, with one native call forward and one backward); the
 * modules, their names and the state dict are those of the two layers.
 * @example new nn.Sequential(new nn.Linear(2, 64), new nn.ReLU(), new nn.Linear(64, 2))
 */
export class Sequential extends Module implements Iterable<Module> {
  private readonly layers: Module[] = []

  constructor(...layers: Module[]) {
    super()
    layers.forEach((m) => this.append(m))
  }

  /** Adds a layer at the end (named by its index); returns this. */
  append(module: Module): this {
    if (!(module instanceof Module) && !(module as { __isInnflowModule?: boolean } | null)?.__isInnflowModule)
      throw argumentError('Sequential', `layer ${this.layers.length}`, 'a Module', module)
    this.registerModule(String(this.layers.length), module)
    this.layers.push(module)
    return this
  }

  /** Number of layers. */
  get length(): number {
    return this.layers.length
  }

  /** The layer at index i (negative counts from the end, as in Python). */
  at(i: number): Module {
    if (!Number.isInteger(i)) throw argumentError('Sequential.at', 'i', 'an integer', i)
    const k = i < 0 ? this.layers.length + i : i
    if (k < 0 || k >= this.layers.length) throw new InnflowError('ERR_ARGUMENT', `Sequential.at: index ${i} is out of range for ${this.layers.length} layers`)
    return this.layers[k]
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.layers[Symbol.iterator]()
  }

  forward(x: Tensor): Tensor {
    let y: unknown = x
    const layers = this.layers
    for (let i = 0; i < layers.length; i++) {
      const m = layers[i]
      if (plain(m, Linear) && plain(layers[i + 1], ReLU)) {
        const l = m as Linear
        y = linear(y as Tensor, l.weight, l.bias, { activation: 'relu' })
        i++
        continue
      }
      y = m.forward(y)
      if (!(y instanceof Tensor) && !(y as { __isInnflowTensor?: boolean } | null)?.__isInnflowTensor)
        throw new InnflowError('ERR_ARGUMENT', `Sequential: layer ${i} (${m.constructor.name}) did not return a Tensor`)
    }
    return y as Tensor
  }
}

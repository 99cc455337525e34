/** Sequential: children named '0', '1', ... applied in order (torch.nn.Sequential). */
import { argumentError, InnflowError } from '../errors'
import { Tensor } from '../tensor'
import { Module } from './module'

/**
 * Applies its layers one after the other. Children are named '0', '1', ..., so parameters are
 * `0.weight`, `2.bias`, ... exactly as in PyTorch.
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
    this.layers.forEach((m, i) => {
      y = m.forward(y)
      if (!(y instanceof Tensor) && !(y as { __isInnflowTensor?: boolean } | null)?.__isInnflowTensor)
        throw new InnflowError('ERR_ARGUMENT', `Sequential: layer ${i} (${m.constructor.name}) did not return a Tensor`)
    })
    return y as Tensor
  }
}

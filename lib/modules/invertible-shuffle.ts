/**
 * InvertibleShuffle: a fixed permutation of the entries along one axis, invertnn's `InvertibleShuffle`:
 *
 *   y[:, …, k, …] = x[:, …, order[k], …],   reverse x[:, …, order[k], …] = y[:, …, k, …],   log|det J| = 0
 *
 * `order` is a permutation of 0..L−1 for the length L of axis `dim`; `dim` counts the non-batch axes as in
 * FrEIA (0 = the channel axis, tensor axis 1 — the axis of invertnn's default dim=1, which counts the batch).
 * Buffers with invertnn's names: `shuffle_indices` (the order) and `unshuffle_indices` (its inverse
 * permutation), float tensors holding integers (innflow has no integer dtype). The log-det is the number 0
 * (invertnn's volume-preserving mixin returns +1 per sample, a bug).
 */
import { argumentError, InnflowError } from '../errors'
import { getDefaultDtype } from '../dtype'
import { indexSelect } from '../ops/shape'
import { tensor, Tensor } from '../tensor'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link InvertibleShuffle}. */
export interface InvertibleShuffleOptions extends InvertibleModuleOptions {
  /** The permutation (required): output entry k takes input entry order[k]. An array or a 1-D tensor. */
  order?: readonly number[] | Tensor
  /** The non-batch axis to permute (0 = channels, the default; negative values count from the end). */
  dim?: number
}

/** @internal Reads a permutation of 0..n−1 from an array or a 1-D tensor (ERR_ARGUMENT otherwise). */
function permutationOption(name: string, value: unknown, n: number): number[] {
  let values: number[]
  if (value !== null && typeof value === 'object' && (value as { __isInnflowTensor?: boolean }).__isInnflowTensor) {
    const t = value as Tensor
    if (t.isDisposed) throw new InnflowError('ERR_DISPOSED', `${name}: the tensor given as order was disposed`)
    if (t.ndim !== 1) throw new InnflowError('ERR_SHAPE', `${name}: order must be 1-D, got shape [${t.shape.join(', ')}]`)
    values = Array.from(t.toArray())
  } else if (Array.isArray(value)) values = value as number[]
  else throw argumentError(name, 'order', `a permutation of 0..${n - 1} (an array or a 1-D tensor)`, value)
  const seen = new Array<boolean>(n).fill(false)
  const ok =
    values.length === n &&
    values.every((v) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= n || seen[v]) return false
      seen[v] = true
      return true
    })
  if (!ok) throw argumentError(name, 'order', `a permutation of 0..${n - 1} (each index once)`, value)
  return values
}

/**
 * A fixed permutation along one axis.
 * @example
 * inn.append(InvertibleShuffle, { order: [2, 0, 3, 1] })
 */
export class InvertibleShuffle extends InvertibleModule {
  /** The permuted non-batch axis (0 = channels). */
  readonly dim: number
  /** The order (buffer `shuffle_indices`). */
  readonly shuffleIndices: Tensor
  /** Its inverse permutation (buffer `unshuffle_indices`). */
  readonly unshuffleIndices: Tensor

  constructor(dimsIn: Dims[], opts: InvertibleShuffleOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['order', 'dim'])
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${this.dimsIn.length}`)
    const rank = this.dimsIn[0].length
    const dim = o.dim ?? 0
    if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < -rank || dim >= rank)
      throw argumentError(name, 'dim', `an axis of the input ${dimsString(this.dimsIn[0])} without batch, in [${-rank}, ${rank - 1}]`, o.dim)
    this.dim = dim < 0 ? dim + rank : dim
    if (o.order === undefined || o.order === null) throw new InnflowError('ERR_ARGUMENT', `${name}: need to specify the order option (a permutation)`)
    const order = permutationOption(name, o.order, this.dimsIn[0][this.dim])
    const inverse = new Array<number>(order.length)
    order.forEach((v, k) => (inverse[v] = k))
    const dtype = getDefaultDtype()
    this.shuffleIndices = this.registerBuffer('shuffle_indices', tensor(order, [order.length], { dtype }))
    this.unshuffleIndices = this.registerBuffer('unshuffle_indices', tensor(inverse, [inverse.length], { dtype }))
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    return [[indexSelect(x[0], this.dim + 1, rev ? this.unshuffleIndices : this.shuffleIndices)], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input`)
    return [[...inputDims[0]]]
  }

  override extraRepr(): string {
    return `dim=${this.dim}`
  }
}

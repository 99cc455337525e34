/** Sum and mean over any dimensions (native/cpu/reduce.cc). */
import { bindingFor, NativeTensor } from '../binding'
import { argumentError } from '../errors'
import { checkTensor, fromHandle, recordUnary, Tensor } from '../tensor'

interface ReduceBinding {
  reduceSum(x: NativeTensor, dims: number[], keepdim: boolean, mean: boolean): NativeTensor
  reduceSumBackward(g: NativeTensor, xShape: readonly number[], dims: number[], mean: boolean): NativeTensor
  sumToShape(g: NativeTensor, target: readonly number[]): NativeTensor
}
const N = bindingFor<ReduceBinding>()

/** @internal Normalises one dimension (negative counts from the end). */
export function normDim(fn: string, dim: unknown, ndim: number, name = 'dim'): number {
  const n = Math.max(ndim, 1) // a 0-d tensor takes dim 0 or -1, as in PyTorch
  if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < -n || dim >= n)
    throw argumentError(fn, name, `an integer in [${-n}, ${n - 1}]`, dim)
  return dim < 0 ? dim + n : dim
}

function normDims(fn: string, x: Tensor, dim: number | number[] | undefined): number[] {
  if (dim === undefined) return x.shape.map((_, i) => i)
  const list = Array.isArray(dim) ? dim : [dim]
  const dims = list.map((d) => normDim(fn, d, x.ndim))
  // a 0-d tensor accepts dim 0 / -1 as PyTorch does; there is nothing to reduce over
  if (x.ndim === 0) return []
  if (new Set(dims).size !== dims.length) throw argumentError(fn, 'dim', 'distinct dimensions', dim)
  return dims.sort((a, b) => a - b)
}

function reduce(fn: string, x: Tensor, dim: number | number[] | undefined, keepdim: boolean, mean: boolean): Tensor {
  checkTensor(fn, 'x', x)
  if (typeof keepdim !== 'boolean') throw argumentError(fn, 'keepdim', 'a boolean', keepdim)
  const dims = normDims(fn, x, dim)
  const y = fromHandle(N.reduceSum(x.handle, dims, keepdim, mean))
  return recordUnary(fn, [x], y, (g) => [fromHandle(N.reduceSumBackward(g.handle, x.shape, dims, mean))])
}

/** Sum over dim (a dimension, a list, or all when omitted). */
export function sum(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  return reduce('sum', x, dim, keepdim, false)
}
/** Mean over dim (a dimension, a list, or all when omitted). */
export function mean(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  return reduce('mean', x, dim, keepdim, true)
}

/** @internal Sums g over broadcast dimensions down to `shape` (the backward of broadcasting). */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  return fromHandle(N.sumToShape(g.handle, shape))
}

/** Shape changes that keep the data as it is (views over the same storage), plus broadcast copies and casts. */
import { bindingFor, core, NativeTensor } from '../binding'
import { Device, DType } from '../dtype'
import { argumentError, InnflowError } from '../errors'
import { checkTensor, fromHandle, recordUnary, Tensor } from '../tensor'
import { normDim, sumToShape } from './reduce'

interface ViewBinding {
  expand(x: NativeTensor, shape: readonly number[]): NativeTensor
}
const N = bindingFor<ViewBinding>()

/** The same data with another shape; one entry may be -1 (inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor('reshape', 'x', x)
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= -1)) throw argumentError('reshape', 'shape', 'an array of integers (>= -1)', shape)
  const unknown = shape.filter((d) => d === -1).length
  if (unknown > 1) throw new InnflowError('ERR_SHAPE', `reshape: only one dimension can be -1, got [${shape}]`)
  let s = shape
  if (unknown === 1) {
    const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1)
    if (known === 0 || x.size % known !== 0) throw new InnflowError('ERR_SHAPE', `reshape: cannot view shape [${x.shape}] as [${shape}]`)
    s = shape.map((d) => (d === -1 ? x.size / known : d))
  }
  if (s.reduce((a, b) => a * b, 1) !== x.size) throw new InnflowError('ERR_SHAPE', `reshape: cannot view shape [${x.shape}] (${x.size} elements) as [${shape}]`)
  const y = fromHandle(core.reshape(x.handle, s))
  return recordUnary('reshape', [x], y, (g) => [fromHandle(core.reshape(g.handle, x.shape))])
}

/** Merges dimensions startDim..endDim into one. */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  checkTensor('flatten', 'x', x)
  if (x.ndim === 0) return reshape(x, [1])
  const s = normDim('flatten', startDim, x.ndim, 'startDim')
  const e = normDim('flatten', endDim, x.ndim, 'endDim')
  if (s > e) throw argumentError('flatten', 'startDim', `at most endDim (${e})`, startDim)
  const merged = x.shape.slice(s, e + 1).reduce((a, b) => a * b, 1)
  return reshape(x, [...x.shape.slice(0, s), merged, ...x.shape.slice(e + 1)])
}

/** Inserts a size-1 dimension at dim. */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  checkTensor('unsqueeze', 'x', x)
  const d = normDim('unsqueeze', dim, x.ndim + 1)
  const s = [...x.shape]
  s.splice(d, 0, 1)
  return reshape(x, s)
}

/** Removes size-1 dimensions (only `dim` when given). */
export function squeeze(x: Tensor, dim?: number): Tensor {
  checkTensor('squeeze', 'x', x)
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1))
  const d = normDim('squeeze', dim, x.ndim)
  if (x.shape[d] !== 1) return reshape(x, [...x.shape])
  return reshape(x, x.shape.filter((_, i) => i !== d))
}

/** Broadcasts x to `shape` (a copy); -1 keeps a dimension. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor('expand', 'x', x)
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= -1)) throw argumentError('expand', 'shape', 'an array of integers', shape)
  const lead = shape.length - x.ndim
  if (lead < 0) throw new InnflowError('ERR_SHAPE', `expand: shape [${shape}] has fewer dimensions than the tensor's [${x.shape}]`)
  if (shape.slice(0, lead).includes(-1)) throw new InnflowError('ERR_SHAPE', `expand: -1 is not allowed in a new leading dimension ([${shape}])`)
  const target = shape.map((d, i) => (d === -1 ? x.shape[i - lead] : d))
  const y = fromHandle(N.expand(x.handle, target))
  return recordUnary('expand', [x], y, (g) => [sumToShape(g, x.shape)])
}

/** A copy of x (differentiable). */
export function clone(x: Tensor): Tensor {
  checkTensor('clone', 'x', x)
  const y = fromHandle(core.cast(x.handle, x.dtype))
  return recordUnary('clone', [x], y, (g) => [fromHandle(core.cast(g.handle, g.dtype))])
}

/** A copy of x on `device` (differentiable; the gradient moves back). */
export function toDevice(x: Tensor, device: Device): Tensor {
  checkTensor('to', 'x', x)
  const y = fromHandle(core.toDevice(x.handle, device))
  const from = x.device
  return recordUnary('to', [x], y, (g) => [fromHandle(core.toDevice(g.handle, from))])
}

/** x converted to dtype (differentiable; the gradient is converted back). */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkTensor('cast', 'x', x)
  const y = fromHandle(core.cast(x.handle, dtype))
  return recordUnary('cast', [x], y, (g) => [fromHandle(core.cast(g.handle, x.dtype))])
}

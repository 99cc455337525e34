/**
 * Shape ops that move data: permute/transpose, narrow, cat/stack, split/chunk, indexSelect and gather
 * (native/cpu/shape.cc). Every result is a new contiguous tensor; each records its native backward kernel.
 */
import { bindingFor, NativeTensor } from '../binding'
import { argumentError, InnflowError } from '../errors'
import { record } from '../autograd/tape'
import { checkTensor, fromHandle, recordUnary, Tensor } from '../tensor'
import { normDim } from './reduce'
import { unsqueeze } from './view'

interface ShapeBinding {
  permute(x: NativeTensor, dims: number[]): NativeTensor
  permuteBackward(g: NativeTensor, dims: number[]): NativeTensor
  narrow(x: NativeTensor, dim: number, start: number, length: number): NativeTensor
  narrowBackward(g: NativeTensor, xShape: readonly number[], dim: number, start: number): NativeTensor
  cat(xs: NativeTensor[], dim: number): NativeTensor
  catBackward(g: NativeTensor, sizes: number[], dim: number, need: boolean[]): (NativeTensor | null)[]
  split(x: NativeTensor, sizes: number[], dim: number): NativeTensor[]
  splitBackward(gs: (NativeTensor | null)[], xShape: readonly number[], sizes: number[], dim: number, dtype: string): NativeTensor
  indexSelect(x: NativeTensor, dim: number, index: NativeTensor | number[]): NativeTensor
  indexSelectBackward(g: NativeTensor, xShape: readonly number[], dim: number, index: NativeTensor | number[]): NativeTensor
  gather(x: NativeTensor, dim: number, index: NativeTensor): NativeTensor
  gatherBackward(g: NativeTensor, xShape: readonly number[], dim: number, index: NativeTensor): NativeTensor
}
const N = bindingFor<ShapeBinding>()

function requireDims(fn: string, x: Tensor): void {
  if (x.ndim === 0) throw new InnflowError('ERR_SHAPE', `${fn}: x must have at least one dimension, got a 0-d tensor`)
}

function tensorList(fn: string, tensors: unknown): Tensor[] {
  if (!Array.isArray(tensors) || tensors.length === 0) throw argumentError(fn, 'tensors', 'a non-empty array of Tensors', tensors)
  const list = tensors.map((t, i) => checkTensor(fn, `tensors[${i}]`, t))
  const dtype = list[0].dtype
  list.forEach((t, i) => {
    if (t.dtype !== dtype) throw new InnflowError('ERR_DTYPE', `${fn}: tensors[${i}] is ${t.dtype} but tensors[0] is ${dtype}; convert with .to({ dtype })`)
  })
  return list
}

/** Reorders the dimensions: result dimension i is x's dimension dims[i] (negative dims count from the end). */
export function permute(x: Tensor, dims: number[]): Tensor {
  checkTensor('permute', 'x', x)
  if (!Array.isArray(dims) || dims.length !== x.ndim) throw argumentError('permute', 'dims', `an array of ${x.ndim} dimensions`, dims)
  const perm = dims.map((d, i) => normDim('permute', d, x.ndim, `dims[${i}]`))
  if (new Set(perm).size !== perm.length) throw argumentError('permute', 'dims', 'a permutation (each dimension once)', dims)
  const y = fromHandle(N.permute(x.handle, perm))
  return recordUnary('permute', [x], y, (g) => [fromHandle(N.permuteBackward(g.handle, perm))])
}

/** Swaps dimensions dim0 and dim1. */
export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  checkTensor('transpose', 'x', x)
  const a = normDim('transpose', dim0, x.ndim, 'dim0')
  const b = normDim('transpose', dim1, x.ndim, 'dim1')
  const perm = x.shape.map((_, i) => (i === a ? b : i === b ? a : i))
  return permute(x, perm)
}

/** A copy of x[..., start:start+length, ...] along dim (start may be negative, counted from the end). */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  checkTensor('narrow', 'x', x)
  requireDims('narrow', x)
  const d = normDim('narrow', dim, x.ndim)
  const size = x.shape[d]
  if (typeof start !== 'number' || !Number.isInteger(start) || start < -size || start > size)
    throw argumentError('narrow', 'start', `an integer in [${-size}, ${size}]`, start)
  const s = start < 0 ? start + size : start
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || s + length > size)
    throw argumentError('narrow', 'length', `an integer in [0, ${size - s}] (dimension ${d} has size ${size}, start ${s})`, length)
  const y = fromHandle(N.narrow(x.handle, d, s, length))
  return recordUnary('narrow', [x], y, (g) => [fromHandle(N.narrowBackward(g.handle, x.shape, d, s))])
}

/** Concatenates tensors along dim; their shapes must agree everywhere else. */
export function cat(tensors: Tensor[], dim = 0): Tensor {
  const list = tensorList('cat', tensors)
  const first = list[0]
  if (first.ndim === 0) throw new InnflowError('ERR_SHAPE', 'cat: zero-dimensional tensors cannot be concatenated (use stack)')
  const d = normDim('cat', dim, first.ndim)
  list.forEach((t, i) => {
    if (t.ndim !== first.ndim || t.shape.some((s, k) => k !== d && s !== first.shape[k]))
      throw new InnflowError('ERR_SHAPE', `cat: tensors[${i}] has shape [${t.shape}], which does not match tensors[0]'s [${first.shape}] outside dimension ${d}`)
  })
  const sizes = list.map((t) => t.shape[d])
  const y = fromHandle(N.cat(list.map((t) => t.handle), d))
  return recordUnary('cat', list, y, (g) =>
    N.catBackward(g.handle, sizes, d, list.map((t) => t.requiresGrad)).map((h) => (h ? fromHandle(h) : null)),
  )
}

/** Stacks tensors of one shape along a new dimension dim. */
export function stack(tensors: Tensor[], dim = 0): Tensor {
  const list = tensorList('stack', tensors)
  const shape = list[0].shape
  list.forEach((t, i) => {
    if (t.shape.join() !== shape.join() || t.ndim !== shape.length)
      throw new InnflowError('ERR_SHAPE', `stack: tensors[${i}] has shape [${t.shape}] but tensors[0] has [${shape}]`)
  })
  const d = normDim('stack', dim, shape.length + 1)
  const parts = list.map((t) => unsqueeze(t, d))
  try {
    return cat(parts, d)
  } finally {
    // cat's backward and the unsqueeze's only need shapes, so these extra handles can go at once.
    for (const p of parts) p.dispose()
  }
}

function splitPieces(fn: string, x: Tensor, sizes: number[], d: number): Tensor[] {
  const pieces = N.split(x.handle, sizes, d).map(fromHandle)
  record(fn, [x], pieces, (gs) => [fromHandle(N.splitBackward(gs.map((g) => (g ? g.handle : null)), x.shape, sizes, d, x.dtype))])
  return pieces
}

/**
 * torch.split: with a number, pieces of that size along dim (the last may be smaller); with an array, pieces
 * of those sizes, which must add up to the size of dim.
 */
export function split(x: Tensor, sizes: number | number[], dim = 0): Tensor[] {
  checkTensor('split', 'x', x)
  requireDims('split', x)
  const d = normDim('split', dim, x.ndim)
  const size = x.shape[d]
  let list: number[]
  if (typeof sizes === 'number') {
    if (!Number.isInteger(sizes) || sizes < 0 || (sizes === 0 && size > 0)) throw argumentError('split', 'sizes', 'a positive integer', sizes)
    list = []
    for (let s = 0; s < size; s += sizes) list.push(Math.min(sizes, size - s))
    if (size === 0) list.push(0)
  } else if (Array.isArray(sizes) && sizes.length > 0 && sizes.every((s) => typeof s === 'number' && Number.isInteger(s) && s >= 0)) {
    const total = sizes.reduce((a, b) => a + b, 0)
    if (total !== size) throw argumentError('split', 'sizes', `sizes that add up to ${size} (dimension ${d} of [${x.shape}])`, sizes)
    list = [...sizes]
  } else {
    throw argumentError('split', 'sizes', 'a positive integer or a non-empty array of non-negative integers', sizes)
  }
  return splitPieces('split', x, list, d)
}

/** torch.chunk: at most `chunks` pieces of size ceil(n / chunks) along dim (the last may be smaller). */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  checkTensor('chunk', 'x', x)
  requireDims('chunk', x)
  if (typeof chunks !== 'number' || !Number.isInteger(chunks) || chunks < 1) throw argumentError('chunk', 'chunks', 'a positive integer', chunks)
  const d = normDim('chunk', dim, x.ndim)
  const size = x.shape[d]
  if (size === 0) return splitPieces('chunk', x, new Array<number>(chunks).fill(0), d)
  const step = Math.ceil(size / chunks)
  const list: number[] = []
  for (let s = 0; s < size; s += step) list.push(Math.min(step, size - s))
  return splitPieces('chunk', x, list, d)
}

/**
 * Picks entries along dim: result[..., k, ...] = x[..., index[k], ...]. index is a 1-D tensor (float32 or
 * float64 holding integers) or a number[]; repeated indices are allowed (their gradients add up).
 */
export function indexSelect(x: Tensor, dim: number, index: Tensor | number[]): Tensor {
  checkTensor('indexSelect', 'x', x)
  requireDims('indexSelect', x)
  const d = normDim('indexSelect', dim, x.ndim)
  const size = x.shape[d]
  let idx: NativeTensor | number[]
  if (Array.isArray(index)) {
    index.forEach((v, k) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= size)
        throw argumentError('indexSelect', `index[${k}]`, `an integer in [0, ${size - 1}] (dimension ${d} has size ${size})`, v)
    })
    idx = [...index] // the backward must see the indices as they were, whatever the caller does to its array
  } else {
    const t = checkTensor('indexSelect', 'index', index)
    if (t.ndim !== 1) throw new InnflowError('ERR_SHAPE', `indexSelect: index must be 1-D, got shape [${t.shape}]`)
    idx = t.handle // its values are checked (integers in range) by the native kernel
  }
  const y = fromHandle(N.indexSelect(x.handle, d, idx))
  return recordUnary('indexSelect', [x], y, (g) => [fromHandle(N.indexSelectBackward(g.handle, x.shape, d, idx))])
}

/**
 * torch.gather: result[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (and so on). index has as many dimensions
 * as x and is no larger than x outside dim; the result has index's shape.
 */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  checkTensor('gather', 'x', x)
  const d = normDim('gather', dim, x.ndim)
  const idx = checkTensor('gather', 'index', index)
  if (idx.ndim !== x.ndim) throw new InnflowError('ERR_SHAPE', `gather: index must have ${x.ndim} dimensions like x, got shape [${idx.shape}]`)
  idx.shape.forEach((s, k) => {
    if (k !== d && s > x.shape[k])
      throw new InnflowError('ERR_SHAPE', `gather: index shape [${idx.shape}] is larger than x's [${x.shape}] in dimension ${k}`)
  })
  const y = fromHandle(N.gather(x.handle, d, idx.handle))
  return recordUnary('gather', [x], y, (g) => [fromHandle(N.gatherBackward(g.handle, x.shape, d, idx.handle))])
}

/**
 * Elementwise ops with broadcasting. Each records its native backward kernel (`unaryBackward`,
 * `binaryBackward`, `whereBackward` in native/cpu/elementwise.cc).
 */
import { bindingFor, NativeTensor } from '../binding'
import { argumentError, InnflowError } from '../errors'
import { checkTensor, fromHandle, recordUnary, Tensor, TensorLike } from '../tensor'
import { record, isGradEnabled } from '../autograd/tape'

interface ElementwiseBinding {
  unaryOps: Record<string, number>
  binaryOps: Record<string, number>
  unary(op: number, x: NativeTensor, p0?: number, p1?: number): NativeTensor
  unaryBackward(op: number, g: NativeTensor, x: NativeTensor, y: NativeTensor, p0?: number, p1?: number): NativeTensor
  binary(op: number, a: NativeTensor, b: NativeTensor | number): NativeTensor
  binaryBackward(op: number, g: NativeTensor, a: NativeTensor, b: NativeTensor | number, needA: boolean, needB: boolean): [NativeTensor | null, NativeTensor | null]
  where(cond: NativeTensor, a: NativeTensor, b: NativeTensor | number): NativeTensor
  whereBackward(g: NativeTensor, cond: NativeTensor, aShape: readonly number[], bShape: readonly number[], needA: boolean, needB: boolean): [NativeTensor | null, NativeTensor | null]
}
const N = bindingFor<ElementwiseBinding>()

function unary(name: string, x: Tensor, p0 = 0, p1 = 0): Tensor {
  checkTensor(name, 'x', x)
  const op = N.unaryOps[name]
  const y = fromHandle(N.unary(op, x.handle, p0, p1))
  return recordUnary(name, [x], y, (g) => [fromHandle(N.unaryBackward(op, g.handle, x.handle, y.handle, p0, p1))])
}

function operand(fn: string, v: unknown, name: string): Tensor | number {
  if (typeof v === 'number') return v
  return checkTensor(fn, name, v)
}

function binary(name: string, a: TensorLike, b: TensorLike, differentiable = true): Tensor {
  let ta = operand(name, a, 'a')
  const tb = operand(name, b, 'b')
  if (typeof ta === 'number') {
    if (typeof tb === 'number') throw new InnflowError('ERR_ARGUMENT', `${name}: at least one operand must be a tensor`)
    ta = fromHandle(bindingFor<object>().full([], ta, tb.dtype, tb.device))
  }
  if (typeof tb !== 'number' && tb.dtype !== ta.dtype)
    throw new InnflowError('ERR_DTYPE', `${name}: dtypes differ (${ta.dtype} and ${tb.dtype}); convert one with .to({ dtype })`)
  const op = N.binaryOps[name]
  const left = ta
  const y = fromHandle(N.binary(op, left.handle, typeof tb === 'number' ? tb : tb.handle))
  if (!differentiable || !isGradEnabled()) return y
  const inputs = typeof tb === 'number' ? [left] : [left, tb]
  record(name, inputs, [y], (gs) => {
    const g = gs[0] as Tensor
    const needB = typeof tb !== 'number' && tb.requiresGrad
    const [ga, gb] = N.binaryBackward(op, g.handle, left.handle, typeof tb === 'number' ? tb : tb.handle, left.requiresGrad, needB)
    return [ga && fromHandle(ga), gb && fromHandle(gb)]
  })
  return y
}

/** a + b (broadcasting). */
export const add = (a: TensorLike, b: TensorLike): Tensor => binary('add', a, b)
/** a − b (broadcasting). */
export const sub = (a: TensorLike, b: TensorLike): Tensor => binary('sub', a, b)
/** a · b (broadcasting). */
export const mul = (a: TensorLike, b: TensorLike): Tensor => binary('mul', a, b)
/** a / b (broadcasting). */
export const div = (a: TensorLike, b: TensorLike): Tensor => binary('div', a, b)
/** a ** b; with a number exponent this is the cheaper unary power. */
export function pow(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number' && typeof a !== 'number') return unary('powScalar', checkTensor('pow', 'a', a), b)
  return binary('pow', a, b)
}
/** Elementwise maximum (ties split the gradient equally). */
export const maximum = (a: TensorLike, b: TensorLike): Tensor => binary('maximum', a, b)
/** Elementwise minimum (ties split the gradient equally). */
export const minimum = (a: TensorLike, b: TensorLike): Tensor => binary('minimum', a, b)
/** atan2(a, b). */
export const atan2 = (a: TensorLike, b: TensorLike): Tensor => binary('atan2', a, b)
/** 1 where a > b, else 0 (not differentiable). */
export const gt = (a: TensorLike, b: TensorLike): Tensor => binary('gt', a, b, false)
export const lt = (a: TensorLike, b: TensorLike): Tensor => binary('lt', a, b, false)
export const ge = (a: TensorLike, b: TensorLike): Tensor => binary('ge', a, b, false)
export const le = (a: TensorLike, b: TensorLike): Tensor => binary('le', a, b, false)
export const eq = (a: TensorLike, b: TensorLike): Tensor => binary('eq', a, b, false)
export const ne = (a: TensorLike, b: TensorLike): Tensor => binary('ne', a, b, false)

export const neg = (x: Tensor): Tensor => unary('neg', x)
export const exp = (x: Tensor): Tensor => unary('exp', x)
export const log = (x: Tensor): Tensor => unary('log', x)
export const log1p = (x: Tensor): Tensor => unary('log1p', x)
export const expm1 = (x: Tensor): Tensor => unary('expm1', x)
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x)
export const square = (x: Tensor): Tensor => unary('square', x)
export const reciprocal = (x: Tensor): Tensor => unary('reciprocal', x)
export const abs = (x: Tensor): Tensor => unary('abs', x)
/** −1, 0 or 1 (gradient zero). */
export const sign = (x: Tensor): Tensor => unary('sign', x)
export const sin = (x: Tensor): Tensor => unary('sin', x)
export const cos = (x: Tensor): Tensor => unary('cos', x)
export const tanh = (x: Tensor): Tensor => unary('tanh', x)
export const atan = (x: Tensor): Tensor => unary('atan', x)
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x)
export const relu = (x: Tensor): Tensor => unary('relu', x)

/** log(1 + exp(beta·x)) / beta, linear above `threshold` (torch.nn.functional.softplus). */
export function softplus(x: Tensor, beta = 1, threshold = 20): Tensor {
  if (typeof beta !== 'number' || !(beta > 0)) throw argumentError('softplus', 'beta', 'a positive number', beta)
  if (typeof threshold !== 'number') throw argumentError('softplus', 'threshold', 'a number', threshold)
  return unary('softplus', x, beta, threshold)
}
/** x for x > 0, else negativeSlope·x. */
export function leakyRelu(x: Tensor, negativeSlope = 0.01): Tensor {
  if (typeof negativeSlope !== 'number') throw argumentError('leakyRelu', 'negativeSlope', 'a number', negativeSlope)
  return unary('leakyRelu', x, negativeSlope)
}
/** x for x > 0, else alpha·(exp(x) − 1). */
export function elu(x: Tensor, alpha = 1): Tensor {
  if (typeof alpha !== 'number') throw argumentError('elu', 'alpha', 'a number', alpha)
  return unary('elu', x, alpha)
}
/** Clamps into [min, max]; the gradient passes where min ≤ x ≤ max. */
export function clamp(x: Tensor, min: number, max: number): Tensor {
  if (typeof min !== 'number' || Number.isNaN(min)) throw argumentError('clamp', 'min', 'a number', min)
  if (typeof max !== 'number' || Number.isNaN(max)) throw argumentError('clamp', 'max', 'a number', max)
  if (min > max) throw new InnflowError('ERR_ARGUMENT', `clamp: min (${min}) is greater than max (${max})`)
  return unary('clamp', x, min, max)
}

/** a where cond ≠ 0, else b (broadcasting all three; cond is a 0/1 tensor such as `x.gt(0)`). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  checkTensor('where', 'cond', cond)
  let ta = operand('where', a, 'a')
  const tb = operand('where', b, 'b')
  if (typeof ta === 'number') ta = fromHandle(bindingFor<object>().full([], ta, cond.dtype, cond.device))
  if (ta.dtype !== cond.dtype || (typeof tb !== 'number' && tb.dtype !== cond.dtype))
    throw new InnflowError('ERR_DTYPE', 'where: cond, a and b must have the same dtype')
  const left = ta
  const y = fromHandle(N.where(cond.handle, left.handle, typeof tb === 'number' ? tb : tb.handle))
  const inputs = typeof tb === 'number' ? [left] : [left, tb]
  const bShape = typeof tb === 'number' ? [] : tb.shape
  if (isGradEnabled())
    record('where', inputs, [y], (gs) => {
      const g = gs[0] as Tensor
      const [ga, gb] = N.whereBackward(g.handle, cond.handle, left.shape, bShape, left.requiresGrad, typeof tb !== 'number' && tb.requiresGrad)
      return [ga && fromHandle(ga), gb && fromHandle(gb)]
    })
  return y
}

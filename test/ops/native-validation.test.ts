/**
 * Shape and dtype checks of native backward entry points that the TypeScript layer never violates itself but
 * that must not read out of bounds when called directly (found while writing the CUDA paths).
 */
import { bindingFor, NativeTensor } from '../../lib/binding'
import { expectCode } from '../helpers'

interface Raw {
  unaryOps: Record<string, number>
  unaryBackward(op: number, g: NativeTensor, x: NativeTensor, y: NativeTensor): NativeTensor
  whereBackward(g: NativeTensor, cond: NativeTensor, aShape: number[], bShape: number[], needA: boolean, needB: boolean): [NativeTensor | null, NativeTensor | null]
}
const N = bindingFor<Raw>()

test('whereBackward: a condition that does not broadcast to the gradient is ERR_SHAPE', () => {
  const g = N.fromArray([1, 2, 3, 4, 5, 6], [2, 3], 'float64')
  const cond = N.fromArray([1, 0, 1, 0], [4], 'float64')
  expectCode(() => N.whereBackward(g, cond, [2, 3], [2, 3], true, true), 'ERR_SHAPE')
  const big = N.fromArray(new Array(12).fill(1), [2, 2, 3], 'float64')
  expectCode(() => N.whereBackward(g, big, [2, 3], [2, 3], true, true), 'ERR_SHAPE')
  ;[g, cond, big].forEach((t) => t.dispose())
})

test('unaryBackward: y of another dtype than x is ERR_DTYPE', () => {
  const g = N.fromArray([1, 2, 3], [3], 'float32')
  const x = N.fromArray([1, 2, 3], [3], 'float32')
  const y = N.fromArray([1, 2, 3], [3], 'float64')
  expectCode(() => N.unaryBackward(N.unaryOps.tanh, g, x, y), 'ERR_DTYPE')
  ;[g, x, y].forEach((t) => t.dispose())
})

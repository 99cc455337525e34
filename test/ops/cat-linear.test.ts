/**
 * catLinear (native/cpu/matmul.cc: catLinear and catLinearBackward): linear over a concatenation without making it.
 * Against linear(cat(xs, 1), w, b) in float64 (to summation order: 1e-12 relative) and float32 (to rounding),
 * forward and every gradient; finite-difference gradients in float64; one part (equals linear), parts of width 1,
 * a part of width 0, an empty batch, wide parts (more than a GEMM tile), only some gradients wanted; errors.
 */
import { grad, ops, tensor, Tensor, tidy, zeros } from '../../lib'
import { bindingFor, NativeTensor } from '../../lib/binding'
import { expectClose, expectCode, gradCheck, input, randomValues } from '../helpers'

type DT = 'float32' | 'float64'

function make(shape: number[], seed: number, dtype: DT, requiresGrad = false): Tensor {
  return tensor(randomValues(shape.reduce((p, q) => p * q, 1), seed, -1, 1), shape, { dtype, requiresGrad })
}

// [batch, part widths, out, bias]
const CASES: [number, number[], number, boolean][] = [
  [5, [3, 4], 6, true],
  [5, [3, 4], 6, false],
  [7, [5], 3, true], // one part: linear itself
  [4, [1, 1, 1], 2, true], // parts of width 1
  [6, [1, 7, 1], 5, true],
  [3, [2, 0, 3], 4, true], // a part of width 0
  [9, [4, 5, 2, 6], 1, true], // one output
  [70, [130, 170], 90, true], // more than a GEMM tile in every direction
  [0, [3, 4], 6, true], // an empty batch
]

/** Forward and all gradients of Σ y·v, fused or through cat + linear. */
function run(fused: boolean, rows: number, widths: number[], out: number, withBias: boolean, dtype: DT): number[][] {
  return tidy(() => {
    const xs = widths.map((n, i) => make([rows, n], 10 + i, dtype, true))
    const total = widths.reduce((a, b) => a + b, 0)
    const w = make([out, total], 3, dtype, true)
    const b = withBias ? make([out], 4, dtype, true) : null
    const y = fused ? ops.catLinear(xs, w, b) : ops.linear(ops.cat(xs, 1), w, b)
    const v = make([rows, out], 5, dtype)
    const leaves = b ? [...xs, w, b] : [...xs, w]
    const gs = grad(y.mul(v).sum(), leaves)
    return [Array.from(y.toArray()), ...gs.map((g) => Array.from((g as Tensor).toArray()))]
  })
}

describe('catLinear equals linear over the concatenation', () => {
  for (const [dtype, tol] of [
    ['float64', 1e-12],
    ['float32', 1e-5],
  ] as [DT, number][])
    for (const [rows, widths, out, withBias] of CASES)
      test(`B ${rows}, parts ${JSON.stringify(widths)}, out ${out}, bias=${withBias} (${dtype})`, () => {
        const fused = run(true, rows, widths, out, withBias, dtype)
        const ref = run(false, rows, widths, out, withBias, dtype)
        expect(fused.length).toBe(ref.length)
        fused.forEach((f, k) => {
          expect(f.length).toBe(ref[k].length)
          if (f.length > 0) expectClose(f, ref[k], tol)
        })
      })

  test('one part is linear itself, bit for bit (float64 and float32)', () =>
    tidy(() => {
      for (const dtype of ['float64', 'float32'] as DT[]) {
        const x = make([11, 6], 1, dtype)
        const w = make([4, 6], 2, dtype)
        const b = make([4], 3, dtype)
        expect(Array.from(ops.catLinear([x], w, b).toArray())).toEqual(Array.from(ops.linear(x, w, b).toArray()))
        expect(Array.from(ops.catLinear([x], w).toArray())).toEqual(Array.from(ops.linear(x, w).toArray()))
      }
    }))

  test('an empty batch: a (0, out) result, zero weight and bias gradients', () =>
    tidy(() => {
      const x1 = zeros([0, 2], { dtype: 'float64', requiresGrad: true })
      const x2 = zeros([0, 3], { dtype: 'float64', requiresGrad: true })
      const w = make([4, 5], 1, 'float64', true)
      const b = make([4], 2, 'float64', true)
      const y = ops.catLinear([x1, x2], w, b)
      expect(y.shape).toEqual([0, 4])
      const [g1, g2, gw, gb] = grad(y.sum(), [x1, x2, w, b]) as Tensor[]
      expect(g1.shape).toEqual([0, 2])
      expect(g2.shape).toEqual([0, 3])
      expect(Array.from(gw.toArray())).toEqual(new Array(20).fill(0))
      expect(Array.from(gb.toArray())).toEqual([0, 0, 0, 0])
    }))

  test('only some gradients: the parts without requiresGrad get none', () =>
    tidy(() => {
      const x1 = make([5, 2], 1, 'float64')
      const x2 = make([5, 3], 2, 'float64', true)
      const w = make([4, 5], 3, 'float64')
      const b = make([4], 4, 'float64', true)
      const y = ops.catLinear([x1, x2], w, b)
      const [g2, gb] = grad(y.square().sum(), [x2, b]) as Tensor[]
      const x2r = make([5, 3], 2, 'float64', true)
      const br = make([4], 4, 'float64', true)
      const [r2, rb] = grad(ops.linear(ops.cat([x1, x2r], 1), w, br).square().sum(), [x2r, br]) as Tensor[]
      expectClose(g2, r2.toArray(), 1e-12)
      expectClose(gb, rb.toArray(), 1e-12)
      expect(y.requiresGrad).toBe(true)
    }))
})

describe('catLinear: finite-difference gradients (float64)', () => {
  test('two parts with bias', () => {
    gradCheck((x1, x2, w, b) => ops.catLinear([x1, x2], w, b), [input([4, 3], 1), input([4, 2], 2), input([3, 5], 3), input([3], 4)])
  })
  test('three parts of widths 1, 3, 1 without bias', () => {
    gradCheck((x1, x2, x3, w) => ops.catLinear([x1, x2, x3], w), [input([3, 1], 5), input([3, 3], 6), input([3, 1], 7), input([2, 5], 8)])
  })
  test('one part', () => {
    gradCheck((x, w, b) => ops.catLinear([x], w, b), [input([4, 3], 9), input([2, 3], 10), input([2], 11)])
  })
})

describe('catLinear: errors', () => {
  test('shapes, dtypes and arguments', () =>
    tidy(() => {
      const x1 = make([4, 2], 1, 'float64')
      const x2 = make([4, 3], 2, 'float64')
      const w = make([3, 5], 3, 'float64')
      expectCode(() => ops.catLinear([], w), 'ERR_ARGUMENT')
      expectCode(() => ops.catLinear(x1 as unknown as Tensor[], w), 'ERR_ARGUMENT')
      expectCode(() => ops.catLinear([x1, 3 as unknown as Tensor], w), 'ERR_ARGUMENT')
      expectCode(() => ops.catLinear([x1, x1], w), 'ERR_SHAPE') // 4 features, weight expects 5
      expectCode(() => ops.catLinear([x1, make([5, 3], 4, 'float64')], w), 'ERR_SHAPE') // batches differ
      expectCode(() => ops.catLinear([x1, make([4, 3, 1], 4, 'float64')], w), 'ERR_SHAPE') // not 2-D
      expectCode(() => ops.catLinear([x1, x2], make([15], 5, 'float64')), 'ERR_SHAPE')
      expectCode(() => ops.catLinear([x1, x2], w, make([4], 6, 'float64')), 'ERR_SHAPE')
      expectCode(() => ops.catLinear([x1, make([4, 3], 7, 'float32')], w), 'ERR_DTYPE')
      expectCode(() => ops.catLinear([x1, x2], w, make([3], 8, 'float32')), 'ERR_DTYPE')
    }))
})

interface Raw {
  catLinearBackward(g: NativeTensor, xs: NativeTensor[], w: NativeTensor, needXs: number[], needW: boolean, needBias: boolean): unknown
}
const Raw = bindingFor<Raw>()

test('catLinearBackward called directly: a gradient of the wrong shape, needXs of the wrong length', () => {
  const x1 = rawTensor(6, [3, 2])
  const x2 = rawTensor(3, [3, 1])
  const w = rawTensor(6, [2, 3])
  const g = rawTensor(6, [3, 2])
  const bad = rawTensor(9, [3, 3])
  expectCode(() => Raw.catLinearBackward(bad, [x1, x2], w, [1, 1], true, true), 'ERR_SHAPE')
  expectCode(() => Raw.catLinearBackward(g, [x1, x2], w, [1], true, true), 'ERR_ARGUMENT')
  expectCode(() => Raw.catLinearBackward(g, [], w, [], true, true), 'ERR_ARGUMENT')
  ;[x1, x2, w, g, bad].forEach((t) => t.dispose())
})

function rawTensor(n: number, shape: number[]): NativeTensor {
  return bindingFor<{ fromArray(v: number[], s: number[], d: string): NativeTensor }>().fromArray(randomValues(n, n), shape, 'float64')
}

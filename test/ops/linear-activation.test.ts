/**
 * linear with an activation (native/cpu/matmul.cc: linear's activation argument and linearActivationBackward):
 * against linear followed by the elementwise activation (bit for bit on the CPU, float64 and float32, forward and
 * every gradient), finite-difference gradients in float64, shapes (batched, 1-D, no bias, empty) and errors.
 */
import { getNumThreads, grad, ops, setNumThreads, tensor, Tensor, tidy } from '../../lib'
import { core } from '../../lib/binding'
import type { LinearActivation } from '../../lib/ops/matmul'
import { expectCode, gradCheck, input, randomValues } from '../helpers'

type DT = 'float32' | 'float64'
const ACTS: Exclude<LinearActivation, 'none'>[] = ['relu', 'tanh']

function make(shape: number[], seed: number, dtype: DT, requiresGrad = false): Tensor {
  return tensor(randomValues(shape.reduce((p, q) => p * q, 1), seed, -1, 1), shape, { dtype, requiresGrad })
}

const composed = (act: LinearActivation, x: Tensor, w: Tensor, b: Tensor | null): Tensor => {
  const z = ops.linear(x, w, b)
  return act === 'relu' ? ops.relu(z) : act === 'tanh' ? ops.tanh(z) : z
}

// x shape, weight shape, bias: one row, a batch, batched leading dims, wide (more than a GEMM tile), 1-D x
const CASES: [number[], number[], boolean][] = [
  [[1, 3], [4, 3], true],
  [[9, 5], [7, 5], true],
  [[9, 5], [7, 5], false],
  [[2, 3, 17], [33, 17], true],
  [[70, 300], [130, 300], true],
  [[6], [4, 6], true],
]

describe('linear with an activation: equals linear then the activation, bit for bit on the CPU', () => {
  for (const dtype of ['float64', 'float32'] as DT[])
    for (const act of ACTS)
      for (const [xs, ws, withBias] of CASES)
        test(`${act} x ${JSON.stringify(xs)} w ${JSON.stringify(ws)} bias=${withBias} (${dtype})`, () =>
          tidy(() => {
            const run = (fused: boolean) => {
              const x = make(xs, 1, dtype, true)
              const w = make(ws, 2, dtype, true)
              const b = withBias ? make([ws[0]], 3, dtype, true) : null
              const y = fused ? ops.linear(x, w, b, { activation: act }) : composed(act, x, w, b)
              const wt = make([...y.shape], 4, dtype)
              const leaves = b ? [x, w, b] : [x, w]
              const gs = grad(y.mul(wt).sum(), leaves)
              return [y, ...gs].map((t) => Array.from((t as Tensor).toArray()))
            }
            const fused = run(true)
            const plain = run(false)
            expect(fused.length).toBe(plain.length)
            fused.forEach((v, k) => expect(v).toEqual(plain[k]))
          }))

  // Above 2 × 262144 values with two threads the bias gradient is summed in two parts of rows, in the same pass as the
  // activation's gradient: the parts must be the ones the plain bias gradient (columnSums) takes.
  for (const act of ACTS)
    test(`${act}: a layer large enough to sum the bias gradient in parts on two threads`, () => {
      const before = getNumThreads()
      setNumThreads(2)
      try {
        tidy(() => {
          const run = (fused: boolean) => {
            const x = make([4100, 3], 11, 'float32', true)
            const w = make([130, 3], 12, 'float32', true)
            const b = make([130], 13, 'float32', true)
            const y = fused ? ops.linear(x, w, b, { activation: act }) : composed(act, x, w, b)
            const gs = grad(y.mul(make([...y.shape], 14, 'float32')).sum(), [x, w, b]) as Tensor[]
            return gs.map((t) => Array.from(t.toArray()))
          }
          const fused = run(true)
          run(false).forEach((v, k) => expect(fused[k]).toEqual(v))
        })
      } finally {
        setNumThreads(before)
      }
    })

  test("activation 'none' and no options are plain linear", () =>
    tidy(() => {
      const x = make([4, 3], 5, 'float64')
      const w = make([2, 3], 6, 'float64')
      const b = make([2], 7, 'float64')
      const ref = Array.from(ops.linear(x, w, b).toArray())
      expect(Array.from(ops.linear(x, w, b, { activation: 'none' }).toArray())).toEqual(ref)
      expect(Array.from(ops.linear(x, w, b, {}).toArray())).toEqual(ref)
    }))

  test('relu: negative pre-activations give exact zeros and no gradient', () =>
    tidy(() => {
      const x = tensor([1, -1, 2, 0.5], [2, 2], { dtype: 'float64', requiresGrad: true })
      const w = tensor([1, 0, 0, 1], [2, 2], { dtype: 'float64', requiresGrad: true })
      const b = tensor([0, -3], [2], { dtype: 'float64', requiresGrad: true })
      const y = ops.linear(x, w, b, { activation: 'relu' })
      expect(Array.from(y.toArray())).toEqual([1, 0, 2, 0])
      const [gx, gw, gb] = grad(y.sum(), [x, w, b]) as Tensor[]
      expect(Array.from(gx.toArray())).toEqual([1, 0, 1, 0])
      expect(Array.from(gw.toArray())).toEqual([3, -0.5, 0, 0])
      expect(Array.from(gb.toArray())).toEqual([2, 0])
    }))

  test('only some inputs need gradients', () =>
    tidy(() => {
      for (const act of ACTS) {
        const x = make([5, 4], 8, 'float64')
        const w = make([3, 4], 9, 'float64', true)
        const b = make([3], 10, 'float64')
        const y = ops.linear(x, w, b, { activation: act })
        const [gw] = grad(y.sum(), [w]) as Tensor[]
        const ref = grad(composed(act, x, w, b).sum(), [w])[0] as Tensor
        expect(Array.from(gw.toArray())).toEqual(Array.from(ref.toArray()))
      }
    }))

  test('empty: no rows, no input features', () =>
    tidy(() => {
      const y0 = ops.linear(make([0, 3], 1, 'float64'), make([2, 3], 2, 'float64'), make([2], 3, 'float64'), { activation: 'relu' })
      expect(y0.shape).toEqual([0, 2])
      const b = tensor([0.5, -0.5], [2], { dtype: 'float64' })
      const y1 = ops.linear(tensor([], [3, 0], { dtype: 'float64' }), tensor([], [2, 0], { dtype: 'float64' }), b, { activation: 'relu' })
      expect(Array.from(y1.toArray())).toEqual([0.5, 0, 0.5, 0, 0.5, 0])
    }))
})

describe('linear with an activation: finite-difference gradients (float64)', () => {
  for (const act of ACTS) {
    test(`${act} with bias`, () => {
      // x away from the relu kink: values in [-1, 1) with a weight and bias in [-1, 1) rarely land within h of 0
      gradCheck((x, w, b) => ops.linear(x, w, b, { activation: act }), [input([4, 3], 11), input([5, 3], 12), input([5], 13)], 1e-6)
    })
    test(`${act} without bias, batched x`, () => {
      gradCheck((x, w) => ops.linear(x, w, null, { activation: act }), [input([2, 3, 4], 14), input([2, 4], 15)], 1e-6)
    })
  }
})

describe('linear with an activation: errors', () => {
  test('an unknown activation or a bad options value → ERR_ARGUMENT', () =>
    tidy(() => {
      const x = make([2, 3], 1, 'float64')
      const w = make([2, 3], 2, 'float64')
      expectCode(() => ops.linear(x, w, null, { activation: 'gelu' as LinearActivation }), 'ERR_ARGUMENT')
      expectCode(() => ops.linear(x, w, null, { activation: 1 as unknown as LinearActivation }), 'ERR_ARGUMENT')
      expectCode(() => ops.linear(x, w, null, 'relu' as unknown as { activation: LinearActivation }), 'ERR_ARGUMENT')
    }))

  test('the native layer checks the activation name too', () =>
    tidy(() => {
      const N = core as unknown as Record<string, (...a: unknown[]) => unknown>
      const x = make([2, 3], 1, 'float64')
      const w = make([2, 3], 2, 'float64')
      expectCode(() => N.linear(x.handle, w.handle, null, 'sigmoid'), 'ERR_ARGUMENT')
      const y = ops.linear(x, w, null, { activation: 'relu' })
      expectCode(() => N.linearActivationBackward(y.handle, y.handle, x.handle, w.handle, 'gelu', true, true, false), 'ERR_ARGUMENT')
      // the output and the gradient must have the output's shape
      expectCode(() => N.linearActivationBackward(y.handle, x.handle, x.handle, w.handle, 'relu', true, true, false), 'ERR_SHAPE')
    }))

  test('shape and dtype errors are those of linear', () =>
    tidy(() => {
      const x = make([2, 3], 1, 'float64')
      expectCode(() => ops.linear(x, make([2, 4], 2, 'float64'), null, { activation: 'relu' }), 'ERR_SHAPE')
      expectCode(() => ops.linear(x, make([2, 3], 2, 'float32'), null, { activation: 'relu' }), 'ERR_DTYPE')
    }))
})

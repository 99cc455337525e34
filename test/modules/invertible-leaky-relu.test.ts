import { tensor, Tensor, tidy } from '../../lib'
import { InvertibleLeakyReLU } from '../../lib/modules/invertible-leaky-relu'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

function perSample(values: number[], batch: number, f: (v: number) => number): number[] {
  const per = values.length / batch
  return Array.from({ length: batch }, (_, b) => values.slice(b * per, (b + 1) * per).reduce((a, v) => a + f(v), 0))
}

describe('InvertibleLeakyReLU', () => {
  test.each([
    [[3, 4], undefined],
    [[2, 3, 2, 2], 0.2],
    [[2, 5], 2.5],
  ])('shape %j, negativeSlope %p: forward, reverse and log-det = ln(slope)·#(x ≤ 0) against loops', (shape, slope) => {
    tidy(() => {
      const m = new InvertibleLeakyReLU([shape.slice(1)], slope === undefined ? {} : { negativeSlope: slope })
      const s = slope ?? 0.01
      expect(m.negativeSlope).toBe(s)
      const xv = randomValues(numel(shape), 7, -2, 2)
      xv[0] = 0 // the boundary: y = 0, slope counted
      const [[y], j] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      expectClose(y, xv.map((v) => (v > 0 ? v : s * v)), 1e-15)
      const ref = perSample(xv, shape[0], (v) => (v > 0 ? 0 : Math.log(s)))
      expect((j as Tensor).shape).toEqual([shape[0]])
      expectClose(j as Tensor, ref, 1e-14)
      const [[x], jr] = m.forward([y], [], true)
      expectClose(x, xv, 1e-14)
      expectClose(jr as Tensor, ref.map((v) => -v), 1e-14)
      const [[y32], j32] = m.forward([tensor(xv, shape, { dtype: 'float32' })])
      expectClose(y32, y.toArray(), 1e-6)
      expectClose(j32 as Tensor, (j as Tensor).toArray(), 1e-6)
    })
  })

  test.each([[0.01], [0.3], [3]])('checkInvertibleModule, negativeSlope %p', (s) => {
    checkInvertibleModule(() => new InvertibleLeakyReLU([[2, 3]], { negativeSlope: s }), { inputs: [[2, 2, 3]] })
    checkInvertibleModule(() => new InvertibleLeakyReLU([[5]], { negativeSlope: s }), { inputs: [[3, 5]], seed: 4 })
  })

  test('no state; bad options and inputs', () => {
    const m = new InvertibleLeakyReLU([[3]])
    expect(m.stateDict()).toEqual({})
    expect(m.outputDims([[3]])).toEqual([[3]])
    for (const bad of [0, -0.1, NaN, Infinity, '0.1']) expectCode(() => new InvertibleLeakyReLU([[3]], { negativeSlope: bad as never }), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleLeakyReLU([[3]], { negative_slope: 0.1 } as never), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleLeakyReLU([[3], [2]]), 'ERR_SHAPE')
    tidy(() => expectCode(() => m.forward([tensor([1, 2], [1, 2])]), 'ERR_SHAPE'))
  })
})

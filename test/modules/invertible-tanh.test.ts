import { tensor, Tensor, tidy } from '../../lib'
import { InvertibleTanh } from '../../lib/modules/invertible-tanh'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

/** ln(1 − tanh² x) directly (fine for moderate |x|). */
const logDtanh = (x: number) => Math.log(1 - Math.tanh(x) ** 2)

function perSample(values: number[], batch: number, f: (v: number) => number): number[] {
  const per = values.length / batch
  return Array.from({ length: batch }, (_, b) => values.slice(b * per, (b + 1) * per).reduce((a, v) => a + f(v), 0))
}

describe('InvertibleTanh', () => {
  test.each([[[3, 4]], [[2, 3, 2, 2]], [[2, 1, 5]]])('shape %j: y = tanh x, reverse atanh, log-det Σ ln(1 − tanh²x) over all non-batch axes', (shape) => {
    tidy(() => {
      const m = new InvertibleTanh([shape.slice(1)])
      const xv = randomValues(numel(shape), 31, -3, 3)
      const [[y], j] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      expectClose(y, xv.map(Math.tanh), 1e-15)
      expect((j as Tensor).shape).toEqual([shape[0]])
      expectClose(j as Tensor, perSample(xv, shape[0], logDtanh), 1e-12)
      const [[x], jr] = m.forward([y], [], true)
      expectClose(x, xv, 1e-13)
      expectClose(jr as Tensor, perSample(xv, shape[0], logDtanh).map((v) => -v), 1e-11)
      const [[y32], j32] = m.forward([tensor(xv, shape, { dtype: 'float32' })])
      expectClose(y32, y.toArray(), 1e-6)
      expectClose(j32 as Tensor, (j as Tensor).toArray(), 1e-5)
      const [[x32]] = m.forward([y32], [], true)
      expectClose(x32, xv, 1e-5)
    })
  })

  test('large |x|: the log-det stays finite in float32 (1 − tanh² underflows there)', () => {
    tidy(() => {
      const m = new InvertibleTanh([[3]])
      const xv = [30, -45, 0.5]
      // ln(1 − tanh² x) = 2 ln 2 − 2|x| − 2 ln(1 + e^(−2|x|))
      const ref = xv.reduce((a, x) => a + 2 * (Math.log(2) - Math.abs(x) - Math.log1p(Math.exp(-2 * Math.abs(x)))), 0)
      for (const dtype of ['float32', 'float64'] as const) {
        const [[y], j] = m.forward([tensor(xv, [1, 3], { dtype })])
        expectClose(y, xv.map(Math.tanh), 1e-7)
        expect(Number.isFinite((j as Tensor).item())).toBe(true)
        expectClose(j as Tensor, [ref], dtype === 'float32' ? 1e-6 : 1e-14)
      }
    })
  })

  test('reverse outside (−1, 1) gives NaN, ±1 gives ±Infinity', () => {
    tidy(() => {
      const m = new InvertibleTanh([[4]])
      const [[x]] = m.forward([tensor([1.5, -2, 1, -1], [1, 4], { dtype: 'float64' })], [], true)
      const v = Array.from(x.toArray())
      expect(Number.isNaN(v[0]) && Number.isNaN(v[1])).toBe(true)
      expect(v.slice(2)).toEqual([Infinity, -Infinity])
    })
  })

  test.each([[[3, 4]], [[2, 3, 2, 2]]])('checkInvertibleModule %j', (shape) => {
    checkInvertibleModule(() => new InvertibleTanh([shape.slice(1)]), { inputs: [shape], range: [-2, 2] })
  })

  test('no state; bad dims, options and inputs', () => {
    const m = new InvertibleTanh([[3]])
    expect(m.stateDict()).toEqual({})
    expect(m.outputDims([[3]])).toEqual([[3]])
    expectCode(() => new InvertibleTanh([[3], [3]]), 'ERR_SHAPE')
    expectCode(() => new InvertibleTanh([[3]], { clamp: 2 } as never), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleTanh(3 as never), 'ERR_ARGUMENT')
    tidy(() => expectCode(() => m.forward([tensor([1, 2], [1, 2])]), 'ERR_SHAPE'))
  })
})

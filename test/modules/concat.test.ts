import { modules, tensor, tidy } from '../../lib'
import { Concat1d, ConcatChannel } from '../../lib/modules/concat'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { Concat } = modules

/** Plain-loop concatenation along `axis` (batch included). */
function catRef(xs: number[][], shapes: number[][], axis: number): number[] {
  const outer = numel(shapes[0].slice(0, axis))
  const inner = numel(shapes[0].slice(axis + 1))
  const out: number[] = []
  for (let o = 0; o < outer; o++)
    xs.forEach((x, p) => {
      const n = shapes[p][axis] * inner
      for (let i = 0; i < n; i++) out.push(x[o * n + i])
    })
  return out
}

describe('Concat', () => {
  test.each([
    [[[2, 3], [2, 2]], {}, 1],
    [[[3, 1, 2, 2], [3, 3, 2, 2], [3, 2, 2, 2]], {}, 1],
    [[[2, 3, 1, 2], [2, 3, 2, 2]], { dim: 1 }, 2],
    [[[2, 2, 3], [2, 2, 1]], { dim: -1 }, 2],
  ])('shapes %j %j: output equals the plain-loop concatenation, reverse splits it, log-det 0', (shapes, opts, axis) => {
    tidy(() => {
      const m = new Concat(shapes.map((s) => s.slice(1)), opts)
      const values = shapes.map((s, i) => randomValues(numel(s), 30 + i))
      const [[y], j] = m.forward(values.map((v, i) => tensor(v, shapes[i], { dtype: 'float64' })))
      expect(j).toBe(0)
      const outShape = shapes[0].map((d, k) => (k === axis ? shapes.reduce((a, s) => a + s[axis], 0) : d))
      expect(y.shape).toEqual(outShape)
      expect(m.outputDims(shapes.map((s) => s.slice(1)))).toEqual([outShape.slice(1)])
      expect(m.sectionSizes).toEqual(shapes.map((s) => s[axis]))
      expectClose(y, catRef(values, shapes, axis), 0)
      const [xs, jr] = m.forward([y], [], true)
      expect(jr).toBe(0)
      xs.forEach((x, i) => expectClose(x, values[i], 0))
      const [[y32]] = m.forward(values.map((v, i) => tensor(v, shapes[i], { dtype: 'float32' })))
      expectClose(y32, y.toArray(), 1e-7)
    })
  })

  test.each([
    [[[2, 3], [2, 2]], {}],
    [[[3, 1, 2, 2], [3, 2, 2, 2]], {}],
    [[[2, 2, 1, 3], [2, 2, 2, 3]], { dim: 1 }],
  ])('checkInvertibleModule %j %j', (shapes, opts) => {
    checkInvertibleModule(() => new Concat(shapes.map((s) => s.slice(1)), opts), { inputs: shapes })
  })

  test('FrEIA\'s deprecated aliases are Concats', () => {
    expect(new ConcatChannel([[2], [3]]).outputDims([[2], [3]])).toEqual([[5]])
    expect(new Concat1d([[2], [3]])).toBeInstanceOf(Concat)
  })

  test('bad dims, options and inputs', () => {
    expectCode(() => new Concat([[3]]), 'ERR_SHAPE')
    expectCode(() => new Concat([[3, 2], [3]]), 'ERR_SHAPE')
    expectCode(() => new Concat([[3, 2], [3, 3]]), 'ERR_SHAPE')
    expectCode(() => new Concat([[3, 2], [3, 3]], { dim: 2 }), 'ERR_ARGUMENT')
    expectCode(() => new Concat([[3], [2]], { dim: 0.5 }), 'ERR_ARGUMENT')
    expectCode(() => new Concat([[3], [2]], { sectionSizes: [3, 2] } as never), 'ERR_ARGUMENT')
    const m = new Concat([[3], [2]])
    expectCode(() => m.outputDims([[3]]), 'ERR_SHAPE')
    tidy(() => {
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3])]), 'ERR_ARGUMENT')
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3]), tensor(randomValues(6, 1), [2, 3])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4])], [], true), 'ERR_SHAPE')
    })
  })
})

import { modules, SequenceINN, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { Fixed1x1Conv, FixedLinearTransform } = modules

const M3 = [
  [2.0, 0.3, 0.1],
  [0.0, 1.5, -0.4],
  [0.2, 0.0, 0.8],
]

/** det of a 3×3 matrix by the rule of Sarrus. */
const det3 = (m: number[][]): number =>
  m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])

/** FrEIA's convention, by loops: y[o] = Σ_i M[i][o]·x[i] at every pixel (Mᵀ applied). */
function convRef(x: number[], [b, c, h, w]: number[], m: number[][]): number[] {
  const p = h * w
  const out = new Array<number>(x.length).fill(0)
  for (let n = 0; n < b; n++) for (let o = 0; o < c; o++) for (let q = 0; q < p; q++) for (let i = 0; i < c; i++) out[(n * c + o) * p + q] += m[i][o] * x[(n * c + i) * p + q]
  return out
}

function make64<T>(fn: () => T): T {
  setDefaultDtype('float64')
  try {
    return fn()
  } finally {
    setDefaultDtype('float32')
  }
}

describe('Fixed1x1Conv', () => {
  test.each([
    [[2, 3, 2, 3], M3],
    [[3, 2, 1, 4], [[1.5, -0.7], [0.4, 0.9]]],
  ])('shape %j: each pixel maps to Mᵀ·x (FrEIA\'s transposed kernel), reverse inverts, log-det = ln|det M|·H·W', (shape, m) => {
    tidy(() => {
      const [b, c, h, w] = shape
      const mod = make64(() => new Fixed1x1Conv([[c, h, w]], { M: m }))
      const xv = randomValues(numel(shape), 70)
      const [[y], j] = mod.forward([tensor(xv, shape, { dtype: 'float64' })])
      expect(y.shape).toEqual(shape)
      expectClose(y, convRef(xv, shape, m), 1e-14)
      const ld = c === 3 ? Math.log(Math.abs(det3(m))) : Math.log(Math.abs(m[0][0] * m[1][1] - m[0][1] * m[1][0]))
      expect((j as Tensor).shape).toEqual([b])
      expectClose(j as Tensor, new Array(b).fill(ld * h * w), 1e-13)
      const [[x], jr] = mod.forward([y], [], true)
      expectClose(x, xv, 1e-13)
      expectClose(jr as Tensor, new Array(b).fill(-ld * h * w), 1e-13)
      const m32 = new Fixed1x1Conv([[c, h, w]], { M: m })
      expectClose(m32.forward([tensor(xv, shape)])[0][0], y.toArray(), 1e-5)
    })
  })

  test('the transpose relative to FixedLinearTransform (same M) is FrEIA\'s', () => {
    tidy(() => {
      const conv = make64(() => new Fixed1x1Conv([[3, 1, 1]], { M: M3 }))
      const lin = make64(() => new FixedLinearTransform([[3]], { M: M3.map((r, i) => r.map((_, j) => M3[j][i])) }))
      const xv = randomValues(6, 71)
      expectClose(conv.forward([tensor(xv, [2, 3, 1, 1], { dtype: 'float64' })])[0][0], lin.forward([tensor(xv, [2, 3], { dtype: 'float64' })])[0][0].toArray(), 1e-15)
    })
  })

  test('buffers: FrEIA\'s names and shapes, no parameters', () => {
    tidy(() => {
      const mod = make64(() => new Fixed1x1Conv([[3, 2, 2]], { M: tensor(M3.flat(), [3, 3]) }))
      const sd = mod.stateDict()
      expect(Object.keys(sd)).toEqual(['M', 'M_inv', 'logDetM'])
      expect(sd.M.shape).toEqual([3, 3, 1, 1])
      expect(sd.M_inv.shape).toEqual([3, 3, 1, 1])
      expect(sd.logDetM.shape).toEqual([])
      expect(sd.M.dtype).toBe('float64')
      expectClose(sd.M, [0, 1, 2].flatMap((i) => [0, 1, 2].map((j) => M3[j][i])), 1e-7)
      expect(mod.parameters()).toEqual([])
      const inn = new SequenceINN(3, 2, 2)
      inn.append(Fixed1x1Conv, { M: M3 })
      expect(Object.keys(inn.stateDict())).toEqual(['module_list.0.M', 'module_list.0.M_inv', 'module_list.0.logDetM'])
    })
  })

  test.each([
    [[2, 3, 2, 2], M3],
    [[3, 2, 3, 1], [[1.5, -0.7], [0.4, 0.9]]],
  ])('checkInvertibleModule %j', (shape, m) => {
    checkInvertibleModule(() => new Fixed1x1Conv([shape.slice(1)], { M: m }), { inputs: [shape] })
  })

  test('bad options, dims and inputs', () => {
    expectCode(() => new Fixed1x1Conv([[3, 2, 2]]), 'ERR_ARGUMENT')
    expectCode(() => new Fixed1x1Conv([[3]], { M: M3 }), 'ERR_SHAPE')
    expectCode(() => new Fixed1x1Conv([[3, 2]], { M: M3 }), 'ERR_SHAPE')
    expectCode(() => new Fixed1x1Conv([[3, 2, 2], [3, 2, 2]], { M: M3 }), 'ERR_SHAPE')
    expectCode(() => new Fixed1x1Conv([[2, 2, 2]], { M: M3 }), 'ERR_ARGUMENT')
    expectCode(() => new Fixed1x1Conv([[2, 2, 2]], { M: tensor(M3.flat(), [3, 3]) }), 'ERR_SHAPE')
    expectCode(() => new Fixed1x1Conv([[2, 2, 2]], { M: [[1, 1], [1, 1]] }), 'ERR_ARGUMENT')
    expectCode(() => new Fixed1x1Conv([[3, 2, 2]], { M: M3, b: [1, 2, 3] } as never), 'ERR_ARGUMENT')
    const mod = new Fixed1x1Conv([[3, 2, 2]], { M: M3 })
    expectCode(() => mod.outputDims([[3, 4]]), 'ERR_SHAPE')
    tidy(() => {
      expectCode(() => mod.forward([tensor(randomValues(12, 1), [1, 3, 4, 1])]), 'ERR_SHAPE')
    })
  })
})

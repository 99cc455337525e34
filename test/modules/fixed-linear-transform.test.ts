import { modules, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { FixedLinearTransform } = modules

const M3 = [
  [2.0, 0.3, 0.1],
  [0.0, 1.5, -0.4],
  [0.2, 0.0, 0.8],
]

/** log|det| by Gaussian elimination with partial pivoting (independent of the library). */
function logAbsDet(m: number[][]): number {
  const a = m.map((r) => r.slice())
  const n = a.length
  let acc = 0
  for (let k = 0; k < n; k++) {
    let p = k
    for (let i = k + 1; i < n; i++) if (Math.abs(a[i][k]) > Math.abs(a[p][k])) p = i
    ;[a[k], a[p]] = [a[p], a[k]]
    acc += Math.log(Math.abs(a[k][k]))
    for (let i = k + 1; i < n; i++) {
      const f = a[i][k] / a[k][k]
      for (let j = k; j < n; j++) a[i][j] -= f * a[k][j]
    }
  }
  return acc
}

/** y = M·x + b per sample, by loops. */
function affineRef(x: number[], batch: number, m: number[][], b: number[] | null): number[] {
  const d = m.length
  const out: number[] = []
  for (let n = 0; n < batch; n++)
    for (let i = 0; i < d; i++) {
      let acc = b ? b[i] : 0
      for (let j = 0; j < d; j++) acc += m[i][j] * x[n * d + j]
      out.push(acc)
    }
  return out
}

function randomMatrix(d: number, seed: number): number[][] {
  const v = randomValues(d * d, seed)
  return Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => v[i * d + j] + (i === j ? 2 : 0)))
}

function make64<T>(fn: () => T): T {
  setDefaultDtype('float64')
  try {
    return fn()
  } finally {
    setDefaultDtype('float32')
  }
}

describe('FixedLinearTransform', () => {
  test.each([
    [M3, [0.1, -0.2, 0.3]],
    [randomMatrix(5, 3), null],
    [randomMatrix(4, 4), randomValues(4, 5)],
  ])('forward y = M·x + b, reverse, log-det = ln|det M| (case %#)', (m, b) => {
    tidy(() => {
      const d = m.length
      const batch = 3
      const mod = make64(() => new FixedLinearTransform([[d]], b ? { M: m, b } : { M: m }))
      const xv = randomValues(batch * d, 61)
      const [[y], j] = mod.forward([tensor(xv, [batch, d], { dtype: 'float64' })])
      const yRef = affineRef(xv, batch, m, b)
      expectClose(y, yRef, 1e-14)
      expect((j as Tensor).shape).toEqual([batch])
      expectClose(j as Tensor, new Array(batch).fill(logAbsDet(m)), 1e-13)
      const [[x], jr] = mod.forward([y], [], true)
      expectClose(x, xv, 1e-13)
      expectClose(jr as Tensor, new Array(batch).fill(-logAbsDet(m)), 1e-13)
      // a float32 module agrees
      const m32 = new FixedLinearTransform([[d]], b ? { M: m, b } : { M: m })
      expect(m32.M.dtype).toBe('float32')
      expectClose(m32.forward([tensor(xv, [batch, d])])[0][0], yRef, 1e-5)
    })
  })

  test('buffers: FrEIA\'s names, order, shapes and values (M stores Mᵀ, M_inv stores (Mᵀ)⁻¹, b is (1, d))', () => {
    tidy(() => {
      const mod = make64(() => new FixedLinearTransform([[3]], { M: M3, b: [0.1, -0.2, 0.3] }))
      const sd = mod.stateDict()
      expect(Object.keys(sd)).toEqual(['M', 'M_inv', 'b', 'logDetM'])
      expect(sd.M.shape).toEqual([3, 3])
      expectClose(sd.M, [0, 1, 2].flatMap((i) => [0, 1, 2].map((j) => M3[j][i])), 0)
      // M_inv · M = I
      const prod = sd.M_inv.matmul(sd.M).toArray()
      expectClose(prod, [1, 0, 0, 0, 1, 0, 0, 0, 1], 1e-14)
      expect(sd.b.shape).toEqual([1, 3])
      expect(sd.logDetM.shape).toEqual([])
      expect(sd.logDetM.item()).toBeCloseTo(logAbsDet(M3), 14)
      expect(mod.parameters()).toEqual([])
      // without b there is no b buffer (FrEIA uses the number 0)
      expect(Object.keys(new FixedLinearTransform([[3]], { M: M3 }).stateDict())).toEqual(['M', 'M_inv', 'logDetM'])
    })
  })

  test('M and b as tensors (any dtype, b of shape (d) or (1, d)); the caller\'s tensors are not shared', () => {
    tidy(() => {
      const Mt = tensor(M3.flat(), [3, 3], { dtype: 'float32' })
      const bt = tensor([0.1, -0.2, 0.3], [1, 3], { dtype: 'float64' })
      const mod = make64(() => new FixedLinearTransform([[3]], { M: Mt, b: bt }))
      expect(mod.M.dtype).toBe('float64')
      expect(mod.b?.dtype).toBe('float64')
      const xv = randomValues(6, 2)
      expectClose(mod.forward([tensor(xv, [2, 3], { dtype: 'float64' })])[0][0], affineRef(xv, 2, M3, [0.1, -0.2, 0.3]), 1e-7)
      mod.loadStateDict({ ...mod.stateDict(), b: tensor([9, 9, 9], [1, 3], { dtype: 'float64' }) })
      expectClose(bt, [0.1, -0.2, 0.3], 0)
      const mod2 = new FixedLinearTransform([[3]], { M: Mt, b: tensor([1, 2, 3], [3]) })
      expect(mod2.b?.shape).toEqual([1, 3])
    })
  })

  test.each([
    [3, true],
    [5, false],
  ])('checkInvertibleModule d=%d with b=%s', (d, withB) => {
    const m = randomMatrix(d, 7 + d)
    checkInvertibleModule(() => new FixedLinearTransform([[d]], withB ? { M: m, b: randomValues(d, 9) } : { M: m }), { inputs: [[3, d]] })
  })

  test('bad options, dims and inputs', () => {
    expectCode(() => new FixedLinearTransform([[3]]), 'ERR_ARGUMENT')
    expectCode(() => new FixedLinearTransform([[3]], { M: [[1, 0], [0, 1]] }), 'ERR_ARGUMENT')
    expectCode(() => new FixedLinearTransform([[3]], { M: [[1, 0, 0], [0, 1, 0], [0, 0, NaN]] }), 'ERR_ARGUMENT')
    expectCode(() => new FixedLinearTransform([[2]], { M: [[1, 2], [2, 4]] }), 'ERR_ARGUMENT')
    expectCode(() => new FixedLinearTransform([[2]], { M: tensor([1, 0, 0, 1, 0, 0], [2, 3]) }), 'ERR_SHAPE')
    expectCode(() => new FixedLinearTransform([[2]], { M: [[1, 0], [0, 1]], b: [1, 2, 3] }), 'ERR_ARGUMENT')
    expectCode(() => new FixedLinearTransform([[2]], { M: [[1, 0], [0, 1]], b: tensor([1, 2, 3], [3]) }), 'ERR_SHAPE')
    expectCode(() => new FixedLinearTransform([[2]], { M: [[1, 0], [0, 1]], bias: [1, 2] } as never), 'ERR_ARGUMENT')
    expectCode(() => new FixedLinearTransform([[2, 2]], { M: [[1, 0], [0, 1]] }), 'ERR_SHAPE')
    expectCode(() => new FixedLinearTransform([[2], [2]], { M: [[1, 0], [0, 1]] }), 'ERR_SHAPE')
    const disposed = tensor([1, 0, 0, 1], [2, 2])
    disposed.dispose()
    expectCode(() => new FixedLinearTransform([[2]], { M: disposed }), 'ERR_DISPOSED')
    const m = new FixedLinearTransform([[2]], { M: [[1, 0], [0, 1]] })
    tidy(() => {
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(4, 1), [2, 2], { dtype: 'float64' })]), 'ERR_DTYPE')
    })
  })
})



import { getDefaultDtype, manualSeed, modules, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, gradCheck, input, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { InvAutoFC } = modules
type FC = InstanceType<typeof InvAutoFC>

/** A random n×n orthogonal matrix (row-major), by Gram–Schmidt in plain JavaScript. */
function orthogonalMatrix(n: number, seed: number): number[] {
  const a = randomValues(n * n, seed)
  const rows: number[][] = []
  for (let i = 0; i < n; i++) {
    const r = a.slice(i * n, (i + 1) * n)
    for (const q of rows) {
      const d = q.reduce((s, v, k) => s + v * r[k], 0)
      for (let k = 0; k < n; k++) r[k] -= d * q[k]
    }
    const norm = Math.sqrt(r.reduce((s, v) => s + v * v, 0))
    rows.push(r.map((v) => v / norm))
  }
  return rows.flat()
}

function setParams(m: FC, W: number[], b: number[]): void {
  m.loadStateDict({ weights: tensor(W, [...m.weights.shape], { dtype: 'float64' }), bias: tensor(b, [...m.bias.shape], { dtype: 'float64' }) })
}

/** float64 references: y = x·Wᵀ + b, and the transposed-weight "inverse" x = (y − b)·W. */
function forwardRef(x: number[], B: number, D: number, W: number[], b: number[], out: number): number[] {
  const y: number[] = []
  for (let n = 0; n < B; n++)
    for (let o = 0; o < out; o++) {
      let s = b[o]
      for (let i = 0; i < D; i++) s += x[n * D + i] * W[o * D + i]
      y.push(s)
    }
  return y
}
function reverseRef(y: number[], B: number, D: number, W: number[], b: number[], out: number): number[] {
  const x: number[] = []
  for (let n = 0; n < B; n++)
    for (let i = 0; i < D; i++) {
      let s = 0
      for (let o = 0; o < out; o++) s += (y[n * out + o] - b[o]) * W[o * D + i]
      x.push(s)
    }
  return x
}

describe('InvAutoFC', () => {
  const previous = getDefaultDtype()
  let warn: jest.SpyInstance
  beforeAll(() => {
    setDefaultDtype('float64')
    warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
  })
  afterAll(() => {
    setDefaultDtype(previous)
    warn.mockRestore()
  })

  test('parameters weights (dimsOut, D) ~ √(1/dimsOut)·N(0, 1) and bias (1, dimsOut) ~ N(0, 1); outputDims', () => {
    tidy(() => {
      manualSeed(4)
      const m = new InvAutoFC([[40]], { dimsOut: 50 })
      expect(Object.keys(m.stateDict())).toEqual(['weights', 'bias'])
      expect(m.weights.shape).toEqual([50, 40])
      expect(m.bias.shape).toEqual([1, 50])
      const std = (t: Tensor) => Math.sqrt(Array.from(t.toArray()).reduce((s, v) => s + v * v, 0) / t.size)
      expect(Math.abs(std(m.weights) / Math.sqrt(1 / 50) - 1)).toBeLessThan(0.05)
      expect(Math.abs(std(m.bias) - 1)).toBeLessThan(0.3)
      expect(m.outputDims([[40]])).toEqual([[50]])
      const square = new InvAutoFC([[6]])
      expect(square.dimsOut).toBe(6)
      expect(square.weights.shape).toEqual([6, 6])
    })
  })

  test.each([
    ['wider', 3, 5],
    ['narrower', 5, 3],
    ['square, not orthogonal', 4, 4],
  ])('%s: forward and reverse match the float64 references, log-det 0; float32 agrees', (_name, D, out) => {
    tidy(() => {
      const B = 3
      const m = new InvAutoFC([[D]], { dimsOut: out })
      const W = randomValues(out * D, 1)
      const b = randomValues(out, 2)
      setParams(m, W, b)
      const xv = randomValues(B * D, 3)
      const [[y], ld] = m.forward([tensor(xv, [B, D], { dtype: 'float64' })])
      expect(ld).toBe(0)
      expectClose(y, forwardRef(xv, B, D, W, b, out), 1e-14)
      const yv = randomValues(B * out, 4)
      const [[x], ldr] = m.forward([tensor(yv, [B, out], { dtype: 'float64' })], [], true)
      expect(ldr).toBe(0)
      expect(x.shape).toEqual([B, D])
      expectClose(x, reverseRef(yv, B, D, W, b, out), 1e-14)
      expect(m.forward([tensor(xv, [B, D], { dtype: 'float64' })], [], false, false)[1]).toBe(0)
      const m32 = new InvAutoFC([[D]], { dimsOut: out }).to({ dtype: 'float32' })
      m32.loadStateDict(m.stateDict())
      expectClose(m32.forward([tensor(xv, [B, D], { dtype: 'float32' })])[0][0], y.toArray(), 1e-5)
      gradCheck((t) => m.forward([t])[0][0], [input([B, D], 5)])
      gradCheck((t) => m.forward([t], [], true)[0][0], [input([B, out], 6)])
    })
  })

  test('with an orthogonal W the layer is exactly invertible and its log-det 0 is exact (all checks)', () => {
    checkInvertibleModule(() => {
      const m = new InvAutoFC([[5]])
      setParams(m, orthogonalMatrix(5, 7), randomValues(5, 8))
      return m
    }, { inputs: [[3, 5]] })
  })

  test('a non-orthogonal W is only approximately inverted (as in FrEIA): the round trip is x·WᵀW', () => {
    tidy(() => {
      const m = new InvAutoFC([[3]])
      const W = [1.1, 0.2, 0, -0.1, 0.9, 0.3, 0, 0.1, 1.2]
      setParams(m, W, [0.5, -0.5, 0.1])
      const x = tensor([0.3, -0.7, 0.2], [1, 3], { dtype: 'float64' })
      const [[y]] = m.forward([x])
      const [[xr]] = m.forward([y], [], true)
      const WtW = (i: number, j: number) => [0, 1, 2].reduce((s, o) => s + W[o * 3 + i] * W[o * 3 + j], 0)
      const xa = [0.3, -0.7, 0.2]
      expectClose(xr, [0, 1, 2].map((j) => [0, 1, 2].reduce((s, i) => s + xa[i] * WtW(i, j), 0)), 1e-14)
    })
  })

  test('warns once that the log-det is not tractable, only when it is asked for', () => {
    expect(warn.mock.calls.filter((c) => String(c[0]).startsWith('InvAutoFC')).length).toBe(1)
  })

  test('bad options and inputs', () => {
    expectCode(() => new InvAutoFC([[3, 4, 4]]), 'ERR_SHAPE')
    expectCode(() => new InvAutoFC([[3]], { dimsOut: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoFC([[3]], { dimsOut: 2.5 }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoFC([[3], [3]]), 'ERR_ARGUMENT')
    tidy(() => {
      const m = new InvAutoFC([[3]], { dimsOut: 4 })
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4], { dtype: 'float64' })]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3], { dtype: 'float64' })], [], true), 'ERR_SHAPE')
      expectCode(() => m.outputDims([[3, 2]]), 'ERR_SHAPE')
    })
  })
})

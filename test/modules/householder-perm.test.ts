import { getDefaultDtype, manualSeed, modules, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, gradCheck, input, randomValues } from '../helpers'
import { checkInvertibleModule, numericalLogDets } from './module-check'

const { HouseholderPerm } = modules
type HP = InstanceType<typeof HouseholderPerm>

/** H(v₁)·…·H(vₙ) with H(v) = I − 2vvᵀ/‖v‖², as explicit D×D products (vectors are the rows of V, n×D). */
function householderRef(V: number[], n: number, D: number): number[] {
  let P: number[] = Array.from({ length: D * D }, (_, k) => (Math.floor(k / D) === k % D ? 1 : 0))
  for (let r = 0; r < n; r++) {
    const v = V.slice(r * D, (r + 1) * D)
    const nn = v.reduce((s, a) => s + a * a, 0)
    const H = Array.from({ length: D * D }, (_, k) => (Math.floor(k / D) === k % D ? 1 : 0) - (2 * v[Math.floor(k / D)] * v[k % D]) / nn)
    const next = new Array<number>(D * D).fill(0)
    for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) for (let k = 0; k < D; k++) next[i * D + j] += P[i * D + k] * H[k * D + j]
    P = next
  }
  return P
}

/** y = x·W (or x·Wᵀ) per row. */
function applyRef(x: number[], W: number[], D: number, transpose: boolean): number[] {
  const B = x.length / D
  const y: number[] = []
  for (let b = 0; b < B; b++)
    for (let j = 0; j < D; j++) {
      let s = 0
      for (let i = 0; i < D; i++) s += x[b * D + i] * (transpose ? W[j * D + i] : W[i * D + j])
      y.push(s)
    }
  return y
}

function setVs(m: HP, values: number[]): void {
  m.loadStateDict({ Vs: tensor(values, [m.nReflections, m.width], { dtype: 'float64' }) }, { strict: false })
}

describe('HouseholderPerm', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test('parameter Vs (n, D) initialised near eye(D, n)ᵀ; the default of one reflection works (FrEIA refuses it)', () => {
    tidy(() => {
      manualSeed(3)
      const m = new HouseholderPerm([[30]], { nReflections: 20 })
      expect(Object.keys(m.stateDict())).toEqual(['Vs'])
      expect(m.Vs?.shape).toEqual([20, 30])
      const v = Array.from((m.Vs as Tensor).toArray())
      const dev = v.map((a, k) => a - (Math.floor(k / 30) === k % 30 ? 1 : 0))
      const rms = Math.sqrt(dev.reduce((s, a) => s + a * a, 0) / dev.length)
      expect(Math.abs(rms / 0.1 - 1)).toBeLessThan(0.1)
      const one = new HouseholderPerm([[4]])
      expect(one.nReflections).toBe(1)
      expect(one.Vs?.shape).toEqual([1, 4])
      expect(one.outputDims([[4]])).toEqual([[4]])
    })
  })

  test.each([
    ['n = 1', 1, 5],
    ['n = 3', 3, 5],
    ['n > D', 6, 4],
  ])('%s: forward x·W and reverse x·Wᵀ match the explicit product of reflections; log-det 0; float32 agrees', (_name, n, D) => {
    tidy(() => {
      const m = new HouseholderPerm([[D]], { nReflections: n })
      const V = randomValues(n * D, 7)
      setVs(m, V)
      const W = householderRef(V, n, D)
      const xv = randomValues(3 * D, 8)
      const x = tensor(xv, [3, D], { dtype: 'float64' })
      const [[y], ld] = m.forward([x])
      expect(ld).toBe(0)
      expectClose(y, applyRef(xv, W, D, false), 1e-13)
      const [[xr], ldr] = m.forward([x], [], true)
      expect(ldr).toBe(0)
      expectClose(xr, applyRef(xv, W, D, true), 1e-13)
      const m32 = new HouseholderPerm([[D]], { nReflections: n }).to({ dtype: 'float32' })
      m32.loadStateDict(m.stateDict())
      expectClose(m32.forward([x.to({ dtype: 'float32' })])[0][0], y.toArray(), 1e-5)
    })
  })

  test.each([
    ['n = 2', 2, 5],
    ['n = 1', 1, 3],
    ['n > D', 7, 4],
  ])('%s: invertible-module checks (gradients w.r.t. Vs included)', (_name, n, D) => {
    checkInvertibleModule(() => {
      const m = new HouseholderPerm([[D]], { nReflections: n })
      setVs(m, randomValues(n * D, 11))
      return m
    }, { inputs: [[3, D]] })
  })

  test('fixed: W computed once, registered as W and weight (not trained); Vs stays a trainable, unused parameter', () => {
    tidy(() => {
      manualSeed(8)
      const D = 5
      const n = 3
      const m = new HouseholderPerm([[D]], { nReflections: n, fixed: true })
      expect(Object.keys(m.stateDict())).toEqual(['Vs', 'W', 'weight'])
      expect(m.namedParameters().map(([k]) => k)).toEqual(['Vs', 'W'])
      const W = m.W as Tensor
      expect(m.stateDict().weight).toBe(W)
      expect(W.requiresGrad).toBe(false)
      expect(m.Vs?.requiresGrad).toBe(true)
      expectClose(W, householderRef(Array.from((m.Vs as Tensor).toArray()), n, D), 1e-13)
      const before = Array.from(W.toArray())
      setVs(m, randomValues(n * D, 1)) // changing Vs does not change the fixed map
      const xv = randomValues(2 * D, 2)
      const x = tensor(xv, [2, D], { dtype: 'float64' })
      const [[y]] = m.forward([x])
      expectClose(y, applyRef(xv, before, D, false), 1e-13)
      const [[xr]] = m.forward([y], [], true)
      expectClose(xr, xv, 1e-13)
      const numeric = numericalLogDets((xs, cs, rev, jac) => {
        const [z] = m.forward(xs, cs, rev, jac)
        return { z, logDet: tensor([0, 0], [2], { dtype: 'float64' }) }
      }, [x], [], false)
      expect(Math.max(...numeric.map(Math.abs))).toBeLessThan(1e-8)
      gradCheck((t) => m.forward([t])[0][0], [input([2, D], 3)])
      gradCheck((t) => m.forward([t], [], true)[0][0], [input([2, D], 4)])
      const [[yy]] = m.forward([tensor(xv, [2, D], { dtype: 'float64', requiresGrad: true })])
      yy.sum().backward()
      expect(m.Vs?.grad ?? null).toBeNull()
      expect(W.grad).toBeNull()
    })
  })

  test('conditional: each sample reflects with its own vectors (the columns of its (D, n) condition)', () => {
    tidy(() => {
      const [B, D, n] = [3, 4, 2]
      const m = new HouseholderPerm([[D]], { nReflections: n, dimsC: [[D, n]] })
      expect(m.conditional).toBe(true)
      expect(Object.keys(m.stateDict())).toEqual([])
      const cv = randomValues(B * D * n, 5)
      const xv = randomValues(B * D, 6)
      const [[y], ld] = m.forward([tensor(xv, [B, D], { dtype: 'float64' })], [tensor(cv, [B, D, n], { dtype: 'float64' })])
      expect(ld).toBe(0)
      const [[xr]] = m.forward([y], [tensor(cv, [B, D, n], { dtype: 'float64' })], true)
      const expected: number[] = []
      const back: number[] = []
      const yv = Array.from(y.toArray())
      for (let b = 0; b < B; b++) {
        // the rows of Vs are the columns of the sample's (D, n) matrix
        const V: number[] = []
        for (let r = 0; r < n; r++) for (let d = 0; d < D; d++) V.push(cv[b * D * n + d * n + r])
        const W = householderRef(V, n, D)
        expected.push(...applyRef(xv.slice(b * D, (b + 1) * D), W, D, false))
        back.push(...applyRef(yv.slice(b * D, (b + 1) * D), W, D, true))
      }
      expectClose(y, expected, 1e-13)
      expectClose(xr, back, 1e-13)
      expectClose(xr, xv, 1e-13)
    })
  })

  test.each([
    ['flat condition', [[5, 15]]],
    ['(D, n) condition', [[2, 5, 3]]],
  ])('conditional, %s: invertible-module checks (gradients w.r.t. the condition)', (_name, conditions) => {
    checkInvertibleModule(() => new HouseholderPerm([[5]], { nReflections: 3, dimsC: [conditions[0].slice(1)] }), {
      inputs: [[conditions[0][0], 5]],
      conditions,
    })
  })

  test('bad options and inputs', () => {
    expectCode(() => new HouseholderPerm([[4]], { nReflections: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new HouseholderPerm([[4]], { nReflections: 1.5 }), 'ERR_ARGUMENT')
    expectCode(() => new HouseholderPerm([[4]], { fixed: 1 as unknown as boolean }), 'ERR_ARGUMENT')
    expectCode(() => new HouseholderPerm([[4, 2]], { nReflections: 2 }), 'ERR_SHAPE')
    expectCode(() => new HouseholderPerm([[4]], { nReflections: 2, dimsC: [[8]], fixed: true }), 'ERR_ARGUMENT')
    expectCode(() => new HouseholderPerm([[4]], { nReflections: 2, dimsC: [[8], [8]] }), 'ERR_ARGUMENT')
    expectCode(() => new HouseholderPerm([[4]], { nReflections: 2, dimsC: [[9]] }), 'ERR_SHAPE')
    expectCode(() => new HouseholderPerm([[4], [4]]), 'ERR_ARGUMENT')
    tidy(() => {
      const m = new HouseholderPerm([[4]], { nReflections: 2, dimsC: [[8]] })
      const x = tensor(randomValues(8, 1), [2, 4], { dtype: 'float64' })
      expectCode(() => m.forward([x]), 'ERR_ARGUMENT')
      expectCode(() => m.forward([x], [tensor(randomValues(14, 1), [2, 7], { dtype: 'float64' })]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3], { dtype: 'float64' })], [tensor(randomValues(16, 1), [2, 8], { dtype: 'float64' })]), 'ERR_SHAPE')
    })
  })
})

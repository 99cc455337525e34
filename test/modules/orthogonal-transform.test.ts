import { getDefaultDtype, manualSeed, modules, noGrad, optim, randn, SequenceINN, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { OrthogonalTransform } = modules
type Ortho = InstanceType<typeof OrthogonalTransform>

/** Rows of an n×n matrix (row-major) made orthonormal by classical Gram–Schmidt, in plain JavaScript. */
function gramSchmidtRows(a: number[], n: number): number[] {
  const rows: number[][] = []
  for (let i = 0; i < n; i++) {
    const r = a.slice(i * n, (i + 1) * n)
    const orig = r.slice()
    for (const q of rows) {
      const d = q.reduce((s, v, k) => s + v * orig[k], 0)
      for (let k = 0; k < n; k++) r[k] -= d * q[k]
    }
    const norm = Math.sqrt(r.reduce((s, v) => s + v * v, 0))
    rows.push(r.map((v) => v / norm))
  }
  return rows.flat()
}

function setParams(m: Ortho, W: number[], b: number[], s: number[]): void {
  const D = m.width
  m.loadStateDict({
    weights: tensor(W, [D, D], { dtype: 'float64' }),
    bias: tensor(b, [1, D], { dtype: 'float64' }),
    scaling: tensor(s, [1, D], { dtype: 'float64' }),
  })
}

/** float64 reference: ls = clamp·0.636·atan(s/clamp); z = (x·W + b)·e^ls; x = (z·e^−ls − b)·Wᵀ. */
function reference(x: number[], B: number, D: number, W: number[], b: number[], s: number[], clamp: number, rev: boolean) {
  const ls = s.map((v) => clamp * 0.636 * Math.atan(v / clamp))
  const out: number[] = []
  for (let n = 0; n < B; n++)
    for (let j = 0; j < D; j++) {
      let acc = 0
      if (!rev) {
        for (let i = 0; i < D; i++) acc += x[n * D + i] * W[i * D + j]
        out.push((acc + b[j]) * Math.exp(ls[j]))
      } else {
        for (let i = 0; i < D; i++) acc += (x[n * D + i] * Math.exp(-ls[i]) - b[i]) * W[j * D + i]
        out.push(acc)
      }
    }
  const total = ls.reduce((a, v) => a + v, 0)
  return { y: out, ld: new Array<number>(B).fill(rev ? -total : total) }
}

const isOrthogonal = (W: Tensor, tol: number): boolean => {
  const D = W.shape[0]
  const prod = Array.from(W.matmul(W.t()).toArray())
  return prod.every((v, k) => Math.abs(v - (Math.floor(k / D) === k % D ? 1 : 0)) < tol)
}

describe('OrthogonalTransform', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test('keys weights (D, D) orthogonal, bias (1, D) ~ 0.05·N(0, 1), scaling (1, D) ~ 0.02·N(0, 1)', () => {
    tidy(() => {
      manualSeed(5)
      const m = new OrthogonalTransform([[60]])
      expect(Object.keys(m.stateDict())).toEqual(['weights', 'bias', 'scaling'])
      expect(m.weights.shape).toEqual([60, 60])
      expect(m.bias.shape).toEqual([1, 60])
      expect(m.scaling.shape).toEqual([1, 60])
      expect(isOrthogonal(m.weights, 1e-12)).toBe(true)
      const rms = (t: Tensor) => Math.sqrt(Array.from(t.toArray()).reduce((a, v) => a + v * v, 0) / t.size)
      expect(Math.abs(rms(m.bias) / 0.05 - 1)).toBeLessThan(0.3)
      expect(Math.abs(rms(m.scaling) / 0.02 - 1)).toBeLessThan(0.3)
      expect(m.clamp).toBe(5)
      expect(m.correctionInterval).toBe(256)
      expect(m.backCounter).toBeGreaterThanOrEqual(0)
      expect(m.backCounter).toBeLessThanOrEqual(127)
      expect(m.outputDims([[60]])).toEqual([[60]])
    })
  })

  test('forward and reverse match the float64 reference (any W); the log-det is returned even with jac: false', () => {
    tidy(() => {
      const [B, D, clamp] = [3, 4, 1.5]
      const m = new OrthogonalTransform([[D]], { clamp })
      const W = randomValues(D * D, 1)
      const b = randomValues(D, 2)
      const s = randomValues(D, 3, -3, 3)
      setParams(m, W, b, s)
      const xv = randomValues(B * D, 4)
      for (const rev of [false, true]) {
        const ref = reference(xv, B, D, W, b, s, clamp, rev)
        const [[y], ld] = m.forward([tensor(xv, [B, D], { dtype: 'float64' })], [], rev)
        expectClose(y, ref.y, 1e-14)
        expectClose(ld as Tensor, ref.ld, 1e-14)
        const [, ld2] = m.forward([tensor(xv, [B, D], { dtype: 'float64' })], [], rev, false)
        expectClose(ld2 as Tensor, ref.ld, 1e-14)
      }
      const m32 = new OrthogonalTransform([[D]], { clamp }).to({ dtype: 'float32' })
      m32.loadStateDict(m.stateDict())
      const x32 = tensor(xv, [B, D], { dtype: 'float32' })
      expectClose(m32.forward([x32])[0][0], reference(xv, B, D, W, b, s, clamp, false).y, 1e-5)
    })
  })

  test.each([
    ['D = 5', 5, 5.0],
    ['D = 8, clamp 0.7', 8, 0.7],
  ])('%s: invertible-module checks with an orthogonal W', (_name, D, clamp) => {
    checkInvertibleModule(() => {
      const m = new OrthogonalTransform([[D]], { clamp })
      setParams(m, gramSchmidtRows(randomValues(D * D, D), D), randomValues(D, 2), randomValues(D, 3, -2, 2))
      return m
    }, { inputs: [[3, D]] })
  })

  test('orthogonalize() replaces the rows of W by their Gram–Schmidt orthonormalisation', () => {
    tidy(() => {
      const D = 5
      const m = new OrthogonalTransform([[D]])
      const W = randomValues(D * D, 17)
      setParams(m, W, randomValues(D, 1), randomValues(D, 2))
      m.orthogonalize()
      expectClose(m.weights, gramSchmidtRows(W, D), 1e-12)
    })
  })

  test('the backward hook counts backward passes and re-orthonormalises W once the counter exceeds the interval', () => {
    tidy(() => {
      const D = 4
      const m = new OrthogonalTransform([[D]], { correctionInterval: 3 })
      const W = randomValues(D * D, 21)
      setParams(m, W, randomValues(D, 1), randomValues(D, 2))
      m.backCounter = 0
      const x = tensor(randomValues(2 * D, 3), [2, D], { dtype: 'float64' })
      const step = (rev: boolean) => {
        const [[y], ld] = m.forward([x], [], rev)
        y.sum().add((ld as Tensor).sum()).backward()
      }
      // inference does not count
      noGrad(() => m.forward([x]))
      expect(m.backCounter).toBe(0)
      step(false)
      step(true) // the reverse pass is hooked too
      step(false)
      expect(m.backCounter).toBe(3)
      expectClose(m.weights, W, 0)
      step(false) // 4 > 3: correction, counter restarts at randint(0, 3) // 4 = 0
      expect(m.backCounter).toBe(0)
      expect(isOrthogonal(m.weights, 1e-12)).toBe(true)
      expectClose(m.weights, gramSchmidtRows(W, D), 1e-12)
      // gradients were still delivered
      expect(m.weights.grad).not.toBeNull()
    })
  })

  test('FrEIA test_orthogonal_layer: a SequenceINN of OrthogonalTransform and HouseholderPerm learns by SGD', () => {
    tidy(() => {
      manualSeed(12)
      const D = 12
      const inn = new SequenceINN(D)
      inn.append(OrthogonalTransform, { correctionInterval: 10 })
      inn.append(modules.HouseholderPerm, { nReflections: 6 })
      const ortho = inn.at(0) as Ortho
      const opt = new optim.SGD(inn.parameters(), { lr: 0.05 })
      // learn to map x to a fixed rotation of x (reachable: both layers are orthogonal)
      const target = tensor(gramSchmidtRows(randomValues(D * D, 31), D), [D, D], { dtype: 'float64' })
      let corrections = 0
      let first = 0
      let last = 0
      for (let step = 0; step < 150; step++)
        tidy(() => {
          const before = ortho.backCounter
          const x = randn([64, D], { dtype: 'float64' })
          const [z] = inn.forward(x)
          const loss = (z as Tensor).sub(x.matmul(target)).square().mean()
          if (step === 0) first = loss.item()
          last = loss.item()
          opt.zeroGrad()
          loss.backward()
          opt.step()
          if (ortho.backCounter < before) corrections++
        })
      expect(corrections).toBeGreaterThanOrEqual(10)
      expect(last).toBeLessThan(0.5 * first)
      // right after a correction the chain is exactly invertible again
      ortho.orthogonalize()
      const x = randn([4, D], { dtype: 'float64' })
      const [z, ld] = inn.forward(x)
      const [xr, ldr] = inn.forward(z as Tensor, { rev: true })
      expectClose(xr as Tensor, x.toArray(), 1e-12)
      expectClose(ldr, ld.neg().toArray(), 1e-12)
    })
  })

  test('bad options and inputs', () => {
    expectCode(() => new OrthogonalTransform([[3, 2]]), 'ERR_SHAPE')
    expectCode(() => new OrthogonalTransform([[3]], { clamp: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new OrthogonalTransform([[3]], { clamp: Infinity }), 'ERR_ARGUMENT')
    expectCode(() => new OrthogonalTransform([[3]], { correctionInterval: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new OrthogonalTransform([[3]], { correctionInterval: 2.5 }), 'ERR_ARGUMENT')
    expectCode(() => new OrthogonalTransform([[3], [3]]), 'ERR_ARGUMENT')
    tidy(() => {
      const m = new OrthogonalTransform([[3]])
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4], { dtype: 'float64' })]), 'ERR_SHAPE')
      expectCode(() => m.outputDims([[3, 3]]), 'ERR_SHAPE')
    })
  })
})

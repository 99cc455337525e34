import {
  ConditionNode, Dims, getDefaultDtype, GraphINN, InputNode, InvertibleModule, Node, OutputNode, InvertibleModuleOptions, manualSeed, ModuleOutput, modules, rand, setDefaultDtype, tensor, Tensor, tidy,
} from '../../lib'
import { expectClose, expectCode, gradCheck, input, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { GaussianMixtureModel: GMM } = modules

// ------------------------------------------------------------------ float64 references (plain loops)

/** U (D×D, row-major) from its D(D+1)/2 entries: exp of the first D on the diagonal, the rest above it row by row. */
function choleskyRef(e: number[], D: number): number[] {
  const U = new Array<number>(D * D).fill(0)
  let k = D
  for (let r = 0; r < D; r++) {
    U[r * D + r] = Math.exp(e[r])
    for (let c = r + 1; c < D; c++) U[r * D + c] = e[k++]
  }
  return U
}
/** z = U(x − μ). */
function latentRef(x: number[], mu: number[], U: number[], D: number): number[] {
  return Array.from({ length: D }, (_, r) => {
    let s = 0
    for (let c = 0; c < D; c++) s += U[r * D + c] * (x[c] - mu[c])
    return s
  })
}
/** x = μ + U⁻¹z by back substitution. */
function dataRef(z: number[], mu: number[], U: number[], D: number): number[] {
  const v = new Array<number>(D).fill(0)
  for (let r = D - 1; r >= 0; r--) {
    let s = z[r]
    for (let c = r + 1; c < D; c++) s -= U[r * D + c] * v[c]
    v[r] = s / U[r * D + r]
  }
  return v.map((a, i) => a + mu[i])
}

interface Params {
  B: number
  K: number
  D: number
  M: number
  w: number[]
  mu: number[]
  U: number[]
}
function params(B: number, K: number, D: number, seed: number): Params {
  const M = (D * (D + 1)) / 2
  const raw = randomValues(B * K, seed, -1, 1)
  const w: number[] = []
  for (let b = 0; b < B; b++) {
    const row = raw.slice(b * K, (b + 1) * K).map(Math.exp)
    const s = row.reduce((a, v) => a + v, 0)
    w.push(...row.map((v) => v / s))
  }
  return { B, K, D, M, w, mu: randomValues(B * K * D, seed + 1, -1, 1), U: randomValues(B * K * M, seed + 2, -0.6, 0.6) }
}
const conds = (p: Params): Tensor[] => [
  tensor(p.w, [p.B, p.K], { dtype: 'float64' }),
  tensor(p.mu, [p.B, p.K, p.D], { dtype: 'float64' }),
  tensor(p.U, [p.B, p.K, p.M], { dtype: 'float64' }),
]
const dimsC = (K: number, D: number): number[][] => [[K], [K, D], [K, (D * (D + 1)) / 2]]
const entriesOf = (p: Params, b: number, k: number) => p.U.slice((b * p.K + k) * p.M, (b * p.K + k + 1) * p.M)
const meanOf = (p: Params, b: number, k: number) => p.mu.slice((b * p.K + k) * p.D, (b * p.K + k + 1) * p.D)

/** Test-only wrapper: the GMM with a fixed selector (indices or a seed), so that the checker sees 3 tensor conditions. */
class FixedSelection extends InvertibleModule {
  readonly gmm: InstanceType<typeof GMM>
  constructor(dimsIn: Dims[], opts: InvertibleModuleOptions & { select: () => Tensor | number }) {
    super(dimsIn, opts)
    this.gmm = this.registerModule('gmm', new GMM(dimsIn, { dimsC: opts.dimsC }))
    this.select = opts.select
  }
  private readonly select: () => Tensor | number
  forward(x: Tensor[], c: Tensor[] = [], rev = false, jac = true): ModuleOutput {
    const w = GMM.normalizeWeights(c[0])
    return this.gmm.forward(x, [w, c[1], c[2], this.select()], rev, jac)
  }
  outputDims(inputDims: Dims[]): number[][] {
    return this.gmm.outputDims(inputDims)
  }
}

describe('GaussianMixtureModel', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test('no parameters or buffers; outputDims = input dims', () => {
    const m = new GMM([[3]], { dimsC: dimsC(4, 3) })
    expect(Object.keys(m.stateDict())).toEqual([])
    expect(m.outputDims([[3]])).toEqual([[3]])
    expect(m.xDims).toBe(3)
    expect(new GMM([[3]], { dimsC: [...dimsC(4, 3), [1]] }).dimsC.length).toBe(4)
  })

  test.each([
    ['D = 3, K = 4', 3, 4, 3],
    ['D = 1, K = 2', 1, 2, 4],
    ['D = 5, K = 3', 5, 3, 2],
  ])('fixed components, %s: forward U(x − μ), reverse μ + U⁻¹z and log-det Σ diag entries match the float64 reference', (_name, D, K, B) => {
    tidy(() => {
      const p = params(B, K, D, 3)
      const m = new GMM([[D]], { dimsC: dimsC(K, D) })
      const idx = Array.from({ length: B }, (_, b) => (b * 2 + 1) % K)
      const xv = randomValues(B * D, 9, -2, 2)
      const [[z], ld] = m.forward([tensor(xv, [B, D], { dtype: 'float64' })], [...conds(p), tensor(idx, [B], { dtype: 'float64' })])
      const zRef: number[] = []
      const xRef: number[] = []
      const ldRef: number[] = []
      for (let b = 0; b < B; b++) {
        const e = entriesOf(p, b, idx[b])
        const U = choleskyRef(e, D)
        zRef.push(...latentRef(xv.slice(b * D, (b + 1) * D), meanOf(p, b, idx[b]), U, D))
        xRef.push(...dataRef(xv.slice(b * D, (b + 1) * D), meanOf(p, b, idx[b]), U, D))
        ldRef.push(e.slice(0, D).reduce((a, v) => a + v, 0))
      }
      expectClose(z, zRef, 1e-14)
      expectClose(ld as Tensor, ldRef, 1e-14)
      const [[x], ldr] = m.forward([tensor(xv, [B, D], { dtype: 'float64' })], [...conds(p), tensor(idx, [B], { dtype: 'float64' })], true)
      expectClose(x, xRef, 1e-13)
      expectClose(ldr as Tensor, ldRef.map((v) => -v), 1e-14)
      // float32
      const c32 = conds(p).map((t) => t.to({ dtype: 'float32' }))
      const [[z32], ld32] = m.forward([tensor(xv, [B, D], { dtype: 'float32' })], [...c32, tensor(idx, [B, 1], { dtype: 'float32' })])
      expect(z32.dtype).toBe('float32')
      expectClose(z32, zRef, 1e-5)
      expectClose(ld32 as Tensor, ldRef, 1e-5)
    })
  })

  test('all components (i = null or omitted): z (B, K, D), log-det (B, K); the reverse takes (B, K, D)', () => {
    tidy(() => {
      const [B, K, D] = [2, 3, 3]
      const p = params(B, K, D, 5)
      const m = new GMM([[D]], { dimsC: dimsC(K, D) })
      const xv = randomValues(B * D, 6)
      const [[z], ld] = m.forward([tensor(xv, [B, D], { dtype: 'float64' })], [...conds(p), null])
      expect(z.shape).toEqual([B, K, D])
      expect((ld as Tensor).shape).toEqual([B, K])
      const zRef: number[] = []
      const ldRef: number[] = []
      for (let b = 0; b < B; b++)
        for (let k = 0; k < K; k++) {
          const e = entriesOf(p, b, k)
          zRef.push(...latentRef(xv.slice(b * D, (b + 1) * D), meanOf(p, b, k), choleskyRef(e, D), D))
          ldRef.push(e.slice(0, D).reduce((a, v) => a + v, 0))
        }
      expectClose(z, zRef, 1e-14)
      expectClose(ld as Tensor, ldRef, 1e-14)
      // omitted selector = null; a (B, K, D) input is compared component by component
      const xk = tensor(randomValues(B * K * D, 7), [B, K, D], { dtype: 'float64' })
      const [[zk]] = m.forward([xk], conds(p))
      const xkv = Array.from(xk.toArray())
      const zkRef: number[] = []
      for (let b = 0; b < B; b++)
        for (let k = 0; k < K; k++) zkRef.push(...latentRef(xkv.slice((b * K + k) * D, (b * K + k + 1) * D), meanOf(p, b, k), choleskyRef(entriesOf(p, b, k), D), D))
      expectClose(zk, zkRef, 1e-14)
      // reverse: every component's reconstruction is x
      const [[xr], ldr] = m.forward([z], conds(p), true)
      expect(xr.shape).toEqual([B, K, D])
      const xrv = Array.from(xr.toArray())
      for (let k = 0; k < K; k++)
        for (let b = 0; b < B; b++) expectClose(xrv.slice((b * K + k) * D, (b * K + k + 1) * D), xv.slice(b * D, (b + 1) * D), 1e-13)
      expectClose(ldr as Tensor, ldRef.map((v) => -v), 1e-14)
      expect(m.forward([tensor(xv, [B, D], { dtype: 'float64' })], conds(p), false, false)[1]).toBeNull()
      // gradients of the all-components map w.r.t. x, mu and the Cholesky entries, both directions
      const c = conds(p)
      gradCheck((x, mu, e) => m.forward([x], [c[0], mu, e])[0][0], [input([B, D], 1), { values: p.mu, shape: [B, K, D] }, { values: p.U, shape: [B, K, p.M] }])
      gradCheck((zz, mu, e) => m.forward([zz], [c[0], mu, e], true)[0][0], [input([B, K, D], 2), { values: p.mu, shape: [B, K, D] }, { values: p.U, shape: [B, K, p.M] }])
    })
  })

  test.each([
    ['D = 3, K = 4', 3, 4],
    ['D = 1, K = 3', 1, 3],
  ])('fixed index tensor, %s: invertible-module checks (gradients w.r.t. x, mu and U entries)', (_name, D, K) => {
    const B = 3
    checkInvertibleModule(
      () => new FixedSelection([[D]], { dimsC: dimsC(K, D), select: () => tensor([1, K - 1, 0], [B], { dtype: 'float64' }) }),
      { inputs: [[B, D]], conditions: dimsC(K, D).map((s) => [B, ...s]) },
    )
  })

  test('seeded components: invertible-module checks (the same seed picks the same components every call)', () => {
    checkInvertibleModule(() => new FixedSelection([[4]], { dimsC: dimsC(3, 4), select: () => 12345 }), {
      inputs: [[3, 4]],
      conditions: dimsC(3, 4).map((s) => [3, ...s]),
    })
  })

  test('in a GraphINN with the parameters and the component index as condition nodes (FrEIA test_gaussian_mixture)', () => {
    tidy(() => {
      const [B, K, D] = [3, 4, 3]
      const p = params(B, K, D, 12)
      const x = new InputNode(D, { name: 'x' })
      const w = new ConditionNode(K, { name: 'w' })
      const mu = new ConditionNode(K, D, { name: 'mu' })
      const U = new ConditionNode(K, p.M, { name: 'U' })
      const i = new ConditionNode(1, { name: 'i' })
      const gmm = new Node(x, GMM, {}, { conditions: [w, mu, U, i], name: 'gmm' })
      const inn = new GraphINN([x, w, mu, U, i, gmm, new OutputNode(gmm, { name: 'z' })])
      const idx = tensor([3, 0, 2], [B, 1], { dtype: 'float64' })
      const c = [...conds(p), idx]
      const xv = randomValues(B * D, 13)
      const [z, ld] = inn.forward(tensor(xv, [B, D], { dtype: 'float64' }), { c })
      const direct = new GMM([[D]], { dimsC: dimsC(K, D) })
      const [[zd], ldd] = direct.forward([tensor(xv, [B, D], { dtype: 'float64' })], c)
      expectClose(z as Tensor, zd.toArray(), 1e-15)
      expectClose(ld, (ldd as Tensor).toArray(), 1e-15)
      const [xr, ldr] = inn.forward(z as Tensor, { c, rev: true })
      expectClose(xr as Tensor, xv, 1e-13)
      expectClose(ldr, (ldd as Tensor).neg().toArray(), 1e-14)
    })
  })

  test('jac: false returns null with fixed components', () => {
    tidy(() => {
      const p = params(2, 2, 2, 1)
      const m = new GMM([[2]], { dimsC: dimsC(2, 2) })
      const x = tensor(randomValues(4, 2), [2, 2], { dtype: 'float64' })
      expect(m.forward([x], [...conds(p), tensor([0, 1], [2], { dtype: 'float64' })], false, false)[1]).toBeNull()
      expect(m.forward([x], [...conds(p), 7], true, false)[1]).toBeNull()
    })
  })

  test('normalizeWeights: softmax over the last dimension, stable for large weights, differentiable', () => {
    tidy(() => {
      const raw = [0.5, -1, 2, 0.1, 1000, 999, -1000, 998]
      const out = Array.from(GMM.normalizeWeights(tensor(raw, [2, 4], { dtype: 'float64' })).toArray())
      const ref: number[] = []
      for (let b = 0; b < 2; b++) {
        const row = raw.slice(b * 4, b * 4 + 4)
        const m = Math.max(...row)
        const e = row.map((v) => Math.exp(v - m))
        const s = e.reduce((a, v) => a + v, 0)
        ref.push(...e.map((v) => v / s))
      }
      expectClose(out, ref, 1e-15)
      const odd = GMM.normalizeWeights(tensor(randomValues(15, 3), [3, 5], { dtype: 'float64' }))
      Array.from(odd.sum(1).toArray()).forEach((v) => expect(Math.abs(v - 1)).toBeLessThan(1e-15))
      gradCheck((w) => GMM.normalizeWeights(w), [input([3, 5], 4, -2, 2)])
      expectClose(GMM.normalizeWeights(tensor(raw, [2, 4], { dtype: 'float32' })), ref, 1e-6)
    })
  })

  test('pickMixtureComponent: index = number of cumulative weights below u; seeded picks are reproducible and local', () => {
    tidy(() => {
      const B = 4000
      const wRow = [0.1, 0.5, 0.15, 0.25]
      const w = tensor(Array.from({ length: B }, () => wRow).flat(), [B, 4], { dtype: 'float64' })
      const a = Array.from(GMM.pickMixtureComponent(w, 42).toArray())
      const b = Array.from(GMM.pickMixtureComponent(w, 42).toArray())
      const c = Array.from(GMM.pickMixtureComponent(w, 43).toArray())
      expect(a).toEqual(b)
      expect(a).not.toEqual(c)
      expect(a.every((v) => Number.isInteger(v) && v >= 0 && v < 4)).toBe(true)
      const freq = [0, 1, 2, 3].map((k) => a.filter((v) => v === k).length / B)
      freq.forEach((f, k) => expect(Math.abs(f - wRow[k])).toBeLessThan(0.03))
      // a seed does not touch innflow's generator
      manualSeed(9)
      const r1 = rand([3], { dtype: 'float64' }).toArray()
      manualSeed(9)
      GMM.pickMixtureComponent(w, 5)
      expectClose(rand([3], { dtype: 'float64' }), r1, 0)
      // without a seed the draw comes from innflow's generator (reproducible with manualSeed)
      manualSeed(11)
      const u1 = GMM.pickMixtureComponent(w).toArray()
      manualSeed(11)
      expectClose(GMM.pickMixtureComponent(w, null), u1, 0)
      // a one-hot weight always picks its component (also the last one, despite rounding of the cumulative sum)
      const hot = tensor([0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0], [3, 4], { dtype: 'float64' })
      expect(Array.from(GMM.pickMixtureComponent(hot, 1).toArray())).toEqual([2, 3, 0])
      expect(GMM.pickMixtureComponent(hot.to({ dtype: 'float32' }), 1).dtype).toBe('float32')
    })
  })

  test('nllLoss and nllUpperBound match the float64 reference and finite-difference gradients', () => {
    tidy(() => {
      const [B, K, D] = [3, 4, 2]
      const p = params(B, K, D, 8)
      const zv = randomValues(B * K * D, 9, -2, 2)
      const ldv = randomValues(B * K, 10)
      const args = (): [Tensor, Tensor, Tensor] => [tensor(p.w, [B, K], { dtype: 'float64' }), tensor(zv, [B, K, D], { dtype: 'float64' }), tensor(ldv, [B, K], { dtype: 'float64' })]
      const nll: number[] = []
      const upper: number[] = []
      for (let b = 0; b < B; b++) {
        let s = 0
        let u = 0
        for (let k = 0; k < K; k++) {
          const sq = zv.slice((b * K + k) * D, (b * K + k + 1) * D).reduce((a, v) => a + v * v, 0)
          s += p.w[b * K + k] * Math.exp(-0.5 * sq + ldv[b * K + k])
          u += Math.log(p.w[b * K + k]) - 0.5 * sq + ldv[b * K + k]
        }
        nll.push(-Math.log(s))
        upper.push(-u)
      }
      expectClose(GMM.nllLoss(...args()), nll, 1e-14)
      expectClose(GMM.nllUpperBound(...args()), upper, 1e-14)
      const gi = [{ values: p.w, shape: [B, K] }, { values: zv, shape: [B, K, D] }, { values: ldv, shape: [B, K] }]
      gradCheck((w, z, ld) => GMM.nllLoss(w, z, ld), gi)
      gradCheck((w, z, ld) => GMM.nllUpperBound(w, z, ld), gi)
      expectCode(() => GMM.nllLoss(tensor(p.w, [B, K], { dtype: 'float64' }), tensor(zv, [B, K * D], { dtype: 'float64' }), tensor(ldv, [B, K], { dtype: 'float64' })), 'ERR_SHAPE')
      expectCode(() => GMM.nllUpperBound(tensor(p.w, [B, K], { dtype: 'float64' }), tensor(zv, [B, K, D], { dtype: 'float64' }), tensor(ldv, [B * K], { dtype: 'float64' })), 'ERR_SHAPE')
    })
  })

  test('bad options and inputs', () => {
    expectCode(() => new GMM([[3]]), 'ERR_ARGUMENT')
    expectCode(() => new GMM([[3]], { dimsC: [[4], [4, 3]] }), 'ERR_ARGUMENT')
    expectCode(() => new GMM([[3]], { dimsC: [[4], [4, 3], [4, 5]] }), 'ERR_SHAPE')
    expectCode(() => new GMM([[3]], { dimsC: [[4], [5, 3], [4, 6]] }), 'ERR_SHAPE')
    expectCode(() => new GMM([[3, 2]], { dimsC: dimsC(4, 3) }), 'ERR_SHAPE')
    expectCode(() => new GMM([[3], [3]], { dimsC: dimsC(4, 3) }), 'ERR_ARGUMENT')
    tidy(() => {
      const p = params(2, 4, 3, 1)
      const m = new GMM([[3]], { dimsC: dimsC(4, 3) })
      const x = tensor(randomValues(6, 1), [2, 3], { dtype: 'float64' })
      const c = conds(p)
      expectCode(() => m.forward([x], [c[0], c[1]]), 'ERR_ARGUMENT')
      expectCode(() => m.forward([x], [c[0], c[2], c[1]]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4], { dtype: 'float64' })], c), 'ERR_SHAPE')
      expectCode(() => m.forward([x], [...c, tensor([0, 4], [2], { dtype: 'float64' })]), 'ERR_ARGUMENT')
      expectCode(() => m.forward([x], [...c, tensor([0.5, 1], [2], { dtype: 'float64' })]), 'ERR_ARGUMENT')
      expectCode(() => m.forward([x], [...c, tensor([0, 1, 2], [3], { dtype: 'float64' })]), 'ERR_SHAPE')
      expectCode(() => m.forward([x], [...c, 1.5]), 'ERR_ARGUMENT')
      expectCode(() => m.forward([tensor(randomValues(24, 1), [2, 4, 3], { dtype: 'float64' })], [...c, 1]), 'ERR_SHAPE')
      expectCode(() => GMM.pickMixtureComponent(tensor([1], [1], { dtype: 'float64' })), 'ERR_SHAPE')
      expectCode(() => GMM.pickMixtureComponent(c[0], 0.5), 'ERR_ARGUMENT')
      expectCode(() => GMM.normalizeWeights(tensor([1], [], { dtype: 'float64' })), 'ERR_SHAPE')
    })
  })
})

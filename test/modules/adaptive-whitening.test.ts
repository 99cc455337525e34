import { tensor, Tensor, tidy } from '../../lib'
import { AdaptiveWhitening, symmetricEigen } from '../../lib/modules/adaptive-whitening'
import { expectClose, expectCode, randomValues } from '../helpers'
import { eye, in64, logAbsDet, Mat, matmul, maxAbsDiff, meanCov, transpose } from './invertnn-reference'
import { checkInvertibleModule } from './module-check'

/** Standard normal values by Box–Muller on the test PRNG. */
function normals(count: number, seed: number): number[] {
  const u = randomValues(2 * count, seed, 0, 1)
  return Array.from({ length: count }, (_, i) => Math.sqrt(-2 * Math.log(1 - u[2 * i])) * Math.cos(2 * Math.PI * u[2 * i + 1]))
}

/** N correlated samples x = A·g + μ (rows), by loops. */
function correlated(N: number, A: Mat, mu: number[], seed: number): number[] {
  const n = mu.length
  const g = normals(N * n, seed)
  const out: number[] = []
  for (let s = 0; s < N; s++) for (let i = 0; i < n; i++) out.push(mu[i] + A[i].reduce((acc, a, j) => acc + a * g[s * n + j], 0))
  return out
}

const A4: Mat = [
  [2.0, 0.3, -0.5, 0.1],
  [0.8, 1.5, 0.2, 0.0],
  [-0.4, 0.6, 1.4, 0.3],
  [0.1, -0.2, 0.5, 1.2],
]
const MU4 = [1, -2, 0.5, 3]

/** Cholesky succeeds (all pivots positive) iff the symmetric matrix is positive definite. */
function positiveDefinite(a: Mat): boolean {
  const n = a.length
  const L = Array.from({ length: n }, () => new Array<number>(n).fill(0))
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = a[i][j]
      for (let k = 0; k < j; k++) s -= L[i][k] * L[j][k]
      if (i === j) {
        if (!(s > 0)) return false
        L[i][i] = Math.sqrt(s)
      } else L[i][j] = s / L[j][j]
    }
  return true
}

/** The matrix of the affine map f (n inputs → n outputs): columns f(e_k) − f(0). */
function linearPart(f: (x: number[]) => number[], n: number): Mat {
  const f0 = f(new Array(n).fill(0))
  const cols = Array.from({ length: n }, (_, k) => f(Array.from({ length: n }, (_, i) => (i === k ? 1 : 0))).map((v, i) => v - f0[i]))
  return transpose(cols)
}

/** A float64 1-D module fed with three batches of correlated data (returned), then adapted. */
function adapted(method: 'zca' | 'pca', eps?: number): { m: AdaptiveWhitening; data: number[] } {
  const m = in64(() => new AdaptiveWhitening([[4]], eps === undefined ? { method } : { method, eps }))
  const data: number[] = []
  tidy(() => {
    for (let k = 0; k < 3; k++) {
      const batch = correlated(50, A4, MU4, 300 + k)
      data.push(...batch)
      m.forward([tensor(batch, [50, 4], { dtype: 'float64' })])
    }
  })
  m.adapt()
  m.eval()
  return { m, data }
}

const run = (m: AdaptiveWhitening, x: number[], rev = false): number[] =>
  tidy(() => Array.from(m.forward([tensor(x, [x.length / 4, 4], { dtype: 'float64' })], [], rev)[0][0].toArray()))

describe('AdaptiveWhitening', () => {
  test.each([['zca'], ['pca']] as const)('%s: after adapt the remembered data have mean 0 and covariance I (loops); reverse has covariance C; log-det −½ ln det(C + eps·I)', (method) => {
    for (const eps of [0, 1e-5]) {
      const { m, data } = adapted(method, eps)
      expect(m.observations).toBe(3)
      expect(m.rememberedBatches).toBe(3)
      const { mean, cov: C } = meanCov(data, 4)
      expectClose(m.bias.toArray(), mean, 1e-13)
      const z = run(m, data)
      const { mean: zMean, cov: zCov } = meanCov(z, 4)
      expect(Math.max(...zMean.map(Math.abs))).toBeLessThan(1e-12)
      // u·diag(σ/(σ + eps))·uᵀ: exactly I with eps = 0, within eps/σ_min (σ_min ≈ 0.25 here) otherwise
      expect(maxAbsDiff(zCov, eye(4))).toBeLessThan(eps === 0 ? 1e-11 : 1e-4)
      const W = linearPart((x) => run(m, x.map((v, i) => v + mean[i])), 4)
      const Ce = C.map((row, i) => row.map((v, j) => v + (i === j ? eps : 0)))
      expect(maxAbsDiff(matmul(matmul(W, Ce), transpose(W)), eye(4))).toBeLessThan(1e-11)
      if (method === 'zca') {
        // the ZCA matrix is the symmetric positive definite (C + eps·I)^(−1/2)
        expect(maxAbsDiff(W, transpose(W))).toBeLessThan(1e-12)
        expect(positiveDefinite(W)).toBe(true)
      } else {
        // the PCA rows are orthogonal (eigenvectors of C), scaled by 1/√σ, largest variance first
        const WWt = matmul(W, transpose(W))
        for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) if (i !== j) expect(Math.abs(WWt[i][j])).toBeLessThan(1e-11)
        for (let i = 1; i < 4; i++) expect(WWt[i][i]).toBeGreaterThan(WWt[i - 1][i - 1])
      }
      // reverse: de-whitening maps white noise to covariance C + eps·I
      const R = linearPart((zz) => run(m, zz, true), 4)
      expect(maxAbsDiff(matmul(R, transpose(R)), Ce)).toBeLessThan(1e-11)
      expectClose(run(m, new Array(4).fill(0), true), mean, 1e-13)
      expectClose(run(m, z, true), data, 1e-12)
      tidy(() => {
        const [, j] = m.forward([tensor(data.slice(0, 8), [2, 4], { dtype: 'float64' })])
        const ld = -0.5 * logAbsDet(Ce)
        expectClose(j as Tensor, [ld, ld], 1e-12)
        const [, jr] = m.forward([tensor(z.slice(0, 8), [2, 4], { dtype: 'float64' })], [], true)
        expectClose(jr as Tensor, [-ld, -ld], 1e-12)
      })
      m.clearMemory()
    }
  })

  test('images (C, H, W): whitening across channels over batch and pixels; log-det × H·W', () => {
    const C = 3
    const m = in64(() => new AdaptiveWhitening([[C, 2, 2]], { eps: 0 }))
    const A: Mat = [
      [1.5, 0.2, 0.1],
      [0.7, 0.9, -0.3],
      [-0.2, 0.4, 0.6],
    ]
    const mu = [0.5, -1, 2]
    // 40 images of 2×2 pixels: draw (pixel-major) rows, then lay them out as (B, C, H, W)
    const rows = correlated(160, A, mu, 77)
    const img = new Array<number>(160 * C)
    for (let b = 0; b < 40; b++) for (let p = 0; p < 4; p++) for (let c = 0; c < C; c++) img[(b * C + c) * 4 + p] = rows[(b * 4 + p) * C + c]
    tidy(() => m.forward([tensor(img, [40, C, 2, 2], { dtype: 'float64' })]))
    m.adapt().eval()
    const { mean, cov } = meanCov(rows, C)
    expectClose(m.bias.toArray(), mean, 1e-13)
    expect(m.bias.shape).toEqual([1, C, 1, 1])
    tidy(() => {
      const [[z], j] = m.forward([tensor(img, [40, C, 2, 2], { dtype: 'float64' })])
      const zv = z.toArray()
      const zRows: number[] = []
      for (let b = 0; b < 40; b++) for (let p = 0; p < 4; p++) for (let c = 0; c < C; c++) zRows.push(zv[(b * C + c) * 4 + p])
      expect(maxAbsDiff(meanCov(zRows, C).cov, eye(C))).toBeLessThan(1e-11)
      const ld = -0.5 * 4 * logAbsDet(cov)
      expectClose(j as Tensor, new Array(40).fill(ld), 1e-12)
      expectClose(m.forward([z], [], true)[0][0], img, 1e-12)
    })
  })

  test('float32: a float32 module adapts (eigendecomposition in float64) and agrees with the float64 one', () => {
    const { m } = adapted('zca')
    const m32 = new AdaptiveWhitening([[4]])
    const data = correlated(50, A4, MU4, 300)
    tidy(() => {
      for (let k = 0; k < 3; k++) m32.forward([tensor(correlated(50, A4, MU4, 300 + k), [50, 4])])
    })
    m32.adapt().eval()
    tidy(() => {
      const [[z32], j32] = m32.forward([tensor(data, [50, 4])])
      const [[z64], j64] = m.forward([tensor(data, [50, 4], { dtype: 'float64' })])
      expectClose(z32, z64.toArray(), 1e-5)
      expectClose(j32 as Tensor, (j64 as Tensor).toArray(), 1e-5)
    })
    m32.clearMemory()
    m.clearMemory()
  })

  test('memory: the last observationMemoryBatches batches; eval mode remembers nothing; clearMemory', () => {
    const m = in64(() => new AdaptiveWhitening([[4]], { observationMemoryBatches: 2 }))
    const batches = [0, 1, 2].map((k) => correlated(30, A4, MU4, 500 + k))
    tidy(() => batches.forEach((b) => m.forward([tensor(b, [30, 4], { dtype: 'float64' })])))
    expect(m.observations).toBe(3)
    expect(m.rememberedBatches).toBe(2)
    m.adapt()
    expectClose(m.bias.toArray(), meanCov([...batches[1], ...batches[2]], 4).mean, 1e-13)
    m.eval()
    tidy(() => m.forward([tensor(batches[0], [30, 4], { dtype: 'float64' })]))
    expect(m.observations).toBe(3)
    m.train()
    m.clearMemory()
    expect(m.rememberedBatches).toBe(0)
    expectCode(() => m.adapt(), 'ERR_ARGUMENT')
  })

  test.each([[1], [2]])('autoAdaptEvery %p: adapts on the 1st, (k+1)-th, ... batch before transforming it', (k) => {
    const m = in64(() => new AdaptiveWhitening([[4]], { autoAdaptEvery: k, eps: 0 }))
    const batches = [0, 1, 2].map((i) => correlated(40, A4, MU4, 700 + i))
    tidy(() => {
      const [[z0]] = m.forward([tensor(batches[0], [40, 4], { dtype: 'float64' })])
      // the first batch is whitened with its own statistics
      expect(maxAbsDiff(meanCov(z0.toArray(), 4).cov, eye(4))).toBeLessThan(1e-11)
      m.forward([tensor(batches[1], [40, 4], { dtype: 'float64' })])
      const expected = k === 1 ? [...batches[0], ...batches[1]] : batches[0]
      expectClose(m.bias.toArray(), meanCov(expected, 4).mean, 1e-13)
      m.forward([tensor(batches[2], [40, 4], { dtype: 'float64' })])
      expectClose(m.bias.toArray(), meanCov(batches.flat(), 4).mean, 1e-13)
    })
    m.clearMemory()
  })

  test.each<['zca' | 'pca', number[]]>([
    ['zca', [3, 5]],
    ['pca', [3, 5]],
    ['zca', [2, 3, 1, 2]],
  ])('checkInvertibleModule (%s, %j) after adapt (non-trivial mean, rotation and scales)', (method, shape) => {
    checkInvertibleModule(
      () => {
        const m = new AdaptiveWhitening([shape.slice(1)], { method })
        const size = shape.slice(1).reduce((a, b) => a * b, 1)
        const A: Mat = Array.from({ length: shape[1] }, (_, i) => randomValues(shape[1], 900 + i).map((v, j) => v + (i === j ? 1.5 : 0)))
        const mu = randomValues(shape[1], 950)
        // 24 samples per channel position: rows of correlated data laid out as the input shape
        const rows = correlated(24 * (size / shape[1]), A, mu, 960)
        const per = size / shape[1]
        const x = new Array<number>(rows.length)
        for (let b = 0; b < 24; b++) for (let p = 0; p < per; p++) for (let c = 0; c < shape[1]; c++) x[(b * shape[1] + c) * per + p] = rows[(b * per + p) * shape[1] + c]
        tidy(() => m.forward([tensor(x, [24, ...shape.slice(1)], { dtype: 'float64' })]))
        m.adapt()
        m.clearMemory()
        return m
      },
      { inputs: [shape], range: [-2, 2] },
    )
  })

  test('symmetricEigen: residuals and orthonormality on repeated, zero, rank-deficient and clustered spectra', () => {
    const cases: Mat[] = [
      eye(4).map((r) => r.map((v) => 2 * v)),
      [[0, 0, 0], [0, 0, 0], [0, 0, 0]],
      [[1, 1, 1], [1, 1, 1], [1, 1, 1]],
      [[0, 1], [1, 0]],
      [[4, 1e-9, 0], [1e-9, 4, 1e-9], [0, 1e-9, 4 + 1e-12]],
      meanCov(correlated(200, A4, MU4, 11), 4).cov,
      [[5]],
    ]
    for (const a of cases) {
      tidy(() => {
        const n = a.length
        const { values, vectors } = symmetricEigen(tensor(a.flat(), [n, n], { dtype: 'float64' }))
        const lam = Array.from(values.toArray())
        const V = vectors.toNested() as Mat
        for (let i = 1; i < n; i++) expect(lam[i]).toBeLessThanOrEqual(lam[i - 1])
        expect(maxAbsDiff(matmul(transpose(V), V), eye(n))).toBeLessThan(1e-13)
        const AV = matmul(a, V)
        const VL = V.map((row) => row.map((v, j) => v * lam[j]))
        const scale = Math.max(1, ...a.flat().map(Math.abs))
        expect(maxAbsDiff(AV, VL) / scale).toBeLessThan(1e-13)
      })
    }
  })

  test('state dict, defaults, options and errors', () => {
    const m = new AdaptiveWhitening([[3]])
    expect(Object.keys(m.stateDict())).toEqual(['bias', 'U.weight', 'S.weight'])
    expect(m.method).toBe('zca')
    expect(m.observationMemoryBatches).toBe(5)
    expect(m.autoAdaptEvery).toBe(0)
    expect(m.eps).toBe(1e-5)
    expect(m.outputDims([[3]])).toEqual([[3]])
    // initially the ZCA map is the identity (Q·Qᵀ with s = 1, μ = 0)
    tidy(() => {
      const x = tensor(randomValues(6, 2), [2, 3])
      const [[z], j] = m.forward([x])
      expectClose(z, x.toArray(), 1e-6)
      expectClose(j as Tensor, [0, 0], 0)
    })
    m.clearMemory()
    expectCode(() => new AdaptiveWhitening([[3]], { method: 'svd' as never }), 'ERR_ARGUMENT')
    for (const bad of [0, -1, 1.5]) expectCode(() => new AdaptiveWhitening([[3]], { observationMemoryBatches: bad }), 'ERR_ARGUMENT')
    for (const bad of [-1, 0.5]) expectCode(() => new AdaptiveWhitening([[3]], { autoAdaptEvery: bad }), 'ERR_ARGUMENT')
    for (const bad of [-1e-5, NaN, Infinity]) expectCode(() => new AdaptiveWhitening([[3]], { eps: bad }), 'ERR_ARGUMENT')
    expectCode(() => new AdaptiveWhitening([[3]], { adaptMethod: 'zca' } as never), 'ERR_ARGUMENT')
    expectCode(() => new AdaptiveWhitening([[3, 2]]), 'ERR_SHAPE')
    expectCode(() => new AdaptiveWhitening([[3], [3]]), 'ERR_SHAPE')
    expectCode(() => new AdaptiveWhitening([[3]]).adapt(), 'ERR_ARGUMENT')
    const singular = in64(() => new AdaptiveWhitening([[3]], { eps: 0 }))
    tidy(() => singular.forward([tensor([1, 2, 3], [1, 3], { dtype: 'float64' })]))
    expectCode(() => singular.adapt(), 'ERR_ARGUMENT')
    singular.clearMemory()
    tidy(() => expectCode(() => m.forward([tensor([1, 2], [1, 2])]), 'ERR_SHAPE'))
  })
})

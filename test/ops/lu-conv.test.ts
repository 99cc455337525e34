/**
 * luConvWeight (native/cpu/lu_conv.cc): W = P·L̃·Ũ and W⁻¹ = Ũ⁻¹·L̃⁻¹·Pᵀ from Glow's LU factors, against
 * plain-loop float64 references, finite-difference gradients in float64, float32 agreement, and errors.
 */
import { tensor, Tensor, tidy } from '../../lib'
import { bindingFor, NativeTensor } from '../../lib/binding'
import { luConvWeight } from '../../lib/ops/lu-conv'
import { expectClose, expectCode, gradCheck, randomValues, rng } from '../helpers'

// ---- plain-loop references (row-major number[] matrices)

function matmulRef(a: number[], b: number[], n: number): number[] {
  const c = new Array<number>(n * n).fill(0)
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) c[i * n + j] += a[i * n + k] * b[k * n + j]
  return c
}

/** A random permutation matrix (P[i][perm[i]] = 1) from a JS Fisher–Yates shuffle. */
function permutationRef(n: number, seed: number): number[] {
  const r = rng(seed)
  const perm = Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1))
    ;[perm[i], perm[j]] = [perm[j], perm[i]]
  }
  const p = new Array<number>(n * n).fill(0)
  perm.forEach((j, i) => (p[i * n + j] = 1))
  return p
}

interface Factors {
  n: number
  P: number[]
  L: number[]
  U: number[]
  logS: number[]
  sign: number[]
}

/** Random factors; L and U full (their unused triangles hold garbage the op must ignore). */
function factors(n: number, seed: number): Factors {
  return {
    n,
    P: permutationRef(n, seed),
    L: randomValues(n * n, seed + 1, -0.8, 0.8),
    U: randomValues(n * n, seed + 2, -0.8, 0.8),
    logS: randomValues(n, seed + 3, -0.7, 0.7),
    sign: randomValues(n, seed + 4).map((v) => (v < 0 ? -1 : 1)),
  }
}

/** W = P·L̃·Ũ by the definition. */
function weightRef(f: Factors): number[] {
  const { n } = f
  const Lt = new Array<number>(n * n).fill(0)
  const Ut = new Array<number>(n * n).fill(0)
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      if (j < i) Lt[i * n + j] = f.L[i * n + j]
      if (i === j) {
        Lt[i * n + j] = 1
        Ut[i * n + j] = f.sign[i] * Math.exp(f.logS[i])
      }
      if (j > i) Ut[i * n + j] = f.U[i * n + j]
    }
  return matmulRef(f.P, matmulRef(Lt, Ut, n), n)
}

/** Inverse by Gauss–Jordan elimination with partial pivoting (nothing to do with the kernel's substitution). */
function inverseRef(a0: number[], n: number): number[] {
  const a = a0.slice()
  const inv: number[] = Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0))
  for (let k = 0; k < n; k++) {
    let p = k
    for (let i = k + 1; i < n; i++) if (Math.abs(a[i * n + k]) > Math.abs(a[p * n + k])) p = i
    for (let j = 0; j < n; j++) {
      ;[a[k * n + j], a[p * n + j]] = [a[p * n + j], a[k * n + j]]
      ;[inv[k * n + j], inv[p * n + j]] = [inv[p * n + j], inv[k * n + j]]
    }
    const d = a[k * n + k]
    for (let j = 0; j < n; j++) {
      a[k * n + j] /= d
      inv[k * n + j] /= d
    }
    for (let i = 0; i < n; i++) {
      if (i === k) continue
      const m = a[i * n + k]
      for (let j = 0; j < n; j++) {
        a[i * n + j] -= m * a[k * n + j]
        inv[i * n + j] -= m * inv[k * n + j]
      }
    }
  }
  return inv
}

const dtype = 'float64' as const
const asTensors = (f: Factors, dt: 'float32' | 'float64' = dtype) => ({
  P: tensor(f.P, [f.n, f.n], { dtype: dt }),
  L: tensor(f.L, [f.n, f.n], { dtype: dt }),
  U: tensor(f.U, [f.n, f.n], { dtype: dt }),
  logS: tensor(f.logS, [f.n], { dtype: dt }),
  sign: tensor(f.sign, [f.n], { dtype: dt }),
})

describe('luConvWeight forward', () => {
  test.each([1, 2, 3, 5, 8])('W = P·L̃·Ũ for n = %i (float64, plain-loop reference)', (n) =>
    tidy(() => {
      const f = factors(n, 10 * n)
      const t = asTensors(f)
      const W = luConvWeight(t.P, t.L, t.U, t.logS, t.sign)
      expect(W.shape).toEqual([n, n])
      expect(W.dtype).toBe('float64')
      expectClose(W, weightRef(f), 1e-14)
    }),
  )

  test.each([1, 2, 3, 5, 8])('inverse: W⁻¹ for n = %i equals a Gauss–Jordan inverse of the reference W', (n) =>
    tidy(() => {
      const f = factors(n, 20 * n)
      const t = asTensors(f)
      const V = luConvWeight(t.P, t.L, t.U, t.logS, t.sign, { inverse: true })
      expectClose(V, inverseRef(weightRef(f), n), 1e-12)
      // and it really is the inverse of the op's own W
      const W = luConvWeight(t.P, t.L, t.U, t.logS, t.sign)
      expectClose(V.matmul(W), Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)), 1e-13)
    }),
  )

  test('the unused triangles of L and U (and L̃ diagonal) are never read', () =>
    tidy(() => {
      const n = 4
      const f = factors(n, 77)
      const g = { ...f, L: f.L.map((v, k) => (Math.floor(k / n) <= k % n ? 100 + v : v)), U: f.U.map((v, k) => (Math.floor(k / n) >= k % n ? -50 : v)) }
      for (const inverse of [false, true]) {
        const a = asTensors(f)
        const b = asTensors(g)
        expectClose(luConvWeight(b.P, b.L, b.U, b.logS, b.sign, { inverse }), luConvWeight(a.P, a.L, a.U, a.logS, a.sign, { inverse }).toArray(), 0)
      }
    }),
  )

  test('float32 agrees with float64 within 1e-5 (both directions)', () =>
    tidy(() => {
      const f = factors(6, 5)
      for (const inverse of [false, true]) {
        const a = asTensors(f, 'float32')
        const b = asTensors(f, 'float64')
        const W32 = luConvWeight(a.P, a.L, a.U, a.logS, a.sign, { inverse })
        expect(W32.dtype).toBe('float32')
        // the reference is the float64 op on the float32-rounded inputs
        const r = asTensors({ ...f, L: Array.from(a.L.toArray()), U: Array.from(a.U.toArray()), logS: Array.from(a.logS.toArray()) })
        expectClose(W32, luConvWeight(r.P, r.L, r.U, r.logS, r.sign, { inverse }).toArray(), 1e-6)
        expectClose(W32, luConvWeight(b.P, b.L, b.U, b.logS, b.sign, { inverse }).toArray(), 1e-5)
      }
    }),
  )
})

describe('luConvWeight backward (finite differences, float64)', () => {
  test.each([
    [1, false],
    [3, false],
    [5, false],
    [1, true],
    [3, true],
    [5, true],
  ])('n = %i, inverse = %s: gradients into L, U and logS', (n, inverse) => {
    const f = factors(n, 100 + n)
    const P = tensor(f.P, [n, n], { dtype })
    const sign = tensor(f.sign, [n], { dtype })
    gradCheck(
      (L: Tensor, U: Tensor, logS: Tensor) => luConvWeight(P, L, U, logS, sign, { inverse }),
      [
        { values: f.L, shape: [n, n] },
        { values: f.U, shape: [n, n] },
        { values: f.logS, shape: [n] },
      ],
    )
    P.dispose()
    sign.dispose()
  })

  test('gradients vanish off the used triangles; sign and P get none', () =>
    tidy(() => {
      const n = 4
      const f = factors(n, 9)
      for (const inverse of [false, true]) {
        const t = asTensors(f)
        t.L.requiresGrad = true
        t.U.requiresGrad = true
        t.logS.requiresGrad = true
        luConvWeight(t.P, t.L, t.U, t.logS, t.sign, { inverse }).mul(tensor(randomValues(n * n, 3), [n, n], { dtype })).sum().backward()
        const gL = t.L.grad!.toArray()
        const gU = t.U.grad!.toArray()
        for (let i = 0; i < n; i++)
          for (let j = 0; j < n; j++) {
            if (j >= i) expect(gL[i * n + j]).toBe(0)
            else expect(gL[i * n + j]).not.toBe(0)
            if (j <= i) expect(gU[i * n + j]).toBe(0)
            else expect(gU[i * n + j]).not.toBe(0)
          }
        expect(t.P.grad).toBeNull()
        expect(t.sign.grad).toBeNull()
      }
    }),
  )
})

describe('luConvWeight errors', () => {
  const f = factors(3, 1)

  test('shapes: ERR_SHAPE', () =>
    tidy(() => {
      const t = asTensors(f)
      expectCode(() => luConvWeight(tensor([1, 0, 0, 1, 0, 0], [2, 3], { dtype }), t.L, t.U, t.logS, t.sign), 'ERR_SHAPE')
      expectCode(() => luConvWeight(t.P, tensor([1, 2, 3, 4], [2, 2], { dtype }), t.U, t.logS, t.sign), 'ERR_SHAPE')
      expectCode(() => luConvWeight(t.P, t.L, t.U.reshape([9]), t.logS, t.sign), 'ERR_SHAPE')
      expectCode(() => luConvWeight(t.P, t.L, t.U, tensor([0, 0], [2], { dtype }), t.sign), 'ERR_SHAPE')
      expectCode(() => luConvWeight(t.P, t.L, t.U, t.logS, t.sign.reshape([3, 1])), 'ERR_SHAPE')
    }))

  test('not a permutation matrix, or a sign other than ±1: ERR_ARGUMENT', () =>
    tidy(() => {
      const t = asTensors(f)
      const bad = [
        [1, 0, 0, 0, 1, 0, 0, 1, 0], // two 1s in a column
        [1, 1, 0, 0, 0, 1, 0, 0, 0], // two 1s in a row
        [1, 0, 0, 0, 0.5, 0, 0, 0, 1], // not 0/1
        [1, 0, 0, 0, 0, 0, 0, 0, 1], // an empty row
      ]
      for (const p of bad) expectCode(() => luConvWeight(tensor(p, [3, 3], { dtype }), t.L, t.U, t.logS, t.sign), 'ERR_ARGUMENT')
      expectCode(() => luConvWeight(t.P, t.L, t.U, t.logS, tensor([1, 0, -1], [3], { dtype })), 'ERR_ARGUMENT')
      expectCode(() => luConvWeight(t.P, t.L, t.U, t.logS, tensor([1, 2, -1], [3], { dtype }), { inverse: true }), 'ERR_ARGUMENT')
    }))

  test('dtypes, options, non-tensors and disposed tensors', () =>
    tidy(() => {
      const t = asTensors(f)
      expectCode(() => luConvWeight(t.P, t.L.to({ dtype: 'float32' }), t.U, t.logS, t.sign), 'ERR_DTYPE')
      expectCode(() => luConvWeight(t.P, t.L, t.U, t.logS, t.sign, { inverse: 1 as unknown as boolean }), 'ERR_ARGUMENT')
      expectCode(() => luConvWeight(t.P, t.L, t.U, t.logS, t.sign, null as unknown as object), 'ERR_ARGUMENT')
      expectCode(() => luConvWeight(t.P, [1, 2] as unknown as Tensor, t.U, t.logS, t.sign), 'ERR_ARGUMENT')
      const gone = tensor(f.U, [3, 3], { dtype })
      gone.dispose()
      expectCode(() => luConvWeight(t.P, t.L, gone, t.logS, t.sign), 'ERR_DISPOSED')
    }))

  test('inverse of a weight whose diagonal underflows: ERR_ARGUMENT', () =>
    tidy(() => {
      const t = asTensors({ ...f, logS: [0, -1e4, 0] })
      expectCode(() => luConvWeight(t.P, t.L, t.U, t.logS, t.sign, { inverse: true }), 'ERR_ARGUMENT')
    }))

  test('the native entry points re-check shapes and dtypes themselves (no crash)', () =>
    tidy(() => {
      const N = bindingFor<{
        luConvWeight(...a: unknown[]): NativeTensor
        luConvWeightBackward(...a: unknown[]): NativeTensor[]
      }>()
      const t = asTensors(f)
      const h = (x: Tensor) => x.handle
      expectCode(() => N.luConvWeight(h(t.P), h(t.L), h(t.U.reshape([9])), h(t.logS), h(t.sign), false), 'ERR_SHAPE')
      expectCode(() => N.luConvWeight(h(t.P), h(t.L), h(t.U), h(t.logS.to({ dtype: 'float32' })), h(t.sign), false), 'ERR_DTYPE')
      expectCode(() => N.luConvWeight(h(t.P), h(t.L), h(t.U), h(t.logS), h(t.sign)), 'ERR_ARGUMENT')
      const W = luConvWeight(t.P, t.L, t.U, t.logS, t.sign)
      expectCode(() => N.luConvWeightBackward(h(tensor([1, 2], [2], { dtype })), h(t.P), h(t.L), h(t.U), h(t.logS), h(t.sign), h(W), false), 'ERR_SHAPE')
      expectCode(() => N.luConvWeightBackward(h(W), h(t.P), h(t.L), h(t.U), h(t.logS), h(t.sign), h(t.logS), true), 'ERR_SHAPE')
    }))
})

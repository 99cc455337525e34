import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, gradCheck, randomValues } from '../helpers'

const { linalg } = ops

// ---- plain-loop float64 references, written independently of the kernels (row-major number[] matrices)

function matmulRef(a: number[], b: number[], m: number, k: number, n: number): number[] {
  const c = new Array<number>(m * n).fill(0)
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) c[i * n + j] += a[i * k + p] * b[p * n + j]
  return c
}
function transposeRef(a: number[], m: number, n: number): number[] {
  const t = new Array<number>(m * n)
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]
  return t
}
const eyeRef = (n: number): number[] => Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0))

/** Determinant by cofactor expansion along the first row (small n only). */
function detCofactor(a: number[], n: number): number {
  if (n === 0) return 1
  if (n === 1) return a[0]
  let d = 0
  for (let c = 0; c < n; c++) {
    const minor: number[] = []
    for (let i = 1; i < n; i++) for (let j = 0; j < n; j++) if (j !== c) minor.push(a[i * n + j])
    d += (c % 2 === 0 ? 1 : -1) * a[c] * detCofactor(minor, n - 1)
  }
  return d
}

/** log|det| and sign by Gaussian elimination with complete pivoting (a different pivoting from the kernel's). */
function slogdetGauss(a0: number[], n: number): { sign: number; logabsdet: number } {
  const a = a0.slice()
  let sign = 1
  let lad = 0
  for (let k = 0; k < n; k++) {
    let pi = k
    let pj = k
    for (let i = k; i < n; i++) for (let j = k; j < n; j++) if (Math.abs(a[i * n + j]) > Math.abs(a[pi * n + pj])) [pi, pj] = [i, j]
    if (a[pi * n + pj] === 0) return { sign: 0, logabsdet: -Infinity }
    if (pi !== k) {
      for (let j = 0; j < n; j++) [a[k * n + j], a[pi * n + j]] = [a[pi * n + j], a[k * n + j]]
      sign = -sign
    }
    if (pj !== k) {
      for (let i = 0; i < n; i++) [a[i * n + k], a[i * n + pj]] = [a[i * n + pj], a[i * n + k]]
      sign = -sign
    }
    const p = a[k * n + k]
    if (p < 0) sign = -sign
    lad += Math.log(Math.abs(p))
    for (let i = k + 1; i < n; i++) {
      const f = a[i * n + k] / p
      for (let j = k; j < n; j++) a[i * n + j] -= f * a[k * n + j]
    }
  }
  return { sign, logabsdet: lad }
}

/** Inverse by Gauss–Jordan elimination on [A | I] with partial pivoting. */
function inverseGaussJordan(a0: number[], n: number): number[] {
  const w = 2 * n
  const m: number[] = []
  for (let i = 0; i < n; i++) for (let j = 0; j < w; j++) m.push(j < n ? a0[i * n + j] : j - n === i ? 1 : 0)
  for (let k = 0; k < n; k++) {
    let p = k
    for (let i = k + 1; i < n; i++) if (Math.abs(m[i * w + k]) > Math.abs(m[p * w + k])) p = i
    for (let j = 0; j < w; j++) [m[k * w + j], m[p * w + j]] = [m[p * w + j], m[k * w + j]]
    const d = m[k * w + k]
    for (let j = 0; j < w; j++) m[k * w + j] /= d
    for (let i = 0; i < n; i++) {
      if (i === k) continue
      const f = m[i * w + k]
      for (let j = 0; j < w; j++) m[i * w + j] -= f * m[k * w + j]
    }
  }
  const inv: number[] = []
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) inv.push(m[i * w + n + j])
  return inv
}

/** Solution of op·X = B by substitution, column by column, reading only the given triangle of A. */
function solveTriRef(A: number[], B: number[], n: number, k: number, upper: boolean, left: boolean, unit: boolean): number[] {
  const tri = (i: number, j: number): number => {
    if (i === j) return unit ? 1 : A[i * n + j]
    return (upper ? j > i : j < i) ? A[i * n + j] : 0
  }
  if (!left) {
    // X·A = B  <=>  Aᵀ·Xᵀ = Bᵀ: solve with the transposed triangle
    const At = transposeRef(
      Array.from({ length: n * n }, (_, idx) => tri(Math.floor(idx / n), idx % n)),
      n,
      n,
    )
    return transposeRef(solveTriRef(At, transposeRef(B, k, n), n, k, !upper, true, false), n, k)
  }
  const X = new Array<number>(n * k).fill(0)
  for (let c = 0; c < k; c++) {
    const order = upper ? Array.from({ length: n }, (_, s) => n - 1 - s) : Array.from({ length: n }, (_, s) => s)
    for (const i of order) {
      let s = B[i * k + c]
      for (let j = 0; j < n; j++) if (j !== i) s -= tri(i, j) * X[j * k + c]
      X[i * k + c] = s / tri(i, i)
    }
  }
  return X
}

/** Reduced QR by modified Gram–Schmidt (positive diagonal of R). */
function qrGramSchmidt(a: number[], m: number, n: number): { Q: number[]; R: number[] } {
  const Q = a.slice()
  const R = new Array<number>(n * n).fill(0)
  for (let j = 0; j < n; j++) {
    let norm = 0
    for (let i = 0; i < m; i++) norm += Q[i * n + j] ** 2
    norm = Math.sqrt(norm)
    R[j * n + j] = norm
    for (let i = 0; i < m; i++) Q[i * n + j] /= norm
    for (let c = j + 1; c < n; c++) {
      let d = 0
      for (let i = 0; i < m; i++) d += Q[i * n + j] * Q[i * n + c]
      R[j * n + c] = d
      for (let i = 0; i < m; i++) Q[i * n + c] -= d * Q[i * n + j]
    }
  }
  return { Q, R }
}

const arr = (t: Tensor): number[] => Array.from(t.toArray())
/** The b-th matrix of a batch, as a number[]. */
const slice = (values: number[], b: number, size: number): number[] => values.slice(b * size, (b + 1) * size)

/**
 * A well-conditioned matrix whose partial pivoting order is unique with a wide margin: rows of a column
 * diagonally dominant matrix, permuted. Elimination keeps column dominance, so each pivot is the permuted
 * diagonal entry, far ahead of the others, and small perturbations cannot change P.
 */
function pivotStableMatrix(n: number, seed: number): number[] {
  const r = randomValues(n * n, seed)
  const B = r.map((v, i) => (Math.floor(i / n) === i % n ? (v < 0 ? -1 : 1) * (2 + Math.abs(v)) : v / n))
  const perm = Array.from({ length: n }, (_, i) => (i + 1) % n) // a fixed non-trivial permutation (a cyclic shift)
  const A: number[] = []
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A.push(B[perm[i] * n + j])
  return A
}

const sizes = [1, 2, 5, 17]

describe('lu', () => {
  test.each(sizes)('n = %i: P·L·U = A, the factors have their structure and match Gaussian elimination in the test', (n) => {
    tidy(() => {
      const values = randomValues(n * n, 100 + n)
      const { P, L, U } = linalg.lu(tensor(values, [n, n], { dtype: 'float64' }))
      for (const t of [P, L, U]) expect(t.shape).toEqual([n, n])
      const p = arr(P)
      const l = arr(L)
      const u = arr(U)
      expectClose(matmulRef(p, matmulRef(l, u, n, n, n), n, n, n), values, 1e-14)
      for (let i = 0; i < n; i++) {
        expect(p.slice(i * n, i * n + n).filter((v) => v === 1).length).toBe(1) // a permutation matrix
        expect(p.slice(i * n, i * n + n).filter((v) => v !== 0 && v !== 1).length).toBe(0)
        expect(l[i * n + i]).toBe(1)
        for (let j = 0; j < n; j++) {
          if (j > i) expect(l[i * n + j]).toBe(0)
          if (j < i) {
            expect(u[i * n + j]).toBe(0)
            expect(Math.abs(l[i * n + j])).toBeLessThanOrEqual(1) // partial pivoting bounds the multipliers
          }
        }
      }
      // reference: Doolittle elimination with partial pivoting, written here
      const a = values.slice()
      const perm = Array.from({ length: n }, (_, i) => i)
      for (let k = 0; k < n; k++) {
        let q = k
        for (let i = k + 1; i < n; i++) if (Math.abs(a[i * n + k]) > Math.abs(a[q * n + k])) q = i
        for (let j = 0; j < n; j++) [a[k * n + j], a[q * n + j]] = [a[q * n + j], a[k * n + j]]
        ;[perm[k], perm[q]] = [perm[q], perm[k]]
        for (let i = k + 1; i < n; i++) {
          a[i * n + k] /= a[k * n + k]
          for (let j = k + 1; j < n; j++) a[i * n + j] -= a[i * n + k] * a[k * n + j]
        }
      }
      const pRef = new Array<number>(n * n).fill(0)
      perm.forEach((r, i) => (pRef[r * n + i] = 1))
      expect(p).toEqual(pRef)
      expectClose(l, a.map((v, idx) => (Math.floor(idx / n) > idx % n ? v : Math.floor(idx / n) === idx % n ? 1 : 0)), 1e-13)
      expectClose(u, a.map((v, idx) => (Math.floor(idx / n) <= idx % n ? v : 0)), 1e-13)
    })
  })

  test('float32 agrees with float64 on the same input, and pivots the same way', () => {
    tidy(() => {
      const n = 17
      const values = randomValues(n * n, 7).map(Math.fround)
      const r64 = linalg.lu(tensor(values, [n, n], { dtype: 'float64' }))
      const r32 = linalg.lu(tensor(values, [n, n], { dtype: 'float32' }))
      expect(r32.L.dtype).toBe('float32')
      expect(arr(r32.P)).toEqual(arr(r64.P))
      expectClose(r32.L, r64.L.toArray(), 1e-5)
      expectClose(r32.U, r64.U.toArray(), 1e-5)
    })
  })

  test('a batch (2, 3, 4, 4) factors each matrix as the unbatched call does', () => {
    tidy(() => {
      const values = randomValues(2 * 3 * 16, 11)
      const batched = linalg.lu(tensor(values, [2, 3, 4, 4], { dtype: 'float64' }))
      expect(batched.U.shape).toEqual([2, 3, 4, 4])
      for (let b = 0; b < 6; b++) {
        const one = linalg.lu(tensor(slice(values, b, 16), [4, 4], { dtype: 'float64' }))
        for (const k of ['P', 'L', 'U'] as const) expect(slice(arr(batched[k]), b, 16)).toEqual(arr(one[k]))
      }
    })
  })

  test('singular matrices still factor, with a zero pivot in U', () => {
    tidy(() => {
      for (const [values, n] of [
        [[1, 2, 2, 4], 2],
        [[0, 1, 2, 0, 3, 4, 0, 5, 6], 3], // a zero column
        [[0, 0, 0, 0], 2],
      ] as [number[], number][]) {
        const { P, L, U } = linalg.lu(tensor(values, [n, n], { dtype: 'float64' }))
        const u = arr(U)
        expect(Array.from({ length: n }, (_, i) => u[i * n + i]).some((d) => d === 0)).toBe(true)
        expectClose(matmulRef(arr(P), matmulRef(arr(L), u, n, n, n), n, n, n), values, 1e-15)
      }
    })
  })

  test('gradient of a scalar built from L and U matches finite differences (pivoting included)', () => {
    for (const n of [3, 4, 5]) {
      const values = pivotStableMatrix(n, 30 + n)
      tidy(() => {
        // the construction must make P non-trivial, so that the permutation path is exercised
        const P = linalg.lu(tensor(values, [n, n], { dtype: 'float64' })).P
        expect(arr(P)).not.toEqual(eyeRef(n))
      })
      const w1 = tensor(randomValues(n * n, 1), [n, n], { dtype: 'float64' })
      const w2 = tensor(randomValues(n * n, 2), [n, n], { dtype: 'float64' })
      gradCheck((a) => {
        const { L, U } = linalg.lu(a)
        return ops.add(L.mul(w1).sum(), U.mul(w2).sum())
      }, [{ values, shape: [n, n] }])
      gradCheck((a) => linalg.lu(a).L, [{ values, shape: [n, n] }]) // U receives no gradient
      gradCheck((a) => linalg.lu(a).U, [{ values, shape: [n, n] }]) // L receives no gradient
    }
  })

  test('gradient through a batch matches finite differences', () => {
    const values = [...pivotStableMatrix(4, 3), ...pivotStableMatrix(4, 4)]
    gradCheck((a) => {
      const { L, U } = linalg.lu(a)
      return ops.add(L.sum(), U.square().sum())
    }, [{ values, shape: [2, 4, 4] }])
  })

  test('backward through a singular matrix is refused', () => {
    tidy(() => {
      const A = tensor([1, 2, 2, 4], [2, 2], { dtype: 'float64', requiresGrad: true })
      const { U } = linalg.lu(A)
      expectCode(() => U.sum().backward(), 'ERR_ARGUMENT')
    })
  })
})

describe('slogdet and det', () => {
  test.each(sizes)('n = %i: matches the reference determinant', (n) => {
    tidy(() => {
      const values = randomValues(n * n, 200 + n)
      const { sign, logabsdet } = linalg.slogdet(tensor(values, [n, n], { dtype: 'float64' }))
      expect(sign.shape).toEqual([])
      expect(logabsdet.shape).toEqual([])
      const ref = slogdetGauss(values, n)
      expect(sign.item()).toBe(ref.sign)
      expectClose([logabsdet.item()], [ref.logabsdet], 1e-13)
      if (n <= 5) {
        const d = detCofactor(values, n)
        expect(sign.item()).toBe(Math.sign(d))
        expectClose([logabsdet.item()], [Math.log(Math.abs(d))], 1e-13)
        expectClose(linalg.det(tensor(values, [n, n], { dtype: 'float64' })), [d], 1e-13)
      }
    })
  })

  test('log|det| stays finite where the determinant overflows', () => {
    tidy(() => {
      const n = 17
      const values = randomValues(n * n, 5).map((v) => v * 1e30)
      const { logabsdet } = linalg.slogdet(tensor(values, [n, n], { dtype: 'float64' }))
      expectClose([logabsdet.item()], [slogdetGauss(values, n).logabsdet], 1e-13)
      expect(logabsdet.item()).toBeGreaterThan(Math.log(Number.MAX_VALUE))
    })
  })

  test('a batch (3, 2, 5, 5) gives shape (3, 2) and float32 agrees with float64', () => {
    tidy(() => {
      const values = randomValues(6 * 25, 21).map(Math.fround)
      const r64 = linalg.slogdet(tensor(values, [3, 2, 5, 5], { dtype: 'float64' }))
      const r32 = linalg.slogdet(tensor(values, [3, 2, 5, 5], { dtype: 'float32' }))
      expect(r64.sign.shape).toEqual([3, 2])
      expect(r64.logabsdet.shape).toEqual([3, 2])
      const ref = Array.from({ length: 6 }, (_, b) => slogdetGauss(slice(values, b, 25), 5))
      expect(arr(r64.sign)).toEqual(ref.map((r) => r.sign))
      expectClose(r64.logabsdet, ref.map((r) => r.logabsdet), 1e-13)
      expect(arr(r32.sign)).toEqual(arr(r64.sign))
      expectClose(r32.logabsdet, r64.logabsdet.toArray(), 1e-5)
    })
  })

  test('singular matrices give sign 0 and log|det| = -Infinity; the empty matrix has determinant 1', () => {
    tidy(() => {
      const { sign, logabsdet } = linalg.slogdet(tensor([1, 2, 3, 2, 4, 6, 0, 1, 5], [3, 3], { dtype: 'float64' }))
      expect(sign.item()).toBe(0)
      expect(logabsdet.item()).toBe(-Infinity)
      const e = linalg.slogdet(tensor([], [0, 0], { dtype: 'float64' }))
      expect([e.sign.item(), e.logabsdet.item()]).toEqual([1, 0])
    })
  })

  test('gradients of logabsdet and det match finite differences', () => {
    gradCheck((a) => linalg.slogdet(a).logabsdet, [{ values: randomValues(25, 41), shape: [5, 5] }])
    gradCheck((a) => linalg.slogdet(a).logabsdet, [{ values: randomValues(2 * 3 * 9, 42), shape: [2, 3, 3, 3] }])
    gradCheck((a) => linalg.det(a), [{ values: randomValues(16, 43), shape: [4, 4] }])
  })

  test('backward of logabsdet through a singular matrix is refused', () => {
    tidy(() => {
      const A = tensor([1, 2, 2, 4], [2, 2], { dtype: 'float64', requiresGrad: true })
      expectCode(() => linalg.slogdet(A).logabsdet.backward(), 'ERR_ARGUMENT')
    })
  })
})

describe('inverse', () => {
  test.each(sizes)('n = %i: A·A⁻¹ = A⁻¹·A = I and it matches Gauss–Jordan in the test', (n) => {
    tidy(() => {
      const values = randomValues(n * n, 300 + n)
      const Y = linalg.inverse(tensor(values, [n, n], { dtype: 'float64' }))
      expect(Y.shape).toEqual([n, n])
      const y = arr(Y)
      expectClose(matmulRef(values, y, n, n, n), eyeRef(n), 1e-12)
      expectClose(matmulRef(y, values, n, n, n), eyeRef(n), 1e-12)
      expectClose(y, inverseGaussJordan(values, n), 1e-12)
    })
  })

  test('a batch (2, 2, 3, 3) and float32 agreement', () => {
    tidy(() => {
      const values = randomValues(4 * 9, 17).map(Math.fround)
      const y64 = linalg.inverse(tensor(values, [2, 2, 3, 3], { dtype: 'float64' }))
      const y32 = linalg.inverse(tensor(values, [2, 2, 3, 3], { dtype: 'float32' }))
      expect(y64.shape).toEqual([2, 2, 3, 3])
      expectClose(y64, Array.from({ length: 4 }, (_, b) => inverseGaussJordan(slice(values, b, 9), 3)).flat(), 1e-12)
      expect(y32.dtype).toBe('float32')
      expectClose(y32, y64.toArray(), 1e-5)
    })
  })

  test('singular matrices are refused with ERR_ARGUMENT, naming the matrix of a batch', () => {
    tidy(() => {
      expectCode(() => linalg.inverse(tensor([1, 2, 2, 4], [2, 2], { dtype: 'float64' })), 'ERR_ARGUMENT')
      expectCode(() => linalg.inverse(tensor([0, 0, 0, 0], [2, 2])), 'ERR_ARGUMENT')
      const batch = tensor([1, 0, 0, 1, 1, 2, 2, 4], [2, 2, 2], { dtype: 'float64' })
      expect(() => linalg.inverse(batch)).toThrow(/matrix is singular \(matrix 1 of the batch\)/)
    })
  })

  test('gradient matches finite differences', () => {
    const n = 4
    const values = randomValues(n * n, 51).map((v, i) => (i % (n + 1) === 0 ? v + 3 : v))
    gradCheck((a) => linalg.inverse(a), [{ values, shape: [n, n] }])
    gradCheck((a) => linalg.inverse(a), [{ values: randomValues(2 * 9, 52).map((v, i) => (i % 9) % 4 === 0 ? v + 2 : v), shape: [2, 3, 3] }])
  })
})

describe('solveTriangular', () => {
  const combos: [boolean, boolean, boolean][] = []
  for (const upper of [true, false]) for (const left of [true, false]) for (const unit of [false, true]) combos.push([upper, left, unit])

  test.each(combos)('upper = %p, left = %p, unitriangular = %p: matches substitution, reads only its triangle', (upper, left, unit) => {
    tidy(() => {
      const n = 5
      const k = 3
      // a full matrix: the other triangle (and, when unitriangular, the diagonal) must be ignored
      const A = randomValues(n * n, 60).map((v, i) => (i % (n + 1) === 0 ? v + 2 : v))
      const bShape = left ? [n, k] : [k, n]
      const B = randomValues(n * k, 61)
      const X = linalg.solveTriangular(tensor(A, [n, n], { dtype: 'float64' }), tensor(B, bShape, { dtype: 'float64' }), { upper, left, unitriangular: unit })
      expect(X.shape).toEqual(bShape)
      expectClose(X, solveTriRef(A, B, n, k, upper, left, unit), 1e-13)
      const X32 = linalg.solveTriangular(tensor(A.map(Math.fround), [n, n], { dtype: 'float32' }), tensor(B.map(Math.fround), bShape, { dtype: 'float32' }), { upper, left, unitriangular: unit })
      expectClose(X32, solveTriRef(A.map(Math.fround), B.map(Math.fround), n, k, upper, left, unit), 1e-6)
    })
  })

  test.each(combos)('upper = %p, left = %p, unitriangular = %p: gradients for A and B match finite differences', (upper, left, unit) => {
    const n = 4
    const k = 3
    const A = randomValues(n * n, 70).map((v, i) => (i % (n + 1) === 0 ? v + 2 : v))
    gradCheck(
      (a, b) => linalg.solveTriangular(a, b, { upper, left, unitriangular: unit }),
      [
        { values: A, shape: [n, n] },
        { values: randomValues(n * k, 71), shape: left ? [n, k] : [k, n] },
      ],
    )
  })

  test('the gradient of A is zero outside the triangle that was read', () => {
    tidy(() => {
      const A = tensor(randomValues(9, 3).map((v, i) => (i % 4 === 0 ? v + 2 : v)), [3, 3], { dtype: 'float64', requiresGrad: true })
      const B = tensor(randomValues(6, 4), [3, 2], { dtype: 'float64' })
      linalg.solveTriangular(A, B, { upper: true, unitriangular: true }).sum().backward()
      const g = arr(A.grad as Tensor)
      for (let i = 0; i < 3; i++) for (let j = 0; j <= i; j++) expect(g[i * 3 + j]).toBe(0)
      expect(g[1]).not.toBe(0)
    })
  })

  test('batched (2, 3, 4, 4) with B (2, 3, 4, 2) matches the unbatched solves; gradients through the batch', () => {
    tidy(() => {
      const A = randomValues(6 * 16, 80).map((v, i) => ((i % 16) % 5 === 0 ? v + 2 : v))
      const B = randomValues(6 * 8, 81)
      const X = linalg.solveTriangular(tensor(A, [2, 3, 4, 4], { dtype: 'float64' }), tensor(B, [2, 3, 4, 2], { dtype: 'float64' }), { upper: false })
      expectClose(X, Array.from({ length: 6 }, (_, b) => solveTriRef(slice(A, b, 16), slice(B, b, 8), 4, 2, false, true, false)).flat(), 1e-13)
    })
    gradCheck((a, b) => linalg.solveTriangular(a, b, { upper: true, left: false }), [
      { values: randomValues(2 * 9, 82).map((v, i) => ((i % 9) % 4 === 0 ? v + 2 : v)), shape: [2, 3, 3] },
      { values: randomValues(2 * 6, 83), shape: [2, 2, 3] },
    ])
  })

  test('bad shapes, dtypes, options and a zero diagonal are refused with their codes', () => {
    tidy(() => {
      const A = tensor(randomValues(9, 1).map((v) => v + 2), [3, 3], { dtype: 'float64' })
      const B = tensor(randomValues(6, 2), [3, 2], { dtype: 'float64' })
      expectCode(() => linalg.solveTriangular(A, tensor([1, 2, 3, 4, 5, 6], [2, 3], { dtype: 'float64' }), { upper: true }), 'ERR_SHAPE')
      expectCode(() => linalg.solveTriangular(A, B, { upper: true, left: false }), 'ERR_SHAPE') // right needs (k, 3)
      expectCode(() => linalg.solveTriangular(tensor([1, 2, 3, 4, 5, 6], [2, 3], { dtype: 'float64' }), B, { upper: true }), 'ERR_SHAPE')
      expectCode(() => linalg.solveTriangular(A, tensor([1, 2, 3], [3], { dtype: 'float64' }), { upper: true }), 'ERR_SHAPE')
      expectCode(() => linalg.solveTriangular(A, tensor(randomValues(12, 3), [2, 3, 2], { dtype: 'float64' }), { upper: true }), 'ERR_SHAPE')
      expectCode(() => linalg.solveTriangular(A, tensor(randomValues(6, 2), [3, 2], { dtype: 'float32' }), { upper: true }), 'ERR_DTYPE')
      expectCode(() => linalg.solveTriangular(A, B, {} as { upper: boolean }), 'ERR_ARGUMENT')
      expectCode(() => linalg.solveTriangular(A, B, undefined as unknown as { upper: boolean }), 'ERR_ARGUMENT')
      expectCode(() => linalg.solveTriangular(A, B, { upper: true, left: 1 as unknown as boolean }), 'ERR_ARGUMENT')
      const zeroDiag = tensor([1, 2, 3, 0, 0, 4, 0, 0, 5], [3, 3], { dtype: 'float64' })
      expectCode(() => linalg.solveTriangular(zeroDiag, B, { upper: true }), 'ERR_ARGUMENT')
      // unitriangular never reads the diagonal, so the same matrix is fine then
      expect(linalg.solveTriangular(zeroDiag, B, { upper: true, unitriangular: true }).shape).toEqual([3, 2])
    })
  })
})

describe('qr', () => {
  const shapes: [number, number][] = [[1, 1], [2, 2], [5, 5], [17, 17], [7, 3], [17, 5], [4, 1]]

  test.each(shapes)('(%i, %i): Q·R = A, QᵀQ = I, R upper, and it matches Gram–Schmidt up to column signs', (m, n) => {
    tidy(() => {
      const values = randomValues(m * n, 400 + m * 31 + n)
      const { Q, R } = linalg.qr(tensor(values, [m, n], { dtype: 'float64' }))
      expect(Q.shape).toEqual([m, n])
      expect(R.shape).toEqual([n, n])
      const q = arr(Q)
      const r = arr(R)
      expectClose(matmulRef(q, r, m, n, n), values, 1e-14)
      expectClose(matmulRef(transposeRef(q, m, n), q, n, m, n), eyeRef(n), 1e-14)
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(r[i * n + j]).toBe(0)
      const ref = qrGramSchmidt(values, m, n)
      const s = Array.from({ length: n }, (_, j) => Math.sign(r[j * n + j]))
      expectClose(q.map((v, idx) => v * s[idx % n]), ref.Q, 1e-12)
      expectClose(r.map((v, idx) => v * s[Math.floor(idx / n)]), ref.R, 1e-12)
    })
  })

  test('sign convention: R[j][j] has the sign opposite to the pivot it replaced (LAPACK, torch)', () => {
    tidy(() => {
      const a = linalg.qr(tensor([3, 4], [2, 1], { dtype: 'float64' }))
      expectClose(a.Q, [-0.6, -0.8], 1e-15)
      expectClose(a.R, [-5], 1e-15)
      const b = linalg.qr(tensor([-3, 4], [2, 1], { dtype: 'float64' }))
      expectClose(b.R, [5], 1e-15)
      // a column that is already a multiple of e1 is not reflected
      const c = linalg.qr(tensor([-2, 1, 0, 3], [2, 2], { dtype: 'float64' }))
      expectClose(c.Q, [1, 0, 0, 1], 1e-15)
      expectClose(c.R, [-2, 1, 0, 3], 1e-15)
    })
  })

  test('a batch (2, 3, 6, 4) matches the unbatched calls; float32 agrees with float64', () => {
    tidy(() => {
      const values = randomValues(6 * 24, 90).map(Math.fround)
      const r64 = linalg.qr(tensor(values, [2, 3, 6, 4], { dtype: 'float64' }))
      const r32 = linalg.qr(tensor(values, [2, 3, 6, 4], { dtype: 'float32' }))
      expect(r64.Q.shape).toEqual([2, 3, 6, 4])
      expect(r64.R.shape).toEqual([2, 3, 4, 4])
      for (let b = 0; b < 6; b++) {
        const one = linalg.qr(tensor(slice(values, b, 24), [6, 4], { dtype: 'float64' }))
        expect(slice(arr(r64.Q), b, 24)).toEqual(arr(one.Q))
        expect(slice(arr(r64.R), b, 16)).toEqual(arr(one.R))
      }
      expectClose(r32.Q, r64.Q.toArray(), 1e-5)
      expectClose(r32.R, r64.R.toArray(), 1e-5)
    })
  })

  test('gradients of Q, R and both together match finite differences (tall and square)', () => {
    const tall = { values: randomValues(15, 95), shape: [5, 3] }
    const wq = tensor(randomValues(15, 96), [5, 3], { dtype: 'float64' })
    const wr = tensor(randomValues(9, 97), [3, 3], { dtype: 'float64' })
    gradCheck((a) => {
      const { Q, R } = linalg.qr(a)
      return ops.add(Q.mul(wq).sum(), R.mul(wr).sum())
    }, [tall])
    gradCheck((a) => linalg.qr(a).Q, [tall])
    gradCheck((a) => linalg.qr(a).R, [tall])
    gradCheck((a) => linalg.qr(a).Q, [{ values: randomValues(16, 98), shape: [4, 4] }])
    gradCheck((a) => linalg.qr(a).R, [{ values: randomValues(2 * 12, 99), shape: [2, 4, 3] }])
  })

  test('wide matrices are refused; backward through a rank-deficient matrix is refused', () => {
    tidy(() => {
      expectCode(() => linalg.qr(tensor(randomValues(6, 1), [2, 3])), 'ERR_SHAPE')
      const A = tensor([1, 2, 2, 4, 3, 6], [3, 2], { dtype: 'float64', requiresGrad: true })
      const { R } = linalg.qr(A)
      // rank 1 in exact arithmetic, but R[1][1] comes out at rounding level (relative to ‖A‖ ≈ 8.4), not 0, so
      // only an exactly zero pivot can be detected: build one
      expect(Math.abs(arr(R)[3])).toBeLessThan(1e-14)
      const B = tensor([1, 0, 0, 0, 0, 0], [3, 2], { dtype: 'float64', requiresGrad: true })
      expectCode(() => linalg.qr(B).R.sum().backward(), 'ERR_ARGUMENT')
    })
  })
})

describe('float32 gradients agree with float64 ones', () => {
  const cases: [string, number[], (a: Tensor) => Tensor][] = [
    ['lu', [4, 4], (a) => { const { L, U } = linalg.lu(a); return ops.add(L.sum(), U.square().sum()) }],
    ['slogdet', [2, 5, 5], (a) => linalg.slogdet(a).logabsdet.sum()],
    ['inverse', [4, 4], (a) => linalg.inverse(a).square().sum()],
    ['solveTriangular', [5, 5], (a) => linalg.solveTriangular(a, a.square(), { upper: false, left: false }).square().sum()],
    ['qr', [6, 4], (a) => { const { Q, R } = linalg.qr(a); return ops.add(Q.sum(), R.square().sum()) }],
  ]
  test.each(cases)('%s', (name, shape, f) => {
    tidy(() => {
      const n = shape[shape.length - 1]
      const size = shape.reduce((x, y) => x * y, 1)
      const base = name === 'lu' ? pivotStableMatrix(4, 9) : randomValues(size, 123).map((v, i) => ((i % (n * n)) % (n + 1) === 0 && name !== 'qr' ? v + 2 : v))
      const values = base.map(Math.fround)
      const grads = (['float64', 'float32'] as const).map((dtype) => {
        const a = tensor(values, shape, { dtype, requiresGrad: true })
        f(a).backward()
        return a.grad as Tensor
      })
      expect(grads[1].dtype).toBe('float32')
      expectClose(grads[1], grads[0].toArray(), 1e-5)
    })
  })
})

describe('argument checks shared by the family', () => {
  const fns: [string, (a: Tensor) => unknown][] = [
    ['lu', (a) => linalg.lu(a)],
    ['slogdet', (a) => linalg.slogdet(a)],
    ['det', (a) => linalg.det(a)],
    ['inverse', (a) => linalg.inverse(a)],
    ['qr', (a) => linalg.qr(a)],
  ]
  test.each(fns)('%s: non-tensors, vectors, non-square (where required) and disposed tensors', (name, f) => {
    tidy(() => {
      expectCode(() => f([1, 2, 3, 4] as unknown as Tensor), 'ERR_ARGUMENT')
      expectCode(() => f(tensor([1, 2, 3], [3])), 'ERR_SHAPE')
      expectCode(() => f(tensor([2], [])), 'ERR_SHAPE')
      if (name !== 'qr') expectCode(() => f(tensor(randomValues(6, 1), [3, 2])), 'ERR_SHAPE')
      const d = tensor([1, 0, 0, 1], [2, 2])
      d.dispose()
      expectCode(() => f(d), 'ERR_DISPOSED')
    })
  })

  test('an empty batch (0, 3, 3) gives empty results of the right shapes', () => {
    tidy(() => {
      const A = tensor([], [0, 3, 3], { dtype: 'float64' })
      expect(linalg.lu(A).U.shape).toEqual([0, 3, 3])
      expect(linalg.slogdet(A).logabsdet.shape).toEqual([0])
      expect(linalg.inverse(A).shape).toEqual([0, 3, 3])
      expect(linalg.qr(A).R.shape).toEqual([0, 3, 3])
      expect(linalg.solveTriangular(A, tensor([], [0, 3, 2], { dtype: 'float64' }), { upper: true }).shape).toEqual([0, 3, 2])
    })
  })
})

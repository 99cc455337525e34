/**
 * Plain-loop float64 references shared by the tests of the invertnn modules (Householder products, affine
 * maps, random orthogonal matrices, determinants, covariances), independent of the library's ops.
 */
import { setDefaultDtype } from '../../lib'
import { randomValues } from '../helpers'

/** Runs fn with float64 as the default dtype (modules built inside get float64 parameters). */
export function in64<T>(fn: () => T): T {
  setDefaultDtype('float64')
  try {
    return fn()
  } finally {
    setDefaultDtype('float32')
  }
}

export type Mat = number[][]
export const eye = (n: number): Mat => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)))
export const matmul = (a: Mat, b: Mat): Mat => a.map((row) => b[0].map((_, j) => row.reduce((s, v, k) => s + v * b[k][j], 0)))
export const transpose = (a: Mat): Mat => a[0].map((_, j) => a.map((row) => row[j]))

/** H(v₀)·…·H(v_{n−1}) with vᵢ = row i of w from column i on, by explicit n×n reflectors. */
export function householderRef(w: number[], n: number): Mat {
  let M = eye(n)
  for (let i = 0; i < n; i++) {
    const v = Array.from({ length: n }, (_, j) => (j >= i ? w[i * n + j] : 0))
    const vv = v.reduce((s, x) => s + x * x, 0)
    if (vv === 0) continue
    const H = eye(n).map((row, r) => row.map((e, c) => e - (2 * v[r] * v[c]) / vv))
    M = matmul(M, H)
  }
  return M
}

/** z = M·x + b per sample (x rows of length n), by loops. */
export function affineRows(x: number[], n: number, M: Mat, b: number[] | null): number[] {
  const out: number[] = []
  for (let s = 0; s < x.length / n; s++)
    for (let i = 0; i < n; i++) {
      let acc = b ? b[i] : 0
      for (let j = 0; j < n; j++) acc += M[i][j] * x[s * n + j]
      out.push(acc)
    }
  return out
}

/** A random orthogonal matrix by Gram–Schmidt (twice, for accuracy) on random columns. */
export function randomOrthogonal(n: number, seed: number): Mat {
  const v = randomValues(n * n, seed)
  const cols: number[][] = Array.from({ length: n }, (_, j) => Array.from({ length: n }, (_, i) => v[i * n + j]))
  for (let j = 0; j < n; j++)
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        const d = cols[j].reduce((s, x, i) => s + x * cols[k][i], 0)
        cols[j] = cols[j].map((x, i) => x - d * cols[k][i])
      }
      const norm = Math.hypot(...cols[j])
      cols[j] = cols[j].map((x) => x / norm)
    }
  return transpose(cols)
}

export const maxAbsDiff = (a: Mat, b: Mat): number => Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i][j]))))


/** ln|det A| by Gaussian elimination with partial pivoting. */
export function logAbsDet(m: Mat): number {
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

/** z[:, :, p] = M·x[:, :, p] + b for every pixel p of row-major (B, C, P) data, by loops. */
export function affinePixels(x: ArrayLike<number>, [B, C, P]: number[], M: Mat, b: number[] | null): number[] {
  const out = new Array<number>(B * C * P)
  for (let s = 0; s < B; s++)
    for (let p = 0; p < P; p++)
      for (let i = 0; i < C; i++) {
        let acc = b ? b[i] : 0
        for (let j = 0; j < C; j++) acc += M[i][j] * x[(s * C + j) * P + p]
        out[(s * C + i) * P + p] = acc
      }
  return out
}

/** Mean and biased covariance of the rows of an (N, n) row-major array. */
export function meanCov(x: ArrayLike<number>, n: number): { mean: number[]; cov: Mat } {
  const N = x.length / n
  const mean = new Array<number>(n).fill(0)
  for (let s = 0; s < N; s++) for (let i = 0; i < n; i++) mean[i] += x[s * n + i] / N
  const cov = Array.from({ length: n }, () => new Array<number>(n).fill(0))
  for (let s = 0; s < N; s++)
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) cov[i][j] += ((x[s * n + i] - mean[i]) * (x[s * n + j] - mean[j])) / N
  return { mean, cov }
}

/**
 * Test helpers: a JavaScript PRNG independent of the native one (for inputs and references), relative
 * errors, and the finite-difference gradient check every op must pass.
 */
import { noGrad, tensor, Tensor, tidy } from '../lib'

/** mulberry32: a small deterministic generator, so references never depend on the code under test. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** n uniform values in [lo, hi). */
export function randomValues(n: number, seed: number, lo = -1, hi = 1): number[] {
  const r = rng(seed)
  return Array.from({ length: n }, () => lo + (hi - lo) * r())
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1)

/** ‖a − b‖ / max(‖b‖, tiny). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`)
  let num = 0
  let den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2
    den += b[i] ** 2
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-300)
}

/** Asserts relErr(actual, expected) <= tol, and that both have the same length and no NaN. */
export function expectClose(actual: Tensor | ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  const a = actual instanceof Tensor ? actual.toArray() : actual
  expect(a.length).toBe(expected.length)
  for (let i = 0; i < a.length; i++) if (Number.isNaN(a[i]) !== Number.isNaN(expected[i])) throw new Error(`NaN mismatch at ${i}: ${a[i]} vs ${expected[i]}`)
  const err = relErr(a, expected)
  if (!(err <= tol)) throw new Error(`relative error ${err.toExponential(3)} exceeds ${tol} (first values ${Array.from(a).slice(0, 4)} vs ${Array.from(expected).slice(0, 4)})`)
}

export interface GradInput {
  values: number[]
  shape: number[]
}

/** A random input of the given shape in [lo, hi). */
export function input(shape: number[], seed: number, lo = -1, hi = 1): GradInput {
  return { values: randomValues(numel(shape), seed, lo, hi), shape }
}

/**
 * Checks the analytic gradients of fn (float64) against central finite differences of the scalar
 * L = Σ fn(inputs) · w for fixed random weights w. Returns the largest relative error over all inputs and
 * asserts it is <= tol.
 */
export function gradCheck(fn: (...xs: Tensor[]) => Tensor, inputs: GradInput[], tol = 1e-6, h = 1e-6): number {
  return tidy(() => {
    const leaves = inputs.map((i) => tensor(i.values, i.shape, { dtype: 'float64', requiresGrad: true }))
    const out = fn(...leaves)
    const w = tensor(randomValues(out.size, 99), [...out.shape], { dtype: 'float64' })
    const loss = out.mul(w).sum()
    loss.backward()
    const analytic = leaves.map((l) => {
      if (!l.grad) throw new Error('an input received no gradient')
      return Array.from(l.grad.toArray())
    })
    const lossAt = (k: number, values: number[]): number =>
      tidy(() =>
        noGrad(() => {
          const xs = inputs.map((inp, j) => tensor(j === k ? values : inp.values, inp.shape, { dtype: 'float64' }))
          return fn(...xs).mul(w).sum().item()
        }),
      )
    let worst = 0
    inputs.forEach((inp, k) => {
      const numeric = inp.values.map((v, i) => {
        const plus = inp.values.slice()
        plus[i] = v + h
        const minus = inp.values.slice()
        minus[i] = v - h
        return (lossAt(k, plus) - lossAt(k, minus)) / (2 * h)
      })
      const err = relErr(analytic[k], numeric)
      if (!(err <= tol)) throw new Error(`input ${k}: gradient relative error ${err.toExponential(3)} > ${tol}\n analytic ${analytic[k].slice(0, 6)}\n numeric  ${numeric.slice(0, 6)}`)
      worst = Math.max(worst, err)
    })
    return worst
  })
}

/** Expects fn to throw an InnflowError with the given code (matched by code, since jest realms differ). */
export function expectCode(fn: () => unknown, code: string): void {
  let caught: unknown
  try {
    fn()
  } catch (e) {
    caught = e
  }
  if (!caught) throw new Error(`expected an error with code ${code}, but nothing was thrown`)
  const err = caught as { code?: string; name?: string; message?: string }
  if (err.code !== code || err.name !== 'InnflowError') throw new Error(`expected InnflowError ${code}, got ${err.name} ${err.code}: ${err.message}`)
}

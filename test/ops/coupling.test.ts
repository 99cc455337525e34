/**
 * affineCoupling (native/cpu/coupling.cc): the fused soft clamp + affine coupling + log-det against the op chain
 * the modules used before (float64, every clamp kind × gin × rev), float32 against float64, finite-difference
 * gradients in float64 (both outputs, each alone), spatial shapes and vectors, and errors.
 */
import { noGrad, ops, tensor, Tensor, tidy } from '../../lib'
import { grad } from '../../lib/autograd/tape'
import type { CouplingClampKind } from '../../lib/ops/coupling'
import { expectClose, expectCode, gradCheck, randomValues, relErr } from '../helpers'

const KINDS: CouplingClampKind[] = ['TANH_DIV', 'ATAN', 'TANH', 'SIGMOID', 'NONE']

/** The unfused chain of elementwise ops (AllInOneBlock's and the coupling blocks' formulas before fusion). */
function chain(a: Tensor, x2: Tensor, kind: CouplingClampKind, preScale: number, clamp: number, gin: boolean, rev: boolean): [Tensor, Tensor] {
  const c2 = x2.shape[1]
  const dims = x2.shape.slice(1).map((_, i) => i + 1)
  const [aS, t] = a.mul(preScale).split([c2, c2], 1)
  let s =
    kind === 'TANH_DIV' ? aS.div(clamp).tanh().mul(clamp)
    : kind === 'ATAN' ? aS.atan().mul(clamp * 0.636)
    : kind === 'TANH' ? aS.tanh().mul(clamp)
    : kind === 'SIGMOID' ? aS.sigmoid().sub(0.5).mul(2 * clamp)
    : aS
  if (gin) s = s.sub(s.mean(dims, true))
  const y2 = rev ? x2.sub(t).mul(s.neg().exp()) : x2.mul(s.exp()).add(t)
  const ld = s.sum(dims)
  return [y2, rev ? ld.neg() : ld]
}

function make(shape: number[], seed: number, dtype: 'float32' | 'float64', lo = -3, hi = 3): Tensor {
  return tensor(randomValues(shape.reduce((p, q) => p * q, 1), seed, lo, hi), shape, { dtype })
}

/** ‖a − b‖ relative to Σ|s| scale: GIN log-dets are sums that cancel to ~0, so compare against the row size. */
function absErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

describe('affineCoupling: against the op chain (float64)', () => {
  for (const kind of KINDS)
    for (const gin of [false, true])
      for (const rev of [false, true])
        test(`${kind} gin=${gin} rev=${rev}`, () =>
          tidy(() => {
            for (const [shape, seed] of [[[3, 4, 5, 2], 1], [[5, 7], 2]] as [number[], number][]) {
              const a = make([shape[0], 2 * shape[1], ...shape.slice(2)], seed, 'float64')
              const x2 = make(shape, seed + 10, 'float64', -1, 1)
              const opts = { preScale: 0.7, clampKind: kind, clamp: 1.6, gin, rev }
              const [y, l] = ops.affineCoupling(a, x2, opts)
              const [yr, lr] = chain(a, x2, kind, 0.7, 1.6, gin, rev)
              expect(y.shape).toEqual(shape)
              expect(l.shape).toEqual([shape[0]])
              expect(relErr(y.toArray(), yr.toArray())).toBeLessThanOrEqual(1e-14)
              if (gin) expect(absErr(l.toArray(), lr.toArray())).toBeLessThanOrEqual(1e-14 * x2.size)
              else expect(relErr(l.toArray(), lr.toArray())).toBeLessThanOrEqual(1e-14)
            }
          }))

  test('the default options: ATAN, clamp 2, preScale 1, forward', () =>
    tidy(() => {
      const a = make([4, 6], 3, 'float64')
      const x2 = make([4, 3], 4, 'float64')
      const [y, l] = ops.affineCoupling(a, x2)
      const [yr, lr] = chain(a, x2, 'ATAN', 1, 2, false, false)
      expectClose(y, yr.toArray(), 1e-15)
      expectClose(l, lr.toArray(), 1e-15)
    }))

  test('rev undoes forward, and the log-dets are opposite', () =>
    tidy(() => {
      const a = make([3, 8, 2, 2], 5, 'float64')
      const x2 = make([3, 4, 2, 2], 6, 'float64')
      for (const kind of KINDS)
        for (const gin of [false, true]) {
          const [y, l] = ops.affineCoupling(a, x2, { clampKind: kind, gin, preScale: 0.1 })
          const [x, lInv] = ops.affineCoupling(a, y, { clampKind: kind, gin, preScale: 0.1, rev: true })
          expectClose(x, x2.toArray(), 1e-14)
          expect(absErr(lInv.toArray(), l.neg().toArray())).toBe(0)
        }
    }))
})

describe('affineCoupling: float32', () => {
  for (const kind of KINDS)
    for (const gin of [false, true])
      for (const rev of [false, true])
        test(`${kind} gin=${gin} rev=${rev}: float32 agrees with float64`, () =>
          tidy(() => {
            const shape = [4, 3, 6, 5]
            const a = make([4, 6, 6, 5], 7, 'float64')
            const x2 = make(shape, 8, 'float64', -1, 1)
            const opts = { preScale: 0.1, clampKind: kind, clamp: 2, gin, rev }
            const [y64, l64] = ops.affineCoupling(a, x2, opts)
            const [y32, l32] = ops.affineCoupling(a.to({ dtype: 'float32' }), x2.to({ dtype: 'float32' }), opts)
            expect(y32.dtype).toBe('float32')
            expect(relErr(y32.toArray(), y64.toArray())).toBeLessThanOrEqual(1e-5)
            if (gin) expect(absErr(l32.toArray(), l64.toArray())).toBeLessThanOrEqual(1e-5 * x2.size)
            else expect(relErr(l32.toArray(), l64.toArray())).toBeLessThanOrEqual(1e-5)
            // and the float32 gradients agree with the float64 ones
            const grads = (dtype: 'float32' | 'float64') =>
              tidy(() => {
                const aa = a.to({ dtype }).detach()
                aa.requiresGrad = true
                const xx = x2.to({ dtype }).detach()
                xx.requiresGrad = true
                const [y, l] = ops.affineCoupling(aa, xx, opts)
                const w = make(shape, 9, dtype, -1, 1)
                y.mul(w).sum().add(l.mul(make([4], 10, dtype, -1, 1)).sum()).backward()
                return [Array.from((aa.grad as Tensor).toArray()), Array.from((xx.grad as Tensor).toArray())]
              })
            const [g64, g32] = [grads('float64'), grads('float32')]
            expect(relErr(g32[0], g64[0])).toBeLessThanOrEqual(1e-5)
            expect(relErr(g32[1], g64[1])).toBeLessThanOrEqual(1e-5)
          }))

  test('float32 matches the float32 op chain (the same fast exp and tanh)', () =>
    tidy(() => {
      const a = make([8, 40, 3], 11, 'float32')
      const x2 = make([8, 20, 3], 12, 'float32', -1, 1)
      for (const kind of KINDS) {
        const [y, l] = ops.affineCoupling(a, x2, { clampKind: kind, preScale: 0.1 })
        const [yr, lr] = chain(a, x2, kind, 0.1, 2, false, false)
        expect(relErr(y.toArray(), yr.toArray())).toBeLessThanOrEqual(1e-6)
        expect(relErr(l.toArray(), lr.toArray())).toBeLessThanOrEqual(1e-6)
      }
    }))
})

describe('affineCoupling: gradients (float64 finite differences)', () => {
  const shapes: [string, number[]][] = [['vectors', [3, 4]], ['images', [2, 2, 3, 2]]]
  for (const kind of KINDS)
    for (const gin of [false, true])
      for (const rev of [false, true])
        for (const [what, shape] of shapes)
          test(`${kind} gin=${gin} rev=${rev} ${what}`, () => {
            const aShape = [shape[0], 2 * shape[1], ...shape.slice(2)]
            const n = shape.reduce((p, q) => p * q, 1)
            const opts = { preScale: 0.8, clampKind: kind, clamp: 1.5, gin, rev }
            gradCheck(
              (a, x2) => {
                const [y, l] = ops.affineCoupling(a, x2, opts)
                return ops.cat([y.reshape([n]), l], 0)
              },
              [
                { values: randomValues(aShape.reduce((p, q) => p * q, 1), 21, -2, 2), shape: aShape },
                { values: randomValues(n, 22, -1, 1), shape },
              ],
              1e-6,
            )
          })

  for (const rev of [false, true])
    for (const gin of [false, true])
      test(`log-det only / y2 only (rev=${rev}, gin=${gin})`, () => {
        const inputs = [
          { values: randomValues(2 * 2 * 3 * 3, 31, -2, 2), shape: [2, 6, 3] },
          { values: randomValues(2 * 3 * 3, 32, -1, 1), shape: [2, 3, 3] },
        ]
        const opts = { clampKind: 'TANH_DIV' as const, preScale: 0.5, clamp: 1.2, gin, rev }
        // only the log-det reaches the loss: gy2 is absent in the backward (and x2 gets no gradient from it)
        if (!gin) gradCheck((a, x2) => ops.affineCoupling(a, x2, opts)[1].add(x2.sum().mul(0)), inputs, 1e-6)
        else
          tidy(() => {
            // GIN: Σ (s − mean s) is identically 0, so is its gradient
            const a = tensor(inputs[0].values, inputs[0].shape, { dtype: 'float64', requiresGrad: true })
            const x2 = tensor(inputs[1].values, inputs[1].shape, { dtype: 'float64', requiresGrad: true })
            const [ga, gx] = grad(ops.affineCoupling(a, x2, opts)[1].sum(), [a, x2])
            expect(gx).toBeNull()
            expect(Math.max(...Array.from((ga as Tensor).toArray(), Math.abs))).toBeLessThanOrEqual(1e-15)
          })
        gradCheck((a, x2) => ops.affineCoupling(a, x2, opts)[0], inputs, 1e-6)
      })

  test('without gy2 the backward hands x2 no gradient and a_t a zero one', () =>
    tidy(() => {
      const a = make([2, 4], 41, 'float64')
      a.requiresGrad = true
      const x2 = make([2, 2], 42, 'float64')
      x2.requiresGrad = true
      const [, l] = ops.affineCoupling(a, x2, { clampKind: 'ATAN' })
      const [ga, gx] = grad(l.sum(), [a, x2])
      expect(gx).toBeNull()
      const g = Array.from((ga as Tensor).toArray())
      expect([g[2], g[3], g[6], g[7]]).toEqual([0, 0, 0, 0])
    }))

  test('no gradient is recorded under noGrad or for inputs that need none', () =>
    tidy(() => {
      const a = make([2, 4], 43, 'float64')
      const x2 = make([2, 2], 44, 'float64')
      const [y, l] = ops.affineCoupling(a, x2)
      expect(y.requiresGrad).toBe(false)
      expect(l.requiresGrad).toBe(false)
      a.requiresGrad = true
      const [y2] = noGrad(() => ops.affineCoupling(a, x2))
      expect(y2.requiresGrad).toBe(false)
    }))
})

describe('affineCoupling: rows are computed in blocks (about 4096 values each)', () => {
  // Without GIN the CPU kernel runs blocks of rows in one loop: every row must come out exactly as it does alone,
  // whatever block it falls in (full blocks, a partial last block, and blocks of a single wide row).
  for (const [rows, n] of [[300, 32], [1000, 5], [3, 5000]])
    for (const rev of [false, true])
      test(`${rows} rows of ${n}, rev=${rev}: each row equals the row computed alone`, () =>
        tidy(() => {
          const a = make([rows, 2 * n], 21, 'float32')
          const x2 = make([rows, n], 22, 'float32', -1, 1)
          const opts = { clampKind: 'TANH_DIV' as CouplingClampKind, preScale: 0.1, clamp: 2, rev }
          const [y, l] = ops.affineCoupling(a, x2, opts)
          const ys = y.toArray()
          const ls = l.toArray()
          for (const r of [0, 1, Math.floor(rows / 2), rows - 1]) {
            const [yr, lr] = ops.affineCoupling(a.narrow(0, r, 1), x2.narrow(0, r, 1), opts)
            expect(Array.from(ys.subarray(r * n, (r + 1) * n))).toEqual(Array.from(yr.toArray()))
            expect(ls[r]).toBe(lr.toArray()[0])
          }
          const [y64, l64] = ops.affineCoupling(a.to({ dtype: 'float64' }), x2.to({ dtype: 'float64' }), opts)
          expect(relErr(ys, y64.toArray())).toBeLessThanOrEqual(1e-5)
          expect(relErr(ls, l64.toArray())).toBeLessThanOrEqual(1e-5)
        }))
})

describe('affineCoupling: shapes and errors', () => {
  test('one-channel halves, a single sample, and empty batches', () =>
    tidy(() => {
      const a = make([1, 2, 4, 4], 51, 'float64')
      const x2 = make([1, 1, 4, 4], 52, 'float64')
      const [y, l] = ops.affineCoupling(a, x2, { gin: true, clampKind: 'TANH' })
      const [yr, lr] = chain(a, x2, 'TANH', 1, 2, true, false)
      expectClose(y, yr.toArray(), 1e-15)
      expect(absErr(l.toArray(), lr.toArray())).toBeLessThanOrEqual(1e-14)
      const [ye, le] = ops.affineCoupling(tensor([], [0, 4], { dtype: 'float64' }), tensor([], [0, 2], { dtype: 'float64' }))
      expect(ye.shape).toEqual([0, 2])
      expect(le.shape).toEqual([0])
    }))

  test('bad shapes → ERR_SHAPE', () =>
    tidy(() => {
      const x2 = make([2, 3, 4], 61, 'float64')
      expectCode(() => ops.affineCoupling(make([2, 5, 4], 62, 'float64'), x2), 'ERR_SHAPE') // not 2·C2 channels
      expectCode(() => ops.affineCoupling(make([3, 6, 4], 63, 'float64'), x2), 'ERR_SHAPE') // batch differs
      expectCode(() => ops.affineCoupling(make([2, 6, 5], 64, 'float64'), x2), 'ERR_SHAPE') // spatial differs
      expectCode(() => ops.affineCoupling(make([2, 6], 65, 'float64'), x2), 'ERR_SHAPE') // rank differs
      expectCode(() => ops.affineCoupling(make([6], 66, 'float64'), make([3], 67, 'float64')), 'ERR_SHAPE') // no batch axis
    }))

  test('bad arguments', () =>
    tidy(() => {
      const a = make([2, 6], 71, 'float64')
      const x2 = make([2, 3], 72, 'float64')
      expectCode(() => ops.affineCoupling(a, x2.to({ dtype: 'float32' })), 'ERR_DTYPE')
      expectCode(() => ops.affineCoupling(a, x2, { clampKind: 'RELU' as CouplingClampKind }), 'ERR_ARGUMENT')
      expectCode(() => ops.affineCoupling(a, x2, { clamp: Number.NaN }), 'ERR_ARGUMENT')
      expectCode(() => ops.affineCoupling(a, x2, { preScale: Infinity }), 'ERR_ARGUMENT')
      expectCode(() => ops.affineCoupling(a, x2, { gin: 1 as unknown as boolean }), 'ERR_ARGUMENT')
      expectCode(() => ops.affineCoupling(a, 3 as unknown as Tensor), 'ERR_ARGUMENT')
      const gone = make([2, 3], 73, 'float64')
      gone.dispose()
      expectCode(() => ops.affineCoupling(a, gone), 'ERR_DISPOSED')
    }))
})

// ------------------------------------------------------------------------------------------------ catAffinePermute

/** A fixed permutation of 0..n−1 (a seeded shuffle). */
function permutation(n: number, seed: number): number[] {
  const r = randomValues(n, seed, 0, 1)
  const p = Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r[i] * (i + 1))
    ;[p[i], p[j]] = [p[j], p[i]]
  }
  return p
}

/** AllInOneBlock's chain before fusion: cat, ·scale, +shift, indexSelect. */
function catChain(x1: Tensor, y2: Tensor, scale: Tensor | null, shift: Tensor, perm: Tensor): Tensor {
  const z = ops.cat([x1, y2], 1)
  return (scale ? z.mul(scale) : z).add(shift).indexSelect(1, perm)
}

/** The (1, C, 1, ...) shape of a per-channel parameter for z of rank `rank`, or (C) for vectors. */
const paramShape = (c: number, rank: number, flat: boolean): number[] => (flat ? [c] : [1, c, ...new Array<number>(rank - 2).fill(1)])

describe('catAffinePermute', () => {
  // [x1 shape, C2, parameters as (C) or (1, C, 1, ...)]
  const cases: [string, number[], number, boolean][] = [
    ['vectors, (C) parameters', [5, 4], 3, true],
    ['vectors, (1, C) parameters', [5, 4], 3, false],
    ['images', [3, 3, 4, 5], 2, false],
    ['1-D spatial', [2, 2, 7], 2, false],
    ['one channel each', [4, 1, 3], 1, false],
  ]

  /** z and the gradients of x1, y2, scale, shift under a fixed weighting, by op or chain. */
  function run(useOp: boolean, dtype: 'float32' | 'float64', x1Shape: number[], c2: number, flat: boolean, withScale: boolean) {
    return tidy(() => {
      const c = x1Shape[1] + c2
      const y2Shape = [x1Shape[0], c2, ...x1Shape.slice(2)]
      const x1 = make(x1Shape, 81, dtype)
      const y2 = make(y2Shape, 82, dtype)
      const scale = withScale ? make(paramShape(c, x1Shape.length, flat), 83, dtype, 0.2, 3) : null
      const shift = make(paramShape(c, x1Shape.length, flat), 84, dtype)
      const perm = tensor(permutation(c, 85), [c], { dtype })
      const leaves = [x1, y2, shift, ...(scale ? [scale] : [])]
      for (const l of leaves) l.requiresGrad = true
      const z = useOp ? ops.catAffinePermute(x1, y2, scale, shift, perm) : catChain(x1, y2, scale, shift, perm)
      const w = make([...z.shape], 86, dtype)
      z.mul(w).sum().backward()
      return { z: Array.from(z.toArray()), shape: [...z.shape], grads: leaves.map((l) => Array.from((l.grad as Tensor).toArray())) }
    })
  }

  for (const [what, x1Shape, c2, flat] of cases)
    for (const withScale of [true, false])
      test(`${what}, ${withScale ? 'with' : 'without'} scale: float64 equals the op chain`, () => {
        const op = run(true, 'float64', x1Shape, c2, flat, withScale)
        const ref = run(false, 'float64', x1Shape, c2, flat, withScale)
        expect(op.shape).toEqual([x1Shape[0], x1Shape[1] + c2, ...x1Shape.slice(2)])
        expect(op.z).toEqual(ref.z) // bit for bit
        expect(op.grads.length).toBe(ref.grads.length)
        op.grads.forEach((g, i) => expect(g).toEqual(ref.grads[i])) // the same sums in the same order
      })

  for (const withScale of [true, false])
    test(`float32 agrees with float64 and with the float32 chain (${withScale ? 'with' : 'without'} scale)`, () => {
      const op32 = run(true, 'float32', [6, 5, 3, 2], 4, false, withScale)
      const op64 = run(true, 'float64', [6, 5, 3, 2], 4, false, withScale)
      const ref32 = run(false, 'float32', [6, 5, 3, 2], 4, false, withScale)
      expect(relErr(op32.z, op64.z)).toBeLessThanOrEqual(1e-6)
      expect(op32.z).toEqual(ref32.z)
      op32.grads.forEach((g, i) => {
        expect(relErr(g, op64.grads[i])).toBeLessThanOrEqual(1e-6)
        expect(relErr(g, ref32.grads[i])).toBeLessThanOrEqual(1e-7)
      })
    })

  for (const [what, x1Shape, c2, flat] of cases.slice(1, 4))
    for (const withScale of [true, false])
      test(`finite-difference gradients: ${what}, ${withScale ? 'with' : 'without'} scale`, () => {
        const c = x1Shape[1] + c2
        const y2Shape = [x1Shape[0], c2, ...x1Shape.slice(2)]
        const pShape = paramShape(c, x1Shape.length, flat)
        const size = (s: number[]) => s.reduce((p, q) => p * q, 1)
        const perm = permutation(c, 91)
        const inputs = [
          { values: randomValues(size(x1Shape), 92), shape: x1Shape },
          { values: randomValues(size(y2Shape), 93), shape: y2Shape },
          { values: randomValues(c, 94), shape: pShape },
          ...(withScale ? [{ values: randomValues(c, 95, 0.3, 2), shape: pShape }] : []),
        ]
        gradCheck(
          (x1, y2, shift, scale) => ops.catAffinePermute(x1, y2, scale ?? null, shift, tensor(perm, [c], { dtype: 'float64' })),
          inputs,
          1e-7,
        )
      })

  test('only the inputs that need a gradient get one; nothing is recorded under noGrad', () =>
    tidy(() => {
      const x1 = make([2, 2], 101, 'float64')
      const y2 = make([2, 1], 102, 'float64')
      const scale = make([3], 103, 'float64')
      const shift = make([3], 104, 'float64')
      const perm = tensor([2, 0, 1], [3], { dtype: 'float64' })
      expect(ops.catAffinePermute(x1, y2, scale, shift, perm).requiresGrad).toBe(false)
      shift.requiresGrad = true
      expect(noGrad(() => ops.catAffinePermute(x1, y2, scale, shift, perm)).requiresGrad).toBe(false)
      const z = ops.catAffinePermute(x1, y2, scale, shift, perm)
      const [gsh, gx1] = grad(z.sum(), [shift, x1])
      expect(Array.from((gsh as Tensor).toArray())).toEqual([2, 2, 2])
      expect(gx1).toBeNull()
      // z[:, j] = src[:, perm[j]]·scale[perm[j]] + shift[perm[j]]
      const zs = Array.from(z.toArray())
      const src = [x1.toArray(), y2.toArray()]
      const sc = scale.toArray()
      const sh = shift.toArray()
      const s = (b: number, k: number) => (k < 2 ? src[0][b * 2 + k] : src[1][b])
      expect(zs).toEqual([0, 1].flatMap((b) => [2, 0, 1].map((k) => s(b, k) * sc[k] + sh[k])))
    }))

  test('empty batch', () =>
    tidy(() => {
      const z = ops.catAffinePermute(tensor([], [0, 2]), tensor([], [0, 1]), null, tensor([1, 2, 3], [3]), tensor([1, 2, 0], [3]))
      expect(z.shape).toEqual([0, 3])
    }))

  test('bad shapes → ERR_SHAPE, bad permutations → ERR_ARGUMENT, mixed dtypes → ERR_DTYPE', () =>
    tidy(() => {
      const x1 = make([2, 3, 4], 111, 'float64')
      const y2 = make([2, 2, 4], 112, 'float64')
      const p5 = make([1, 5, 1], 113, 'float64')
      const perm = tensor([4, 0, 3, 1, 2], [5], { dtype: 'float64' })
      const f = (a: Tensor, b: Tensor, sc: Tensor | null, sh: Tensor, p: Tensor) => () => ops.catAffinePermute(a, b, sc, sh, p)
      expect(f(x1, y2, p5, p5, perm)().shape).toEqual([2, 5, 4])
      expectCode(f(x1, make([3, 2, 4], 114, 'float64'), p5, p5, perm), 'ERR_SHAPE') // batch differs
      expectCode(f(x1, make([2, 2, 5], 115, 'float64'), p5, p5, perm), 'ERR_SHAPE') // spatial differs
      expectCode(f(x1, make([2, 2], 116, 'float64'), p5, p5, perm), 'ERR_SHAPE') // rank differs
      expectCode(f(make([6], 117, 'float64'), make([2], 117, 'float64'), null, make([8], 118, 'float64'), perm), 'ERR_SHAPE') // no channel axis
      expectCode(f(x1, y2, make([1, 4, 1], 119, 'float64'), p5, perm), 'ERR_SHAPE') // scale: C − 1 values
      expectCode(f(x1, y2, p5, make([5, 1, 1], 120, 'float64'), perm), 'ERR_SHAPE') // shift: C values on the wrong axis
      expectCode(f(x1, y2, p5, make([1, 5], 121, 'float64'), perm), 'ERR_SHAPE') // shift: rank neither 1 nor z's
      expectCode(f(x1, y2, p5, p5, tensor([0, 1, 2, 3], [4], { dtype: 'float64' })), 'ERR_SHAPE') // perm too short
      expectCode(f(x1, y2, p5, p5, tensor([0, 1, 2, 3, 4, 0], [2, 3], { dtype: 'float64' })), 'ERR_SHAPE') // perm not 1-D
      expectCode(f(x1, y2, p5, p5, tensor([0, 1, 2, 3, 5], [5], { dtype: 'float64' })), 'ERR_ARGUMENT') // out of range
      expectCode(f(x1, y2, p5, p5, tensor([0, 1, 2, 3, -1], [5], { dtype: 'float64' })), 'ERR_ARGUMENT') // negative
      expectCode(f(x1, y2, p5, p5, tensor([0, 1, 2, 3, 1.5], [5], { dtype: 'float64' })), 'ERR_ARGUMENT') // not an integer
      expectCode(f(x1, y2, p5, p5, tensor([0, 1, 2, 3, Number.NaN], [5], { dtype: 'float64' })), 'ERR_ARGUMENT') // NaN
      expectCode(f(x1, y2, p5, p5, tensor([0, 1, 2, 2, 4], [5], { dtype: 'float64' })), 'ERR_ARGUMENT') // a repeat
      expectCode(f(x1, y2.to({ dtype: 'float32' }), p5, p5, perm), 'ERR_DTYPE')
      expectCode(f(x1, y2, p5.to({ dtype: 'float32' }), p5, perm), 'ERR_DTYPE')
      expectCode(f(x1, 3 as unknown as Tensor, p5, p5, perm), 'ERR_ARGUMENT')
      const gone = make([2, 2, 4], 122, 'float64')
      gone.dispose()
      expectCode(f(x1, gone, p5, p5, perm), 'ERR_DISPOSED')
    }))
})

describe('permuteAffineSplit', () => {
  const inverse = (p: number[]) => {
    const inv = new Array<number>(p.length)
    p.forEach((k, j) => (inv[k] = j))
    return inv
  }
  /** AllInOneBlock's reverse chain before fusion: indexSelect(perm⁻¹), −shift, /scale, split. */
  function splitChain(z: Tensor, scale: Tensor | null, shift: Tensor, permInv: Tensor, c1: number): Tensor[] {
    const v = z.indexSelect(1, permInv).sub(shift)
    return (scale ? v.div(scale) : v).split([c1, z.shape[1] - c1], 1)
  }
  // [z shape, c1, parameters as (C) or (1, C, 1, ...)]
  const cases: [string, number[], number, boolean][] = [
    ['vectors, (C) parameters', [5, 7], 4, true],
    ['images', [3, 5, 4, 3], 3, false],
    ['1-D spatial', [2, 4, 7], 2, false],
  ]

  /** x1, x2 and the gradients of z, shift, scale under a fixed weighting (of x2 only with onlyX2), by op or chain. */
  function run(useOp: boolean, dtype: 'float32' | 'float64', zShape: number[], c1: number, flat: boolean, withScale: boolean, onlyX2 = false) {
    return tidy(() => {
      const c = zShape[1]
      const z = make(zShape, 131, dtype)
      const scale = withScale ? make(paramShape(c, zShape.length, flat), 132, dtype, 0.2, 3) : null
      const shift = make(paramShape(c, zShape.length, flat), 133, dtype)
      const p = permutation(c, 134)
      const leaves = [z, shift, ...(scale ? [scale] : [])]
      for (const l of leaves) l.requiresGrad = true
      const [x1, x2] = useOp
        ? ops.permuteAffineSplit(z, scale, shift, tensor(inverse(p), [c], { dtype }), c1)
        : splitChain(z, scale, shift, tensor(inverse(p), [c], { dtype }), c1)
      let loss = x2.mul(make([...x2.shape], 136, dtype)).sum()
      if (!onlyX2) loss = loss.add(x1.mul(make([...x1.shape], 135, dtype)).sum())
      loss.backward()
      return { x: [Array.from(x1.toArray()), Array.from(x2.toArray())], shapes: [x1.shape, x2.shape], grads: leaves.map((l) => Array.from((l.grad as Tensor).toArray())) }
    })
  }

  for (const [what, zShape, c1, flat] of cases)
    for (const withScale of [true, false])
      for (const onlyX2 of [false, true])
        test(`${what}, ${withScale ? 'with' : 'without'} scale${onlyX2 ? ', x2 alone in the loss' : ''}: float64 equals the op chain`, () => {
          const op = run(true, 'float64', zShape, c1, flat, withScale, onlyX2)
          const ref = run(false, 'float64', zShape, c1, flat, withScale, onlyX2)
          expect(op.shapes).toEqual([[zShape[0], c1, ...zShape.slice(2)], [zShape[0], zShape[1] - c1, ...zShape.slice(2)]])
          expect(op.x).toEqual(ref.x)
          op.grads.forEach((g, i) => expect(g).toEqual(ref.grads[i]))
        })

  for (const withScale of [true, false])
    test(`float32 agrees with float64 and with the float32 chain (${withScale ? 'with' : 'without'} scale)`, () => {
      const op32 = run(true, 'float32', [6, 9, 3, 2], 5, false, withScale)
      const op64 = run(true, 'float64', [6, 9, 3, 2], 5, false, withScale)
      const ref32 = run(false, 'float32', [6, 9, 3, 2], 5, false, withScale)
      op32.x.forEach((x, i) => {
        expect(relErr(x, op64.x[i])).toBeLessThanOrEqual(1e-6)
        expect(x).toEqual(ref32.x[i])
      })
      op32.grads.forEach((g, i) => {
        expect(relErr(g, op64.grads[i])).toBeLessThanOrEqual(1e-6)
        expect(relErr(g, ref32.grads[i])).toBeLessThanOrEqual(1e-7)
      })
    })

  for (const [what, zShape, c1, flat] of cases)
    for (const withScale of [true, false])
      test(`finite-difference gradients: ${what}, ${withScale ? 'with' : 'without'} scale`, () => {
        const c = zShape[1]
        const pShape = paramShape(c, zShape.length, flat)
        const n = zShape.reduce((p, q) => p * q, 1)
        const perm = permutation(c, 141)
        gradCheck(
          (z, shift, scale) => {
            const [x1, x2] = ops.permuteAffineSplit(z, scale ?? null, shift, tensor(inverse(perm), [c], { dtype: 'float64' }), c1)
            return ops.cat([x1.reshape([-1]), x2.reshape([-1])], 0)
          },
          [
            { values: randomValues(n, 142), shape: zShape },
            { values: randomValues(c, 143), shape: pShape },
            ...(withScale ? [{ values: randomValues(c, 144, 0.3, 2), shape: pShape }] : []),
          ],
          1e-7,
        )
      })

  test('undoes catAffinePermute; c1 = 0 and c1 = C', () =>
    tidy(() => {
      const x1 = make([4, 3, 2], 151, 'float64')
      const x2 = make([4, 2, 2], 152, 'float64')
      const scale = make([1, 5, 1], 153, 'float64', 0.5, 2)
      const shift = make([1, 5, 1], 154, 'float64')
      const p = permutation(5, 155)
      const perm = tensor(p, [5], { dtype: 'float64' })
      const permInv = tensor(inverse(p), [5], { dtype: 'float64' })
      const z = ops.catAffinePermute(x1, x2, scale, shift, perm)
      const [y1, y2] = ops.permuteAffineSplit(z, scale, shift, permInv, 3)
      expectClose(y1, x1.toArray(), 1e-15)
      expectClose(y2, x2.toArray(), 1e-15)
      const [a0, b0] = ops.permuteAffineSplit(z, null, shift, permInv, 0)
      expect([a0.shape, b0.shape]).toEqual([[4, 0, 2], [4, 5, 2]])
      const [a5, b5] = ops.permuteAffineSplit(z, null, shift, permInv, 5)
      expect([a5.shape, b5.shape]).toEqual([[4, 5, 2], [4, 0, 2]])
      expect(Array.from(a5.toArray())).toEqual(Array.from(b0.toArray()))
    }))

  test('bad shapes → ERR_SHAPE, bad c1 or permutations → ERR_ARGUMENT, mixed dtypes → ERR_DTYPE', () =>
    tidy(() => {
      const z = make([2, 5, 4], 161, 'float64')
      const p5 = make([1, 5, 1], 162, 'float64')
      const perm = tensor([4, 0, 3, 1, 2], [5], { dtype: 'float64' })
      const f = (zz: Tensor, sc: Tensor | null, sh: Tensor, p: Tensor, c1: number) => () => ops.permuteAffineSplit(zz, sc, sh, p, c1)
      expect(f(z, p5, p5, perm, 2)()[1].shape).toEqual([2, 3, 4])
      expectCode(f(make([5], 163, 'float64'), null, make([5], 164, 'float64'), perm, 2), 'ERR_SHAPE') // no channel axis
      expectCode(f(z, make([1, 4, 1], 165, 'float64'), p5, perm, 2), 'ERR_SHAPE')
      expectCode(f(z, p5, make([5, 1, 1], 166, 'float64'), perm, 2), 'ERR_SHAPE')
      expectCode(f(z, p5, p5, tensor([0, 1, 2, 3], [4], { dtype: 'float64' }), 2), 'ERR_SHAPE')
      expectCode(f(z, p5, p5, perm, 6), 'ERR_ARGUMENT')
      expectCode(f(z, p5, p5, perm, -1), 'ERR_ARGUMENT')
      expectCode(f(z, p5, p5, perm, 1.5), 'ERR_ARGUMENT')
      expectCode(f(z, p5, p5, tensor([0, 1, 2, 4, 4], [5], { dtype: 'float64' }), 2), 'ERR_ARGUMENT')
      expectCode(f(z, p5, p5, tensor([0, 1, 2, 3, 7], [5], { dtype: 'float64' }), 2), 'ERR_ARGUMENT')
      expectCode(f(z, p5.to({ dtype: 'float32' }), p5, perm, 2), 'ERR_DTYPE')
    }))
})

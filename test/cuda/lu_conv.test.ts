/**
 * luConvWeight on CUDA (cuda/lu_conv.cu) against the CPU (native/cpu/lu_conv.cc): W = P·L̃·Ũ and W⁻¹ with the
 * gradients into L, U and logS, float32 and float64, sizes that do not divide the block size, and the
 * documented difference on invalid factors (all-NaN outputs on the GPU where the CPU throws ERR_ARGUMENT).
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectCode, randomValues, rng } from '../helpers'
import { compareWithCpu, describeCuda, Input, values } from './compare'

const { luConvWeight } = ops

type DT = 'float32' | 'float64'

let seed = 9000

/** A random permutation matrix (P[i][perm[i]] = 1). */
function permutation(n: number): number[] {
  const r = rng(seed++)
  const perm = Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1))
    ;[perm[i], perm[j]] = [perm[j], perm[i]]
  }
  const p = new Array<number>(n * n).fill(0)
  perm.forEach((j, i) => (p[i * n + j] = 1))
  return p
}

const signs = (n: number): number[] => randomValues(n, seed++).map((v) => (v < 0 ? -1 : 1))

/** The inputs of luConvWeight: P and sign constant, L, U and logS differentiable. */
function factorInputs(n: number, scale: number): Input[] {
  return [
    { shape: [n, n], values: permutation(n), grad: false },
    { shape: [n, n], lo: -scale, hi: scale },
    { shape: [n, n], lo: -scale, hi: scale },
    { shape: [n], lo: -0.5, hi: 0.5 },
    { shape: [n], values: signs(n), grad: false },
  ]
}

describeCuda('CUDA luConvWeight', () => {
  for (const [dtype, tol] of [['float32', 1e-5], ['float64', 1e-10]] as [DT, number][]) {
    for (const n of [1, 2, 7, 33, 100, 257]) {
      // small off-diagonal entries keep W and W⁻¹ well-conditioned at every size
      const scale = Math.min(1, 3 / Math.sqrt(n))
      for (const inverse of [false, true]) {
        test(`${dtype} n=${n} inverse=${inverse}: the weight and the gradients of L, U and logS`, () => {
          compareWithCpu(factorInputs(n, scale), (P, L, U, logS, sign) => luConvWeight(P, L, U, logS, sign, { inverse }), {
            dtype,
            tol,
          })
        })
      }
    }
  }

  test('W·W⁻¹ = I on CUDA', () => {
    tidy(() => {
      const n = 19
      const mk = (v: number[], shape: number[]): Tensor => tensor(v, shape, { dtype: 'float64', device: 'cuda' })
      const args = [mk(permutation(n), [n, n]), mk(randomValues(n * n, seed++, -0.3, 0.3), [n, n]), mk(randomValues(n * n, seed++, -0.3, 0.3), [n, n]),
        mk(randomValues(n, seed++, -0.5, 0.5), [n]), mk(signs(n), [n])] as const
      const w = values(luConvWeight(...args))
      const v = values(luConvWeight(...args, { inverse: true }))
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          let s = 0
          for (let k = 0; k < n; k++) s += w[i * n + k] * v[k * n + j]
          expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-12)
        }
    })
  })

  test('invalid factors: ERR_ARGUMENT on the CPU, all-NaN outputs on CUDA (no host sync to throw)', () => {
    const n = 3
    const good = { P: permutation(n), L: randomValues(9, seed++), U: randomValues(9, seed++), logS: randomValues(3, seed++), sign: signs(3) }
    const bad: [string, typeof good][] = [
      ['P with a 2', { ...good, P: [2, 0, 0, 0, 1, 0, 0, 0, 1] }],
      ['P with a row of zeros', { ...good, P: [0, 0, 0, 0, 1, 0, 0, 0, 1] }],
      ['P with two ones in a column', { ...good, P: [1, 0, 0, 1, 0, 0, 0, 0, 1] }],
      ['sign 0.5', { ...good, sign: [1, 0.5, -1] }],
    ]
    for (const [what, f] of bad) {
      const run = (device: 'cpu' | 'cuda', inverse: boolean): number[] =>
        tidy(() => {
          const o = { dtype: 'float64' as const, device }
          return values(luConvWeight(tensor(f.P, [n, n], o), tensor(f.L, [n, n], o), tensor(f.U, [n, n], o), tensor(f.logS, [n], o), tensor(f.sign, [n], o), { inverse }))
        })
      for (const inverse of [false, true]) {
        expectCode(() => run('cpu', inverse), 'ERR_ARGUMENT')
        const out = run('cuda', inverse)
        if (!out.every((x) => Number.isNaN(x))) throw new Error(`${what} (inverse=${inverse}): expected all NaN on CUDA, got ${out}`)
      }
    }
    // the inverse with exp(logS) overflowing: the CPU refuses, CUDA gives NaN; the forward weight is computed on both
    const big = { ...good, logS: [0, 800, 0] }
    const o = { dtype: 'float64' as const, device: 'cuda' as const }
    tidy(() => {
      const out = values(luConvWeight(tensor(big.P, [n, n], o), tensor(big.L, [n, n], o), tensor(big.U, [n, n], o), tensor(big.logS, [n], o), tensor(big.sign, [n], o), { inverse: true }))
      expect(out.every((x) => Number.isNaN(x))).toBe(true)
    })
    expectCode(
      () => tidy(() => luConvWeight(tensor(big.P, [n, n]), tensor(big.L, [n, n]), tensor(big.U, [n, n]), tensor(big.logS, [n]), tensor(big.sign, [n]), { inverse: true })),
      'ERR_ARGUMENT',
    )
  })

  test('a 0×0 weight is empty on CUDA', () => {
    tidy(() => {
      const o = { dtype: 'float32' as const, device: 'cuda' as const }
      const w = luConvWeight(tensor([], [0, 0], o), tensor([], [0, 0], o), tensor([], [0, 0], o), tensor([], [0], o), tensor([], [0], o))
      expect(w.shape).toEqual([0, 0])
      expect(w.device).toBe('cuda')
    })
  })

  test('mixing CPU and CUDA tensors is ERR_DEVICE', () => {
    tidy(() => {
      const n = 4
      const cpu = (v: number[], shape: number[]): Tensor => tensor(v, shape, { dtype: 'float32' })
      const P = cpu(permutation(n), [n, n])
      const L = cpu(randomValues(16, seed++), [n, n])
      const U = cpu(randomValues(16, seed++), [n, n])
      const logS = cpu(randomValues(4, seed++), [n])
      const sign = cpu(signs(n), [n])
      expectCode(() => luConvWeight(P, L.to({ device: 'cuda' }), U, logS, sign), 'ERR_DEVICE')
      expectCode(() => luConvWeight(P.to({ device: 'cuda' }), L, U, logS, sign, { inverse: true }), 'ERR_DEVICE')
      expectCode(() => luConvWeight(P, L, U, logS, sign.to({ device: 'cuda' })), 'ERR_DEVICE')
    })
  })
})

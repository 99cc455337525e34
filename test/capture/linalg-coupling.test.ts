/**
 * Replay of the linalg family (lu, slogdet, inverse, solveTriangular, qr and their backwards) and of the fused
 * coupling ops (affineCoupling, catAffinePermute, permuteAffineSplit and their backwards) inside a captured step:
 * replayed outputs and gradients equal, bit for bit, what the ops compute eagerly on the new inputs.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { core } from '../../lib/binding'
import { captureNative } from '../../lib/capture'
import type { CouplingClampKind } from '../../lib/ops/coupling'
import { randomValues } from '../helpers'
import { expectReplayMatches, ReplayInput } from './replay'

const { linalg } = ops

describe('capture: linalg', () => {
  test('lu: P, L, U and the backward through L and U, L alone, U alone (float64, batched)', () => {
    expectReplayMatches([{ shape: [4, 4] }], (A) => {
      const { P, L, U } = linalg.lu(A)
      return [P, L, U]
    })
    expectReplayMatches([{ shape: [2, 3, 3, 3] }], (A) => {
      const { L, U } = linalg.lu(A)
      return [L, U]
    })
    expectReplayMatches([{ shape: [2, 4, 4] }], (A) => linalg.lu(A).L) // gU null
    expectReplayMatches([{ shape: [2, 4, 4] }], (A) => linalg.lu(A).U) // gL null
  })

  test('slogdet and its backward (single and batched)', () => {
    expectReplayMatches([{ shape: [5, 5] }], (A) => {
      const { sign, logabsdet } = linalg.slogdet(A)
      return [sign, logabsdet]
    })
    expectReplayMatches([{ shape: [3, 2, 4, 4] }], (A) => linalg.slogdet(A).logabsdet)
  })

  test('inverse and its backward (single and batched)', () => {
    expectReplayMatches([{ shape: [4, 4] }], (A) => linalg.inverse(A))
    expectReplayMatches([{ shape: [3, 3, 3] }], (A) => linalg.inverse(A))
  })

  for (const upper of [false, true])
    for (const left of [true, false])
      for (const unitriangular of [false, true])
        test(`solveTriangular upper=${upper} left=${left} unitriangular=${unitriangular}, gradients for A and B`, () => {
          const A: ReplayInput = { shape: [2, 4, 4], lo: 0.5, hi: 1.5 } // no zero on the diagonal
          const B: ReplayInput = { shape: left ? [2, 4, 3] : [2, 3, 4] }
          expectReplayMatches([A, B], (a, b) => linalg.solveTriangular(a, b, { upper, left, unitriangular }))
        })

  test('solveTriangular backward with only A or only B wanted', () => {
    const opts = { upper: true, left: true }
    expectReplayMatches([{ shape: [4, 4], lo: 0.5, hi: 1.5 }, { shape: [4, 2], grad: false }], (a, b) => linalg.solveTriangular(a, b, opts))
    expectReplayMatches([{ shape: [4, 4], lo: 0.5, hi: 1.5, grad: false }, { shape: [4, 2] }], (a, b) => linalg.solveTriangular(a, b, opts))
  })

  test('qr: Q and R, the backward through both, Q alone, R alone (tall and square, batched)', () => {
    expectReplayMatches([{ shape: [5, 3] }], (A) => {
      const { Q, R } = linalg.qr(A)
      return [Q, R]
    })
    expectReplayMatches([{ shape: [2, 4, 4] }], (A) => {
      const { Q, R } = linalg.qr(A)
      return [Q, R]
    })
    expectReplayMatches([{ shape: [6, 3] }], (A) => linalg.qr(A).Q) // gR null
    expectReplayMatches([{ shape: [6, 3] }], (A) => linalg.qr(A).R) // gQ null
  })

  test('float32: every entry point', () => {
    const dtype = 'float32'
    expectReplayMatches([{ shape: [2, 4, 4] }], (A) => {
      const { P, L, U } = linalg.lu(A)
      return [P, L, U]
    }, { dtype })
    expectReplayMatches([{ shape: [4, 4] }], (A) => {
      const { sign, logabsdet } = linalg.slogdet(A)
      return [sign, logabsdet]
    }, { dtype })
    expectReplayMatches([{ shape: [4, 4] }], (A) => linalg.inverse(A), { dtype })
    expectReplayMatches([{ shape: [4, 4], lo: 0.5, hi: 1.5 }, { shape: [4, 3] }], (a, b) => linalg.solveTriangular(a, b, { upper: false }), { dtype })
    expectReplayMatches([{ shape: [5, 3] }], (A) => {
      const { Q, R } = linalg.qr(A)
      return [Q, R]
    }, { dtype })
  })

  test('a matrix that turns singular between replays gives NaN (as on the GPU) instead of throwing', () => {
    tidy(() => {
      const A = tensor([2, 1, 1, 3], [2, 2], { dtype: 'float64' })
      const B = tensor([1, 0, 0, 1], [2, 2], { dtype: 'float64' })
      captureNative.captureBegin()
      let inv: Tensor, X: Tensor
      try {
        inv = linalg.inverse(A)
        X = linalg.solveTriangular(A, B, { upper: true })
      } catch (e) {
        captureNative.captureAbort()
        throw e
      }
      const program = captureNative.captureEnd(false)
      core.copyInto(A.handle, tensor([1, 2, 2, 4], [2, 2], { dtype: 'float64' }).handle) // rank 1
      captureNative.runProgram(program)
      expect(Array.from(inv.toArray()).every(Number.isNaN)).toBe(true)
      core.copyInto(A.handle, tensor([0, 1, 0, 1], [2, 2], { dtype: 'float64' }).handle) // zero on the diagonal
      captureNative.runProgram(program)
      expect(Array.from(X.toArray()).every(Number.isNaN)).toBe(true)
      // eagerly, the same matrices are refused
      expect(() => linalg.inverse(tensor([1, 2, 2, 4], [2, 2], { dtype: 'float64' }))).toThrow(/singular/)
      captureNative.releaseProgram(program)
    })
  })
})

const KINDS: CouplingClampKind[] = ['TANH_DIV', 'ATAN', 'TANH', 'SIGMOID', 'NONE']

describe('capture: affineCoupling', () => {
  for (const clampKind of KINDS)
    for (const gin of [false, true])
      for (const rev of [false, true])
        test(`${clampKind} gin=${gin} rev=${rev}: y2, logDet and the gradients of a and x2`, () => {
          expectReplayMatches([{ shape: [3, 8, 2, 3], lo: -3, hi: 3 }, { shape: [3, 4, 2, 3] }], (a, x2) =>
            ops.affineCoupling(a, x2, { preScale: 0.7, clampKind, clamp: 1.6, gin, rev }),
          )
        })

  test('vectors (B, 2·C2), the default options, AllInOneBlock options', () => {
    expectReplayMatches([{ shape: [5, 6] }, { shape: [5, 3] }], (a, x2) => ops.affineCoupling(a, x2))
    expectReplayMatches([{ shape: [4, 10], lo: -2, hi: 2 }, { shape: [4, 5] }], (a, x2) =>
      ops.affineCoupling(a, x2, { preScale: 0.1, clampKind: 'TANH_DIV', clamp: 2 }),
    )
  })

  test('backward with only y2, only logDet, and without the gradient of x2', () => {
    for (const gin of [false, true])
      for (const rev of [false, true]) {
        const opts = { clampKind: 'TANH' as const, gin, rev }
        expectReplayMatches([{ shape: [3, 8, 2] }, { shape: [3, 4, 2] }], (a, x2) => ops.affineCoupling(a, x2, opts)[0]) // gLogDet null
        expectReplayMatches([{ shape: [3, 8, 2] }, { shape: [3, 4, 2] }], (a, x2) => ops.affineCoupling(a, x2, opts)[1]) // gy2 null
        expectReplayMatches([{ shape: [3, 8, 2] }, { shape: [3, 4, 2], grad: false }], (a, x2) => ops.affineCoupling(a, x2, opts)) // needX2 false
      }
  })

  test('forward only (no saved E, D)', () => {
    expectReplayMatches([{ shape: [2, 6, 3] }, { shape: [2, 3, 3] }], (a, x2) => ops.affineCoupling(a, x2, { clampKind: 'SIGMOID' }), { backward: false })
  })

  test('float32', () => {
    for (const clampKind of KINDS)
      for (const gin of [false, true])
        expectReplayMatches([{ shape: [3, 8, 5], lo: -3, hi: 3 }, { shape: [3, 4, 5] }], (a, x2) =>
          ops.affineCoupling(a, x2, { preScale: 0.5, clampKind, clamp: 1.5, gin, rev: clampKind === 'ATAN' }),
        { dtype: 'float32' })
  })
})

const PERM = [3, 0, 4, 1, 2]
const INV = PERM.map((_, k) => PERM.indexOf(k))

describe('capture: catAffinePermute', () => {
  for (const withScale of [true, false])
    for (const spatial of [[], [2, 3]])
      for (const paramShape of [[5], [1, 5, ...spatial.map(() => 1)]])
        test(`scale=${withScale} spatial=[${spatial}] params [${paramShape}]`, () => {
          const inputs: ReplayInput[] = [
            { shape: [3, 2, ...spatial] },
            { shape: [3, 3, ...spatial] },
            { shape: paramShape },
            { values: PERM, shape: [5], grad: false },
          ]
          if (withScale) inputs.push({ shape: paramShape, lo: 0.5, hi: 2 })
          expectReplayMatches(inputs, (x1, y2, shift, perm, scale) => ops.catAffinePermute(x1, y2, scale ?? null, shift, perm))
        })

  test('backward without the gradients of scale and shift', () => {
    expectReplayMatches(
      [{ shape: [2, 2, 3] }, { shape: [2, 3, 3] }, { shape: [5], grad: false }, { values: PERM, shape: [5], grad: false }, { shape: [5], grad: false }],
      (x1, y2, shift, perm, scale) => ops.catAffinePermute(x1, y2, scale, shift, perm),
    )
  })

  test('float32', () => {
    expectReplayMatches(
      [{ shape: [4, 2, 3] }, { shape: [4, 3, 3] }, { shape: [5] }, { values: PERM, shape: [5], grad: false }, { shape: [5], lo: 0.5, hi: 2 }],
      (x1, y2, shift, perm, scale) => ops.catAffinePermute(x1, y2, scale, shift, perm),
      { dtype: 'float32' },
    )
  })
})

describe('capture: permuteAffineSplit', () => {
  for (const withScale of [true, false])
    for (const spatial of [[], [2, 2]])
      for (const c1 of [2, 0, 5])
        test(`scale=${withScale} spatial=[${spatial}] c1=${c1}`, () => {
          const inputs: ReplayInput[] = [{ shape: [3, 5, ...spatial] }, { shape: [5] }, { values: INV, shape: [5], grad: false }]
          if (withScale) inputs.push({ shape: [1, 5, ...spatial.map(() => 1)], lo: 0.5, hi: 2 })
          expectReplayMatches(inputs, (z, shift, index, scale) => ops.permuteAffineSplit(z, scale ?? null, shift, index, c1))
        })

  test('backward with only x1 or only x2, and without the gradients of scale and shift', () => {
    const inputs: ReplayInput[] = [{ shape: [3, 5, 2] }, { shape: [5] }, { values: INV, shape: [5], grad: false }, { shape: [5], lo: 0.5, hi: 2 }]
    expectReplayMatches(inputs, (z, shift, index, scale) => ops.permuteAffineSplit(z, scale, shift, index, 2)[0]) // gx2 null
    expectReplayMatches(inputs, (z, shift, index, scale) => ops.permuteAffineSplit(z, scale, shift, index, 2)[1]) // gx1 null
    const frozen: ReplayInput[] = [{ shape: [3, 5, 2] }, { shape: [5], grad: false }, { values: INV, shape: [5], grad: false }, { shape: [5], lo: 0.5, hi: 2, grad: false }]
    expectReplayMatches(frozen, (z, shift, index, scale) => ops.permuteAffineSplit(z, scale, shift, index, 3))
  })

  test('float32', () => {
    expectReplayMatches(
      [{ shape: [4, 5, 3] }, { shape: [5] }, { values: INV, shape: [5], grad: false }, { shape: [5], lo: 0.5, hi: 2 }],
      (z, shift, index, scale) => ops.permuteAffineSplit(z, scale, shift, index, 2),
      { dtype: 'float32' },
    )
  })
})

describe('capture: permutations are read when the kernel runs', () => {
  test('a replay follows a permutation overwritten in place; a non-permutation gives NaN', () => {
    tidy(() => {
      const f64 = { dtype: 'float64' as const }
      const x1 = tensor(randomValues(6, 1), [2, 3], f64)
      const y2 = tensor(randomValues(4, 2), [2, 2], f64)
      const shift = tensor(randomValues(5, 3), [5], f64)
      const scale = tensor(randomValues(5, 4, 0.5, 2), [5], f64)
      const perm = tensor(PERM, [5], f64)
      const z = tensor(randomValues(10, 5), [2, 5], f64)
      captureNative.captureBegin()
      let outs: Tensor[]
      try {
        outs = [ops.catAffinePermute(x1, y2, scale, shift, perm), ...ops.permuteAffineSplit(z, scale, shift, perm, 3)]
      } catch (e) {
        captureNative.captureAbort()
        throw e
      }
      const program = captureNative.captureEnd(false)
      const other = [1, 2, 0, 4, 3]
      core.copyInto(perm.handle, tensor(other, [5], f64).handle)
      captureNative.runProgram(program)
      const p2 = tensor(other, [5], f64)
      const eager = [ops.catAffinePermute(x1, y2, scale, shift, p2), ...ops.permuteAffineSplit(z, scale, shift, p2, 3)]
      outs.forEach((o, k) => expect(Array.from(o.toArray())).toEqual(Array.from(eager[k].toArray())))
      core.copyInto(perm.handle, tensor([0, 0, 1, 2, 3], [5], f64).handle)
      captureNative.runProgram(program)
      for (const o of outs) expect(Array.from(o.toArray()).every(Number.isNaN)).toBe(true)
      captureNative.releaseProgram(program)
    })
  })
})

/**
 * The fused affine coupling on the GPU (cuda/coupling.cu) against the CPU (native/cpu/coupling.cc): every clamp
 * kind × gin × rev, float32 and float64, forward and backward (both outputs, and each alone), rows shorter and
 * longer than a thread block, a size that does not divide it, and mixed devices. Skipped where no GPU is usable.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import type { CouplingClampKind } from '../../lib/ops/coupling'
import { expectCode } from '../helpers'
import { compareWithCpu, describeCuda } from './compare'

const KINDS: CouplingClampKind[] = ['TANH_DIV', 'ATAN', 'TANH', 'SIGMOID', 'NONE']
type DT = 'float32' | 'float64'
const dtypes: [DT, number][] = [
  ['float32', 1e-5],
  ['float64', 1e-12],
]
// x2 shapes: one value per row, a row shorter than a block, a row longer than 256 that does not divide it
const shapes = [[5, 1], [3, 4, 3, 2], [2, 3, 11, 13]]

describeCuda('affineCoupling (CUDA vs CPU)', () => {
  for (const [dtype, tol] of dtypes)
    for (const kind of KINDS)
      for (const gin of [false, true])
        for (const rev of [false, true])
          test(`${dtype} ${kind} gin=${gin} rev=${rev}`, () => {
            for (const shape of shapes) {
              const aShape = [shape[0], 2 * shape[1], ...shape.slice(2)]
              const opts = { preScale: 0.5, clampKind: kind, clamp: 1.5, gin, rev }
              // GIN's log-det is a sum that cancels to ~0: offset it so that a relative comparison means something
              compareWithCpu(
                [{ shape: aShape, lo: -3, hi: 3 }, { shape }],
                (a, x2) => {
                  const [y, l] = ops.affineCoupling(a, x2, opts)
                  return [y, gin ? l.add(1) : l]
                },
                { dtype, tol },
              )
              compareWithCpu([{ shape: aShape, lo: -3, hi: 3 }, { shape }], (a, x2) => ops.affineCoupling(a, x2, opts)[0], { dtype, tol })
              if (!gin) compareWithCpu([{ shape: aShape, lo: -3, hi: 3 }, { shape, grad: false }], (a, x2) => ops.affineCoupling(a, x2, opts)[1], { dtype, tol })
            }
          })

  test('mixed devices → ERR_DEVICE', () =>
    tidy(() => {
      const a = tensor([1, 2, 3, 4], [2, 2], { device: 'cuda' })
      const x2 = tensor([1, 2], [2, 1])
      expectCode(() => ops.affineCoupling(a, x2 as Tensor), 'ERR_DEVICE')
    }))
})

/** A fixed permutation of 0..n−1 (reversed, then the first half rotated by one). */
function permutation(n: number): number[] {
  const p = Array.from({ length: n }, (_, i) => n - 1 - i)
  const h = Math.floor(n / 2)
  return [...p.slice(1, h), ...(h > 0 ? [p[0]] : []), ...p.slice(h)]
}

describeCuda('catAffinePermute (CUDA vs CPU)', () => {
  // [x1 shape, C2, parameters as (C) or (1, C, 1, ...)]: vectors, a batch·spatial size above a thread block that
  // does not divide it, C above 256
  const cases: [number[], number, boolean][] = [
    [[5, 3], 2, true],
    [[3, 4, 11, 13], 3, false],
    [[2, 200, 3], 100, false],
  ]
  for (const [dtype, tol] of dtypes)
    for (const [x1Shape, c2, flat] of cases)
      for (const withScale of [true, false])
        test(`${dtype} x1 (${x1Shape.join(', ')}) C2 ${c2} ${withScale ? 'with' : 'without'} scale`, () => {
          const c = x1Shape[1] + c2
          const pShape = flat ? [c] : [1, c, ...x1Shape.slice(2).map(() => 1)]
          const inputs = [
            { shape: x1Shape },
            { shape: [x1Shape[0], c2, ...x1Shape.slice(2)] },
            { shape: pShape },
            { shape: [c], values: permutation(c), grad: false },
            ...(withScale ? [{ shape: pShape, lo: 0.2, hi: 3 }] : []),
          ]
          compareWithCpu(inputs, (x1, y2, shift, perm, scale) => ops.catAffinePermute(x1, y2, scale ?? null, shift, perm), { dtype, tol })
        })

  test('a perm that is not a permutation gives NaN; mixed devices → ERR_DEVICE', () =>
    tidy(() => {
      const x1 = tensor([1, 2, 3, 4], [2, 2], { device: 'cuda' })
      const y2 = tensor([5, 6], [2, 1], { device: 'cuda' })
      const shift = tensor([0, 0, 0], [3], { device: 'cuda' })
      const z = ops.catAffinePermute(x1, y2, null, shift, tensor([0, 1, 1], [3], { device: 'cuda' }))
      expect(Array.from(z.toArray()).every(Number.isNaN)).toBe(true)
      expectCode(() => ops.catAffinePermute(x1, y2, null, shift, tensor([0, 1, 2], [3])), 'ERR_DEVICE')
      expectCode(() => ops.catAffinePermute(x1, tensor([5, 6], [2, 1]), null, shift, tensor([0, 1, 2], [3], { device: 'cuda' })), 'ERR_DEVICE')
    }))
})

describeCuda('permuteAffineSplit (CUDA vs CPU)', () => {
  // [z shape, c1, parameters as (C) or (1, C, 1, ...)]
  const cases: [number[], number, boolean][] = [
    [[5, 5], 3, true],
    [[3, 7, 11, 13], 4, false],
    [[2, 300, 3], 150, false],
  ]
  for (const [dtype, tol] of dtypes)
    for (const [zShape, c1, flat] of cases)
      for (const withScale of [true, false])
        for (const onlyX2 of [false, true])
          test(`${dtype} z (${zShape.join(', ')}) c1 ${c1} ${withScale ? 'with' : 'without'} scale${onlyX2 ? ', x2 alone' : ''}`, () => {
            const c = zShape[1]
            const pShape = flat ? [c] : [1, c, ...zShape.slice(2).map(() => 1)]
            const inputs = [
              { shape: zShape },
              { shape: pShape },
              { shape: [c], values: permutation(c), grad: false },
              ...(withScale ? [{ shape: pShape, lo: 0.2, hi: 3 }] : []),
            ]
            compareWithCpu(
              inputs,
              (z, shift, index, scale) => {
                const [x1, x2] = ops.permuteAffineSplit(z, scale ?? null, shift, index, c1)
                return onlyX2 ? x2 : [x1, x2]
              },
              { dtype, tol },
            )
          })
})

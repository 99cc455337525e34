/**
 * actnorm on the GPU (cuda/actnorm.cu) against the CPU (native/cpu/actnorm.cc): both directions, float32 and
 * float64, forward and backward (both outputs, and each alone), vectors, a batch·spatial size above a thread
 * block that does not divide it, many channels, and mixed devices. Skipped where no GPU is usable.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectCode } from '../helpers'
import { compareWithCpu, describeCuda } from './compare'

type DT = 'float32' | 'float64'
const dtypes: [DT, number][] = [
  ['float32', 1e-5],
  ['float64', 1e-12],
]
const shapes = [[5, 2], [3, 4, 3, 2], [2, 3, 11, 13], [4, 300]]
const paramShape = (shape: number[]): number[] => [1, shape[1], ...shape.slice(2).map(() => 1)]

describeCuda('actnorm (CUDA vs CPU)', () => {
  for (const [dtype, tol] of dtypes)
    for (const rev of [false, true])
      test(`${dtype} rev=${rev}`, () => {
        for (const shape of shapes) {
          const p = paramShape(shape)
          const inputs = [{ shape, lo: -2, hi: 2 }, { shape: p }, { shape: p, lo: -1, hi: 1 }]
          compareWithCpu(inputs, (x, loc, ls) => ops.actnorm(x, loc, ls, rev), { dtype, tol })
          compareWithCpu(inputs, (x, loc, ls) => ops.actnorm(x, loc, ls, rev)[0], { dtype, tol })
          compareWithCpu([{ shape, grad: false }, { shape: p, grad: false }, { shape: p }], (x, loc, ls) => ops.actnorm(x, loc, ls, rev)[1], { dtype, tol })
        }
      })

  test('mixed devices → ERR_DEVICE', () =>
    tidy(() => {
      const x = tensor([1, 2, 3, 4], [2, 2], { device: 'cuda' })
      const p = tensor([0, 0], [1, 2])
      expectCode(() => ops.actnorm(x, p as Tensor, p as Tensor), 'ERR_DEVICE')
    }))
})

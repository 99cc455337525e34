/**
 * gaussianNll on the GPU (cuda/loss.cu) against the CPU (native/cpu/loss.cc): float32 and float64, with and
 * without the log-det, forward and backward, rows shorter and longer than a thread block, more samples than a
 * block holds, and mixed devices. Skipped where no GPU is usable.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectCode } from '../helpers'
import { compareWithCpu, describeCuda } from './compare'

type DT = 'float32' | 'float64'
const dtypes: [DT, number][] = [
  ['float32', 1e-5],
  ['float64', 1e-12],
]
const shapes = [[5, 1], [3, 4, 3, 2], [2, 3, 11, 13], [700, 2]]

describeCuda('gaussianNll (CUDA vs CPU)', () => {
  for (const [dtype, tol] of dtypes)
    test(dtype, () => {
      for (const shape of shapes) {
        compareWithCpu([{ shape, lo: -2, hi: 2 }, { shape: [shape[0]], lo: -3, hi: 3 }], (z, l) => ops.gaussianNll(z, l), { dtype, tol })
        compareWithCpu([{ shape, lo: -2, hi: 2 }], (z) => ops.gaussianNll(z, null), { dtype, tol })
        compareWithCpu([{ shape, grad: false }, { shape: [shape[0]] }], (z, l) => ops.gaussianNll(z, l), { dtype, tol })
      }
    })

  test('mixed devices → ERR_DEVICE', () =>
    tidy(() => {
      const z = tensor([1, 2, 3, 4], [2, 2], { device: 'cuda' })
      const l = tensor([0, 0], [2])
      expectCode(() => ops.gaussianNll(z, l as Tensor), 'ERR_DEVICE')
    }))
})

/**
 * catLinear on the GPU (native/cpu/matmul.cc's CUDA branch: the matmul table's gemm with offsets into the weight and
 * its gradient, broadcastMid for the bias, sumOuterInner for its gradient) against the CPU: float32 and float64,
 * forward and backward, with and without bias, parts of width 1 and 0, an empty batch, sizes above a GEMM tile,
 * only some gradients, and mixed devices. Skipped where no GPU is usable.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectCode } from '../helpers'
import { compareWithCpu, describeCuda } from './compare'

type DT = 'float32' | 'float64'
const dtypes: [DT, number][] = [
  ['float32', 1e-5],
  ['float64', 1e-12],
]
// [batch, part widths, out, bias]
const CASES: [number, number[], number, boolean][] = [
  [5, [3, 4], 6, true],
  [5, [3, 4], 6, false],
  [7, [5], 3, true],
  [4, [1, 1, 1], 2, true],
  [3, [2, 0, 3], 4, true],
  [0, [3, 4], 6, true],
  [300, [130, 70], 257, true],
]

function fn(n: number, withBias: boolean): (...xs: Tensor[]) => Tensor {
  return (...t: Tensor[]) => ops.catLinear(t.slice(0, n), t[n], withBias ? t[n + 1] : null)
}

describeCuda('catLinear (CUDA vs CPU)', () => {
  for (const [dtype, tol] of dtypes)
    test(`forward and backward (${dtype})`, () => {
      for (const [rows, widths, out, withBias] of CASES) {
        const total = widths.reduce((a, b) => a + b, 0)
        const inputs = [...widths.map((n) => ({ shape: [rows, n] })), { shape: [out, total] }, ...(withBias ? [{ shape: [out] }] : [])]
        compareWithCpu(inputs, fn(widths.length, withBias), { dtype, tol })
      }
    })

  for (const [dtype, tol] of dtypes)
    test(`only some gradients (${dtype})`, () => {
      compareWithCpu([{ shape: [6, 3], grad: false }, { shape: [6, 4] }, { shape: [5, 7] }, { shape: [5], grad: false }], fn(2, true), { dtype, tol })
      compareWithCpu([{ shape: [6, 3] }, { shape: [6, 4], grad: false }, { shape: [5, 7], grad: false }, { shape: [5] }], fn(2, true), { dtype, tol })
    })

  test('mixed devices → ERR_DEVICE', () =>
    tidy(() => {
      const x1 = tensor([1, 2], [1, 2], { device: 'cuda' })
      const x2 = tensor([3], [1, 1])
      const w = tensor([1, 2, 3], [1, 3], { device: 'cuda' })
      expectCode(() => ops.catLinear([x1, x2], w), 'ERR_DEVICE')
    }))
})

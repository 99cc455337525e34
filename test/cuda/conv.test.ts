/**
 * conv2d on CUDA against the CPU: forward and the gradients of x, weight and bias, for kernels, strides and
 * paddings of every kind (the 1×1 fast path included), float32 and float64, sizes that do not divide the
 * block size, an empty batch, a case large enough to run in several chunks of samples, and the ERR_DEVICE error
 * for mixed devices. Skipped without a GPU.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectCode } from '../helpers'
import { compareWithCpu, describeCuda } from './compare'

type DT = 'float32' | 'float64'
const DTYPES: DT[] = ['float32', 'float64']
const tolOf = (dtype: DT, f32 = 1e-5): number => (dtype === 'float32' ? f32 : 1e-12)

interface Case {
  name: string
  xs: number[] // N, C, H, W
  ws: number[] // O, C, KH, KW
  stride?: number | [number, number]
  padding?: number | [number, number]
  /** float32 gradient tolerance where the weight and bias gradients sum many terms */
  gradTol?: number
}

const cases: Case[] = [
  { name: '3×3, padding 1', xs: [2, 3, 7, 7], ws: [4, 3, 3, 3], padding: 1 },
  { name: '3×3, stride 2, padding 1', xs: [3, 2, 9, 8], ws: [5, 2, 3, 3], stride: 2, padding: 1 },
  { name: '1×1 (the direct path)', xs: [2, 8, 5, 7], ws: [4, 8, 1, 1] },
  { name: '1×1 with stride 2 (not direct)', xs: [2, 3, 7, 6], ws: [4, 3, 1, 1], stride: 2 },
  { name: '1×1 with padding 1 (not direct)', xs: [2, 3, 4, 5], ws: [2, 3, 1, 1], padding: 1 },
  { name: 'non-square kernel, strides and padding', xs: [2, 3, 9, 11], ws: [3, 3, 2, 5], stride: [1, 2], padding: [0, 2] },
  { name: 'stride larger than the kernel', xs: [1, 2, 10, 10], ws: [3, 2, 2, 2], stride: 3 },
  { name: 'kernel as large as the padded input', xs: [2, 2, 3, 4], ws: [3, 2, 5, 6], padding: 1 },
  { name: 'one sample, one channel', xs: [1, 1, 17, 15], ws: [1, 1, 3, 3], padding: 1 },
  { name: 'larger (257 output positions per row block)', xs: [4, 16, 17, 17], ws: [8, 16, 3, 3], padding: 1 },
  { name: '1×1 on 70000 positions', xs: [7, 3, 100, 100], ws: [2, 3, 1, 1], gradTol: 1e-4 },
]

const conv = (c: Case, withBias: boolean) => (x: Tensor, w: Tensor, b?: Tensor): Tensor =>
  ops.conv2d(x, w, withBias ? b : null, { stride: c.stride, padding: c.padding })

describeCuda('CUDA conv2d', () => {
  for (const dtype of DTYPES) {
    for (const c of cases) {
      test(`${c.name}: x ${JSON.stringify(c.xs)}, w ${JSON.stringify(c.ws)} (${dtype})`, () => {
        compareWithCpu([{ shape: c.xs }, { shape: c.ws }, { shape: [c.ws[0]] }], conv(c, true), {
          dtype,
          tol: tolOf(dtype),
          gradTol: tolOf(dtype, c.gradTol ?? 1e-5),
        })
      })
    }

    test(`without bias (${dtype})`, () => {
      const c = cases[1]
      compareWithCpu([{ shape: c.xs }, { shape: c.ws }], conv(c, false), { dtype, tol: tolOf(dtype) })
      const d = cases[2]
      compareWithCpu([{ shape: d.xs }, { shape: d.ws }], conv(d, false), { dtype, tol: tolOf(dtype) })
    })

    test(`only some inputs need gradients (${dtype})`, () => {
      for (const c of [cases[0], cases[2]]) {
        compareWithCpu([{ shape: c.xs }, { shape: c.ws, grad: false }, { shape: [c.ws[0]], grad: false }], conv(c, true), { dtype, tol: tolOf(dtype) })
        compareWithCpu([{ shape: c.xs, grad: false }, { shape: c.ws }, { shape: [c.ws[0]], grad: false }], conv(c, true), { dtype, tol: tolOf(dtype) })
        compareWithCpu([{ shape: c.xs, grad: false }, { shape: c.ws, grad: false }, { shape: [c.ws[0]] }], conv(c, true), { dtype, tol: tolOf(dtype) })
      }
    })

    test(`an empty batch: empty output, zero weight and bias gradients (${dtype})`, () => {
      const c: Case = { name: 'empty', xs: [0, 3, 5, 5], ws: [2, 3, 3, 3], padding: 1 }
      compareWithCpu([{ shape: c.xs }, { shape: c.ws }, { shape: [2] }], conv(c, true), { dtype, tol: tolOf(dtype) })
    })
  }

  test('several chunks of samples (about 30M col values per sample), float32', () => {
    // the backward's scratch per sample exceeds half the chunk budget: one sample per chunk, three chunks whose
    // weight gradients are summed in order. Each gradient entry sums 76800 terms: looser than 1e-5.
    const c: Case = { name: 'large', xs: [3, 128, 160, 160], ws: [2, 128, 3, 3], padding: 1 }
    compareWithCpu([{ shape: c.xs }, { shape: c.ws }, { shape: [2] }], conv(c, true), { tol: 1e-5, gradTol: 1e-4 })
  })

  test('results do not depend on recycled memory (repeated calls agree)', () => {
    for (let i = 0; i < 3; i++) compareWithCpu([{ shape: [2, 3, 7, 7] }, { shape: [4, 3, 3, 3] }, { shape: [4] }], conv(cases[0], true))
  })

  test('mixing a CPU and a CUDA tensor is ERR_DEVICE', () => {
    tidy(() => {
      const x = tensor(new Array(2 * 2 * 4 * 4).fill(0.5), [2, 2, 4, 4], { device: 'cuda' })
      const w = tensor(new Array(3 * 2 * 3 * 3).fill(0.1), [3, 2, 3, 3], { device: 'cuda' })
      const wCpu = tensor(new Array(3 * 2 * 3 * 3).fill(0.1), [3, 2, 3, 3])
      const bCpu = tensor([1, 2, 3], [3])
      expectCode(() => ops.conv2d(x, wCpu), 'ERR_DEVICE')
      expectCode(() => ops.conv2d(x, w, bCpu), 'ERR_DEVICE')
    })
  })
})

/**
 * linear with an activation on the GPU (cuda/matmul.cu: one cuBLASLt matmul with the bias and relu in its
 * epilogue, or the bias/gemm/activation path where cuBLASLt offers no epilogue; the relu/tanh gradient kernel)
 * against the CPU: float32 and float64, forward and backward, with and without bias, batched x, sizes that leave
 * cuBLASLt's alignment, empty sizes, the float32 precision settings, a fused Sequential and mixed devices. Skipped
 * where no GPU is usable.
 */
import { manualSeed, nn, ops, setMatmulPrecision, tensor, Tensor, tidy } from '../../lib'
import type { LinearActivation } from '../../lib/ops/matmul'
import { expectCode, randomValues, relErr } from '../helpers'
import { compareWithCpu, describeCuda } from './compare'

type DT = 'float32' | 'float64'
const dtypes: [DT, number][] = [
  ['float32', 1e-5],
  ['float64', 1e-12],
]
const ACTS: LinearActivation[] = ['relu', 'tanh', 'none']
// x shape, weight shape, bias
const CASES: [number[], number[], boolean][] = [
  [[7, 5], [3, 5], true],
  [[7, 5], [3, 5], false],
  [[5], [4, 5], true],
  [[2, 3, 257], [33, 257], true],
  [[257, 9], [1, 9], true],
  [[3, 70], [1000, 70], true],
  [[64, 128], [128, 128], true],
]

describeCuda('linear with an activation (CUDA vs CPU)', () => {
  for (const [dtype, tol] of dtypes)
    for (const act of ACTS)
      test(`${act} (${dtype})`, () => {
        for (const [xs, ws, withBias] of CASES) {
          const inputs = [{ shape: xs }, { shape: ws }]
          if (withBias) inputs.push({ shape: [ws[0]] })
          compareWithCpu(inputs, (x: Tensor, w: Tensor, b?: Tensor) => ops.linear(x, w, withBias ? b : null, { activation: act }), { dtype, tol })
        }
      })

  for (const [dtype, tol] of dtypes)
    test(`only some gradients, empty sizes (${dtype})`, () => {
      const lin = (x: Tensor, w: Tensor, b?: Tensor) => ops.linear(x, w, b, { activation: 'relu' })
      compareWithCpu([{ shape: [7, 5] }, { shape: [3, 5], grad: false }, { shape: [3] }], lin, { dtype, tol })
      compareWithCpu([{ shape: [7, 5], grad: false }, { shape: [3, 5] }, { shape: [3], grad: false }], lin, { dtype, tol })
      compareWithCpu([{ shape: [0, 5] }, { shape: [3, 5] }, { shape: [3] }], lin, { dtype, tol })
      compareWithCpu([{ shape: [4, 0] }, { shape: [3, 0] }, { shape: [3] }], lin, { dtype, tol })
    })

  test('a fused Sequential subnet (float32; the same seeded parameters on both devices)', () => {
    compareWithCpu([{ shape: [33, 6] }], (x) => {
      manualSeed(7)
      const net = new nn.Sequential(new nn.Linear(6, 64), new nn.ReLU(), new nn.Linear(64, 64), new nn.ReLU(), new nn.Linear(64, 6))
      return net.to({ device: x.device }).forward(x)
    })
  })

  test("setMatmulPrecision: 'highest' keeps float32 digits, 'high' and 'medium' lose some; float64 unaffected", () =>
    tidy(() => {
      try {
        const xv = randomValues(256 * 512, 21)
        const wv = randomValues(128 * 512, 22)
        const bv = randomValues(128, 23)
        const f64 = (v: number[], s: number[], device?: 'cuda') => tensor(v, s, { dtype: 'float64', device })
        const ref = ops.linear(f64(xv, [256, 512]), f64(wv, [128, 512]), f64(bv, [128]), { activation: 'relu' }).toArray()
        const x = tensor(xv, [256, 512], { device: 'cuda' })
        const w = tensor(wv, [128, 512], { device: 'cuda' })
        const b = tensor(bv, [128], { device: 'cuda' })
        const err = () => relErr(ops.linear(x, w, b, { activation: 'relu' }).toArray(), ref)
        expect(err()).toBeLessThan(1e-6)
        setMatmulPrecision('high')
        const tf32 = err()
        expect(tf32).toBeGreaterThan(1e-5)
        expect(tf32).toBeLessThan(5e-3)
        setMatmulPrecision('medium')
        expect(err()).toBeLessThan(3e-2)
        const y64 = ops.linear(f64(xv, [256, 512], 'cuda'), f64(wv, [128, 512], 'cuda'), f64(bv, [128], 'cuda'), { activation: 'relu' })
        expect(relErr(y64.toArray(), ref)).toBeLessThan(1e-14)
      } finally {
        setMatmulPrecision('highest')
      }
    }))

  test('mixed devices → ERR_DEVICE', () =>
    tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], { device: 'cuda' })
      const w = tensor([1, 2, 3, 4, 5, 6], [2, 3], { device: 'cuda' })
      expectCode(() => ops.linear(x, tensor([1, 2, 3, 4, 5, 6], [2, 3]), null, { activation: 'relu' }), 'ERR_DEVICE')
      expectCode(() => ops.linear(x, w, tensor([1, 2], [2]), { activation: 'relu' }), 'ERR_DEVICE')
    }))
})

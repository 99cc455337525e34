/**
 * The matmul family on CUDA against the CPU: matmul (torch.matmul's rules: 1-D operands, broadcast batch
 * dimensions and the gradient sums over them) and linear (fused bias, bias gradient), forward and backward,
 * float32 and float64, on sizes that do not divide the block size, empty tensors, batches beyond one cuBLAS
 * call, and the errors for mixed devices and too many batch dimensions. Skipped without a GPU.
 */
import { ops, setMatmulPrecision, tensor, Tensor, tidy } from '../../lib'
import { expectCode, randomValues, relErr } from '../helpers'
import { compareWithCpu, describeCuda } from './compare'

type DT = 'float32' | 'float64'
const DTYPES: DT[] = ['float32', 'float64']
const tolOf = (dtype: DT, f32 = 1e-5): number => (dtype === 'float32' ? f32 : 1e-12)

const mm = (a: Tensor, b: Tensor): Tensor => ops.matmul(a, b)

describeCuda('CUDA matmul', () => {
  const cases: [string, number[], number[]][] = [
    ['2-D', [7, 257], [257, 5]],
    ['2-D, one row and one column', [1, 7], [7, 1]],
    ['2-D, wide', [3, 33], [33, 1000]],
    ['1-D · 1-D (dot product)', [257], [257]],
    ['1-D · 2-D', [257], [257, 3]],
    ['2-D · 1-D', [5, 7], [7]],
    ['1-D · batched', [5], [3, 5, 2]],
    ['batched · 1-D', [3, 4, 5], [5]],
    ['batched · 2-D (b shared: one GEMM over all rows)', [2, 3, 4, 5], [5, 7]],
    ['batched · 2-D with size-1 batch dims', [1, 4, 5], [1, 1, 5, 2]],
    ['2-D · batched (a shared: its gradient sums the batch)', [4, 5], [6, 5, 3]],
    ['same batch', [4, 3, 6], [4, 6, 2]],
    ['both broadcast ([3,1] against [2])', [3, 1, 4, 5], [2, 5, 6]],
    ['both broadcast, interleaved', [2, 1, 3, 4], [1, 5, 4, 2]],
    ['three batch dims, mixed', [2, 1, 3, 2, 3], [1, 4, 3, 3, 2]],
    ['many rows', [1000, 70], [70, 33]],
  ]
  for (const dtype of DTYPES)
    for (const [name, as, bs] of cases)
      test(`${name}: ${JSON.stringify(as)} · ${JSON.stringify(bs)} (${dtype})`, () => {
        compareWithCpu([{ shape: as }, { shape: bs }], mm, { dtype, tol: tolOf(dtype) })
      })

  for (const dtype of DTYPES) {
    test(`70000 rows: b's gradient sums 70000 terms (${dtype})`, () => {
      // both devices sum in float32 for float32, in different orders: looser than 1e-5
      compareWithCpu([{ shape: [70000, 3] }, { shape: [3, 2] }], mm, { dtype, tol: tolOf(dtype), gradTol: tolOf(dtype, 1e-4) })
    })

    test(`a batch of 70000 products (more than one cuBLAS call) (${dtype})`, () => {
      compareWithCpu([{ shape: [70000, 2, 3] }, { shape: [70000, 3, 2] }], mm, { dtype, tol: tolOf(dtype) })
    })

    test(`a shared by a batch of 70000: its gradient sums 70000 products (${dtype})`, () => {
      // the CPU sums the 70000 products in its own precision, the GPU in double: looser for float32
      compareWithCpu([{ shape: [2, 3] }, { shape: [70000, 3, 2] }], mm, { dtype, tol: tolOf(dtype), gradTol: tolOf(dtype, 1e-4) })
    })

    test(`only one operand needs a gradient (${dtype})`, () => {
      compareWithCpu([{ shape: [3, 1, 4, 5] }, { shape: [2, 5, 6], grad: false }], mm, { dtype, tol: tolOf(dtype) })
      compareWithCpu([{ shape: [3, 1, 4, 5], grad: false }, { shape: [2, 5, 6] }], mm, { dtype, tol: tolOf(dtype) })
    })

    test(`empty operands (${dtype})`, () => {
      compareWithCpu([{ shape: [0, 3] }, { shape: [3, 4] }], mm, { dtype, tol: tolOf(dtype) })
      compareWithCpu([{ shape: [3, 4] }, { shape: [4, 0] }], mm, { dtype, tol: tolOf(dtype) })
      // K = 0: the product is zeros, and so are the (empty) gradients
      compareWithCpu([{ shape: [3, 0] }, { shape: [0, 4] }], mm, { dtype, tol: tolOf(dtype) })
      compareWithCpu([{ shape: [2, 3, 0] }, { shape: [0, 4] }], mm, { dtype, tol: tolOf(dtype) })
      // an empty batch: a's gradient has values, all zeros (no product reaches them)
      compareWithCpu([{ shape: [2, 1, 3, 4] }, { shape: [0, 4, 5] }], mm, { dtype, tol: tolOf(dtype) })
    })
  }

  test('no values are read from the output buffer (fresh results every call)', () => {
    // the pool hands back recycled memory: a product written with beta = 0 must not depend on it
    for (let i = 0; i < 3; i++) compareWithCpu([{ shape: [9, 17] }, { shape: [17, 13] }], mm)
  })

  test('mixing a CPU and a CUDA tensor is ERR_DEVICE', () => {
    tidy(() => {
      const a = tensor([1, 2, 3, 4], [2, 2])
      const b = tensor([1, 2, 3, 4], [2, 2], { device: 'cuda' })
      expectCode(() => ops.matmul(a, b), 'ERR_DEVICE')
      expectCode(() => ops.matmul(b, a), 'ERR_DEVICE')
    })
  })

  test('size-1 batch dimensions do not count against the 8 the GPU handles', () => {
    // batch [2, 1, 1, 1, 1, 1, 1, 1, 1, 2]: two dimensions larger than 1
    // (forward only: the loss of the backward comparison would run other ops on a 12-D tensor)
    compareWithCpu([{ shape: [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3] }, { shape: [2, 3, 2] }], mm, { backward: false })
  })

  test('more than 8 batch dimensions larger than 1 is ERR_SHAPE on CUDA', () => {
    tidy(() => {
      // batch [2, 2, 2, 2, 2, 2, 2, 2, 2]
      const a = tensor(new Array(512).fill(1), [2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1], { device: 'cuda' })
      const b = tensor([1, 2], [2, 1, 1], { device: 'cuda' })
      expectCode(() => ops.matmul(a, b), 'ERR_SHAPE')
    })
  })
})

describeCuda('CUDA linear', () => {
  const cases: [string, number[], number[], boolean][] = [
    ['with bias', [7, 5], [3, 5], true],
    ['without bias', [7, 5], [3, 5], false],
    ['1-D x', [5], [4, 5], true],
    ['batched x', [2, 3, 257], [33, 257], true],
    ['one output', [257, 9], [1, 9], true],
    ['wide', [3, 70], [1000, 70], true],
  ]
  const lin = (withBias: boolean) => (x: Tensor, w: Tensor, b?: Tensor): Tensor => ops.linear(x, w, withBias ? b : null)
  for (const dtype of DTYPES) {
    for (const [name, xs, ws, withBias] of cases)
      test(`${name}: x ${JSON.stringify(xs)}, w ${JSON.stringify(ws)} (${dtype})`, () => {
        const inputs = [{ shape: xs }, { shape: ws }]
        if (withBias) inputs.push({ shape: [ws[0]] })
        compareWithCpu(inputs, lin(withBias), { dtype, tol: tolOf(dtype) })
      })

    test(`70000 rows: the weight and bias gradients sum 70000 terms (${dtype})`, () => {
      // the CPU sums in its own precision, the GPU's bias gradient in double: looser for float32
      compareWithCpu([{ shape: [70000, 3] }, { shape: [2, 3] }, { shape: [2] }], lin(true), {
        dtype,
        tol: tolOf(dtype),
        gradTol: tolOf(dtype, 1e-4),
      })
    })

    test(`only some inputs need gradients (${dtype})`, () => {
      compareWithCpu([{ shape: [7, 5] }, { shape: [3, 5], grad: false }, { shape: [3] }], lin(true), { dtype, tol: tolOf(dtype) })
      compareWithCpu([{ shape: [7, 5], grad: false }, { shape: [3, 5] }, { shape: [3], grad: false }], lin(true), { dtype, tol: tolOf(dtype) })
    })

    test(`empty sizes (${dtype})`, () => {
      // no rows: empty output; the weight and bias gradients are zeros
      compareWithCpu([{ shape: [0, 5] }, { shape: [3, 5] }, { shape: [3] }], lin(true), { dtype, tol: tolOf(dtype) })
      // no input features: the output is the bias
      compareWithCpu([{ shape: [4, 0] }, { shape: [3, 0] }, { shape: [3] }], lin(true), { dtype, tol: tolOf(dtype) })
      // no outputs
      compareWithCpu([{ shape: [4, 5] }, { shape: [0, 5] }, { shape: [0] }], lin(true), { dtype, tol: tolOf(dtype) })
    })
  }

  test('mixing a CPU and a CUDA tensor is ERR_DEVICE', () => {
    tidy(() => {
      const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], { device: 'cuda' })
      const w = tensor([1, 2, 3, 4, 5, 6], [2, 3], { device: 'cuda' })
      const wCpu = tensor([1, 2, 3, 4, 5, 6], [2, 3])
      const bCpu = tensor([1, 2], [2])
      expectCode(() => ops.linear(x, wCpu), 'ERR_DEVICE')
      expectCode(() => ops.linear(x, w, bCpu), 'ERR_DEVICE')
    })
  })
})

describeCuda('setMatmulPrecision on the GPU', () => {
  afterEach(() => setMatmulPrecision('highest'))
  test("'high' (TF32) and 'medium' (bf16) lose digits in float32 products, 'highest' does not; float64 is unaffected", () => {
    tidy(() => {
      const av = randomValues(256 * 512, 11)
      const bv = randomValues(512 * 128, 12)
      const ref = ops.matmul(tensor(av, [256, 512], { dtype: 'float64' }), tensor(bv, [512, 128], { dtype: 'float64' })).toArray()
      const a = tensor(av, [256, 512], { device: 'cuda' })
      const b = tensor(bv, [512, 128], { device: 'cuda' })
      const err = () => relErr(ops.matmul(a, b).toArray(), ref)
      expect(err()).toBeLessThan(1e-6)
      setMatmulPrecision('high')
      const tf32 = err()
      expect(tf32).toBeGreaterThan(1e-5)
      expect(tf32).toBeLessThan(5e-3)
      setMatmulPrecision('medium')
      const bf16 = err()
      expect(bf16).toBeGreaterThan(tf32 / 2)
      expect(bf16).toBeLessThan(3e-2)
      const a64 = tensor(av, [256, 512], { dtype: 'float64', device: 'cuda' })
      const b64 = tensor(bv, [512, 128], { dtype: 'float64', device: 'cuda' })
      expect(relErr(ops.matmul(a64, b64).toArray(), ref)).toBeLessThan(1e-14)
    })
  })
})

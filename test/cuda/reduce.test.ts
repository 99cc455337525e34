/**
 * The reduce family on the GPU (cuda/reduce.cu) against the CPU (native/cpu/reduce.cc): sum and mean over any
 * dimensions, forward and backward (which broadcasts back through expand), the broadcasting backward
 * (sumToShape) through binary ops and expand, every reduction scheme of the GPU (a thread, a warp, a block
 * or several blocks per output), float32 (accumulated in double) and float64, empty tensors, determinism and
 * the ERR_DEVICE of mixed devices. Skipped where no GPU is usable.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectCode, randomValues } from '../helpers'
import { compareWithCpu, describeCuda, values } from './compare'

type DT = 'float32' | 'float64'
const dtypes: [DT, number][] = [
  ['float32', 1e-5],
  ['float64', 1e-12],
]

// [shape, dims (undefined = all), keepdim]
const cases: [number[], number | number[] | undefined, boolean][] = [
  [[1], undefined, false],
  [[7], 0, false],
  [[257], undefined, true],
  [[1000], 0, false],
  [[70000], undefined, false], // block per output, several slices
  [[3, 4, 5], 0, false],
  [[3, 4, 5], 1, false],
  [[3, 4, 5], 2, true],
  [[3, 4, 5], -1, false],
  [[3, 4, 5], [0, 2], false],
  [[3, 4, 5], [1, 2], true],
  [[3, 4, 5], undefined, true],
  [[2, 3, 4, 5], [0, 2], false],
  [[2, 3, 4, 5], [1, 3], true],
  [[2, 3, 4, 5], [0, 3], false],
  [[3, 1, 4], 1, false], // a size-1 dimension
  [[3, 1, 4], [0, 2], true],
  [[70000, 2], 0, false], // outer reduction, many elements per output
  [[2, 70000], 1, false], // inner reduction, block scheme
  [[70000, 3], 1, false], // a thread per output
  [[257, 33], 1, true], // a warp per output
  [[33, 257], 0, false],
  [[5, 5000, 3], [0, 2], false], // a warp per output over two reduced groups
  [[3, 40000, 2], 1, false], // two slices per output
  [[4, 3, 5, 7, 2], [0, 2, 4], true],
  [[2, 3, 2, 3, 2, 3, 2, 3], [1, 3, 5, 7], false], // 8 alternating groups (the backward broadcasts over 8 dims)
  [[], undefined, false], // 0-d
]

describeCuda('CUDA sum and mean match the CPU', () => {
  for (const [dtype, tol] of dtypes)
    for (const mean of [false, true])
      test.each(cases)(`${mean ? 'mean' : 'sum'} ${dtype} of %j over %j, keepdim %s`, (shape, dims, keepdim) => {
        compareWithCpu([{ shape }], (x) => (mean ? x.mean(dims, keepdim) : x.sum(dims, keepdim)), { dtype, tol })
      })

  test('10 alternating kept and reduced dimensions: the forward takes up to 16 groups', () => {
    for (const [dtype, tol] of dtypes)
      compareWithCpu([{ shape: [2, 3, 2, 3, 2, 3, 2, 3, 2, 3] }], (x) => x.sum([1, 3, 5, 7, 9]), { dtype, tol, backward: false })
  })

  test('float32 sums are accumulated in double: a large sum agrees with float64 to float32 rounding', () => {
    // 2^24 + many small values: a float32 accumulator would lose every small value
    const n = 100000
    const v = new Array<number>(n).fill(0.25)
    v[0] = 16777216
    const s32 = tidy(() => values(tensor(v, [n], { dtype: 'float32', device: 'cuda' }).sum()))[0]
    const s64 = tidy(() => values(tensor(v, [n], { dtype: 'float64', device: 'cuda' }).sum()))[0]
    expect(s64).toBe(16777216 + 0.25 * (n - 1))
    expect(Math.abs(s32 - s64) / s64).toBeLessThan(1e-7)
  })

  test('sums are deterministic: the same input gives the same bits', () => {
    tidy(() => {
      const x = tensor(randomValues(300000, 99), [3, 50000, 2], { device: 'cuda' })
      const first = values(x.sum([1]))
      for (let k = 0; k < 3; k++) expect(values(x.sum([1]))).toEqual(first)
      const all = values(x.sum())
      expect(values(x.sum())).toEqual(all)
    })
  })

  test('empty tensors: sums are 0, means NaN, as on the CPU', () => {
    tidy(() => {
      for (const dtype of ['float32', 'float64'] as DT[]) {
        const x = tensor([], [0, 3], { dtype, device: 'cuda' })
        expect(values(x.sum(0))).toEqual([0, 0, 0])
        expect(values(x.mean(0)).every(Number.isNaN)).toBe(true)
        expect(values(x.sum(1))).toEqual([])
        expect(values(x.sum())).toEqual([0])
      }
    })
    compareWithCpu([{ shape: [0, 3] }], (x) => x.sum(0))
    compareWithCpu([{ shape: [4, 0] }], (x) => x.sum(0, true))
  })
})

describeCuda('CUDA sumToShape (the backward of broadcasting) matches the CPU', () => {
  test.each(dtypes)('through binary ops, where and expand (%s)', (dtype, tol) => {
    const opts = { dtype, tol }
    const pairs: [number[], number[]][] = [
      [[70000, 2], [2]],
      [[257, 3], [257, 1]],
      [[4, 1000], [1, 1000]],
      [[5, 1, 3], [1, 4, 1]],
      [[7], []],
      [[2, 3, 4, 5], [3, 1, 1]],
    ]
    for (const [as, bs] of pairs) compareWithCpu([{ shape: as }, { shape: bs }], (a, b) => a.mul(b).add(b), opts)
    compareWithCpu([{ shape: [3] }], (x) => x.expand([70000, 3]).square(), opts)
    compareWithCpu(
      [{ shape: [1000, 1], grad: false }, { shape: [1, 7] }, { shape: [1000, 7] }],
      (c, a, b) => ops.where(c.gt(0), a, b),
      opts,
    )
  })

  test('a mean of a broadcast product: the backward chains expand and sumToShape', () => {
    compareWithCpu([{ shape: [257, 5] }, { shape: [5] }], (a: Tensor, b: Tensor) => a.mul(b).mean(0).sum())
  })
})

describeCuda('CUDA reduce errors', () => {
  test('reductions keep the device; mixing devices is ERR_DEVICE; bad dims are ERR_ARGUMENT', () => {
    tidy(() => {
      const g = tensor([1, 2, 3, 4, 5, 6], [2, 3], { device: 'cuda' })
      const s = g.sum(0)
      expect(s.device).toBe('cuda')
      expect(values(s)).toEqual([5, 7, 9])
      expectCode(() => g.add(tensor([1, 2, 3], [3])), 'ERR_DEVICE')
      expectCode(() => g.sum(2), 'ERR_ARGUMENT')
    })
  })
})

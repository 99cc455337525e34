/**
 * The shape family on the GPU (cuda/shape.cu) against the CPU: permute/transpose, narrow, cat/stack,
 * split/chunk, indexSelect and gather, forward and backward, float32 and float64. These ops only move data and
 * their backwards add in the CPU's order, so the results agree exactly; the tolerances are the usual ones.
 *
 * One documented difference: a bad index in an index TENSOR makes the CPU throw ERR_ARGUMENT, while the GPU
 * (which cannot read the index on the host without waiting) writes NaN where the bad index points.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectCode } from '../helpers'
import { compareWithCpu, describeCuda, values } from './compare'

type DT = 'float32' | 'float64'
const dtypes: DT[] = ['float32', 'float64']
const tolOf = (dtype: DT) => (dtype === 'float32' ? 1e-5 : 1e-12)

/** n integer index values in [0, limit), deterministic. */
function indexValues(n: number, limit: number, seed = 1): number[] {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((i * 7 + seed * 13 + ((i * i) % 5)) % limit)
  return out
}

for (const dtype of dtypes) {
  const opts = { dtype, tol: tolOf(dtype) }

  describeCuda(`shape ops on CUDA (${dtype}): permute / transpose`, () => {
    const cases: [number[], number[]][] = [
      [[1], [0]],
      [[7], [0]],
      [[257, 3], [1, 0]],
      [[2, 3, 4], [2, 0, 1]],
      [[1, 257, 1, 3], [3, 1, 0, 2]], // only size-1 dims move around the transpose
      [[3, 5, 7, 11], [3, 1, 0, 2]],
      [[300, 257], [1, 0]],
      [[2, 1, 3, 1, 5], [4, 3, 2, 1, 0]],
      [[0, 3], [1, 0]],
      [[], []],
    ]
    for (const [shape, dims] of cases)
      test(`[${shape}] by [${dims}]`, () => compareWithCpu([{ shape }], (x) => ops.permute(x, dims), opts))

    test('transpose and t()', () => {
      compareWithCpu([{ shape: [4, 1000] }], (x) => ops.transpose(x, 0, 1), opts)
      compareWithCpu([{ shape: [3, 7, 9] }], (x) => x.transpose(-1, 0), opts)
      compareWithCpu([{ shape: [17, 70] }], (x) => x.t(), opts)
    })

    test('more than 8 unmergeable dimensions: ERR_SHAPE on CUDA', () => {
      const shape = [2, 2, 2, 2, 2, 2, 2, 2, 2]
      const dims = [8, 7, 6, 5, 4, 3, 2, 1, 0]
      tidy(() => {
        const x = tensor(new Array(512).fill(1), shape, { dtype, device: 'cuda' })
        expectCode(() => ops.permute(x, dims), 'ERR_SHAPE')
        // nine dims that merge into fewer than nine are fine
        const y = tensor(new Array(512).fill(1), shape, { dtype, device: 'cuda' })
        expect(ops.permute(y, [0, 1, 2, 3, 4, 5, 6, 8, 7]).shape).toEqual(shape)
      })
    })
  })

  describeCuda(`shape ops on CUDA (${dtype}): narrow`, () => {
    test('inner and outer dimensions, sizes that do not divide 256', () => {
      compareWithCpu([{ shape: [7, 257] }], (x) => ops.narrow(x, 1, 3, 200), opts)
      compareWithCpu([{ shape: [7, 257] }], (x) => ops.narrow(x, 0, 2, 5), opts)
      compareWithCpu([{ shape: [70000] }], (x) => ops.narrow(x, 0, 1, 69998), opts)
      compareWithCpu([{ shape: [3, 1000, 2] }], (x) => x.narrow(1, -10, 10), opts)
      compareWithCpu([{ shape: [1] }], (x) => ops.narrow(x, 0, 0, 1), opts)
    })
    test('zero length and empty inputs', () => {
      compareWithCpu([{ shape: [5, 9] }], (x) => ops.narrow(x, 1, 4, 0), opts)
      compareWithCpu([{ shape: [0, 9] }], (x) => ops.narrow(x, 1, 2, 3), opts)
    })
  })

  describeCuda(`shape ops on CUDA (${dtype}): cat / stack`, () => {
    test('cat along each dimension', () => {
      compareWithCpu([{ shape: [3, 5] }, { shape: [4, 5] }, { shape: [0, 5] }], (a, b, c) => ops.cat([a, b, c], 0), opts)
      compareWithCpu([{ shape: [2, 7] }, { shape: [2, 1] }, { shape: [2, 257] }], (a, b, c) => ops.cat([a, b, c], 1), opts)
      compareWithCpu([{ shape: [1000, 7, 3] }, { shape: [1000, 7, 2] }], (a, b) => ops.cat([a, b], -1), opts)
      compareWithCpu([{ shape: [1] }], (a) => ops.cat([a], 0), opts)
    })
    test('gradients only for the pieces that need them', () => {
      compareWithCpu([{ shape: [3, 5] }, { shape: [4, 5], grad: false }, { shape: [1, 5] }], (a, b, c) => ops.cat([a, b, c], 0), opts)
    })
    test('many pieces', () => {
      const inputs = Array.from({ length: 40 }, (_, i) => ({ shape: [3, 1 + (i % 4)] }))
      compareWithCpu(inputs, (...xs) => ops.cat(xs, 1), opts)
    })
    test('stack', () => {
      compareWithCpu([{ shape: [7, 3] }, { shape: [7, 3] }, { shape: [7, 3] }], (a, b, c) => ops.stack([a, b, c], 1), opts)
      compareWithCpu([{ shape: [257] }, { shape: [257] }], (a, b) => ops.stack([a, b], 0), opts)
    })
    test('mixing a CPU and a CUDA tensor: ERR_DEVICE', () => {
      tidy(() => {
        const a = tensor([1, 2, 3], [3], { dtype })
        const b = tensor([4, 5], [2], { dtype, device: 'cuda' })
        expectCode(() => ops.cat([a, b], 0), 'ERR_DEVICE')
        expectCode(() => ops.cat([b, a], 0), 'ERR_DEVICE')
      })
    })
  })

  describeCuda(`shape ops on CUDA (${dtype}): split / chunk`, () => {
    test('split by size and by sizes', () => {
      compareWithCpu([{ shape: [10, 257] }], (x) => ops.split(x, 3, 0), opts)
      compareWithCpu([{ shape: [10, 257] }], (x) => ops.split(x, [1, 0, 256], 1), opts)
      compareWithCpu([{ shape: [70000] }], (x) => x.split(30000), opts)
    })
    test('chunk', () => {
      compareWithCpu([{ shape: [6, 1001] }], (x) => ops.chunk(x, 4, 1), opts)
      compareWithCpu([{ shape: [1, 7] }], (x) => ops.chunk(x, 3, 0), opts)
    })
    test('backward with pieces that got no gradient (zeros there)', () => {
      compareWithCpu([{ shape: [10, 257] }], (x) => ops.split(x, 3, 0)[1], opts)
      compareWithCpu([{ shape: [4, 9] }], (x) => {
        const [a, , c] = ops.split(x, [2, 3, 4], 1)
        return [a, c]
      }, opts)
    })
  })

  describeCuda(`shape ops on CUDA (${dtype}): indexSelect`, () => {
    test('index as a tensor, along each dimension, with repeats', () => {
      compareWithCpu([{ shape: [5, 257] }, { shape: [4], values: [4, 0, 0, 2], grad: false }], (x, i) => ops.indexSelect(x, 0, i), opts)
      compareWithCpu([{ shape: [5, 257] }, { shape: [300], values: indexValues(300, 257), grad: false }], (x, i) => ops.indexSelect(x, 1, i), opts)
      compareWithCpu([{ shape: [3, 70, 7] }, { shape: [1000], values: indexValues(1000, 70), grad: false }], (x, i) => x.indexSelect(1, i), opts)
      compareWithCpu([{ shape: [1] }, { shape: [1], values: [0], grad: false }], (x, i) => ops.indexSelect(x, 0, i), opts)
    })
    test('index as a number[]', () => {
      compareWithCpu([{ shape: [6, 9] }], (x) => ops.indexSelect(x, 1, [8, 0, 3, 3, 8]), opts)
      compareWithCpu([{ shape: [70000] }], (x) => ops.indexSelect(x, 0, indexValues(257, 70000)), opts)
    })
    test('empty index and empty x', () => {
      compareWithCpu([{ shape: [4, 5] }], (x) => ops.indexSelect(x, 0, []), opts)
      compareWithCpu([{ shape: [0, 5] }], (x) => ops.indexSelect(x, 1, [1, 2]), opts)
    })
    test('an index tensor of the other dtype', () => {
      const other: DT = dtype === 'float32' ? 'float64' : 'float32'
      const run = (device: 'cpu' | 'cuda') =>
        tidy(() => {
          const x = tensor(indexValues(40, 97).map((v) => v / 7), [8, 5], { dtype, device })
          const i = tensor([7, 1, 1, 0], [4], { dtype: other, device })
          return values(ops.indexSelect(x, 0, i))
        })
      expect(run('cuda')).toEqual(run('cpu'))
    })
    test('a bad index tensor value gives NaN rows on CUDA (the CPU throws ERR_ARGUMENT)', () => {
      tidy(() => {
        const xv = [1, 2, 3, 4, 5, 6]
        expectCode(() => ops.indexSelect(tensor(xv, [3, 2], { dtype }), 0, tensor([0, 3], [2], { dtype })), 'ERR_ARGUMENT')
        const y = values(ops.indexSelect(tensor(xv, [3, 2], { dtype, device: 'cuda' }), 0, tensor([0, 3, 1.5, -1], [4], { dtype, device: 'cuda' })))
        expect(y.slice(0, 2)).toEqual([1, 2])
        expect(y.slice(2).every(Number.isNaN)).toBe(true)
      })
    })
    test('a bad number[] index throws ERR_ARGUMENT on CUDA too', () => {
      tidy(() => {
        const x = tensor([1, 2, 3], [3], { dtype, device: 'cuda' })
        expectCode(() => ops.indexSelect(x, 0, [3]), 'ERR_ARGUMENT')
      })
    })
    test('x and index on different devices: ERR_DEVICE', () => {
      tidy(() => {
        const xc = tensor([1, 2, 3], [3], { dtype, device: 'cuda' })
        const ic = tensor([0], [1], { dtype, device: 'cuda' })
        expectCode(() => ops.indexSelect(xc, 0, tensor([0], [1], { dtype })), 'ERR_DEVICE')
        expectCode(() => ops.indexSelect(tensor([1, 2, 3], [3], { dtype }), 0, ic), 'ERR_DEVICE')
      })
    })
  })

  describeCuda(`shape ops on CUDA (${dtype}): gather`, () => {
    test('along each dimension, index smaller than x elsewhere, repeats', () => {
      compareWithCpu([{ shape: [4, 6, 5] }, { shape: [3, 8, 2], values: indexValues(48, 6), grad: false }], (x, i) => ops.gather(x, 1, i), opts)
      compareWithCpu([{ shape: [4, 6, 5] }, { shape: [9, 6, 5], values: indexValues(270, 4, 2), grad: false }], (x, i) => ops.gather(x, 0, i), opts)
      compareWithCpu([{ shape: [4, 6, 5] }, { shape: [4, 6, 7], values: indexValues(168, 5, 3), grad: false }], (x, i) => x.gather(-1, i), opts)
      compareWithCpu([{ shape: [257, 3] }, { shape: [1000, 3], values: indexValues(3000, 257), grad: false }], (x, i) => ops.gather(x, 0, i), opts)
      compareWithCpu([{ shape: [70000] }, { shape: [257], values: indexValues(257, 70000), grad: false }], (x, i) => ops.gather(x, 0, i), opts)
    })
    test('0-d and empty', () => {
      compareWithCpu([{ shape: [] }, { shape: [], values: [0], grad: false }], (x, i) => ops.gather(x, 0, i), opts)
      compareWithCpu([{ shape: [3, 4] }, { shape: [0, 4], values: [], grad: false }], (x, i) => ops.gather(x, 0, i), opts)
    })
    test('a bad index value gives NaN there on CUDA, and NaN in its column of the gradient', () => {
      tidy(() => {
        const xv = [1, 2, 3, 4, 5, 6]
        expectCode(() => ops.gather(tensor(xv, [2, 3], { dtype }), 1, tensor([0, 3], [1, 2], { dtype })), 'ERR_ARGUMENT')
        const x = tensor(xv, [2, 3], { dtype, device: 'cuda', requiresGrad: true })
        const y = ops.gather(x, 1, tensor([2, 3, 0, 1], [2, 2], { dtype, device: 'cuda' }))
        const yv = values(y)
        expect(yv[0]).toBe(3)
        expect(Number.isNaN(yv[1])).toBe(true)
        expect(yv.slice(2)).toEqual([4, 5])
        y.sum().backward()
        const gv = values(x.grad as Tensor)
        expect(gv.slice(0, 3).every(Number.isNaN)).toBe(true) // row 0 held the bad index
        expect(gv.slice(3)).toEqual([1, 1, 0])
      })
    })
    test('x and index on different devices: ERR_DEVICE', () => {
      tidy(() => {
        const x = tensor([1, 2, 3], [3], { dtype, device: 'cuda' })
        expectCode(() => ops.gather(x, 0, tensor([0], [1], { dtype })), 'ERR_DEVICE')
        expectCode(() => ops.gather(tensor([1, 2, 3], [3], { dtype }), 0, tensor([0], [1], { dtype, device: 'cuda' })), 'ERR_DEVICE')
      })
    })
  })
}

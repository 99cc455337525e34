/**
 * The elementwise family on the GPU (cuda/elementwise.cu) against the CPU (native/cpu/elementwise.cc): every
 * unary op, every binary op (tensors and numbers on either side, broadcasting), where, expand, forward and
 * backward, float32 and float64, sizes that do not divide the block size, empty tensors, and the errors of
 * mixed devices and of too many broadcast dimensions. Skipped where no GPU is usable.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectCode } from '../helpers'
import { compareWithCpu, describeCuda, values } from './compare'

type DT = 'float32' | 'float64'
const dtypes: [DT, number][] = [
  ['float32', 1e-5],
  ['float64', 1e-12],
]
const sizes = [1, 7, 257, 1000, 70000]

// [name, op, input range]
const unaryCases: [string, (x: Tensor) => Tensor, [number, number]][] = [
  ['neg', (x) => x.neg(), [-2, 2]],
  ['exp', (x) => x.exp(), [-2, 2]],
  ['log', (x) => x.log(), [0.2, 3]],
  ['sqrt', (x) => x.sqrt(), [0.2, 3]],
  ['square', (x) => x.square(), [-2, 2]],
  ['tanh', (x) => x.tanh(), [-4, 4]],
  ['tanh (small |x|)', (x) => x.tanh(), [-0.3, 0.3]],
  ['atan', (x) => x.atan(), [-3, 3]],
  ['sigmoid', (x) => x.sigmoid(), [-8, 8]],
  ['softplus', (x) => x.softplus(), [-5, 5]],
  ['softplus beta 2', (x) => x.softplus(2, 20), [-5, 5]],
  ['softplus threshold 1', (x) => x.softplus(1, 1), [-3, 3]],
  ['softplus above threshold', (x) => x.softplus(1, 20), [15, 30]],
  ['relu', (x) => x.relu(), [-2, 2]],
  ['leakyRelu', (x) => x.leakyRelu(0.2), [-2, 2]],
  ['elu', (x) => x.elu(0.7), [-2, 2]],
  ['abs', (x) => x.abs(), [-2, 2]],
  ['clamp', (x) => x.clamp(-0.5, 0.7), [-2, 2]],
  ['powScalar 2.5', (x) => x.pow(2.5), [0.2, 2]],
  ['powScalar 3 (negative base)', (x) => x.pow(3), [-2, 2]],
  ['powScalar 0', (x) => x.pow(0), [-2, 2]],
  ['log1p', (x) => x.log1p(), [-0.5, 3]],
  ['expm1', (x) => x.expm1(), [-2, 2]],
  ['sin', (x) => x.sin(), [-3, 3]],
  ['cos', (x) => x.cos(), [-3, 3]],
  ['reciprocal', (x) => x.reciprocal(), [0.5, 3]],
  ['sign', (x) => x.sign(), [-2, 2]],
]

describeCuda('CUDA unary ops match the CPU', () => {
  for (const [dtype, tol] of dtypes)
    for (const [name, op, [lo, hi]] of unaryCases)
      test.each(sizes)(`${name} ${dtype}, n = %i`, (n) => {
        compareWithCpu([{ shape: [n], lo, hi }], op, { dtype, tol })
      })

  test.each(dtypes)('a 3-d tensor and a 0-d tensor (%s)', (dtype, tol) => {
    compareWithCpu([{ shape: [3, 5, 7] }], (x) => x.tanh().mul(x.sigmoid()), { dtype, tol })
    compareWithCpu([{ shape: [] }], (x) => x.exp().softplus(), { dtype, tol })
  })

  test('special values: the CPU formulas at 0, ±inf and NaN', () => {
    const special = [0, -0, 1, -1, Infinity, -Infinity, NaN, 30, -30, 100, -100]
    const fns: ((x: Tensor) => Tensor)[] = [
      (x) => x.sign(),
      (x) => x.clamp(-1, 1),
      (x) => x.relu(),
      (x) => x.sigmoid(),
      (x) => x.softplus(),
      (x) => x.abs(),
      (x) => x.pow(0.5),
      (x) => x.pow(0),
      (x) => x.tanh(),
      (x) => x.exp(),
    ]
    for (const dtype of ['float32', 'float64'] as DT[])
      for (const f of fns) {
        const cpu = tidy(() => values(f(tensor(special, [special.length], { dtype }))))
        const gpu = tidy(() => values(f(tensor(special, [special.length], { dtype, device: 'cuda' }))))
        for (let i = 0; i < special.length; i++) {
          if (Number.isNaN(cpu[i])) expect(Number.isNaN(gpu[i])).toBe(true)
          else if (!Number.isFinite(cpu[i])) expect(gpu[i]).toBe(cpu[i])
          else expect(Math.abs(gpu[i] - cpu[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(cpu[i])))
        }
      }
  })

  test('empty tensors', () => {
    compareWithCpu([{ shape: [0] }], (x) => x.exp())
    compareWithCpu([{ shape: [0, 3] }], (x) => x.sigmoid().mul(2))
  })
})

const binaryCases: [string, (a: Tensor, b: Tensor) => Tensor, boolean][] = [
  ['add', (a, b) => a.add(b), false],
  ['sub', (a, b) => a.sub(b), false],
  ['mul', (a, b) => a.mul(b), false],
  ['div', (a, b) => a.div(b), true],
  ['pow', (a, b) => a.pow(b), true],
  ['maximum', (a, b) => a.maximum(b), false],
  ['minimum', (a, b) => a.minimum(b), false],
  ['atan2', (a, b) => ops.atan2(a, b), false],
  ['gt', (a, b) => a.gt(b), false],
  ['lt', (a, b) => ops.lt(a, b), false],
  ['ge', (a, b) => ops.ge(a, b), false],
  ['le', (a, b) => a.le(b), false],
  ['eq', (a, b) => a.eq(b), false],
  ['ne', (a, b) => ops.ne(a, b), false],
]

// [shape of a, shape of b]: same shapes, scalars, trailing, leading and middle broadcasting, both stretched,
// sizes that do not divide 256
const shapePairs: [number[], number[]][] = [
  [[1], [1]],
  [[7], [7]],
  [[257], [257]],
  [[70000], [70000]],
  [[4, 3], []],
  [[], [2, 5]],
  [[1000], [1]],
  [[2, 3, 4], [4]],
  [[2, 3, 4], [3, 1]],
  [[5, 1, 3], [1, 4, 1]],
  [[1, 6], [7, 1]],
  [[257, 3], [257, 1]],
  [[300, 1, 7], [1, 233, 7]],
  [[2, 1, 3, 1, 2, 1, 2, 1], [1, 2, 1, 3, 1, 2, 1, 2]], // 8 dimensions, the most the GPU broadcasts
]

describeCuda('CUDA binary ops match the CPU', () => {
  for (const [dtype, tol] of dtypes)
    for (const [name, op, positive] of binaryCases)
      test.each(shapePairs)(`${name} ${dtype}, %j with %j`, (as, bs) => {
        const [lo, hi] = positive ? [0.5, 2] : [-2, 2]
        compareWithCpu(
          [
            { shape: as, lo, hi },
            { shape: bs, lo, hi },
          ],
          op,
          { dtype, tol },
        )
      })

  test.each(dtypes)('numbers as operands, on either side (%s)', (dtype, tol) => {
    const opts = { dtype, tol }
    compareWithCpu([{ shape: [257] }], (x) => x.add(1.5).mul(2).sub(0.25).div(3), opts)
    compareWithCpu([{ shape: [3, 70] }], (x) => ops.sub(1, x).mul(ops.div(2, x.abs().add(1))), opts)
    compareWithCpu([{ shape: [1000], lo: 0.5, hi: 2 }], (x) => ops.pow(2, x).add(ops.pow(x, x)), opts)
    compareWithCpu([{ shape: [7] }], (x) => x.maximum(0.1).add(x.minimum(-0.1)).add(ops.atan2(x, 0.5)), opts)
    compareWithCpu([{ shape: [7] }], (x) => ops.maximum(0.2, x).mul(ops.atan2(1, x)), opts)
    compareWithCpu([{ shape: [70000] }], (x) => x.gt(0).add(x.le(0.5)).add(x.ne(0)), opts)
  })

  test.each(dtypes)('ties of maximum and minimum split the gradient equally (%s)', (dtype, tol) => {
    const a = [1, 2, 3, 4, 5, 6, 7]
    const b = [1, 0, 3, 9, 5, -1, 7]
    compareWithCpu(
      [
        { shape: [7], values: a },
        { shape: [7], values: b },
      ],
      (x, y) => [x.maximum(y), x.minimum(y), x.eq(y)],
      { dtype, tol },
    )
    // broadcast ties: b's gradient sums halves
    compareWithCpu(
      [
        { shape: [2, 3], values: [1, 2, 3, 3, 2, 1] },
        { shape: [3], values: [1, 2, 3] },
      ],
      (x, y) => x.maximum(y).add(x.minimum(y)),
      { dtype, tol },
    )
  })

  test('pow edge cases: zero exponent, zero and negative bases', () => {
    compareWithCpu(
      [
        { shape: [6], values: [0, 0, -2, -2, 2, 0.5] },
        { shape: [6], values: [0, 2, 2, 3, 0, -1] },
      ],
      (x, y) => x.pow(y),
      { dtype: 'float64', tol: 1e-12 },
    )
  })

  test('more than 8 dimensions work while merged runs of them fit in 8; beyond that ERR_SHAPE', () => {
    const shape = [1, 2, 1, 2, 1, 2, 1, 2, 3]
    compareWithCpu([{ shape }, { shape }], (x, y) => x.mul(y).add(2))
    compareWithCpu([{ shape }, { shape: [3] }], (x, y) => x.mul(y).sub(y))
    compareWithCpu([{ shape: [2, 2, 2, 2, 2, 2, 2, 2, 2, 3] }, { shape: [2, 1, 1, 1, 1, 1, 1, 1, 1, 3] }], (x, y) => x.mul(y))
    tidy(() => {
      // stretched and broadcast dimensions alternate 9 times: nothing merges
      const a = tensor(new Array(32).fill(1), [2, 1, 2, 1, 2, 1, 2, 1, 2], { device: 'cuda' })
      const b = tensor(new Array(16).fill(1), [1, 2, 1, 2, 1, 2, 1, 2, 1], { device: 'cuda' })
      expectCode(() => a.add(b), 'ERR_SHAPE')
      expect(values(a.add(a)).every((v) => v === 2)).toBe(true)
    })
  })

  test('empty tensors', () => {
    compareWithCpu(
      [{ shape: [0, 3] }, { shape: [3] }],
      (x, y) => x.mul(y).add(y),
    )
    compareWithCpu(
      [{ shape: [0] }, { shape: [] }],
      (x, y) => x.sub(y),
    )
  })
})

describeCuda('CUDA where and expand match the CPU', () => {
  test.each(dtypes)('where with broadcasting, tensors and numbers (%s)', (dtype, tol) => {
    const opts = { dtype, tol }
    for (const n of sizes)
      compareWithCpu(
        [{ shape: [n], grad: false }, { shape: [n] }, { shape: [n] }],
        (c, a, b) => ops.where(c.gt(0), a, b),
        opts,
      )
    compareWithCpu(
      [{ shape: [3, 1], grad: false }, { shape: [3, 4] }, { shape: [4] }],
      (c, a, b) => ops.where(c.gt(0), a, b),
      opts,
    )
    compareWithCpu(
      [{ shape: [257, 1, 5], grad: false }, { shape: [1, 3, 1] }, { shape: [257, 3, 5] }],
      (c, a, b) => ops.where(c.gt(0), a, b),
      opts,
    )
    compareWithCpu([{ shape: [1000], grad: false }, { shape: [1000] }], (c, b) => ops.where(c.gt(0), 2.5, b), opts)
    compareWithCpu([{ shape: [1000], grad: false }, { shape: [1, 1000] }], (c, a) => ops.where(c.gt(0), a, -0.5), opts)
    compareWithCpu([{ shape: [7], grad: false }, { shape: [] }, { shape: [7] }], (c, a, b) => ops.where(c.gt(0), a, b), opts)
  })

  test('where on empty tensors', () => {
    compareWithCpu([{ shape: [0, 2], grad: false }, { shape: [2] }, { shape: [0, 2] }], (c, a, b) => ops.where(c.gt(0), a, b))
  })

  test.each(dtypes)('expand and its backward (%s)', (dtype, tol) => {
    const opts = { dtype, tol }
    compareWithCpu([{ shape: [3] }], (x) => x.expand([257, 3]), opts)
    compareWithCpu([{ shape: [7, 1] }], (x) => x.expand([2, 7, 1000]), opts)
    compareWithCpu([{ shape: [1, 4, 1] }], (x) => x.expand([5, 4, 3]), opts)
    compareWithCpu([{ shape: [] }], (x) => x.expand([70000]), opts)
    compareWithCpu([{ shape: [5, 1] }], (x) => x.expand([5, 0]), opts)
  })
})

describeCuda('CUDA elementwise errors', () => {
  test('mixing CPU and CUDA tensors is ERR_DEVICE', () => {
    tidy(() => {
      const c = tensor([1, 2, 3], [3])
      const g = tensor([1, 2, 3], [3], { device: 'cuda' })
      expectCode(() => c.add(g), 'ERR_DEVICE')
      expectCode(() => g.mul(c), 'ERR_DEVICE')
      expectCode(() => g.maximum(tensor([1], [1])), 'ERR_DEVICE')
      expectCode(() => ops.where(c.gt(0), g, g), 'ERR_DEVICE')
      expectCode(() => ops.where(g.gt(0), g, c), 'ERR_DEVICE')
      expectCode(() => ops.where(g.gt(0), c, 1), 'ERR_DEVICE')
    })
  })

  test('a number on the left lives on the other operand\'s device', () => {
    tidy(() => {
      const g = tensor([1, 2, 4], [3], { device: 'cuda' })
      const y = ops.sub(1, g)
      expect(y.device).toBe('cuda')
      expect(values(y)).toEqual([0, -1, -3])
      const w = ops.where(g.gt(1), 5, g)
      expect(w.device).toBe('cuda')
      expect(values(w)).toEqual([1, 5, 5])
    })
  })

  test('shapes that do not broadcast and mixed dtypes fail as on the CPU', () => {
    tidy(() => {
      const a = tensor([1, 2, 3], [3], { device: 'cuda' })
      expectCode(() => a.add(tensor([1, 2], [2], { device: 'cuda' })), 'ERR_SHAPE')
      expectCode(() => a.add(tensor([1, 2, 3], [3], { device: 'cuda', dtype: 'float64' })), 'ERR_DTYPE')
    })
  })
})

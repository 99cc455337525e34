/**
 * Matrix products, convolutions and the LU weight of the invertible 1×1 convolution inside a compiled step: each
 * entry point (matmul, matmulBackward, linear, linearBackward, conv2d, conv2dBackward, luConvWeight,
 * luConvWeightBackward) replays onto its captured outputs, bit for bit as the eager op on the new inputs.
 */
import { ops, Tensor } from '../../lib'
import { luConvWeight } from '../../lib/ops/lu-conv'
import { expectReplayMatches } from './replay'

describe('capture: matmul', () => {
  test('2-D · 2-D, float64 and float32', () => {
    expectReplayMatches([{ shape: [3, 4] }, { shape: [4, 5] }], (a, b) => ops.matmul(a, b))
    expectReplayMatches([{ shape: [3, 4] }, { shape: [4, 5] }], (a, b) => ops.matmul(a, b), { dtype: 'float32' })
  })

  test('one b for the whole batch (the batch is more rows)', () => {
    expectReplayMatches([{ shape: [2, 3, 4] }, { shape: [4, 5] }], (a, b) => ops.matmul(a, b))
  })

  test('broadcast batches (grouped products, summed in the backward)', () => {
    expectReplayMatches([{ shape: [2, 1, 3, 4] }, { shape: [3, 4, 2] }], (a, b) => ops.matmul(a, b))
    expectReplayMatches([{ shape: [3, 4] }, { shape: [2, 4, 5] }], (a, b) => ops.matmul(a, b), { dtype: 'float32' })
  })

  test('vectors: row, column and dot product', () => {
    expectReplayMatches([{ shape: [4] }, { shape: [4, 5] }], (a, b) => ops.matmul(a, b))
    expectReplayMatches([{ shape: [3, 4] }, { shape: [4] }], (a, b) => ops.matmul(a, b))
    expectReplayMatches([{ shape: [4] }, { shape: [4] }], (a, b) => ops.matmul(a, b))
  })

  test('one gradient only', () => {
    expectReplayMatches([{ shape: [3, 4] }, { shape: [2, 4, 5], grad: false }], (a, b) => ops.matmul(a, b))
    expectReplayMatches([{ shape: [3, 4], grad: false }, { shape: [4, 5] }], (a, b) => ops.matmul(a, b))
  })

  test('forward only', () => {
    expectReplayMatches([{ shape: [2, 3, 4] }, { shape: [2, 4, 2] }], (a, b) => ops.matmul(a, b), { backward: false })
  })
})

describe('capture: linear', () => {
  test('with a bias, float64 and float32', () => {
    expectReplayMatches([{ shape: [5, 4] }, { shape: [3, 4] }, { shape: [3] }], (x, w, b) => ops.linear(x, w, b))
    expectReplayMatches([{ shape: [5, 4] }, { shape: [3, 4] }, { shape: [3] }], (x, w, b) => ops.linear(x, w, b), {
      dtype: 'float32',
    })
  })

  test('without a bias, batched x', () => {
    expectReplayMatches([{ shape: [2, 3, 4] }, { shape: [6, 4] }], (x, w) => ops.linear(x, w))
    expectReplayMatches([{ shape: [2, 3, 4] }, { shape: [6, 4] }], (x, w) => ops.linear(x, w, null), { dtype: 'float32' })
  })

  test('some gradients only', () => {
    expectReplayMatches([{ shape: [5, 4], grad: false }, { shape: [3, 4] }, { shape: [3] }], (x, w, b) => ops.linear(x, w, b))
    expectReplayMatches([{ shape: [5, 4] }, { shape: [3, 4], grad: false }, { shape: [3], grad: false }], (x, w, b) =>
      ops.linear(x, w, b),
    )
  })
})

describe('capture: conv2d', () => {
  test('3×3, padding 1, with a bias, float64 and float32', () => {
    const inputs = [{ shape: [2, 3, 5, 5] }, { shape: [4, 3, 3, 3] }, { shape: [4] }]
    expectReplayMatches(inputs, (x, w, b) => ops.conv2d(x, w, b, { padding: 1 }))
    expectReplayMatches(inputs, (x, w, b) => ops.conv2d(x, w, b, { padding: 1 }), { dtype: 'float32' })
  })

  test('strides and padding per axis, no bias; one sample (threaded im2col) and many (one sample per thread)', () => {
    for (const n of [1, 8]) {
      expectReplayMatches([{ shape: [n, 2, 6, 5] }, { shape: [3, 2, 3, 2] }], (x, w) =>
        ops.conv2d(x, w, null, { stride: [2, 1], padding: [1, 2] }),
      )
    }
  })

  test('1×1 kernel (no im2col)', () => {
    expectReplayMatches([{ shape: [3, 4, 3, 3] }, { shape: [2, 4, 1, 1] }, { shape: [2] }], (x, w, b) => ops.conv2d(x, w, b))
  })

  test('some gradients only', () => {
    expectReplayMatches([{ shape: [2, 3, 4, 4], grad: false }, { shape: [2, 3, 3, 3] }, { shape: [2] }], (x, w, b) =>
      ops.conv2d(x, w, b, { padding: 1 }),
    )
    expectReplayMatches([{ shape: [2, 3, 4, 4] }, { shape: [2, 3, 3, 3], grad: false }, { shape: [2], grad: false }], (x, w, b) =>
      ops.conv2d(x, w, b, { padding: 1 }),
    )
  })
})

describe('capture: luConvWeight', () => {
  // P and sign are constants of the module (fixed values); L, U and logS are parameters
  const P = [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0]
  const sign = [1, -1, -1, 1]
  const factors = (n: number) => [
    { shape: [n, n], values: P, grad: false },
    { shape: [n, n] },
    { shape: [n, n] },
    { shape: [n], lo: -0.5, hi: 0.5 },
    { shape: [n], values: sign, grad: false },
  ]

  for (const inverse of [false, true]) {
    test(`${inverse ? 'W⁻¹' : 'W'}, float64 and float32`, () => {
      const fn = (p: Tensor, l: Tensor, u: Tensor, s: Tensor, sg: Tensor) => luConvWeight(p, l, u, s, sg, { inverse })
      expectReplayMatches(factors(4), fn)
      expectReplayMatches(factors(4), fn, { dtype: 'float32' })
    })
  }

  test('the weight feeding a product (its backward takes a replayed gradient)', () => {
    expectReplayMatches([...factors(4), { shape: [3, 4] }], (p, l, u, s, sg, x) =>
      ops.matmul(x, luConvWeight(p, l, u, s, sg, { inverse: true })),
    )
  })
})

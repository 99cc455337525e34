/**
 * Replays of the elementwise, reduction and shape families (native/cpu/elementwise.cc, reduce.cc, shape.cc)
 * inside a compiled step: every entry point, forward and backward, must be kept and must overwrite the outputs
 * made at capture (see replay.ts).
 */
import { grad, ops, tensor, Tensor, tidy } from '../../lib'
import { core } from '../../lib/binding'
import { captureNative } from '../../lib/capture'
import { expectReplayMatches } from './replay'

const f32 = { dtype: 'float32' as const }

describe('elementwise replays', () => {
  // [op, function, input range]
  const unaries: [string, (x: Tensor) => Tensor, number, number][] = [
    ['neg', (x) => x.neg(), -1, 1],
    ['exp', (x) => x.exp(), -1, 1],
    ['log', (x) => x.log(), 0.5, 2],
    ['sqrt', (x) => x.sqrt(), 0.5, 2],
    ['square', (x) => x.square(), -1, 1],
    ['tanh', (x) => x.tanh(), -2, 2],
    ['atan', (x) => x.atan(), -2, 2],
    ['sigmoid', (x) => x.sigmoid(), -2, 2],
    ['softplus', (x) => x.softplus(2, 1), -2, 2],
    ['relu', (x) => x.relu(), -1, 1],
    ['leakyRelu', (x) => x.leakyRelu(0.1), -1, 1],
    ['elu', (x) => x.elu(0.7), -1, 1],
    ['abs', (x) => x.abs(), -1, 1],
    ['clamp', (x) => x.clamp(-0.5, 0.5), -1, 1],
    ['powScalar', (x) => x.pow(1.5), 0.5, 2],
    ['log1p', (x) => x.log1p(), -0.5, 2],
    ['expm1', (x) => x.expm1(), -1, 1],
    ['sin', (x) => x.sin(), -3, 3],
    ['cos', (x) => x.cos(), -3, 3],
    ['reciprocal', (x) => x.reciprocal(), 0.5, 2],
    ['sign', (x) => x.sign().add(x), -1, 1],
  ]
  test.each(unaries)('unary %s and its backward', (_, fn, lo, hi) => {
    expectReplayMatches([{ shape: [3, 5], lo, hi }], fn)
  })

  test('unary, float32', () => {
    expectReplayMatches([{ shape: [4, 6] }], (x) => x.tanh(), f32)
    expectReplayMatches([{ shape: [4, 6] }], (x) => x.relu(), f32)
  })

  const binaries: [string, (a: Tensor, b: Tensor) => Tensor][] = [
    ['add', (a, b) => a.add(b)],
    ['sub', (a, b) => a.sub(b)],
    ['mul', (a, b) => a.mul(b)],
    ['div', (a, b) => a.div(b)],
    ['pow', (a, b) => ops.pow(a, b)],
    ['maximum', (a, b) => a.maximum(b)],
    ['minimum', (a, b) => a.minimum(b)],
    ['atan2', (a, b) => ops.atan2(a, b)],
  ]
  test.each(binaries)('binary %s, same shapes and broadcast (forward and backward)', (_, fn) => {
    // same shapes (the contiguous paths)
    expectReplayMatches([{ shape: [3, 4], lo: 0.5, hi: 2 }, { shape: [3, 4], lo: 0.5, hi: 2 }], fn)
    // both broadcast: both gradients are summed down to the operands' shapes
    expectReplayMatches([{ shape: [3, 1], lo: 0.5, hi: 2 }, { shape: [2, 1, 4], lo: 0.5, hi: 2 }], fn)
    // one element against a full tensor, either side
    expectReplayMatches([{ shape: [3, 4], lo: 0.5, hi: 2 }, { shape: [1], lo: 0.5, hi: 2 }], fn)
    expectReplayMatches([{ shape: [1, 1], lo: 0.5, hi: 2 }, { shape: [3, 4], lo: 0.5, hi: 2 }], fn)
    // only one operand needs a gradient
    expectReplayMatches([{ shape: [3, 4], lo: 0.5, hi: 2 }, { shape: [4], lo: 0.5, hi: 2, grad: false }], fn)
    expectReplayMatches([{ shape: [4], lo: 0.5, hi: 2, grad: false }, { shape: [3, 4], lo: 0.5, hi: 2 }], fn)
  })

  test('binary with a number operand (either side)', () => {
    expectReplayMatches([{ shape: [3, 4] }], (a) => a.mul(2.5).add(1))
    expectReplayMatches([{ shape: [3, 4] }], (a) => ops.sub(0.25, a))
    expectReplayMatches([{ shape: [3, 4], lo: 0.5, hi: 2 }], (a) => ops.pow(a, a).div(3))
  })

  test('comparisons', () => {
    expectReplayMatches(
      [{ shape: [3, 4] }, { shape: [4] }],
      (a, b) => [a.gt(b), a.lt(b), a.ge(b), a.le(b), a.eq(a.mul(b.gt(0))), a.ne(a.mul(b.gt(0))), a.gt(0)],
      { backward: false },
    )
  })

  test('binary, float32', () => {
    expectReplayMatches([{ shape: [3, 4] }, { shape: [3, 4] }], (a, b) => a.mul(b), f32)
    expectReplayMatches([{ shape: [2, 3, 1] }, { shape: [4] }], (a, b) => a.sub(b), f32)
  })

  test('where: tensors, broadcasting, a number, float32', () => {
    expectReplayMatches([{ shape: [3, 4] }, { shape: [3, 4] }, { shape: [3, 4] }], (c, a, b) => ops.where(c.gt(0), a, b))
    // cond, a and b broadcast against each other: both gradients are summed down
    expectReplayMatches([{ shape: [3, 1] }, { shape: [1, 4] }, { shape: [4] }], (c, a, b) => ops.where(c.gt(0), a, b))
    expectReplayMatches([{ shape: [3, 4], grad: false }, { shape: [3, 4] }, { shape: [3, 4] }], (c, a, b) =>
      ops.where(c.gt(0), a, b.relu()),
    )
    expectReplayMatches([{ shape: [3, 4] }, { shape: [3, 4] }], (c, a) => ops.where(c.gt(0), a, 0.5))
    expectReplayMatches([{ shape: [3, 4] }, { shape: [4] }], (c, b) => ops.where(c.gt(0), 0.5, b))
    expectReplayMatches([{ shape: [2, 3] }, { shape: [2, 1] }, { shape: [2, 3] }], (c, a, b) => ops.where(c.gt(0), a, b), f32)
  })

  test('expand (and its backward, sumToShape)', () => {
    expectReplayMatches([{ shape: [3, 1] }], (x) => x.expand(2, 3, 4))
    expectReplayMatches([{ shape: [4] }], (x) => x.expand(3, -1))
    expectReplayMatches([{ shape: [1, 3, 1] }], (x) => x.expand(2, 3, 5), f32)
  })
})

describe('reduction replays', () => {
  test('sum and mean over dims, keepdim or not, and their backward', () => {
    for (const mean of [false, true]) {
      const r = (x: Tensor, dim?: number | number[], keepdim = false) => (mean ? x.mean(dim, keepdim) : x.sum(dim, keepdim))
      expectReplayMatches([{ shape: [2, 3, 4] }], (x) => r(x))
      expectReplayMatches([{ shape: [2, 3, 4] }], (x) => r(x, 1))
      expectReplayMatches([{ shape: [2, 3, 4] }], (x) => r(x, 2, true))
      expectReplayMatches([{ shape: [2, 3, 4] }], (x) => r(x, [0, 2], true))
      expectReplayMatches([{ shape: [2, 3, 4] }], (x) => r(x, [0, 1]))
    }
  })

  test('sumToShape', () => {
    expectReplayMatches([{ shape: [2, 3, 4] }], (g) => ops.sumToShape(g, [3, 1]), { backward: false })
    expectReplayMatches([{ shape: [2, 3, 4] }], (g) => ops.sumToShape(g, [2, 3, 4]), { backward: false })
    expectReplayMatches([{ shape: [5, 4] }], (g) => ops.sumToShape(g, [4]), { backward: false, dtype: 'float32' })
  })

  test('reductions, float32', () => {
    expectReplayMatches([{ shape: [3, 5] }], (x) => x.sum(1), f32)
    expectReplayMatches([{ shape: [3, 5] }], (x) => x.mean(0, true), f32)
  })
})

describe('shape op replays', () => {
  test('permute and transpose (copies, tiled transposes) and their backward', () => {
    expectReplayMatches([{ shape: [2, 3, 4] }], (x) => x.permute(2, 0, 1))
    expectReplayMatches([{ shape: [2, 3, 4] }], (x) => x.permute(1, 0, 2))
    expectReplayMatches([{ shape: [20, 18] }], (x) => x.t())
    expectReplayMatches([{ shape: [3, 1, 4] }], (x) => x.permute(1, 0, 2), f32)
  })

  test('narrow and its backward', () => {
    expectReplayMatches([{ shape: [4, 5] }], (x) => x.narrow(1, 1, 3))
    expectReplayMatches([{ shape: [4, 5, 2] }], (x) => x.narrow(0, 2, 2))
    expectReplayMatches([{ shape: [4, 5] }], (x) => x.narrow(0, 1, 2), f32)
  })

  test('cat, stack and their backward (with and without every gradient)', () => {
    expectReplayMatches([{ shape: [2, 3] }, { shape: [2, 4] }], (a, b) => ops.cat([a, b], 1))
    expectReplayMatches([{ shape: [2, 3] }, { shape: [1, 3] }, { shape: [3, 3] }], (a, b, c) => ops.cat([a, b, c], 0))
    expectReplayMatches([{ shape: [2, 3] }, { shape: [2, 3], grad: false }], (a, b) => ops.stack([a, b], 1))
    expectReplayMatches([{ shape: [2, 3] }, { shape: [2, 2] }], (a, b) => ops.cat([a, b], 1), f32)
  })

  test('split, chunk and their backward (with pieces that get no gradient)', () => {
    expectReplayMatches([{ shape: [5, 3] }], (x) => x.split([2, 3], 0))
    expectReplayMatches([{ shape: [2, 7] }], (x) => ops.chunk(x, 3, 1))
    expectReplayMatches([{ shape: [2, 7] }], (x) => ops.split(x, [3, 1, 3], 1)[1].mul(2))
    expectReplayMatches([{ shape: [2, 7] }], (x) => [ops.split(x, [3, 4], 1)[0]], f32)
  })

  test('indexSelect with a tensor or a number[] index, along the last or an inner dimension, and its backward', () => {
    const idx = [2, 0, 2, 1]
    expectReplayMatches([{ shape: [3, 4] }, { shape: [4], values: idx, grad: false }], (x, i) => x.indexSelect(1, i))
    expectReplayMatches([{ shape: [3, 4] }, { shape: [4], values: idx, grad: false }], (x, i) => x.indexSelect(0, i))
    expectReplayMatches([{ shape: [3, 4, 2] }, { shape: [4], values: idx, grad: false }], (x, i) => x.indexSelect(0, i))
    expectReplayMatches([{ shape: [3, 4] }], (x) => x.indexSelect(1, idx))
    expectReplayMatches([{ shape: [3, 4, 2] }], (x) => x.indexSelect(1, [3, 3, 0]))
    expectReplayMatches([{ shape: [3, 4] }, { shape: [4], values: idx, grad: false }], (x, i) => x.indexSelect(1, i), f32)
  })

  test('gather along the last or an inner dimension, and its backward', () => {
    const idx = [1, 0, 2, 2, 1, 1]
    expectReplayMatches([{ shape: [2, 3] }, { shape: [2, 3], values: idx, grad: false }], (x, i) => x.gather(1, i))
    expectReplayMatches([{ shape: [3, 3] }, { shape: [2, 3], values: idx, grad: false }], (x, i) => x.gather(0, i))
    expectReplayMatches([{ shape: [3, 2, 2] }, { shape: [3, 1, 2], values: [1, 0, 1, 1, 0, 1], grad: false }], (x, i) => x.gather(1, i).mul(x.narrow(1, 0, 1)))
    expectReplayMatches([{ shape: [2, 3] }, { shape: [2, 3], values: idx, grad: false }], (x, i) => x.gather(1, i), f32)
  })

  // An index tensor changed in place between replays is read again (the harness keeps indices fixed).
  test('indexSelect and gather read their index tensor at each replay, and check it', () => {
    for (const kind of ['indexSelect', 'gather'] as const) {
      tidy(() => {
        const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true })
        const index = kind === 'indexSelect' ? tensor([0, 2], [2]) : tensor([0, 2, 1, 1], [2, 2])
        const pick = () => (kind === 'indexSelect' ? x.indexSelect(1, index) : x.gather(1, index))
        captureNative.captureBegin()
        let y: Tensor
        let gx: Tensor
        try {
          y = pick()
          gx = grad(y.mul(y).sum(), [x])[0] as Tensor
        } catch (e) {
          captureNative.captureAbort()
          throw e
        }
        const program = captureNative.captureEnd(false)
        const next = kind === 'indexSelect' ? tensor([1, 1], [2]) : tensor([2, 2, 0, 1], [2, 2])
        core.copyInto(index.handle, next.handle)
        captureNative.runProgram(program)
        const eagerY = pick()
        const eagerG = grad(eagerY.mul(eagerY).sum(), [x])[0] as Tensor
        expect(Array.from(y.toArray())).toEqual(Array.from(eagerY.toArray()))
        expect(Array.from(gx.toArray())).toEqual(Array.from(eagerG.toArray()))
        // an index out of range at a replay is refused, not read out of bounds
        core.copyInto(index.handle, (kind === 'indexSelect' ? tensor([0, 3], [2]) : tensor([0, 3, 0, 0], [2, 2])).handle)
        expect(() => captureNative.runProgram(program)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }))
        captureNative.releaseProgram(program)
      })
    }
  })
})

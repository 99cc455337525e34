import { SequenceINN, tensor, Tensor, tidy } from '../../lib'
import { InvertibleShuffle } from '../../lib/modules/invertible-shuffle'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

/** y[.., k, ..] = x[.., order[k], ..] along tensor axis `axis`, by loops over row-major indices. */
function shuffleRef(x: number[], shape: number[], axis: number, order: number[]): number[] {
  const inner = numel(shape.slice(axis + 1))
  const len = shape[axis]
  const outer = numel(shape.slice(0, axis))
  const out = new Array<number>(x.length)
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < len; k++)
      for (let i = 0; i < inner; i++) out[(o * len + k) * inner + i] = x[(o * len + order[k]) * inner + i]
  return out
}

describe('InvertibleShuffle', () => {
  test.each([
    [[3, 4], 0, [2, 0, 3, 1]],
    [[2, 3, 2, 2], 0, [1, 2, 0]],
    [[2, 3, 4, 2], 1, [3, 1, 0, 2]],
    [[2, 3, 4, 2], -1, [1, 0]],
    [[2, 2, 5], 1, [4, 3, 2, 1, 0]],
  ])('shape %j, dim %p, order %j: forward and reverse against loops, log-det 0', (shape, dim, order) => {
    tidy(() => {
      const m = new InvertibleShuffle([shape.slice(1)], { order, dim })
      const axis = (dim < 0 ? dim + shape.length - 1 : dim) + 1
      const xv = randomValues(numel(shape), 3)
      const [[y], j] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      expect(j).toBe(0)
      expectClose(y, shuffleRef(xv, shape, axis, order), 0)
      const inverse = order.map((_, k) => order.indexOf(k))
      const [[x], jr] = m.forward([y], [], true)
      expect(jr).toBe(0)
      expectClose(x, xv, 0)
      expectClose(m.forward([tensor(xv, shape, { dtype: 'float64' })], [], true)[0][0], shuffleRef(xv, shape, axis, inverse), 0)
      const [[y32]] = m.forward([tensor(xv, shape, { dtype: 'float32' })])
      expectClose(y32, y.toArray(), 1e-7)
    })
  })

  test('buffers shuffle_indices and unshuffle_indices (invertnn names); order given as a tensor', () => {
    const m = new InvertibleShuffle([[4]], { order: tensor([2, 0, 3, 1], [4]) })
    const sd = m.stateDict()
    expect(Object.keys(sd)).toEqual(['shuffle_indices', 'unshuffle_indices'])
    expect(Array.from(sd.shuffle_indices.toArray())).toEqual([2, 0, 3, 1])
    expect(Array.from(sd.unshuffle_indices.toArray())).toEqual([1, 3, 0, 2])
    expect(m.parameters()).toEqual([])
    expect(m.dim).toBe(0)
    expect(m.outputDims([[4]])).toEqual([[4]])
  })

  test('checkInvertibleModule; in a SequenceINN', () => {
    checkInvertibleModule(() => new InvertibleShuffle([[5]], { order: [4, 2, 0, 1, 3] }), { inputs: [[3, 5]] })
    checkInvertibleModule(() => new InvertibleShuffle([[3, 2, 2]], { order: [1, 0], dim: 2 }), { inputs: [[2, 3, 2, 2]] })
    tidy(() => {
      const inn = new SequenceINN(3)
      inn.append(InvertibleShuffle, { order: [2, 1, 0] })
      const [z, j] = inn.forward(tensor([1, 2, 3], [1, 3]))
      expect(Array.from(z.toArray())).toEqual([3, 2, 1])
      expect(Array.from((j as Tensor).toArray())).toEqual([0])
    })
  })

  test('bad orders, dims and inputs', () => {
    expectCode(() => new InvertibleShuffle([[3]]), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleShuffle([[3]], { order: [0, 1] }), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleShuffle([[3]], { order: [0, 1, 1] }), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleShuffle([[3]], { order: [0, 1, 3] }), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleShuffle([[3]], { order: [0, 1, 1.5] }), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleShuffle([[3]], { order: 'abc' as never }), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleShuffle([[3]], { order: tensor([0, 1, 2, 3, 4, 5], [2, 3]) }), 'ERR_SHAPE')
    expectCode(() => new InvertibleShuffle([[3]], { order: [0, 1, 2], dim: 1 }), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleShuffle([[3]], { order: [0, 1, 2], dim: 0.5 }), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleShuffle([[3], [3]], { order: [0, 1, 2] }), 'ERR_SHAPE')
    expectCode(() => new InvertibleShuffle([[3]], { order: [0, 1, 2], seed: 1 } as never), 'ERR_ARGUMENT')
    const gone = tensor([0, 1, 2], [3])
    gone.dispose()
    expectCode(() => new InvertibleShuffle([[3]], { order: gone }), 'ERR_DISPOSED')
    const m = new InvertibleShuffle([[3]], { order: [2, 0, 1] })
    tidy(() => expectCode(() => m.forward([tensor([1, 2], [1, 2])]), 'ERR_SHAPE'))
  })
})

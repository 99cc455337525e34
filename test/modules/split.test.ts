import { GraphINN, InputNode, modules, Node, OutputNode, tensor, Tensor, tidy } from '../../lib'
import { Split1D, SplitChannel } from '../../lib/modules/split'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { Split } = modules

/** Plain-loop reference: the pieces of x (row-major, shape with batch) along axis `axis` (batch included). */
function splitRef(x: number[], shape: number[], axis: number, sizes: number[]): number[][] {
  const outer = numel(shape.slice(0, axis))
  const inner = numel(shape.slice(axis + 1))
  const pieces: number[][] = sizes.map(() => [])
  for (let o = 0; o < outer; o++) {
    let start = 0
    sizes.forEach((s, p) => {
      for (let k = 0; k < s; k++) for (let i = 0; i < inner; i++) pieces[p].push(x[(o * shape[axis] + start + k) * inner + i])
      start += s
    })
  }
  return pieces
}

describe('Split', () => {
  test.each([
    // [dims, options, expected sizes] — FrEIA's rules
    [[5], {}, [3, 2]],
    [[6], {}, [3, 3]],
    [[7], { nSections: 3 }, [3, 2, 2]],
    [[8], { nSections: 3 }, [3, 3, 2]],
    [[5], { sectionSizes: 2 }, [2, 3]],
    [[5], { sectionSizes: [1, 2] }, [1, 2, 2]],
    [[5], { sectionSizes: [2, 3] }, [2, 3]],
    [[5], { sectionSizes: [4], nSections: 5 }, [4, 1]],
  ])('%j %j → sections %j', (dims, opts, sizes) => {
    const m = new Split([dims], opts)
    expect(m.sectionSizes).toEqual(sizes)
    expect(m.dim).toBe(0)
    expect(m.outputDims([dims])).toEqual(sizes.map((s) => [s]))
  })

  test.each([
    [[2, 5, 3], { dim: 0 }, 1, [3, 2]],
    [[3, 2, 5], { dim: 1, sectionSizes: [1, 3] }, 2, [1, 3, 1]],
    [[2, 3, 2, 4], { dim: -1, nSections: 3 }, 3, [2, 1, 1]],
    [[2, 3, 4, 2], { dim: 1 }, 2, [2, 2]],
  ])('shape %j %j: outputs equal the plain-loop pieces, reverse concatenates, log-det 0', (shape, opts, axis, sizes) => {
    tidy(() => {
      const m = new Split([shape.slice(1)], opts)
      expect(m.sectionSizes).toEqual(sizes)
      const values = randomValues(numel(shape), 21)
      const [ys, j] = m.forward([tensor(values, shape, { dtype: 'float64' })])
      expect(j).toBe(0)
      const ref = splitRef(values, shape, axis, sizes)
      expect(ys.length).toBe(sizes.length)
      ys.forEach((y, i) => {
        expect(y.shape).toEqual(shape.map((d, k) => (k === axis ? sizes[i] : d)))
        expectClose(y, ref[i], 0)
      })
      expect(m.outputDims([shape.slice(1)])).toEqual(ys.map((y) => y.shape.slice(1)))
      const [[x], jr] = m.forward(ys, [], true)
      expect(jr).toBe(0)
      expectClose(x, values, 0)
      const ys32 = m.forward([tensor(values, shape, { dtype: 'float32' })])[0]
      ys32.forEach((y, i) => expectClose(y, ref[i], 1e-7))
    })
  })

  test.each([
    [[3, 5], {}],
    [[2, 3, 2, 2], { sectionSizes: [1] }],
    [[2, 2, 3, 2], { dim: 1, nSections: 3 }],
  ])('checkInvertibleModule %j %j', (shape, opts) => {
    checkInvertibleModule(() => new Split([shape.slice(1)], opts), { inputs: [shape] })
  })

  test('as a graph node: out0 / out1 feed other nodes', () => {
    tidy(() => {
      const inp = new InputNode(5, { name: 'in' })
      const split = new Node(inp, Split, {}, { name: 'split' })
      const o1 = new OutputNode(split.out0, { name: 'o1' })
      const o2 = new OutputNode([split, 1], { name: 'o2' })
      const g = new GraphINN([inp, split, o1, o2])
      const x = tensor(randomValues(10, 3), [2, 5])
      const [zs] = g.forward(x)
      const [a, b] = zs as unknown as Tensor[]
      expect(a.shape).toEqual([2, 3])
      expect(b.shape).toEqual([2, 2])
    })
  })

  test('FrEIA\'s deprecated aliases are Splits', () => {
    expect(new SplitChannel([[4]]).sectionSizes).toEqual([2, 2])
    expect(new Split1D([[4]], { sectionSizes: 1 })).toBeInstanceOf(Split)
  })

  test('bad options, dims and inputs', () => {
    expectCode(() => new Split([[5]], { nSections: 1 }), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5]], { nSections: 6 }), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5]], { nSections: 2.5 }), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5]], { sectionSizes: 5 }), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5]], { sectionSizes: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5]], { sectionSizes: [3, 3] }), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5]], { sectionSizes: [2, 0] }), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5]], { sectionSizes: [] }), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5]], { dim: 1 }), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5]], { dim: -2 }), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5]], { split_len: 2 } as never), 'ERR_ARGUMENT')
    expectCode(() => new Split([[5], [5]]), 'ERR_SHAPE')
    const m = new Split([[5]])
    expectCode(() => m.outputDims([[6]]), 'ERR_SHAPE')
    tidy(() => {
      expectCode(() => m.forward([tensor(randomValues(12, 1), [2, 6])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3])], [], true), 'ERR_ARGUMENT')
      expectCode(() => m.forward([tensor(randomValues(4, 1), [2, 2]), tensor(randomValues(6, 1), [2, 3])], [], true), 'ERR_SHAPE')
    })
  })
})

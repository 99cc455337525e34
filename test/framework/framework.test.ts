import {
  ConditionNode, GraphINN, InputNode, manualSeed, Node, OutputNode, randn, SequenceINN, tensor, Tensor, tidy,
} from '../../lib'
import { expectClose, expectCode } from '../helpers'
import { ConditionalSwap, FixedRandomElementwiseMultiply, HalfSplit, Join } from './custom-modules'

describe('SequenceINN with a user-written module', () => {
  test('forward, reverse, log-det, shapes, indexing and state-dict keys', () => {
    tidy(() => {
      manualSeed(1)
      const inn = new SequenceINN(3)
      inn.append(FixedRandomElementwiseMultiply).append(FixedRandomElementwiseMultiply)
      expect(inn.length).toBe(2)
      expect([...inn].length).toBe(2)
      expect(inn.at(1)).toBeInstanceOf(FixedRandomElementwiseMultiply)
      expect(Object.keys(inn.stateDict())).toEqual(['module_list.0.random_factor', 'module_list.1.random_factor'])
      expect(inn.outputDims()).toEqual([[3]])
      const x = randn([4, 3], { dtype: 'float32' })
      const [z, ljd] = inn.forward(x)
      const f = (inn.at(0) as FixedRandomElementwiseMultiply).randomFactor.mul((inn.at(1) as FixedRandomElementwiseMultiply).randomFactor)
      expectClose(z, x.mul(f).toArray(), 1e-6)
      const expected = f.log().sum().item()
      expectClose(ljd, [expected, expected, expected, expected], 1e-6)
      const [xr, ljdr] = inn.forward(z, { rev: true })
      expectClose(xr, x.toArray(), 1e-6)
      expectClose(ljdr, ljd.neg().toArray(), 1e-6)
      // the module form returns arrays
      const [zs] = inn.forward([x], [], false, true)
      expect(Array.isArray(zs)).toBe(true)
    })
  })

  test('append checks shapes, options and conditions', () => {
    const inn = new SequenceINN(3)
    const other = new FixedRandomElementwiseMultiply([[4]])
    expectCode(() => inn.append(other), 'ERR_SHAPE')
    expectCode(() => inn.append(new FixedRandomElementwiseMultiply([[3]]), { foo: 1 }), 'ERR_ARGUMENT')
    expectCode(() => inn.append(FixedRandomElementwiseMultiply, { cond: 0 }), 'ERR_ARGUMENT')
    expectCode(() => inn.append(FixedRandomElementwiseMultiply, { cond: -1, condShape: [2] }), 'ERR_ARGUMENT')
    expectCode(() => inn.append(42 as never), 'ERR_ARGUMENT')
    expect(inn.length).toBe(0)
    expectCode(() => new SequenceINN(), 'ERR_ARGUMENT')
    inn.append(FixedRandomElementwiseMultiply)
    tidy(() => {
      expectCode(() => inn.forward(randn([2, 4])), 'ERR_SHAPE')
      expectCode(() => inn.forward(randn([2, 3]), { foo: true } as never), 'ERR_ARGUMENT')
      expectCode(() => inn.forward(randn([2, 3]), { rev: 'yes' } as never), 'ERR_ARGUMENT')
    })
  })
})

describe('GraphINN', () => {
  /** in1 (4) → split → [a (2) ; b (2)] ; ConditionalSwap(a, b | cond) → Join with in2 (3) → scale → out */
  function build(names = true) {
    const in1 = new InputNode(4, { name: names ? 'in1' : undefined })
    const in2 = new InputNode(3, { name: names ? 'in2' : undefined })
    const cond = new ConditionNode(1, { name: names ? 'cond' : undefined })
    const split = new Node(in1, HalfSplit, {}, { name: names ? 'split' : undefined })
    const swap = new Node([split.out0, split.out1], ConditionalSwap, {}, { conditions: cond, name: names ? 'swap' : undefined })
    const join = new Node([swap.out0, swap.out(1), [in2, 0] as const], Join, {}, { name: names ? 'join' : undefined })
    const scale = new Node(join, FixedRandomElementwiseMultiply, {}, { name: names ? 'scale' : undefined })
    const out = new OutputNode(scale, { name: names ? 'out' : undefined })
    return { nodes: [in1, in2, cond, split, swap, join, scale, out], in1, in2, cond, scale }
  }

  test('runs forward and reverse with two inputs and a condition; keys are node names', () => {
    tidy(() => {
      manualSeed(2)
      const { nodes } = build()
      const inn = new GraphINN(nodes).to({ dtype: 'float64' })
      expect(inn.dimsIn).toEqual([[4], [3]])
      expect(inn.dimsC).toEqual([[1]])
      expect(Object.keys(inn.stateDict())).toEqual(['scale.random_factor'])
      const x1 = tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 4], { dtype: 'float64' })
      const x2 = tensor([9, 10, 11, 12, 13, 14], [2, 3], { dtype: 'float64' })
      const c = tensor([1, -1], [2, 1], { dtype: 'float64' })
      const factor = (inn.getModuleByName('scale') as FixedRandomElementwiseMultiply).randomFactor.to({ dtype: 'float64' })
      const [z, ljd] = inn.forward([x1, x2], { c: [c] })
      // sample 0 swapped (c > 0): [3, 4, 1, 2, 9, 10, 11]; sample 1 kept
      const expected = tensor([3, 4, 1, 2, 9, 10, 11, 5, 6, 7, 8, 12, 13, 14], [2, 7], { dtype: 'float64' }).mul(factor)
      expectClose(z as Tensor, expected.toArray(), 1e-7)
      expectClose(ljd, [factor.log().sum().item(), factor.log().sum().item()], 1e-7)
      const [xs, ljdRev] = inn.forward(z as Tensor, { c: [c], rev: true })
      expect(Array.isArray(xs)).toBe(true)
      expectClose((xs as Tensor[])[0], x1.toArray(), 1e-7)
      expectClose((xs as Tensor[])[1], x2.toArray(), 1e-7)
      expectClose(ljdRev, ljd.neg().toArray(), 1e-7)
      const [, noJac] = inn.forward([x1, x2], { c: [c], jac: false })
      expectClose(noJac, [0, 0], 0)
    })
  })

  test('unnamed nodes get names from their position in the node list, the same in every run', () => {
    const a = new GraphINN(build(false).nodes)
    const b = new GraphINN(build(false).nodes)
    expect(Object.keys(a.stateDict())).toEqual(['Node6.random_factor'])
    expect(a.nodeList.map((n) => n.name)).toEqual(b.nodeList.map((n) => n.name))
  })

  test('malformed graphs get ERR_GRAPH', () => {
    // a loose end: the second half of the split is never consumed
    const in1 = new InputNode(4)
    const split = new Node(in1, HalfSplit)
    const out = new OutputNode(split.out0)
    expectCode(() => new GraphINN([in1, split, out]), 'ERR_GRAPH')
    // a node missing from the list
    const i2 = new InputNode(3)
    const s2 = new Node(i2, FixedRandomElementwiseMultiply)
    const o2 = new OutputNode(s2)
    expectCode(() => new GraphINN([i2, o2]), 'ERR_GRAPH')
    // duplicate names
    const i3 = new InputNode(3, { name: 'x' })
    const s3 = new Node(i3, FixedRandomElementwiseMultiply, {}, { name: 'x' })
    expectCode(() => new GraphINN([i3, s3, new OutputNode(s3)]), 'ERR_GRAPH')
    // an output consumed twice, a condition node used as input, a missing output index
    const i4 = new InputNode(3)
    const s4 = new Node(i4, FixedRandomElementwiseMultiply)
    expectCode(() => new Node(i4, FixedRandomElementwiseMultiply), 'ERR_GRAPH')
    expectCode(() => new Node(new ConditionNode(3), FixedRandomElementwiseMultiply), 'ERR_GRAPH')
    expectCode(() => new OutputNode(s4.out1), 'ERR_GRAPH')
    expectCode(() => new OutputNode([s4, s4.out0] as never), 'ERR_GRAPH')
    // shapes that do not fit the module
    expectCode(() => new Node(new InputNode(3), new FixedRandomElementwiseMultiply([[5]])), 'ERR_SHAPE')
    // a cycle in the reverse direction: join reads x.out1, and x.out1 is conditioned ... by its own consumer
    const i5 = new InputNode(4)
    const sp = new Node(i5, HalfSplit)
    const z = new Node(sp.out1, FixedRandomElementwiseMultiply)
    const n = new Node([sp.out0, z.out0], Join, {}, { conditions: sp.out1 })
    expectCode(() => new GraphINN([i5, sp, z, n, new OutputNode(n)]), 'ERR_GRAPH')
  })

  test('wrong numbers of inputs or conditions at run time', () => {
    tidy(() => {
      const inn = new GraphINN(build().nodes)
      expectCode(() => inn.forward(randn([2, 4])), 'ERR_ARGUMENT')
      expectCode(() => inn.forward([randn([2, 4]), randn([2, 3])]), 'ERR_ARGUMENT')
      expectCode(() => inn.forward([randn([2, 4]), randn([2, 5])], { c: [randn([2, 1])] }), 'ERR_SHAPE')
    })
  })
})

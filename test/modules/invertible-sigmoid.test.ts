import { modules, GraphINN, InputNode, Node, OutputNode, SequenceINN, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { InvertibleSigmoid } = modules

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x))
/** ln σ'(x) = ln σ(x) + ln(1 − σ(x)), in a form that stays finite for large |x|. */
const logDsigmoid = (x: number) => -Math.abs(x) - 2 * Math.log1p(Math.exp(-Math.abs(x)))

/** Per-sample sums of f over all non-batch entries. */
function perSample(values: number[], batch: number, f: (v: number) => number): number[] {
  const per = values.length / batch
  return Array.from({ length: batch }, (_, b) => values.slice(b * per, (b + 1) * per).reduce((a, v) => a + f(v), 0))
}

describe('InvertibleSigmoid', () => {
  test.each([[[3, 4]], [[2, 3, 2, 2]], [[2, 1, 5]]])('shape %j: y = σ(x), reverse = logit, log-det summed over ALL non-batch axes', (shape) => {
    tidy(() => {
      const m = new InvertibleSigmoid([shape.slice(1)])
      const xv = randomValues(numel(shape), 80, -4, 4)
      const [[y], j] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      expectClose(y, xv.map(sigmoid), 1e-15)
      expect((j as Tensor).shape).toEqual([shape[0]])
      expectClose(j as Tensor, perSample(xv, shape[0], logDsigmoid), 1e-14)
      const [[x], jr] = m.forward([y], [], true)
      expectClose(x, xv, 1e-13)
      expectClose(jr as Tensor, perSample(xv, shape[0], logDsigmoid).map((v) => -v), 1e-12)
      const [[y32], j32] = m.forward([tensor(xv, shape, { dtype: 'float32' })])
      expectClose(y32, y.toArray(), 1e-6)
      expectClose(j32 as Tensor, (j as Tensor).toArray(), 1e-5)
    })
  })

  test('large |x|: the log-det stays finite (FrEIA\'s expression overflows)', () => {
    tidy(() => {
      const m = new InvertibleSigmoid([[3]])
      const [[y], j] = m.forward([tensor([800, -800, 0], [1, 3], { dtype: 'float64' })])
      expectClose(y, [1, 0, 0.5], 1e-15)
      expectClose(j as Tensor, [-1600 + Math.log(0.25)], 1e-15)
    })
  })

  test('reverse outside (0, 1) gives NaN, as FrEIA', () => {
    tidy(() => {
      const m = new InvertibleSigmoid([[2]])
      const [[x]] = m.forward([tensor([1.5, -0.5], [1, 2], { dtype: 'float64' })], [], true)
      expect(Array.from(x.toArray()).every(Number.isNaN)).toBe(true)
    })
  })

  test('jac: false still returns [outputs, logDet] (FrEIA returns a 1-tuple), usable in graphs and sequences', () => {
    tidy(() => {
      const m = new InvertibleSigmoid([[2]])
      const out = m.forward([tensor([0.1, 0.2], [1, 2])], [], false, false)
      expect(out.length).toBe(2)
      const inp = new InputNode(2)
      const node = new Node(inp, InvertibleSigmoid, {})
      const g = new GraphINN([inp, node, new OutputNode(node)])
      expect((g.forward(tensor([0.1, 0.2], [1, 2]), { jac: false })[0] as Tensor).shape).toEqual([1, 2])
      const inn = new SequenceINN(2, 2)
      inn.append(InvertibleSigmoid)
      const [z, j] = inn.forward(tensor(randomValues(8, 4), [2, 2, 2]), { jac: false })
      expect(z.shape).toEqual([2, 2, 2])
      expect(j.shape).toEqual([2])
    })
  })

  test.each([[[3, 4]], [[2, 3, 2, 2]]])('checkInvertibleModule %j', (shape) => {
    checkInvertibleModule(() => new InvertibleSigmoid([shape.slice(1)]), { inputs: [shape], range: [-3, 3] })
  })

  test('no state; bad dims, options and inputs', () => {
    expect(new InvertibleSigmoid([[3]]).stateDict()).toEqual({})
    expectCode(() => new InvertibleSigmoid([[3], [3]]), 'ERR_SHAPE')
    expectCode(() => new InvertibleSigmoid([[3]], { clamp: 2 } as never), 'ERR_ARGUMENT')
    const m = new InvertibleSigmoid([[3]])
    tidy(() => expectCode(() => m.forward([tensor([1, 2], [1, 2])]), 'ERR_SHAPE'))
  })
})

import { nn, SequenceINN, tensor, Tensor, tidy } from '../../lib'
import { DiagonalLinearTransform } from '../../lib/modules/diagonal-linear-transform'
import { expectClose, expectCode, randomValues } from '../helpers'
import { in64 } from './invertnn-reference'
import { checkInvertibleModule } from './module-check'

/** A module with the given scale and offset. */
function make(n: number, w: number[], b: number[] | null): DiagonalLinearTransform {
  const m = in64(() => new DiagonalLinearTransform([[n]], { bias: b !== null }))
  m.loadStateDict(b ? { weight: tensor(w, [1, n], { dtype: 'float64' }), bias: tensor(b, [1, n], { dtype: 'float64' }) } : { weight: tensor(w, [1, n], { dtype: 'float64' }) })
  return m
}

describe('DiagonalLinearTransform', () => {
  test.each([
    [4, [0.5, -2, 3, -0.25], [0.1, -0.2, 0.3, 0.4]],
    [3, [1.5, 0.2, -7], null],
  ])('n = %p: z = w ⊙ x + b, reverse (z − b)/w, log-det Σ ln|w| (loops), negative scales included', (n, w, b) => {
    tidy(() => {
      const m = make(n, w, b)
      const xv = randomValues(3 * n, 2)
      const [[z], j] = m.forward([tensor(xv, [3, n], { dtype: 'float64' })])
      expectClose(z, xv.map((v, i) => w[i % n] * v + (b ? b[i % n] : 0)), 1e-15)
      const ld = w.reduce((a, v) => a + Math.log(Math.abs(v)), 0)
      expect((j as Tensor).shape).toEqual([3])
      expectClose(j as Tensor, [ld, ld, ld], 1e-15)
      const [[x], jr] = m.forward([z], [], true)
      expectClose(x, xv, 1e-15)
      expectClose(jr as Tensor, [-ld, -ld, -ld], 1e-15)
      expectClose(m.forward([tensor(xv, [3, n], { dtype: 'float64' })], [], true)[0][0], xv.map((v, i) => (v - (b ? b[i % n] : 0)) / w[i % n]), 1e-15)
      const m32 = new DiagonalLinearTransform([[n]], { bias: b !== null })
      m32.loadStateDict(m.stateDict())
      const [[z32], j32] = m32.forward([tensor(xv, [3, n])])
      expectClose(z32, z.toArray(), 1e-6)
      expectClose(j32 as Tensor, (j as Tensor).toArray(), 1e-6)
    })
  })

  test.each([[[3, 4]], [[2, 1]], [[2, 7]]])('checkInvertibleModule %j with random (signed) scales and offsets', (shape) => {
    checkInvertibleModule(
      () => {
        const m = new DiagonalLinearTransform([shape.slice(1)])
        const n = shape[1]
        m.loadStateDict({
          weight: tensor(randomValues(n, 40).map((v, i) => (i % 2 ? -1 : 1) * (0.3 + Math.abs(v))), [1, n]),
          bias: tensor(randomValues(n, 41), [1, n]),
        })
        return m
      },
      { inputs: [shape] },
    )
  })

  test('state dict: weight = 1 and bias = 0 (identity) at initialisation, (1, n); bias: false; SequenceINN; errors', () => {
    const m = new DiagonalLinearTransform([[3]])
    const sd = m.stateDict()
    expect(Object.keys(sd)).toEqual(['weight', 'bias'])
    expect(sd.weight.shape).toEqual([1, 3])
    expect(Array.from(sd.weight.toArray())).toEqual([1, 1, 1])
    expect(Array.from(sd.bias.toArray())).toEqual([0, 0, 0])
    expect(Object.keys(new DiagonalLinearTransform([[3]], { bias: false }).stateDict())).toEqual(['weight'])
    tidy(() => {
      const inn = new SequenceINN(3)
      inn.append(DiagonalLinearTransform)
      nn.init.constant_((inn.stateDict()['module_list.0.weight'] as Tensor), 2)
      const [z, j] = inn.forward(tensor([1, 2, 3], [1, 3]))
      expectClose(z, [2, 4, 6], 1e-7)
      expectClose(j as Tensor, [3 * Math.log(2)], 1e-6)
    })
    expectCode(() => new DiagonalLinearTransform([[3, 2, 2]]), 'ERR_SHAPE')
    expectCode(() => new DiagonalLinearTransform([[3], [3]]), 'ERR_SHAPE')
    expectCode(() => new DiagonalLinearTransform([[3]], { bias: 0 as never }), 'ERR_ARGUMENT')
    expectCode(() => new DiagonalLinearTransform([[3]], { scale: 2 } as never), 'ERR_ARGUMENT')
    tidy(() => expectCode(() => m.forward([tensor([1, 2], [1, 2])]), 'ERR_SHAPE'))
  })
})

import { tensor, Tensor, tidy } from '../../lib'
import { DiagonalLinearTransform } from '../../lib/modules/diagonal-linear-transform'
import { DiagonalLinearTransform2D } from '../../lib/modules/diagonal-linear-transform-2d'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { in64 } from './invertnn-reference'
import { checkInvertibleModule } from './module-check'

describe('DiagonalLinearTransform2D', () => {
  test.each([[[2, 3, 2, 3]], [[3, 1, 2, 2]], [[2, 4, 1, 3]]])('%j: z = w_c·x + b_c per channel, log-det H·W·Σ ln|w_c| (loops)', (shape) => {
    tidy(() => {
      const [B, C, H, W] = shape
      const w = randomValues(C, 50).map((v, i) => (i % 2 ? -1 : 1) * (0.2 + Math.abs(v) * 2))
      const b = randomValues(C, 51)
      const m = in64(() => new DiagonalLinearTransform2D([[C, H, W]]))
      m.loadStateDict({ weight: tensor(w, [1, C, 1, 1], { dtype: 'float64' }), bias: tensor(b, [1, C, 1, 1], { dtype: 'float64' }) })
      const xv = randomValues(numel(shape), 52)
      const ch = (i: number) => Math.floor(i / (H * W)) % C
      const [[z], j] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      expectClose(z, xv.map((v, i) => w[ch(i)] * v + b[ch(i)]), 1e-15)
      const ld = H * W * w.reduce((a, v) => a + Math.log(Math.abs(v)), 0)
      expectClose(j as Tensor, new Array(B).fill(ld), 1e-14)
      const [[x], jr] = m.forward([z], [], true)
      expectClose(x, xv, 1e-15)
      expectClose(jr as Tensor, new Array(B).fill(-ld), 1e-14)
      const m32 = new DiagonalLinearTransform2D([[C, H, W]])
      m32.loadStateDict(m.stateDict())
      const [[z32], j32] = m32.forward([tensor(xv, shape)])
      expectClose(z32, z.toArray(), 1e-6)
      expectClose(j32 as Tensor, (j as Tensor).toArray(), 1e-6)
    })
  })

  test.each([[[2, 3, 2, 3]], [[2, 1, 3, 2]]])('checkInvertibleModule %j with random scales and offsets', (shape) => {
    checkInvertibleModule(
      () => {
        const C = shape[1]
        const m = new DiagonalLinearTransform2D([shape.slice(1)])
        m.loadStateDict({ weight: tensor(randomValues(C, 60).map((v) => (v < 0 ? v - 0.3 : v + 0.3)), [1, C, 1, 1]), bias: tensor(randomValues(C, 61), [1, C, 1, 1]) })
        return m
      },
      { inputs: [shape] },
    )
  })

  test('state dict (1, C, 1, 1), identity at initialisation; bad dims and inputs', () => {
    const m = new DiagonalLinearTransform2D([[3, 2, 2]])
    expect(m).toBeInstanceOf(DiagonalLinearTransform)
    const sd = m.stateDict()
    expect(Object.keys(sd)).toEqual(['weight', 'bias'])
    expect(sd.weight.shape).toEqual([1, 3, 1, 1])
    expect(sd.bias.shape).toEqual([1, 3, 1, 1])
    expect(Object.keys(new DiagonalLinearTransform2D([[3, 2, 2]], { bias: false }).stateDict())).toEqual(['weight'])
    tidy(() => {
      const xv = randomValues(24, 3)
      const x = tensor(xv, [2, 3, 2, 2])
      const [[z], j] = m.forward([x])
      expectClose(z, x.toArray(), 0)
      expect(Array.from((j as Tensor).toArray())).toEqual([0, 0])
    })
    expectCode(() => new DiagonalLinearTransform2D([[3]]), 'ERR_SHAPE')
    expectCode(() => new DiagonalLinearTransform2D([[3, 2, 2, 2]]), 'ERR_SHAPE')
    tidy(() => expectCode(() => m.forward([tensor(randomValues(12, 1), [1, 3, 1, 4])]), 'ERR_SHAPE'))
  })
})

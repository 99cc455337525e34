import { manualSeed, nn, SequenceINN, tensor, Tensor, tidy } from '../../lib'
import { HouseholderTransform } from '../../lib/modules/householder-transform'
import { HouseholderTransform2D } from '../../lib/modules/householder-transform-2d'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { affinePixels, eye, householderRef, in64, Mat, matmul, maxAbsDiff, randomOrthogonal, transpose } from './invertnn-reference'
import { checkInvertibleModule } from './module-check'

describe('HouseholderTransform2D', () => {
  test.each([[[2, 3, 2, 3]], [[3, 4, 1, 2]], [[2, 1, 2, 2]]])('%j: z = W·x + b per pixel (loops), reverse Wᵀ·(z − b), log-det 0', (shape) => {
    tidy(() => {
      const [B, C, H, W] = shape
      const m = in64(() => new HouseholderTransform2D([[C, H, W]]))
      nn.init.normal_(m.bias as Tensor)
      const Wm = householderRef(Array.from(m.weight.toArray()), C)
      const b = Array.from((m.bias as Tensor).toArray())
      expect((m.bias as Tensor).shape).toEqual([1, C, 1, 1])
      const xv = randomValues(numel(shape), 14)
      const [[z], j] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      expect(j).toBe(0)
      expect(z.shape).toEqual(shape)
      expectClose(z, affinePixels(xv, [B, C, H * W], Wm, b), 1e-14)
      const [[x], jr] = m.forward([z], [], true)
      expect(jr).toBe(0)
      expectClose(x, xv, 1e-14)
      const shifted = xv.map((v, i) => v - b[Math.floor(i / (H * W)) % C])
      expectClose(m.forward([tensor(xv, shape, { dtype: 'float64' })], [], true)[0][0], affinePixels(shifted, [B, C, H * W], transpose(Wm), null), 1e-14)
      const m32 = new HouseholderTransform2D([[C, H, W]])
      m32.loadStateDict(m.stateDict())
      expectClose(m32.forward([tensor(xv, shape)])[0][0], z.toArray(), 1e-6)
    })
  })

  test('the same W as the 1-D module for the same weight (column convention in both); setMatrix', () => {
    tidy(() => {
      const m2 = in64(() => new HouseholderTransform2D([[4, 1, 1]], { bias: false }))
      const m1 = in64(() => new HouseholderTransform([[4]], { bias: false }))
      m1.loadStateDict(m2.stateDict())
      const xv = randomValues(8, 3)
      const z1 = m1.forward([tensor(xv, [2, 4], { dtype: 'float64' })])[0][0]
      const z2 = m2.forward([tensor(xv, [2, 4, 1, 1], { dtype: 'float64' })])[0][0]
      expectClose(z2, z1.toArray(), 1e-15)
      const Q = randomOrthogonal(4, 9)
      m2.setMatrix(tensor(Q.flat(), [4, 4], { dtype: 'float64' }))
      expect(maxAbsDiff(m2.matrix().toNested() as Mat, Q)).toBeLessThan(1e-14)
      expect(maxAbsDiff(matmul(transpose(Q), Q), eye(4))).toBeLessThan(1e-14)
    })
  })

  test.each([[[2, 3, 2, 3]], [[2, 5, 1, 2]]])('checkInvertibleModule %j (random reflections and bias)', (shape) => {
    checkInvertibleModule(
      () => {
        // a fixed generator state: the random reflections must not depend on which test files ran before in this worker
        manualSeed(13)
        const m = new HouseholderTransform2D([shape.slice(1)])
        nn.init.normal_(m.bias as Tensor)
        return m
      },
      { inputs: [shape] },
    )
  })

  test('state dict; bias: false; in a SequenceINN; bad dims and inputs', () => {
    const m = new HouseholderTransform2D([[3, 2, 2]])
    const sd = m.stateDict()
    expect(Object.keys(sd)).toEqual(['weight', 'bias'])
    expect(sd.weight.shape).toEqual([3, 3])
    expect(sd.bias.shape).toEqual([1, 3, 1, 1])
    expect(m).toBeInstanceOf(HouseholderTransform)
    expect(Object.keys(new HouseholderTransform2D([[3, 2, 2]], { bias: false }).stateDict())).toEqual(['weight'])
    tidy(() => {
      const inn = new SequenceINN(3, 2, 2)
      inn.append(HouseholderTransform2D)
      const [z, j] = inn.forward(tensor(randomValues(24, 1), [2, 3, 2, 2]))
      expect(z.shape).toEqual([2, 3, 2, 2])
      expect(Array.from((j as Tensor).toArray())).toEqual([0, 0])
    })
    expectCode(() => new HouseholderTransform2D([[3]]), 'ERR_SHAPE')
    expectCode(() => new HouseholderTransform2D([[3, 2]]), 'ERR_SHAPE')
    expectCode(() => new HouseholderTransform2D([[3, 2, 2]], { bias: 'yes' as never }), 'ERR_ARGUMENT')
    expectCode(() => new HouseholderTransform2D([[3, 2, 2]], { padding: 1 } as never), 'ERR_ARGUMENT')
    tidy(() => expectCode(() => m.forward([tensor(randomValues(12, 1), [1, 3, 4, 1])]), 'ERR_SHAPE'))
  })
})

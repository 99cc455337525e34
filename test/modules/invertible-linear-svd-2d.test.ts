import { manualSeed, nn, tensor, Tensor, tidy } from '../../lib'
import { InvertibleLinearSVD } from '../../lib/modules/invertible-linear-svd'
import { InvertibleLinearSVD2D } from '../../lib/modules/invertible-linear-svd-2d'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { affinePixels, householderRef, in64, logAbsDet, Mat, matmul, maxAbsDiff } from './invertnn-reference'
import { checkInvertibleModule } from './module-check'

/** Random reflections (from a fixed generator state, independent of test order), signed scales and bias. */
function randomModule(C: number, H: number, W: number): InvertibleLinearSVD2D {
  manualSeed(C * 100 + H * 10 + W)
  const m = in64(() => new InvertibleLinearSVD2D([[C, H, W]]))
  tidy(() => m.S.loadStateDict({ weight: tensor(randomValues(C, 90).map((v) => (v < 0 ? v - 0.4 : v + 0.4)), [1, C, 1, 1], { dtype: 'float64' }) }))
  nn.init.normal_(m.V.bias as Tensor)
  return m
}

describe('InvertibleLinearSVD2D', () => {
  test.each([[[2, 3, 2, 3]], [[3, 4, 1, 2]], [[2, 1, 2, 2]]])('%j: z = M·x + b per pixel (loops), closed-form reverse, log-det H·W·ln|det M|', (shape) => {
    tidy(() => {
      const [B, C, H, W] = shape
      const m = randomModule(C, H, W)
      const s = Array.from(m.S.weight.toArray())
      const M = matmul(householderRef(Array.from(m.V.weight.toArray()), C).map((row) => row.map((v, j) => v * s[j])), householderRef(Array.from(m.U.weight.toArray()), C))
      expect(maxAbsDiff(m.matrix().toNested() as Mat, M)).toBeLessThan(1e-14)
      const b = Array.from((m.V.bias as Tensor).toArray())
      const xv = randomValues(numel(shape), 91)
      const [[z], j] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      expectClose(z, affinePixels(xv, [B, C, H * W], M, b), 1e-14)
      const ld = H * W * logAbsDet(M)
      expectClose(j as Tensor, new Array(B).fill(ld), 1e-12)
      const [[x], jr] = m.forward([z], [], true)
      expectClose(x, xv, 1e-14)
      expectClose(jr as Tensor, new Array(B).fill(-ld), 1e-12)
      const m32 = new InvertibleLinearSVD2D([[C, H, W]])
      m32.loadStateDict(m.stateDict())
      const [[z32], j32] = m32.forward([tensor(xv, shape)])
      expectClose(z32, z.toArray(), 1e-6)
      expectClose(j32 as Tensor, (j as Tensor).toArray(), 1e-5)
    })
  })

  test.each([[[2, 3, 2, 3]], [[2, 2, 1, 3]]])('checkInvertibleModule %j', (shape) => {
    checkInvertibleModule(() => randomModule(shape[1], shape[2], shape[3]), { inputs: [shape] })
  })

  test('state dict shapes; bad dims', () => {
    const m = new InvertibleLinearSVD2D([[3, 2, 2]])
    expect(m).toBeInstanceOf(InvertibleLinearSVD)
    const sd = m.stateDict()
    expect(Object.keys(sd)).toEqual(['U.weight', 'S.weight', 'V.weight', 'V.bias'])
    expect(sd['S.weight'].shape).toEqual([1, 3, 1, 1])
    expect(sd['V.bias'].shape).toEqual([1, 3, 1, 1])
    expect(m.outputDims([[3, 2, 2]])).toEqual([[3, 2, 2]])
    expectCode(() => new InvertibleLinearSVD2D([[3]]), 'ERR_SHAPE')
    expectCode(() => new InvertibleLinearSVD2D([[3, 2, 2]], { lu: true } as never), 'ERR_ARGUMENT')
    tidy(() => expectCode(() => m.forward([tensor(randomValues(12, 1), [1, 3, 4, 1])]), 'ERR_SHAPE'))
  })
})

import { manualSeed, nn, SequenceINN, tensor, Tensor, tidy } from '../../lib'
import { InvertibleLinearSVD } from '../../lib/modules/invertible-linear-svd'
import { expectClose, expectCode, randomValues } from '../helpers'
import { affineRows, householderRef, in64, logAbsDet, Mat, matmul, maxAbsDiff, randomOrthogonal } from './invertnn-reference'
import { checkInvertibleModule } from './module-check'

/** M = W_V·diag(s)·W_U from the module's parameters, by explicit reflectors and loops. */
function svdRef(m: InvertibleLinearSVD, n: number): Mat {
  const WU = householderRef(Array.from(m.U.weight.toArray()), n)
  const WV = householderRef(Array.from(m.V.weight.toArray()), n)
  const s = Array.from(m.S.weight.toArray())
  return matmul(WV.map((row) => row.map((v, j) => v * s[j])), WU)
}

/**
 * A float64 module with random reflections, signed scales and bias, from a fixed generator state (so that it
 * does not depend on which test files ran before in this jest worker).
 */
function randomModule(n: number, seed: number, bias = true): InvertibleLinearSVD {
  manualSeed(seed)
  const m = in64(() => new InvertibleLinearSVD([[n]], { bias }))
  nn.init.uniform_(m.S.weight, 0.4, 2.5)
  tidy(() => m.S.loadStateDict({ weight: m.S.weight.mul(tensor(randomValues(n, seed).map((v) => (v < -0.3 ? -1 : 1)), [1, n], { dtype: 'float64' })) }))
  if (m.V.bias) nn.init.normal_(m.V.bias)
  return m
}

describe('InvertibleLinearSVD', () => {
  test.each([[4, 1], [5, 2], [1, 3]])('n = %p: z = W_V·diag(s)·W_U·x + b (loops), closed-form reverse, log-det Σ ln|s| = ln|det M|', (n, seed) => {
    tidy(() => {
      const m = randomModule(n, seed)
      const M = svdRef(m, n)
      expect(maxAbsDiff(m.matrix().toNested() as Mat, M)).toBeLessThan(1e-14)
      const b = Array.from((m.V.bias as Tensor).toArray())
      const xv = randomValues(3 * n, 70 + seed)
      const [[z], j] = m.forward([tensor(xv, [3, n], { dtype: 'float64' })])
      expectClose(z, affineRows(xv, n, M, b), 1e-14)
      const ld = logAbsDet(M)
      expect((j as Tensor).shape).toEqual([3])
      expectClose(j as Tensor, [ld, ld, ld], 1e-12)
      const [[x], jr] = m.forward([z], [], true)
      expectClose(x, xv, 1e-14)
      expectClose(jr as Tensor, [-ld, -ld, -ld], 1e-12)
      const m32 = new InvertibleLinearSVD([[n]])
      m32.loadStateDict(m.stateDict())
      const [[z32], j32] = m32.forward([tensor(xv, [3, n])])
      expectClose(z32, z.toArray(), 1e-6)
      expectClose(j32 as Tensor, (j as Tensor).toArray(), 1e-5)
    })
  })

  test('any invertible matrix is reachable: setting U, S, V from a product of orthogonal and diagonal factors reproduces it', () => {
    tidy(() => {
      const n = 4
      const P = randomOrthogonal(n, 11)
      const Q = randomOrthogonal(n, 12).map((r) => [r[0], r[1], r[2], -r[3]])
      const s = [3, -0.5, 1.2, 0.1]
      const target = matmul(Q.map((row) => row.map((v, j) => v * s[j])), P)
      const m = in64(() => new InvertibleLinearSVD([[n]], { bias: false }))
      m.U.setMatrix(tensor(P.flat(), [n, n], { dtype: 'float64' }))
      m.V.setMatrix(tensor(Q.flat(), [n, n], { dtype: 'float64' }))
      m.S.loadStateDict({ weight: tensor(s, [1, n], { dtype: 'float64' }) })
      expect(maxAbsDiff(m.matrix().toNested() as Mat, target)).toBeLessThan(1e-14)
    })
  })

  test.each([[[3, 4]], [[2, 6]], [[2, 1]]])('checkInvertibleModule %j (random reflections, signed scales, bias)', (shape) => {
    checkInvertibleModule(() => randomModule(shape[1], 5), { inputs: [shape] })
  })

  test('state dict keys U.weight, S.weight, V.weight, V.bias; bias: false; SequenceINN; errors', () => {
    const m = new InvertibleLinearSVD([[3]])
    const sd = m.stateDict()
    expect(Object.keys(sd)).toEqual(['U.weight', 'S.weight', 'V.weight', 'V.bias'])
    expect(sd['U.weight'].shape).toEqual([3, 3])
    expect(sd['S.weight'].shape).toEqual([1, 3])
    expect(sd['V.bias'].shape).toEqual([1, 3])
    expect(Object.keys(new InvertibleLinearSVD([[3]], { bias: false }).stateDict())).toEqual(['U.weight', 'S.weight', 'V.weight'])
    tidy(() => {
      const inn = new SequenceINN(3)
      inn.append(InvertibleLinearSVD)
      const xv = randomValues(6, 3)
      const [z, j] = inn.forward(tensor(xv, [2, 3]))
      // s = 1 at initialisation: an orthogonal map
      expectClose(j as Tensor, [0, 0], 0)
      expectClose(inn.forward(z, { rev: true })[0] as Tensor, xv, 1e-6)
    })
    expectCode(() => new InvertibleLinearSVD([[3, 2, 2]]), 'ERR_SHAPE')
    expectCode(() => new InvertibleLinearSVD([[3], [3]]), 'ERR_SHAPE')
    expectCode(() => new InvertibleLinearSVD([[3]], { bias: null as never }), 'ERR_ARGUMENT')
    expectCode(() => new InvertibleLinearSVD([[3]], { m: 3 } as never), 'ERR_ARGUMENT')
    tidy(() => expectCode(() => m.forward([tensor([1, 2], [1, 2])]), 'ERR_SHAPE'))
  })
})

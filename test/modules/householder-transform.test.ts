import { manualSeed, nn, SequenceINN, tensor, Tensor, tidy } from '../../lib'
import { HouseholderTransform } from '../../lib/modules/householder-transform'
import { expectClose, expectCode, randomValues } from '../helpers'
import { affineRows, eye, householderRef, in64, Mat, matmul, maxAbsDiff, randomOrthogonal, transpose } from './invertnn-reference'
import { checkInvertibleModule } from './module-check'

describe('HouseholderTransform', () => {
  test.each([[4], [5], [1]])('n = %p: z = W·x + b with W the product of the reflections (explicit reflectors in loops); reverse; log-det 0', (n) => {
    tidy(() => {
      const m = in64(() => new HouseholderTransform([[n]]))
      nn.init.normal_(m.bias as Tensor)
      const w = Array.from(m.weight.toArray())
      const b = Array.from((m.bias as Tensor).toArray())
      const W = householderRef(w, n)
      expect(maxAbsDiff(matmul(transpose(W), W), eye(n))).toBeLessThan(1e-14)
      expect(maxAbsDiff(m.matrix().toNested() as Mat, W)).toBeLessThan(1e-14)
      const xv = randomValues(3 * n, 8)
      const [[z], j] = m.forward([tensor(xv, [3, n], { dtype: 'float64' })])
      expect(j).toBe(0)
      expectClose(z, affineRows(xv, n, W, b), 1e-14)
      const [[x], jr] = m.forward([z], [], true)
      expect(jr).toBe(0)
      expectClose(x, xv, 1e-14)
      expectClose(m.forward([tensor(xv, [3, n], { dtype: 'float64' })], [], true)[0][0], affineRows(xv.map((v, i) => v - b[i % n]), n, transpose(W), null), 1e-14)
      // float32 module and input agree with float64
      const m32 = new HouseholderTransform([[n]])
      m32.loadStateDict(m.stateDict())
      const [[z32]] = m32.forward([tensor(xv, [3, n])])
      expectClose(z32, z.toArray(), 1e-6)
    })
  })

  test('the lower triangle of weight is unused; the last row is a sign flip when non-zero, the identity at 0; a zero row is the identity', () => {
    tidy(() => {
      const m = in64(() => new HouseholderTransform([[3]], { bias: false }))
      const w = [0.5, -1, 2, 7, 0.3, 0.8, -9, 4, 0.6]
      m.loadStateDict({ weight: tensor(w, [3, 3], { dtype: 'float64' }) })
      const W = m.matrix().toNested() as Mat
      const wLower = w.slice()
      wLower[3] = 100
      wLower[6] = -3
      wLower[7] = 0.01
      m.loadStateDict({ weight: tensor(wLower, [3, 3], { dtype: 'float64' }) })
      expect(maxAbsDiff(m.matrix().toNested() as Mat, W)).toBe(0)
      expect(maxAbsDiff(W, householderRef(w, 3))).toBeLessThan(1e-15)
      // the last entry: any non-zero value is the same flip; 0 removes it
      const noFlip = w.slice()
      noFlip[8] = 0
      m.loadStateDict({ weight: tensor(noFlip, [3, 3], { dtype: 'float64' }) })
      const W0 = m.matrix().toNested() as Mat
      expect(maxAbsDiff(W0, householderRef(noFlip, 3))).toBeLessThan(1e-15)
      expect(maxAbsDiff(W0.map((row) => [row[0], row[1], -row[2]]), W)).toBeLessThan(1e-15)
      // all rows zero: the identity, no NaN
      m.loadStateDict({ weight: tensor(new Array(9).fill(0), [3, 3], { dtype: 'float64' }) })
      expect(m.matrix().toNested()).toEqual(eye(3))
    })
  })

  test('larger n: the compact WY product equals the explicit reflector product (float64) and stays orthogonal in float32', () => {
    tidy(() => {
      const m = in64(() => new HouseholderTransform([[24]]))
      expect(maxAbsDiff(m.matrix().toNested() as Mat, householderRef(Array.from(m.weight.toArray()), 24))).toBeLessThan(1e-13)
      const m32 = new HouseholderTransform([[64]])
      const W = m32.matrix().toNested() as Mat
      expect(maxAbsDiff(matmul(transpose(W), W), eye(64))).toBeLessThan(1e-5)
    })
  })

  test.each([
    ['a random rotation', randomOrthogonal(5, 3)],
    ['a random reflection (det −1)', randomOrthogonal(5, 4).map((row) => [row[0], row[1], row[2], row[3], -row[4]])],
    ['the identity', eye(5)],
    ['minus the identity', eye(5).map((r) => r.map((v) => -v))],
    ['a permutation', [[0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 0, 1, 0]]],
    ['a signed permutation', [[0, 0, -1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, -1], [0, -1, 0, 0, 0], [0, 0, 0, 1, 0]]],
  ])('setMatrix(%s): the reflections then assemble the same matrix', (_label, M) => {
    tidy(() => {
      const m = in64(() => new HouseholderTransform([[5]]))
      m.setMatrix(tensor(M.flat(), [5, 5], { dtype: 'float64' }))
      expect(maxAbsDiff(m.matrix().toNested() as Mat, M)).toBeLessThan(1e-14)
      expect(maxAbsDiff(householderRef(Array.from(m.weight.toArray()), 5), M)).toBeLessThan(1e-14)
      const w = m.weight.toNested() as Mat
      for (let i = 0; i < 5; i++) for (let j = 0; j < i; j++) expect(w[i][j]).toBe(0)
      // a float32 module takes a float32 matrix (to float32 accuracy)
      const m32 = new HouseholderTransform([[5]])
      m32.setMatrix(tensor(M.flat(), [5, 5]))
      expect(maxAbsDiff(m32.matrix().toNested() as Mat, M)).toBeLessThan(1e-5)
    })
  })

  test.each([[[3, 4]], [[2, 7]], [[2, 1]]])('checkInvertibleModule %j (random reflections and bias)', (shape) => {
    checkInvertibleModule(
      () => {
        // a fixed generator state: the random reflections must not depend on which test files ran before in this worker
        manualSeed(11)
        const m = new HouseholderTransform([shape.slice(1)])
        nn.init.normal_(m.bias as Tensor)
        return m
      },
      { inputs: [shape] },
    )
    checkInvertibleModule(
      () => {
        manualSeed(12)
        return new HouseholderTransform([shape.slice(1)], { bias: false })
      },
      { inputs: [shape], seed: 3 },
    )
  })

  test('state dict (weight (n, n) ~ N(0, 1), bias (1, n) = 0), bias: false, in a SequenceINN', () => {
    const m = new HouseholderTransform([[4]])
    const sd = m.stateDict()
    expect(Object.keys(sd)).toEqual(['weight', 'bias'])
    expect(sd.weight.shape).toEqual([4, 4])
    expect(sd.bias.shape).toEqual([1, 4])
    expect(Array.from(sd.bias.toArray())).toEqual([0, 0, 0, 0])
    expect(Array.from(sd.weight.toArray()).every((v) => v !== 0)).toBe(true)
    expect(m.namedParameters().map(([k]) => k)).toEqual(['weight', 'bias'])
    const nb = new HouseholderTransform([[4]], { bias: false })
    expect(Object.keys(nb.stateDict())).toEqual(['weight'])
    expect(nb.bias).toBeNull()
    tidy(() => {
      const inn = new SequenceINN(4)
      inn.append(HouseholderTransform)
      expect(Object.keys(inn.stateDict())).toEqual(['module_list.0.weight', 'module_list.0.bias'])
      const xv = randomValues(8, 2)
      const [z, j] = inn.forward(tensor(xv, [2, 4]))
      expect(Array.from((j as Tensor).toArray())).toEqual([0, 0])
      expectClose(inn.forward(z, { rev: true })[0] as Tensor, xv, 1e-6)
    })
  })

  test('bad dims, options, matrices and inputs', () => {
    expectCode(() => new HouseholderTransform([[2, 3]]), 'ERR_SHAPE')
    expectCode(() => new HouseholderTransform([[3], [3]]), 'ERR_SHAPE')
    expectCode(() => new HouseholderTransform([[3]], { bias: 1 as never }), 'ERR_ARGUMENT')
    expectCode(() => new HouseholderTransform([[3]], { nReflections: 2 } as never), 'ERR_ARGUMENT')
    const m = new HouseholderTransform([[3]])
    tidy(() => {
      expectCode(() => m.setMatrix(tensor([1, 0, 0, 1], [2, 2])), 'ERR_SHAPE')
      expectCode(() => m.setMatrix(tensor([2, 0, 0, 0, 1, 0, 0, 0, 1], [3, 3])), 'ERR_ARGUMENT')
      expectCode(() => m.setMatrix([[1, 0, 0], [0, 1, 0], [0, 0, 1]] as never), 'ERR_ARGUMENT')
      const gone = tensor([1, 0, 0, 0, 1, 0, 0, 0, 1], [3, 3])
      gone.dispose()
      expectCode(() => m.setMatrix(gone), 'ERR_DISPOSED')
      expectCode(() => m.forward([tensor([1, 2], [1, 2])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor([1, 2, 3], [1, 3], { dtype: 'float64' })]), 'ERR_DTYPE')
    })
  })
})

import { distributions, manualSeed, tensor, tidy } from '../../lib'
import { expectClose, expectCode, gradCheck, input } from '../helpers'

describe('StandardNormal', () => {
  test('logProb is −½‖z‖² − (D/2)·log 2π per sample, with its gradient', () => {
    tidy(() => {
      const d = new distributions.StandardNormal(3)
      const z = tensor([0, 0, 0, 1, -2, 0.5], [2, 3], { dtype: 'float64' })
      expectClose(d.logProb(z), [-1.5 * Math.log(2 * Math.PI), -0.5 * 5.25 - 1.5 * Math.log(2 * Math.PI)], 1e-15)
      gradCheck((t) => d.logProb(t), [input([4, 3], 1)])
      const img = new distributions.StandardNormal(2, 2, 2)
      expect(img.logProb(tensor(new Array(16).fill(0), [2, 2, 2, 2], { dtype: 'float64' })).shape).toEqual([2])
      expectCode(() => d.logProb(tensor([1, 2], [1, 2], { dtype: 'float64' })), 'ERR_SHAPE')
      expectCode(() => new distributions.StandardNormal(), 'ERR_ARGUMENT')
    })
  })
  test('sample draws (n, ...eventShape) from the seeded generator', () => {
    tidy(() => {
      manualSeed(4)
      const a = new distributions.StandardNormal(2).sample(5, { dtype: 'float64' })
      manualSeed(4)
      const b = new distributions.StandardNormal(2).sample(5, { dtype: 'float64' })
      expect(a.shape).toEqual([5, 2])
      expect(Array.from(a.toArray())).toEqual(Array.from(b.toArray()))
      expectCode(() => new distributions.StandardNormal(2).sample(0), 'ERR_ARGUMENT')
    })
  })
})

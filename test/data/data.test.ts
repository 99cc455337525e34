import { data, manualSeed, tidy } from '../../lib'
import { expectCode } from '../helpers'

const stats = (xs: number[]) => {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length
  return { mean: m, std: Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / xs.length) }
}

describe('toy densities', () => {
  test('moons follow the WORKLOADS.md generator and are reproducible', () => {
    tidy(() => {
      manualSeed(0)
      const a = data.moons(200000, { dtype: 'float64' })
      expect(a.shape).toEqual([200000, 2])
      const v = Array.from(a.toArray())
      const xs = v.filter((_, i) => i % 2 === 0)
      const ys = v.filter((_, i) => i % 2 === 1)
      // E[x] = 2·(1/2·E[cos t] + 1/2·(1 − E[cos t])) − 1 = 0 ; E[y] = 0.3; standard error of the x mean ≈ 1.74/√n = 0.004
      expect(Math.abs(stats(xs).mean)).toBeLessThan(0.02)
      expect(Math.abs(stats(ys).mean - 0.3)).toBeLessThan(0.02)
      manualSeed(0)
      expect(Array.from(data.moons(200000, { dtype: 'float64' }).toArray())).toEqual(v)
    })
  })

  test('eightGaussians have 8 modes on the circle of radius 4/1.414', () => {
    tidy(() => {
      manualSeed(1)
      const v = Array.from(data.eightGaussians(4000, { dtype: 'float64' }).toArray())
      const radii = v.filter((_, i) => i % 2 === 0).map((x, i) => Math.hypot(x, v[2 * i + 1]))
      expect(Math.abs(stats(radii).mean - 4 / 1.414)).toBeLessThan(0.05)
    })
  })

  test('checkerboard points lie in the 8 occupied squares of [-4, 4]²', () => {
    tidy(() => {
      manualSeed(2)
      const v = Array.from(data.checkerboard(4000, { dtype: 'float64' }).toArray())
      for (let i = 0; i < v.length; i += 2) {
        const [x, y] = [v[i], v[i + 1]]
        expect(Math.abs(x)).toBeLessThanOrEqual(4)
        expect(Math.abs(y)).toBeLessThanOrEqual(4)
        // in unscaled coordinates a = x/2, b = y/2: floor(a) + floor(b) is even
        expect((((Math.floor(x / 2) + Math.floor(y / 2)) % 2) + 2) % 2).toBe(0)
      }
    })
  })

  test('circles and pinwheel have the right shape; bad n is rejected', () => {
    tidy(() => {
      expect(data.circles(10).shape).toEqual([10, 2])
      expect(data.pinwheel(10).shape).toEqual([10, 2])
      expectCode(() => data.moons(0), 'ERR_ARGUMENT')
      expectCode(() => data.moons(5, { noise: -1 }), 'ERR_ARGUMENT')
    })
  })
})

describe('digits', () => {
  test('1797 images of 64 pixels in 0..16 with labels 0..9', () => {
    tidy(() => {
      const { images, labels } = data.digits()
      expect(images.shape).toEqual([1797, 64])
      expect(labels.shape).toEqual([1797])
      const px = images.toArray()
      expect(Math.min(...px)).toBe(0)
      expect(Math.max(...px)).toBe(16)
      const lb = Array.from(labels.toArray())
      expect(new Set(lb)).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
      // the first row of the shipped CSV
      expect(Array.from(px.subarray(0, 8))).toEqual([0, 0, 5, 13, 9, 1, 0, 0])
      expect(lb[0]).toBe(0)
    })
  })
})

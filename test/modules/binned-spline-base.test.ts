import { modules, noGrad, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { BinnedSplineBase } from '../../lib/modules/binned-spline-base'
import { knotOffsets, linearBin, searchBins, softmaxLast } from '../../lib/modules/spline-math'
import { expectClose, expectCode, gradCheck, input, randomValues } from '../helpers'

const f64 = (values: number[], shape: number[]): Tensor => tensor(values, shape, { dtype: 'float64' })
const arr = (t: Tensor): number[] => Array.from(t.toArray())
const softplus = (z: number): number => (z > 20 ? z : Math.log1p(Math.exp(z)))

beforeAll(() => setDefaultDtype('float64'))
afterAll(() => setDefaultDtype('float32'))

describe('BinnedSplineBase: options, buffers and parameter layout', () => {
  test('is exported from modules and is not a transform by itself', () => {
    expect(modules.BinnedSplineBase).toBe(BinnedSplineBase)
    const b = new BinnedSplineBase([[3]])
    expectCode(() => b.forward([f64([1, 2, 3], [1, 3])]), 'ERR_ARGUMENT')
    expect(b.outputDims([[3]])).toEqual([[3]])
  })

  test('defaults: buffers (FrEIA names and values) and parameter counts', () => {
    const b = new BinnedSplineBase([[3]])
    const sd = b.stateDict()
    expect(Object.keys(sd)).toEqual(['bins', 'min_bin_sizes', 'default_domain', 'identity_tails', 'default_width'])
    expect(sd.bins.shape).toEqual([])
    expect(sd.bins.item()).toBe(10)
    expect(arr(sd.min_bin_sizes)).toEqual([0.1, 0.1])
    expect(arr(sd.default_domain)).toEqual([-3, 3, -3, 3])
    expect(sd.identity_tails.item()).toBe(0)
    expect(sd.default_width.item()).toBe(6)
    expect(sd.default_width.dtype).toBe('float64')
    expect(b.parameters()).toEqual([])
    expect(b.parameterCounts).toEqual({ widths: 10, heights: 10, bottom: 1, left: 1 })
    expect(Object.keys(b.parameterCounts)).toEqual(['widths', 'heights', 'bottom', 'left'])
    expect(b.numParameters).toBe(22)
    expect(b.identityTails).toBe(false)
    expect(b.domainClamping).toBeNull()
  })

  test('options: identity tails, extra parameter counts (appended in order; a base name changes in place)', () => {
    const b = new BinnedSplineBase([[2]], { bins: 4, identityTails: true, parameterCounts: { deltas: 3, extra: 2 }, defaultDomain: [-1, 3, 0, 2], minBinSizes: [0.2, 0.3], domainClamping: 5 })
    expect(Object.entries(b.parameterCounts)).toEqual([['widths', 4], ['heights', 4], ['total_width', 1], ['deltas', 3], ['extra', 2]])
    expect(b.numParameters).toBe(14)
    const sd = b.stateDict()
    expect(sd.identity_tails.item()).toBe(1)
    expect(sd.default_width.item()).toBe(4)
    expect(arr(sd.default_domain)).toEqual([-1, 3, 0, 2])
    expect(arr(sd.min_bin_sizes)).toEqual([0.2, 0.3])
    expect(b.domainClamping).toBe(5)
    const c = new BinnedSplineBase([[2]], { bins: 4, parameterCounts: { heights: 2 } })
    expect(Object.entries(c.parameterCounts)).toEqual([['widths', 4], ['heights', 2], ['bottom', 1], ['left', 1]])
  })

  test('buffers follow the default dtype', () => {
    setDefaultDtype('float32')
    try {
      const b = new BinnedSplineBase([[2]])
      expect(b.stateDict().default_domain.dtype).toBe('float32')
    } finally {
      setDefaultDtype('float64')
    }
  })

  test('splitParameters: channel d·P + p of the network output is slot p of data channel d (1-D and images)', () => {
    tidy(() => {
      const b = new BinnedSplineBase([[2]], { bins: 2 }) // P = 6: widths 2, heights 2, bottom, left
      const raw = f64(Array.from({ length: 2 * 12 }, (_, i) => i), [2, 12])
      const p = b.splitParameters(raw, 2)
      expect(p.widths.shape).toEqual([2, 2, 2])
      expect(arr(p.widths)).toEqual([0, 1, 6, 7, 12, 13, 18, 19])
      expect(arr(p.heights)).toEqual([2, 3, 8, 9, 14, 15, 20, 21])
      expect(arr(p.bottom)).toEqual([4, 10, 16, 22])
      expect(arr(p.left)).toEqual([5, 11, 17, 23])
      // image: (B, n·P, H, W) → (B, H, W, n, count); value = 100·channel + pixel
      const n = 2
      const P = 6
      const img = f64(Array.from({ length: n * P * 3 }, (_, i) => 100 * Math.floor(i / 3) + (i % 3)), [1, n * P, 3, 1])
      const q = b.splitParameters(img, n)
      expect(q.left.shape).toEqual([1, 3, 1, 2, 1])
      expect(arr(q.left)).toEqual([500, 1100, 501, 1101, 502, 1102])
      expect(arr(q.widths.narrow(1, 2, 1))).toEqual([2, 102, 602, 702])
      // a zero count (RQS deltas with one bin) gives no entry
      const one = new BinnedSplineBase([[1]], { bins: 1, parameterCounts: { deltas: 0 } })
      expect(Object.keys(one.splitParameters(f64([1, 2, 3, 4], [1, 4]), 1))).toEqual(['widths', 'heights', 'bottom', 'left'])
    })
  })
})

describe('BinnedSplineBase: constrainParameters against a float64 reference', () => {
  const K = 4
  const raw = (n: number, P: number, seed: number) => f64(randomValues(3 * n * P, seed, -2, 2), [3, n * P])

  test('affine tails: shifted softplus with minimum sizes, left/bottom offsets', () => {
    tidy(() => {
      const dom = [-2, 3, -1, 1]
      const [mw, mh] = [0.15, 0.05]
      const b = new BinnedSplineBase([[2]], { bins: K, defaultDomain: dom, minBinSizes: [mw, mh] })
      const r = raw(2, 2 * K + 2, 1)
      const p = b.constrainParameters(b.splitParameters(r, 2))
      const rv = arr(r)
      const xs = Math.log(Math.exp((dom[1] - dom[0]) / K - mw) - 1)
      const ys = Math.log(Math.exp((dom[3] - dom[2]) / K - mh) - 1)
      const P = 2 * K + 2
      const at = (e: number, slot: number) => rv[e * P + slot]
      const elements = Array.from({ length: 6 }, (_, e) => e)
      expectClose(p.widths, elements.flatMap((e) => Array.from({ length: K }, (_, k) => mw + softplus(at(e, k) + xs))), 1e-14)
      expectClose(p.heights, elements.flatMap((e) => Array.from({ length: K }, (_, k) => mh + softplus(at(e, K + k) + ys))), 1e-14)
      expectClose(p.bottom, elements.map((e) => at(e, 2 * K) + dom[2]), 1e-14)
      expectClose(p.left, elements.map((e) => at(e, 2 * K + 1) + dom[0]), 1e-14)
    })
  })

  test('raw zeros give the default domain in equal bins', () => {
    tidy(() => {
      const b = new BinnedSplineBase([[1]], { bins: K, defaultDomain: [-1, 3, -2, 6] })
      const p = b.constrainParameters(b.splitParameters(f64(new Array(2 * K + 2).fill(0), [1, 2 * K + 2]), 1))
      expectClose(p.widths, [1, 1, 1, 1], 1e-14)
      expectClose(p.heights, [2, 2, 2, 2], 1e-14)
      expect(arr(p.left)).toEqual([-1])
      expect(arr(p.bottom)).toEqual([-2])
    })
  })

  test('domain clamping rescales widths and left (heights and bottom) by dc·tanh(Σ/dc)/Σ', () => {
    tidy(() => {
      const dc = 2.5
      const b = new BinnedSplineBase([[2]], { bins: K, domainClamping: dc })
      const r = raw(2, 2 * K + 2, 2)
      const p = b.constrainParameters(b.splitParameters(r, 2))
      const plain = new BinnedSplineBase([[2]], { bins: K }).constrainParameters(b.splitParameters(r, 2))
      const W = arr(plain.widths.sum(-1))
      const H = arr(plain.heights.sum(-1))
      const rx = W.map((w) => (dc * Math.tanh(w / dc)) / w)
      const ry = H.map((h) => (dc * Math.tanh(h / dc)) / h)
      expectClose(p.widths, arr(plain.widths).map((v, i) => v * rx[Math.floor(i / K)]), 1e-14)
      expectClose(p.heights, arr(plain.heights).map((v, i) => v * ry[Math.floor(i / K)]), 1e-14)
      expectClose(p.left, arr(plain.left).map((v, i) => v * rx[i]), 1e-14)
      expectClose(p.bottom, arr(plain.bottom).map((v, i) => v * ry[i]), 1e-14)
      expectClose(p.widths.sum(-1), rx.map((r, i) => r * W[i]), 1e-14)
    })
  })

  test('identity tails: softmax bins of a learned total width, symmetric domain, optional clamping', () => {
    tidy(() => {
      for (const dc of [null, 1.7]) {
        const b = new BinnedSplineBase([[2]], { bins: K, identityTails: true, defaultDomain: [-2, 2, -5, 5], domainClamping: dc })
        const r = raw(2, 2 * K + 1, 3)
        const p = b.constrainParameters(b.splitParameters(r, 2))
        const rv = arr(r)
        const P = 2 * K + 1
        const expW: number[] = []
        const expH: number[] = []
        const expL: number[] = []
        for (let e = 0; e < 6; e++) {
          let T = 4 * softplus(rv[e * P + 2 * K] + Math.log(Math.E - 1))
          if (dc !== null) T = dc * Math.tanh(T / dc)
          const soft = (off: number) => {
            const ex = Array.from({ length: K }, (_, k) => Math.exp(rv[e * P + off + k]))
            const s = ex.reduce((a, v) => a + v, 0)
            return ex.map((v) => (T * v) / s)
          }
          expW.push(...soft(0))
          expH.push(...soft(K))
          expL.push(-T / 2)
        }
        expectClose(p.widths, expW, 1e-14)
        expectClose(p.heights, expH, 1e-14)
        expectClose(p.left, expL, 1e-14)
        expectClose(p.bottom, expL, 1e-14)
      }
    })
  })

  test('a loaded default_domain takes effect (the buffers are read, as in FrEIA)', () => {
    tidy(() => {
      const b = new BinnedSplineBase([[1]], { bins: 2 })
      b.loadStateDict({ ...b.stateDict(), default_domain: f64([0, 4, 1, 2], [4]) })
      const p = b.constrainParameters(b.splitParameters(f64([0, 0, 0, 0, 0, 0], [1, 6]), 1))
      expectClose(p.widths, [2, 2], 1e-14)
      expectClose(p.heights, [0.5, 0.5], 1e-14)
      expect(arr(p.left)).toEqual([0])
      expect(arr(p.bottom)).toEqual([1])
    })
  })
})

describe('BinnedSplineBase: binnedSpline bin lookup and tails', () => {
  // knots x: -3, -1, 1, 3; y: -3, -2, 0, 4 (heights 1, 2, 4); tail slope 7/6 through (-3, -3)
  const params = () => ({
    left: f64([-3], [1, 1, 1]),
    bottom: f64([-3], [1, 1, 1]),
    widths: f64([2, 2, 2], [1, 1, 3]),
    heights: f64([1, 2, 4], [1, 1, 3]),
  })
  const lin = (v: Tensor, b: Record<string, Tensor>, rev: boolean) => linearBin(v, b.left, b.right, b.bottom, b.top, rev)
  const slopes = [0.5, 1, 2]
  const tail = 7 / 6

  test('inside is (x_0, x_K]: values at a knot belong to the bin on their left (searchsorted, side left)', () => {
    tidy(() => {
      const b = new BinnedSplineBase([[1]], { bins: 3 })
      const xs = [-3, -2, -1, 0, 1, 2.5, 3, 3.5, -4]
      const expectSlope = [tail, slopes[0], slopes[0], slopes[1], slopes[1], slopes[2], slopes[2], tail, tail]
      const expectY = [-3, -2.5, -2, -1, 0, 3, 4, -3 + tail * 6.5, -3 - tail]
      xs.forEach((x, i) => {
        const [y, lj] = noGrad(() => b.binnedSpline(f64([x], [1, 1]), params(), lin, false))
        expectClose(y, [expectY[i]], 1e-15)
        expectClose(lj, [Math.log(expectSlope[i])], 1e-15)
        const [back, ljr] = noGrad(() => b.binnedSpline(y, params(), lin, true))
        expectClose(back, [x], 1e-15)
        expectClose(ljr, [-Math.log(expectSlope[i])], 1e-15)
      })
    })
  })

  test('reverse: inside is (y_0, y_K], bins found among the y knots', () => {
    tidy(() => {
      const b = new BinnedSplineBase([[1]], { bins: 3 })
      const ys = [-3, -2, 0, 4, 4.5, 3.9]
      const expectSlope = [tail, slopes[0], slopes[1], slopes[2], tail, slopes[2]]
      ys.forEach((y, i) => {
        const [, lj] = noGrad(() => b.binnedSpline(f64([y], [1, 1]), params(), lin, true))
        expectClose(lj, [-Math.log(expectSlope[i])], 1e-15)
      })
    })
  })

  test('per-knot parameters other than the base ones are gathered as <name>_left and <name>_right', () => {
    tidy(() => {
      const b = new BinnedSplineBase([[1]], { bins: 3 })
      const seen: Record<string, number[]> = {}
      const spy = (v: Tensor, bin: Record<string, Tensor>, rev: boolean) => {
        for (const [k, t] of Object.entries(bin)) seen[k] = arr(t)
        return lin(v, bin, rev)
      }
      noGrad(() => b.binnedSpline(f64([0.5, -2], [1, 2]), { left: f64([-3, -3], [1, 2, 1]), bottom: f64([-3, -3], [1, 2, 1]), widths: f64([2, 2, 2, 2, 2, 2], [1, 2, 3]), heights: f64([1, 2, 4, 1, 2, 4], [1, 2, 3]), deltas: f64([10, 11, 12, 13, 20, 21, 22, 23], [1, 2, 4]) }, spy, false))
      expect(Object.keys(seen).sort()).toEqual(['bottom', 'deltas_left', 'deltas_right', 'left', 'right', 'top'])
      expect(seen.left).toEqual([-1, -3])
      expect(seen.right).toEqual([1, -1])
      expect(seen.bottom).toEqual([-2, -3])
      expect(seen.top).toEqual([0, -2])
      expect(seen.deltas_left).toEqual([11, 20])
      expect(seen.deltas_right).toEqual([12, 21])
    })
  })

  test('the log-det sums over all non-batch axes of an image', () => {
    tidy(() => {
      const b = new BinnedSplineBase([[2, 1, 2]], { bins: 3 })
      // x (1, 2, 1, 2); parameters (1, 1, 2, 2, count): the same spline for each of the 4 elements
      const rep = (vals: number[]) => f64(Array.from({ length: 4 }, () => vals).flat(), [1, 1, 2, 2, vals.length])
      const p = { left: rep([-3]), bottom: rep([-3]), widths: rep([2, 2, 2]), heights: rep([1, 2, 4]) }
      const [y, lj] = noGrad(() => b.binnedSpline(f64([-2, 0, 2.5, 5], [1, 2, 1, 2]), p, lin, false))
      expect(y.shape).toEqual([1, 2, 1, 2])
      expectClose(y, [-2.5, -1, 3, -3 + tail * 8], 1e-15)
      expectClose(lj, [Math.log(0.5) + Math.log(1) + Math.log(2) + Math.log(tail)], 1e-15)
    })
  })
})

describe('spline-math helpers', () => {
  test('knotOffsets is a cumulative sum with a leading 0; gradient', () => {
    tidy(() => {
      const w = f64([1, 2, 3, 4, 5, 6], [2, 3])
      expect(arr(knotOffsets(w))).toEqual([0, 1, 3, 6, 0, 4, 9, 15])
      expect(knotOffsets(f64([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2])).shape).toEqual([2, 2, 3])
      expect(gradCheck((a) => knotOffsets(a), [input([2, 3, 4], 1)])).toBeLessThan(1e-6)
    })
  })
  test('softmaxLast: matches exp/Σexp, stable for large inputs; gradient', () => {
    tidy(() => {
      const v = [0.5, -1, 2, 1000, 1001, 999]
      const s = softmaxLast(f64(v, [2, 3]))
      const ref = (xs: number[]) => {
        const m = Math.max(...xs)
        const e = xs.map((x) => Math.exp(x - m))
        const t = e.reduce((a, b) => a + b, 0)
        return e.map((x) => x / t)
      }
      expectClose(s, [...ref(v.slice(0, 3)), ...ref(v.slice(3))], 1e-15)
      expect(gradCheck((a) => softmaxLast(a).mul(f64(randomValues(8, 3), [2, 4])), [input([2, 4], 2, -3, 3)])).toBeLessThan(1e-6)
    })
  })
  test('searchBins counts knots strictly below (torch.searchsorted side left), clamped to [1, K]', () => {
    tidy(() => {
      const knots = f64([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3], [6, 4])
      const { lower, upper } = searchBins(knots, f64([-1, 0, 0.5, 1, 3, 7], [6]))
      expect(upper.shape).toEqual([6, 1])
      expect(arr(upper)).toEqual([1, 1, 1, 1, 3, 3])
      expect(arr(lower)).toEqual([0, 0, 0, 0, 2, 2])
      const u2 = searchBins(knots.narrow(0, 0, 1), f64([1.5], [1])).upper
      expect(arr(u2)).toEqual([2])
    })
  })
})

describe('BinnedSplineBase: errors', () => {
  test('bad options are ERR_ARGUMENT', () => {
    expectCode(() => new BinnedSplineBase([[2]], { bins: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { bins: '3' as unknown as number }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { minBinSizes: [0.1, -0.1] }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { minBinSizes: [0.1, 0.1, 0.1] }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { defaultDomain: [-3, 3, -3] }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { defaultDomain: [-3, -3, -3, 3] }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { defaultDomain: [-3, 3, 3, -3] }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { defaultDomain: [-3, 3, NaN, 3] }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { bins: 4, defaultDomain: [-3, 3, 0, 0.3] }), 'ERR_ARGUMENT') // 4 · 0.1 > 0.3
    expectCode(() => new BinnedSplineBase([[2]], { identityTails: 'yes' as unknown as boolean }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { domainClamping: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { parameterCounts: { deltas: -1 } }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { parameterCounts: [] as unknown as Record<string, number> }), 'ERR_ARGUMENT')
    expectCode(() => new BinnedSplineBase([[2]], { identity_tails: true } as never), 'ERR_ARGUMENT')
    // exactly enough room for the minimum sizes is allowed (FrEIA's assertion is ≥)
    expect(() => new BinnedSplineBase([[2]], { bins: 4, minBinSizes: [0.5, 0.5], defaultDomain: [0, 2, 0, 2] })).not.toThrow()
  })
})

import { modules, setDefaultDtype, SequenceINN, tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { HaarDownsampling, HaarUpsampling } = modules

/**
 * Plain-loop inverse Haar level: from the coefficients (A, V, Hc, D) of channel c (at 4c + k, or k·C + c by
 * wavelet), with g = 0.5 / rebalance: a = g(A+V+Hc+D), b = g(A−V+Hc−D), c' = g(A+V−Hc−D), d = g(A−V−Hc+D).
 */
function inverseHaarRef(y: number[], [n, c4, h2, w2]: number[], byWavelet: boolean, rebalance: number): number[] {
  const c = c4 / 4
  const g = 0.5 / rebalance
  const h = 2 * h2
  const w = 2 * w2
  const out = new Array<number>(y.length)
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < h2; i++)
        for (let j = 0; j < w2; j++) {
          const q = [0, 1, 2, 3].map((k) => y[((b * c4 + (byWavelet ? k * c + ch : 4 * ch + k)) * h2 + i) * w2 + j])
          const [A, V, Hc, D] = q
          const px = [A + V + Hc + D, A - V + Hc - D, A + V - Hc - D, A - V - Hc + D]
          px.forEach((v, p) => {
            const r = p >> 1
            const s = p & 1
            out[((b * c + ch) * h + 2 * i + r) * w + 2 * j + s] = g * v
          })
        }
  return out
}

describe('HaarUpsampling', () => {
  test.each([
    [[2, 4, 1, 2], false, 1],
    [[3, 12, 2, 1], false, 0.5],
    [[2, 8, 2, 2], true, 3],
  ])('shape %j orderByWavelet %s rebalance %d: forward equals the plain-loop inverse transform; reverse; log-dets', (shape, byWavelet, rebalance) => {
    tidy(() => {
      const [b, c4, h2, w2] = shape
      setDefaultDtype('float64')
      let m
      try {
        m = new HaarUpsampling([[c4, h2, w2]], { orderByWavelet: byWavelet, rebalance })
      } finally {
        setDefaultDtype('float32')
      }
      expect(m.outputDims([[c4, h2, w2]])).toEqual([[c4 / 4, 2 * h2, 2 * w2]])
      const values = randomValues(numel(shape), 12)
      const [[x], j] = m.forward([tensor(values, shape, { dtype: 'float64' })])
      expect(x.shape).toEqual([b, c4 / 4, 2 * h2, 2 * w2])
      expectClose(x, inverseHaarRef(values, shape, byWavelet, rebalance), 1e-14)
      expect(j).toBeCloseTo(-c4 * h2 * w2 * Math.log(rebalance), 12)
      const [[y], jr] = m.forward([x], [], true)
      expectClose(y, values, 1e-14)
      expect(jr).toBeCloseTo(c4 * h2 * w2 * Math.log(rebalance), 12)
      // the same map as HaarDownsampling in reverse
      const down = new HaarDownsampling([[c4 / 4, 2 * h2, 2 * w2]], { orderByWavelet: byWavelet, rebalance })
      expectClose(down.forward([tensor(values, shape, { dtype: 'float64' })], [], true)[0][0], x.toArray(), 1e-14)
      const [[x32]] = m.forward([tensor(values, shape, { dtype: 'float32' })])
      expectClose(x32, x.toArray(), 1e-6)
    })
  })

  test('dimsIn is the real input shape (FrEIA stores the output shape), buffer as FrEIA', () => {
    const m = new HaarUpsampling([[8, 2, 2]])
    expect(m.dimsIn).toEqual([[8, 2, 2]])
    expect(m.inChannels).toBe(2)
    const sd = m.stateDict()
    expect(Object.keys(sd)).toEqual(['haar_weights'])
    expect(sd.haar_weights.shape).toEqual([8, 1, 2, 2])
    tidy(() => {
      const inn = new SequenceINN(8, 2, 2)
      inn.append(m)
      expect(inn.outputDims()).toEqual([[2, 4, 4]])
    })
  })

  test.each([
    [[2, 4, 1, 2], {}],
    [[2, 8, 2, 1], { rebalance: 0.5 }],
    [[3, 4, 2, 2], { orderByWavelet: true, rebalance: 2 }],
  ])('checkInvertibleModule %j %j', (shape, opts) => {
    checkInvertibleModule(() => new HaarUpsampling([shape.slice(1)], opts), { inputs: [shape] })
  })

  test('bad dims and options', () => {
    expectCode(() => new HaarUpsampling([[6, 2, 2]]), 'ERR_SHAPE')
    expectCode(() => new HaarUpsampling([[8]]), 'ERR_SHAPE')
    expectCode(() => new HaarUpsampling([[4, 1, 1]], { rebalance: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new HaarUpsampling([[4, 1, 1]], { rebalance: Infinity }), 'ERR_ARGUMENT')
    expectCode(() => new HaarUpsampling([[4, 1, 1]], { legacyBackend: true } as never), 'ERR_ARGUMENT')
    const m = new HaarUpsampling([[4, 1, 1]])
    tidy(() => {
      expectCode(() => m.forward([tensor([1, 2, 3, 4], [1, 1, 2, 2])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor([1, 2, 3, 4], [1, 4, 1, 1])], [], true), 'ERR_SHAPE')
    })
  })
})

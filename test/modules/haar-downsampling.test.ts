import { modules, SequenceINN, setDefaultDtype, tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { HaarDownsampling, HaarUpsampling } = modules

/**
 * Plain-loop reference of one Haar level: per channel c and block [[a, b], [c', d]] the outputs
 * f·(a+b+c'+d), f·(a−b+c'−d), f·(a+b−c'−d), f·(a−b−c'+d) go to channel 4c + k (k·C + c by wavelet).
 */
function haarRef(x: number[], [n, c, h, w]: number[], byWavelet: boolean, rebalance: number): number[] {
  const f = 0.5 * rebalance
  const h2 = h / 2
  const w2 = w / 2
  const out = new Array<number>(x.length)
  const at = (b: number, ch: number, i: number, j: number) => x[((b * c + ch) * h + i) * w + j]
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < h2; i++)
        for (let j = 0; j < w2; j++) {
          const a = at(b, ch, 2 * i, 2 * j)
          const bb = at(b, ch, 2 * i, 2 * j + 1)
          const cc = at(b, ch, 2 * i + 1, 2 * j)
          const d = at(b, ch, 2 * i + 1, 2 * j + 1)
          const coeffs = [a + bb + cc + d, a - bb + cc - d, a + bb - cc - d, a - bb - cc + d]
          coeffs.forEach((v, k) => {
            const oc = byWavelet ? k * c + ch : 4 * ch + k
            out[((b * 4 * c + oc) * h2 + i) * w2 + j] = f * v
          })
        }
  return out
}

function make64<T>(fn: () => T): T {
  setDefaultDtype('float64')
  try {
    return fn()
  } finally {
    setDefaultDtype('float32')
  }
}

describe('HaarDownsampling', () => {
  test.each([
    [[2, 1, 2, 4], false, 1],
    [[3, 3, 4, 2], false, 0.5],
    [[2, 2, 4, 6], true, 1],
    [[2, 3, 2, 2], true, -2],
  ])('shape %j orderByWavelet %s rebalance %d: forward equals the plain-loop transform, reverse inverts it, log-dets', (shape, byWavelet, rebalance) => {
    tidy(() => {
      const [b, c, h, w] = shape
      const m = make64(() => new HaarDownsampling([[c, h, w]], { orderByWavelet: byWavelet, rebalance }))
      expect(m.outputDims([[c, h, w]])).toEqual([[4 * c, h / 2, w / 2]])
      const values = randomValues(numel(shape), 11)
      const [[y], j] = m.forward([tensor(values, shape, { dtype: 'float64' })])
      expect(y.shape).toEqual([b, 4 * c, h / 2, w / 2])
      expectClose(y, haarRef(values, shape, byWavelet, rebalance), 1e-14)
      // log|det| = C·H·W·ln|rebalance| (the Haar matrix times 0.5 is orthogonal)
      expect(j).toBeCloseTo(c * h * w * Math.log(Math.abs(rebalance)), 12)
      const [[x], jr] = m.forward([y], [], true)
      expectClose(x, values, 1e-14)
      expect(jr).toBeCloseTo(-c * h * w * Math.log(Math.abs(rebalance)), 12)
      const [[y32]] = m.forward([tensor(values, shape, { dtype: 'float32' })])
      expect(y32.dtype).toBe('float32')
      expectClose(y32, y.toArray(), 1e-6)
    })
  })

  test('rebalance 1 gives a log-det of exactly 0 (FrEIA\'s value)', () => {
    tidy(() => {
      const m = new HaarDownsampling([[2, 4, 4]])
      const x = tensor(randomValues(64, 2), [2, 2, 4, 4])
      expect(m.forward([x])[1]).toBe(0)
      expect(m.forward([x.reshape([2, 8, 2, 2])], [], true)[1]).toBe(0)
    })
  })

  test('haar_weights buffer: FrEIA\'s name, shape and values; defaults', () => {
    const m = new HaarDownsampling([[3, 2, 2]])
    expect(m.orderByWavelet).toBe(false)
    expect(m.rebalance).toBe(1)
    expect(m.parameters()).toEqual([])
    const sd = m.stateDict()
    expect(Object.keys(sd)).toEqual(['haar_weights'])
    expect(sd.haar_weights.shape).toEqual([12, 1, 2, 2])
    const row = [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]
    expectClose(sd.haar_weights, [...row.flat(), ...row.flat(), ...row.flat()], 0)
  })

  test('the reverse pass leaves its input untouched (FrEIA scales it in place)', () => {
    tidy(() => {
      const m = new HaarDownsampling([[1, 2, 2]], { rebalance: 0.5 })
      const values = [0.1, -0.2, 0.3, 0.4]
      const y = tensor(values, [1, 4, 1, 1], { dtype: 'float64', requiresGrad: true })
      m.forward([y], [], true)
      expectClose(y, values, 0)
    })
  })

  test.each([
    [[2, 1, 2, 4], {}],
    [[2, 3, 2, 2], { rebalance: 0.5 }],
    [[3, 1, 4, 2], { orderByWavelet: true, rebalance: 1.7 }],
  ])('checkInvertibleModule %j %j', (shape, opts) => {
    checkInvertibleModule(() => new HaarDownsampling([shape.slice(1)], opts), { inputs: [shape] })
  })

  test('down → up is the identity in a SequenceINN, log-dets cancel', () => {
    tidy(() => {
      const inn = new SequenceINN(2, 4, 2)
      inn.append(HaarDownsampling, { rebalance: 0.5, orderByWavelet: true })
      inn.append(HaarUpsampling, { rebalance: 0.5, orderByWavelet: true })
      const x = tensor(randomValues(32, 4), [2, 2, 4, 2], { dtype: 'float32' })
      const [z, j] = inn.forward(x)
      expectClose(z, x.toArray(), 1e-6)
      expectClose(j, [0, 0], 0)
    })
  })

  test('bad dims, options and inputs', () => {
    expectCode(() => new HaarDownsampling([[3, 5, 4]]), 'ERR_SHAPE')
    expectCode(() => new HaarDownsampling([[3, 4]]), 'ERR_SHAPE')
    expectCode(() => new HaarDownsampling([[1, 2, 2], [1, 2, 2]]), 'ERR_SHAPE')
    expectCode(() => new HaarDownsampling([[1, 2, 2]], { rebalance: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new HaarDownsampling([[1, 2, 2]], { rebalance: NaN }), 'ERR_ARGUMENT')
    expectCode(() => new HaarDownsampling([[1, 2, 2]], { rebalance: '2' as unknown as number }), 'ERR_ARGUMENT')
    expectCode(() => new HaarDownsampling([[1, 2, 2]], { orderByWavelet: 1 as unknown as boolean }), 'ERR_ARGUMENT')
    expectCode(() => new HaarDownsampling([[1, 2, 2]], { orderByWavelt: true } as never), 'ERR_ARGUMENT')
    const m = new HaarDownsampling([[1, 2, 2]])
    tidy(() => {
      expectCode(() => m.forward([tensor([1, 2, 3, 4], [1, 1, 1, 4])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor([1, 2, 3, 4], [1, 1, 2, 2])], [], true), 'ERR_SHAPE')
    })
  })
})

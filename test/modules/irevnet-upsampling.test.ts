import { modules, SequenceINN, setDefaultDtype, tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { IRevNetDownsampling, IRevNetUpsampling } = modules

/** Plain-loop reference: input channel 4c + k (legacy k·C + c) at (i, j) goes to channel c at (2i + r, 2j + s). */
function unsqueezeRef(y: number[], [b, c4, h2, w2]: number[], legacy: boolean): number[] {
  const c = c4 / 4
  const h = 2 * h2
  const w = 2 * w2
  const out = new Array<number>(y.length)
  for (let n = 0; n < b; n++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < h2; i++)
        for (let j = 0; j < w2; j++)
          for (let r = 0; r < 2; r++)
            for (let s = 0; s < 2; s++) {
              const k = 2 * r + s
              const ic = legacy ? k * c + ch : 4 * ch + k
              out[((n * c + ch) * h + 2 * i + r) * w + 2 * j + s] = y[((n * c4 + ic) * h2 + i) * w2 + j]
            }
  return out
}

describe('IRevNetUpsampling', () => {
  test.each([
    [[2, 4, 1, 2], false],
    [[3, 12, 2, 1], false],
    [[2, 8, 2, 3], true],
  ])('shape %j legacy %s: forward equals the plain-loop unsqueeze, reverse inverts it, float32 agrees', (shape, legacy) => {
    tidy(() => {
      const [b, c4, h2, w2] = shape
      setDefaultDtype('float64')
      let m
      try {
        m = new IRevNetUpsampling([[c4, h2, w2]], { legacyBackend: legacy })
      } finally {
        setDefaultDtype('float32')
      }
      expect(m.outputDims([[c4, h2, w2]])).toEqual([[c4 / 4, 2 * h2, 2 * w2]])
      const values = randomValues(numel(shape), 8)
      const [[x], j] = m.forward([tensor(values, shape, { dtype: 'float64' })])
      expect(x.shape).toEqual([b, c4 / 4, 2 * h2, 2 * w2])
      expect(j).toBe(0)
      expectClose(x, unsqueezeRef(values, shape, legacy), 0)
      const [[y]] = m.forward([x], [], true)
      expectClose(y, values, 0)
      const [[x32]] = m.forward([tensor(values, shape, { dtype: 'float32' })])
      expectClose(x32, x.toArray(), 1e-7)
      // the same map as IRevNetDownsampling in reverse
      const down = new IRevNetDownsampling([[c4 / 4, 2 * h2, 2 * w2]], { legacyBackend: legacy })
      expectClose(down.forward([tensor(values, shape, { dtype: 'float64' })], [], true)[0][0], x.toArray(), 0)
    })
  })

  test('dimsIn is the real input shape (FrEIA stores the output shape), buffer as FrEIA', () => {
    const m = new IRevNetUpsampling([[16, 3, 3]])
    expect(m.dimsIn).toEqual([[16, 3, 3]])
    expect(m.channels).toBe(4)
    const sd = m.stateDict()
    expect(Object.keys(sd)).toEqual(['downsample_kernel'])
    expect(sd.downsample_kernel.shape).toEqual([16, 1, 2, 2])
    expect(sd.downsample_kernel.dtype).toBe('float32')
    expect(Object.keys(new IRevNetUpsampling([[16, 3, 3]], { legacyBackend: true }).stateDict())).toEqual([])
    // so that a built instance can be appended where its input comes
    tidy(() => {
      const inn = new SequenceINN(16, 3, 3)
      inn.append(m)
      expect(inn.outputDims()).toEqual([[4, 6, 6]])
    })
  })

  test.each([
    [[2, 4, 1, 2], {}],
    [[2, 8, 2, 1], {}],
    [[3, 4, 2, 2], { legacyBackend: true }],
  ])('checkInvertibleModule %j %j', (shape, opts) => {
    checkInvertibleModule(() => new IRevNetUpsampling([shape.slice(1)], opts), { inputs: [shape] })
  })

  test('bad dims and options', () => {
    expectCode(() => new IRevNetUpsampling([[6, 2, 2]]), 'ERR_SHAPE')
    expectCode(() => new IRevNetUpsampling([[8, 2]]), 'ERR_SHAPE')
    expectCode(() => new IRevNetUpsampling([[4, 1, 1], [4, 1, 1]]), 'ERR_SHAPE')
    expectCode(() => new IRevNetUpsampling([[4, 1, 1]], { legacyBackend: 'no' as unknown as boolean }), 'ERR_ARGUMENT')
    expectCode(() => new IRevNetUpsampling([[4, 1, 1]], { orderByWavelet: true } as never), 'ERR_ARGUMENT')
    const m = new IRevNetUpsampling([[4, 1, 1]])
    tidy(() => {
      expectCode(() => m.forward([tensor([1, 2, 3, 4], [1, 4, 1, 1])], [], true), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor([1, 2, 3, 4], [1, 1, 2, 2])]), 'ERR_SHAPE')
    })
  })
})

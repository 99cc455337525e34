import { modules, SequenceINN, setDefaultDtype, tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { IRevNetDownsampling, IRevNetUpsampling } = modules

/**
 * Plain-loop reference of the 2×2 squeeze: output channel 4c + k (legacy: k·C + c) at (i, j) holds input
 * channel c at (2i + r, 2j + s), k = 2r + s.
 */
function squeezeRef(x: number[], [b, c, h, w]: number[], legacy: boolean): number[] {
  const out = new Array<number>(x.length)
  const h2 = h / 2
  const w2 = w / 2
  for (let n = 0; n < b; n++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < h2; i++)
        for (let j = 0; j < w2; j++)
          for (let r = 0; r < 2; r++)
            for (let s = 0; s < 2; s++) {
              const k = 2 * r + s
              const oc = legacy ? k * c + ch : 4 * ch + k
              out[((n * 4 * c + oc) * h2 + i) * w2 + j] = x[((n * c + ch) * h + 2 * i + r) * w + 2 * j + s]
            }
  return out
}
function unsqueezeRef(y: number[], [b, c, h, w]: number[], legacy: boolean): number[] {
  // the inverse permutation of squeezeRef, applied to positions
  const idx = squeezeRef(Array.from({ length: y.length }, (_, i) => i), [b, c, h, w], legacy)
  const out = new Array<number>(y.length)
  idx.forEach((src, dst) => (out[src] = y[dst]))
  return out
}

function withDtype<T>(dtype: 'float32' | 'float64', fn: () => T): T {
  setDefaultDtype(dtype)
  try {
    return fn()
  } finally {
    setDefaultDtype('float32')
  }
}

describe('IRevNetDownsampling', () => {
  test.each([
    [[2, 1, 2, 4], false],
    [[3, 3, 4, 2], false],
    [[2, 2, 4, 6], true],
  ])('shape %j legacy %s: forward and reverse equal the plain-loop squeeze, float32 agrees', (shape, legacy) => {
    tidy(() => {
      const [b, c, h, w] = shape
      const values = randomValues(numel(shape), 3)
      const m = withDtype('float64', () => new IRevNetDownsampling([[c, h, w]], { legacyBackend: legacy }))
      expect(m.outputDims([[c, h, w]])).toEqual([[4 * c, h / 2, w / 2]])
      const [[y], j] = m.forward([tensor(values, shape, { dtype: 'float64' })])
      expect(y.shape).toEqual([b, 4 * c, h / 2, w / 2])
      expect(j).toBe(0)
      expectClose(y, squeezeRef(values, shape, legacy), 0)
      const yv = randomValues(numel(shape), 4)
      const [[x], jr] = m.forward([tensor(yv, [b, 4 * c, h / 2, w / 2], { dtype: 'float64' })], [], true)
      expect(x.shape).toEqual(shape)
      expect(jr).toBe(0)
      expectClose(x, unsqueezeRef(yv, shape, legacy), 0)
      const [[y32]] = m.forward([tensor(values, shape, { dtype: 'float32' })])
      expect(y32.dtype).toBe('float32')
      expectClose(y32, y.toArray(), 1e-7)
    })
  })

  test('the default order is the one of FrEIA\'s strided convolution with downsample_kernel', () => {
    tidy(() => {
      const shape = [2, 3, 4, 6]
      const [b, c, h, w] = shape
      const m = withDtype('float64', () => new IRevNetDownsampling([[c, h, w]]))
      const sd = m.stateDict()
      expect(Object.keys(sd)).toEqual(['downsample_kernel'])
      const k = sd.downsample_kernel
      expect(k.shape).toEqual([4 * c, 1, 2, 2])
      expect(k.dtype).toBe('float64')
      expect(m.parameters()).toEqual([])
      // grouped stride-2 cross-correlation: out[4c + q] = Σ_rs kernel[4c + q, 0, r, s] · x[c, 2i + r, 2j + s]
      const kv = k.toArray()
      const xv = randomValues(numel(shape), 5)
      const ref: number[] = []
      for (let n = 0; n < b; n++)
        for (let oc = 0; oc < 4 * c; oc++)
          for (let i = 0; i < h / 2; i++)
            for (let j = 0; j < w / 2; j++) {
              const ic = Math.floor(oc / 4)
              let acc = 0
              for (let r = 0; r < 2; r++) for (let s = 0; s < 2; s++) acc += kv[oc * 4 + r * 2 + s] * xv[((n * c + ic) * h + 2 * i + r) * w + 2 * j + s]
              ref.push(acc)
            }
      expectClose(m.forward([tensor(xv, shape, { dtype: 'float64' })])[0][0], ref, 0)
    })
  })

  test('legacyBackend has no buffer', () => {
    const m = new IRevNetDownsampling([[2, 4, 4]], { legacyBackend: true })
    expect(Object.keys(m.stateDict())).toEqual([])
    expect(m.downsampleKernel).toBeNull()
  })

  test.each([
    [[2, 1, 2, 4], {}],
    [[2, 3, 2, 2], {}],
    [[3, 1, 4, 2], { legacyBackend: true }],
  ])('checkInvertibleModule %j %j', (shape, opts) => {
    checkInvertibleModule(() => new IRevNetDownsampling([shape.slice(1)], opts), { inputs: [shape] })
  })

  test('works inside a SequenceINN with upsampling: down → up is the identity', () => {
    tidy(() => {
      const inn = new SequenceINN(3, 4, 2)
      inn.append(IRevNetDownsampling)
      inn.append(IRevNetUpsampling)
      const x = tensor(randomValues(2 * 24, 1), [2, 3, 4, 2])
      const [z, j] = inn.forward(x)
      expectClose(z, x.toArray(), 0)
      expectClose(j, [0, 0], 0)
    })
  })

  test('bad dims, options and inputs', () => {
    expectCode(() => new IRevNetDownsampling([[3, 5, 4]]), 'ERR_SHAPE')
    expectCode(() => new IRevNetDownsampling([[3, 4, 3]]), 'ERR_SHAPE')
    expectCode(() => new IRevNetDownsampling([[16]]), 'ERR_SHAPE')
    expectCode(() => new IRevNetDownsampling([[1, 2, 2], [1, 2, 2]]), 'ERR_SHAPE')
    expectCode(() => new IRevNetDownsampling([[1, 2, 2]], { legacyBackend: 1 as unknown as boolean }), 'ERR_ARGUMENT')
    expectCode(() => new IRevNetDownsampling([[1, 2, 2]], { legacy: true } as never), 'ERR_ARGUMENT')
    const m = new IRevNetDownsampling([[1, 2, 2]])
    expectCode(() => m.outputDims([[1, 3, 2]]), 'ERR_SHAPE')
    tidy(() => {
      expectCode(() => m.forward([tensor([1, 2, 3, 4], [1, 1, 4, 1])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor([1, 2, 3, 4], [1, 1, 2, 2])], [], true), 'ERR_SHAPE')
      expectCode(() => m.forward([]), 'ERR_ARGUMENT')
    })
  })
})


import { distributions, manualSeed, randn, SequenceINN, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { ConcatNoise, NoiseDistribution } from '../../lib/modules/concat-noise'
import { HouseholderTransform } from '../../lib/modules/householder-transform'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const LOG_2PI = Math.log(2 * Math.PI)

/** ln N(v; 0, I) per sample, by loops. */
function logNormal(values: ArrayLike<number>, batch: number): number[] {
  const per = values.length / batch
  return Array.from({ length: batch }, (_, b) => {
    let s = 0
    for (let i = 0; i < per; i++) s += values[b * per + i] ** 2
    return -0.5 * s - 0.5 * per * LOG_2PI
  })
}

/** The channel-axis slices [start, start + len) of a row-major (B, C, ...rest) array. */
function channels(values: ArrayLike<number>, shape: number[], start: number, len: number): number[] {
  const inner = numel(shape.slice(2))
  const out: number[] = []
  for (let b = 0; b < shape[0]; b++)
    for (let c = start; c < start + len; c++) for (let i = 0; i < inner; i++) out.push(values[(b * shape[1] + c) * inner + i])
  return out
}

/** A distribution that returns the same noise every time (so finite differences see a deterministic map). */
function fixedNoise(values: number[], eventShape: number[]): NoiseDistribution {
  const normal = new distributions.StandardNormal(...eventShape)
  return {
    sample: (n, opts) => tensor(values.slice(0, n * numel(eventShape)), [n, ...eventShape], { dtype: opts?.dtype ?? 'float32' }),
    logProb: (z) => normal.logProb(z),
  }
}

describe('ConcatNoise', () => {
  test.each([
    [[3, 4], 2],
    [[2, 2, 3], 1],
    [[2, 1, 2, 2], 3],
  ])('input %j, size %p: noise from the generator in front; log-det −ln N(ε) forward, +ln N(ε) reverse (loops)', (shape, size) => {
    tidy(() => {
      const dims = shape.slice(1)
      const m = new ConcatNoise([dims], { size })
      const outDims = [size + dims[0], ...dims.slice(1)]
      expect(m.outputDims([dims])).toEqual([outDims])
      const xv = randomValues(numel(shape), 9)
      manualSeed(123)
      const [[z], j] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      manualSeed(123)
      const expectedNoise = randn([shape[0], size, ...dims.slice(1)], { dtype: 'float64' })
      const zShape = [shape[0], ...outDims]
      expect(z.shape).toEqual(zShape)
      const zv = z.toArray()
      expectClose(channels(zv, zShape, 0, size), expectedNoise.toArray(), 0)
      expectClose(channels(zv, zShape, size, dims[0]), xv, 0)
      const lq = logNormal(expectedNoise.toArray(), shape[0])
      expect((j as Tensor).shape).toEqual([shape[0]])
      expectClose(j as Tensor, lq.map((v) => -v), 1e-14)
      const [[x], jr] = m.forward([z], [], true)
      expectClose(x, xv, 0)
      expectClose(jr as Tensor, lq, 1e-14)
      // another call draws new noise
      const [[z2]] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      expect(channels(z2.toArray(), zShape, 0, size)).not.toEqual(channels(zv, zShape, 0, size))
      // float32 inputs get float32 noise
      const [[z32], j32] = m.forward([tensor(xv, shape, { dtype: 'float32' })])
      expect(z32.dtype).toBe('float32')
      expectClose(j32 as Tensor, logNormal(channels(z32.toArray(), zShape, 0, size), shape[0]).map((v) => -v), 1e-6)
    })
  })

  test('density bookkeeping: ln N(z) + Σ log-dets = ln N(x) exactly, even after an orthogonal map mixes ε with x', () => {
    setDefaultDtype('float64')
    try {
      tidy(() => {
        const inn = new SequenceINN(3)
        inn.append(ConcatNoise, { size: 2 })
        inn.append(HouseholderTransform, { bias: false })
        const xv = randomValues(12, 21, -2, 2)
        const [z, j] = inn.forward(tensor(xv, [4, 3], { dtype: 'float64' }))
        expect(z.shape).toEqual([4, 5])
        const total = logNormal(z.toArray(), 4).map((v, b) => v + (j as Tensor).toArray()[b])
        expectClose(total, logNormal(xv, 4), 1e-13)
        // the reverse (sampling) direction: the log-dets cancel the forward ones for the same ε
        const [x, jr] = inn.forward(z, { rev: true })
        expectClose(x as Tensor, xv, 1e-13)
        expectClose(jr as Tensor, Array.from((j as Tensor).toArray()).map((v) => -v), 1e-13)
      })
    } finally {
      setDefaultDtype('float32')
    }
  })

  test.each([
    [[3, 4], 2],
    [[2, 2, 1, 3], 1],
  ])('checkInvertibleModule %j (size %p) with a fixed-noise distribution', (shape, size) => {
    const noiseShape = [size, ...shape.slice(2)]
    const noise = randomValues(shape[0] * numel(noiseShape), 77, -2, 2)
    // the Jacobian of a dimension-raising map is not square: the log-det is checked above instead
    checkInvertibleModule(() => new ConcatNoise([shape.slice(1)], { size, distribution: fixedNoise(noise, noiseShape) }), { inputs: [shape], skipLogDet: true })
    tidy(() => {
      const m = new ConcatNoise([shape.slice(1)], { size, distribution: fixedNoise(noise, noiseShape) })
      const [[z], j] = m.forward([tensor(randomValues(numel(shape), 5), shape, { dtype: 'float64' })])
      const [, jr] = m.forward([z], [], true)
      expectClose(jr as Tensor, Array.from((j as Tensor).toArray()).map((v) => -v), 1e-15)
      expectClose(j as Tensor, logNormal(noise, shape[0]).map((v) => -v), 1e-14)
    })
  })

  test('no state; bad options, distributions and inputs', () => {
    const m = new ConcatNoise([[3]], { size: 2 })
    expect(m.stateDict()).toEqual({})
    expect(m.size).toBe(2)
    expect(m.distribution).toBeInstanceOf(distributions.StandardNormal)
    expectCode(() => new ConcatNoise([[3]]), 'ERR_ARGUMENT')
    for (const bad of [0, -1, 1.5, '2']) expectCode(() => new ConcatNoise([[3]], { size: bad as never }), 'ERR_ARGUMENT')
    expectCode(() => new ConcatNoise([[3]], { size: 2, distribution: {} as never }), 'ERR_ARGUMENT')
    expectCode(() => new ConcatNoise([[3]], { size: 2, dim: 1 } as never), 'ERR_ARGUMENT')
    expectCode(() => new ConcatNoise([[3], [3]], { size: 2 }), 'ERR_SHAPE')
    tidy(() => {
      const wrongSample = new ConcatNoise([[3]], { size: 2, distribution: new distributions.StandardNormal(3) })
      expectCode(() => wrongSample.forward([tensor([1, 2, 3], [1, 3])]), 'ERR_SHAPE')
      const wrongLogProb = new ConcatNoise([[3]], {
        size: 2,
        distribution: { sample: (n) => randn([n, 2]), logProb: (z) => z.sum() },
      })
      expectCode(() => wrongLogProb.forward([tensor([1, 2, 3], [1, 3])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor([1, 2], [1, 2])]), 'ERR_SHAPE')
      // reverse expects the output shape (5)
      expectCode(() => m.forward([tensor([1, 2, 3], [1, 3])], [], true), 'ERR_SHAPE')
    })
  })
})

/**
 * ActNorm: module checks (after the data-dependent initialisation), the initialisation itself against a
 * plain-loop float64 reference and against FrEIA's stored loc/log_scale (fixtures actnorm_fc, actnorm_conv),
 * the is_initialized buffer and initData, old-style state dicts, errors.
 */
import * as path from 'node:path'
import { io, modules, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { parityDir } from '../parity-build'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { ActNorm } = modules

/** Per-channel mean and unbiased std of (B, C, ...) values, with loops. */
function channelStats(values: ArrayLike<number>, shape: number[]): { mean: number[]; std: number[] } {
  const [B, C] = shape
  const nPix = numel(shape.slice(2))
  const mean: number[] = []
  const std: number[] = []
  for (let c = 0; c < C; c++) {
    let s = 0
    for (let b = 0; b < B; b++) for (let q = 0; q < nPix; q++) s += values[(b * C + c) * nPix + q]
    const m = s / (B * nPix)
    let v = 0
    for (let b = 0; b < B; b++) for (let q = 0; q < nPix; q++) v += (values[(b * C + c) * nPix + q] - m) ** 2
    mean.push(m)
    std.push(Math.sqrt(v / (B * nPix - 1)))
  }
  return { mean, std }
}

function withFloat64(fn: () => void): void {
  setDefaultDtype('float64')
  try {
    tidy(fn)
  } finally {
    setDefaultDtype('float32')
  }
}

describe('ActNorm: module checks (initialised from the first batch)', () => {
  test('1-D (5)', () => {
    checkInvertibleModule(() => new ActNorm([[5]]), { inputs: [[4, 5]], range: [-2, 3] })
  })
  test('images (3, 2, 3)', () => {
    checkInvertibleModule(() => new ActNorm([[3, 2, 3]]), { inputs: [[2, 3, 2, 3]], range: [-1, 4] })
  })
  test('sequences (2, 5)', () => {
    checkInvertibleModule(() => new ActNorm([[2, 5]]), { inputs: [[3, 2, 5]] })
  })
})

describe('ActNorm: data-dependent initialisation', () => {
  test.each([
    [[6, 4]],
    [[3, 3, 2, 2]],
    [[2, 2, 3, 2, 2]],
  ])('shape %j: loc = mean, log_scale = ln(unbiased std); output standardised; log-det −n_pix·Σ log_scale', (shape) => {
    withFloat64(() => {
      const xv = randomValues(numel(shape), 17, -3, 5)
      const m = new ActNorm([shape.slice(1)])
      expect(m.isInitialized).toBe(false)
      const [[y], logDet] = m.forward([tensor(xv, shape)])
      expect(m.isInitialized).toBe(true)
      const { mean, std } = channelStats(xv, shape)
      expectClose(m.loc, mean, 1e-13)
      expectClose(m.logScale, std.map(Math.log), 1e-13)
      expect(m.loc.shape).toEqual([1, shape[1], ...shape.slice(2).map(() => 1)])
      const out = channelStats(y.toArray(), shape)
      out.mean.forEach((v) => expect(Math.abs(v)).toBeLessThan(1e-13))
      expectClose(out.std, out.std.map(() => 1), 1e-13)
      const nPix = numel(shape.slice(2))
      const ld = -nPix * std.map(Math.log).reduce((a, b) => a + b, 0)
      expect((logDet as Tensor).shape).toEqual([shape[0]])
      expectClose(logDet as Tensor, new Array(shape[0]).fill(ld), 1e-13)
      // a second call does not re-initialise
      const [[y2]] = m.forward([tensor(xv.map((v) => 2 * v + 1), shape)])
      expectClose(y2, Array.from(y.toArray()).map((v, i) => ((2 * xv[i] + 1 - mean[(Math.floor(i / nPix) % shape[1])]) / std[Math.floor(i / nPix) % shape[1]])), 1e-13)
    })
  })

  test.each(['actnorm_fc', 'actnorm_conv'])('%s: a fresh module fed x.0 once arrives at FrEIA\'s loc/log_scale and z.0', (name) => {
    withFloat64(() => {
      const { tensors } = io.loadSafetensors(path.join(parityDir, `${name}.safetensors`))
      const x = tensors['x.0']
      const m = new ActNorm([x.shape.slice(1)])
      m.forward([x]) // initialises (FrEIA's first pass)
      expectClose(m.loc, tensors['state.module_list.0.loc'].toArray(), 1e-12)
      expectClose(m.logScale, tensors['state.module_list.0.log_scale'].toArray(), 1e-12)
      expect(m.stateDict().is_initialized.item()).toBe(1)
      expect(tensors['state.module_list.0.is_initialized'].item()).toBe(1)
      const [[z], logDet] = m.forward([x])
      expectClose(z, tensors['z.0'].toArray(), 1e-12)
      expectClose(logDet as Tensor, tensors.log_jac_det.toArray(), 1e-12)
    })
  })

  test('the first call may be a reverse one: it initialises from that input (as FrEIA)', () => {
    withFloat64(() => {
      const shape = [5, 3]
      const zv = randomValues(15, 4, -2, 2)
      const m = new ActNorm([[3]])
      const [[x], ld] = m.forward([tensor(zv, shape)], [], true)
      const { mean, std } = channelStats(zv, shape)
      expectClose(m.loc, mean, 1e-13)
      expectClose(x, zv.map((v, i) => v * std[i % 3] + mean[i % 3]), 1e-13)
      expectClose(ld as Tensor, new Array(5).fill(std.map(Math.log).reduce((a, b) => a + b, 0)), 1e-13)
    })
  })

  test('initData initialises at construction', () => {
    withFloat64(() => {
      const xv = randomValues(12, 3, 0, 4)
      const m = new ActNorm([[2, 3]], { initData: tensor(xv, [2, 2, 3]) })
      expect(m.isInitialized).toBe(true)
      const { mean } = channelStats(xv, [2, 2, 3])
      expectClose(m.loc, mean, 1e-13)
      // a different first batch does not change it
      m.forward([tensor(randomValues(12, 9), [2, 2, 3])])
      expectClose(m.loc, mean, 1e-13)
    })
  })

  test('state dict: log_scale, loc and the 0-d is_initialized buffer; loading is_initialized = 1 skips the init', () => {
    withFloat64(() => {
      const m = new ActNorm([[3, 2, 2]])
      const sd = m.stateDict()
      expect(Object.keys(sd)).toEqual(['log_scale', 'loc', 'is_initialized'])
      expect(sd.is_initialized.shape).toEqual([])
      expect(m.namedParameters().map(([n]) => n)).toEqual(['log_scale', 'loc'])
      const loaded = new ActNorm([[3, 2, 2]])
      loaded.loadStateDict({
        log_scale: tensor([0.1, 0.2, 0.3], [1, 3, 1, 1]),
        loc: tensor([1, 2, 3], [1, 3, 1, 1]),
        is_initialized: tensor([1], []),
      })
      const [[y]] = loaded.forward([tensor(new Array(24).fill(1), [2, 3, 2, 2])])
      const yv = y.toArray()
      expect(yv[0]).toBeCloseTo(0, 14)
      expect(yv[4]).toBeCloseTo(-1 / Math.exp(0.2), 14)
      // and a state with is_initialized = 0 makes the next call initialise
      loaded.loadStateDict({ log_scale: tensor([0, 0, 0], [1, 3, 1, 1]), loc: tensor([0, 0, 0], [1, 3, 1, 1]), is_initialized: tensor([0], []) })
      const xv = randomValues(24, 5)
      loaded.forward([tensor(xv, [2, 3, 2, 2])])
      expectClose(loaded.loc, channelStats(xv, [2, 3, 2, 2]).mean, 1e-13)
    })
  })

  test('an old FrEIA state dict (scale, bias: y = x·e^scale + bias) is converted', () => {
    withFloat64(() => {
      const scale = [0.3, -0.2]
      const bias = [0.5, -1.5]
      const m = new ActNorm([[2]])
      m.loadStateDict({ scale: tensor(scale, [1, 2]), bias: tensor(bias, [1, 2]) })
      expect(m.isInitialized).toBe(true)
      const xv = randomValues(6, 1)
      const [[y]] = m.forward([tensor(xv, [3, 2])])
      expectClose(y, xv.map((v, i) => v * Math.exp(scale[i % 2]) + bias[i % 2]), 1e-14)
    })
  })

  test('float32 parameters and inputs', () => {
    tidy(() => {
      const xv = randomValues(24, 8, -1, 3)
      const m = new ActNorm([[4]])
      const [[y]] = m.forward([tensor(xv, [6, 4])])
      expect(y.dtype).toBe('float32')
      const { mean, std } = channelStats(xv, [6, 4])
      expectClose(y, xv.map((v, i) => (v - mean[i % 4]) / std[i % 4]), 1e-5)
    })
  })
})

describe('ActNorm: errors', () => {
  test('bad options and conditions', () => {
    expectCode(() => new ActNorm([[3]], { dimsC: [[2]] }), 'ERR_ARGUMENT')
    expectCode(() => new ActNorm([[3], [3]]), 'ERR_ARGUMENT')
    expectCode(() => new ActNorm([[3]], { init_data: null } as never), 'ERR_ARGUMENT')
    expectCode(() => new ActNorm([[3]], { initData: 5 as never }), 'ERR_ARGUMENT')
    tidy(() => {
      expectCode(() => new ActNorm([[3]], { initData: tensor(randomValues(8, 1), [2, 4]) }), 'ERR_SHAPE')
      const m = new ActNorm([[3]])
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3])], [tensor(randomValues(2, 1), [2, 1])]), 'ERR_ARGUMENT')
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3], { dtype: 'float64' })]), 'ERR_DTYPE')
      expect(m.isInitialized).toBe(false)
    })
  })
  test('initialisation that cannot work: a single value per channel, a constant channel', () => {
    tidy(() => {
      const m = new ActNorm([[3]])
      expectCode(() => m.forward([tensor([1, 2, 3], [1, 3])]), 'ERR_ARGUMENT') // FrEIA: silent NaN
      expect(m.isInitialized).toBe(false)
      expectCode(() => m.forward([tensor([1, 2, 3, 1, 5, 6], [2, 3])]), 'ERR_ARGUMENT') // channel 0 constant
      expect(m.isInitialized).toBe(false)
      // a batch of one image is enough (several pixels per channel)
      const img = new ActNorm([[2, 2, 2]])
      img.forward([tensor(randomValues(8, 2), [1, 2, 2, 2])])
      expect(img.isInitialized).toBe(true)
    })
  })
})

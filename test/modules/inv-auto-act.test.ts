import { getDefaultDtype, modules, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { InvAutoAct } = modules

/** Random per-channel log-slopes loaded into the module (non-trivial, different per channel). */
function randomize(m: InstanceType<typeof InvAutoAct>, seed: number): number[] {
  const values = randomValues(m.alpha.size, seed, -0.9, 0.9)
  m.loadStateDict({ alpha: tensor(values, [...m.alpha.shape], { dtype: m.alpha.dtype }) })
  return values
}

/** float64 reference: y = x·exp(α_c·sign(x)), log-det Σ α_c·sign(x), per sample. */
function reference(x: number[], shape: number[], alpha: number[], rev: boolean): { y: number[]; ld: number[] } {
  const [B, C] = shape
  const per = numel(shape.slice(1))
  const pix = per / C
  const y: number[] = []
  const ld = new Array<number>(B).fill(0)
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let p = 0; p < pix; p++) {
        const v = x[b * per + c * pix + p]
        const ls = (rev ? -1 : 1) * alpha[c] * Math.sign(v)
        y.push(v * Math.exp(ls))
        ld[b] += ls
      }
  return { y, ld }
}

describe('InvAutoAct', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test('parameter alpha (1, C, 1, ...) = ln(slopeInit), state-dict key, outputDims', () => {
    tidy(() => {
      const m = new InvAutoAct([[5]])
      expect(Object.keys(m.stateDict())).toEqual(['alpha'])
      expect(m.alpha.shape).toEqual([1, 5])
      expectClose(m.alpha, new Array(5).fill(Math.log(2)), 1e-15)
      expect(m.alpha.requiresGrad).toBe(true)
      const img = new InvAutoAct([[3, 4, 2]], { slopeInit: 1.5 })
      expect(img.alpha.shape).toEqual([1, 3, 1, 1])
      expectClose(img.alpha, new Array(3).fill(Math.log(1.5)), 1e-15)
      expect(img.outputDims([[3, 4, 2]])).toEqual([[3, 4, 2]])
    })
  })

  test.each([
    ['vector', [4, 7]],
    ['image, odd channels', [3, 3, 2, 3]],
  ])('%s: forward and reverse match the float64 reference; float32 agrees', (_name, shape) => {
    tidy(() => {
      const m = new InvAutoAct([shape.slice(1)])
      const alpha = randomize(m, 3)
      const xv = randomValues(numel(shape), 11, -2, 2)
      const x = tensor(xv, shape, { dtype: 'float64' })
      for (const rev of [false, true]) {
        const [[y], ld] = m.forward([x], [], rev)
        const ref = reference(xv, shape, alpha, rev)
        expectClose(y, ref.y, 1e-14)
        expectClose(ld as Tensor, ref.ld, 1e-14)
      }
      const m32 = new InvAutoAct([shape.slice(1)])
      m32.to({ dtype: 'float32' })
      m32.loadStateDict(m.stateDict())
      const [[y32], ld32] = m32.forward([x.to({ dtype: 'float32' })])
      const [[y64], ld64] = m.forward([x])
      expect(y32.dtype).toBe('float32')
      expectClose(y32, y64.toArray(), 1e-5)
      expectClose(ld32 as Tensor, (ld64 as Tensor).toArray(), 1e-5)
    })
  })

  test.each([
    ['vector', [[3, 5]]],
    ['image', [[2, 2, 3, 2]]],
    ['image with 3 channels', [[2, 3, 2, 2]]],
  ])('%s: invertible-module checks (round trip, log-det vs numerical Jacobian, gradients)', (_name, inputs) => {
    checkInvertibleModule(() => {
      const m = new InvAutoAct([inputs[0].slice(1)], { slopeInit: 1.7 })
      randomize(m, 5)
      return m
    }, { inputs })
  })

  test('conditions are checked against dimsC and ignored', () => {
    checkInvertibleModule(() => {
      const m = new InvAutoAct([[4]], { dimsC: [[2]] })
      randomize(m, 8)
      return m
    }, { inputs: [[3, 4]], conditions: [[3, 2]] })
  })

  test('jac: false returns null; the log-det of the reverse is minus the forward one', () => {
    tidy(() => {
      const m = new InvAutoAct([[6]])
      randomize(m, 2)
      const x = tensor(randomValues(12, 4), [2, 6], { dtype: 'float64' })
      const [[y], none] = m.forward([x], [], false, false)
      expect(none).toBeNull()
      const [, ldf] = m.forward([x])
      const [[xr], ldr] = m.forward([y], [], true)
      expectClose(xr, x.toArray(), 1e-15)
      expectClose(ldr as Tensor, (ldf as Tensor).neg().toArray(), 1e-15)
      expect(m.forward([y], [], true, false)[1]).toBeNull()
    })
  })

  test('learnable: false keeps alpha fixed (no gradient)', () => {
    tidy(() => {
      const m = new InvAutoAct([[3]], { learnable: false, slopeInit: 3 })
      expect(m.alpha.requiresGrad).toBe(false)
      expect(m.namedParameters().map(([n]) => n)).toEqual(['alpha'])
      const x = tensor(randomValues(6, 1), [2, 3], { dtype: 'float64', requiresGrad: true })
      const [[y], ld] = m.forward([x])
      y.sum().add((ld as Tensor).sum()).backward()
      expect(m.alpha.grad).toBeNull()
      expect(x.grad).not.toBeNull()
      expectClose(m.alpha, new Array(3).fill(Math.log(3)), 1e-15)
    })
  })

  test('bad options and inputs', () => {
    expectCode(() => new InvAutoAct([[3]], { slopeInit: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoAct([[3]], { slopeInit: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoAct([[3]], { slopeInit: NaN }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoAct([[3]], { slopeInit: '2' as unknown as number }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoAct([[3]], { learnable: 1 as unknown as boolean }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoAct([[3], [3]]), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoAct([3] as unknown as number[][]), 'ERR_ARGUMENT')
    tidy(() => {
      const m = new InvAutoAct([[3]])
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4], { dtype: 'float64' })]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3], { dtype: 'float64' })], [tensor([1, 2], [2, 1], { dtype: 'float64' })]), 'ERR_ARGUMENT')
      expectCode(() => m.outputDims([[3], [3]]), 'ERR_ARGUMENT')
    })
  })
})

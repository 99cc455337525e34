/**
 * Inverse(module): module checks of wrapped modules (with conditions, with a shape change), the wrapped
 * module run the other way, dims bookkeeping (dimsIn = wrapped outputs), state-dict keys, use in chains,
 * errors.
 */
import {
  Dims, InvertibleModule, InvertibleModuleOptions, manualSeed, ModuleOutput, modules, nn, noGrad, SequenceINN, tensor, Tensor, tidy,
} from '../../lib'
import { HalfSplit } from '../framework/custom-modules'
import { expectClose, expectCode, randomValues, relErr } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { Inverse, AllInOneBlock, ActNorm } = modules

const fc = (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, 8), new nn.Tanh(), new nn.Linear(8, cOut))

/** (2, 3) → (6): a reshape with a learned per-element scale, so the inverse changes shape and has a log-det. */
class ScaledFlatten extends InvertibleModule {
  readonly logScale: Tensor
  constructor(dimsIn: Dims[], opts: InvertibleModuleOptions = {}) {
    super(dimsIn, opts)
    this.logScale = this.registerParameter('log_scale', tensor(randomValues(6, 4, -0.5, 0.5), [1, 6], { dtype: 'float64' }))
  }
  forward(x: Tensor[], _c: Tensor[] = [], rev = false): ModuleOutput {
    const b = x[0].shape[0]
    const ld = this.logScale.sum().expand([b])
    if (!rev) return [[x[0].reshape([b, 6]).mul(this.logScale.exp())], ld]
    return [[x[0].mul(this.logScale.neg().exp()).reshape([b, 2, 3])], ld.neg()]
  }
  outputDims(): number[][] {
    return [[6]]
  }
}

function aio(dimsC: number[][] = []) {
  manualSeed(21)
  const m = new AllInOneBlock([[5]], { subnetConstructor: fc, permuteSoft: true, dimsC })
  noGrad(() => {
    nn.init.uniform_(m.globalOffset, -0.5, 0.5)
    for (const p of m.subnet.parameters()) nn.init.uniform_(p, -1, 1)
  })
  return m
}

describe('Inverse: module checks', () => {
  test('Inverse(AllInOneBlock) with a condition', () => {
    checkInvertibleModule(() => new Inverse(aio([[2]])), { inputs: [[3, 5]], conditions: [[3, 2]] })
  })
  test('Inverse of a shape-changing module: (6) → (2, 3)', () => {
    checkInvertibleModule(() => new Inverse(new ScaledFlatten([[2, 3]])), { inputs: [[3, 6]] })
  })
  test('Inverse(SequenceINN) of AllInOneBlocks', () => {
    checkInvertibleModule(
      () => {
        manualSeed(5)
        const inn = new SequenceINN(4)
        for (let k = 0; k < 3; k++) inn.append(AllInOneBlock, { subnetConstructor: fc, permuteSoft: k % 2 === 0 })
        return new Inverse(inn)
      },
      { inputs: [[2, 4]] },
    )
  })
})

describe('Inverse: behaviour', () => {
  test('forward is the wrapped reverse and vice versa, log-dets included; dims are swapped', () => {
    tidy(() => {
      const m = new ScaledFlatten([[2, 3]])
      const inv = new Inverse(m)
      expect(inv.dimsIn).toEqual([[6]])
      expect(inv.outputDims([[6]])).toEqual([[2, 3]])
      expect(inv.dimsC).toEqual([])
      const z = tensor(randomValues(12, 3), [2, 6], { dtype: 'float64' })
      const [[a], la] = inv.forward([z])
      const [[b], lb] = m.forward([z], [], true)
      expectClose(a, b.toArray(), 0)
      expectClose(la as Tensor, (lb as Tensor).toArray(), 0)
      expect(a.shape).toEqual([2, 2, 3])
      const [[back], lback] = inv.forward([a], [], true)
      expectClose(back, z.toArray(), 1e-14)
      expectClose((lback as Tensor).neg(), (la as Tensor).toArray(), 1e-14)
    })
  })

  test('conditions pass through; dimsC mirrors the wrapped module; state-dict keys are module.*', () => {
    tidy(() => {
      const m = aio([[2]])
      const inv = new Inverse(m)
      expect(inv.dimsC).toEqual([[2]])
      expect(Object.keys(inv.stateDict())).toEqual(Object.keys(m.stateDict()).map((k) => `module.${k}`))
      expect(inv.parameters().length).toBe(m.parameters().length)
      const x = tensor(randomValues(10, 1), [2, 5])
      const c = tensor(randomValues(4, 2), [2, 2])
      const [[z]] = m.forward([x], [c])
      const [[x2]] = inv.forward([z], [c])
      expect(relErr(x2.toArray(), x.toArray())).toBeLessThan(1e-5)
    })
  })

  test('multiple inputs: Inverse(HalfSplit) joins two inputs into one', () => {
    tidy(() => {
      const inv = new Inverse(new HalfSplit([[5]]))
      expect(inv.dimsIn).toEqual([[3], [2]])
      expect(inv.outputDims([[3], [2]])).toEqual([[5]])
      const [[y]] = inv.forward([tensor([1, 2, 3], [1, 3]), tensor([4, 5], [1, 2])])
      expect(Array.from(y.toArray())).toEqual([1, 2, 3, 4, 5])
    })
  })

  test('Inverse(Inverse(m)) behaves as m; an Inverse can be appended to a SequenceINN', () => {
    tidy(() => {
      const m = aio()
      const twice = new Inverse(new Inverse(m))
      const x = tensor(randomValues(10, 6), [2, 5])
      const [[a], la] = m.forward([x])
      const [[b], lb] = twice.forward([x])
      expectClose(b, a.toArray(), 0)
      expectClose(lb as Tensor, (la as Tensor).toArray(), 0)

      const inn = new SequenceINN(5)
      const an = new ActNorm([[5]])
      inn.append(new Inverse(an))
      expect(Object.keys(inn.stateDict())).toEqual(['module_list.0.module.log_scale', 'module_list.0.module.loc', 'module_list.0.module.is_initialized'])
      const [y] = inn.forward(x) // ActNorm initialises from its (reverse) input and de-normalises
      expect(y.shape).toEqual([2, 5])
    })
  })
})

describe('Inverse: errors', () => {
  test('needs a built invertible module; checks input shapes', () => {
    expectCode(() => new Inverse(null as never), 'ERR_ARGUMENT')
    expectCode(() => new Inverse([[5]] as never), 'ERR_ARGUMENT')
    expectCode(() => new Inverse(new nn.Linear(2, 2) as never), 'ERR_ARGUMENT')
    tidy(() => {
      const inv = new Inverse(new ScaledFlatten([[2, 3]]))
      expectCode(() => inv.forward([tensor(randomValues(6, 1), [1, 2, 3], { dtype: 'float64' })]), 'ERR_SHAPE')
      expectCode(() => inv.forward([tensor(randomValues(6, 1), [1, 6], { dtype: 'float64' })], [], true), 'ERR_SHAPE')
      expectCode(() => inv.outputDims([[5]]), 'ERR_SHAPE')
    })
  })
})

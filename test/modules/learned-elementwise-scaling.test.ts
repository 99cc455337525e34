/**
 * LearnedElementwiseScaling: module checks (with the corrected reverse log-det), FrEIA's reverse log-det sign
 * by default, the forward against a plain-loop reference, initScale, jac = false, state dict, errors.
 */
import { modules, nn, noGrad, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { LearnedElementwiseScaling } = modules

function randomised(dims: number[], opts: { initScale?: number; fixReverseLogDet?: boolean } = {}) {
  return () => {
    const m = new LearnedElementwiseScaling([dims], opts)
    noGrad(() => nn.init.uniform_(m.s, -0.8, 0.8))
    return m
  }
}

describe('LearnedElementwiseScaling: module checks (fixReverseLogDet: true)', () => {
  test('1-D (5)', () => {
    checkInvertibleModule(randomised([5], { fixReverseLogDet: true }), { inputs: [[3, 5]] })
  })
  test('images (2, 2, 3)', () => {
    checkInvertibleModule(randomised([2, 2, 3], { fixReverseLogDet: true }), { inputs: [[2, 2, 2, 3]] })
  })
})

describe('LearnedElementwiseScaling: behaviour', () => {
  test('forward y = x·e^s per element, log-det Σ s; FrEIA\'s +Σ s in reverse by default, −Σ s when fixed', () => {
    setDefaultDtype('float64')
    try {
      tidy(() => {
        const dims = [3, 2]
        const m = randomised(dims)()
        const fixed = new LearnedElementwiseScaling([dims], { fixReverseLogDet: true })
        fixed.loadStateDict(m.stateDict())
        const s = Array.from(m.s.toArray())
        expect(m.s.shape).toEqual([1, 3, 2])
        const xv = randomValues(2 * 6, 4)
        const [[y], ld] = m.forward([tensor(xv, [2, 3, 2])])
        expectClose(y, xv.map((v, i) => v * Math.exp(s[i % 6])), 1e-14)
        const sumS = s.reduce((a, b) => a + b, 0)
        expect((ld as Tensor).shape).toEqual([2])
        expectClose(ld as Tensor, [sumS, sumS], 1e-14)
        const [[x], ldRev] = m.forward([y], [], true)
        expectClose(x, xv, 1e-14)
        expectClose(ldRev as Tensor, [sumS, sumS], 1e-14) // FrEIA's sign (parity fixture elementwise_scaling)
        const [, ldFixed] = fixed.forward([y], [], true)
        expectClose(ldFixed as Tensor, [-sumS, -sumS], 1e-14)
      })
    } finally {
      setDefaultDtype('float32')
    }
  })

  test('initScale sets s = ln(initScale); default 1 (s = 0); jac = false gives null', () => {
    tidy(() => {
      const m = new LearnedElementwiseScaling([[4]], { initScale: 1.3 })
      expectClose(m.s, [1, 1, 1, 1].map(() => Math.log(1.3)), 1e-7)
      expect(m.s.dtype).toBe('float32')
      expectClose(new LearnedElementwiseScaling([[2, 2]]).s, [0, 0, 0, 0], 0)
      const [[y], ld] = m.forward([tensor([1, 2, 3, 4], [1, 4])], [], false, false)
      expect(ld).toBeNull()
      expectClose(y, [1.3, 2.6, 3.9, 5.2], 1e-6)
      expect(Object.keys(m.stateDict())).toEqual(['s'])
      expect(m.namedParameters().map(([n]) => n)).toEqual(['s'])
      expect(m.outputDims([[4]])).toEqual([[4]])
    })
  })
})

describe('LearnedElementwiseScaling: errors', () => {
  test('bad options, conditions and shapes', () => {
    expectCode(() => new LearnedElementwiseScaling([[4]], { initScale: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new LearnedElementwiseScaling([[4]], { initScale: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new LearnedElementwiseScaling([[4]], { initScale: '2' as never }), 'ERR_ARGUMENT')
    expectCode(() => new LearnedElementwiseScaling([[4]], { fixReverseLogDet: 1 as never }), 'ERR_ARGUMENT')
    expectCode(() => new LearnedElementwiseScaling([[4]], { init_scale: 2 } as never), 'ERR_ARGUMENT')
    expectCode(() => new LearnedElementwiseScaling([[4]], { dimsC: [[1]] }), 'ERR_ARGUMENT')
    expectCode(() => new LearnedElementwiseScaling([[4], [4]]), 'ERR_ARGUMENT')
    tidy(() => {
      const m = new LearnedElementwiseScaling([[4]])
      expectCode(() => m.forward([tensor(randomValues(numel([2, 5]), 1), [2, 5])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4])], [tensor([1, 2], [2, 1])]), 'ERR_ARGUMENT')
    })
  })
})

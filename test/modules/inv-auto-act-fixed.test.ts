import { getDefaultDtype, manualSeed, modules, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { InvAutoAct, InvAutoActFixed } = modules

describe('InvAutoActFixed', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test('is InvAutoAct (slopes stay learnable, as in FrEIA) plus one deprecation warning', () => {
    const spy = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    try {
      tidy(() => {
        const m = new InvAutoActFixed([[4]], { slopeInit: 1.5 })
        new InvAutoActFixed([[4]])
        expect(spy).toHaveBeenCalledTimes(1)
        expect(String(spy.mock.calls[0][0])).toMatch(/deprecated.*learnable: false/)
        expect(spy.mock.calls[0][1]).toBe('DeprecationWarning')
        expect(m).toBeInstanceOf(InvAutoAct)
        expect(Object.keys(m.stateDict())).toEqual(['alpha'])
        expect(m.alpha.shape).toEqual([1, 4])
        expect(m.alpha.requiresGrad).toBe(true)
        expectClose(m.alpha, new Array(4).fill(Math.log(1.5)), 1e-15)
        const frozen = new InvAutoActFixed([[4]], { learnable: false })
        expect(frozen.alpha.requiresGrad).toBe(false)
        // the same map as InvAutoAct with the same parameters
        const ref = new InvAutoAct([[4]], { slopeInit: 1.5 })
        const x = tensor(randomValues(8, 3), [2, 4], { dtype: 'float64' })
        const [[y], ld] = m.forward([x])
        const [[yr], ldr] = ref.forward([x])
        expectClose(y, yr.toArray(), 0)
        expectClose(ld as Tensor, (ldr as Tensor).toArray(), 0)
        expect(m.forward([x], [], false, false)[1]).toBeNull()
      })
    } finally {
      spy.mockRestore()
    }
  })

  test('invertible-module checks on an image', () => {
    manualSeed(3)
    checkInvertibleModule(() => {
      const m = new InvAutoActFixed([[3, 2, 2]])
      m.loadStateDict({ alpha: tensor([0.3, -0.6, 1.1], [1, 3, 1, 1], { dtype: 'float64' }) })
      return m
    }, { inputs: [[2, 3, 2, 2]] })
  })

  test('bad options', () => {
    expectCode(() => new InvAutoActFixed([[3]], { slopeInit: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoActFixed([[3], [2]]), 'ERR_ARGUMENT')
  })
})

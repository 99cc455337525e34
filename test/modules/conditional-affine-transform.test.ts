import { getDefaultDtype, modules, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { ClampActivation } from '../../lib/modules/coupling-base'
import { expectClose, expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'
import { linearNet, mlp, convNet, toRows, linearRef, clampRef, Rows } from './coupling-reference'

const { ConditionalAffineTransform } = modules


// ---------------------------------------------------------------- plain-loop float64 reference (1-D, Linear subnet)

/** y = e^s·x + t with [s | t] = subnet(c1 ⊕ c2 ⊕ …), in loops. */
function condAffineRef(m: InstanceType<typeof ConditionalAffineTransform>, x: Rows, cs: Rows[], rev: boolean, act = 'ATAN'): [Rows, number[]] {
  const ch = m.channels
  const f = (u: number) => m.clamp * clampRef[act](u)
  const a = linearRef(m.subnet, x.map((_, b) => cs.flatMap((c) => c[b])))
  const out = x.map((row, b) =>
    row.map((v, i) => {
      const s = f(a[b][i])
      const t = a[b][ch + i]
      return rev ? (v - t) * Math.exp(-s) : Math.exp(s) * v + t
    }),
  )
  return [out, a.map((r) => r.slice(0, ch).reduce((acc, v) => acc + f(v), 0) * (rev ? -1 : 1))]
}

describe('ConditionalAffineTransform', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test.each([
    [3, [2], 'ATAN'], [5, [1, 3], 'TANH'], [1, [2], 'SIGMOID'], [4, [4], 'ATAN'],
  ])('forward and reverse match a plain-loop reference (C = %i, conditions %p, %s)', (ch, conds, act) => {
    tidy(() => {
      const batch = 3
      const m = new ConditionalAffineTransform([[ch]], { subnetConstructor: linearNet, clamp: 1.9, clampActivation: act as ClampActivation, dimsC: conds.map((k) => [k]) })
      const xv = randomValues(batch * ch, 1, -2, 2)
      const cvs = conds.map((k, i) => randomValues(batch * k, 2 + i))
      const cs = cvs.map((v, i) => tensor(v, [batch, conds[i]]))
      const [[y], j] = m.forward([tensor(xv, [batch, ch])], cs)
      const [yRef, jRef] = condAffineRef(m, toRows(xv, batch), cvs.map((v) => toRows(v, batch)), false, act)
      expectClose(y, yRef.flat(), 1e-13)
      expectClose(j as Tensor, jRef, 1e-13)
      const [[back], jr] = m.forward([y], cs, true)
      const [bRef, jrRef] = condAffineRef(m, toRows(y.toArray(), batch), cvs.map((v) => toRows(v, batch)), true, act)
      expectClose(back, bRef.flat(), 1e-13)
      expectClose(jr as Tensor, jrRef, 1e-13)
      expectClose(back, xv, 1e-12)
    })
  })

  test('module checks: 1-D with one and with two conditions', () => {
    checkInvertibleModule(() => new ConditionalAffineTransform([[5]], { subnetConstructor: mlp(8), dimsC: [[3]] }), { inputs: [[3, 5]], conditions: [[3, 3]] })
    checkInvertibleModule(() => new ConditionalAffineTransform([[3]], { subnetConstructor: mlp(6), dimsC: [[1], [2]], clampActivation: 'TANH' }), {
      inputs: [[2, 3]],
      conditions: [[2, 1], [2, 2]],
    })
  })
  test('module checks: C = 1 and C = 7', () => {
    checkInvertibleModule(() => new ConditionalAffineTransform([[1]], { subnetConstructor: mlp(4), dimsC: [[2]] }), { inputs: [[3, 1]], conditions: [[3, 2]] })
    checkInvertibleModule(() => new ConditionalAffineTransform([[7]], { subnetConstructor: mlp(4), dimsC: [[2]], clampActivation: 'SIGMOID' }), { inputs: [[2, 7]], conditions: [[2, 2]] })
  })
  test('module checks: images with an image condition (conv subnet)', () => {
    checkInvertibleModule(() => new ConditionalAffineTransform([[3, 2, 3]], { subnetConstructor: convNet(3), dimsC: [[2, 2, 3]] }), {
      inputs: [[2, 3, 2, 3]],
      conditions: [[2, 2, 2, 3]],
    })
  })

  test('state dict: one subnet (condition channels → 2C); splitLen is validated but unused', () => {
    const m = new ConditionalAffineTransform([[6]], { subnetConstructor: mlp(16), dimsC: [[3], [1]], splitLen: 0.2 })
    const shapes = Object.entries(m.stateDict()).map(([k, v]) => [k, v.shape])
    expect(shapes).toEqual([['subnet.0.weight', [16, 4]], ['subnet.0.bias', [16]], ['subnet.2.weight', [12, 16]], ['subnet.2.bias', [12]]])
  })

  test('float32 agrees with float64', () => {
    tidy(() => {
      const m64 = new ConditionalAffineTransform([[5]], { subnetConstructor: mlp(8), dimsC: [[2]] })
      const m32 = new ConditionalAffineTransform([[5]], { subnetConstructor: mlp(8), dimsC: [[2]] }).to({ dtype: 'float32' })
      m32.loadStateDict(Object.fromEntries(Object.entries(m64.stateDict()).map(([k, v]) => [k, v.to({ dtype: 'float32' })])))
      const xv = randomValues(15, 7)
      const cv = randomValues(6, 8)
      for (const rev of [false, true]) {
        const [[y64], j64] = m64.forward([tensor(xv, [3, 5])], [tensor(cv, [3, 2])], rev)
        const [[y32], j32] = m32.forward([tensor(xv, [3, 5], { dtype: 'float32' })], [tensor(cv, [3, 2], { dtype: 'float32' })], rev)
        expectClose(y32, y64.toArray(), 1e-5)
        expectClose(j32 as Tensor, (j64 as Tensor).toArray(), 1e-5)
      }
    })
  })

  test('errors: a condition is required; FrEIA checks on the other options', () => {
    expectCode(() => new ConditionalAffineTransform([[4]], { subnetConstructor: linearNet }), 'ERR_ARGUMENT')
    expectCode(() => new ConditionalAffineTransform([[4]], { subnetConstructor: linearNet, dimsC: [] }), 'ERR_ARGUMENT')
    expectCode(() => new ConditionalAffineTransform([[4]], { dimsC: [[2]] }), 'ERR_ARGUMENT')
    expectCode(() => new ConditionalAffineTransform([[4]], { subnetConstructor: linearNet, dimsC: [[2]], splitLen: 1.5 }), 'ERR_ARGUMENT')
    expectCode(() => new ConditionalAffineTransform([[4]], { subnetConstructor: linearNet, dimsC: [[2]], clampActivation: 'X' as ClampActivation }), 'ERR_ARGUMENT')
    expectCode(() => new ConditionalAffineTransform([[4, 2, 2]], { subnetConstructor: linearNet, dimsC: [[2]] }), 'ERR_SHAPE')
    tidy(() => {
      const m = new ConditionalAffineTransform([[4]], { subnetConstructor: linearNet, dimsC: [[2]] })
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4])]), 'ERR_ARGUMENT')
    })
  })
})

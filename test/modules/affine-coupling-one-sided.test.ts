import { getDefaultDtype, modules, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { ClampActivation } from '../../lib/modules/coupling-base'
import { expectClose, expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'
import { linearNet, mlp, convNet, toRows, linearRef, clampRef, Rows } from './coupling-reference'

const { AffineCouplingOneSided } = modules


// ---------------------------------------------------------------- plain-loop float64 reference (1-D, Linear subnet)

/** One-sided coupling in loops: x1 passes, x2 is scaled and shifted by subnet(x1 ⊕ c) = [s | t]. */
function oneSidedRef(m: InstanceType<typeof AffineCouplingOneSided>, x: Rows, c: Rows | null, rev: boolean, act = 'ATAN'): [Rows, number[]] {
  const l1 = m.splitLen1
  const l2 = m.splitLen2
  const f = (u: number) => m.clamp * clampRef[act](u)
  const x1 = x.map((r) => r.slice(0, l1))
  const a = linearRef(m.subnet, x1.map((row, b) => (c ? [...row, ...c[b]] : row)))
  const out = x.map((row, b) => [
    ...row.slice(0, l1),
    ...row.slice(l1).map((v, i) => {
      const s = f(a[b][i])
      const t = a[b][l2 + i]
      return rev ? (v - t) * Math.exp(-s) : v * Math.exp(s) + t
    }),
  ])
  return [out, a.map((r) => r.slice(0, l2).reduce((acc, v) => acc + f(v), 0) * (rev ? -1 : 1))]
}

describe('AffineCouplingOneSided', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test.each([
    [2, null, 'ATAN'], [3, 2, 'ATAN'], [5, null, 'TANH'], [7, 3, 'SIGMOID'], [1, null, 'ATAN'],
  ])('forward and reverse match a plain-loop reference (C = %i, condition channels %p, %s)', (ch, cc, act) => {
    tidy(() => {
      const batch = 3
      const m = new AffineCouplingOneSided([[ch]], { subnetConstructor: linearNet, clamp: 1.3, clampActivation: act as ClampActivation, dimsC: cc ? [[cc]] : [] })
      const xv = randomValues(batch * ch, 1, -2, 2)
      const cv = cc ? randomValues(batch * cc, 2) : null
      const cs = cv ? [tensor(cv, [batch, cc as number])] : []
      const [[y], j] = m.forward([tensor(xv, [batch, ch])], cs)
      const [yRef, jRef] = oneSidedRef(m, toRows(xv, batch), cv ? toRows(cv, batch) : null, false, act)
      expectClose(y, yRef.flat(), 1e-13)
      expectClose(j as Tensor, jRef, 1e-13)
      const [[back], jr] = m.forward([y], cs, true)
      const [bRef, jrRef] = oneSidedRef(m, toRows(y.toArray(), batch), cv ? toRows(cv, batch) : null, true, act)
      expectClose(back, bRef.flat(), 1e-13)
      expectClose(jr as Tensor, jrRef, 1e-13)
      expectClose(back, xv, 1e-12)
    })
  })

  test('x1 passes unchanged', () => {
    tidy(() => {
      const m = new AffineCouplingOneSided([[5, 2, 2]], { subnetConstructor: convNet(3) })
      const x = tensor(randomValues(40, 3), [2, 5, 2, 2])
      const [[y]] = m.forward([x])
      expect(Array.from(y.narrow(1, 0, 2).toArray())).toEqual(Array.from(x.narrow(1, 0, 2).toArray()))
    })
  })

  test('module checks: 1-D with a condition, C = 5', () => {
    checkInvertibleModule(() => new AffineCouplingOneSided([[5]], { subnetConstructor: mlp(8), dimsC: [[3]] }), { inputs: [[3, 5]], conditions: [[3, 3]] })
  })
  test('module checks: C = 1 (empty x1, unconditional), C = 3, C = 7, integer splitLen 0 and C', () => {
    checkInvertibleModule(() => new AffineCouplingOneSided([[1]], { subnetConstructor: mlp(4) }), { inputs: [[3, 1]] })
    checkInvertibleModule(() => new AffineCouplingOneSided([[3]], { subnetConstructor: mlp(6), clampActivation: 'TANH' }), { inputs: [[2, 3]] })
    checkInvertibleModule(() => new AffineCouplingOneSided([[7]], { subnetConstructor: mlp(6), clampActivation: 'SIGMOID' }), { inputs: [[2, 7]] })
    checkInvertibleModule(() => new AffineCouplingOneSided([[4]], { subnetConstructor: mlp(6), splitLen: 0, dimsC: [[2]] }), { inputs: [[2, 4]], conditions: [[2, 2]] })
    checkInvertibleModule(() => new AffineCouplingOneSided([[4]], { subnetConstructor: mlp(6), splitLen: 4 }), { inputs: [[2, 4]] })
  })
  test('module checks: images with an image condition (conv subnets)', () => {
    checkInvertibleModule(() => new AffineCouplingOneSided([[3, 2, 3]], { subnetConstructor: convNet(4), dimsC: [[2, 2, 3]] }), {
      inputs: [[2, 3, 2, 3]],
      conditions: [[2, 2, 2, 3]],
    })
  })

  test('state dict: one subnet (l1 + cond → 2·l2)', () => {
    const m = new AffineCouplingOneSided([[7]], { subnetConstructor: mlp(16), dimsC: [[2]] })
    const shapes = Object.entries(m.stateDict()).map(([k, v]) => [k, v.shape])
    expect(shapes).toEqual([['subnet.0.weight', [16, 6]], ['subnet.0.bias', [16]], ['subnet.2.weight', [6, 16]], ['subnet.2.bias', [6]]])
  })

  test('float32 agrees with float64', () => {
    tidy(() => {
      const m64 = new AffineCouplingOneSided([[5]], { subnetConstructor: mlp(8), dimsC: [[2]] })
      const m32 = new AffineCouplingOneSided([[5]], { subnetConstructor: mlp(8), dimsC: [[2]] }).to({ dtype: 'float32' })
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

  test('errors', () => {
    expectCode(() => new AffineCouplingOneSided([[4]]), 'ERR_ARGUMENT')
    expectCode(() => new AffineCouplingOneSided([[4]], { subnetConstructor: linearNet, clampActivation: 'EXP' as ClampActivation }), 'ERR_ARGUMENT')
    expectCode(() => new AffineCouplingOneSided([[4]], { subnetConstructor: linearNet, splitLen: 7 }), 'ERR_ARGUMENT')
    expectCode(() => new AffineCouplingOneSided([[4]], { subnetConstructor: linearNet, dimsC: [[3, 1]] }), 'ERR_SHAPE')
    expectCode(() => new AffineCouplingOneSided([[4], [2]], { subnetConstructor: linearNet }), 'ERR_ARGUMENT')
  })
})

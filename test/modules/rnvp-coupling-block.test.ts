import { getDefaultDtype, modules, nn, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { ClampActivation } from '../../lib/modules/coupling-base'
import { expectClose, expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'
import { linearNet, mlp, convNet, toRows, linearRef, clampRef, Rows } from './coupling-reference'

const { RNVPCouplingBlock } = modules


// ---------------------------------------------------------------- plain-loop float64 reference (1-D, Linear subnets)

/** Real NVP's two-sided scheme in loops: scale and shift from separate subnets. */
function rnvpRef(m: InstanceType<typeof RNVPCouplingBlock>, x: Rows, c: Rows | null, rev: boolean, act = 'ATAN'): [Rows, number[]] {
  const l1 = m.splitLen1
  const f = (u: number) => m.clamp * clampRef[act](u)
  const withC = (r: Rows) => r.map((row, b) => (c ? [...row, ...c[b]] : row))
  const couple = (sNet: nn.Module, tNet: nn.Module, p: Rows, u: Rows): [Rows, number[]] => {
    const s = linearRef(sNet, withC(u)).map((r) => r.map(f))
    const t = linearRef(tNet, withC(u))
    const out = p.map((row, b) => row.map((v, i) => (rev ? (v - t[b][i]) * Math.exp(-s[b][i]) : Math.exp(s[b][i]) * v + t[b][i])))
    return [out, s.map((r) => r.reduce((a, v) => a + v, 0) * (rev ? -1 : 1))]
  }
  const a1 = x.map((r) => r.slice(0, l1))
  const a2 = x.map((r) => r.slice(l1))
  if (!rev) {
    const [y1, j1] = couple(m.subnetS2, m.subnetT2, a1, a2)
    const [y2, j2] = couple(m.subnetS1, m.subnetT1, a2, y1)
    return [y1.map((r, b) => [...r, ...y2[b]]), j1.map((v, b) => v + j2[b])]
  }
  const [x2, j2] = couple(m.subnetS1, m.subnetT1, a2, a1)
  const [x1, j1] = couple(m.subnetS2, m.subnetT2, a1, x2)
  return [x1.map((r, b) => [...r, ...x2[b]]), j1.map((v, b) => v + j2[b])]
}

describe('RNVPCouplingBlock', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test.each([
    [2, null], [3, 2], [5, 3], [7, null],
  ])('forward and reverse match a plain-loop reference (C = %i, condition channels %p)', (ch, cc) => {
    tidy(() => {
      const batch = 3
      const m = new RNVPCouplingBlock([[ch]], { subnetConstructor: linearNet, clamp: 1.4, dimsC: cc ? [[cc]] : [] })
      const xv = randomValues(batch * ch, 1, -2, 2)
      const cv = cc ? randomValues(batch * cc, 2) : null
      const cs = cv ? [tensor(cv, [batch, cc as number])] : []
      const [[y], j] = m.forward([tensor(xv, [batch, ch])], cs)
      const [yRef, jRef] = rnvpRef(m, toRows(xv, batch), cv ? toRows(cv, batch) : null, false)
      expectClose(y, yRef.flat(), 1e-13)
      expectClose(j as Tensor, jRef, 1e-13)
      const [[back], jr] = m.forward([y], cs, true)
      const [bRef, jrRef] = rnvpRef(m, toRows(y.toArray(), batch), cv ? toRows(cv, batch) : null, true)
      expectClose(back, bRef.flat(), 1e-13)
      expectClose(jr as Tensor, jrRef, 1e-13)
      expectClose(back, xv, 1e-12)
    })
  })

  test.each(['ATAN', 'TANH', 'SIGMOID'])('clamp activation %s matches the reference', (act) => {
    tidy(() => {
      const m = new RNVPCouplingBlock([[4]], { subnetConstructor: linearNet, clamp: 2.5, clampActivation: act as ClampActivation })
      const xv = randomValues(8, 4, -2, 2)
      const [[y], j] = m.forward([tensor(xv, [2, 4])])
      const [yRef, jRef] = rnvpRef(m, toRows(xv, 2), null, false, act)
      expectClose(y, yRef.flat(), 1e-13)
      expectClose(j as Tensor, jRef, 1e-13)
    })
  })

  test('module checks: 1-D, odd C = 5 with a condition', () => {
    checkInvertibleModule(() => new RNVPCouplingBlock([[5]], { subnetConstructor: mlp(6), dimsC: [[2]] }), { inputs: [[2, 5]], conditions: [[2, 2]] })
  })
  test('module checks: C = 1 and C = 3, TANH clamp', () => {
    checkInvertibleModule(() => new RNVPCouplingBlock([[1]], { subnetConstructor: mlp(4), dimsC: [[2]] }), { inputs: [[3, 1]], conditions: [[3, 2]] })
    checkInvertibleModule(() => new RNVPCouplingBlock([[3]], { subnetConstructor: mlp(6), clampActivation: 'TANH' }), { inputs: [[2, 3]], range: [-2, 2] })
  })
  test('module checks: C = 7, SIGMOID clamp, integer splitLen 2', () => {
    checkInvertibleModule(() => new RNVPCouplingBlock([[7]], { subnetConstructor: mlp(5), clampActivation: 'SIGMOID', splitLen: 2 }), { inputs: [[2, 7]] })
  })
  test('module checks: images with two image conditions (conv subnets)', () => {
    checkInvertibleModule(() => new RNVPCouplingBlock([[3, 2, 2]], { subnetConstructor: convNet(3), dimsC: [[1, 2, 2], [2, 2, 2]] }), {
      inputs: [[2, 3, 2, 2]],
      conditions: [[2, 1, 2, 2], [2, 2, 2, 2]],
    })
  })

  test('state dict: subnet_s1, subnet_t1 (l1 + cond → l2), subnet_s2, subnet_t2 (l2 + cond → l1), in that order', () => {
    const m = new RNVPCouplingBlock([[5]], { subnetConstructor: mlp(16), dimsC: [[3]] })
    const entries = Object.entries(m.stateDict()).map(([k, v]) => [k, v.shape])
    expect(entries).toEqual(
      ['s1', 't1', 's2', 't2'].flatMap((n) => {
        const [i, o] = n.endsWith('1') ? [5, 3] : [6, 2]
        return [[`subnet_${n}.0.weight`, [16, i]], [`subnet_${n}.0.bias`, [16]], [`subnet_${n}.2.weight`, [o, 16]], [`subnet_${n}.2.bias`, [o]]]
      }),
    )
    expect([m.clamp, m.splitLen1, m.splitLen2]).toEqual([2, 2, 3])
  })

  test('float32 agrees with float64', () => {
    tidy(() => {
      const m64 = new RNVPCouplingBlock([[5]], { subnetConstructor: mlp(8), dimsC: [[2]] })
      const m32 = new RNVPCouplingBlock([[5]], { subnetConstructor: mlp(8), dimsC: [[2]] }).to({ dtype: 'float32' })
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
    expectCode(() => new RNVPCouplingBlock([[4]]), 'ERR_ARGUMENT')
    expectCode(() => new RNVPCouplingBlock([[4]], { subnetConstructor: linearNet, clampActivation: 'tanh' as ClampActivation }), 'ERR_ARGUMENT')
    expectCode(() => new RNVPCouplingBlock([[4]], { subnetConstructor: linearNet, splitLen: -0.5 }), 'ERR_ARGUMENT')
    expectCode(() => new RNVPCouplingBlock([[4]], { subnetConstructor: linearNet, splitLen: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new RNVPCouplingBlock([[4, 2, 2]], { subnetConstructor: convNet(2), dimsC: [[1, 3, 2]] }), 'ERR_SHAPE')
  })
})

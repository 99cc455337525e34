import { getDefaultDtype, modules, nn, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { ClampActivation } from '../../lib/modules/coupling-base'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'
import { linearNet, mlp, convNet, toRows, linearRef, clampRef, Rows } from './coupling-reference'

const { GLOWCouplingBlock } = modules

// ---------------------------------------------------------------- plain-loop float64 reference (1-D, Linear subnets)

/** GLOW's two-sided scheme in loops: returns [output rows, log-dets]. */
function glowRef(m: InstanceType<typeof GLOWCouplingBlock>, x: Rows, c: Rows | null, rev: boolean, act = 'ATAN'): [Rows, number[]] {
  const l1 = m.splitLen1
  const l2 = m.splitLen2
  const f = (u: number) => m.clamp * clampRef[act](u)
  const withC = (r: Rows) => r.map((row, b) => (c ? [...row, ...c[b]] : row))
  // one affine coupling of part p given conditioning input u, via subnet `net` with [s | t] outputs
  const couple = (net: nn.Module, p: Rows, u: Rows, len: number): [Rows, number[]] => {
    const a = linearRef(net, withC(u))
    const out = p.map((row, b) =>
      row.map((v, i) => {
        const s = f(a[b][i])
        const t = a[b][len + i]
        return rev ? (v - t) * Math.exp(-s) : Math.exp(s) * v + t
      }),
    )
    const j = a.map((row) => row.slice(0, len).reduce((acc, v) => acc + f(v), 0) * (rev ? -1 : 1))
    return [out, j]
  }
  const a1 = x.map((r) => r.slice(0, l1))
  const a2 = x.map((r) => r.slice(l1))
  if (!rev) {
    const [y1, j1] = couple(m.subnet2, a1, a2, l1)
    const [y2, j2] = couple(m.subnet1, a2, y1, l2)
    return [y1.map((r, b) => [...r, ...y2[b]]), j1.map((v, b) => v + j2[b])]
  }
  const [x2, j2] = couple(m.subnet1, a2, a1, l2)
  const [x1, j1] = couple(m.subnet2, a1, x2, l1)
  return [x1.map((r, b) => [...r, ...x2[b]]), j1.map((v, b) => v + j2[b])]
}

describe('GLOWCouplingBlock', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test.each([
    [2, null], [3, null], [5, 3], [7, null], [6, 2],
  ])('forward and reverse match a plain-loop reference (C = %i, condition channels %p)', (ch, cc) => {
    tidy(() => {
      const batch = 3
      const m = new GLOWCouplingBlock([[ch]], { subnetConstructor: linearNet, clamp: 1.7, dimsC: cc ? [[cc]] : [] })
      const xv = randomValues(batch * ch, 1, -2, 2)
      const cv = cc ? randomValues(batch * cc, 2) : null
      const x = tensor(xv, [batch, ch])
      const cs = cv ? [tensor(cv, [batch, cc as number])] : []
      const [[y], j] = m.forward([x], cs)
      const [yRef, jRef] = glowRef(m, toRows(xv, batch), cv ? toRows(cv, batch) : null, false)
      expectClose(y, yRef.flat(), 1e-13)
      expectClose(j as Tensor, jRef, 1e-13)
      const [[back], jr] = m.forward([y], cs, true)
      const [bRef, jrRef] = glowRef(m, toRows(y.toArray(), batch), cv ? toRows(cv, batch) : null, true)
      expectClose(back, bRef.flat(), 1e-13)
      expectClose(jr as Tensor, jrRef, 1e-13)
      expectClose(back, xv, 1e-12)
    })
  })

  test.each(['ATAN', 'TANH', 'SIGMOID'])('clamp activation %s matches the reference', (act) => {
    tidy(() => {
      const m = new GLOWCouplingBlock([[5]], { subnetConstructor: linearNet, clamp: 0.8, clampActivation: act as ClampActivation })
      const xv = randomValues(10, 4, -2, 2)
      const [[y], j] = m.forward([tensor(xv, [2, 5])])
      const [yRef, jRef] = glowRef(m, toRows(xv, 2), null, false, act)
      expectClose(y, yRef.flat(), 1e-13)
      expectClose(j as Tensor, jRef, 1e-13)
    })
  })

  test('module checks: 1-D with a condition, odd C (5)', () => {
    checkInvertibleModule(() => new GLOWCouplingBlock([[5]], { subnetConstructor: mlp(8), dimsC: [[3]] }), { inputs: [[3, 5]], conditions: [[3, 3]] })
  })
  test('module checks: C = 1 (x1 is empty), conditioned', () => {
    checkInvertibleModule(() => new GLOWCouplingBlock([[1]], { subnetConstructor: mlp(6), dimsC: [[2]] }), { inputs: [[3, 1]], conditions: [[3, 2]] })
  })
  test('module checks: C = 1 unconditional (a subnet with no input channels)', () => {
    checkInvertibleModule(() => new GLOWCouplingBlock([[1]], { subnetConstructor: mlp(6) }), { inputs: [[3, 1]] })
  })
  test('module checks: C = 3 and C = 7, TANH and SIGMOID clamps, a user clamp', () => {
    checkInvertibleModule(() => new GLOWCouplingBlock([[3]], { subnetConstructor: mlp(8), clampActivation: 'TANH', clamp: 1.1 }), { inputs: [[3, 3]], range: [-2, 2] })
    checkInvertibleModule(() => new GLOWCouplingBlock([[7]], { subnetConstructor: mlp(8), clampActivation: 'SIGMOID' }), { inputs: [[2, 7]] })
    checkInvertibleModule(() => new GLOWCouplingBlock([[4]], { subnetConstructor: mlp(8), clampActivation: (u: Tensor) => u.tanh().mul(0.9) }), { inputs: [[2, 4]] })
  })
  test('module checks: integer splitLen (1 of 4 channels, and all channels)', () => {
    checkInvertibleModule(() => new GLOWCouplingBlock([[4]], { subnetConstructor: mlp(8), splitLen: 1 }), { inputs: [[2, 4]] })
    checkInvertibleModule(() => new GLOWCouplingBlock([[4]], { subnetConstructor: mlp(8), splitLen: 4 }), { inputs: [[2, 4]] })
  })
  test('module checks: images with an image condition (conv subnets), C = 3', () => {
    checkInvertibleModule(() => new GLOWCouplingBlock([[3, 2, 3]], { subnetConstructor: convNet(4), dimsC: [[2, 2, 3]], clamp: 1.2 }), {
      inputs: [[2, 3, 2, 3]],
      conditions: [[2, 2, 2, 3]],
    })
  })

  test('state dict: subnet1 (l1 + cond → 2·l2), subnet2 (l2 + cond → 2·l1)', () => {
    const m = new GLOWCouplingBlock([[7]], { subnetConstructor: mlp(16), dimsC: [[2]] })
    const shapes = Object.fromEntries(Object.entries(m.stateDict()).map(([k, v]) => [k, v.shape]))
    expect(shapes).toEqual({
      'subnet1.0.weight': [16, 6], 'subnet1.0.bias': [16], 'subnet1.2.weight': [6, 16], 'subnet1.2.bias': [6],
      'subnet2.0.weight': [16, 5], 'subnet2.0.bias': [16], 'subnet2.2.weight': [8, 16], 'subnet2.2.bias': [8],
    })
    expect([m.clamp, m.splitLen1, m.splitLen2]).toEqual([2, 4, 3])
    expect(m.outputDims([[7]])).toEqual([[7]])
  })

  test('float32 agrees with float64', () => {
    tidy(() => {
      const m64 = new GLOWCouplingBlock([[3, 2, 2]], { subnetConstructor: convNet(4), dimsC: [[1, 2, 2]] })
      const m32 = new GLOWCouplingBlock([[3, 2, 2]], { subnetConstructor: convNet(4), dimsC: [[1, 2, 2]] }).to({ dtype: 'float32' })
      m32.loadStateDict(Object.fromEntries(Object.entries(m64.stateDict()).map(([k, v]) => [k, v.to({ dtype: 'float32' })])))
      const xv = randomValues(24, 7)
      const cv = randomValues(8, 8)
      for (const rev of [false, true]) {
        const [[y64], j64] = m64.forward([tensor(xv, [2, 3, 2, 2])], [tensor(cv, [2, 1, 2, 2])], rev)
        const [[y32], j32] = m32.forward([tensor(xv, [2, 3, 2, 2], { dtype: 'float32' })], [tensor(cv, [2, 1, 2, 2], { dtype: 'float32' })], rev)
        expect(y32.dtype).toBe('float32')
        expectClose(y32, y64.toArray(), 1e-5)
        expectClose(j32 as Tensor, (j64 as Tensor).toArray(), 1e-5)
      }
    })
  })

  test('errors', () => {
    expectCode(() => new GLOWCouplingBlock([[4]]), 'ERR_ARGUMENT')
    expectCode(() => new GLOWCouplingBlock([[4]], { subnetConstructor: linearNet, clampActivation: 'ELU' as ClampActivation }), 'ERR_ARGUMENT')
    expectCode(() => new GLOWCouplingBlock([[4]], { subnetConstructor: linearNet, splitLen: 1.2 }), 'ERR_ARGUMENT')
    expectCode(() => new GLOWCouplingBlock([[4]], { subnetConstructor: linearNet, splitLen: 5 }), 'ERR_ARGUMENT')
    expectCode(() => new GLOWCouplingBlock([[4, 3, 3]], { subnetConstructor: convNet(2), dimsC: [[2]] }), 'ERR_SHAPE')
    expectCode(() => new GLOWCouplingBlock([[4], [4]], { subnetConstructor: linearNet }), 'ERR_ARGUMENT')
    tidy(() => {
      const m = new GLOWCouplingBlock([[4]], { subnetConstructor: linearNet })
      expectCode(() => m.forward([tensor(randomValues(numel([2, 4]), 1), [2, 4], { dtype: 'float32' })]), 'ERR_DTYPE')
    })
  })
})

import { getDefaultDtype, modules, nn, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { ClampActivation } from '../../lib/modules/coupling-base'
import { expectClose, expectCode, randomValues } from '../helpers'
import { checkInvertibleModule, numericalLogDets } from './module-check'
import { linearNet, mlp, convNet, toRows, linearRef, clampRef, Rows } from './coupling-reference'

const { GINCouplingBlock } = modules


// ---------------------------------------------------------------- plain-loop float64 reference (1-D, Linear subnets)

/** GIN in loops: GLOW's scheme with each s centred over the channels. */
function ginRef(m: InstanceType<typeof GINCouplingBlock>, x: Rows, c: Rows | null, rev: boolean, act = 'ATAN'): Rows {
  const l1 = m.splitLen1
  const l2 = m.splitLen2
  const f = (u: number) => m.clamp * clampRef[act](u)
  const withC = (r: Rows) => r.map((row, b) => (c ? [...row, ...c[b]] : row))
  const couple = (net: nn.Module, p: Rows, u: Rows, len: number): Rows => {
    const a = linearRef(net, withC(u))
    return p.map((row, b) => {
      const raw = a[b].slice(0, len).map(f)
      const mean = raw.reduce((acc, v) => acc + v, 0) / len
      return row.map((v, i) => {
        const s = raw[i] - mean
        const t = a[b][len + i]
        return rev ? (v - t) * Math.exp(-s) : Math.exp(s) * v + t
      })
    })
  }
  const a1 = x.map((r) => r.slice(0, l1))
  const a2 = x.map((r) => r.slice(l1))
  if (!rev) {
    const y1 = couple(m.subnet2, a1, a2, l1)
    const y2 = couple(m.subnet1, a2, y1, l2)
    return y1.map((r, b) => [...r, ...y2[b]])
  }
  const x2 = couple(m.subnet1, a2, a1, l2)
  const x1 = couple(m.subnet2, a1, x2, l1)
  return x1.map((r, b) => [...r, ...x2[b]])
}

describe('GINCouplingBlock', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test.each([
    [2, null, 'ATAN'], [5, 2, 'ATAN'], [7, null, 'TANH'], [6, null, 'SIGMOID'],
  ])('forward and reverse match a plain-loop reference, log-det 0 (C = %i, condition channels %p, %s)', (ch, cc, act) => {
    tidy(() => {
      const batch = 3
      const m = new GINCouplingBlock([[ch]], { subnetConstructor: linearNet, clamp: 1.6, clampActivation: act as ClampActivation, dimsC: cc ? [[cc]] : [] })
      const xv = randomValues(batch * ch, 1, -2, 2)
      const cv = cc ? randomValues(batch * cc, 2) : null
      const cs = cv ? [tensor(cv, [batch, cc as number])] : []
      const [[y], j] = m.forward([tensor(xv, [batch, ch])], cs)
      expectClose(y, ginRef(m, toRows(xv, batch), cv ? toRows(cv, batch) : null, false, act).flat(), 1e-13)
      expect(j).toBe(0)
      const [[back], jr] = m.forward([y], cs, true)
      expectClose(back, ginRef(m, toRows(y.toArray(), batch), cv ? toRows(cv, batch) : null, true, act).flat(), 1e-13)
      expect(jr).toBe(0)
      expectClose(back, xv, 1e-12)
    })
  })

  test('the mean runs over channels only: on images the map is volume preserving per pixel, and not an identity', () => {
    tidy(() => {
      const m = new GINCouplingBlock([[4, 2, 2]], { subnetConstructor: convNet(4) })
      const x = tensor(randomValues(32, 5), [2, 4, 2, 2])
      const [[y]] = m.forward([x])
      expect(Math.max(...Array.from(y.sub(x).abs().toArray()))).toBeGreaterThan(1e-3)
      const run = (xs: Tensor[], cs: Tensor[], rev: boolean) => {
        const [z] = m.forward(xs, cs, rev)
        return { z, logDet: tensor([0, 0], [2]) }
      }
      for (const v of numericalLogDets(run, [x], [], false)) expect(Math.abs(v)).toBeLessThan(1e-8)
    })
  })

  test('module checks: 1-D with a condition, C = 5', () => {
    checkInvertibleModule(() => new GINCouplingBlock([[5]], { subnetConstructor: mlp(8), dimsC: [[2]] }), { inputs: [[3, 5]], conditions: [[3, 2]] })
  })
  test('module checks: C = 1, 3, 7 and an integer splitLen', () => {
    checkInvertibleModule(() => new GINCouplingBlock([[1]], { subnetConstructor: mlp(4), dimsC: [[2]] }), { inputs: [[2, 1]], conditions: [[2, 2]] })
    checkInvertibleModule(() => new GINCouplingBlock([[3]], { subnetConstructor: mlp(6), clampActivation: 'SIGMOID' }), { inputs: [[2, 3]] })
    checkInvertibleModule(() => new GINCouplingBlock([[7]], { subnetConstructor: mlp(6), clampActivation: 'TANH' }), { inputs: [[2, 7]] })
    checkInvertibleModule(() => new GINCouplingBlock([[5]], { subnetConstructor: mlp(6), splitLen: 3 }), { inputs: [[2, 5]] })
  })
  test('module checks: images with an image condition (conv subnets)', () => {
    checkInvertibleModule(() => new GINCouplingBlock([[4, 2, 2]], { subnetConstructor: convNet(3), dimsC: [[1, 2, 2]] }), {
      inputs: [[2, 4, 2, 2]],
      conditions: [[2, 1, 2, 2]],
    })
  })

  test('state dict: subnet1 and subnet2 as in GLOW', () => {
    const m = new GINCouplingBlock([[5]], { subnetConstructor: mlp(16) })
    const shapes = Object.entries(m.stateDict()).map(([k, v]) => [k, v.shape])
    expect(shapes).toEqual([
      ['subnet1.0.weight', [16, 2]], ['subnet1.0.bias', [16]], ['subnet1.2.weight', [6, 16]], ['subnet1.2.bias', [6]],
      ['subnet2.0.weight', [16, 3]], ['subnet2.0.bias', [16]], ['subnet2.2.weight', [4, 16]], ['subnet2.2.bias', [4]],
    ])
    expect(m).not.toBeInstanceOf(modules.GLOWCouplingBlock)
  })

  test('float32 agrees with float64', () => {
    tidy(() => {
      const m64 = new GINCouplingBlock([[5]], { subnetConstructor: mlp(8) })
      const m32 = new GINCouplingBlock([[5]], { subnetConstructor: mlp(8) }).to({ dtype: 'float32' })
      m32.loadStateDict(Object.fromEntries(Object.entries(m64.stateDict()).map(([k, v]) => [k, v.to({ dtype: 'float32' })])))
      const xv = randomValues(15, 7)
      for (const rev of [false, true]) {
        const [[y64]] = m64.forward([tensor(xv, [3, 5])], [], rev)
        const [[y32]] = m32.forward([tensor(xv, [3, 5], { dtype: 'float32' })], [], rev)
        expectClose(y32, y64.toArray(), 1e-5)
      }
    })
  })

  test('errors', () => {
    expectCode(() => new GINCouplingBlock([[4]]), 'ERR_ARGUMENT')
    expectCode(() => new GINCouplingBlock([[4]], { subnetConstructor: linearNet, clampActivation: 'SOFTPLUS' as ClampActivation }), 'ERR_ARGUMENT')
    expectCode(() => new GINCouplingBlock([[4]], { subnetConstructor: linearNet, splitLen: 1.01 }), 'ERR_ARGUMENT')
    expectCode(() => new GINCouplingBlock([[4, 2, 2]], { subnetConstructor: linearNet, dimsC: [[3]] }), 'ERR_SHAPE')
  })
})

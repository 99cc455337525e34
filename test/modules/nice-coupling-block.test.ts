import { getDefaultDtype, modules, nn, setDefaultDtype, tensor, tidy } from '../../lib'
import { expectClose, expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'
import { linearNet, mlp, convNet, toRows, linearRef, Rows } from './coupling-reference'

const { NICECouplingBlock } = modules


// ---------------------------------------------------------------- plain-loop float64 reference (1-D, Linear subnets)

/** NICE in loops: y1 = x1 + F(x2 ⊕ c), y2 = x2 + G(y1 ⊕ c); reverse subtracts in the opposite order. */
function niceRef(m: InstanceType<typeof NICECouplingBlock>, x: Rows, c: Rows | null, rev: boolean): Rows {
  const l1 = m.splitLen1
  const withC = (r: Rows) => r.map((row, b) => (c ? [...row, ...c[b]] : row))
  const shift = (net: nn.Module, p: Rows, u: Rows): Rows => {
    const d = linearRef(net, withC(u))
    return p.map((row, b) => row.map((v, i) => (rev ? v - d[b][i] : v + d[b][i])))
  }
  const a1 = x.map((r) => r.slice(0, l1))
  const a2 = x.map((r) => r.slice(l1))
  if (!rev) {
    const y1 = shift(m.F, a1, a2)
    const y2 = shift(m.G, a2, y1)
    return y1.map((r, b) => [...r, ...y2[b]])
  }
  const x2 = shift(m.G, a2, a1)
  const x1 = shift(m.F, a1, x2)
  return x1.map((r, b) => [...r, ...x2[b]])
}

describe('NICECouplingBlock', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test.each([
    [2, null], [3, null], [5, 2], [7, null], [6, 3],
  ])('forward and reverse match a plain-loop reference, log-det 0 (C = %i, condition channels %p)', (ch, cc) => {
    tidy(() => {
      const batch = 3
      const m = new NICECouplingBlock([[ch]], { subnetConstructor: linearNet, dimsC: cc ? [[cc]] : [] })
      const xv = randomValues(batch * ch, 1, -2, 2)
      const cv = cc ? randomValues(batch * cc, 2) : null
      const cs = cv ? [tensor(cv, [batch, cc as number])] : []
      const [[y], j] = m.forward([tensor(xv, [batch, ch])], cs)
      expectClose(y, niceRef(m, toRows(xv, batch), cv ? toRows(cv, batch) : null, false).flat(), 1e-14)
      expect(j).toBe(0)
      const [[back], jr] = m.forward([y], cs, true)
      expectClose(back, niceRef(m, toRows(y.toArray(), batch), cv ? toRows(cv, batch) : null, true).flat(), 1e-14)
      expect(jr).toBe(0)
      expectClose(back, xv, 1e-13)
    })
  })

  test('module checks: 1-D with a condition, C = 5', () => {
    checkInvertibleModule(() => new NICECouplingBlock([[5]], { subnetConstructor: mlp(8), dimsC: [[3]] }), { inputs: [[3, 5]], conditions: [[3, 3]] })
  })
  test('module checks: C = 1, C = 3, C = 7 and an integer splitLen', () => {
    checkInvertibleModule(() => new NICECouplingBlock([[1]], { subnetConstructor: mlp(4), dimsC: [[2]] }), { inputs: [[3, 1]], conditions: [[3, 2]] })
    checkInvertibleModule(() => new NICECouplingBlock([[3]], { subnetConstructor: mlp(6) }), { inputs: [[2, 3]] })
    checkInvertibleModule(() => new NICECouplingBlock([[7]], { subnetConstructor: mlp(6) }), { inputs: [[2, 7]] })
    checkInvertibleModule(() => new NICECouplingBlock([[6]], { subnetConstructor: mlp(6), splitLen: 5 }), { inputs: [[2, 6]] })
  })
  test('module checks: images with an image condition (conv subnets)', () => {
    checkInvertibleModule(() => new NICECouplingBlock([[3, 2, 3]], { subnetConstructor: convNet(3), dimsC: [[1, 2, 3]] }), {
      inputs: [[2, 3, 2, 3]],
      conditions: [[2, 1, 2, 3]],
    })
  })

  test('state dict: F (l2 + cond → l1) and G (l1 + cond → l2)', () => {
    const m = new NICECouplingBlock([[5]], { subnetConstructor: mlp(16), dimsC: [[2]] })
    const shapes = Object.entries(m.stateDict()).map(([k, v]) => [k, v.shape])
    expect(shapes).toEqual([
      ['F.0.weight', [16, 5]], ['F.0.bias', [16]], ['F.2.weight', [2, 16]], ['F.2.bias', [2]],
      ['G.0.weight', [16, 4]], ['G.0.bias', [16]], ['G.2.weight', [3, 16]], ['G.2.bias', [3]],
    ])
    // FrEIA builds NICE with clamp 0 (unused)
    expect(m.clamp).toBe(0)
  })

  test('float32 agrees with float64', () => {
    tidy(() => {
      const m64 = new NICECouplingBlock([[5]], { subnetConstructor: mlp(8) })
      const m32 = new NICECouplingBlock([[5]], { subnetConstructor: mlp(8) }).to({ dtype: 'float32' })
      m32.loadStateDict(Object.fromEntries(Object.entries(m64.stateDict()).map(([k, v]) => [k, v.to({ dtype: 'float32' })])))
      const xv = randomValues(15, 7)
      for (const rev of [false, true]) {
        const [[y64]] = m64.forward([tensor(xv, [3, 5])], [], rev)
        const [[y32]] = m32.forward([tensor(xv, [3, 5], { dtype: 'float32' })], [], rev)
        expectClose(y32, y64.toArray(), 1e-5)
      }
    })
  })

  test('errors: no clamp options (NICE is additive), bad splitLen, missing subnet constructor', () => {
    expectCode(() => new NICECouplingBlock([[4]]), 'ERR_ARGUMENT')
    expectCode(() => new NICECouplingBlock([[4]], { subnetConstructor: linearNet, clamp: 1 } as never), 'ERR_ARGUMENT')
    expectCode(() => new NICECouplingBlock([[4]], { subnetConstructor: linearNet, clampActivation: 'TANH' } as never), 'ERR_ARGUMENT')
    expectCode(() => new NICECouplingBlock([[4]], { subnetConstructor: linearNet, splitLen: 2.5 }), 'ERR_ARGUMENT')
    expectCode(() => new NICECouplingBlock([[4]], { subnetConstructor: linearNet, dimsC: [[2, 2]] }), 'ERR_SHAPE')
  })
})

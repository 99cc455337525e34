/**
 * The shared coupling machinery (lib/modules/coupling-base.ts): split lengths with Python's rounding, the
 * soft clamps, option and condition checks, subnet checks and the order of the two-sided scheme.
 */
import { modules, nn, tensor, Tensor, tidy } from '../../lib'
import { Dims } from '../../lib/modules/base'
import {
  CouplingBaseOptions, CouplingBlockBase, LogDet, roundHalfEven, TwoSidedCouplingBlock,
} from '../../lib/modules/coupling-base'
import { expectClose, expectCode, randomValues } from '../helpers'

const linear = (cIn: number, cOut: number) => new nn.Linear(cIn, cOut)

/** Exposes the protected parts of the base for direct checks. */
class Probe extends CouplingBlockBase {
  constructor(dimsIn: Dims[], opts: CouplingBaseOptions = {}) {
    super(dimsIn, opts)
  }
  clampOf(u: Tensor): Tensor {
    return this.softClamp(u)
  }
  forward(x: Tensor[]): [Tensor[], number] {
    return [x, 0]
  }
}

/**
 * A two-sided block whose couplings add a recognisable function of their conditioning input and record
 * what they were given, to check the order of the scheme and the layout of the subnet inputs.
 */
class Recorder extends TwoSidedCouplingBlock {
  calls: { which: number; rev: boolean; x: number[]; u: number[]; uChannels: number }[] = []
  constructor(dimsIn: Dims[], opts: CouplingBaseOptions = {}) {
    super(dimsIn, opts)
  }
  private shift(x: Tensor, u: Tensor, which: number, rev: boolean): [Tensor, LogDet] {
    this.calls.push({ which, rev, x: Array.from(x.toArray()), u: Array.from(u.toArray()), uChannels: u.shape[1] })
    // shift every channel of x by (which)·Σ u over channels: invertible, depends on all of u
    const shift = u.sum(1, true).mul(which)
    return [rev ? x.sub(shift) : x.add(shift), which * (rev ? -1 : 1)]
  }
  protected coupling1(x1: Tensor, u2: Tensor, rev: boolean): [Tensor, LogDet] {
    return this.shift(x1, u2, 1, rev)
  }
  protected coupling2(x2: Tensor, u1: Tensor, rev: boolean): [Tensor, LogDet] {
    return this.shift(x2, u1, 10, rev)
  }
}

describe('split lengths', () => {
  test("roundHalfEven is Python's round()", () => {
    const cases: [number, number][] = [[0, 0], [0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [0.49, 0], [0.51, 1], [2.4999, 2], [7, 7], [3.4999999999999996, 3], [14.5, 14], [-0.5, 0], [-1.5, -2]]
    for (const [v, r] of cases) expect(roundHalfEven(v) === r).toBe(true)
  })

  test.each([
    [1, 0, 1], [2, 1, 1], [3, 2, 1], [4, 2, 2], [5, 2, 3], [6, 3, 3], [7, 4, 3], [9, 4, 5],
  ])('C = %i with the default 0.5 splits %i | %i (round half to even)', (c, l1, l2) => {
    const m = new Probe([[c]])
    expect([m.channels, m.splitLen1, m.splitLen2]).toEqual([c, l1, l2])
  })

  test('fractional splitLen rounds C·splitLen half to even, with the float product Python sees', () => {
    expect(new Probe([[5]], { splitLen: 0.3 }).splitLen1).toBe(2) // 1.5 → 2
    expect(new Probe([[5]], { splitLen: 0.1 }).splitLen1).toBe(0) // 0.5 → 0
    expect(new Probe([[5]], { splitLen: 0.7 }).splitLen1).toBe(4) // 3.5 → 4
    expect(new Probe([[25]], { splitLen: 0.58 }).splitLen1).toBe(14) // 25·0.58 = 14.499999999999998 in floats → 14
    expect(new Probe([[25]], { splitLen: 0.14 }).splitLen1).toBe(4) // 3.5000000000000004 → 4
    expect(new Probe([[5]], { splitLen: 0.9 }).splitLen1).toBe(4) // 4.5 → 4
    expect(new Probe([[4, 3, 3]], { splitLen: 0.25 }).splitLen1).toBe(1)
    expect(new Probe([[4]], { splitLen: 0 }).splitLen1).toBe(0)
  })

  test('an integer splitLen is a channel count', () => {
    for (let k = 0; k <= 5; k++) {
      const m = new Probe([[5, 2, 2]], { splitLen: k })
      expect([m.splitLen1, m.splitLen2]).toEqual([k, 5 - k])
    }
    expect(new Probe([[5]], { splitLen: 1 }).splitLen1).toBe(1)
  })

  test('out-of-range or non-numeric splitLen is an argument error', () => {
    for (const bad of [-0.1, 1.5, 6, -1, NaN, Infinity, '0.5', null]) expectCode(() => new Probe([[5]], { splitLen: bad as number }), 'ERR_ARGUMENT')
  })

  test('rank and channels come from the first input shape', () => {
    const m = new Probe([[3, 4, 5]])
    expect([m.channels, m.ndims]).toEqual([3, 3])
    expect(new Probe([[6]]).ndims).toBe(1)
  })
})

describe('soft clamp', () => {
  const values = randomValues(24, 3, -4, 4)
  const check = (opts: CouplingBaseOptions, ref: (u: number) => number) =>
    tidy(() => {
      const m = new Probe([[4]], opts)
      const u = tensor(values, [6, 4], { dtype: 'float64' })
      expectClose(m.clampOf(u), values.map(ref), 1e-15)
    })

  test("'ATAN' (the default) is clamp·0.636·atan(u), not 2/π", () => {
    check({}, (u) => 2 * 0.636 * Math.atan(u))
    check({ clamp: 1.3, clampActivation: 'ATAN' }, (u) => 1.3 * 0.636 * Math.atan(u))
  })
  test("'TANH' is clamp·tanh(u)", () => check({ clamp: 0.7, clampActivation: 'TANH' }, (u) => 0.7 * Math.tanh(u)))
  test("'SIGMOID' is clamp·2(σ(u) − ½)", () => check({ clamp: 1.5, clampActivation: 'SIGMOID' }, (u) => 1.5 * 2 * (1 / (1 + Math.exp(-u)) - 0.5)))
  test('a user function is multiplied by clamp; raw is not divided by clamp', () =>
    check({ clamp: 3, clampActivation: (u: Tensor) => u.mul(0.5).tanh() }, (u) => 3 * Math.tanh(0.5 * u)))

  test('unknown names, non-functions and misbehaving functions are refused', () => {
    expectCode(() => new Probe([[4]], { clampActivation: 'atan' as 'ATAN' }), 'ERR_ARGUMENT')
    expectCode(() => new Probe([[4]], { clampActivation: 'RELU' as 'ATAN' }), 'ERR_ARGUMENT')
    expectCode(() => new Probe([[4]], { clampActivation: 3 as unknown as 'ATAN' }), 'ERR_ARGUMENT')
    expectCode(() => new Probe([[4]], { clamp: '2' as unknown as number }), 'ERR_ARGUMENT')
    expectCode(() => new Probe([[4]], { clamp: NaN }), 'ERR_ARGUMENT')
    tidy(() => {
      const u = tensor(values, [6, 4], { dtype: 'float64' })
      expectCode(() => new Probe([[4]], { clampActivation: (x: Tensor) => x.sum(1) }).clampOf(u), 'ERR_SHAPE')
      expectCode(() => new Probe([[4]], { clampActivation: (() => 1) as unknown as (x: Tensor) => Tensor }).clampOf(u), 'ERR_ARGUMENT')
    })
  })
})

describe('options and conditions', () => {
  test('conditions must share the non-channel shape of the input; their channels add up', () => {
    const m = new Probe([[3, 4, 4]], { dimsC: [[2, 4, 4], [5, 4, 4]] })
    expect([m.conditional, m.conditionLength]).toEqual([true, 7])
    const u = new Probe([[3]])
    expect([u.conditional, u.conditionLength]).toEqual([false, 0])
    expectCode(() => new Probe([[3, 4, 4]], { dimsC: [[2, 4, 4], [2]] }), 'ERR_SHAPE')
    expectCode(() => new Probe([[3]], { dimsC: [[2, 4]] }), 'ERR_SHAPE')
    expectCode(() => new Probe([[3, 4, 4]], { dimsC: [[2, 4, 5]] }), 'ERR_SHAPE')
  })

  test('exactly one input', () => {
    expectCode(() => new Probe([[3], [3]]), 'ERR_ARGUMENT')
    expectCode(() => new Probe([]), 'ERR_ARGUMENT')
    expect(new Probe([[3, 2]]).outputDims([[3, 2]])).toEqual([[3, 2]])
    expectCode(() => new Probe([[3]]).outputDims([[3], [3]]), 'ERR_ARGUMENT')
  })

  test('unknown options are refused, with a hint for snake_case', () => {
    let message = ''
    try {
      new modules.GLOWCouplingBlock([[4]], { subnet_constructor: linear } as never)
    } catch (e) {
      message = (e as Error).message
    }
    expect(message).toMatch(/did you mean subnetConstructor/)
    expectCode(() => new modules.GLOWCouplingBlock([[4]], { subnetConstructor: linear, clampActivaton: 'TANH' } as never), 'ERR_ARGUMENT')
    expectCode(() => new modules.NICECouplingBlock([[4]], { subnetConstructor: linear, clamp: 2 } as never), 'ERR_ARGUMENT')
  })

  test('the subnet constructor must be a function returning a module, whose output has the right shape', () => {
    expectCode(() => new modules.RNVPCouplingBlock([[4]]), 'ERR_ARGUMENT')
    expectCode(() => new modules.RNVPCouplingBlock([[4]], { subnetConstructor: 'mlp' as never }), 'ERR_ARGUMENT')
    expectCode(() => new modules.RNVPCouplingBlock([[4]], { subnetConstructor: (() => ({ forward: () => null })) as never }), 'ERR_ARGUMENT')
    tidy(() => {
      const x = tensor(randomValues(8, 1), [2, 4])
      const wrong = new modules.GLOWCouplingBlock([[4]], { subnetConstructor: (cIn: number) => new nn.Linear(cIn, 3) })
      expectCode(() => wrong.forward([x]), 'ERR_SHAPE')
      const notTensor = new modules.GLOWCouplingBlock([[4]], { subnetConstructor: () => new (class extends nn.Module { forward() { return 3 } })() })
      expectCode(() => notTensor.forward([x]), 'ERR_ARGUMENT')
    })
  })

  test('inputs and conditions are checked at every call', () => {
    tidy(() => {
      const m = new modules.GLOWCouplingBlock([[4]], { subnetConstructor: linear, dimsC: [[2]] })
      const x = tensor(randomValues(8, 1), [2, 4])
      const c = tensor(randomValues(4, 2), [2, 2])
      expect(m.forward([x], [c])[0][0].shape).toEqual([2, 4])
      expectCode(() => m.forward([x]), 'ERR_ARGUMENT')
      expectCode(() => m.forward([x], [c, c]), 'ERR_ARGUMENT')
      expectCode(() => m.forward([x], [tensor(randomValues(6, 2), [2, 3])]), 'ERR_SHAPE')
      expectCode(() => m.forward([x], [tensor(randomValues(6, 2), [3, 2])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(10, 1), [2, 5])], [c]), 'ERR_SHAPE')
      expectCode(() => m.forward([x, x], [c]), 'ERR_ARGUMENT')
    })
  })
})

describe('two-sided scheme', () => {
  // B = 2, C = 5 → x1 = channels 0..1, x2 = channels 2..4; one condition with 2 channels
  const xv = randomValues(10, 11)
  const cv = randomValues(4, 12)
  const rows = (v: ArrayLike<number>, b: number, from: number, to: number, width: number) => Array.from(v).slice(b * width + from, b * width + to)

  test('forward: coupling 1 sees x2 ⊕ c, then coupling 2 sees y1 ⊕ c; log-dets add up', () => {
    tidy(() => {
      const m = new Recorder([[5]], { dimsC: [[2]] })
      const [[y], j] = m.forward([tensor(xv, [2, 5], { dtype: 'float64' })], [tensor(cv, [2, 2], { dtype: 'float64' })])
      expect(m.calls.map((k) => [k.which, k.rev, k.uChannels])).toEqual([[1, false, 5], [10, false, 4]])
      const [first, second] = m.calls
      expect(first.u).toEqual([0, 1].flatMap((b) => [...rows(xv, b, 2, 5, 5), ...rows(cv, b, 0, 2, 2)]))
      const yv = y.toArray()
      expect(second.u).toEqual([0, 1].flatMap((b) => [...rows(yv, b, 0, 2, 5), ...rows(cv, b, 0, 2, 2)]))
      // reference: y1 = x1 + Σ(x2 ⊕ c), y2 = x2 + 10·Σ(y1 ⊕ c)
      const ref = [0, 1].flatMap((b) => {
        const s1 = [...rows(xv, b, 2, 5, 5), ...rows(cv, b, 0, 2, 2)].reduce((a, v) => a + v, 0)
        const y1 = rows(xv, b, 0, 2, 5).map((v) => v + s1)
        const s2 = [...y1, ...rows(cv, b, 0, 2, 2)].reduce((a, v) => a + v, 0)
        return [...y1, ...rows(xv, b, 2, 5, 5).map((v) => v + 10 * s2)]
      })
      expectClose(y, ref, 1e-15)
      expect(j).toBe(11)
    })
  })

  test('reverse: coupling 2 is undone first (given y1 ⊕ c), then coupling 1 (given x2 ⊕ c); log-det negated', () => {
    tidy(() => {
      const m = new Recorder([[5]], { dimsC: [[2]] })
      const x = tensor(xv, [2, 5], { dtype: 'float64' })
      const c = tensor(cv, [2, 2], { dtype: 'float64' })
      const [[y]] = m.forward([x], [c])
      m.calls = []
      const [[back], j] = m.forward([y], [c], true)
      expect(m.calls.map((k) => [k.which, k.rev, k.uChannels])).toEqual([[10, true, 4], [1, true, 5]])
      expectClose(back, xv, 1e-14)
      expect(j).toBe(-11)
    })
  })

  test('a coupling whose active part has no channels is skipped (C = 1, integer splitLen 0 or C)', () => {
    tidy(() => {
      const x = tensor(randomValues(3, 5), [3, 1], { dtype: 'float64' })
      const m = new Recorder([[1]])
      expect([m.splitLen1, m.splitLen2]).toEqual([0, 1])
      const [[y], j] = m.forward([x])
      expect(m.calls.map((k) => k.which)).toEqual([10])
      expect(j).toBe(10)
      expectClose(y, x.toArray(), 0) // Σ over an empty y1 is 0
      const all = new Recorder([[3]], { splitLen: 3 })
      all.forward([tensor(randomValues(6, 5), [2, 3], { dtype: 'float64' })], [], true)
      expect(all.calls.map((k) => [k.which, k.rev])).toEqual([[1, true]])
    })
  })
})

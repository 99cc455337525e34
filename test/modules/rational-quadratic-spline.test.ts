import { InnflowError, manualSeed, modules, nn, noGrad, SequenceINN, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { rationalQuadratic } from '../../lib/modules/spline-math'
import { expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'
import { RefOptions, refDefaults, refApply } from './spline-reference'

const { RationalQuadraticSpline } = modules

// ------------------------------------------------------------------------------------------------------
// The reference spline is in spline-reference.ts.

// ------------------------------------------------------------------------------------------------------

/** A small MLP subnet whose last layer is far from zero, so the splines are far from the identity. */
const mlp = (width = 8, gain = 1) => (cIn: number, cOut: number): nn.Module => {
  const last = new nn.Linear(width, cOut)
  nn.init.uniform_(last.weight, -gain, gain)
  nn.init.uniform_(last.bias as Tensor, -gain, gain)
  return new nn.Sequential(new nn.Linear(cIn, width), new nn.Tanh(), last)
}
const convNet = (width = 4, gain = 0.7) => (cIn: number, cOut: number): nn.Module => {
  const last = new nn.Conv2d(width, cOut, 1)
  nn.init.uniform_(last.weight, -gain, gain)
  return new nn.Sequential(new nn.Conv2d(cIn, width, 3, { padding: 1 }), new nn.Tanh(), last)
}

/** x1, x2 → reference y for the coupling block (subnets evaluated by the module's own subnets). */
function refCoupling(m: InstanceType<typeof RationalQuadraticSpline>, x: Tensor, c: Tensor[], o: RefOptions, rev: boolean) {
  return tidy(() =>
    noGrad(() => {
      const s1 = m.splitLen1
      const s2 = m.splitLen2
      const withC = (t: Tensor) => (c.length ? catChannels([t, ...c]) : t)
      const x1 = x.narrow(1, 0, s1)
      const x2 = x.narrow(1, s1, s2)
      const shapeOf = (t: Tensor) => [...t.shape]
      if (!rev) {
        const r1 = refApply(x1, m.subnet1.forward(withC(x2)) as Tensor, o, false)
        const y1 = tensor(r1.y, shapeOf(x1), { dtype: 'float64' })
        const r2 = refApply(x2, m.subnet2.forward(withC(y1)) as Tensor, o, false)
        const y2 = tensor(r2.y, shapeOf(x2), { dtype: 'float64' })
        return { z: catChannels([y1, y2]).toArray(), logDet: r1.logDet.map((v, b) => v + r2.logDet[b]), inside: r1.inside + r2.inside }
      }
      const r2 = refApply(x2, m.subnet2.forward(withC(x1)) as Tensor, o, true)
      const y2 = tensor(r2.y, shapeOf(x2), { dtype: 'float64' })
      const r1 = refApply(x1, m.subnet1.forward(withC(y2)) as Tensor, o, true)
      const y1 = tensor(r1.y, shapeOf(x1), { dtype: 'float64' })
      return { z: catChannels([y1, y2]).toArray(), logDet: r1.logDet.map((v, b) => v + r2.logDet[b]), inside: r1.inside + r2.inside }
    }),
  )
}
function catChannels(ts: Tensor[]): Tensor {
  // plain-JS channel concatenation, so the reference does not lean on ops.cat
  const B = ts[0].shape[0]
  const S = ts[0].size / (B * ts[0].shape[1])
  const C = ts.reduce((a, t) => a + t.shape[1], 0)
  const out = new Array<number>(B * C * S)
  for (let b = 0; b < B; b++) {
    let c0 = 0
    for (const t of ts) {
      const v = t.toArray()
      const n = t.shape[1]
      for (let i = 0; i < n * S; i++) out[(b * C + c0) * S + i] = v[b * n * S + i]
      c0 += n
    }
  }
  return tensor(out, [B, C, ...ts[0].shape.slice(2)], { dtype: 'float64' })
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

beforeAll(() => setDefaultDtype('float64'))
afterAll(() => setDefaultDtype('float32'))

describe('RationalQuadraticSpline: forward and reverse against a float64 reference', () => {
  const cases: { name: string; dims: number[]; batch: number; o: Partial<RefOptions>; opts: Record<string, unknown>; net: 'mlp' | 'conv'; cond?: number[] }[] = [
    { name: '1-D, default options', dims: [4], batch: 5, o: {}, opts: {}, net: 'mlp' },
    { name: '1-D, 3 bins, odd channels', dims: [5], batch: 4, o: { bins: 3 }, opts: { bins: 3 }, net: 'mlp' },
    { name: '1-D, 1 bin', dims: [3], batch: 4, o: { bins: 1 }, opts: { bins: 1 }, net: 'mlp' },
    { name: '1-D, identity tails', dims: [4], batch: 5, o: { identity: true, bins: 5 }, opts: { identityTails: true, bins: 5 }, net: 'mlp' },
    { name: '1-D, domain clamping', dims: [4], batch: 5, o: { dc: 2, bins: 6 }, opts: { domainClamping: 2, bins: 6 }, net: 'mlp' },
    { name: '1-D, identity tails and clamping', dims: [4], batch: 5, o: { identity: true, dc: 1.5, bins: 4 }, opts: { identityTails: true, domainClamping: 1.5, bins: 4 }, net: 'mlp' },
    {
      name: '1-D, custom domain and min sizes',
      dims: [4],
      batch: 5,
      o: { domain: [-1, 2, -2, 4], minW: 0.05, minH: 0.2, bins: 7 },
      opts: { defaultDomain: [-1, 2, -2, 4], minBinSizes: [0.05, 0.2], bins: 7 },
      net: 'mlp',
    },
    { name: '1-D with a condition', dims: [4], batch: 4, o: { bins: 4 }, opts: { bins: 4 }, net: 'mlp', cond: [3] },
    { name: 'image (3, 2, 3)', dims: [3, 2, 3], batch: 2, o: { bins: 4 }, opts: { bins: 4 }, net: 'conv' },
  ]
  for (const k of cases)
    test(k.name, () => {
      tidy(() => {
        manualSeed(11)
        const o = { ...refDefaults, ...k.o }
        const m = new RationalQuadraticSpline([k.dims], { ...k.opts, subnetConstructor: k.net === 'mlp' ? mlp() : convNet(), dimsC: k.cond ? [k.cond] : undefined })
        const x = tensor(randomValues(k.batch * k.dims.reduce((a, b) => a * b, 1), 3, -5, 5), [k.batch, ...k.dims], { dtype: 'float64' })
        const c = k.cond ? [tensor(randomValues(k.batch * k.cond[0], 4), [k.batch, ...k.cond], { dtype: 'float64' })] : []
        const [[z], j] = noGrad(() => m.forward([x], c))
        const ref = refCoupling(m, x, c, o, false)
        expect(maxAbsDiff(z.toArray(), ref.z)).toBeLessThan(1e-12)
        expect(maxAbsDiff((j as Tensor).toArray(), ref.logDet)).toBeLessThan(1e-11)
        // both the spline and its tails are exercised
        expect(ref.inside).toBeGreaterThan(0)
        expect(ref.inside).toBeLessThan(x.size)
        const [[back], jr] = noGrad(() => m.forward([z], c, true))
        const refRev = refCoupling(m, z, c, o, true)
        expect(maxAbsDiff(back.toArray(), refRev.z)).toBeLessThan(1e-10)
        expect(maxAbsDiff(back.toArray(), x.toArray())).toBeLessThan(1e-10)
        expect(maxAbsDiff((jr as Tensor).toArray(), refRev.logDet)).toBeLessThan(1e-9)
        expect(refRev.inside).toBeGreaterThan(0)
      })
    })
})

describe('RationalQuadraticSpline: invertible-module checks (non-identity subnets, points inside and outside the domain)', () => {
  test('1-D, 10 bins (default)', () => {
    manualSeed(1)
    checkInvertibleModule(() => new RationalQuadraticSpline([[4]], { subnetConstructor: mlp(4) }), { inputs: [[3, 4]], range: [-5, 5] })
  })
  test('1-D odd channels, 3 bins, split 0.4', () => {
    manualSeed(2)
    checkInvertibleModule(() => new RationalQuadraticSpline([[5]], { subnetConstructor: mlp(4), bins: 3, splitLen: 0.4 }), { inputs: [[2, 5]], range: [-4, 4] })
  })
  test('1-D, 1 bin', () => {
    manualSeed(3)
    checkInvertibleModule(() => new RationalQuadraticSpline([[3]], { subnetConstructor: mlp(4), bins: 1 }), { inputs: [[3, 3]], range: [-5, 5] })
  })
  test('1-D, identity tails with domain clamping', () => {
    manualSeed(4)
    checkInvertibleModule(() => new RationalQuadraticSpline([[4]], { subnetConstructor: mlp(4), bins: 5, identityTails: true, domainClamping: 3 }), {
      inputs: [[3, 4]],
      range: [-4, 4],
    })
  })
  test('1-D, domain clamping with affine tails and an integer split', () => {
    manualSeed(5)
    checkInvertibleModule(() => new RationalQuadraticSpline([[4]], { subnetConstructor: mlp(4), bins: 6, domainClamping: 2, splitLen: 1 }), {
      inputs: [[3, 4]],
      range: [-4, 4],
    })
  })
  test('1-D with two conditions', () => {
    manualSeed(6)
    checkInvertibleModule(() => new RationalQuadraticSpline([[4]], { subnetConstructor: mlp(4), bins: 4, dimsC: [[2], [1]] }), {
      inputs: [[3, 4]],
      conditions: [[3, 2], [3, 1]],
      range: [-5, 5],
    })
  })
  test('image (3, 2, 2) with a conv subnet and an image condition', () => {
    manualSeed(7)
    checkInvertibleModule(() => new RationalQuadraticSpline([[3, 2, 2]], { subnetConstructor: convNet(3), bins: 4, dimsC: [[1, 2, 2]] }), {
      inputs: [[2, 3, 2, 2]],
      conditions: [[2, 1, 2, 2]],
      range: [-4, 4],
    })
  })
})

describe('RationalQuadraticSpline: structure and defaults', () => {
  test('state dict keys and buffers, as FrEIA', () => {
    manualSeed(1)
    const m = new RationalQuadraticSpline([[5]], { subnetConstructor: mlp() })
    expect(Object.keys(m.stateDict())).toEqual([
      'spline_base.bins',
      'spline_base.min_bin_sizes',
      'spline_base.default_domain',
      'spline_base.identity_tails',
      'spline_base.default_width',
      'subnet1.0.weight',
      'subnet1.0.bias',
      'subnet1.2.weight',
      'subnet1.2.bias',
      'subnet2.0.weight',
      'subnet2.0.bias',
      'subnet2.2.weight',
      'subnet2.2.bias',
    ])
    const sd = m.stateDict()
    expect(sd['spline_base.bins'].shape).toEqual([])
    expect(sd['spline_base.bins'].item()).toBe(10)
    expect(Array.from(sd['spline_base.min_bin_sizes'].toArray())).toEqual([0.1, 0.1])
    expect(Array.from(sd['spline_base.default_domain'].toArray())).toEqual([-3, 3, -3, 3])
    expect(sd['spline_base.identity_tails'].item()).toBe(0)
    expect(sd['spline_base.default_width'].item()).toBe(6)
    // buffers are not parameters
    expect(m.namedParameters().map(([n]) => n).every((n) => n.startsWith('subnet'))).toBe(true)
  })

  test('subnet sizes: P = 3K + 1 per channel (3K with identity tails); split 2|3 for C = 5', () => {
    const calls: [number, number][] = []
    const record = (cIn: number, cOut: number) => {
      calls.push([cIn, cOut])
      return mlp()(cIn, cOut)
    }
    const m = new RationalQuadraticSpline([[5]], { subnetConstructor: record })
    expect([m.splitLen1, m.splitLen2]).toEqual([2, 3])
    expect(calls).toEqual([[3, 2 * 31], [2, 3 * 31]])
    calls.length = 0
    new RationalQuadraticSpline([[5]], { subnetConstructor: record, identityTails: true, dimsC: [[2]] })
    expect(calls).toEqual([[3 + 2, 2 * 30], [2 + 2, 3 * 30]])
    calls.length = 0
    new RationalQuadraticSpline([[4, 3, 3]], { subnetConstructor: convNet(), bins: 4 })
    new RationalQuadraticSpline([[7]], { subnetConstructor: record, bins: 2, splitLen: 3 })
    expect(calls).toEqual([[4, 3 * 7], [3, 4 * 7]])
    expect(m.outputDims([[5]])).toEqual([[5]])
  })

  test('zero subnet outputs give the identity, inside and outside the domain', () => {
    manualSeed(3)
    const zeroNet = (cIn: number, cOut: number) => {
      const l = new nn.Linear(cIn, cOut)
      nn.init.zeros_(l.weight)
      nn.init.zeros_(l.bias as Tensor)
      return l
    }
    for (const opts of [{}, { bins: 3 }, { identityTails: true }, { defaultDomain: [-2, 1, -2, 1] as number[] }]) {
      const m = new RationalQuadraticSpline([[4]], { subnetConstructor: zeroNet, ...opts })
      const x = tensor(randomValues(24, 5, -6, 6), [6, 4], { dtype: 'float64' })
      const [[z], j] = noGrad(() => m.forward([x]))
      expect(maxAbsDiff(z.toArray(), x.toArray())).toBeLessThan(1e-12)
      expect(maxAbsDiff((j as Tensor).toArray(), [0, 0, 0, 0, 0, 0])).toBeLessThan(1e-12)
    }
  })

  test('in a SequenceINN with a condition, next to the other splines', () => {
    tidy(() => {
      manualSeed(4)
      const inn = new SequenceINN(4)
      inn.append(RationalQuadraticSpline, { subnetConstructor: mlp(), bins: 5, cond: 0, condShape: [2] })
      inn.append(modules.LinearSpline, { subnetConstructor: mlp(), bins: 3, identityTails: true })
      inn.append(modules.ElementwiseRationalQuadraticSpline, { bins: 4 })
      expect(Object.keys(inn.stateDict())).toContain('module_list.0.spline_base.default_domain')
      expect(Object.keys(inn.stateDict())).toContain('module_list.2.spline_parameters')
      const x = tensor(randomValues(20, 1, -5, 5), [5, 4], { dtype: 'float64' })
      const c = [tensor(randomValues(10, 2), [5, 2], { dtype: 'float64' })]
      const [z, j] = noGrad(() => inn.forward(x, { c }))
      const [back, jr] = noGrad(() => inn.forward(z as Tensor, { c, rev: true }))
      expect(maxAbsDiff((back as Tensor).toArray(), x.toArray())).toBeLessThan(1e-10)
      expect(maxAbsDiff(jr.toArray(), j.neg().toArray())).toBeLessThan(1e-10)
      expect(maxAbsDiff(j.toArray(), [0, 0, 0, 0, 0])).toBeGreaterThan(1e-3)
    })
  })

  test('float32 agrees with float64 (1e-5 relative)', () => {
    manualSeed(9)
    const m64 = new RationalQuadraticSpline([[4]], { subnetConstructor: mlp(), bins: 5 })
    setDefaultDtype('float32')
    try {
      const m32 = new RationalQuadraticSpline([[4]], { subnetConstructor: mlp(), bins: 5 })
      const sd = m64.stateDict()
      m32.loadStateDict(Object.fromEntries(Object.entries(sd).map(([k, v]) => [k, v.to({ dtype: 'float32' })])))
      const xs = randomValues(20, 8, -5, 5)
      const [[z64], j64] = noGrad(() => m64.forward([tensor(xs, [5, 4], { dtype: 'float64' })]))
      const [[z32], j32] = noGrad(() => m32.forward([tensor(xs, [5, 4], { dtype: 'float32' })]))
      expect(z32.dtype).toBe('float32')
      const rel = (a: ArrayLike<number>, b: ArrayLike<number>) => maxAbsDiff(a, b) / Math.max(...Array.from(b).map(Math.abs))
      expect(rel(z32.toArray(), z64.toArray())).toBeLessThan(1e-5)
      expect(rel((j32 as Tensor).toArray(), (j64 as Tensor).toArray())).toBeLessThan(1e-5)
      const [[back32]] = noGrad(() => m32.forward([z32], [], true))
      expect(rel(back32.toArray(), xs)).toBeLessThan(1e-5)
    } finally {
      setDefaultDtype('float64')
    }
  })
})

describe('RationalQuadraticSpline: errors', () => {
  const net = mlp()
  test('bad options are ERR_ARGUMENT', () => {
    expectCode(() => new RationalQuadraticSpline([[4]], {}), 'ERR_ARGUMENT') // no subnetConstructor
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, bins: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, bins: 2.5 }), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, minBinSizes: [-0.1, 0.1] }), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, defaultDomain: [3, -3, -3, 3] }), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, defaultDomain: [-3, 3, 3, 3] }), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, bins: 70 }), 'ERR_ARGUMENT') // 70 · 0.1 > 6
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, domainClamping: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, splitLen: 1.5 }), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, splitLen: 5 }), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, splitLen: 0 }), 'ERR_ARGUMENT') // an empty part
    expectCode(() => new RationalQuadraticSpline([[1]], { subnetConstructor: net }), 'ERR_ARGUMENT') // 1 channel: 0|1
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, identityTails: 1 as unknown as boolean }), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, parameterCounts: { x: 1 } } as never), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: net, default_domain: [-1, 1, -1, 1] } as never), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4], [4]], { subnetConstructor: net }), 'ERR_ARGUMENT')
    expectCode(() => new RationalQuadraticSpline([[4]], { subnetConstructor: (() => 3) as never }), 'ERR_ARGUMENT')
  })
  test('reverse: a negative discriminant is refused (ERR_ARGUMENT), as FrEIA raises', () => {
    tidy(() => {
      // one bin [0, 1] → [0, 1] with δ_k = 0.01, δ_{k+1} = 10; some y below the bin makes b² − 4ac < 0
      const dk = 0.01
      const dkp = 10
      const disc = (dy: number) => {
        const a = 1 - dk + dy * (dkp + dk - 2)
        const b = dk - dy * (dkp + dk - 2)
        return b * b + 4 * a * dy
      }
      let dy = -0.001
      while (disc(dy) >= 0 && dy > -1) dy -= 0.001
      expect(disc(dy)).toBeLessThan(0)
      const one = (v: number) => tensor([v], [1], { dtype: 'float64' })
      expectCode(() => rationalQuadratic(one(dy), one(0), one(1), one(0), one(1), one(dk), one(dkp), true), 'ERR_ARGUMENT')
      expect(() => rationalQuadratic(one(dy), one(0), one(1), one(0), one(1), one(dk), one(dkp), true)).toThrow(/Discriminant must be positive/)
      // inside the bin it inverts the forward map
      const fwd = rationalQuadratic(one(0.3), one(0), one(1), one(0), one(1), one(dk), one(dkp), false)
      const inv = rationalQuadratic(fwd.out, one(0), one(1), one(0), one(1), one(dk), one(dkp), true)
      expect(Math.abs(inv.out.item() - 0.3)).toBeLessThan(1e-15)
      expect(Math.abs(inv.logJac.item() - fwd.logJac.item())).toBeLessThan(1e-13)
    })
  })
  test('the too-many-bins message names the bins and domain', () => {
    try {
      new RationalQuadraticSpline([[4]], { subnetConstructor: net, bins: 70 })
      throw new Error('no error')
    } catch (e) {
      expect(e).toBeInstanceOf(InnflowError)
      expect((e as Error).message).toMatch(/^RationalQuadraticSpline: 70 bins of size 0\.1 are too large for domain -3 to 3/)
    }
  })
  test('shapes: conditions, inputs and subnet outputs are ERR_SHAPE', () => {
    expectCode(() => new RationalQuadraticSpline([[4, 2, 2]], { subnetConstructor: convNet(), dimsC: [[1, 3, 2]] }), 'ERR_SHAPE')
    const m = new RationalQuadraticSpline([[4]], { subnetConstructor: net })
    expectCode(() => m.forward([tensor(randomValues(10, 1), [2, 5], { dtype: 'float64' })]), 'ERR_SHAPE')
    expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4], { dtype: 'float64' })], [tensor([1, 2], [2, 1], { dtype: 'float64' })]), 'ERR_ARGUMENT')
    const bad = new RationalQuadraticSpline([[4]], { subnetConstructor: (cIn: number) => new nn.Linear(cIn, 3) })
    expectCode(() => bad.forward([tensor(randomValues(8, 1), [2, 4], { dtype: 'float64' })]), 'ERR_SHAPE')
  })
})

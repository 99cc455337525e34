import { manualSeed, modules, nn, noGrad, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { core } from '../../lib/binding'
import { expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'
import { RefOptions, refDefaults, refApply } from './spline-reference'

const { ElementwiseRationalQuadraticSpline } = modules

// ------------------------------------------------------------------------------------------------------
// The reference spline is in spline-reference.ts.

// ------------------------------------------------------------------------------------------------------

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

/** Overwrites a parameter with values (keeping the tensor, so the module sees them). */
function setValues(t: Tensor, values: number[]): void {
  noGrad(() => tidy(() => core.copyInto(t.handle, tensor(values, [...t.shape], { dtype: t.dtype }).handle)))
}

/** The raw parameters of an unconditional module repeated over a batch: (B, C·P, *S). */
const repeated = (p: Tensor, batch: number): Tensor => {
  const v = Array.from(p.toArray())
  return tensor(Array.from({ length: batch }, () => v).flat(), [batch, ...p.shape], { dtype: 'float64' })
}

const mlp = (width = 6, gain = 1) => (cIn: number, cOut: number): nn.Module => {
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

/** A module with random (non-identity) spline parameters in [-lo, hi]. */
function randomised(dims: number[], opts: Record<string, unknown>, seed: number, amp = 1.5): InstanceType<typeof ElementwiseRationalQuadraticSpline> {
  const m = new ElementwiseRationalQuadraticSpline([dims], opts)
  const p = m.splineParameters as Tensor
  setValues(p, randomValues(p.size, seed, -amp, amp))
  return m
}

beforeAll(() => setDefaultDtype('float64'))
afterAll(() => setDefaultDtype('float32'))

describe('ElementwiseRationalQuadraticSpline: forward and reverse against a float64 reference', () => {
  const cases: { name: string; dims: number[]; batch: number; o: Partial<RefOptions>; opts: Record<string, unknown> }[] = [
    { name: '1-D, default options', dims: [3], batch: 6, o: {}, opts: {} },
    { name: '1-D, 2 bins', dims: [4], batch: 5, o: { bins: 2 }, opts: { bins: 2 } },
    { name: '1-D, 1 bin', dims: [2], batch: 5, o: { bins: 1 }, opts: { bins: 1 } },
    { name: 'image (2, 3, 2), 5 bins', dims: [2, 3, 2], batch: 3, o: { bins: 5 }, opts: { bins: 5 } },
    { name: 'image, identity tails and clamping', dims: [2, 2, 2], batch: 3, o: { bins: 4, identity: true, dc: 2.5 }, opts: { bins: 4, identityTails: true, domainClamping: 2.5 } },
    { name: '1-D, domain clamping', dims: [3], batch: 6, o: { bins: 6, dc: 2 }, opts: { bins: 6, domainClamping: 2 } },
    {
      name: '1-D, custom domain and min sizes',
      dims: [3],
      batch: 6,
      o: { bins: 4, domain: [0, 4, -1, 1], minW: 0.3, minH: 0.05 },
      opts: { bins: 4, defaultDomain: [0, 4, -1, 1], minBinSizes: [0.3, 0.05] },
    },
  ]
  for (const k of cases)
    test(k.name, () => {
      tidy(() => {
        const o = { ...refDefaults, ...k.o }
        const m = randomised(k.dims, k.opts, 21)
        const x = tensor(randomValues(k.batch * k.dims.reduce((a, b) => a * b, 1), 3, -5, 5), [k.batch, ...k.dims], { dtype: 'float64' })
        const raw = repeated(m.splineParameters as Tensor, k.batch)
        const [[z], j] = noGrad(() => m.forward([x]))
        const ref = refApply(x, raw, o, false)
        expect(maxAbsDiff(z.toArray(), ref.y)).toBeLessThan(1e-12)
        expect(maxAbsDiff((j as Tensor).toArray(), ref.logDet)).toBeLessThan(1e-11)
        expect(ref.inside).toBeGreaterThan(0)
        expect(ref.inside).toBeLessThan(x.size)
        const [[back], jr] = noGrad(() => m.forward([z], [], true))
        const refRev = refApply(z, raw, o, true)
        expect(maxAbsDiff(back.toArray(), refRev.y)).toBeLessThan(1e-10)
        expect(maxAbsDiff(back.toArray(), x.toArray())).toBeLessThan(1e-10)
        expect(maxAbsDiff((jr as Tensor).toArray(), refRev.logDet)).toBeLessThan(1e-9)
      })
    })

  test('conditional: the subnet of the concatenated conditions gives the parameters', () => {
    tidy(() => {
      manualSeed(5)
      const o = { ...refDefaults, bins: 3 }
      const m = new ElementwiseRationalQuadraticSpline([[3]], { subnetConstructor: mlp(), bins: 3, dimsC: [[2], [1]] })
      const batch = 5
      const x = tensor(randomValues(batch * 3, 7, -5, 5), [batch, 3], { dtype: 'float64' })
      const c1v = randomValues(batch * 2, 8)
      const c2v = randomValues(batch, 9)
      const c = [tensor(c1v, [batch, 2], { dtype: 'float64' }), tensor(c2v, [batch, 1], { dtype: 'float64' })]
      const cc = tensor(Array.from({ length: batch }, (_, b) => [c1v[2 * b], c1v[2 * b + 1], c2v[b]]).flat(), [batch, 3], { dtype: 'float64' })
      const raw = noGrad(() => (m.subnet as nn.Module).forward(cc) as Tensor)
      const [[z], j] = noGrad(() => m.forward([x], c))
      const ref = refApply(x, raw, o, false)
      expect(maxAbsDiff(z.toArray(), ref.y)).toBeLessThan(1e-12)
      expect(maxAbsDiff((j as Tensor).toArray(), ref.logDet)).toBeLessThan(1e-11)
      expect(ref.inside).toBeGreaterThan(0)
      expect(ref.inside).toBeLessThan(x.size)
    })
  })
})

describe('ElementwiseRationalQuadraticSpline: invertible-module checks (non-identity parameters, points inside and outside)', () => {
  test('1-D, 10 bins (default)', () => {
    checkInvertibleModule(() => randomised([3], {}, 31), { inputs: [[2, 3]], range: [-5, 5] })
  })
  test('1-D, 3 bins, identity tails', () => {
    checkInvertibleModule(() => randomised([4], { bins: 3, identityTails: true }, 32), { inputs: [[3, 4]], range: [-4, 4] })
  })
  test('image (3, 2, 2), 4 bins, domain clamping', () => {
    checkInvertibleModule(() => randomised([3, 2, 2], { bins: 4, domainClamping: 2.5 }, 33), { inputs: [[2, 3, 2, 2]], range: [-4, 4] })
  })
  test('1-D, 1 bin', () => {
    checkInvertibleModule(() => randomised([3], { bins: 1 }, 34), { inputs: [[3, 3]], range: [-5, 5] })
  })
  test('conditional 1-D (two conditions)', () => {
    manualSeed(35)
    checkInvertibleModule(() => new ElementwiseRationalQuadraticSpline([[3]], { subnetConstructor: mlp(4), bins: 3, dimsC: [[2], [1]] }), {
      inputs: [[3, 3]],
      conditions: [[3, 2], [3, 1]],
      range: [-5, 5],
    })
  })
  test('conditional image with a conv subnet', () => {
    manualSeed(36)
    checkInvertibleModule(() => new ElementwiseRationalQuadraticSpline([[2, 2, 2]], { subnetConstructor: convNet(3), bins: 3, dimsC: [[1, 2, 2]] }), {
      inputs: [[2, 2, 2, 2]],
      conditions: [[2, 1, 2, 2]],
      range: [-4, 4],
    })
  })
})

describe('ElementwiseRationalQuadraticSpline: structure and defaults', () => {
  test('unconditional: spline_parameters (C·P, *spatial) zeros, then the buffers; identity at init', () => {
    const m = new ElementwiseRationalQuadraticSpline([[3, 2, 4]])
    expect(Object.keys(m.stateDict())).toEqual(['spline_parameters', 'bins', 'min_bin_sizes', 'default_domain', 'identity_tails', 'default_width'])
    const p = m.splineParameters as Tensor
    expect(p.shape).toEqual([3 * 31, 2, 4])
    expect(p.requiresGrad).toBe(true)
    expect(Array.from(p.toArray()).every((v) => v === 0)).toBe(true)
    expect(m.numParameters).toBe(31)
    const x = tensor(randomValues(2 * 24, 1, -6, 6), [2, 3, 2, 4], { dtype: 'float64' })
    const [[z], j] = noGrad(() => m.forward([x]))
    expect(maxAbsDiff(z.toArray(), x.toArray())).toBeLessThan(1e-12)
    expect(maxAbsDiff((j as Tensor).toArray(), [0, 0])).toBeLessThan(1e-12)
    expect(m.outputDims([[3, 2, 4]])).toEqual([[3, 2, 4]])
    expect(new ElementwiseRationalQuadraticSpline([[2]], { identityTails: true, bins: 4 }).splineParameters?.shape).toEqual([2 * 12])
  })
  test('conditional: subnet (condition channels → C·P) instead of spline_parameters', () => {
    const calls: [number, number][] = []
    const m = new ElementwiseRationalQuadraticSpline([[3]], {
      dimsC: [[2], [4]],
      bins: 5,
      subnetConstructor: (cIn: number, cOut: number) => {
        calls.push([cIn, cOut])
        return mlp()(cIn, cOut)
      },
    })
    expect(calls).toEqual([[6, 3 * 16]])
    expect(m.splineParameters).toBeNull()
    expect(Object.keys(m.stateDict())).toEqual(['bins', 'min_bin_sizes', 'default_domain', 'identity_tails', 'default_width', 'subnet.0.weight', 'subnet.0.bias', 'subnet.2.weight', 'subnet.2.bias'])
  })
  test('float32 agrees with float64 (1e-5 relative)', () => {
    const m64 = randomised([3], { bins: 4 }, 41)
    setDefaultDtype('float32')
    try {
      const m32 = new ElementwiseRationalQuadraticSpline([[3]], { bins: 4 })
      m32.loadStateDict(Object.fromEntries(Object.entries(m64.stateDict()).map(([k, v]) => [k, v.to({ dtype: 'float32' })])))
      const xs = randomValues(18, 8, -5, 5)
      const [[z64], j64] = noGrad(() => m64.forward([tensor(xs, [6, 3], { dtype: 'float64' })]))
      const [[z32], j32] = noGrad(() => m32.forward([tensor(xs, [6, 3], { dtype: 'float32' })]))
      const rel = (a: ArrayLike<number>, b: ArrayLike<number>) => maxAbsDiff(a, b) / Math.max(...Array.from(b).map(Math.abs))
      expect(rel(z32.toArray(), z64.toArray())).toBeLessThan(1e-5)
      expect(rel((j32 as Tensor).toArray(), (j64 as Tensor).toArray())).toBeLessThan(1e-5)
    } finally {
      setDefaultDtype('float64')
    }
  })
})

describe('ElementwiseRationalQuadraticSpline: errors', () => {
  test('bad options', () => {
    expectCode(() => new ElementwiseRationalQuadraticSpline([[3]], { bins: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new ElementwiseRationalQuadraticSpline([[3]], { minBinSizes: [0.1] }), 'ERR_ARGUMENT')
    expectCode(() => new ElementwiseRationalQuadraticSpline([[3]], { defaultDomain: [-1, 1, -1] }), 'ERR_ARGUMENT')
    expectCode(() => new ElementwiseRationalQuadraticSpline([[3]], { bins: 40, defaultDomain: [-1, 1, -1, 1] }), 'ERR_ARGUMENT')
    expectCode(() => new ElementwiseRationalQuadraticSpline([[3]], { parameterCounts: { deltas: 2 } } as never), 'ERR_ARGUMENT')
    expectCode(() => new ElementwiseRationalQuadraticSpline([[3]], { splitLen: 0.5 } as never), 'ERR_ARGUMENT')
    expectCode(() => new ElementwiseRationalQuadraticSpline([[3]], { dimsC: [[2]] }), 'ERR_ARGUMENT') // conditional needs a subnet
    expectCode(() => new ElementwiseRationalQuadraticSpline([[3], [3]], {}), 'ERR_ARGUMENT')
  })
  test('shapes', () => {
    expectCode(() => new ElementwiseRationalQuadraticSpline([[3, 2, 2]], { dimsC: [[1, 2, 3]], subnetConstructor: convNet() }), 'ERR_SHAPE')
    const m = new ElementwiseRationalQuadraticSpline([[3]])
    expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4], { dtype: 'float64' })]), 'ERR_SHAPE')
    const bad = new ElementwiseRationalQuadraticSpline([[3]], { dimsC: [[2]], subnetConstructor: (cIn: number) => new nn.Linear(cIn, 5) })
    expectCode(() => bad.forward([tensor(randomValues(6, 1), [2, 3], { dtype: 'float64' })], [tensor(randomValues(4, 2), [2, 2], { dtype: 'float64' })]), 'ERR_SHAPE')
    expectCode(() => bad.forward([tensor(randomValues(6, 1), [2, 3], { dtype: 'float64' })], [tensor(randomValues(6, 2), [2, 3], { dtype: 'float64' })]), 'ERR_SHAPE')
  })
})

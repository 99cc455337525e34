import { manualSeed, modules, nn, noGrad, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { core } from '../../lib/binding'
import { expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { ElementwiseRationalQuadraticSpline } = modules

// ------------------------------------------------------------------------------------------------------
// (The same independent reference as in rational-quadratic-spline.test.ts; test files cannot share code.)
// An independent float64 reference of one element's spline (FrEIA's constraints, Durkan et al. 2019 eq. 4
// for the map and eq. 5 for its slope; the inverse by bisection on the forward map, not by the quadratic).

interface RefOptions {
  bins: number
  minW: number
  minH: number
  domain: number[]
  identity: boolean
  dc: number | null
}
const refDefaults: RefOptions = { bins: 10, minW: 0.1, minH: 0.1, domain: [-3, 3, -3, 3], identity: false, dc: null }

const softplus = (z: number): number => (z > 20 ? z : Math.log1p(Math.exp(z)))

function refSpline(raw: number[], o: RefOptions): { kx: number[]; ky: number[]; d: number[]; scale: number; shift: number } {
  const K = o.bins
  const rw = raw.slice(0, K)
  const rh = raw.slice(K, 2 * K)
  let w: number[], h: number[], left: number, bottom: number, rd: number[]
  if (o.identity) {
    let T = (o.domain[1] - o.domain[0]) * softplus(raw[2 * K] + Math.log(Math.E - 1))
    if (o.dc !== null) T = o.dc * Math.tanh(T / o.dc)
    const soft = (r: number[]) => {
      const e = r.map(Math.exp)
      const s = e.reduce((a, b) => a + b, 0)
      return e.map((v) => (T * v) / s)
    }
    w = soft(rw)
    h = soft(rh)
    left = bottom = -T / 2
    rd = raw.slice(2 * K + 1)
  } else {
    bottom = raw[2 * K] + o.domain[2]
    left = raw[2 * K + 1] + o.domain[0]
    const xs = Math.log(Math.exp((o.domain[1] - o.domain[0]) / K - o.minW) - 1)
    const ys = Math.log(Math.exp((o.domain[3] - o.domain[2]) / K - o.minH) - 1)
    w = rw.map((r) => o.minW + softplus(r + xs))
    h = rh.map((r) => o.minH + softplus(r + ys))
    if (o.dc !== null) {
      const dc = o.dc
      const W = w.reduce((a, b) => a + b, 0)
      const H = h.reduce((a, b) => a + b, 0)
      const rx = (dc * Math.tanh(W / dc)) / W
      const ry = (dc * Math.tanh(H / dc)) / H
      w = w.map((v) => v * rx)
      h = h.map((v) => v * ry)
      left *= rx
      bottom *= ry
    }
    rd = raw.slice(2 * K + 2)
  }
  const kx = [left]
  const ky = [bottom]
  for (let k = 0; k < K; k++) {
    kx.push(kx[k] + w[k])
    ky.push(ky[k] + h[k])
  }
  const scale = h.reduce((a, b) => a + b, 0) / w.reduce((a, b) => a + b, 0)
  const d = [scale, ...rd.map((r) => softplus(r + Math.log(Math.E - 1))), scale]
  return { kx, ky, d, scale, shift: bottom - scale * left }
}

/** Forward map of one element: y and log dy/dx. */
function refForward(raw: number[], x: number, o: RefOptions): { y: number; lj: number; inside: boolean } {
  const { kx, ky, d, scale, shift } = refSpline(raw, o)
  const K = o.bins
  if (!(kx[0] < x && x <= kx[K])) return { y: scale * x + shift, lj: Math.log(scale), inside: false }
  let k = 0
  while (!(x <= kx[k + 1])) k++ // the bin (kx[k], kx[k+1]] holding x
  const wk = kx[k + 1] - kx[k]
  const hk = ky[k + 1] - ky[k]
  const s = hk / wk
  const t = (x - kx[k]) / wk
  const den = s + (d[k + 1] + d[k] - 2 * s) * t * (1 - t)
  const y = ky[k] + (hk * (s * t * t + d[k] * t * (1 - t))) / den
  const slope = (s * s * (d[k + 1] * t * t + 2 * s * t * (1 - t) + d[k] * (1 - t) * (1 - t))) / (den * den)
  return { y, lj: Math.log(slope), inside: true }
}

/** Inverse map of one element by bisection on refForward: x and log dx/dy. */
function refInverse(raw: number[], y: number, o: RefOptions): { x: number; lj: number; inside: boolean } {
  const { kx, ky, scale, shift } = refSpline(raw, o)
  const K = o.bins
  if (!(ky[0] < y && y <= ky[K])) return { x: (y - shift) / scale, lj: -Math.log(scale), inside: false }
  let lo = kx[0]
  let hi = kx[K]
  for (let i = 0; i < 200 && hi - lo > 0; i++) {
    const mid = 0.5 * (lo + hi)
    if (mid === lo || mid === hi) break
    if (refForward(raw, mid, o).y < y) lo = mid
    else hi = mid
  }
  const x = 0.5 * (lo + hi)
  return { x, lj: -refForward(raw, x, o).lj, inside: true }
}

/**
 * Applies the reference to a (B, n, *S) input given raw parameters (B, n·P, *S); returns the output and
 * the per-sample log-det, plus how many elements were inside the domain.
 */
function refApply(x: Tensor, raw: Tensor, o: RefOptions, rev: boolean): { y: number[]; logDet: number[]; inside: number } {
  const [B, n] = x.shape
  const S = x.size / (B * n)
  const P = raw.shape[1] / n
  const xv = x.toArray()
  const rv = raw.toArray()
  const y = new Array<number>(x.size)
  const logDet = new Array<number>(B).fill(0)
  let inside = 0
  for (let b = 0; b < B; b++)
    for (let c = 0; c < n; c++)
      for (let s = 0; s < S; s++) {
        const i = (b * n + c) * S + s
        const r = Array.from({ length: P }, (_, p) => rv[(b * n * P + c * P + p) * S + s])
        const res = rev ? refInverse(r, xv[i], o) : refForward(r, xv[i], o)
        y[i] = rev ? (res as { x: number }).x : (res as { y: number }).y
        logDet[b] += res.lj
        if (res.inside) inside++
      }
  return { y, logDet, inside }
}

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

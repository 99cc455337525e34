import { manualSeed, modules, nn, noGrad, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { expectCode, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { LinearSpline } = modules

// An independent float64 reference of one element's piecewise-linear spline with FrEIA's constraints.
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

function knots(raw: number[], o: RefOptions): { kx: number[]; ky: number[] } {
  const K = o.bins
  let w: number[], h: number[], left: number, bottom: number
  if (o.identity) {
    let T = (o.domain[1] - o.domain[0]) * softplus(raw[2 * K] + Math.log(Math.E - 1))
    if (o.dc !== null) T = o.dc * Math.tanh(T / o.dc)
    const soft = (r: number[]) => {
      const e = r.map(Math.exp)
      const s = e.reduce((a, b) => a + b, 0)
      return e.map((v) => (T * v) / s)
    }
    w = soft(raw.slice(0, K))
    h = soft(raw.slice(K, 2 * K))
    left = bottom = -T / 2
  } else {
    bottom = raw[2 * K] + o.domain[2]
    left = raw[2 * K + 1] + o.domain[0]
    const xs = Math.log(Math.exp((o.domain[1] - o.domain[0]) / K - o.minW) - 1)
    const ys = Math.log(Math.exp((o.domain[3] - o.domain[2]) / K - o.minH) - 1)
    w = raw.slice(0, K).map((r) => o.minW + softplus(r + xs))
    h = raw.slice(K, 2 * K).map((r) => o.minH + softplus(r + ys))
    if (o.dc !== null) {
      const dc = o.dc
      const rx = (dc * Math.tanh(w.reduce((a, b) => a + b, 0) / dc)) / w.reduce((a, b) => a + b, 0)
      const ry = (dc * Math.tanh(h.reduce((a, b) => a + b, 0) / dc)) / h.reduce((a, b) => a + b, 0)
      w = w.map((v) => v * rx)
      h = h.map((v) => v * ry)
      left *= rx
      bottom *= ry
    }
  }
  const kx = [left]
  const ky = [bottom]
  for (let k = 0; k < K; k++) {
    kx.push(kx[k] + w[k])
    ky.push(ky[k] + h[k])
  }
  return { kx, ky }
}

/** One element, either direction: the output and log|d out/d in|, and whether it was inside. */
function refElement(raw: number[], v: number, o: RefOptions, rev: boolean): { out: number; lj: number; inside: boolean } {
  const { kx, ky } = knots(raw, o)
  const K = o.bins
  const [from, to] = rev ? [ky, kx] : [kx, ky]
  if (!(from[0] < v && v <= from[K])) {
    // the affine tail through (left, bottom) with slope Σh/Σw, in the same direction
    const slope = (to[K] - to[0]) / (from[K] - from[0])
    return { out: to[0] + slope * (v - from[0]), lj: Math.log(slope), inside: false }
  }
  let k = 0
  while (!(v <= from[k + 1])) k++
  const slope = (to[k + 1] - to[k]) / (from[k + 1] - from[k])
  return { out: to[k] + slope * (v - from[k]), lj: Math.log(slope), inside: true }
}

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
        const res = refElement(r, xv[i], o, rev)
        y[i] = res.out
        logDet[b] += res.lj
        if (res.inside) inside++
      }
  return { y, logDet, inside }
}

/** [a | b] for 2-D tensors, in plain JS (so the reference does not lean on ops.cat). */
function rowsCat(a: Tensor, b: Tensor): Tensor {
  const [B, n] = a.shape
  const m = b.shape[1]
  const av = a.toArray()
  const bv = b.toArray()
  const out: number[] = []
  for (let i = 0; i < B; i++) out.push(...Array.from(av.subarray(i * n, (i + 1) * n)), ...Array.from(bv.subarray(i * m, (i + 1) * m)))
  return tensor(out, [B, n + m], { dtype: 'float64' })
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
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

beforeAll(() => setDefaultDtype('float64'))
afterAll(() => setDefaultDtype('float32'))

describe('LinearSpline: forward and reverse against a float64 reference', () => {
  const cases: { name: string; dims: number[]; o: Partial<RefOptions>; opts: Record<string, unknown>; cond?: number[] }[] = [
    { name: 'default options', dims: [4], o: {}, opts: {} },
    { name: '3 bins, odd channels', dims: [5], o: { bins: 3 }, opts: { bins: 3 } },
    { name: 'identity tails, clamping', dims: [4], o: { bins: 5, identity: true, dc: 2 }, opts: { bins: 5, identityTails: true, domainClamping: 2 } },
    { name: 'custom domain, clamping', dims: [4], o: { bins: 4, domain: [-2, 2, 0, 3], dc: 3 }, opts: { bins: 4, defaultDomain: [-2, 2, 0, 3], domainClamping: 3 } },
    { name: 'with a condition', dims: [3], o: { bins: 6 }, opts: { bins: 6 }, cond: [2] },
  ]
  for (const k of cases)
    test(k.name, () => {
      tidy(() => {
        manualSeed(12)
        const o = { ...refDefaults, ...k.o }
        const m = new LinearSpline([k.dims], { ...k.opts, subnetConstructor: mlp(), dimsC: k.cond ? [k.cond] : undefined })
        const batch = 5
        const x = tensor(randomValues(batch * k.dims[0], 3, -5, 5), [batch, ...k.dims], { dtype: 'float64' })
        const c = k.cond ? [tensor(randomValues(batch * k.cond[0], 4), [batch, ...k.cond], { dtype: 'float64' })] : []
        const withC = (t: Tensor) => (c.length ? rowsCat(t, c[0]) : t)
        const s1 = m.splitLen1
        const s2 = m.splitLen2
        const run = (v: Tensor, rev: boolean) =>
          noGrad(() => {
            const a = v.narrow(1, 0, s1)
            const b = v.narrow(1, s1, s2)
            if (!rev) {
              const r1 = refApply(a, m.subnet1.forward(withC(b)) as Tensor, o, false)
              const y1 = tensor(r1.y, [batch, s1], { dtype: 'float64' })
              const r2 = refApply(b, m.subnet2.forward(withC(y1)) as Tensor, o, false)
              const z = rowsCat(y1, tensor(r2.y, [batch, s2], { dtype: 'float64' })).toArray()
              return { z, logDet: r1.logDet.map((q, i) => q + r2.logDet[i]), inside: r1.inside + r2.inside }
            }
            const r2 = refApply(b, m.subnet2.forward(withC(a)) as Tensor, o, true)
            const y2 = tensor(r2.y, [batch, s2], { dtype: 'float64' })
            const r1 = refApply(a, m.subnet1.forward(withC(y2)) as Tensor, o, true)
            const z = rowsCat(tensor(r1.y, [batch, s1], { dtype: 'float64' }), y2).toArray()
            return { z, logDet: r1.logDet.map((q, i) => q + r2.logDet[i]), inside: r1.inside + r2.inside }
          })
        const [[z], j] = noGrad(() => m.forward([x], c))
        const ref = run(x, false)
        expect(maxAbsDiff(z.toArray(), ref.z)).toBeLessThan(1e-12)
        expect(maxAbsDiff((j as Tensor).toArray(), ref.logDet)).toBeLessThan(1e-11)
        expect(ref.inside).toBeGreaterThan(0)
        expect(ref.inside).toBeLessThan(x.size)
        const [[back], jr] = noGrad(() => m.forward([z], c, true))
        const refRev = run(z, true)
        expect(maxAbsDiff(back.toArray(), refRev.z)).toBeLessThan(1e-11)
        expect(maxAbsDiff(back.toArray(), x.toArray())).toBeLessThan(1e-11)
        expect(maxAbsDiff((jr as Tensor).toArray(), refRev.logDet)).toBeLessThan(1e-11)
      })
    })
})

describe('LinearSpline: invertible-module checks (non-identity subnets, points inside and outside the domain)', () => {
  test('1-D, 10 bins (default)', () => {
    manualSeed(1)
    checkInvertibleModule(() => new LinearSpline([[4]], { subnetConstructor: mlp(4) }), { inputs: [[3, 4]], range: [-5, 5] })
  })
  test('1-D odd channels, 2 bins, identity tails, condition', () => {
    manualSeed(2)
    checkInvertibleModule(() => new LinearSpline([[3]], { subnetConstructor: mlp(4), bins: 2, identityTails: true, dimsC: [[2]] }), {
      inputs: [[3, 3]],
      conditions: [[3, 2]],
      range: [-4, 4],
    })
  })
  test('image (2, 2, 2), 3 bins, clamping', () => {
    manualSeed(3)
    checkInvertibleModule(() => new LinearSpline([[2, 2, 2]], { subnetConstructor: convNet(3), bins: 3, domainClamping: 2.5 }), { inputs: [[2, 2, 2, 2]], range: [-4, 4] })
  })
})

describe('LinearSpline: structure, defaults and errors', () => {
  test('P = 2K + 2 (2K + 1 with identity tails); keys as FrEIA', () => {
    const calls: [number, number][] = []
    const rec = (cIn: number, cOut: number) => {
      calls.push([cIn, cOut])
      return mlp()(cIn, cOut)
    }
    const m = new LinearSpline([[4]], { subnetConstructor: rec })
    new LinearSpline([[3]], { subnetConstructor: rec, identityTails: true, bins: 4 })
    expect(calls).toEqual([[2, 2 * 22], [2, 2 * 22], [1, 2 * 9], [2, 1 * 9]])
    expect(m.splineBase.numParameters).toBe(22)
    expect(Object.keys(m.stateDict()).slice(0, 5)).toEqual(['spline_base.bins', 'spline_base.min_bin_sizes', 'spline_base.default_domain', 'spline_base.identity_tails', 'spline_base.default_width'])
    expect(Object.keys(m.stateDict()).slice(5).every((k) => /^subnet[12]\./.test(k))).toBe(true)
    expect(m.outputDims([[4]])).toEqual([[4]])
  })
  test('zero subnet outputs give the identity', () => {
    const zeroNet = (cIn: number, cOut: number) => {
      const l = new nn.Linear(cIn, cOut)
      nn.init.zeros_(l.weight)
      nn.init.zeros_(l.bias as Tensor)
      return l
    }
    for (const opts of [{}, { identityTails: true, bins: 3 }]) {
      const m = new LinearSpline([[4]], { subnetConstructor: zeroNet, ...opts })
      const x = tensor(randomValues(24, 5, -6, 6), [6, 4], { dtype: 'float64' })
      const [[z], j] = noGrad(() => m.forward([x]))
      expect(maxAbsDiff(z.toArray(), x.toArray())).toBeLessThan(1e-12)
      expect(maxAbsDiff((j as Tensor).toArray(), [0, 0, 0, 0, 0, 0])).toBeLessThan(1e-12)
    }
  })
  test('bad options', () => {
    const net = mlp()
    expectCode(() => new LinearSpline([[4]], {}), 'ERR_ARGUMENT')
    expectCode(() => new LinearSpline([[4]], { subnetConstructor: net, bins: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new LinearSpline([[4]], { subnetConstructor: net, parameterCounts: { deltas: 3 } } as never), 'ERR_ARGUMENT')
    expectCode(() => new LinearSpline([[4]], { subnetConstructor: net, clamp: 2 } as never), 'ERR_ARGUMENT')
    expectCode(() => new LinearSpline([[4]], { subnetConstructor: net, min_bin_sizes: [0, 0] } as never), 'ERR_ARGUMENT')
    expectCode(() => new LinearSpline([[4]], { subnetConstructor: net, minBinSizes: [0.1, -1] }), 'ERR_ARGUMENT')
    expectCode(() => new LinearSpline([[3]], { subnetConstructor: net, splitLen: 3 }), 'ERR_ARGUMENT')
    expectCode(() => new LinearSpline([[3, 2]], { subnetConstructor: net, dimsC: [[1, 3]] }), 'ERR_SHAPE')
  })
})

/**
 * An independent float64 reference of one element's rational-quadratic spline (FrEIA's constraints, Durkan
 * et al. 2019 eq. 4 for the map and eq. 5 for its slope; the inverse by bisection on the forward map, not by the
 * quadratic), shared by the RationalQuadraticSpline and ElementwiseRationalQuadraticSpline tests.
 */
import { Tensor } from '../../lib'

export interface RefOptions {
  bins: number
  minW: number
  minH: number
  domain: number[]
  identity: boolean
  dc: number | null
}
export const refDefaults: RefOptions = { bins: 10, minW: 0.1, minH: 0.1, domain: [-3, 3, -3, 3], identity: false, dc: null }

export const softplus = (z: number): number => (z > 20 ? z : Math.log1p(Math.exp(z)))

export function refSpline(raw: number[], o: RefOptions): { kx: number[]; ky: number[]; d: number[]; scale: number; shift: number } {
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
export function refForward(raw: number[], x: number, o: RefOptions): { y: number; lj: number; inside: boolean } {
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
export function refInverse(raw: number[], y: number, o: RefOptions): { x: number; lj: number; inside: boolean } {
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
export function refApply(x: Tensor, raw: Tensor, o: RefOptions, rev: boolean): { y: number[]; logDet: number[]; inside: number } {
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

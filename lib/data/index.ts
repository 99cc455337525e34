/**
 * Toy densities and the 8×8 digits set. The 2-D generators follow shared/bench/WORKLOADS.md exactly and
 * draw from innflow's seeded generator, so `manualSeed(s)` makes them reproducible.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import { DType } from '../dtype'
import { argumentError, InnflowError } from '../errors'
import { rand, randn, tensor, Tensor } from '../tensor'
import { tidy } from '../scope'

/** Options of the 2-D generators. */
export interface ToyOptions {
  dtype?: DType
}

function checkCount(fn: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw argumentError(fn, 'n', 'a positive integer', n)
  return n
}

/** Draws k uniform and k normal numbers from the native generator as plain arrays. */
function draws(uniforms: number, normals: number): { u: Float64Array; z: Float64Array } {
  return tidy(() => ({
    u: uniforms > 0 ? (rand([uniforms], { dtype: 'float64', device: 'cpu' }).toArray() as Float64Array) : new Float64Array(0),
    z: normals > 0 ? (randn([normals], { dtype: 'float64', device: 'cpu' }).toArray() as Float64Array) : new Float64Array(0),
  }))
}

/**
 * Two moons: t ~ U(0, π); with probability 1/2 the point (cos t, sin t), else (1 − cos t, 0.5 − sin t);
 * plus N(0, noise²) per coordinate; then × 2 + (−1, −0.2). Entropy with noise 0.1: 2.390 nats.
 */
export function moons(n: number, opts: ToyOptions & { noise?: number } = {}): Tensor {
  checkCount('moons', n)
  const noise = opts.noise ?? 0.1
  if (typeof noise !== 'number' || !(noise >= 0)) throw argumentError('moons', 'noise', 'a non-negative number', noise)
  const { u, z } = draws(2 * n, 2 * n)
  const out = new Float64Array(2 * n)
  for (let i = 0; i < n; i++) {
    const t = Math.PI * u[2 * i]
    const upper = u[2 * i + 1] < 0.5
    const x = upper ? Math.cos(t) : 1 - Math.cos(t)
    const y = upper ? Math.sin(t) : 0.5 - Math.sin(t)
    out[2 * i] = (x + noise * z[2 * i]) * 2 - 1
    out[2 * i + 1] = (y + noise * z[2 * i + 1]) * 2 - 0.2
  }
  return tensor(out, [n, 2], { dtype: opts.dtype })
}

/** Equal mixture of 8 Gaussians centred at 4·(cos kπ/4, sin kπ/4)/1.414 with std 0.5/1.414. Entropy 2.833 nats. */
export function eightGaussians(n: number, opts: ToyOptions = {}): Tensor {
  checkCount('eightGaussians', n)
  const { u, z } = draws(n, 2 * n)
  const out = new Float64Array(2 * n)
  for (let i = 0; i < n; i++) {
    const k = Math.min(7, Math.floor(u[i] * 8))
    out[2 * i] = (4 * Math.cos((k * Math.PI) / 4) + 0.5 * z[2 * i]) / 1.414
    out[2 * i + 1] = (4 * Math.sin((k * Math.PI) / 4) + 0.5 * z[2 * i + 1]) / 1.414
  }
  return tensor(out, [n, 2], { dtype: opts.dtype })
}

/**
 * Checkerboard: a ~ U(−2, 2), b ~ U(0, 1) − 2·Bernoulli(1/2), b += floor(a) mod 2, point 2·(a, b)
 * (uniform over 8 squares of total area 32; entropy log 32 = 3.466 nats).
 */
export function checkerboard(n: number, opts: ToyOptions = {}): Tensor {
  checkCount('checkerboard', n)
  const { u } = draws(3 * n, 0)
  const out = new Float64Array(2 * n)
  for (let i = 0; i < n; i++) {
    const a = -2 + 4 * u[3 * i]
    let b = u[3 * i + 1] - (u[3 * i + 2] < 0.5 ? 2 : 0)
    b += ((Math.floor(a) % 2) + 2) % 2
    out[2 * i] = 2 * a
    out[2 * i + 1] = 2 * b
  }
  return tensor(out, [n, 2], { dtype: opts.dtype })
}

/** Two concentric circles (radii 3 and 1.5, chosen with probability 1/2) with N(0, 0.08²·9) noise. */
export function circles(n: number, opts: ToyOptions = {}): Tensor {
  checkCount('circles', n)
  const { u, z } = draws(2 * n, 2 * n)
  const out = new Float64Array(2 * n)
  for (let i = 0; i < n; i++) {
    const t = 2 * Math.PI * u[2 * i]
    const r = u[2 * i + 1] < 0.5 ? 1 : 0.5
    out[2 * i] = 3 * (r * Math.cos(t) + 0.08 * z[2 * i])
    out[2 * i + 1] = 3 * (r * Math.sin(t) + 0.08 * z[2 * i + 1])
  }
  return tensor(out, [n, 2], { dtype: opts.dtype })
}

/**
 * Pinwheel with 5 arms: radial N(1, 0.3²), tangential N(0, 0.05²), rotated by the arm's angle plus
 * 0.25·exp(radius) (the swirl), then × 2.
 */
export function pinwheel(n: number, opts: ToyOptions = {}): Tensor {
  checkCount('pinwheel', n)
  const arms = 5
  const { u, z } = draws(n, 2 * n)
  const out = new Float64Array(2 * n)
  for (let i = 0; i < n; i++) {
    const arm = Math.min(arms - 1, Math.floor(u[i] * arms))
    const rx = 1 + 0.3 * z[2 * i]
    const ry = 0.05 * z[2 * i + 1]
    const angle = (2 * Math.PI * arm) / arms + 0.25 * Math.exp(rx)
    out[2 * i] = 2 * (Math.cos(angle) * rx - Math.sin(angle) * ry)
    out[2 * i + 1] = 2 * (Math.sin(angle) * rx + Math.cos(angle) * ry)
  }
  return tensor(out, [n, 2], { dtype: opts.dtype })
}

/** The 8×8 handwritten digits (UCI optdigits test set, CC BY 4.0): 1797 images of 64 pixels in 0..16. */
export interface Digits {
  /** (1797, 64) pixel values 0..16. */
  images: Tensor
  /** (1797,) labels 0..9. */
  labels: Tensor
}

let digitsCache: { pixels: Float64Array; labels: Float64Array } | null = null

function readDigits(): { pixels: Float64Array; labels: Float64Array } {
  if (digitsCache) return digitsCache
  const file = path.join(__dirname, '..', '..', 'data', 'digits.csv.gz')
  const candidates = [file, path.join(__dirname, '..', '..', '..', 'data', 'digits.csv.gz')]
  const found = candidates.find((f) => fs.existsSync(f))
  if (!found) throw new InnflowError('ERR_ARGUMENT', `digits: the data file is missing (looked for ${candidates.join(', ')})`)
  const rows = zlib.gunzipSync(fs.readFileSync(found)).toString('utf8').trim().split('\n')
  const pixels = new Float64Array(rows.length * 64)
  const labels = new Float64Array(rows.length)
  rows.forEach((row, i) => {
    const v = row.split(',').map(Number)
    if (v.length !== 65) throw new InnflowError('ERR_ARGUMENT', `digits: row ${i} has ${v.length} fields, expected 65`)
    for (let k = 0; k < 64; k++) pixels[i * 64 + k] = v[k]
    labels[i] = v[64]
  })
  digitsCache = { pixels, labels }
  return digitsCache
}

/** Loads the 8×8 digits set shipped with the package. */
export function digits(opts: ToyOptions = {}): Digits {
  const { pixels, labels } = readDigits()
  return {
    images: tensor(pixels, [labels.length, 64], { dtype: opts.dtype }),
    labels: tensor(labels, [labels.length], { dtype: opts.dtype }),
  }
}

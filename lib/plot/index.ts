/**
 * Pictures of flows as PNG files, with no dependencies: scatter plots of 2-D point sets, the density of a
 * 2-D flow on a grid, and grids of images (e.g. samples of a flow on 8×8 digits).
 *
 *   plot.scatter('out/moons.png', [{ points: x, color: 'blue' }, { points: samples, color: 'red' }], { panels: true })
 *   plot.densityMap('out/density.png', flow, { range: [-3, 3], resolution: 200 })
 *   plot.imageGrid('out/digits.png', images, { rows: 10, cols: 8, scale: 4 })
 */
import { argumentError, InnflowError } from '../errors'
import { noGrad } from '../autograd/tape'
import { indexSelect } from '../ops'
import { tidy } from '../scope'
import { tensor, Tensor } from '../tensor'
import { FlowLike, isFlowLike, logLikelihood, runFlow } from '../train/objective'
import { Color, ColorMap, cycleColor, parseColor, parseColorMap } from './color'
import { Canvas, RGB } from './png'

export { Canvas, encodePng, crc32 } from './png'
export type { RGB } from './png'
export { COLORMAPS, PALETTE, parseColor } from './color'
export type { Color, ColorMap } from './color'

/**
 * A plotting range: `r` for [−r, r] on both axes, `[lo, hi]` for both axes, or `[[xlo, xhi], [ylo, yhi]]`.
 */
export type Range = number | readonly [number, number] | readonly [readonly [number, number], readonly [number, number]]

/** A resolved range. */
export interface Bounds {
  x0: number
  x1: number
  y0: number
  y1: number
}

function checkPath(fn: string, path: unknown): string {
  if (typeof path !== 'string' || path === '') throw argumentError(fn, 'path', 'a file path ending in .png', path)
  return path
}

function checkOpts(fn: string, opts: unknown, known: readonly string[]): Record<string, unknown> {
  if (opts === undefined) return {}
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw argumentError(fn, 'options', 'an options object', opts)
  for (const k of Object.keys(opts))
    if (!known.includes(k)) throw new InnflowError('ERR_ARGUMENT', `${fn}: unknown option '${k}' (known options: ${known.join(', ')})`)
  return opts as Record<string, unknown>
}

function positiveInt(fn: string, name: string, v: unknown, fallback: number, max = 1 << 14): number {
  if (v === undefined) return fallback
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max) throw argumentError(fn, name, `an integer in [1, ${max}]`, v)
  return v as number
}

const isPair = (v: unknown): v is [number, number] =>
  Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isFinite(x)) && v[0] < v[1]

/** Resolves a {@link Range}. */
export function resolveRange(fn: string, range: unknown): Bounds {
  if (typeof range === 'number' && Number.isFinite(range) && range > 0) return { x0: -range, x1: range, y0: -range, y1: range }
  if (isPair(range)) return { x0: range[0], x1: range[1], y0: range[0], y1: range[1] }
  if (Array.isArray(range) && range.length === 2 && isPair(range[0]) && isPair(range[1]))
    return { x0: range[0][0], x1: range[0][1], y0: range[1][0], y1: range[1][1] }
  throw argumentError(fn, 'options.range', 'r > 0, [lo, hi] or [[xlo, xhi], [ylo, yhi]] with lo < hi', range)
}

/** Flat [x0, y0, x1, y1, ...] coordinates of a point set given as an (n, 2) tensor, [[x, y], ...] or a flat array. */
function readPoints(fn: string, name: string, p: unknown): ArrayLike<number> {
  if (p instanceof Tensor) {
    if (p.isDisposed) throw new InnflowError('ERR_DISPOSED', `${fn}: ${name} was disposed`)
    if (p.ndim !== 2 || p.shape[1] !== 2) throw new InnflowError('ERR_SHAPE', `${fn}: ${name} must have shape (n, 2), got (${p.shape.join(', ')})`)
    return p.toArray()
  }
  if (Array.isArray(p) && p.every((q) => Array.isArray(q) && q.length === 2)) return (p as number[][]).flat()
  if ((Array.isArray(p) || ArrayBuffer.isView(p)) && (p as ArrayLike<number>).length % 2 === 0) return p as ArrayLike<number>
  throw argumentError(fn, name, 'an (n, 2) Tensor, an array of [x, y] pairs or a flat array [x0, y0, x1, y1, ...]', p)
}

/** Square bounds around all finite points, with a margin. */
function fitBounds(sets: ArrayLike<number>[]): Bounds {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity
  for (const s of sets)
    for (let i = 0; i + 1 < s.length; i += 2) {
      const x = s[i], y = s[i + 1]
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue
      if (x < x0) x0 = x
      if (x > x1) x1 = x
      if (y < y0) y0 = y
      if (y > y1) y1 = y
    }
  if (x0 > x1) return { x0: -1, x1: 1, y0: -1, y1: 1 }
  const half = Math.max(x1 - x0, y1 - y0, 1e-9) * 0.54
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2
  return { x0: cx - half, x1: cx + half, y0: cy - half, y1: cy + half }
}

/** One point set of a scatter plot. */
export interface ScatterSeries {
  /** (n, 2) Tensor, [[x, y], ...] or [x0, y0, x1, y1, ...]. */
  points: Tensor | ArrayLike<number> | readonly (readonly number[])[]
  /** Default: the next colour of the palette (blue, orange, green, red, ...). */
  color?: Color
  /** Dot radius in pixels (a square of side 2·radius + 1; default 1). */
  radius?: number
  /** Opacity 0..1 (default 0.6: dense regions look darker). */
  alpha?: number
}

/** Options of {@link scatter}. */
export interface ScatterOptions {
  /** The plotted region (default: every point, squared, with a margin). */
  range?: Range
  /** Width of a panel in pixels (default 400); the height follows the range's aspect ratio. */
  size?: number
  /** One panel per series, side by side, all with the same range (default false: all in one panel). */
  panels?: boolean
  /** Grey lines at x = 0 and y = 0 (default true). */
  axes?: boolean
}

/**
 * Writes a scatter plot of 2-D point sets as a PNG. Returns the bounds used and the image size.
 * @example plot.scatter('moons.png', [{ points: data.moons(1000), color: 'blue' }])
 */
export function scatter(path: string, series: ScatterSeries[], opts?: ScatterOptions): Bounds & { width: number; height: number } {
  const fn = 'plot.scatter'
  checkPath(fn, path)
  const o = checkOpts(fn, opts, ['range', 'size', 'panels', 'axes'])
  if (!Array.isArray(series) || series.length === 0) throw argumentError(fn, 'series', 'a non-empty array of { points, color? }', series)
  const parsed = series.map((s, i) => {
    if (s === null || typeof s !== 'object' || !('points' in s)) throw argumentError(fn, `series[${i}]`, '{ points, color?, radius?, alpha? }', s)
    const radius = s.radius ?? 1
    if (!Number.isInteger(radius) || radius < 0 || radius > 20) throw argumentError(fn, `series[${i}].radius`, 'an integer in [0, 20]', s.radius)
    const alpha = s.alpha ?? 0.6
    if (typeof alpha !== 'number' || !(alpha > 0 && alpha <= 1)) throw argumentError(fn, `series[${i}].alpha`, 'a number in (0, 1]', s.alpha)
    return {
      points: readPoints(fn, `series[${i}].points`, s.points),
      color: s.color === undefined ? cycleColor(i) : parseColor(fn, `series[${i}].color`, s.color),
      radius,
      alpha,
    }
  })
  const b = o.range === undefined ? fitBounds(parsed.map((p) => p.points)) : resolveRange(fn, o.range)
  const size = positiveInt(fn, 'options.size', o.size, 400, 4096)
  if (o.panels !== undefined && typeof o.panels !== 'boolean') throw argumentError(fn, 'options.panels', 'a boolean', o.panels)
  if (o.axes !== undefined && typeof o.axes !== 'boolean') throw argumentError(fn, 'options.axes', 'a boolean', o.axes)
  const nPanels = o.panels ? parsed.length : 1
  const height = Math.max(16, Math.min(4 * size, Math.round((size * (b.y1 - b.y0)) / (b.x1 - b.x0))))
  const canvas = new Canvas(size * nPanels, height)
  const axisColor: RGB = [215, 215, 215]
  for (let k = 0; k < nPanels; k++) {
    const left = k * size
    if (o.axes !== false) {
      const ax = Math.round(((0 - b.x0) / (b.x1 - b.x0)) * size)
      const ay = Math.round(((b.y1 - 0) / (b.y1 - b.y0)) * height)
      if (ax >= 0 && ax < size) canvas.vline(left + ax, 0, height - 1, axisColor)
      if (ay >= 0 && ay < height) canvas.hline(left, left + size - 1, ay, axisColor)
    }
  }
  parsed.forEach((s, i) => {
    const left = o.panels ? i * size : 0
    for (let j = 0; j + 1 < s.points.length; j += 2) {
      const px = ((s.points[j] - b.x0) / (b.x1 - b.x0)) * size
      const py = ((b.y1 - s.points[j + 1]) / (b.y1 - b.y0)) * height
      if (px >= 0 && px < size && py >= 0 && py < height) canvas.dot(left + px, py, s.color, s.radius, s.alpha)
    }
  })
  // panel frames
  const frame: RGB = [150, 150, 150]
  for (let k = 0; k < nPanels; k++) {
    canvas.vline(k * size, 0, height - 1, frame)
    canvas.vline(k * size + size - 1, 0, height - 1, frame)
  }
  canvas.hline(0, canvas.width - 1, 0, frame)
  canvas.hline(0, canvas.width - 1, height - 1, frame)
  canvas.save(path)
  return { ...b, width: canvas.width, height }
}

/** Options of {@link densityMap}. */
export interface DensityMapOptions {
  /** The region (default [−4, 4] on both axes). */
  range?: Range
  /** Grid cells along x (default 200); along y as many as keep the cells square. */
  resolution?: number
  /** Pixels per cell (default 2). */
  scale?: number
  /** Conditions of a conditional flow, each with batch size 1 (the same condition for every grid point). */
  c?: Tensor[]
  /** 'viridis' (default), 'gray', 'blues' or a function t → [r, g, b]. */
  colormap?: string | ColorMap
  /** Colour log p(x) over [max − 10, max] instead of p(x) over [0, max] (default false). */
  logScale?: boolean
  /** Grid points per forward pass (default 4096). */
  batchSize?: number
}

/** What {@link densityMap} returns. */
export interface DensityMapResult {
  /** The largest density on the grid. */
  max: number
  /** Σ p(x)·cell area over the grid: about 1 when the range holds (almost) all of the mass. */
  integral: number
  width: number
  height: number
}

/**
 * Evaluates the density p(x) = N(f(x); 0, I)·|det ∂f/∂x| of a 2-D flow at the centres of a grid over
 * `range` and writes it as a PNG through a colour map (the top row of the image is the top of the range).
 * Runs without gradients; the flow should be in eval mode if it behaves differently in training.
 * @example plot.densityMap('density.png', flow, { range: [-3, 3], resolution: 200 })
 */
export function densityMap(path: string, flow: FlowLike, opts?: DensityMapOptions): DensityMapResult {
  const fn = 'plot.densityMap'
  checkPath(fn, path)
  if (!isFlowLike(flow)) throw argumentError(fn, 'flow', 'a flow with forward(x) → [z, logJacDet]', flow)
  const o = checkOpts(fn, opts, ['range', 'resolution', 'scale', 'c', 'colormap', 'logScale', 'batchSize'])
  const b = resolveRange(fn, o.range ?? 4)
  const res = positiveInt(fn, 'options.resolution', o.resolution, 200, 2048)
  const scale = positiveInt(fn, 'options.scale', o.scale, 2, 64)
  const chunk = positiveInt(fn, 'options.batchSize', o.batchSize, 4096, 1 << 20)
  const cmap = parseColorMap(fn, 'options.colormap', o.colormap ?? 'viridis')
  if (o.logScale !== undefined && typeof o.logScale !== 'boolean') throw argumentError(fn, 'options.logScale', 'a boolean', o.logScale)
  const c = (o.c ?? []) as unknown
  if (!Array.isArray(c)) throw argumentError(fn, 'options.c', 'an array of condition tensors with batch size 1', c)
  c.forEach((t, i) => {
    if (!(t instanceof Tensor) || t.isDisposed || t.ndim < 1 || t.shape[0] !== 1)
      throw argumentError(fn, `options.c[${i}]`, 'a live Tensor with batch size 1', t instanceof Tensor ? `shape (${t.shape.join(', ')})` : t)
  })

  const cols = res
  const rows = Math.max(1, Math.min(4 * res, Math.round((res * (b.y1 - b.y0)) / (b.x1 - b.x0))))
  const dx = (b.x1 - b.x0) / cols
  const dy = (b.y1 - b.y0) / rows
  const n = rows * cols
  const logp = new Float64Array(n) // row-major from the top row
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start)
    const xy = new Float64Array(2 * m)
    for (let k = 0; k < m; k++) {
      const idx = start + k
      const row = Math.floor(idx / cols)
      const col = idx - row * cols
      xy[2 * k] = b.x0 + (col + 0.5) * dx
      xy[2 * k + 1] = b.y1 - (row + 0.5) * dy
    }
    const values = tidy(() =>
      noGrad(() => {
        const x = tensor(Array.from(xy), [m, 2])
        const zeros = new Array<number>(m).fill(0)
        const cs = (c as Tensor[]).map((t) => indexSelect(t, 0, zeros))
        const [z, logJacDet] = runFlow(fn, flow, x, cs)
        if (z.length !== 1 || z[0].ndim !== 2 || z[0].shape[1] !== 2 || z[0].shape[0] !== m)
          throw new InnflowError('ERR_SHAPE', `${fn}: the flow must map (n, 2) to (n, 2); got ${z.map((t) => `(${t.shape.join(', ')})`).join(', ')}`)
        return logLikelihood(z, logJacDet).toArray()
      }),
    )
    logp.set(values, start)
  }

  let maxLog = -Infinity
  for (const v of logp) if (v > maxLog) maxLog = v
  const max = Math.exp(maxLog)
  let integral = 0
  for (const v of logp) if (Number.isFinite(v)) integral += Math.exp(v) * dx * dy
  const canvas = new Canvas(cols * scale, rows * scale)
  for (let row = 0; row < rows; row++)
    for (let col = 0; col < cols; col++) {
      const v = logp[row * cols + col]
      const t = !Number.isFinite(v) || !Number.isFinite(maxLog) ? 0 : o.logScale ? (v - (maxLog - 10)) / 10 : Math.exp(v - maxLog)
      canvas.fillRect(col * scale, row * scale, scale, scale, cmap(t))
    }
  canvas.save(path)
  return { max, integral, width: canvas.width, height: canvas.height }
}

/** Options of {@link imageGrid}. */
export interface ImageGridOptions {
  /** Rows of the grid (default: enough for the images with `cols` columns). */
  rows?: number
  /** Columns of the grid (default: ceil(sqrt(n)), or enough for `rows` rows). */
  cols?: number
  /** Pixels per image pixel (default 4). */
  scale?: number
  /** Pixels between images (default 2). */
  padding?: number
  /** The values mapped to black and white (default: the smallest and largest value of all images). */
  range?: readonly [number, number]
  /** 'gray' (default), 'viridis', 'blues' or a function t → [r, g, b]. */
  colormap?: string | ColorMap
}

/** Single-channel images as flat row-major arrays of h·w values. */
function readImages(fn: string, images: unknown): { data: Float64Array[]; h: number; w: number } {
  const out: Float64Array[] = []
  let h = -1
  let w = -1
  const add = (values: ArrayLike<number>, ih: number, iw: number, name: string) => {
    if (h < 0) {
      h = ih
      w = iw
    } else if (ih !== h || iw !== w) throw new InnflowError('ERR_SHAPE', `${fn}: ${name} is ${ih}×${iw} but the first image is ${h}×${w}`)
    out.push(Float64Array.from(values))
  }
  if (images instanceof Tensor) {
    if (images.isDisposed) throw new InnflowError('ERR_DISPOSED', `${fn}: images was disposed`)
    const s = images.shape
    if (!(s.length === 3 || (s.length === 4 && s[1] === 1)))
      throw new InnflowError('ERR_SHAPE', `${fn}: images must have shape (n, h, w) or (n, 1, h, w), got (${s.join(', ')})`)
    const [ih, iw] = s.slice(-2)
    const all = images.toArray()
    for (let i = 0; i < s[0]; i++) add(all.subarray(i * ih * iw, (i + 1) * ih * iw), ih, iw, `images[${i}]`)
  } else if (Array.isArray(images)) {
    images.forEach((img, i) => {
      if (img instanceof Tensor) {
        const s = img.shape.filter((d, k) => !(k < img.ndim - 2 && d === 1))
        if (img.isDisposed || s.length !== 2) throw argumentError(fn, `images[${i}]`, 'a live (h, w) Tensor', img.isDisposed ? 'a disposed tensor' : `shape (${img.shape.join(', ')})`)
        add(img.toArray(), s[0], s[1], `images[${i}]`)
      } else if (Array.isArray(img) && img.length > 0 && img.every((r) => Array.isArray(r) && r.length === img[0].length && r.length > 0)) {
        add((img as number[][]).flat(), img.length, (img[0] as number[]).length, `images[${i}]`)
      } else {
        throw argumentError(fn, `images[${i}]`, 'an (h, w) Tensor or an array of h rows of w numbers', img)
      }
    })
  } else {
    throw argumentError(fn, 'images', 'an (n, h, w) Tensor or an array of (h, w) images', images)
  }
  if (out.length === 0) throw new InnflowError('ERR_ARGUMENT', `${fn}: images is empty`)
  return { data: out, h, w }
}

/**
 * Writes single-channel images (e.g. samples of a flow on the 8×8 digits) as one PNG grid, row by row.
 * Returns the grid's shape and the value range mapped to the colour map's ends.
 * @example plot.imageGrid('samples.png', x.reshape([80, 8, 8]), { rows: 10, cols: 8, scale: 4 })
 */
export function imageGrid(path: string, images: Tensor | (Tensor | number[][])[], opts?: ImageGridOptions): { rows: number; cols: number; range: [number, number]; width: number; height: number } {
  const fn = 'plot.imageGrid'
  checkPath(fn, path)
  const o = checkOpts(fn, opts, ['rows', 'cols', 'scale', 'padding', 'range', 'colormap'])
  const { data: imgs, h, w } = readImages(fn, images)
  const n = imgs.length
  let cols = o.cols === undefined ? undefined : positiveInt(fn, 'options.cols', o.cols, 1, 4096)
  let rows = o.rows === undefined ? undefined : positiveInt(fn, 'options.rows', o.rows, 1, 4096)
  if (cols === undefined) cols = rows === undefined ? Math.ceil(Math.sqrt(n)) : Math.ceil(n / rows)
  if (rows === undefined) rows = Math.ceil(n / cols)
  if (rows * cols < n) throw new InnflowError('ERR_ARGUMENT', `${fn}: ${n} images do not fit in ${rows} rows × ${cols} columns`)
  const scale = positiveInt(fn, 'options.scale', o.scale, 4, 64)
  const padding = o.padding === undefined ? 2 : o.padding
  if (!Number.isInteger(padding) || (padding as number) < 0 || (padding as number) > 64) throw argumentError(fn, 'options.padding', 'an integer in [0, 64]', o.padding)
  const pad = padding as number
  const cmap = parseColorMap(fn, 'options.colormap', o.colormap ?? 'gray')
  let lo: number
  let hi: number
  if (o.range !== undefined) {
    if (!isPair(o.range)) throw argumentError(fn, 'options.range', '[lo, hi] with lo < hi', o.range)
    ;[lo, hi] = o.range
  } else {
    lo = Infinity
    hi = -Infinity
    for (const img of imgs)
      for (const v of img)
        if (Number.isFinite(v)) {
          if (v < lo) lo = v
          if (v > hi) hi = v
        }
    if (!(lo < hi)) {
      if (!Number.isFinite(lo)) lo = 0
      hi = lo + 1
    }
  }
  const width = cols * w * scale + (cols + 1) * pad
  const height = rows * h * scale + (rows + 1) * pad
  const canvas = new Canvas(width, height, [128, 128, 128])
  imgs.forEach((img, i) => {
    const r = Math.floor(i / cols!)
    const cc = i - r * cols!
    const left = pad + cc * (w * scale + pad)
    const top = pad + r * (h * scale + pad)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) canvas.fillRect(left + x * scale, top + y * scale, scale, scale, cmap((img[y * w + x] - lo) / (hi - lo)))
  })
  canvas.save(path)
  return { rows, cols, range: [lo, hi], width, height }
}

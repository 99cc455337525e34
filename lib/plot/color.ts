/** Colours for the plots: a categorical palette, '#rrggbb' strings, and colour maps for densities and images. */
import { argumentError } from '../errors'
import type { RGB } from './png'

/** A categorical palette (the ten colours matplotlib cycles through), by name. */
export const PALETTE: Readonly<Record<string, RGB>> = Object.freeze({
  blue: [31, 119, 180],
  orange: [255, 127, 14],
  green: [44, 160, 44],
  red: [214, 39, 40],
  purple: [148, 103, 189],
  brown: [140, 86, 75],
  pink: [227, 119, 194],
  gray: [127, 127, 127],
  olive: [188, 189, 34],
  cyan: [23, 190, 207],
  black: [0, 0, 0],
  white: [255, 255, 255],
})
const CYCLE = ['blue', 'orange', 'green', 'red', 'purple', 'brown', 'pink', 'gray', 'olive', 'cyan']

/** The i-th colour of the default cycle. */
export function cycleColor(i: number): RGB {
  return PALETTE[CYCLE[i % CYCLE.length]]
}

/** A colour given as [r, g, b] (0..255), '#rrggbb', or a name of {@link PALETTE}. */
export type Color = RGB | string

/** Resolves a {@link Color}; `name` is used in the error message. */
export function parseColor(fn: string, name: string, c: unknown): RGB {
  if (Array.isArray(c) && c.length === 3 && c.every((v) => typeof v === 'number' && v >= 0 && v <= 255)) return c.map(Math.round) as RGB
  if (typeof c === 'string') {
    if (c in PALETTE) return PALETTE[c]
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(c)
    if (m) return [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)]
  }
  throw argumentError(fn, name, `[r, g, b] with channels in 0..255, '#rrggbb' or one of ${Object.keys(PALETTE).join(', ')}`, c)
}

/** A colour map: t in [0, 1] → colour. */
export type ColorMap = (t: number) => RGB

function piecewise(stops: readonly RGB[]): ColorMap {
  return (t) => {
    const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1)
    const i = Math.min(stops.length - 2, Math.floor(u))
    const f = u - i
    const a = stops[i]
    const b = stops[i + 1]
    return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)]
  }
}

/** The colour maps by name: 'viridis' (perceptually uniform, dark blue → yellow), 'gray' (black → white). */
export const COLORMAPS: Readonly<Record<string, ColorMap>> = Object.freeze({
  viridis: piecewise([
    [68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [110, 206, 88], [253, 231, 37],
  ]),
  gray: piecewise([[0, 0, 0], [255, 255, 255]]),
  // white → blue, for densities drawn on white pages
  blues: piecewise([[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]]),
})

/** Resolves a colour map given by name or as a function. */
export function parseColorMap(fn: string, name: string, c: unknown): ColorMap {
  if (typeof c === 'function') return c as ColorMap
  if (typeof c === 'string' && c in COLORMAPS) return COLORMAPS[c]
  throw argumentError(fn, name, `a function t => [r, g, b] or one of ${Object.keys(COLORMAPS).map((k) => `'${k}'`).join(', ')}`, c)
}

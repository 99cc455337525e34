import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { data, InnflowError, manualSeed, memory, plot, tensor, Tensor } from '../../lib'
import { decodePng } from './png-decode'

let dir: string
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'innflow-plot-'))
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const code = (f: () => unknown): string | undefined => {
  try {
    f()
  } catch (e) {
    return e instanceof InnflowError ? e.code : `not an InnflowError: ${String(e)}`
  }
  return undefined
}

describe('plot.scatter', () => {
  test('writes a decodable PNG with the points in their colours, one panel per series', () => {
    const file = path.join(dir, 'scatter.png')
    const a = tensor([0, 0, 0.5, 0.5], [2, 2])
    const r = plot.scatter(
      file,
      [
        { points: a, color: 'red', alpha: 1 },
        { points: [[-0.5, -0.5]], color: '#00ff00', alpha: 1, radius: 2 },
      ],
      { range: 1, size: 101, panels: true },
    )
    expect(r).toMatchObject({ x0: -1, x1: 1, y0: -1, y1: 1, width: 202, height: 101 })
    const png = decodePng(file)
    expect([png.width, png.height]).toEqual([202, 101])
    expect(png.colors()).toBeGreaterThan(3)
    // (0, 0) lands on pixel (50.5 → 51, 50.5 → 51) of the first panel; y grows upwards
    expect(png.pixel(51, 51)).toEqual([214, 39, 40])
    expect(png.pixel(76, 25)).toEqual([214, 39, 40]) // (0.5, 0.5)
    expect(png.pixel(101 + 25, 76)).toEqual([0, 255, 0]) // (-0.5, -0.5) in the second panel
    expect(png.pixel(20, 80)).toEqual([255, 255, 255]) // background
    a.dispose()
  })

  test('fits the range to the points when none is given, and accepts flat arrays', () => {
    manualSeed(0)
    const x = data.moons(500)
    const file = path.join(dir, 'fit.png')
    const r = plot.scatter(file, [{ points: x }, { points: [10, 10, 12, 12] }])
    expect(r.x0).toBeLessThan(-1)
    expect(r.x1).toBeGreaterThan(12)
    expect(r.x1 - r.x0).toBeCloseTo(r.y1 - r.y0, 9)
    const png = decodePng(file)
    expect([png.width, png.height]).toEqual([400, 400])
    expect(png.colors()).toBeGreaterThan(3)
    x.dispose()
  })

  test('bad arguments throw ERR_ARGUMENT (or ERR_SHAPE) and write nothing', () => {
    const file = path.join(dir, 'never.png')
    const t3 = tensor([1, 2, 3], [1, 3])
    expect(code(() => plot.scatter(file, []))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.scatter(file, [{ points: t3 }]))).toBe('ERR_SHAPE')
    expect(code(() => plot.scatter(file, [{ points: [1, 2, 3] }]))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.scatter(file, [{ points: [0, 0], color: 'chartreuse' }]))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.scatter(file, [{ points: [0, 0] }], { range: [1, -1] }))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.scatter(file, [{ points: [0, 0] }], { size: 0 }))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.scatter(file, [{ points: [0, 0] }], { sizes: 3 } as never))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.scatter('', [{ points: [0, 0] }]))).toBe('ERR_ARGUMENT')
    expect(fs.existsSync(file)).toBe(false)
    t3.dispose()
  })
})

describe('plot.densityMap', () => {
  // the identity flow: p(x) is the standard normal density
  const identity = { forward: (x: Tensor) => [x, 0] as [Tensor, number] }

  test("renders a flow's density: mass about 1, peak 1/(2π) at the centre, dark at the edges; no leaks", () => {
    const file = path.join(dir, 'density.png')
    const before = memory().tensors
    const r = plot.densityMap(file, identity, { range: 5, resolution: 101, scale: 2, batchSize: 1000 })
    expect(memory().tensors).toBe(before)
    expect(r.integral).toBeCloseTo(1, 3)
    expect(r.max).toBeCloseTo(1 / (2 * Math.PI), 4)
    const png = decodePng(file)
    expect([png.width, png.height]).toEqual([202, 202])
    expect(png.pixel(101, 101)).toEqual([253, 231, 37]) // viridis' top at the mode
    expect(png.pixel(0, 0)).toEqual([68, 1, 84]) // and its bottom far out
    expect(png.colors()).toBeGreaterThan(50)
  })

  test('an off-centre density appears where it is (the top row of the image is the top of the range)', () => {
    const file = path.join(dir, 'shifted.png')
    const shifted = { forward: (x: Tensor) => [x.sub(tensor([2, 2], [1, 2])), 0] as [Tensor, number] }
    plot.densityMap(file, shifted, { range: [[-4, 4], [-4, 4]], resolution: 80, scale: 1, colormap: 'gray', logScale: true })
    const png = decodePng(file)
    // (2, 2) is at column 60, row 20
    expect(png.pixel(60, 20)).toEqual([255, 255, 255])
    expect(png.pixel(20, 60)[0]).toBeLessThan(30)
  })

  test('conditions with batch size 1 are repeated for every grid point; bad options are refused', () => {
    const file = path.join(dir, 'cond.png')
    const c = tensor([1, -1], [1, 2])
    const conditional = { forward: (x: Tensor, o?: { c?: Tensor[] }) => [x.sub(o!.c![0]), 0] as [Tensor, number] }
    const r = plot.densityMap(file, conditional, { range: 5, resolution: 50, c: [c] })
    expect(r.integral).toBeCloseTo(1, 2)
    expect(code(() => plot.densityMap(file, conditional, { c: [tensor([1, 2, 3, 4], [2, 2])] }))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.densityMap(file, identity, { resolution: 0 }))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.densityMap(file, identity, { colormap: 'jet' }))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.densityMap(file, null as never))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.densityMap(file, { forward: (x: Tensor) => [x.sum(1, true), 0] as [Tensor, number] }, { resolution: 4 }))).toBe('ERR_SHAPE')
    c.dispose()
  })
})

describe('plot.imageGrid', () => {
  test('lays images out row by row, scaled, grey from the smallest to the largest value', () => {
    const file = path.join(dir, 'grid.png')
    const images = tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [3, 2, 2])
    const r = plot.imageGrid(file, images, { rows: 1, cols: 3, scale: 2, padding: 1 })
    expect(r).toEqual({ rows: 1, cols: 3, range: [0, 11], width: 16, height: 6 })
    const png = decodePng(file)
    expect([png.width, png.height]).toEqual([16, 6])
    expect(png.pixel(0, 0)).toEqual([128, 128, 128]) // padding
    expect(png.pixel(1, 1)).toEqual([0, 0, 0]) // image 0, pixel (0, 0) = 0
    expect(png.pixel(4, 4)).toEqual([70, 70, 70]) // image 0, pixel (1, 1) = 3 → 3/11
    expect(png.pixel(1 + 2 * 5, 3)).toEqual([232, 232, 232]) // image 2 starts at x = 11; its pixel (row 1, col 0) = 10 → 10/11
    expect(png.pixel(1 + 2 * 5 + 2, 3)).toEqual([255, 255, 255]) // its pixel (1, 1) = 11
    images.dispose()
  })

  test('takes arrays of (h, w) tensors or nested arrays, picks a grid, and refuses what does not fit', () => {
    const file = path.join(dir, 'grid2.png')
    const r = plot.imageGrid(file, [[[0, 1], [1, 0]], [[1, 1], [0, 0]], [[0.5, 0.5], [0.5, 0.5]]])
    expect([r.rows, r.cols]).toEqual([2, 2])
    expect(decodePng(file).colors()).toBeGreaterThan(2)
    expect(code(() => plot.imageGrid(file, [[[0, 1]], [[0, 1, 2]]]))).toBe('ERR_SHAPE')
    expect(code(() => plot.imageGrid(file, [[[0]], [[1]], [[2]]], { rows: 1, cols: 2 }))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.imageGrid(file, []))).toBe('ERR_ARGUMENT')
    expect(code(() => plot.imageGrid(file, tensor([1, 2], [2])))).toBe('ERR_SHAPE')
    expect(code(() => plot.imageGrid(file, [[[0]]], { range: [1, 0] }))).toBe('ERR_ARGUMENT')
  })
})

test('plot.densityMap keeps the cells square on a wide range', () => {
  const file = path.join(os.tmpdir(), `innflow-wide-${process.pid}.png`)
  const identity = { forward: (x: Tensor) => [x, 0] as [Tensor, number] }
  const r = plot.densityMap(file, identity, { range: [[-4, 4], [-2, 2]], resolution: 40, scale: 3 })
  expect([r.width, r.height]).toEqual([120, 60])
  const png = decodePng(file)
  expect([png.width, png.height]).toEqual([120, 60])
  fs.rmSync(file)
})

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { memory } from '../../lib'
import { runMoons } from '../../examples/moons'
import { runDigitsCinn } from '../../examples/digits-cinn'
import { runCustomModule } from '../../examples/custom-module'
import { decodePng } from '../plot/png-decode'

let dir: string
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'innflow-examples-'))
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** Every file is a PNG of the expected size whose pixels are not all one colour. */
function checkPngs(files: string[], sizes: [number, number][]): void {
  expect(files).toHaveLength(sizes.length)
  files.forEach((f, i) => {
    expect(path.dirname(f)).toBe(dir)
    const png = decodePng(f)
    expect([png.width, png.height]).toEqual(sizes[i])
    expect(png.colors()).toBeGreaterThan(2)
  })
}

const quiet = { outDir: '', progress: false, log: () => undefined }

test('examples/moons.ts: trains a few steps and writes the data, latent, samples and density PNGs', () => {
  const before = memory().tensors
  const r = runMoons({ ...quiet, outDir: dir, steps: 5, blocks: 2, hidden: 16, batch: 64 })
  expect(r.losses).toHaveLength(5)
  expect(Number.isFinite(r.testNll)).toBe(true)
  checkPngs(r.files, [[400, 286], [400, 400], [400, 286], [400, 286]])
  expect(r.files.map((f) => path.basename(f))).toEqual(['moons-data.png', 'moons-latent.png', 'moons-samples.png', 'moons-density.png'])
  expect(memory().tensors).toBe(before)
})

test('examples/moons.ts: a checkpointed run resumes where it stopped', () => {
  const ckpt = path.join(dir, 'moons.safetensors')
  const small = { ...quiet, outDir: dir, blocks: 2, hidden: 16, batch: 64, checkpoint: ckpt }
  expect(runMoons({ ...small, steps: 3 }).losses).toHaveLength(3)
  expect(runMoons({ ...small, steps: 5 }).losses).toHaveLength(2)
})

test('examples/digits-cinn.ts: a conditional flow on the digits writes a 10-row grid of samples and of data', () => {
  const before = memory().tensors
  const r = runDigitsCinn({ ...quiet, outDir: dir, steps: 3, blocks: 2, hidden: 16, batch: 32, cols: 4 })
  expect(r.losses).toHaveLength(3)
  // 4 columns and 10 rows of 8×8 images at scale 4 with 2-pixel padding
  checkPngs(r.files, [[4 * 32 + 5 * 2, 10 * 32 + 11 * 2], [4 * 32 + 5 * 2, 10 * 32 + 11 * 2]])
  expect(memory().tensors).toBe(before)
})

test('examples/custom-module.ts: a user InvertibleModule inside a SequenceINN trains, inverts, and is plotted', () => {
  const before = memory().tensors
  const r = runCustomModule({ ...quiet, outDir: dir, steps: 5 })
  expect(r.losses).toHaveLength(5)
  expect(r.roundTripError).toBeLessThan(1e-4)
  checkPngs(r.files, [[720, 360]])
  expect(memory().tensors).toBe(before)
})

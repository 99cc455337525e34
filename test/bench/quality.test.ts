/**
 * The bench's quality workloads (bench/quality.ts) with tiny step counts: the machinery, the table and the
 * JSON fields. The full runs (thousands of steps each) are not part of `npm test`.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { getNumThreads, setNumThreads } from '../../lib'
import { learningRate, qualityWorkloads } from '../../bench/quality'
import { parseArgs, runBench } from '../../bench/run'

let threads = 0
beforeAll(() => {
  threads = getNumThreads()
  setNumThreads(1)
})
afterAll(() => setNumThreads(threads))

test('command line: --quality and --quality-steps', () => {
  expect(parseArgs([])).toMatchObject({ quality: false, qualitySteps: undefined })
  expect(parseArgs(['--quality', '--quality-steps', '7'])).toMatchObject({ quality: true, qualitySteps: 7 })
  expect(() => parseArgs(['--quality-steps', '0'])).toThrow(/--quality-steps/)
})

test('cosine schedule: warm-up to the peak, decay to zero', () => {
  const r = { ...qualityWorkloads[0].recipe, lr: 1e-3, warmup: 10, steps: 110, schedule: 'cosine' as const }
  expect(learningRate(r, 5)).toBeCloseTo(5e-4, 12)
  expect(learningRate(r, 10)).toBeCloseTo(1e-3, 12)
  expect(learningRate(r, 60)).toBeCloseTo(5e-4, 12)
  expect(learningRate(r, 110)).toBeCloseTo(0, 12)
  expect(learningRate({ ...r, schedule: 'constant' }, 60)).toBe(1e-3)
})

test('--quality with a few steps: the second table and the JSON quality array; NLL finite and better than untrained', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'innflow-quality-')), 'bench.json')
  const lines: string[] = []
  const result = runBench(['--quality', '--quality-steps', '60', '--json', file], (l) => lines.push(l))
  const json = JSON.parse(fs.readFileSync(file, 'utf8'))
  expect(json).toEqual(JSON.parse(JSON.stringify(result)))
  expect(json.rows).toEqual([]) // no timing workload with --quality alone
  expect(json.quality.map((q: { workload: string }) => q.workload)).toEqual(['moons-nll', '8gaussians-nll', 'checkerboard-nll'])
  expect(lines[0]).toMatch(/^# quality/)
  expect(lines[1]).toBe('workload\tsteps\ttrain s\ttest NLL\tentropy\tgap\tFrEIA NLL')
  const entropies: Record<string, number> = { 'moons-nll': 2.39, '8gaussians-nll': 2.833, 'checkerboard-nll': Math.log(32) }
  for (const [i, q] of json.quality.entries()) {
    expect(Object.keys(q).sort()).toEqual(
      ['workload', 'recipe', 'params', 'batch', 'steps', 'trainSeconds', 'initialNll', 'testNll', 'entropy', 'gap', 'freiaNll', 'freiaRecipe'].sort(),
    )
    expect(q.steps).toBe(60)
    expect(q.entropy).toBeCloseTo(entropies[q.workload], 10)
    expect(Number.isFinite(q.testNll)).toBe(true)
    expect(Number.isFinite(q.initialNll)).toBe(true)
    expect(q.testNll).toBeLessThan(q.initialNll)
    expect(q.gap).toBeCloseTo(q.testNll - q.entropy, 10)
    expect(q.trainSeconds).toBeGreaterThan(0)
    expect(lines[2 + i].split('\t')[0]).toBe(q.workload)
  }
  // FrEIA's moons figure (reference.json, the longest run listed); none for the others
  expect(json.quality[0]).toMatchObject({ freiaNll: 2.45 })
  expect(json.quality[0].freiaRecipe).toMatch(/^4000 x 256/)
  expect(json.quality[1].freiaNll).toBeNull()
  expect(json.quality[2].freiaNll).toBeNull()
})

test('--workloads mixes timing and quality workloads; unknown names are rejected', () => {
  const lines: string[] = []
  const result = runBench(['--workloads', 'moons-b256,moons-nll', '--steps', '2', '--quality-steps', '5'], (l) => lines.push(l))
  expect(result.rows.map((r) => r.workload)).toEqual(['moons-b256'])
  expect(result.quality!.map((q) => q.workload)).toEqual(['moons-nll'])
  expect(lines[0]).toMatch(/^workload\tbatch/)
  expect(runBench(['--workloads', 'moons-b256', '--steps', '2'], () => undefined).quality).toBeUndefined()
  expect(() => runBench(['--workloads', 'moons-nll,nope'], () => undefined)).toThrow(/unknown workload.*checkerboard-nll/)
})

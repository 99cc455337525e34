/** The bench's pinned command line and JSON format (DESIGN.md, "Benchmarks"). */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { parseArgs, runBench } from '../../bench/run'

test('command line: defaults and every pinned flag', () => {
  expect(parseArgs([])).toMatchObject({ device: 'cpu', precision: 'highest', steps: 30, invertibleBackprop: false, compile: false })
  expect(parseArgs(['--device', 'cuda', '--workloads', 'a,b', '--steps', '5', '--threads', '2', '--precision', 'high', '--json', 'f.json', '--invertible-backprop', '--compile'])).toEqual({
    device: 'cuda', names: ['a', 'b'], steps: 5, threads: 2, precision: 'high', json: 'f.json', invertibleBackprop: true, compile: true, quality: false,
  })
  expect(() => parseArgs(['--device', 'tpu'])).toThrow(/--device/)
  expect(() => parseArgs(['--precision', 'low'])).toThrow(/--precision/)
  expect(() => parseArgs(['--steps', '0'])).toThrow(/--steps/)
})

test('a short run writes the pinned JSON rows with the reference and the ratio', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'innflow-bench-')), 'bench.json')
  const lines: string[] = []
  const result = runBench(['--workloads', 'moons-b256', '--steps', '2', '--json', file], (l) => lines.push(l))
  const json = JSON.parse(fs.readFileSync(file, 'utf8'))
  expect(json).toEqual(JSON.parse(JSON.stringify(result)))
  expect(json.device).toBe('cpu')
  expect(json.rows).toHaveLength(1)
  const row = json.rows[0]
  expect(Object.keys(row).sort()).toEqual(
    ['workload', 'device', 'precision', 'batch', 'params', 'trainStepMs', 'samplesPerSec', 'forwardMs', 'reverseMs', 'peakMemMiB', 'referenceMs', 'ratio'].sort(),
  )
  expect(row).toMatchObject({ workload: 'moons-b256', device: 'cpu', precision: 'highest', batch: 256, params: 16496, referenceMs: 7.33 })
  expect(row.trainStepMs).toBeGreaterThan(0)
  expect(row.ratio).toBeCloseTo(7.33 / row.trainStepMs, 10)
  expect(lines[1]).toMatch(/^moons-b256\t256\t16496\t/)
  // --compile: the same row, timed through compileStep (captured once, then replayed)
  const compiledLines: string[] = []
  const compiled = runBench(['--workloads', 'moons-b256', '--steps', '2', '--compile'], (l) => compiledLines.push(l)).rows[0]
  expect(compiledLines[0]).toMatch(/compileStep/)
  expect(compiled).toMatchObject({ workload: 'moons-b256', params: 16496, referenceMs: 7.33 })
  expect(compiled.trainStepMs).toBeGreaterThan(0)
  expect(() => runBench(['--workloads', 'nope'], () => undefined)).toThrow(/unknown workload/)
  expect(() => runBench(['--device', 'cuda'], () => undefined)).toThrow(/--device cuda/)
})

test('--invertible-backprop: SequenceINN workloads train with less peak memory (the peak is taken during the step)', () => {
  // In a fresh process: the peak counts every live host tensor, and a jest worker still holds garbage of earlier
  // test files until the GC finalises it, which would blur the comparison.
  const root = path.join(__dirname, '..', '..')
  const script = `
    const ts = require('typescript'), fs = require('fs')
    require.extensions['.ts'] = (m, file) => m._compile(ts.transpileModule(fs.readFileSync(file, 'utf8'),
      { fileName: file, compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText, file)
    const { runBench } = require(${JSON.stringify(path.join(root, 'bench', 'run.ts'))})
    const lines = []
    const normal = runBench(['--workloads', 'moons-b256', '--steps', '2'], () => undefined).rows[0]
    const invertible = runBench(['--workloads', 'moons-b256', '--steps', '2', '--invertible-backprop'], (l) => lines.push(l)).rows[0]
    console.log(JSON.stringify({ note: lines[0], normal, invertible }))
  `
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 120000 })
  expect(r.stderr).toBe('')
  expect(r.status).toBe(0)
  const { note, normal, invertible } = JSON.parse(r.stdout.trim().split('\n').pop() as string)
  expect(note).toMatch(/invertible backprop/)
  expect(invertible.params).toBe(normal.params)
  expect(normal.peakMemMiB).toBeGreaterThan(0)
  expect(invertible.peakMemMiB).toBeLessThan(normal.peakMemMiB * 0.6)
})

/**
 * The native side never crashes the process on bad input: every entry point of the addon, called with
 * arguments of the wrong kind, number or shape, either throws an InnflowError or returns normally.
 * Run in a child process, so that a crash would show up as a failed exit instead of killing jest.
 */
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'

test('every native entry point survives malformed arguments', () => {
  const root = path.join(__dirname, '..')
  const script = `
    const native = require('node-gyp-build')(${JSON.stringify(root)})
    const t = native.fromArray([1, 2, 3, 4, 5, 6], [2, 3], 'float64')
    const f = native.fromArray([1, 2], [2], 'float32')
    const dead = native.fromArray([1], [1], 'float64'); dead.dispose()
    const fake = Object.create(null)
    const values = [undefined, null, 0, -1, 1.5, NaN, 1e300, 'x', true, [], [-1], [2, 3], {}, fake, t, f, dead, [t, f], [t, 'x'], () => 1]
    const skip = new Set(['setErrorClass', 'TensorHandle', 'setNumThreads', 'emptyCache', 'manualSeed'])
    let calls = 0, threw = 0, wrongError = []
    for (const name of Object.keys(native)) {
      const fn = native[name]
      if (typeof fn !== 'function' || skip.has(name)) continue
      const lists = [[]]
      for (const a of values) lists.push([a], [0, a], [a, t], [t, a], [0, t, a], [0, a, t, t, true, true], [t, t, a, true])
      for (const args of lists) {
        calls++
        try { const r = fn(...args); if (r && typeof r.dispose === 'function') r.dispose() } catch (e) {
          threw++
          if (!(e && e.name === 'InnflowError' || e && typeof e.code === 'string')) wrongError.push(name + ': ' + String(e && e.message))
        }
      }
    }
    console.log(JSON.stringify({ calls, threw, wrongError: wrongError.slice(0, 5), nWrong: wrongError.length }))
  `
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 120000 })
  expect(r.signal).toBeNull()
  expect(r.status).toBe(0)
  const result = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { calls: number; threw: number; wrongError: string[]; nWrong: number }
  expect(result.calls).toBeGreaterThan(1000)
  expect(result.threw).toBeGreaterThan(result.calls / 2)
  expect(result.wrongError).toEqual([])
}, 180000)

/**
 * The GC finalizer is a safety net: a tensor handle that becomes garbage without dispose() is freed when V8
 * collects it. Checked in a child process started with --expose-gc, on the native addon directly.
 */
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'

test('forgotten tensors are freed by the garbage collector', () => {
  const root = path.join(__dirname, '..')
  const script = `
    const native = require('node-gyp-build')(${JSON.stringify(root)})
    const before = native.memory()
    for (let i = 0; i < 1000; i++) native.full([256], i, 'float32')   // never disposed
    const during = native.memory()
    for (let i = 0; i < 5; i++) global.gc()
    setTimeout(() => {
      global.gc()
      const after = native.memory()
      console.log(JSON.stringify({ before, during, after }))
    }, 50)
  `
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { cwd: root, encoding: 'utf8' })
  expect(r.status).toBe(0)
  const { before, during, after } = JSON.parse(r.stdout.trim()) as Record<string, { tensors: number; bytes: number }>
  expect(during.tensors - before.tensors).toBeGreaterThan(0)
  expect(after.tensors).toBeLessThan(before.tensors + 50)
  expect(after.bytes).toBeLessThan(during.bytes)
})

/**
 * compileStep on the CPU: a compiled training step computes what the eager step computes (the issue asks for
 * the same losses to 1e-6 relative over 50 steps; on one device the replay runs the very same kernels, so the
 * runs agree exactly), for SequenceINN and GraphINN flows, Adam and SGD, gradient clipping, random noise drawn
 * inside the step, a learning-rate schedule and a second batch shape; and its errors.
 */
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { compileStep, InnflowError, keep, nn, optim, setMatmulPrecision, tensor, Tensor, tidy, withoutCapture } from '../../lib'
import { core } from '../../lib/binding'
import { captureNative } from '../../lib/capture'
import { maxRel, paramRel, RunOptions, trainRun } from './compile-step-runs'

describe('compileStep matches eager training', () => {
  const cases: [string, RunOptions][] = [
    ['SequenceINN, Adam, float32', {}],
    ['SequenceINN, Adam, float64', { dtype: 'float64' }],
    ['GraphINN, Adam', { graph: true }],
    ['SGD with momentum, clipping and a schedule', { optimizer: 'sgd', clip: 1, schedule: true }],
    ['Adam with a schedule, noise drawn inside the step', { schedule: true, noise: true }],
    ['no warm-up (ActNorm initialises during the capture)', { warmup: 0 }],
    ['a second batch shape', { ragged: true }],
    ['invertible backprop', { invertible: true, dtype: 'float64' }],
    ['GraphINN, invertible backprop', { graph: true, invertible: true, dtype: 'float64' }],
  ]
  test.each(cases)('%s', (_, o) => {
    const eager = trainRun({ ...o, compiled: false })
    const compiled = trainRun({ ...o, compiled: true })
    expect(compiled.losses).toHaveLength(50)
    expect(compiled.losses.every(Number.isFinite)).toBe(true)
    expect(maxRel(compiled.losses, eager.losses)).toBeLessThanOrEqual(1e-6)
    expect(paramRel(compiled.params, eager.params)).toBeLessThanOrEqual(1e-6)
    // the run trained, and was replayed rather than re-run
    expect(compiled.losses[49]).toBeLessThan(compiled.losses[0])
    expect(compiled.captures).toBe(o.ragged ? 2 : 1)
    expect(compiled.kernels).toBeGreaterThan(50)
    expect(compiled.dynamicKernels).toBeGreaterThanOrEqual(1) // the optimiser step
    // the memory plan shared the intermediates' memory
    expect(compiled.plannedBytes).toBeGreaterThan(0)
    expect(compiled.arenaBytes).toBeLessThan(compiled.plannedBytes / 2)
  })
})

describe('compileStep', () => {
  function setup() {
    const net = new nn.Linear(3, 2)
    const opt = new optim.Adam(net.parameters(), { lr: 1e-2 })
    const body = (x: Tensor) => {
      opt.zeroGrad()
      const loss = net.forward(x).square().mean()
      loss.backward()
      opt.step()
      return loss
    }
    return { net, opt, body }
  }
  const batch = (seed: number, rows = 4) => tensor(Array.from({ length: rows * 3 }, (_, i) => Math.sin(seed + i)), [rows, 3])

  test('replays allocate no tensors and return the same (overwritten) result', () => {
    const { body } = setup()
    const step = compileStep(body, { warmup: 0 })
    const first = step(batch(1))
    const before = core.memory()
    const again = step(batch(2))
    const value = again.item()
    for (let i = 0; i < 10; i++) step(batch(3 + i))
    const after = core.memory()
    expect(again).toBe(first)
    expect(Number.isFinite(value)).toBe(true)
    // the eleven batches made by the test are the only new live tensors
    expect(after.tensors - before.tensors).toBeLessThanOrEqual(11)
    expect(after.storages - before.storages).toBeLessThanOrEqual(11)
    step.release()
  })

  test('the memory plan: a compiled step holds about an eager step\'s peak; without it, every intermediate', () => {
    // In a fresh process: the peak counts every live host tensor, and a jest worker still holds garbage of earlier
    // test files until the GC finalises it, which would blur the comparison.
    const root = path.join(__dirname, '..', '..')
    const script = `
      const ts = require('typescript'), fs = require('fs')
      require.extensions['.ts'] = (m, file) => m._compile(ts.transpileModule(fs.readFileSync(file, 'utf8'),
        { fileName: file, compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText, file)
      const L = require(${JSON.stringify(path.join(root, 'lib', 'index.ts'))})
      const measure = (mode) => {
        L.manualSeed(3)
        const flow = new L.SequenceINN(16)
        for (let k = 0; k < 6; k++)
          flow.append(L.modules.AllInOneBlock, { subnetConstructor: (i, o) => new L.nn.Sequential(new L.nn.Linear(i, 128), new L.nn.ReLU(), new L.nn.Linear(128, o)), permuteSoft: true })
        const opt = new L.optim.Adam(flow.parameters(), { lr: 1e-3 })
        const x = L.randn([512, 16])
        const body = (b) => { opt.zeroGrad(); const [z, ljd] = flow.forward(b); const loss = L.nllLoss(z, ljd); loss.backward(); opt.step(); return loss }
        const step = mode === 'eager' ? null : L.compileStep(body, { planMemory: mode === 'plan' })
        const losses = []
        let peak = 0
        for (let i = 0; i < 5; i++) {
          L.resetPeak()
          losses.push(L.tidy(() => (step ? step(x) : body(x)).item()))
          if (i >= 2) peak = Math.max(peak, L.memory().peakBytes) // after the capture
        }
        const info = step ? step.info() : null
        step?.release()
        opt.dispose()
        x.dispose()
        return { peak, losses, info }
      }
      console.log(JSON.stringify({ eager: measure('eager'), plan: measure('plan'), noplan: measure('noplan') }))
    `
    const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 120000 })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const { eager, plan, noplan } = JSON.parse(r.stdout.trim().split('\n').pop() as string)
    expect(plan.losses).toEqual(eager.losses)
    expect(noplan.losses).toEqual(eager.losses)
    expect(plan.info.plannedBytes).toBeGreaterThan(0)
    expect(noplan.info.plannedBytes).toBe(0)
    expect(plan.peak).toBeLessThanOrEqual(eager.peak * 1.1)
    expect(noplan.peak).toBeGreaterThan(eager.peak * 1.5)
  })

  test('withoutCapture: state made once inside a compiled step is not remade by replays', () => {
    let made = 0
    let scale: Tensor | null = null
    const w = tensor([1, 2, 3], [3], { requiresGrad: true })
    const step = compileStep((x: Tensor) => {
      if (!scale) {
        made++
        // reads a value (allowed here) and makes state that outlives the step
        scale = withoutCapture(() => keep(tensor([x.sum().item() > 0 ? 2 : 3], [1])))
      }
      return x.mul(w).mul(scale).sum()
    }, { warmup: 0 })
    const a = step(tensor([1, 1, 1], [3])).item()
    const b = step(tensor([-1, -1, -1], [3])).item()
    expect(made).toBe(1)
    expect([a, b]).toEqual([12, -12])
    step.release()
  })

  test('a disposed result is captured again instead of being handed back', () => {
    const { body } = setup()
    const step = compileStep(body, { warmup: 0 })
    step(batch(1))
    const loss = step(batch(2))
    expect(step.captures).toBe(1)
    loss.dispose()
    const next = step(batch(3))
    expect(next.isDisposed).toBe(false)
    expect(Number.isFinite(next.item())).toBe(true)
    expect(step.captures).toBe(2)
    step.release()
  })

  test('reading a value inside the step is ERR_CAPTURE and leaves no capture running', () => {
    const { net } = setup()
    const step = compileStep((x: Tensor) => {
      const y = net.forward(x).sum()
      y.item()
      return y
    }, { warmup: 0 })
    expect(() => step(batch(1))).toThrow(expect.objectContaining({ code: 'ERR_CAPTURE' }))
    expect(captureNative.isCapturing()).toBe(false)
    expect(() => batch(2).toArray()).not.toThrow()
  })

  test('returning a number is ERR_CAPTURE', () => {
    const { net } = setup()
    const step = compileStep((x: Tensor) => net.forward(x).sum() as unknown as Tensor, { warmup: 0 })
    expect(step(batch(1))).toBeInstanceOf(Tensor)
    const bad = compileStep(((x: Tensor) => 3 + x.ndim) as unknown as (x: Tensor) => Tensor, { warmup: 0 })
    expect(() => bad(batch(1))).toThrow(expect.objectContaining({ code: 'ERR_CAPTURE' }))
    expect(captureNative.isCapturing()).toBe(false)
  })

  test('moving the model, loading optimiser state or a new matmul precision captures again', () => {
    const { net, opt, body } = setup()
    const step = compileStep(body, { warmup: 0 })
    step(batch(1))
    step(batch(2))
    expect(step.captures).toBe(1)
    net.to({ dtype: 'float64' }).to({ dtype: 'float32' })
    step(batch(3))
    expect(step.captures).toBe(2)
    opt.loadStateDict(opt.stateDict())
    step(batch(4))
    expect(step.captures).toBe(3)
    step(batch(5))
    expect(step.captures).toBe(3)
    // a new matmul precision: CUDA graphs keep the math mode they were captured with
    setMatmulPrecision('high')
    step(batch(6))
    expect(step.captures).toBe(4)
    setMatmulPrecision('highest')
    step(batch(7))
    expect(step.captures).toBe(5)
    step.release()
  })

  test('bad arguments', () => {
    expect(() => compileStep(3 as unknown as () => void)).toThrow(InnflowError)
    expect(() => compileStep(() => undefined, { warmup: -1 })).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }))
    expect(() => compileStep(() => undefined, { cudaGraphs: 1 as unknown as boolean })).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }))
    expect(() => compileStep(() => undefined, { bogus: 1 } as unknown as object)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }))
    const step = compileStep((x: Tensor) => x.sum(), { warmup: 0 })
    expect(() => step(3 as unknown as Tensor)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }))
    void tidy
  })
})

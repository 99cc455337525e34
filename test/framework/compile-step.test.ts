/**
 * compileStep on the CPU: a compiled training step computes what the eager step computes (the issue asks for
 * the same losses to 1e-6 relative over 50 steps; on one device the replay runs the very same kernels, so the
 * runs agree exactly), for SequenceINN and GraphINN flows, Adam and SGD, gradient clipping, random noise drawn
 * inside the step, a learning-rate schedule and a second batch shape; and its errors.
 */
import { compileStep, InnflowError, manualSeed, memory, modules, nllLoss, nn, optim, randn, resetPeak, SequenceINN, tensor, Tensor, tidy } from '../../lib'
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
    const measure = (mode: 'eager' | 'plan' | 'noplan') => {
      manualSeed(3)
      const flow = new SequenceINN(16)
      for (let k = 0; k < 6; k++)
        flow.append(modules.AllInOneBlock, { subnetConstructor: (i: number, o: number) => new nn.Sequential(new nn.Linear(i, 128), new nn.ReLU(), new nn.Linear(128, o)), permuteSoft: true })
      const opt = new optim.Adam(flow.parameters(), { lr: 1e-3 })
      const x = randn([512, 16])
      const body = (b: Tensor) => {
        opt.zeroGrad()
        const [z, ljd] = flow.forward(b)
        const loss = nllLoss(z as Tensor, ljd)
        loss.backward()
        opt.step()
        return loss
      }
      const step = mode === 'eager' ? null : compileStep(body, { planMemory: mode === 'plan' })
      const losses: number[] = []
      let peak = 0
      for (let i = 0; i < 5; i++) {
        resetPeak()
        losses.push(tidy(() => (step ? step(x) : body(x)).item()))
        if (i >= 2) peak = Math.max(peak, memory().peakBytes) // after the capture
      }
      step?.release()
      opt.dispose()
      x.dispose()
      return { peak, losses }
    }
    const eager = measure('eager')
    const plan = measure('plan')
    const noplan = measure('noplan')
    expect(plan.losses).toEqual(eager.losses)
    expect(noplan.losses).toEqual(eager.losses)
    expect(plan.peak).toBeLessThanOrEqual(eager.peak * 1.1)
    expect(noplan.peak).toBeGreaterThan(eager.peak * 1.5)
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

  test('moving the model or loading optimiser state captures again', () => {
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

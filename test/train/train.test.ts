import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {
  data, getRngState, InnflowError, io, manualSeed, memory, modules as Fm, nn, optim, randn, SequenceINN, setRngState, Tensor, train,
} from '../../lib'
import { epochOrder, ProgressBar } from '../../lib/train'

const subnet = (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, 32), new nn.ReLU(), new nn.Linear(32, cOut))

/** 3 AllInOneBlocks on 2-D data, initialised from `seed`. */
function makeFlow(seed: number, condDims = 0): SequenceINN {
  manualSeed(seed)
  const flow = new SequenceINN(2)
  for (let k = 0; k < 3; k++)
    flow.append(Fm.AllInOneBlock, condDims ? { subnetConstructor: subnet, cond: 0, condShape: [condDims] } : { subnetConstructor: subnet })
  return flow
}

function disposeFlow(flow: SequenceINN): void {
  for (const t of [...flow.parameters(), ...flow.buffers()]) {
    t.grad?.dispose()
    t.dispose()
  }
}

/** Every parameter and buffer as an exact copy of its values. */
function snapshot(flow: SequenceINN): Record<string, number[]> {
  const out: Record<string, number[]> = {}
  for (const [k, t] of Object.entries(flow.stateDict())) out[k] = Array.from(t.toArray())
  return out
}

function expectIdentical(a: number[], b: number[]): void {
  expect(a.length).toBe(b.length)
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) throw new Error(`element ${i}: ${a[i]} !== ${b[i]}`)
}

function expectSameState(a: SequenceINN, b: SequenceINN): void {
  const sa = snapshot(a)
  const sb = snapshot(b)
  expect(Object.keys(sb)).toEqual(Object.keys(sa))
  for (const k of Object.keys(sa)) expectIdentical(sa[k], sb[k])
}

let dir: string
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'innflow-train-'))
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('train: exact resumption on the CPU', () => {
  test('tensor data: 20 steps straight = 8 steps + resume for 12 (losses and parameters bit-identical)', () => {
    manualSeed(1)
    const x = data.moons(200)
    const opts = { steps: 20, batchSize: 64, lr: 2e-3, clipGradNorm: 5, progress: false as const }

    const straight = makeFlow(0)
    const a = train(straight, x, opts)
    expect(a.losses).toHaveLength(20)
    expect(a.startStep).toBe(0)
    expect(a.losses.every(Number.isFinite)).toBe(true)

    const file = path.join(dir, 'tensor.safetensors')
    const first = makeFlow(0)
    const b1 = train(first, x, { ...opts, steps: 8, checkpoint: { path: file, every: 4 } })
    expect(fs.existsSync(file)).toBe(true)
    b1.optimizer.dispose()
    disposeFlow(first)

    // a fresh process would start from another initialisation and another generator state
    const resumed = makeFlow(99)
    randn([13]).dispose()
    const b2 = train(resumed, x, { ...opts, resume: file })
    expect(b2.startStep).toBe(8)
    expect(b2.step).toBe(20)
    expectIdentical([...b1.losses, ...b2.losses], a.losses)
    expectSameState(straight, resumed)

    a.optimizer.dispose()
    b2.optimizer.dispose()
    disposeFlow(straight)
    disposeFlow(resumed)
    x.dispose()
  })

  test('compile: true trains bit-identically to the eager loop, also when resumed, with conditions and a short last batch', () => {
    manualSeed(2)
    const x = data.moons(200)
    const c = randn([200, 3])
    const opts = { steps: 14, batchSize: 64, lr: 2e-3, clipGradNorm: 5, progress: false as const }
    const eagerFlow = makeFlow(0, 3)
    const eager = train(eagerFlow, { x, c }, opts)
    const compiledFlow = makeFlow(0, 3)
    const compiled = train(compiledFlow, { x, c }, { ...opts, compile: true })
    expectIdentical(compiled.losses, eager.losses)
    expectSameState(compiledFlow, eagerFlow)

    const file = path.join(dir, 'compiled.safetensors')
    const first = makeFlow(0, 3)
    const b1 = train(first, { x, c }, { ...opts, steps: 6, compile: true, checkpoint: { path: file, every: 3 } })
    const resumed = makeFlow(5, 3)
    const b2 = train(resumed, { x, c }, { ...opts, compile: true, resume: file })
    expectIdentical([...b1.losses, ...b2.losses], eager.losses)
    expectSameState(resumed, eagerFlow)
    expect(() => train(makeFlow(0), x, { steps: 1, compile: 1 as unknown as boolean, progress: false })).toThrow(
      expect.objectContaining({ code: 'ERR_ARGUMENT' }),
    )
    for (const r of [eager, compiled, b1, b2]) r.optimizer.dispose()
    for (const f of [eagerFlow, compiledFlow, first, resumed]) disposeFlow(f)
    x.dispose()
    c.dispose()
  })

  test('a batch function drawing from the global generator: interrupted at step 11, resumed from the step-8 checkpoint', () => {
    const file = path.join(dir, 'function.safetensors')
    const draw = () => data.moons(32)
    const noisy = (x: Tensor) => x.add(randn([...x.shape] as number[]).mul(0.01)) // uses the generator too
    const opts = { steps: 20, lr: 1e-3, transform: noisy, progress: false as const }

    const straight = makeFlow(3)
    manualSeed(7)
    const a = train(straight, draw, opts)

    const first = makeFlow(3)
    manualSeed(7)
    const steps: number[] = []
    expect(() =>
      train(first, draw, {
        ...opts,
        checkpoint: { path: file, every: 4 },
        onStep: ({ step }) => {
          steps.push(step)
          if (step === 11) throw new Error('interrupted')
        },
      }),
    ).toThrow('interrupted')
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    for (const p of first.parameters()) expect(p.grad).toBeNull() // zeroGrad on the way out
    const lossesBefore = a.losses.slice(0, 8)

    const resumed = makeFlow(42)
    manualSeed(1234)
    const seen: number[] = []
    const b = train(resumed, draw, { ...opts, checkpoint: { path: file, every: 4 }, resume: true, onStep: ({ step }) => seen.push(step) })
    expect(b.startStep).toBe(8)
    expect(seen).toEqual([9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20])
    expectIdentical([...lossesBefore, ...b.losses], a.losses)
    expectSameState(straight, resumed)
    // the final checkpoint is at step 20: resuming it again has nothing left to do
    const again = train(resumed, draw, { ...opts, checkpoint: { path: file, every: 4 }, resume: true })
    expect(again.losses).toEqual([])
    expect(again.startStep).toBe(20)

    for (const r of [a, b, again]) r.optimizer.dispose()
    for (const f of [straight, first, resumed]) disposeFlow(f)
  })

  test('resume: true without an existing checkpoint starts fresh; a user optimizer is used and restored', () => {
    const file = path.join(dir, 'fresh.safetensors')
    manualSeed(5)
    const x = data.moons(128)
    const flow = makeFlow(1)
    const opt = new optim.Adam(flow.parameters(), { lr: 1e-3 })
    const r = train(flow, x, { steps: 6, optimizer: opt, checkpoint: { path: file, every: 100 }, resume: true, progress: false })
    expect(r.startStep).toBe(0)
    expect(r.optimizer).toBe(opt)
    expect(fs.existsSync(file)).toBe(true) // written after the last step
    const meta = io.readSafetensorsMetadata(file)
    expect(JSON.parse(meta['innflow.train'])).toMatchObject({ format: 1, step: 6, data: { kind: 'tensor', rows: 128, batchSize: 128, seed: 0 } })
    opt.dispose()
    disposeFlow(flow)
    x.dispose()
  })
})

describe('train: data forms, results and memory', () => {
  test('conditional data { x, c } is shuffled row by row together; the loss falls; no tensors leak', () => {
    manualSeed(2)
    const x = data.moons(256)
    const c = x.narrow(1, 0, 1).mul(1) // condition on the first coordinate (a copy, so it can be disposed on its own)
    const flow = makeFlow(4, 1)
    const before = memory().tensors
    const infos: { step: number; loss: number; samplesPerSecond: number }[] = []
    const r = train(flow, { x, c }, { steps: 30, batchSize: 64, lr: 3e-3, progress: false, onStep: (i) => infos.push(i) })
    r.optimizer.dispose()
    expect(memory().tensors).toBe(before)
    expect(infos.map((i) => i.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    expect(infos.every((i) => i.samplesPerSecond > 0)).toBe(true)
    expect(infos.map((i) => i.loss)).toEqual(r.losses)
    const mean = (v: number[]) => v.reduce((s, l) => s + l, 0) / v.length
    expect(mean(r.losses.slice(-5))).toBeLessThan(mean(r.losses.slice(0, 5)))
    disposeFlow(flow)
    x.dispose()
    c.dispose()
  })

  test('any object whose forward(x) returns [z, logJacDet] trains with an optimizer', () => {
    manualSeed(0)
    const x = data.moons(64)
    const flow = makeFlow(2)
    const wrapper = { forward: (t: Tensor) => flow.forward(t) }
    const opt = new optim.Adam(flow.parameters(), { lr: 1e-3 })
    const r = train(wrapper, x, { steps: 3, optimizer: opt, progress: false })
    expect(r.losses).toHaveLength(3)
    opt.dispose()
    disposeFlow(flow)
    x.dispose()
  })

  test('the shuffled order visits every row once per epoch and depends only on (seed, epoch)', () => {
    const o = epochOrder(50, 3, 0)
    expect([...o].sort((p, q) => p - q)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect([...epochOrder(50, 3, 0)]).toEqual([...o])
    expect([...epochOrder(50, 3, 1)]).not.toEqual([...o])
    expect([...epochOrder(50, 4, 0)]).not.toEqual([...o])
  })

  test('the loss is the mean NLL in nats under a standard normal', () => {
    manualSeed(0)
    const x = data.moons(64)
    const flow = makeFlow(8)
    let loss = NaN
    const state = getRngState()
    const r = train(flow, () => x, { steps: 1, progress: false, optimizer: new optim.SGD(flow.parameters(), { lr: 0 }), onStep: (i) => (loss = i.loss) })
    setRngState(state)
    const [z, logJacDet] = flow.forward(x)
    const zs = z.toArray()
    const ld = logJacDet.toArray()
    let expected = 0
    for (let i = 0; i < 64; i++) expected += 0.5 * (zs[2 * i] ** 2 + zs[2 * i + 1] ** 2) - ld[i] + Math.log(2 * Math.PI)
    expect(loss).toBeCloseTo(expected / 64, 4)
    r.optimizer.dispose()
    disposeFlow(flow)
  })
})

describe('train: progress bar', () => {
  test('draws step/steps, loss, samples/s and ETA with \\r when forced, and a final newline', () => {
    let out = ''
    const stream = { write: (s: string) => ((out += s), true), isTTY: false, columns: 120 }
    manualSeed(0)
    const x = data.moons(64)
    const flow = makeFlow(0)
    const r = train(flow, x, { steps: 3, batchSize: 32, progress: { stream, force: true, intervalMs: 0 } })
    expect(out.startsWith('\r')).toBe(true)
    expect(out.endsWith('\n')).toBe(true)
    const lines = out.trim().split('\r').map((l) => l.trim())
    expect(lines).toHaveLength(3)
    expect(lines[0]).toMatch(/^step 1\/3 \[=+>? *\] +33% \| loss -?\d+\.\d{4} \| [\d.]+k? samples\/s \| ETA \d+:\d\d$/)
    expect(lines[2]).toMatch(/^step 3\/3 \[=+\] 100% \| loss .* elapsed$/)
    r.optimizer.dispose()
    disposeFlow(flow)
    x.dispose()
  })

  test('writes nothing to a stream that is not a TTY, and fits narrow terminals', () => {
    let out = ''
    const stream = { write: (s: string) => ((out += s), true), isTTY: false }
    const bar = new ProgressBar(0, 10, { stream })
    bar.update(10, 1.5, 1000)
    bar.finish()
    expect(out).toBe('')
    const narrow = new ProgressBar(0, 1000, { stream: { write: () => true, isTTY: true, columns: 40 }, now: () => 0 })
    expect(narrow.line(5, 2.5, 1234).length).toBeLessThan(40)
  })
})

describe('train: bad options', () => {
  const expectArgumentError = (f: () => unknown, pattern: RegExp, code = 'ERR_ARGUMENT') => {
    let err: unknown
    try {
      f()
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(InnflowError)
    expect((err as InnflowError).code).toBe(code)
    expect((err as Error).message).toMatch(pattern)
  }

  test('are refused with ERR_ARGUMENT before anything changes', () => {
    manualSeed(0)
    const x = data.moons(100)
    const flow = makeFlow(0)
    const file = path.join(dir, 'never.safetensors')
    const cp = { path: file, every: 2 }
    const oneD = randn([10])
    const fiveRows = randn([5, 1])
    const before = snapshot(flow)
    const rng = getRngState()
    const cases: [unknown, unknown, RegExp][] = [
      [x, undefined, /options/],
      [x, { steps: 0 }, /options\.steps must be a positive integer/],
      [x, { steps: 2.5 }, /options\.steps/],
      [x, {}, /options\.steps/],
      [x, { steps: 5, step: 3 }, /unknown option 'step'/],
      [x, { steps: 5, lr: -1 }, /options\.lr/],
      [x, { steps: 5, lr: 1e-3, optimizer: new optim.SGD(flow.parameters(), { lr: 1 }) }, /options\.lr .* optimizer/],
      [x, { steps: 5, optimizer: {} }, /options\.optimizer must be an Optimizer/],
      [x, { steps: 5, clipGradNorm: 0 }, /options\.clipGradNorm/],
      [x, { steps: 5, batchSize: 0 }, /options\.batchSize/],
      [x, { steps: 5, batchSize: 101 }, /options\.batchSize .* 100 rows/],
      [x, { steps: 5, seed: -1 }, /options\.seed/],
      [() => x, { steps: 5, batchSize: 10 }, /batchSize applies to tensor data/],
      [x, { steps: 5, onStep: 'log' }, /options\.onStep/],
      [x, { steps: 5, progress: 'yes' }, /options\.progress/],
      [x, { steps: 5, transform: 3 }, /options\.transform/],
      [x, { steps: 5, checkpoint: file }, /options\.checkpoint must be \{ path, every \}/],
      [x, { steps: 5, checkpoint: { path: '', every: 2 } }, /checkpoint\.path/],
      [x, { steps: 5, checkpoint: { path: file, every: 0 } }, /checkpoint\.every/],
      [x, { steps: 5, checkpoint: { ...cp, keep: 3 } }, /unknown option 'checkpoint\.keep'/],
      [x, { steps: 5, resume: path.join(dir, 'missing.safetensors') }, /does not exist/],
      [x, { steps: 5, resume: true }, /no checkpoint option/],
      [x, { steps: 5, resume: 3 }, /options\.resume/],
      [oneD, { steps: 5 }, /data must be a tensor of samples/],
      ['moons', { steps: 5 }, /data must be/],
    ]
    for (const [d, o, pattern] of cases)
      expectArgumentError(() => train(flow, d as Tensor, o as never), pattern)
    expectArgumentError(() => train(flow, { x, c: fiveRows }, { steps: 5 }), /data\.c\[0\] has shape \(5, 1\); expected 100 rows/, 'ERR_SHAPE')
    expectArgumentError(() => train(null as never, x, { steps: 1 }), /flow must be a flow/)
    const sgd = new optim.SGD(flow.parameters(), { lr: 1 })
    expectArgumentError(() => train({ forward: () => [x, 0] }, x, { steps: 1, optimizer: sgd, checkpoint: cp }), /flow must be a Module/)
    expect(fs.existsSync(file)).toBe(false)
    expect(getRngState()).toBe(rng)
    const after = snapshot(flow)
    for (const k of Object.keys(before)) expectIdentical(after[k], before[k])
    for (const p of flow.parameters()) expect(p.grad).toBeNull()
    disposeFlow(flow)
    x.dispose()
  })

  test('checkpoints that cannot continue the run are refused with ERR_CHECKPOINT and change nothing', () => {
    manualSeed(0)
    const x = data.moons(100)
    const file = path.join(dir, 'resume-me.safetensors')
    const trained = makeFlow(0)
    train(trained, x, { steps: 4, batchSize: 50, progress: false, checkpoint: { path: file, every: 2 } }).optimizer.dispose()
    const plain = path.join(dir, 'plain.safetensors')
    io.saveCheckpoint(plain, { model: trained })

    const flow = makeFlow(1)
    const before = snapshot(flow)
    const rng = getRngState()
    const check = (f: () => unknown, code: string, pattern: RegExp) => {
      let err: unknown
      try {
        f()
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(InnflowError)
      expect((err as InnflowError).code).toBe(code)
      expect((err as Error).message).toMatch(pattern)
      const after = snapshot(flow)
      for (const k of Object.keys(before)) expectIdentical(after[k], before[k])
      expect(getRngState()).toBe(rng)
    }
    check(() => train(flow, x, { steps: 8, batchSize: 25, resume: file }), 'ERR_CHECKPOINT', /batches of 50 .* batches of 25/)
    check(() => train(flow, x, { steps: 8, batchSize: 50, seed: 1, resume: file }), 'ERR_CHECKPOINT', /seed 0, but .* seed 1;/)
    check(() => train(flow, () => x, { steps: 8, resume: file }), 'ERR_CHECKPOINT', /a batch function/)
    check(() => train(flow, x, { steps: 3, batchSize: 50, resume: file }), 'ERR_ARGUMENT', /at step 4, beyond options\.steps = 3/)
    check(() => train(flow, x, { steps: 8, resume: plain }), 'ERR_CHECKPOINT', /not written by train/)
    check(() => train(flow, x, { steps: 8, batchSize: 50, resume: file, optimizer: new optim.SGD(flow.parameters(), { lr: 1 }) }), 'ERR_CHECKPOINT', /Adam/)
    fs.writeFileSync(path.join(dir, 'garbage.safetensors'), 'not a checkpoint')
    check(() => train(flow, x, { steps: 8, resume: path.join(dir, 'garbage.safetensors') }), 'ERR_CHECKPOINT', /not a valid safetensors file/)
    // a flow of another shape: loadCheckpoint refuses it atomically
    manualSeed(0)
    const other = new SequenceINN(2)
    for (let k = 0; k < 2; k++) other.append(Fm.AllInOneBlock, { subnetConstructor: subnet })
    const rngOther = getRngState()
    let err: unknown
    try {
      train(other, x, { steps: 8, batchSize: 50, resume: file })
    } catch (e) {
      err = e
    }
    expect((err as InnflowError).code).toBe('ERR_CHECKPOINT')
    expect(getRngState()).toBe(rngOther)
    for (const f of [trained, flow, other]) disposeFlow(f)
    x.dispose()
  })
})

describe('getRngState / setRngState', () => {
  test('restoring a state repeats the draws that followed it; bad states are refused', () => {
    manualSeed(11)
    randn([5]).dispose()
    const s = getRngState()
    expect(s).toMatch(/^[0-9a-f]{32}$/)
    const a = randn([9])
    setRngState(s)
    const b = randn([9])
    expectIdentical(Array.from(b.toArray()), Array.from(a.toArray()))
    a.dispose()
    b.dispose()
    for (const bad of ['', 'xyz', s.slice(1), 42])
      expect(() => setRngState(bad as string)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }))
  })
})

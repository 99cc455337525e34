import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { io, manualSeed, nn, optim, tensor, Tensor, tidy, zeros } from '../../lib'
import { expectCode, randomValues } from '../helpers'

let dir: string
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'innflow-ckpt-'))
})
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true })
})
const file = (name: string) => path.join(dir, name)

class Net extends nn.Module {
  readonly body: nn.Sequential
  constructor(hidden = 5) {
    super()
    this.body = this.registerModule('body', new nn.Sequential(new nn.Linear(2, hidden), new nn.Tanh(), new nn.Linear(hidden, 1)))
    this.registerBuffer('count', zeros([1]))
  }
  forward(x: Tensor): Tensor {
    return this.body.forward(x)
  }
}

/** Random gradients for every parameter, then steps. */
function train(model: nn.Module, opt: optim.Optimizer, steps: number, seed: number): void {
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad()
    model.parameters().forEach((p, i) => (p.grad = tensor(randomValues(p.size, seed + 10 * s + i), [...p.shape], { dtype: p.dtype })))
    opt.step()
  }
}

const values = (m: nn.Module) => Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, Array.from(t.toArray())]))
const optValues = (o: optim.Optimizer) => tidy(() => Object.fromEntries(Object.entries(o.stateDict()).map(([k, t]) => [k, Array.from(t.toArray())])))

describe('checkpoints', () => {
  test('model and Adam state round-trip; training resumes bit for bit', () => {
    manualSeed(1)
    const a = new Net()
    const optA = new optim.Adam(a.parameters(), { lr: 0.01, weightDecay: 0.1 })
    train(a, optA, 3, 100)
    const p = file('ckpt.safetensors')
    io.saveCheckpoint(p, { model: a, optimizer: optA, metadata: { epoch: '3' } })

    // the file is plain safetensors: model.* and optimizer.* keys
    const raw = io.loadSafetensors(p)
    expect(Object.keys(raw.tensors).filter((k) => k.startsWith('model.')).sort()).toEqual(Object.keys(a.stateDict()).map((k) => `model.${k}`).sort())
    expect(raw.tensors['optimizer.state.0.step'].item()).toBe(3)
    expect(raw.metadata.epoch).toBe('3')
    Object.values(raw.tensors).forEach((t) => t.dispose())

    manualSeed(2)
    const b = new Net()
    const optB = new optim.Adam(b.parameters(), { lr: 0.01, weightDecay: 0.1 })
    const params = b.parameters()
    const loaded = io.loadCheckpoint(p, { model: b, optimizer: optB })
    expect(loaded).toEqual({ metadata: { epoch: '3' }, missingKeys: [], unexpectedKeys: [] })
    expect(b.parameters()).toEqual(params) // same objects
    expect(values(b)).toEqual(values(a))
    expect(optValues(optB)).toEqual(optValues(optA))
    train(a, optA, 2, 500)
    train(b, optB, 2, 500)
    expect(values(b)).toEqual(values(a))
  })

  test('SGD momentum state, and a model-only checkpoint', () => {
    manualSeed(3)
    const a = new Net()
    const optA = new optim.SGD(a.parameters(), { lr: 0.1, momentum: 0.9 })
    train(a, optA, 2, 7)
    io.saveCheckpoint(file('sgd.safetensors'), { model: a, optimizer: optA })
    const b = new Net()
    const optB = new optim.SGD(b.parameters(), { lr: 0.1, momentum: 0.9 })
    io.loadCheckpoint(file('sgd.safetensors'), { model: b, optimizer: optB })
    train(a, optA, 1, 9)
    train(b, optB, 1, 9)
    expect(values(b)).toEqual(values(a))

    io.saveCheckpoint(file('model-only.safetensors'), { model: a })
    const c = new Net()
    expect(io.loadCheckpoint(file('model-only.safetensors'), { model: c }).metadata).toEqual({})
    expect(values(c)).toEqual(values(a))
    // asking for optimizer state that is not there
    const optC = new optim.SGD(c.parameters(), { lr: 0.1 })
    expectCode(() => io.loadCheckpoint(file('model-only.safetensors'), { model: c, optimizer: optC }), 'ERR_CHECKPOINT')
  })

  describe('a bad checkpoint leaves model and optimiser unchanged', () => {
    function setup() {
      manualSeed(4)
      const model = new Net()
      const opt = new optim.Adam(model.parameters(), { lr: 0.01 })
      train(model, opt, 2, 40)
      return { model, opt, before: values(model), optBefore: optValues(opt) }
    }
    function expectUnchanged(s: ReturnType<typeof setup>) {
      expect(values(s.model)).toEqual(s.before)
      expect(optValues(s.opt)).toEqual(s.optBefore)
    }

    test('model shapes that do not fit', () => {
      const s = setup()
      const other = new Net(7)
      const otherOpt = new optim.Adam(other.parameters())
      train(other, otherOpt, 1, 3)
      io.saveCheckpoint(file('wide.safetensors'), { model: other, optimizer: otherOpt })
      expectCode(() => io.loadCheckpoint(file('wide.safetensors'), { model: s.model, optimizer: s.opt }), 'ERR_CHECKPOINT')
      expectUnchanged(s)
    })

    test('a valid model part but a broken optimizer part', () => {
      const s = setup()
      tidy(() => {
        const sd = new Net().stateDict()
        const tensors: Record<string, Tensor> = {}
        for (const [k, t] of Object.entries(sd)) tensors[`model.${k}`] = t
        tensors['optimizer.state.0.step'] = tensor([1], [], { dtype: 'float64' })
        tensors['optimizer.state.0.exp_avg'] = zeros([3, 3])
        tensors['optimizer.state.0.exp_avg_sq'] = zeros([3, 3])
        io.saveSafetensors(file('badopt.safetensors'), tensors, { [io.CHECKPOINT_KEY]: JSON.stringify({ format: 1, model: 'Net', optimizer: { type: 'Adam', params: 4 } }) })
      })
      expectCode(() => io.loadCheckpoint(file('badopt.safetensors'), { model: s.model, optimizer: s.opt }), 'ERR_CHECKPOINT')
      expectUnchanged(s)
    })

    test('another kind of optimiser, or another number of parameters', () => {
      const s = setup()
      const m = new Net()
      const sgd = new optim.SGD(m.parameters(), { momentum: 0.5 })
      train(m, sgd, 1, 1)
      io.saveCheckpoint(file('sgd-kind.safetensors'), { model: m, optimizer: sgd })
      expectCode(() => io.loadCheckpoint(file('sgd-kind.safetensors'), { model: s.model, optimizer: s.opt }), 'ERR_CHECKPOINT')
      const few = new optim.Adam(m.parameters().slice(0, 2))
      train(m, few, 1, 1)
      io.saveCheckpoint(file('few.safetensors'), { model: m, optimizer: few })
      expectCode(() => io.loadCheckpoint(file('few.safetensors'), { model: s.model, optimizer: s.opt }), 'ERR_CHECKPOINT')
      expectUnchanged(s)
    })

    test('a truncated file', () => {
      const s = setup()
      io.saveCheckpoint(file('full.safetensors'), { model: new Net(), optimizer: s.opt })
      const bytes = fs.readFileSync(file('full.safetensors'))
      fs.writeFileSync(file('truncated.safetensors'), bytes.subarray(0, bytes.length - 12))
      expectCode(() => io.loadCheckpoint(file('truncated.safetensors'), { model: s.model, optimizer: s.opt }), 'ERR_CHECKPOINT')
      expectUnchanged(s)
    })

    test('stray keys and a missing model key', () => {
      const s = setup()
      tidy(() => {
        const tensors: Record<string, Tensor> = { 'model.count': zeros([1]), 'weights.x': zeros([1]) }
        io.saveSafetensors(file('stray.safetensors'), tensors)
        expectCode(() => io.loadCheckpoint(file('stray.safetensors'), { model: s.model }), 'ERR_CHECKPOINT')
        const partial: Record<string, Tensor> = {}
        for (const [k, t] of Object.entries(new Net().stateDict())) if (k !== 'body.2.bias') partial[`model.${k}`] = t
        io.saveSafetensors(file('partial.safetensors'), partial)
        expectCode(() => io.loadCheckpoint(file('partial.safetensors'), { model: s.model }), 'ERR_CHECKPOINT')
        expectUnchanged(s)
        expect(io.loadCheckpoint(file('partial.safetensors'), { model: s.model, strict: false }).missingKeys).toEqual(['body.2.bias'])
      })
    })
  })

  test('bad arguments', () => {
    const m = new Net()
    expectCode(() => io.saveCheckpoint(file('x'), { model: {} as nn.Module }), 'ERR_ARGUMENT')
    expectCode(() => io.saveCheckpoint(file('x'), { model: m, optimizer: {} as optim.Optimizer }), 'ERR_ARGUMENT')
    expectCode(() => io.saveCheckpoint(file('x'), { model: m, metadata: { [io.CHECKPOINT_KEY]: 'x' } }), 'ERR_ARGUMENT')
    expectCode(() => io.saveCheckpoint(file('x'), { model: m, metadata: { a: 1 as unknown as string } }), 'ERR_ARGUMENT')
    expectCode(() => io.loadCheckpoint(file('x'), null as unknown as { model: nn.Module }), 'ERR_ARGUMENT')
    expectCode(() => io.loadCheckpoint(file('nope'), { model: m }), 'ERR_CHECKPOINT')
  })
})

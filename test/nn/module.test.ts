import { cuda, getDefaultDtype, manualSeed, memory, nn, ones, optim, setDefaultDtype, tensor, Tensor, tidy, zeros } from '../../lib'
import { expectClose, expectCode, randomValues } from '../helpers'

/** A module with parameters, buffers (persistent and not) and a child, registered in a mixed order. */
class Custom extends nn.Module {
  readonly body: nn.Sequential
  readonly scale: Tensor
  readonly shift: Tensor
  constructor() {
    super()
    this.body = this.registerModule('body', new nn.Sequential(new nn.Linear(2, 3), new nn.ReLU(), new nn.Linear(3, 2)))
    this.scale = this.registerParameter('scale', ones([2]))
    this.registerBuffer('running', zeros([2]))
    this.registerBuffer('scratch', zeros([5]), false)
    this.registerParameter('unused', null)
    this.shift = this.registerParameter('shift', zeros([2]))
  }
  forward(x: Tensor): Tensor {
    return (this.body.forward(x) as Tensor).mul(this.scale).add(this.shift)
  }
}

const nested = () =>
  new nn.Sequential(
    new nn.Linear(2, 3),
    new nn.ReLU(),
    new nn.Sequential(new nn.Linear(3, 4), new nn.Tanh(), new nn.Linear(4, 1, { bias: false })),
    new nn.Dropout(0.1),
  )

const snapshot = (m: nn.Module) => Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, Array.from(t.toArray())]))

describe('registration and naming', () => {
  test('nested Sequentials: PyTorch names and order for parameters, state dict, modules', () => {
    const net = nested()
    const names = ['0.weight', '0.bias', '2.0.weight', '2.0.bias', '2.2.weight']
    expect(net.namedParameters().map(([n]) => n)).toEqual(names)
    expect(Object.keys(net.stateDict())).toEqual(names)
    expect(net.parameters()).toEqual(net.namedParameters().map(([, t]) => t))
    expect(net.namedParameters()[2][1].shape).toEqual([4, 3])
    expect(net.namedModules().map(([n]) => n)).toEqual(['', '0', '1', '2', '2.0', '2.1', '2.2', '3'])
    expect(net.namedChildren().map(([n, m]) => [n, m.constructor.name])).toEqual([['0', 'Linear'], ['1', 'ReLU'], ['2', 'Sequential'], ['3', 'Dropout']])
    expect(net.children()).toHaveLength(4)
    expect(net.modules()).toHaveLength(8)
    expect(net.getSubmodule('2.2')).toBe(net.at(2) instanceof nn.Sequential ? (net.at(2) as nn.Sequential).at(2) : null)
    expectCode(() => net.getSubmodule('2.7'), 'ERR_ARGUMENT')
  })

  test("a module's own parameters come before its children's; the state dict puts buffers after them", () => {
    const m = new Custom()
    expect(m.namedParameters().map(([n]) => n)).toEqual(['scale', 'shift', 'body.0.weight', 'body.0.bias', 'body.2.weight', 'body.2.bias'])
    expect(Object.keys(m.stateDict())).toEqual(['scale', 'shift', 'running', 'body.0.weight', 'body.0.bias', 'body.2.weight', 'body.2.bias'])
    expect(m.namedBuffers().map(([n]) => n)).toEqual(['running', 'scratch'])
    expect(m.buffers()).toHaveLength(2)
    expect(m.namedParameters('', false).map(([n]) => n)).toEqual(['scale', 'shift'])
    expect(m.namedParameters('net').map(([n]) => n)[2]).toBe('net.body.0.weight')
    expect(Object.keys(m.stateDict('net'))[0]).toBe('net.scale')
  })

  test('a shared layer: parameters listed once, state dict names both places (as PyTorch)', () => {
    const shared = new nn.Linear(2, 2)
    const net = new nn.Sequential(shared, new nn.ReLU(), shared)
    expect(net.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias'])
    expect(Object.keys(net.stateDict())).toEqual(['0.weight', '0.bias', '2.weight', '2.bias'])
    expect(net.modules()).toHaveLength(3)
  })

  test('parameters are trainable leaves that survive tidy; buffers survive too', () => {
    const m = tidy(() => new Custom())
    for (const p of m.parameters()) {
      expect(p.isDisposed).toBe(false)
      expect(p.requiresGrad).toBe(true)
      expect(p.isLeaf).toBe(true)
    }
    for (const b of m.buffers()) {
      expect(b.isDisposed).toBe(false)
      expect(b.requiresGrad).toBe(false)
    }
  })

  test('bad registrations are refused', () => {
    class Bad extends nn.Module {
      forward(x: Tensor): Tensor {
        return x
      }
    }
    const m = new Bad()
    m.registerParameter('w', zeros([2]))
    expectCode(() => m.registerParameter('a.b', zeros([2])), 'ERR_ARGUMENT')
    expectCode(() => m.registerParameter('', zeros([2])), 'ERR_ARGUMENT')
    expectCode(() => m.registerBuffer('w', zeros([2])), 'ERR_ARGUMENT')
    expectCode(() => m.registerModule('w', new nn.ReLU()), 'ERR_ARGUMENT')
    expectCode(() => m.registerParameter('x', 3 as unknown as Tensor), 'ERR_ARGUMENT')
    expectCode(() => m.registerModule('x', {} as nn.Module), 'ERR_ARGUMENT')
    const leaf = tensor([1, 2], [2], { requiresGrad: true })
    expectCode(() => m.registerParameter('derived', leaf.mul(2)), 'ERR_ARGUMENT')
    expectCode(() => m.registerModule('self', m), 'ERR_ARGUMENT')
    const outer = new nn.Sequential(m)
    expectCode(() => m.registerModule('cycle', outer), 'ERR_ARGUMENT')
    // registering a name again replaces it in place (order kept)
    m.registerParameter('v', zeros([1]))
    m.registerParameter('w', ones([3]))
    expect(m.namedParameters().map(([n, t]) => [n, t.shape])).toEqual([['w', [3]], ['v', [1]]])
  })

  test('Sequential indexing, iteration, append and forward', () => {
    const s = new nn.Sequential(new nn.Tanh(), new nn.ReLU())
    expect(s.length).toBe(2)
    expect(s.at(0)).toBeInstanceOf(nn.Tanh)
    expect(s.at(-1)).toBeInstanceOf(nn.ReLU)
    expect([...s].map((m) => m.constructor.name)).toEqual(['Tanh', 'ReLU'])
    expectCode(() => s.at(2), 'ERR_ARGUMENT')
    expectCode(() => s.at(-3), 'ERR_ARGUMENT')
    s.append(new nn.LeakyReLU(0.5))
    expect(s.namedChildren().map(([n]) => n)).toEqual(['0', '1', '2'])
    tidy(() => {
      const x = tensor([-2, -0.5, 0.5, 2], [2, 2], { dtype: 'float64' })
      expectClose(s.forward(x), [-2, -0.5, 0.5, 2].map((v) => Math.max(Math.tanh(v), 0)), 1e-15)
      expect(new nn.Sequential().forward(x)).toBe(x)
    })
    expectCode(() => new nn.Sequential(3 as unknown as nn.Module), 'ERR_ARGUMENT')
    expect(s.toString()).toBe('Sequential(\n  (0): Tanh()\n  (1): ReLU()\n  (2): LeakyReLU(negative_slope=0.5)\n)')
  })
})

describe('loadStateDict', () => {
  test('copies values in place (identity kept), converting dtype', () => {
    manualSeed(1)
    const a = nested()
    manualSeed(2)
    const b = nested().to({ dtype: 'float64' })
    const before = b.parameters()
    const result = a.loadStateDict(b.stateDict())
    expect(result).toEqual({ missingKeys: [], unexpectedKeys: [] })
    expect(a.parameters()[0].dtype).toBe('float32')
    for (const [k, t] of Object.entries(a.stateDict())) expectClose(t, b.stateDict()[k].toArray(), 1e-7)
    expect(b.parameters()).toEqual(before)
  })

  test('strict: missing and unexpected keys are refused, naming them; non-strict reports them', () => {
    manualSeed(3)
    const a = new Custom()
    const good = new Custom().stateDict()
    const missing = { ...good }
    delete missing['body.2.bias']
    const extra = { ...good, 'body.9.weight': zeros([1]) }
    const before = snapshot(a)
    for (const d of [missing, extra]) {
      expectCode(() => a.loadStateDict(d), 'ERR_CHECKPOINT')
      expect(snapshot(a)).toEqual(before)
    }
    try {
      a.loadStateDict(missing)
    } catch (e) {
      expect((e as Error).message).toContain("missing keys: 'body.2.bias'")
    }
    try {
      a.loadStateDict(extra)
    } catch (e) {
      expect((e as Error).message).toContain("unexpected keys: 'body.9.weight'")
    }
    expect(a.loadStateDict(missing, { strict: false })).toEqual({ missingKeys: ['body.2.bias'], unexpectedKeys: [] })
    expect(a.loadStateDict(extra, { strict: false })).toEqual({ missingKeys: [], unexpectedKeys: ['body.9.weight'] })
    // the non-persistent buffer is not expected
    expect(Object.keys(good)).not.toContain('scratch')
  })

  test('a wrong shape (even non-strict) leaves the whole module unchanged', () => {
    manualSeed(4)
    const a = new Custom()
    const other = new Custom()
    const bad = { ...other.stateDict(), 'body.2.weight': zeros([3, 2]) } // transposed
    const before = snapshot(a)
    for (const strict of [true, false]) {
      expectCode(() => a.loadStateDict(bad, { strict }), 'ERR_CHECKPOINT')
      expect(snapshot(a)).toEqual(before)
    }
    try {
      a.loadStateDict(bad)
    } catch (e) {
      expect((e as Error).message).toContain("'body.2.weight' has shape [3, 2] but the module's is [2, 3]")
    }
    const disposed = zeros([2])
    disposed.dispose()
    expectCode(() => a.loadStateDict({ ...other.stateDict(), scale: disposed }), 'ERR_CHECKPOINT')
    expectCode(() => a.loadStateDict({ ...other.stateDict(), scale: [1, 2] as unknown as Tensor }), 'ERR_CHECKPOINT')
    expect(snapshot(a)).toEqual(before)
    expectCode(() => a.loadStateDict(null as unknown as Record<string, Tensor>), 'ERR_ARGUMENT')
  })
})

describe('to, train/eval, zeroGrad', () => {
  test("to({ dtype: 'float64' }) converts in place: same objects, values kept, optimiser still attached", () => {
    manualSeed(5)
    const m = new Custom()
    const params = m.parameters()
    const buffers = m.buffers()
    const values = params.map((p) => Array.from(p.toArray()))
    params[0].grad = ones([2])
    const opt = new optim.SGD(m.parameters(), { lr: 0.5 })
    expect(m.to({ dtype: 'float64' })).toBe(m)
    expect(m.parameters()).toEqual(params)
    m.parameters().forEach((p, i) => {
      expect(p).toBe(params[i])
      expect(p.dtype).toBe('float64')
      expect(Array.from(p.toArray())).toEqual(values[i])
      expect(p.requiresGrad).toBe(true)
    })
    expect(m.buffers()).toEqual(buffers)
    for (const b of buffers) expect(b.dtype).toBe('float64')
    expect((params[0].grad as Tensor).dtype).toBe('float64')
    expect((m.body.at(0) as nn.Linear).weight).toBe(params[2])
    opt.step()
    expect(Array.from(params[0].toArray())).toEqual([0.5, 0.5])
    expect(m.to({})).toBe(m)
    expect(m.to({ device: 'cpu' })).toBe(m)
    if (!cuda.isAvailable()) expectCode(() => m.to({ device: 'cuda' }), 'ERR_CUDA_UNAVAILABLE') // (with a GPU: test/cuda/tensor.test.ts)
    expectCode(() => m.to({ dtype: 'float16' as 'float32' }), 'ERR_DTYPE')
    expectCode(() => m.to({ device: 'tpu' as 'cpu' }), 'ERR_ARGUMENT')
  })

  test('train and eval reach every descendant', () => {
    const net = nested()
    expect(net.modules().every((m) => m.training)).toBe(true)
    expect(net.eval()).toBe(net)
    expect(net.modules().every((m) => !m.training)).toBe(true)
    net.train()
    expect(net.modules().every((m) => m.training)).toBe(true)
    net.train(false)
    expect(net.at(2).training).toBe(false)
  })

  test('zeroGrad drops and frees every gradient', () => {
    const net = nested()
    const grads = net.parameters().map((p) => (p.grad = zeros([...p.shape])))
    net.zeroGrad()
    expect(net.parameters().every((p) => p.grad === null)).toBe(true)
    expect(grads.every((g) => g.isDisposed)).toBe(true)
  })

  test('apply visits children before parents', () => {
    const seen: string[] = []
    nested().apply((m) => seen.push(m.constructor.name))
    expect(seen).toEqual(['Linear', 'ReLU', 'Linear', 'Tanh', 'Linear', 'Sequential', 'Dropout', 'Sequential'])
  })
})

describe('default dtype and initialisation', () => {
  afterEach(() => setDefaultDtype('float32'))

  test('parameters take the default dtype unless one is given', () => {
    expect(getDefaultDtype()).toBe('float32')
    expect(new nn.Linear(2, 3).weight.dtype).toBe('float32')
    setDefaultDtype('float64')
    const l = new nn.Linear(2, 3)
    expect(l.weight.dtype).toBe('float64')
    expect((l.bias as Tensor).dtype).toBe('float64')
    expect(new nn.Conv2d(1, 2, 3).weight.dtype).toBe('float64')
    expect(new nn.Linear(2, 3, { dtype: 'float32' }).weight.dtype).toBe('float32')
  })

  test.each([
    ['Linear(50, 20)', () => new nn.Linear(50, 20, { dtype: 'float64' }), 50],
    ['Linear(3, 400)', () => new nn.Linear(3, 400, { dtype: 'float64' }), 3],
    ['Conv2d(3, 8, 3)', () => new nn.Conv2d(3, 8, 3, { dtype: 'float64' }), 27],
    ['Conv2d(4, 16, [1, 5])', () => new nn.Conv2d(4, 16, [1, 5], { dtype: 'float64' }), 20],
  ] as [string, () => nn.Linear | nn.Conv2d, number][])('%s: weight and bias ~ U(-1/sqrt(fanIn), 1/sqrt(fanIn))', (_n, make, fanIn) => {
    manualSeed(11)
    const layer = make()
    const bound = 1 / Math.sqrt(fanIn)
    for (const t of [layer.weight, layer.bias as Tensor]) {
      const v = Array.from(t.toArray())
      expect(Math.max(...v.map(Math.abs))).toBeLessThanOrEqual(bound)
      if (v.length >= 100) {
        // uniform over the whole interval: the extremes come close to the bounds, the mean close to 0
        expect(Math.max(...v)).toBeGreaterThan(0.9 * bound)
        expect(Math.min(...v)).toBeLessThan(-0.9 * bound)
        expect(Math.abs(v.reduce((a, b) => a + b, 0) / v.length)).toBeLessThan(0.15 * bound)
      }
    }
    // seeded: the same seed draws the same parameters
    manualSeed(11)
    expect(Array.from(make().weight.toArray())).toEqual(Array.from(layer.weight.toArray()))
  })

  test('layer arguments are validated', () => {
    expectCode(() => new nn.Linear(-1, 2), 'ERR_ARGUMENT')
    expectCode(() => new nn.Linear(2.5, 2), 'ERR_ARGUMENT')
    expectCode(() => new nn.Linear(2, 2, { bias: 1 as unknown as boolean }), 'ERR_ARGUMENT')
    expectCode(() => new nn.Linear(2, 2, { dtype: 'int8' as 'float32' }), 'ERR_DTYPE')
    expectCode(() => new nn.Conv2d(0, 2, 3), 'ERR_ARGUMENT')
    expectCode(() => new nn.Conv2d(1, 2, [3] as unknown as number), 'ERR_ARGUMENT')
    expectCode(() => new nn.Conv2d(1, 2, 3, { stride: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new nn.Conv2d(1, 2, 3, { padding: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new nn.LeakyReLU(NaN), 'ERR_ARGUMENT')
    expectCode(() => new nn.ELU('1' as unknown as number), 'ERR_ARGUMENT')
    expect(new nn.Linear(2, 3, { bias: false }).bias).toBeNull()
    expect(new nn.Conv2d(2, 3, 3, { bias: false }).namedParameters().map(([n]) => n)).toEqual(['weight'])
    expect(new nn.Conv2d(2, 3, 3, { stride: [2, 1], padding: 1 }).padding).toEqual([1, 1])
  })
})

describe('nn.init', () => {
  const stats = (t: Tensor) => {
    const v = Array.from(t.toArray())
    const mean = v.reduce((a, b) => a + b, 0) / v.length
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length)
    return { min: Math.min(...v), max: Math.max(...v), mean, std }
  }

  test('constant initialisers', () => {
    tidy(() => {
      const t = tensor(randomValues(6, 1), [2, 3], { requiresGrad: true })
      expect(nn.init.zeros_(t)).toBe(t)
      expect(Array.from(t.toArray())).toEqual([0, 0, 0, 0, 0, 0])
      nn.init.ones_(t)
      expect(Array.from(t.toArray())).toEqual([1, 1, 1, 1, 1, 1])
      nn.init.constant_(t, -2.5)
      expect(Array.from(t.toArray())).toEqual([-2.5, -2.5, -2.5, -2.5, -2.5, -2.5])
      // in place and off the tape: still a leaf, still trainable
      expect(t.isLeaf).toBe(true)
      expect(t.requiresGrad).toBe(true)
    })
  })

  test('random initialisers have the right ranges and spreads', () => {
    tidy(() => {
      manualSeed(21)
      const t = zeros([100, 200], { dtype: 'float64' }) // fanIn 200, fanOut 100
      nn.init.uniform_(t, -0.3, 0.7)
      let s = stats(t)
      expect(s.min).toBeGreaterThanOrEqual(-0.3)
      expect(s.max).toBeLessThanOrEqual(0.7)
      expect(Math.abs(s.mean - 0.2)).toBeLessThan(0.01)
      nn.init.normal_(t, 1, 2)
      s = stats(t)
      expect(Math.abs(s.mean - 1)).toBeLessThan(0.05)
      expect(Math.abs(s.std / 2 - 1)).toBeLessThan(0.03)
      const xb = Math.sqrt(6 / 300)
      nn.init.xavierUniform_(t)
      s = stats(t)
      expect(s.max).toBeLessThanOrEqual(xb)
      expect(s.max).toBeGreaterThan(0.99 * xb)
      nn.init.xavierNormal_(t, 2)
      expect(Math.abs(stats(t).std / (2 * Math.sqrt(2 / 300)) - 1)).toBeLessThan(0.03)
      const kb = Math.sqrt(2) * Math.sqrt(3 / 200) // a = 0, leaky_relu gain sqrt(2), fan_in
      nn.init.kaimingUniform_(t)
      s = stats(t)
      expect(s.max).toBeLessThanOrEqual(kb)
      expect(s.max).toBeGreaterThan(0.99 * kb)
      nn.init.kaimingUniform_(t, Math.sqrt(5))
      expect(stats(t).max).toBeLessThanOrEqual(1 / Math.sqrt(200) + 1e-15)
      nn.init.kaimingUniform_(t, { mode: 'fan_out', nonlinearity: 'relu' })
      const kbOut = Math.sqrt(2) * Math.sqrt(3 / 100)
      expect(stats(t).max).toBeGreaterThan(0.99 * kbOut)
      expect(stats(t).max).toBeLessThanOrEqual(kbOut)
      expect(nn.init.calculateGain('tanh')).toBeCloseTo(5 / 3)
      expect(nn.init.calculateFanInAndFanOut(zeros([4, 3, 5, 2]))).toEqual([30, 40])
    })
  })

  test('bad arguments', () => {
    tidy(() => {
      expectCode(() => nn.init.xavierUniform_(zeros([5])), 'ERR_SHAPE')
      expectCode(() => nn.init.uniform_(zeros([5]), 1, 0), 'ERR_ARGUMENT')
      expectCode(() => nn.init.normal_(zeros([5]), 0, -1), 'ERR_ARGUMENT')
      expectCode(() => nn.init.kaimingUniform_(zeros([2, 2]), { mode: 'fanin' as 'fan_in' }), 'ERR_ARGUMENT')
      expectCode(() => nn.init.calculateGain('swish' as 'relu'), 'ERR_ARGUMENT')
      expectCode(() => nn.init.zeros_([1, 2] as unknown as Tensor), 'ERR_ARGUMENT')
    })
  })
})

describe('activations and Dropout', () => {
  test('activation layers match plain references', () => {
    tidy(() => {
      const v = randomValues(24, 3, -3, 3)
      const x = tensor(v, [2, 3, 4], { dtype: 'float64' })
      const cases: [nn.Module, (z: number) => number][] = [
        [new nn.ReLU(), (z) => Math.max(z, 0)],
        [new nn.LeakyReLU(), (z) => (z > 0 ? z : 0.01 * z)],
        [new nn.LeakyReLU(0.2), (z) => (z > 0 ? z : 0.2 * z)],
        [new nn.Tanh(), Math.tanh],
        [new nn.Sigmoid(), (z) => 1 / (1 + Math.exp(-z))],
        [new nn.ELU(), (z) => (z > 0 ? z : Math.expm1(z))],
        [new nn.ELU(0.5), (z) => (z > 0 ? z : 0.5 * Math.expm1(z))],
        [new nn.Identity(), (z) => z],
      ]
      for (const [m, ref] of cases) expectClose(m.forward(x) as Tensor, v.map(ref), 1e-15)
      expect((new nn.Flatten().forward(x) as Tensor).shape).toEqual([2, 12])
    })
  })

  test('Dropout: identity in eval mode, inverted dropout with p of zeros in training mode', () => {
    tidy(() => {
      const n = 20000
      const v = randomValues(n, 4, 0.5, 1.5)
      const x = tensor(v, [100, 200], { dtype: 'float64', requiresGrad: true })
      const d = new nn.Dropout(0.3)
      d.eval()
      expect(d.forward(x)).toBe(x)
      d.train()
      manualSeed(9)
      const y = d.forward(x)
      const out = y.toArray()
      let zerosCount = 0
      let worst = 0
      out.forEach((o, i) => {
        if (o === 0) zerosCount++
        else worst = Math.max(worst, Math.abs(o - v[i] / 0.7) / Math.abs(o))
      })
      expect(worst).toBeLessThanOrEqual(1e-15)
      // Binomial(20000, 0.3): standard deviation ~65, so 0.3 ± 0.015 is over 4.5 sigma
      expect(Math.abs(zerosCount / n - 0.3)).toBeLessThan(0.015)
      // the gradient is the same mask, scaled
      y.sum().backward()
      const g = (x.grad as Tensor).toArray()
      expectClose(g, Array.from(out, (o) => (o === 0 ? 0 : 1 / 0.7)), 1e-15)
      // seeded
      manualSeed(9)
      expect(Array.from(d.forward(x).toArray())).toEqual(Array.from(out))
      expect(new nn.Dropout(0).forward(x)).toBe(x)
      expect(Array.from(new nn.Dropout(1).forward(x).toArray()).every((o) => o === 0)).toBe(true)
      expect(new nn.Dropout().p).toBe(0.5)
    })
    expectCode(() => new nn.Dropout(1.5), 'ERR_ARGUMENT')
    expectCode(() => new nn.Dropout(-0.1), 'ERR_ARGUMENT')
    expectCode(() => new nn.Dropout(NaN), 'ERR_ARGUMENT')
    expectCode(() => new nn.ReLU().forward(3 as unknown as Tensor), 'ERR_ARGUMENT')
  })

  test('Dropout inside tidy leaves no tensors behind', () => {
    const d = new nn.Dropout(0.5)
    const x = tensor(randomValues(10, 1), [10], { requiresGrad: true })
    const before = memory().tensors
    tidy(() => {
      d.forward(x).sum().backward()
    })
    ;(x.grad as Tensor).dispose()
    x.grad = null
    expect(memory().tensors).toBe(before)
    x.dispose()
  })
})

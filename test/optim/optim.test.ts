import { memory, optim, tensor, Tensor, tidy } from '../../lib'
import { bindingFor } from '../../lib/binding'
import type { OptimBinding } from '../../lib/optim/optimizer'
import { expectClose, expectCode, randomValues, relErr } from '../helpers'

type DT = 'float32' | 'float64'

// ---------------------------------------------------------------------------------------------------------
// Plain-JS float64 reimplementations of torch.optim's formulas (written from PyTorch's documentation of
// the single-tensor update, independently of the kernels).

interface AdamCfg { lr: number; betas: [number, number]; eps: number; weightDecay: number }
interface AdamRefState { step: number; m: number[]; v: number[] }

function adamRef(p: number[], g: number[], s: AdamRefState, c: AdamCfg): void {
  s.step++
  const [b1, b2] = c.betas
  const bc1 = 1 - b1 ** s.step
  const bc2 = 1 - b2 ** s.step
  for (let k = 0; k < p.length; k++) {
    const grad = c.weightDecay !== 0 ? g[k] + c.weightDecay * p[k] : g[k]
    s.m[k] = b1 * s.m[k] + (1 - b1) * grad
    s.v[k] = b2 * s.v[k] + (1 - b2) * grad * grad
    const denom = Math.sqrt(s.v[k]) / Math.sqrt(bc2) + c.eps
    p[k] -= (c.lr / bc1) * (s.m[k] / denom)
  }
}

interface SgdCfg { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean }

function sgdRef(p: number[], g: number[], buf: { b: number[] | null }, c: SgdCfg): void {
  let d = g.map((x, k) => (c.weightDecay !== 0 ? x + c.weightDecay * p[k] : x))
  if (c.momentum !== 0) {
    if (buf.b === null) buf.b = d.slice()
    else buf.b = buf.b.map((b, k) => c.momentum * b + (1 - c.dampening) * d[k])
    const b = buf.b
    d = c.nesterov ? d.map((x, k) => x + c.momentum * b[k]) : b.slice()
  }
  for (let k = 0; k < p.length; k++) p[k] -= c.lr * d[k]
}

// Three parameters of different shapes (one 0-d); parameter 1 gets a gradient only on even steps, so its
// step count (and bias correction) differs from the others'.
const shapes = [[3, 4], [5], []]
const size = (s: number[]) => s.reduce((a, b) => a * b, 1)
const hasGrad = (i: number, step: number) => i !== 1 || step % 2 === 0
const gradAt = (i: number, step: number) => randomValues(size(shapes[i]), 1000 + 31 * step + i, -2, 2)

function runOptimizer(
  dtype: DT,
  make: (params: Tensor[]) => optim.Optimizer,
  steps: number,
  check: (step: number, params: Tensor[]) => void,
): Tensor[] {
  const params = shapes.map((s, i) => tensor(randomValues(size(s), 10 + i), s, { dtype, requiresGrad: true }))
  const opt = make(params)
  for (let t = 0; t < steps; t++) {
    opt.zeroGrad()
    params.forEach((p, i) => {
      if (hasGrad(i, t)) p.grad = tensor(gradAt(i, t), shapes[i], { dtype })
    })
    opt.step()
    check(t, params)
  }
  return params
}

describe('Adam', () => {
  const configs: [string, AdamCfg][] = [
    ['defaults', { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 }],
    ['weight decay, other betas', { lr: 0.05, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.1 }],
    ['beta1 above 0.5 boundary of lerp', { lr: 0.02, betas: [0.3, 0.9], eps: 1e-8, weightDecay: 0.01 }],
  ]
  test.each(configs)('float64 matches PyTorch formulas over 6 steps (%s), float32 agrees', (_name, cfg) => {
    tidy(() => {
      const refP = shapes.map((s, i) => randomValues(size(s), 10 + i))
      const refS: AdamRefState[] = shapes.map((s) => ({ step: 0, m: new Array(size(s)).fill(0), v: new Array(size(s)).fill(0) }))
      const history: number[][][] = []
      const opts = _name === 'defaults' ? undefined : { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay }
      runOptimizer('float64', (ps) => new optim.Adam(ps, opts), 6, (t, params) => {
        params.forEach((p, i) => {
          if (hasGrad(i, t)) adamRef(refP[i], gradAt(i, t), refS[i], cfg)
          expectClose(p, refP[i], 1e-13)
        })
        history.push(refP.map((r) => r.slice()))
      })
      runOptimizer('float32', (ps) => new optim.Adam(ps, opts), 6, (t, params) => {
        params.forEach((p, i) => {
          expect(p.dtype).toBe('float32')
          expectClose(p, history[t][i], 1e-5)
        })
      })
    })
  })

  test('step counts are per parameter; parameters without a gradient are untouched', () => {
    tidy(() => {
      const a = tensor([1, 2], [2], { dtype: 'float64', requiresGrad: true })
      const b = tensor([3, 4], [2], { dtype: 'float64', requiresGrad: true })
      const opt = new optim.Adam([a, b], { lr: 0.1 })
      a.grad = tensor([1, -1], [2], { dtype: 'float64' })
      opt.step()
      opt.step()
      expect(Array.from(b.toArray())).toEqual([3, 4])
      expect(opt.stepCount(0)).toBe(2)
      expect(opt.stepCount(1)).toBe(0)
      // Adam's first steps move by ~lr in the direction of -sign(grad)
      expectClose(a, [1 - 0.2, 2 + 0.2], 1e-6)
    })
  })

  test('one native multi-tensor call per step, over every parameter that has a gradient', () => {
    tidy(() => {
      const N = bindingFor<OptimBinding>()
      const spy = jest.spyOn(N, 'adamStep')
      try {
        const ps = [0, 1, 2, 3].map((i) => tensor(randomValues(4, i), [4], { requiresGrad: true }))
        const opt = new optim.Adam(ps)
        ps.slice(0, 3).forEach((p) => (p.grad = tensor([1, 2, 3, 4], [4])))
        opt.step()
        expect(spy).toHaveBeenCalledTimes(1)
        expect(spy.mock.calls[0][0]).toHaveLength(3)
      } finally {
        spy.mockRestore()
      }
    })
  })

  test('lr can be changed between steps; stateDict/loadStateDict resume exactly', () => {
    tidy(() => {
      const cfg = { lr: 0.05, betas: [0.8, 0.95] as [number, number], eps: 1e-6, weightDecay: 0.1 }
      const paramsA = shapes.map((s, i) => tensor(randomValues(size(s), 10 + i), s, { dtype: 'float64', requiresGrad: true }))
      const optA = new optim.Adam(paramsA, cfg)
      const setGrads = (ps: Tensor[], t: number) => ps.forEach((p, i) => (p.grad = hasGrad(i, t) ? tensor(gradAt(i, t), shapes[i], { dtype: 'float64' }) : null))
      for (let t = 0; t < 3; t++) {
        setGrads(paramsA, t)
        optA.step()
      }
      const state = optA.stateDict()
      expect(Object.keys(state).sort()).toEqual(
        ['state.0.exp_avg', 'state.0.exp_avg_sq', 'state.0.step', 'state.1.exp_avg', 'state.1.exp_avg_sq', 'state.1.step', 'state.2.exp_avg', 'state.2.exp_avg_sq', 'state.2.step'],
      )
      expect(state['state.0.step'].item()).toBe(3)
      expect(state['state.1.step'].item()).toBe(2) // parameter 1 had gradients at steps 0 and 2 only
      expect(state['state.2.step'].shape).toEqual([])
      // a second optimiser over copies of the parameters, resumed from the state dict
      const paramsB = paramsA.map((p) => tensor(p.toArray(), [...p.shape], { dtype: 'float64', requiresGrad: true }))
      const optB = new optim.Adam(paramsB, cfg)
      optB.loadStateDict(state)
      for (const t of [3, 4]) {
        setGrads(paramsA, t)
        setGrads(paramsB, t)
        optA.step()
        optB.step()
      }
      paramsA.forEach((p, i) => expect(Array.from(paramsB[i].toArray())).toEqual(Array.from(p.toArray())))
      // changing lr changes the next step only
      optA.lr = 0
      const before = paramsA.map((p) => Array.from(p.toArray()))
      setGrads(paramsA, 5)
      optA.step()
      paramsA.forEach((p, i) => expect(Array.from(p.toArray())).toEqual(before[i]))
    })
  })

  test('loadStateDict refuses bad state and leaves the optimiser unchanged', () => {
    tidy(() => {
      const p = tensor([1, 2, 3], [3], { dtype: 'float64', requiresGrad: true })
      const opt = new optim.Adam([p], { lr: 0.1 })
      p.grad = tensor([1, 1, 1], [3], { dtype: 'float64' })
      opt.step()
      const good = opt.stateDict()
      const bad = (patch: Record<string, Tensor | undefined>) => {
        const d: Record<string, Tensor> = { ...good }
        for (const [k, v] of Object.entries(patch)) {
          if (v === undefined) delete d[k]
          else d[k] = v
        }
        return d
      }
      const cases = [
        bad({ 'state.0.exp_avg': tensor([1, 2], [2], { dtype: 'float64' }) }), // wrong shape
        bad({ 'state.1.exp_avg': tensor([1, 2, 3], [3], { dtype: 'float64' }) }), // no parameter 1
        bad({ 'state.0.exp_avg_sq': undefined }), // incomplete
        bad({ 'state.0.momentum': tensor([1, 2, 3], [3]) }), // unknown name
        bad({ 'state.0.step': tensor([1.5], [1]) }), // not an integer count
      ]
      for (const d of cases) expectCode(() => opt.loadStateDict(d), 'ERR_CHECKPOINT')
      const after = opt.stateDict()
      for (const k of Object.keys(good)) expect(Array.from(after[k].toArray())).toEqual(Array.from(good[k].toArray()))
    })
  })

  test('state follows a parameter converted to float64 in place', () => {
    tidy(() => {
      const p = tensor([1, 2, 3], [3], { dtype: 'float32', requiresGrad: true })
      const opt = new optim.Adam([p], { lr: 0.1 })
      p.grad = tensor([1, 1, 1], [3], { dtype: 'float32' })
      opt.step()
      p.grad = null
      p._assign(bindingFor<object>().cast(p.handle, 'float64'))
      p.grad = tensor([1, 1, 1], [3], { dtype: 'float64' })
      opt.step()
      expect(p.dtype).toBe('float64')
      expect(opt.stateDict()['state.0.exp_avg'].dtype).toBe('float64')
    })
  })

  test('options are validated', () => {
    const p = tensor([1], [1], { requiresGrad: true })
    expectCode(() => new optim.Adam([p], { lr: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam([p], { lr: NaN }), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam([p], { betas: [1, 0.9] }), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam([p], { betas: [0.9, -0.1] }), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam([p], { betas: [0.9] as unknown as [number, number] }), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam([p], { eps: -1e-8 }), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam([p], { weightDecay: -0.1 }), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam([p], { weight_decay: 0.1 } as unknown as optim.AdamOptions), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam([]), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam([p, p]), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam([p, 3] as unknown as Tensor[]), 'ERR_ARGUMENT')
    expectCode(() => new optim.Adam(null as unknown as Tensor[]), 'ERR_ARGUMENT')
    const opt = new optim.Adam([p])
    expectCode(() => (opt.lr = -3), 'ERR_ARGUMENT')
    p.dispose()
    expectCode(() => new optim.Adam([p]), 'ERR_DISPOSED')
  })

  test('a gradient of the wrong dtype is refused natively and nothing changes', () => {
    tidy(() => {
      const p = tensor([1, 2], [2], { dtype: 'float64', requiresGrad: true })
      const opt = new optim.Adam([p])
      p.grad = tensor([1, 1], [2], { dtype: 'float32' })
      expectCode(() => opt.step(), 'ERR_DTYPE')
      expect(Array.from(p.toArray())).toEqual([1, 2])
      expect(opt.stepCount(0)).toBe(0)
      expect(Object.keys(opt.stateDict())).toEqual([])
    })
  })
})

describe('SGD', () => {
  const configs: [string, SgdCfg][] = [
    ['plain', { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false }],
    ['weight decay', { lr: 0.05, momentum: 0, dampening: 0, weightDecay: 0.2, nesterov: false }],
    ['momentum', { lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false }],
    ['momentum, dampening, decay', { lr: 0.05, momentum: 0.8, dampening: 0.3, weightDecay: 0.1, nesterov: false }],
    ['nesterov with decay', { lr: 0.03, momentum: 0.9, dampening: 0, weightDecay: 0.05, nesterov: true }],
  ]
  test.each(configs)('float64 matches PyTorch formulas over 6 steps (%s), float32 agrees', (_name, cfg) => {
    tidy(() => {
      const refP = shapes.map((s, i) => randomValues(size(s), 10 + i))
      const bufs = shapes.map(() => ({ b: null as number[] | null }))
      const history: number[][][] = []
      runOptimizer('float64', (ps) => new optim.SGD(ps, cfg), 6, (t, params) => {
        params.forEach((p, i) => {
          if (hasGrad(i, t)) sgdRef(refP[i], gradAt(i, t), bufs[i], cfg)
          expectClose(p, refP[i], 1e-14)
        })
        history.push(refP.map((r) => r.slice()))
      })
      runOptimizer('float32', (ps) => new optim.SGD(ps, cfg), 6, (t, params) => {
        params.forEach((p, i) => expectClose(p, history[t][i], 1e-5))
      })
    })
  })

  test('momentum buffers round-trip through stateDict', () => {
    tidy(() => {
      const cfg = { lr: 0.05, momentum: 0.9 }
      const a = tensor([1, 2, 3], [3], { dtype: 'float64', requiresGrad: true })
      const optA = new optim.SGD([a], cfg)
      a.grad = tensor([1, -2, 0.5], [3], { dtype: 'float64' })
      optA.step()
      const state = optA.stateDict()
      expect(Object.keys(state)).toEqual(['state.0.momentum_buffer'])
      const b = tensor(a.toArray(), [3], { dtype: 'float64', requiresGrad: true })
      const optB = new optim.SGD([b], cfg)
      optB.loadStateDict(state)
      for (const p of [a, b]) p.grad = tensor([0.3, 0.1, -1], [3], { dtype: 'float64' })
      optA.step()
      optB.step()
      expect(Array.from(b.toArray())).toEqual(Array.from(a.toArray()))
    })
  })

  test('options are validated', () => {
    const p = tensor([1], [1], { requiresGrad: true })
    expectCode(() => new optim.SGD([p], { lr: -0.1 }), 'ERR_ARGUMENT')
    expectCode(() => new optim.SGD([p], { momentum: -0.5 }), 'ERR_ARGUMENT')
    expectCode(() => new optim.SGD([p], { nesterov: true }), 'ERR_ARGUMENT')
    expectCode(() => new optim.SGD([p], { momentum: 0.9, dampening: 0.1, nesterov: true }), 'ERR_ARGUMENT')
    expectCode(() => new optim.SGD([p], { weightDecay: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new optim.SGD([p], { nesterov: 1 as unknown as boolean }), 'ERR_ARGUMENT')
    expectCode(() => new optim.SGD([p], { momentun: 0.9 } as unknown as optim.SGDOptions), 'ERR_ARGUMENT')
  })
})

describe('zeroGrad and memory', () => {
  test('zeroGrad sets gradients to null and frees them', () => {
    const p = tensor([1, 2], [2], { requiresGrad: true })
    const opt = new optim.SGD([p], { lr: 0.1 })
    const g = tensor([1, 1], [2])
    p.grad = g
    opt.zeroGrad()
    expect(p.grad).toBeNull()
    expect(g.isDisposed).toBe(true)
    p.dispose()
  })

  test('repeated steps leave the number of live tensors unchanged', () => {
    const ps = [tensor(randomValues(6, 1), [2, 3], { requiresGrad: true }), tensor(randomValues(3, 2), [3], { requiresGrad: true })]
    for (const opt of [new optim.Adam(ps), new optim.SGD(ps, { momentum: 0.9 })]) {
      const once = () => {
        opt.zeroGrad()
        ps.forEach((p) => (p.grad = tensor(randomValues(p.size, 3), [...p.shape])))
        opt.step()
        optim.clipGradNorm(ps, 1)
      }
      once() // creates the state
      const before = memory().tensors
      for (let i = 0; i < 5; i++) once()
      expect(memory().tensors).toBe(before)
      opt.zeroGrad()
    }
  })
})

describe('clipGradNorm', () => {
  function normRef(gs: number[][], p: number): number {
    const all = gs.flat()
    if (p === Infinity) return Math.max(...all.map(Math.abs))
    return all.reduce((s, x) => s + Math.abs(x) ** p, 0) ** (1 / p)
  }

  test.each([[2], [1], [3], [Infinity]])('norm type %p: returns the total norm and scales every gradient by min(1, max/(total+1e-6))', (p) => {
    tidy(() => {
      for (const dtype of ['float64', 'float32'] as DT[]) {
        const gs = [randomValues(12, 5, -3, 3), randomValues(7, 6, -3, 3), randomValues(1, 7, -3, 3)]
        const params = [tensor(randomValues(12, 1), [3, 4], { dtype, requiresGrad: true }), tensor(randomValues(7, 2), [7], { dtype, requiresGrad: true }),
          tensor([0.5], [], { dtype, requiresGrad: true }), tensor([1, 2], [2], { dtype, requiresGrad: true })]
        params.forEach((q, i) => {
          if (i < 3) q.grad = tensor(gs[i], [...q.shape], { dtype })
        })
        const total = normRef(gs, p)
        const maxNorm = total / 3
        const got = optim.clipGradNorm(params, maxNorm, p)
        expect(Math.abs(got - total) / total).toBeLessThan(dtype === 'float64' ? 1e-14 : 1e-6)
        const coef = Math.min(1, maxNorm / (total + 1e-6))
        params.slice(0, 3).forEach((q, i) => expectClose(q.grad as Tensor, gs[i].map((x) => x * coef), dtype === 'float64' ? 1e-14 : 1e-6))
        expect(params[3].grad).toBeNull()
        // below the bound the coefficient clamps to 1 and nothing changes
        const clipped = params.slice(0, 3).map((q) => Array.from((q.grad as Tensor).toArray()))
        optim.clipGradNorm(params, 1e9, p)
        params.slice(0, 3).forEach((q, i) => expect(Array.from((q.grad as Tensor).toArray())).toEqual(clipped[i]))
      }
    })
  })

  test("'inf' is accepted; no gradients gives 0; large tensors (threaded path) agree with the reference", () => {
    tidy(() => {
      const a = tensor([3, -4], [2], { dtype: 'float64', requiresGrad: true })
      expect(optim.clipGradNorm([a], 1)).toBe(0)
      a.grad = tensor([3, -4], [2], { dtype: 'float64' })
      expect(optim.clipGradNorm(a, 100, 'inf')).toBe(4)
      const n = 300_000
      const values = randomValues(n, 11, -1, 1)
      const big = tensor(values, [n], { dtype: 'float64', requiresGrad: true })
      big.grad = tensor(values, [n], { dtype: 'float64' })
      const total = Math.sqrt(values.reduce((s, x) => s + x * x, 0))
      const got = optim.clipGradNorm([big, a], 1)
      const expected = Math.sqrt(total * total + 25)
      expect(Math.abs(got - expected) / expected).toBeLessThan(1e-13)
      const coef = 1 / (expected + 1e-6)
      expect(relErr((big.grad as Tensor).toArray(), values.map((x) => x * coef))).toBeLessThan(1e-14)
    })
  })

  test('a NaN gradient gives a NaN norm (not silently unclipped gradients)', () => {
    tidy(() => {
      const a = tensor([1, NaN], [2], { dtype: 'float64', requiresGrad: true })
      a.grad = tensor([1, NaN], [2], { dtype: 'float64' })
      expect(optim.clipGradNorm([a], 1)).toBeNaN()
      expect(Number.isNaN((a.grad as Tensor).toArray()[0])).toBe(true)
    })
  })

  test('arguments are validated', () => {
    const a = tensor([1], [1], { requiresGrad: true })
    expectCode(() => optim.clipGradNorm([a], -1), 'ERR_ARGUMENT')
    expectCode(() => optim.clipGradNorm([a], NaN), 'ERR_ARGUMENT')
    expectCode(() => optim.clipGradNorm([a], 1, 0), 'ERR_ARGUMENT')
    expectCode(() => optim.clipGradNorm([a], 1, 'max' as unknown as number), 'ERR_ARGUMENT')
    expectCode(() => optim.clipGradNorm(5 as unknown as Tensor[], 1), 'ERR_ARGUMENT')
    a.dispose()
  })
})

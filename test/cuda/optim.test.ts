/**
 * Adam, SGD and clipGradNorm on the GPU (cuda/optim.cu) against the CPU: the same parameters and gradients on
 * both devices, several steps, parameters of sizes that do not divide 256 (a 0-d one, 70001 elements), and
 * float32 and float64 parameters mixed in one optimiser. The kernels use the CPU's order of operations
 * without fused multiply-adds, so they agree to the last bits; the tolerances below leave a little room.
 */
import { optim, tensor, Tensor, tidy } from '../../lib'
import { expectCode, randomValues } from '../helpers'
import { describeCuda, expectRel, values } from './compare'

type DT = 'float32' | 'float64'
type Device = 'cpu' | 'cuda'
const tolOf = (dtype: DT) => (dtype === 'float32' ? 1e-6 : 1e-13)

const size = (s: number[]) => s.reduce((a, b) => a * b, 1)
const shapes = [[3, 4], [5], [], [257], [70001]]

/** Parameters on `device` (dtypes[i] for parameter i), stepped `steps` times; parameter 1 skips odd steps. */
function train(device: Device, dtypes: DT[], make: (ps: Tensor[]) => optim.Optimizer, steps: number): number[][] {
  const params = shapes.map((s, i) => tensor(randomValues(size(s), 50 + i), s, { dtype: dtypes[i], device, requiresGrad: true }))
  const opt = make(params)
  for (let t = 0; t < steps; t++) {
    opt.zeroGrad()
    params.forEach((p, i) => {
      if (i !== 1 || t % 2 === 0) p.grad = tensor(randomValues(size(shapes[i]), 700 + 13 * t + i, -2, 2), shapes[i], { dtype: dtypes[i], device })
    })
    opt.step()
  }
  const out = params.map((p) => values(p))
  params.forEach((p) => p.dispose())
  return out
}

function compareTraining(dtypes: DT[], make: (ps: Tensor[]) => optim.Optimizer, steps = 4): void {
  const cpu = train('cpu', dtypes, make, steps)
  const gpu = train('cuda', dtypes, make, steps)
  cpu.forEach((c, i) => expectRel(gpu[i], c, tolOf(dtypes[i]), `parameter ${i} (${dtypes[i]})`))
}

const f32 = shapes.map((): DT => 'float32')
const f64 = shapes.map((): DT => 'float64')
const mixed = shapes.map((_, i): DT => (i % 2 === 0 ? 'float32' : 'float64'))

describeCuda('Adam on CUDA', () => {
  for (const [name, dtypes] of [['float32', f32], ['float64', f64], ['mixed float32/float64', mixed]] as [string, DT[]][]) {
    test(`${name}: defaults`, () => compareTraining(dtypes, (ps) => new optim.Adam(ps)))
    test(`${name}: large lr, betas below 0.5 (the other lerp branch), weight decay`, () =>
      compareTraining(dtypes, (ps) => new optim.Adam(ps, { lr: 0.1, betas: [0.3, 0.6], eps: 1e-6, weightDecay: 0.01 })))
  }
  test('state lives on the parameters device', () => {
    tidy(() => {
      const p = tensor([1, 2, 3], [3], { device: 'cuda', requiresGrad: true })
      const opt = new optim.Adam([p])
      p.grad = tensor([0.1, 0.2, 0.3], [3], { device: 'cuda' })
      opt.step()
      const dict = opt.stateDict()
      // the moments are on the GPU (the step count is a CPU scalar)
      expect(dict['state.0.exp_avg'].device).toBe('cuda')
      expect(dict['state.0.exp_avg_sq'].device).toBe('cuda')
    })
  })
  test('a gradient on another device: ERR_DEVICE', () => {
    tidy(() => {
      const p = tensor([1, 2, 3], [3], { device: 'cuda', requiresGrad: true })
      const opt = new optim.Adam([p])
      p.grad = tensor([0.1, 0.2, 0.3], [3])
      expectCode(() => opt.step(), 'ERR_DEVICE')
      expect(values(p)).toEqual([1, 2, 3])
    })
  })
})

describeCuda('SGD on CUDA', () => {
  const configs: [string, ConstructorParameters<typeof optim.SGD>[1]][] = [
    ['plain', { lr: 0.1 }],
    ['momentum', { lr: 0.05, momentum: 0.9 }],
    ['momentum with dampening and weight decay', { lr: 0.05, momentum: 0.8, dampening: 0.3, weightDecay: 0.01 }],
    ['nesterov', { lr: 0.05, momentum: 0.9, nesterov: true }],
  ]
  for (const [name, cfg] of configs)
    for (const [dn, dtypes] of [['float32', f32], ['float64', f64], ['mixed', mixed]] as [string, DT[]][])
      test(`${name} (${dn})`, () => compareTraining(dtypes, (ps) => new optim.SGD(ps, cfg)))
  test('a parameter on another device: ERR_DEVICE', () => {
    tidy(() => {
      const a = tensor([1, 2], [2], { device: 'cuda', requiresGrad: true })
      const b = tensor([1, 2], [2], { requiresGrad: true })
      const opt = new optim.SGD([a, b], { lr: 0.1 })
      a.grad = tensor([1, 1], [2], { device: 'cuda' })
      b.grad = tensor([1, 1], [2])
      expectCode(() => opt.step(), 'ERR_DEVICE')
    })
  })
})

describeCuda('clipGradNorm on CUDA', () => {
  const clip = (device: Device, dtypes: DT[], maxNorm: number, normType: number, poison = false) =>
    tidy(() => {
      const ps = shapes.map((s, i) => tensor(randomValues(size(s), 80 + i), s, { dtype: dtypes[i], device, requiresGrad: true }))
      ps.forEach((p, i) => {
        const g = randomValues(size(shapes[i]), 900 + i, -3, 3)
        if (poison && i === 4) g[12345] = NaN
        p.grad = tensor(g, shapes[i], { dtype: dtypes[i], device })
      })
      const norm = optim.clipGradNorm(ps, maxNorm, normType)
      return { norm, grads: ps.map((p) => values(p.grad as Tensor)) }
    })

  for (const [dn, dtypes] of [['float32', f32], ['float64', f64], ['mixed', mixed]] as [string, DT[]][])
    for (const normType of [2, 1, 3, Infinity])
      for (const maxNorm of [0.5, 1e9]) // clipped, and left alone (coefficient 1)
        test(`${dn}, p = ${normType}, maxNorm = ${maxNorm}`, () => {
          const cpu = clip('cpu', dtypes, maxNorm, normType)
          const gpu = clip('cuda', dtypes, maxNorm, normType)
          expect(Math.abs(gpu.norm - cpu.norm)).toBeLessThanOrEqual(1e-12 * cpu.norm)
          cpu.grads.forEach((c, i) => expectRel(gpu.grads[i], c, tolOf(dtypes[i]), `gradient ${i}`))
        })

  test('a NaN gradient gives a NaN norm and NaN gradients, as on the CPU', () => {
    for (const normType of [2, Infinity]) {
      const cpu = clip('cpu', f32, 1, normType, true)
      const gpu = clip('cuda', f32, 1, normType, true)
      expect(Number.isNaN(cpu.norm)).toBe(true)
      expect(Number.isNaN(gpu.norm)).toBe(true)
      gpu.grads.forEach((g, i) => expect(g.every((v, k) => Number.isNaN(v) === Number.isNaN(cpu.grads[i][k]))).toBe(true))
    }
  })

  test('empty gradients: norm 0', () => {
    tidy(() => {
      const p = tensor([], [0], { device: 'cuda', requiresGrad: true })
      p.grad = tensor([], [0], { device: 'cuda' })
      expect(optim.clipGradNorm([p], 1)).toBe(0)
    })
  })

  test('gradients on two devices: ERR_DEVICE', () => {
    tidy(() => {
      const a = tensor([1, 2], [2], { device: 'cuda', requiresGrad: true })
      const b = tensor([1, 2], [2], { requiresGrad: true })
      a.grad = tensor([1, 1], [2], { device: 'cuda' })
      b.grad = tensor([1, 1], [2])
      expectCode(() => optim.clipGradNorm([a, b], 1), 'ERR_DEVICE')
    })
  })
})

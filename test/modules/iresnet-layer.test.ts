import {
  ConditionNode, getDefaultDtype, GraphINN, InputNode, manualSeed, memory, modules, nn, Node, noGrad, OutputNode, randn, setDefaultDtype, tensor, Tensor,
  tidy,
} from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule, numericalLogDets } from './module-check'

const { IResNetLayer } = modules
type Layer = InstanceType<typeof IResNetLayer>

// ------------------------------------------------------------------ float64 references (plain loops)

const elu = (v: number): number => (v > 0 ? v : Math.expm1(v))

/** y = W·x + b for one sample (W row-major out×in). */
function dense(x: number[], W: number[], b: number[]): number[] {
  return b.map((bo, o) => x.reduce((s, xi, i) => s + W[o * x.length + i] * xi, bo))
}

/** 3×3 convolution with zero padding 1 for one sample (C, H, W) → (O, H, W). */
function conv3(x: number[], C: number, H: number, Wd: number, K: number[], b: number[]): number[] {
  const O = b.length
  const y: number[] = []
  for (let o = 0; o < O; o++)
    for (let i = 0; i < H; i++)
      for (let j = 0; j < Wd; j++) {
        let s = b[o]
        for (let c = 0; c < C; c++)
          for (let u = 0; u < 3; u++)
            for (let v = 0; v < 3; v++) {
              const r = i - 1 + u
              const q = j - 1 + v
              if (r >= 0 && r < H && q >= 0 && q < Wd) s += x[(c * H + r) * Wd + q] * K[((o * C + c) * 3 + u) * 3 + v]
            }
        y.push(s)
      }
  return y
}

/** g(x) for one sample, from the module's parameter values. */
function residualRef(m: Layer, x: number[]): number[] {
  const dims = m.dimsIn[0]
  let h = x
  m.layers.forEach((layer, l) => {
    const W = Array.from(layer.weight.toArray())
    const b = Array.from((layer.bias as Tensor).toArray())
    h = dims.length === 1 ? dense(h, W, b) : conv3(h, h.length / (dims[1] * dims[2]), dims[1], dims[2], W, b)
    if (l < m.layers.length - 1) h = h.map(elu)
  })
  return h
}

/** Per-sample Jacobian of g (central differences on the module's residual), row-major D×D. */
function residualJacobian(m: Layer, x: number[], shape: number[], h = 1e-6): number[][] {
  const [B] = shape
  const D = numel(shape.slice(1))
  const J = Array.from({ length: B }, () => new Array<number>(D * D).fill(0))
  for (let c = 0; c < D; c++) {
    const at = (delta: number) =>
      tidy(() =>
        noGrad(() => {
          const v = x.slice()
          for (let b = 0; b < B; b++) v[b * D + c] += delta
          return Array.from(m.residual.forward(tensor(v, shape, { dtype: 'float64' })).toArray())
        }),
      )
    const plus = at(h)
    const minus = at(-h)
    for (let b = 0; b < B; b++) for (let r = 0; r < D; r++) J[b][r * D + c] = (plus[b * D + r] - minus[b * D + r]) / (2 * h)
  }
  return J
}

/** The truncated power series Σ_{k=1..n} (−1)^{k+1} mean_s(v_sᵀ J^k v_s)/k for one sample. */
function seriesRef(J: number[], D: number, vs: number[][], n: number): number {
  let total = 0
  for (const v of vs) {
    let u = v.slice()
    for (let k = 1; k <= n; k++) {
      u = Array.from({ length: D }, (_, j) => u.reduce((s, ui, i) => s + ui * J[i * D + j], 0)) // uᵀ·J
      total += ((k % 2 === 1 ? 1 : -1) * u.reduce((s, ui, i) => s + ui * v[i], 0)) / k / vs.length
    }
  }
  return total
}

/** Non-trivial weights (uniform in ±scale), then the Lipschitz correction that makes g a contraction. */
function prepare(m: Layer, scale: number): Layer {
  for (const layer of m.layers) {
    nn.init.uniform_(layer.weight, -scale, scale)
    nn.init.uniform_(layer.bias as Tensor, -0.3, 0.3)
  }
  m.lipschitzCorrection()
  return m
}

const run = (m: Layer) => (xs: Tensor[], cs: Tensor[], rev: boolean, jac = true) => {
  const [z, j] = m.forward(xs, cs, rev, jac)
  return { z, logDet: (j as Tensor | null) ?? tensor(new Array(xs[0].shape[0]).fill(0), [xs[0].shape[0]], { dtype: 'float64' }) }
}

describe('IResNetLayer', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test('residual layout and state-dict keys (linear and convolutional), defaults', () => {
    tidy(() => {
      const m = new IResNetLayer([[4]])
      const shapes = Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, t.shape]))
      expect(shapes).toEqual({
        'residual.0.weight': [8, 4], 'residual.0.bias': [8],
        'residual.2.weight': [8, 8], 'residual.2.bias': [8],
        'residual.4.weight': [4, 8], 'residual.4.bias': [4],
      })
      expect(m.residual.at(1)).toBeInstanceOf(nn.ELU)
      expect(m.residual.length).toBe(5)
      expect([m.internalSize, m.nInternalLayers, m.jacobianIterations, m.hutchinsonSamples]).toEqual([8, 1, 20, 1])
      expect([m.fixedPointIterations, m.lipschitzIterations, m.lipschitzBatchsize, m.spectralNormMax]).toEqual([50, 10, 10, 0.8])
      expect(m.outputDims([[4]])).toEqual([[4]])
      const c = new IResNetLayer([[2, 3, 3]], { internalSize: 5, nInternalLayers: 2 })
      expect(Object.entries(c.stateDict()).map(([k, t]) => `${k}:${t.shape.join('x')}`)).toEqual([
        'residual.0.weight:5x2x3x3', 'residual.0.bias:5',
        'residual.2.weight:5x5x3x3', 'residual.2.bias:5',
        'residual.4.weight:5x5x3x3', 'residual.4.bias:5',
        'residual.6.weight:2x5x3x3', 'residual.6.bias:2',
      ])
      expect(new IResNetLayer([[3]], { internalSize: null }).internalSize).toBe(6)
      expect(new IResNetLayer([[3]], { internalSize: 0, nInternalLayers: 0 }).layers.length).toBe(2)
    })
  })

  test.each([
    ['vector', [3, 5], {}],
    ['image', [2, 2, 3, 2], { internalSize: 3 }],
  ])('%s: forward x + g(x) matches the float64 reference; float32 agrees', (_name, shape, opts) => {
    tidy(() => {
      manualSeed(1)
      const m = prepare(new IResNetLayer([shape.slice(1)], opts), 0.6)
      const xv = randomValues(numel(shape), 2)
      const [[y]] = m.forward([tensor(xv, shape, { dtype: 'float64' })], [], false, false)
      const D = numel(shape.slice(1))
      const ref: number[] = []
      for (let b = 0; b < shape[0]; b++) {
        const xb = xv.slice(b * D, (b + 1) * D)
        ref.push(...residualRef(m, xb).map((g, i) => xb[i] + g))
      }
      expectClose(y, ref, 1e-14)
      const m32 = new IResNetLayer([shape.slice(1)], opts).to({ dtype: 'float32' })
      m32.loadStateDict(m.stateDict())
      expectClose(m32.forward([tensor(xv, shape, { dtype: 'float32' })], [], false, false)[0][0], ref, 1e-5)
    })
  })

  test.each([
    ['vector', [[3, 4]], {}],
    ['vector, deeper', [[2, 3]], { internalSize: 5, nInternalLayers: 2 }],
    ['image', [[2, 2, 3, 3]], { internalSize: 4 }],
    ['image, 3 channels', [[2, 3, 2, 2]], {}],
  ])('%s: round trip through the fixed-point inverse (1e-10) and gradients (the log-det is checked below)', (_name, inputs, opts) => {
    manualSeed(2)
    // jacobianIterations: 1 keeps the checker's many forward passes cheap (their log-det is not used here)
    checkInvertibleModule(() => prepare(new IResNetLayer([inputs[0].slice(1)], { fixedPointIterations: 100, jacobianIterations: 1, ...opts }), 0.7), {
      inputs,
      skipLogDet: true, // a stochastic estimate: tested exactly below
    })
  })

  test('conditions are accepted (shapes checked) and ignored', () => {
    manualSeed(3)
    checkInvertibleModule(() => prepare(new IResNetLayer([[3]], { dimsC: [[2]], fixedPointIterations: 100, jacobianIterations: 1 }), 0.7), {
      inputs: [[2, 3]],
      conditions: [[2, 2]],
      skipLogDet: true,
    })
  })

  test('D = 1 (Hutchinson is exact): the log-det equals log|det| of the numerical Jacobian within the series truncation, both ways', () => {
    tidy(() => {
      manualSeed(4)
      const m = prepare(new IResNetLayer([[1]], { internalSize: 6, jacobianIterations: 60, fixedPointIterations: 100 }), 0.9)
      const x = tensor(randomValues(4, 5, -2, 2), [4, 1], { dtype: 'float64' })
      const [[z], ld] = m.forward([x])
      const numeric = numericalLogDets(run(m), [x], [], false)
      expectClose(ld as Tensor, numeric, 1e-8)
      const [[xr], ldr] = m.forward([z], [], true)
      expectClose(xr, x.toArray(), 1e-12)
      expectClose(ldr as Tensor, (ld as Tensor).neg().toArray(), 1e-12)
      expectClose(ldr as Tensor, numericalLogDets(run(m), [z], [], true), 1e-8)
    })
  })

  test.each([
    ['vector', [3, 4], { hutchinsonSamples: 3, jacobianIterations: 7 }],
    ['image', [2, 2, 2, 2], { hutchinsonSamples: 2, jacobianIterations: 5, internalSize: 3 }],
  ])('%s: the estimate is the power series with the Rademacher vectors drawn from the generator', (_name, shape, opts) => {
    tidy(() => {
      manualSeed(6)
      const m = prepare(new IResNetLayer([shape.slice(1)], { fixedPointIterations: 100, ...opts }), 0.8)
      const xv = randomValues(numel(shape), 7)
      const x = tensor(xv, shape, { dtype: 'float64' })
      const D = numel(shape.slice(1))
      const S = opts.hutchinsonSamples
      const n = opts.jacobianIterations
      const vectors = (): number[][][] => {
        const draws = Array.from({ length: S }, () => Array.from(randn(shape, { dtype: 'float64' }).sign().toArray()))
        return Array.from({ length: shape[0] }, (_, b) => draws.map((d) => d.slice(b * D, (b + 1) * D)))
      }
      manualSeed(100)
      const [[z], ld] = m.forward([x])
      manualSeed(100)
      const vs = vectors()
      const J = residualJacobian(m, xv, shape)
      expectClose(ld as Tensor, J.map((Jb, b) => seriesRef(Jb, D, vs[b], n)), 1e-7)
      // reverse: minus the series at the reconstructed x (FrEIA evaluates it at z instead)
      manualSeed(200)
      const [[xr], ldr] = m.forward([z], [], true)
      manualSeed(200)
      const vr = vectors()
      const Jr = residualJacobian(m, Array.from(xr.toArray()), shape)
      expectClose(ldr as Tensor, Jr.map((Jb, b) => -seriesRef(Jb, D, vr[b], n)), 1e-7)
    })
  })

  test("FrEIA's IResNetTest (linear net): conditioned layers in a GraphINN invert and their log-det estimates match the Jacobian", () => {
    tidy(() => {
      manualSeed(11)
      // FrEIA: 5 × [ActNorm, IResNetLayer(hutchinson_samples=20, internal_size=100, n_internal_layers=3)] on (20,),
      // conditioned on a (20,) ConditionNode that the layers ignore; lipschitz_correction() on every layer
      const D = 20
      const input = new InputNode(D, { name: 'x' })
      const cond = new ConditionNode(D, { name: 'c' })
      const nodes: (InputNode | ConditionNode | Node | OutputNode)[] = [input, cond]
      let last: InputNode | Node = input
      for (let k = 0; k < 3; k++) {
        last = new Node(last, IResNetLayer, { hutchinsonSamples: 20, internalSize: 100, nInternalLayers: 3 }, { conditions: cond, name: `res${k}` })
        nodes.push(last)
      }
      nodes.push(new OutputNode(last, { name: 'z' }))
      const inn = new GraphINN(nodes)
      for (let k = 0; k < 3; k++) (inn.getModuleByName(`res${k}`) as Layer).lipschitzCorrection()
      const x = randn([7, D], { dtype: 'float64' })
      const c = [randn([7, D], { dtype: 'float64' })]
      const [z, ld] = inn.forward(x, { c })
      const [xr] = inn.forward(z as Tensor, { c, rev: true, jac: false })
      expectClose(xr as Tensor, x.toArray(), 1e-10) // FrEIA: allclose(atol=1e-6)
      const numeric = numericalLogDets((xs, cs, rev, jac) => {
        const [zz, j] = inn.forward(xs, cs, rev, jac)
        return { z: zz, logDet: j }
      }, [x], c, false)
      const estimate = Array.from(ld.toArray())
      // FrEIA's tolerance for this stochastic estimate: allclose(atol=1.5, rtol=0.15)
      numeric.forEach((v, b) => expect(Math.abs(estimate[b] - v)).toBeLessThanOrEqual(1.5 + 0.15 * Math.abs(v)))
    })
  })

  test('jac: false returns null; the estimate carries no gradient and leaves a leaf input alone; it works under noGrad', () => {
    tidy(() => {
      manualSeed(7)
      const m = prepare(new IResNetLayer([[3]]), 0.5)
      const x = tensor(randomValues(6, 1), [2, 3], { dtype: 'float64' })
      expect(m.forward([x], [], false, false)[1]).toBeNull()
      expect(m.forward([x], [], true, false)[1]).toBeNull()
      const [, ld] = m.forward([x])
      expect(x.requiresGrad).toBe(false) // FrEIA sets requires_grad on a leaf input; innflow does not
      expect((ld as Tensor).requiresGrad).toBe(false)
      expect((ld as Tensor).shape).toEqual([2])
      const inference = noGrad(() => m.forward([x]))
      expect((inference[1] as Tensor).shape).toEqual([2])
      const xg = tensor(randomValues(6, 1), [2, 3], { dtype: 'float64', requiresGrad: true })
      const [[y], ld2] = m.forward([xg])
      expect((ld2 as Tensor).requiresGrad).toBe(false)
      expect(y.requiresGrad).toBe(true)
    })
  })

  test('a training step (forward with log-det, reverse, backward) inside tidy leaves no tensor behind', () => {
    manualSeed(10)
    const m = prepare(new IResNetLayer([[2, 3, 3]], { internalSize: 3, jacobianIterations: 4, hutchinsonSamples: 2 }), 0.5)
    const step = () =>
      tidy(() => {
        const x = randn([2, 2, 3, 3], { dtype: 'float64' })
        const [[z], ld] = m.forward([x])
        z.square().sum().sub((ld as Tensor).sum()).backward()
        m.forward([z], [], true)
        noGrad(() => m.forward([z], [], true))
      })
    step()
    m.zeroGrad()
    const before = memory().tensors
    step()
    m.zeroGrad()
    expect(memory().tensors).toBe(before)
  })

  test('reverse gradients follow FrEIA: one differentiable step y − g(x̂), so ∂x/∂y is the identity', () => {
    tidy(() => {
      manualSeed(8)
      const m = prepare(new IResNetLayer([[3]]), 0.5)
      const y = tensor(randomValues(6, 2), [2, 3], { dtype: 'float64', requiresGrad: true })
      const r = randomValues(6, 3)
      const [[x]] = m.forward([y], [], true, false)
      x.mul(tensor(r, [2, 3], { dtype: 'float64' })).sum().backward()
      expectClose(y.grad as Tensor, r, 1e-15)
      expect(m.layers[0].weight.grad).not.toBeNull()
    })
  })

  test('lipschitzCorrection scales every layer whose spectral norm exceeds spectralNormMax down to it', () => {
    tidy(() => {
      manualSeed(9)
      /** Largest singular value of a dense (rows × cols) matrix by a long power iteration in plain JavaScript. */
      const sigma = (A: number[], rows: number, cols: number): number => {
        let v = randomValues(cols, 1)
        let s = 0
        for (let it = 0; it < 2000; it++) {
          const Av = Array.from({ length: rows }, (_, i) => v.reduce((acc, vj, j) => acc + A[i * cols + j] * vj, 0))
          const AtAv = Array.from({ length: cols }, (_, j) => Av.reduce((acc, a, i) => acc + A[i * cols + j] * a, 0))
          const norm = Math.sqrt(AtAv.reduce((acc, a) => acc + a * a, 0))
          s = Math.sqrt(norm / Math.sqrt(v.reduce((acc, a) => acc + a * a, 0)))
          v = AtAv.map((a) => a / norm)
        }
        return s
      }
      // vectors: a large first layer, a small last one that must stay as it is
      const m = new IResNetLayer([[4]], { internalSize: 5, nInternalLayers: 0, lipschitzIterations: 100, spectralNormMax: 0.7 })
      nn.init.uniform_(m.layers[0].weight, -2, 2)
      nn.init.uniform_(m.layers[1].weight, -0.05, 0.05)
      const small = Array.from(m.layers[1].weight.toArray())
      m.lipschitzCorrection()
      const s0 = sigma(Array.from(m.layers[0].weight.toArray()), 5, 4)
      expect(s0).toBeGreaterThan(0.7 * (1 - 1e-9))
      expect(s0).toBeLessThan(0.7 * 1.01)
      expectClose(m.layers[1].weight, small, 0)
      // convolutions: the norm of the padded 3×3 convolution on the input's image size
      const c = new IResNetLayer([[2, 3, 3]], { internalSize: 3, nInternalLayers: 0, lipschitzIterations: 100 })
      nn.init.uniform_(c.layers[0].weight, -1.5, 1.5)
      c.lipschitzCorrection()
      const K = Array.from(c.layers[0].weight.toArray())
      // dense operator of conv(·, K, padding 1) on (2, 3, 3) → (3, 3, 3)
      const cols = 18
      const A: number[] = []
      for (let row = 0; row < 27; row++) A.push(...new Array<number>(cols).fill(0))
      for (let col = 0; col < cols; col++) {
        const e = new Array<number>(cols).fill(0)
        e[col] = 1
        conv3(e, 2, 3, 3, K, [0, 0, 0]).forEach((v, row) => (A[row * cols + col] = v))
      }
      const sc = sigma(A, 27, cols)
      expect(sc).toBeGreaterThan(0.8 * (1 - 1e-9))
      expect(sc).toBeLessThan(0.8 * 1.01)
    })
  })

  test('bad options and inputs', () => {
    expectCode(() => new IResNetLayer([[3]], { spectralNormMax: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new IResNetLayer([[3]], { spectralNormMax: 1.5 }), 'ERR_ARGUMENT')
    expectCode(() => new IResNetLayer([[3]], { spectralNormMax: NaN }), 'ERR_ARGUMENT')
    expectCode(() => new IResNetLayer([[3]], { internalSize: -2 }), 'ERR_ARGUMENT')
    expectCode(() => new IResNetLayer([[3]], { internalSize: 2.5 }), 'ERR_ARGUMENT')
    expectCode(() => new IResNetLayer([[3]], { nInternalLayers: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new IResNetLayer([[3]], { hutchinsonSamples: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new IResNetLayer([[3]], { jacobianIterations: 1.5 }), 'ERR_ARGUMENT')
    expectCode(() => new IResNetLayer([[3]], { lipschitzBatchsize: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new IResNetLayer([[3, 4]]), 'ERR_SHAPE')
    expectCode(() => new IResNetLayer([[3], [3]]), 'ERR_ARGUMENT')
    tidy(() => {
      const m = new IResNetLayer([[3]])
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4], { dtype: 'float64' })]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3], { dtype: 'float64' })], [tensor([1, 2], [2, 1], { dtype: 'float64' })]), 'ERR_ARGUMENT')
    })
  })
})

/**
 * AllInOneBlock: the module checks (round trip, log-det vs the numerical Jacobian, gradients) on every option
 * and on 1-D, 2-D, image and volume inputs with conditions; the forward pass against an independent plain-loop
 * float64 reference of FrEIA's formulas; parameter/buffer names and shapes; initial values; errors.
 */
import { manualSeed, modules, nn, noGrad, ops, setDefaultDtype, SequenceINN, tensor, Tensor, tidy } from '../../lib'
import { randomRotation } from '../../lib/modules/all-in-one-block'
import type { AllInOneBlockOptions } from '../../lib/modules/all-in-one-block'
import { expectClose, expectCode, numel, randomValues, relErr } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { AllInOneBlock } = modules

/** Flattens (B, C, ...spatial) and applies one Linear: a subnet for any spatial rank with a simple reference. */
class DenseSubnet extends nn.Module {
  readonly lin: nn.Linear
  constructor(
    readonly cIn: number,
    readonly cOut: number,
    readonly spatial: number[],
  ) {
    super()
    const n = numel(spatial)
    this.lin = this.registerModule('lin', new nn.Linear(cIn * n, cOut * n))
  }
  forward(x: Tensor): Tensor {
    const b = x.shape[0]
    return this.lin.forward(x.reshape([b, -1])).reshape([b, this.cOut, ...this.spatial])
  }
}

const fc = (width = 8) => (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, width), new nn.Tanh(), new nn.Linear(width, cOut))
const conv = (width = 4) => (cIn: number, cOut: number) =>
  new nn.Sequential(new nn.Conv2d(cIn, width, 3, { padding: 1 }), new nn.Tanh(), new nn.Conv2d(width, cOut, 3, { padding: 1 }))
const dense = (spatial: number[]) => (cIn: number, cOut: number) => new DenseSubnet(cIn, cOut, spatial)

/** Moves the global affine away from its identity-like start and randomises the subnet, so nothing is trivial. */
function perturb(m: InstanceType<typeof AllInOneBlock>, type: AllInOneBlockOptions['globalAffineType'] = 'SOFTPLUS'): InstanceType<typeof AllInOneBlock> {
  noGrad(() => {
    nn.init.uniform_(m.globalOffset, -0.5, 0.5)
    // Ψ(g) spread over roughly [0.5, 2] for every activation type
    const g = m.globalScale
    if (type === 'SOFTPLUS') nn.init.uniform_(g, 4, 20)
    else if (type === 'SIGMOID') nn.init.uniform_(g, -1.5, 1)
    else nn.init.uniform_(g, -0.7, 0.7)
    for (const p of m.subnet.parameters()) nn.init.uniform_(p, -1, 1)
    if (m.vkHouseholder) nn.init.normal_(m.vkHouseholder, 0, 1)
  })
  return m
}

function make(dims: number[], opts: AllInOneBlockOptions, seed = 3): () => InstanceType<typeof AllInOneBlock> {
  return () => {
    manualSeed(seed)
    return perturb(new AllInOneBlock([dims], opts), opts.globalAffineType)
  }
}

describe('AllInOneBlock: module checks', () => {
  test('1-D, odd channels, hard permutation, SOFTPLUS (defaults)', () => {
    checkInvertibleModule(make([5], { subnetConstructor: fc() }), { inputs: [[3, 5]] })
  })
  test('1-D, soft permutation, condition, affineClamping 1.5', () => {
    checkInvertibleModule(make([6], { dimsC: [[3]], subnetConstructor: fc(), permuteSoft: true, affineClamping: 1.5 }), {
      inputs: [[3, 6]],
      conditions: [[3, 3]],
    })
  })
  test('1-D, two conditions, EXP, reversePermutation, hard', () => {
    checkInvertibleModule(make([7], { dimsC: [[2], [1]], subnetConstructor: fc(), globalAffineType: 'EXP', reversePermutation: true }), {
      inputs: [[2, 7]],
      conditions: [[2, 2], [2, 1]],
    })
  })
  test('1-D, GIN, SIGMOID, reversePermutation, soft', () => {
    checkInvertibleModule(
      make([7], { subnetConstructor: fc(), ginBlock: true, globalAffineType: 'SIGMOID', reversePermutation: true, permuteSoft: true }),
      { inputs: [[3, 7]] },
    )
  })
  test('1-D, GIN with hard permutation', () => {
    checkInvertibleModule(make([4], { subnetConstructor: fc(), ginBlock: true }), { inputs: [[3, 4]] })
  })
  test('1-D, learned Householder (3 reflections) on a soft permutation, EXP, globalAffineInit 0.7', () => {
    checkInvertibleModule(
      make([6], { subnetConstructor: fc(), learnedHouseholderPermutation: 3, permuteSoft: true, globalAffineType: 'EXP', globalAffineInit: 0.7 }),
      { inputs: [[3, 6]] },
    )
  })
  test('1-D, learned Householder on a hard permutation (FrEIA crashes here), reversePermutation', () => {
    checkInvertibleModule(make([5], { subnetConstructor: fc(), learnedHouseholderPermutation: 2, reversePermutation: true }), { inputs: [[3, 5]] })
  })
  test('images (3, 2, 3), conv subnet, soft permutation', () => {
    checkInvertibleModule(make([3, 2, 3], { subnetConstructor: conv(), permuteSoft: true }), { inputs: [[2, 3, 2, 3]] })
  })
  test('images (4, 2, 2), hard permutation, image condition (2, 2, 2), SIGMOID', () => {
    checkInvertibleModule(make([4, 2, 2], { dimsC: [[2, 2, 2]], subnetConstructor: conv(), globalAffineType: 'SIGMOID' }), {
      inputs: [[2, 4, 2, 2]],
      conditions: [[2, 2, 2, 2]],
    })
  })
  test('images, GIN + Householder + reversePermutation', () => {
    checkInvertibleModule(
      make([3, 2, 2], { subnetConstructor: conv(), ginBlock: true, learnedHouseholderPermutation: 2, permuteSoft: true, reversePermutation: true }),
      { inputs: [[2, 3, 2, 2]] },
    )
  })
  test('sequences (3, 5) (FrEIA: conv1d), soft permutation with condition', () => {
    checkInvertibleModule(make([3, 5], { dimsC: [[1, 5]], subnetConstructor: dense([5]), permuteSoft: true }), {
      inputs: [[2, 3, 5]],
      conditions: [[2, 1, 5]],
    })
  })
  test('volumes (2, 2, 2, 2) (FrEIA: conv3d), soft permutation, reversePermutation', () => {
    checkInvertibleModule(make([2, 2, 2, 2], { subnetConstructor: dense([2, 2, 2]), permuteSoft: true, reversePermutation: true }), {
      inputs: [[2, 2, 2, 2, 2]],
    })
  })
})

// ------------------------------------------------------------------------------------------------------------
// An independent float64 reference of FrEIA's AllInOneBlock forward, with plain loops. Data layout per sample:
// channel-major (C, n_pix); the DenseSubnet sees cat(x1, c) flattened in that order.

interface RefParams {
  C: number
  nPix: number
  subW: number[] // (out, in) row-major
  subB: number[]
  g: number[]
  b: number[]
  type: 'SOFTPLUS' | 'SIGMOID' | 'EXP'
  gin: boolean
  clamp: number
  reversePre: boolean
  /** P as a C×C matrix (row i picks/mixes the inputs of output channel i). */
  P: number[][]
}

function psiRef(type: RefParams['type'], g: number): number {
  if (type === 'SOFTPLUS') return 0.5 * g > 20 ? 0.1 * g : (0.1 * Math.log1p(Math.exp(0.5 * g))) / 0.5
  if (type === 'SIGMOID') return 10 / (1 + Math.exp(-(g - 2)))
  return Math.exp(g)
}

function applyMat(P: number[][], v: number[][]): number[][] {
  // v: (C, nPix)
  return P.map((row) => v[0].map((_, k) => row.reduce((acc, w, j) => acc + w * v[j][k], 0)))
}

const transpose = (P: number[][]): number[][] => P[0].map((_, j) => P.map((row) => row[j]))

function referenceForward(p: RefParams, x: number[], c: number[]): { z: number[]; logDet: number } {
  const { C, nPix } = p
  let v: number[][] = Array.from({ length: C }, (_, i) => x.slice(i * nPix, (i + 1) * nPix))
  if (p.reversePre) v = applyMat(transpose(p.P), v)
  const c1 = C - Math.floor(C / 2)
  const c2 = Math.floor(C / 2)
  const inp = [...v.slice(0, c1).flat(), ...c]
  const nOut = p.subB.length
  const a = Array.from({ length: nOut }, (_, o) => 0.1 * (p.subB[o] + inp.reduce((acc, xi, j) => acc + p.subW[o * inp.length + j] * xi, 0)))
  let s = a.slice(0, c2 * nPix).map((ai) => p.clamp * Math.tanh(ai / p.clamp))
  const t = a.slice(c2 * nPix)
  if (p.gin) {
    const mean = s.reduce((x1, x2) => x1 + x2, 0) / s.length
    s = s.map((si) => si - mean)
  }
  const u = v.map((row) => row.slice())
  for (let k = 0; k < c2; k++) for (let q = 0; q < nPix; q++) u[c1 + k][q] = v[c1 + k][q] * Math.exp(s[k * nPix + q]) + t[k * nPix + q]
  let logDet = s.reduce((x1, x2) => x1 + x2, 0)
  const w = u.map((row, ch) => {
    const psi = p.gin ? 1 : psiRef(p.type, p.g[ch])
    if (!p.gin) logDet += nPix * Math.log(psi)
    return row.map((val) => val * psi + p.b[ch])
  })
  return { z: applyMat(p.P, w).flat(), logDet }
}

function refParams(m: InstanceType<typeof AllInOneBlock>, dims: number[], opts: AllInOneBlockOptions): RefParams {
  const C = dims[0]
  const sd = m.stateDict()
  const arr = (t: Tensor) => Array.from(t.toArray())
  let P: number[][]
  if (opts.learnedHouseholderPermutation) {
    const w0 = arr(sd.w_0)
    P = Array.from({ length: C }, (_, i) => w0.slice(i * C, (i + 1) * C))
    const vs = arr(sd.vk_householder)
    for (let k = 0; k < opts.learnedHouseholderPermutation; k++) {
      const vk = vs.slice(k * C, (k + 1) * C)
      const nn2 = vk.reduce((acc, q) => acc + q * q, 0)
      const H = Array.from({ length: C }, (_, i) => Array.from({ length: C }, (_, j) => (i === j ? 1 : 0) - (2 * vk[i] * vk[j]) / nn2))
      P = P.map((row) => H[0].map((_, j) => row.reduce((acc, w, l) => acc + w * H[l][j], 0)))
    }
  } else if (opts.permuteSoft) {
    const w = arr(sd.w_perm)
    P = Array.from({ length: C }, (_, i) => w.slice(i * C, (i + 1) * C))
  } else {
    const perm = arr(sd.w_perm)
    P = Array.from({ length: C }, (_, i) => Array.from({ length: C }, (_, j) => (perm[i] === j ? 1 : 0)))
  }
  return {
    C,
    nPix: numel(dims.slice(1)),
    subW: arr(sd['subnet.lin.weight']),
    subB: arr(sd['subnet.lin.bias']),
    g: arr(sd.global_scale),
    b: arr(sd.global_offset),
    type: opts.globalAffineType ?? 'SOFTPLUS',
    gin: opts.ginBlock ?? false,
    clamp: opts.affineClamping ?? 2,
    reversePre: opts.reversePermutation ?? false,
    P,
  }
}

describe('AllInOneBlock: forward against a plain-loop float64 reference', () => {
  const cases: [string, number[], AllInOneBlockOptions, number[][]][] = [
    ['1-D hard', [5], {}, []],
    ['1-D soft + condition', [6], { permuteSoft: true, affineClamping: 1.5, dimsC: [[3]] }, [[3]]],
    ['1-D GIN SIGMOID reverse soft', [7], { ginBlock: true, globalAffineType: 'SIGMOID', reversePermutation: true, permuteSoft: true }, []],
    ['1-D Householder EXP', [6], { learnedHouseholderPermutation: 3, permuteSoft: true, globalAffineType: 'EXP', globalAffineInit: 0.7 }, []],
    ['1-D Householder on hard, reverse', [5], { learnedHouseholderPermutation: 2, reversePermutation: true }, []],
    ['images soft + condition', [3, 2, 2], { permuteSoft: true, dimsC: [[2, 2, 2]] }, [[2, 2, 2]]],
    ['images hard reverse', [4, 1, 3], { reversePermutation: true }, []],
    ['sequences soft', [3, 4], { permuteSoft: true }, []],
    ['volumes hard SIGMOID', [3, 2, 1, 2], { globalAffineType: 'SIGMOID' }, []],
  ]
  test.each(cases)('%s', (_name, dims, opts, condDims) => {
    setDefaultDtype('float64')
    try {
      tidy(() => {
        manualSeed(11)
        const full = { ...opts, subnetConstructor: dense(dims.slice(1)) }
        const m = perturb(new AllInOneBlock([dims], full), opts.globalAffineType)
        const B = 3
        const xv = randomValues(B * numel(dims), 5)
        const cvs = condDims.map((d, i) => randomValues(B * numel(d), 50 + i))
        const x = tensor(xv, [B, ...dims])
        const cs = condDims.map((d, i) => tensor(cvs[i], [B, ...d]))
        const [[z], logDet] = m.forward([x], cs)
        const p = refParams(m, dims, full)
        const per = numel(dims)
        const zRef: number[] = []
        const ldRef: number[] = []
        for (let b = 0; b < B; b++) {
          const cFlat = condDims.flatMap((d, i) => cvs[i].slice(b * numel(d), (b + 1) * numel(d)))
          const r = referenceForward(p, xv.slice(b * per, (b + 1) * per), cFlat)
          zRef.push(...r.z)
          ldRef.push(r.logDet)
        }
        expectClose(z, zRef, 1e-13)
        if (opts.ginBlock) {
          // the coupling log-det is zero up to rounding; compare absolutely
          const ld = Array.from((logDet as Tensor).toArray())
          ld.forEach((v, i) => expect(Math.abs(v - ldRef[i])).toBeLessThan(1e-13))
        } else expectClose(logDet as Tensor, ldRef, 1e-13)
        // the reverse pass recovers x and negates the log-det
        const [[xBack], logDetRev] = m.forward([z], cs, true)
        expectClose(xBack, xv, 1e-12)
        const sum = (logDet as Tensor).add(logDetRev as Tensor).toArray()
        sum.forEach((v) => expect(Math.abs(v)).toBeLessThan(1e-12))
      })
    } finally {
      setDefaultDtype('float32')
    }
  })

  test('float32 agrees with float64 (1e-5 relative)', () => {
    tidy(() => {
      setDefaultDtype('float64')
      let m64: InstanceType<typeof AllInOneBlock>
      try {
        manualSeed(2)
        m64 = perturb(new AllInOneBlock([[3, 4, 4]], { subnetConstructor: conv(), permuteSoft: true, dimsC: [[1, 4, 4]] }))
      } finally {
        setDefaultDtype('float32')
      }
      manualSeed(2)
      const m32 = new AllInOneBlock([[3, 4, 4]], { subnetConstructor: conv(), permuteSoft: true, dimsC: [[1, 4, 4]] })
      m32.loadStateDict(m64.stateDict())
      const xv = randomValues(2 * 48, 7)
      const cv = randomValues(2 * 16, 8)
      const run = (m: InstanceType<typeof AllInOneBlock>, dtype: 'float32' | 'float64', rev: boolean) =>
        m.forward([tensor(xv, [2, 3, 4, 4], { dtype })], [tensor(cv, [2, 1, 4, 4], { dtype })], rev)
      for (const rev of [false, true]) {
        const [[z64], ld64] = run(m64, 'float64', rev)
        const [[z32], ld32] = run(m32, 'float32', rev)
        expect(z32.dtype).toBe('float32')
        expect(relErr(z32.toArray(), z64.toArray())).toBeLessThan(1e-5)
        expect(relErr((ld32 as Tensor).toArray(), (ld64 as Tensor).toArray())).toBeLessThan(1e-5)
      }
    })
  })
})

describe('AllInOneBlock: parameters, buffers and initial values', () => {
  test('hard permutation: keys, shapes, a permutation and its inverse', () => {
    tidy(() => {
      const m = new AllInOneBlock([[5, 3, 2]], { subnetConstructor: conv() })
      const sd = m.stateDict()
      expect(Object.keys(sd).sort()).toEqual(
        ['global_offset', 'global_scale', 'subnet.0.bias', 'subnet.0.weight', 'subnet.2.bias', 'subnet.2.weight', 'w_perm', 'w_perm_inv'].sort(),
      )
      expect(sd.global_scale.shape).toEqual([1, 5, 1, 1])
      expect(sd.global_offset.shape).toEqual([1, 5, 1, 1])
      expect(sd.w_perm.shape).toEqual([5])
      expect(sd['subnet.0.weight'].shape).toEqual([4, 3, 3, 3]) // C₁ = 3 passive channels in
      expect(sd['subnet.2.weight'].shape).toEqual([4, 4, 3, 3]) // 2·C₂ = 4 out
      const p = Array.from(sd.w_perm.toArray())
      const inv = Array.from(sd.w_perm_inv.toArray())
      expect([...p].sort()).toEqual([0, 1, 2, 3, 4])
      p.forEach((v, i) => expect(inv[v]).toBe(i))
      // only the global affine and the subnet are trained
      expect(m.namedParameters().map(([n]) => n)).toEqual(['global_scale', 'global_offset', 'subnet.0.weight', 'subnet.0.bias', 'subnet.2.weight', 'subnet.2.bias'])
      expect(m.outputDims([[5, 3, 2]])).toEqual([[5, 3, 2]])
    })
  })

  test('soft permutation: W in SO(C) stored as (C, C, 1, 1) with w_perm_inv = Wᵀ', () => {
    setDefaultDtype('float64')
    try {
      tidy(() => {
        const m = new AllInOneBlock([[4, 2, 2]], { subnetConstructor: conv(), permuteSoft: true })
        const sd = m.stateDict()
        expect(sd.w_perm.shape).toEqual([4, 4, 1, 1])
        expect(sd.w_perm_inv.shape).toEqual([4, 4, 1, 1])
        const W = sd.w_perm.reshape([4, 4])
        expectClose(sd.w_perm_inv.reshape([4, 4]), W.t().toArray(), 0)
        expectClose(ops.matmul(W, W.t()), [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], 1e-14)
        expect(ops.linalg.det(W).item()).toBeCloseTo(1, 12)
      })
    } finally {
      setDefaultDtype('float32')
    }
  })

  test('randomRotation: orthogonal with det +1, and E[W₀₀] ≈ 0 (Haar, not biased towards I)', () => {
    tidy(() => {
      manualSeed(123)
      let sum = 0
      let sumSq = 0
      const n = 3
      const draws = 300
      for (let k = 0; k < draws; k++) {
        const w = randomRotation(n)
        if (k < 5) {
          expect(w.dtype).toBe('float64')
          expectClose(ops.matmul(w.t(), w), [1, 0, 0, 0, 1, 0, 0, 0, 1], 1e-14)
          expect(ops.linalg.det(w).item()).toBeCloseTo(1, 12)
        }
        const v = w.toArray()[0]
        sum += v
        sumSq += v * v
        w.dispose()
      }
      // for the Haar measure on SO(3): E[W₀₀] = 0 and E[W₀₀²] = 1/3
      expect(Math.abs(sum / draws)).toBeLessThan(0.1)
      expect(Math.abs(sumSq / draws - 1 / 3)).toBeLessThan(0.06)
    })
  })

  test('learned Householder: vk_householder (K, C) parameter and w_0 (C, C) buffer, no w_perm', () => {
    tidy(() => {
      const m = new AllInOneBlock([[6]], { subnetConstructor: fc(), learnedHouseholderPermutation: 3, permuteSoft: true })
      const sd = m.stateDict()
      expect(sd.vk_householder.shape).toEqual([3, 6])
      expect(sd.w_0.shape).toEqual([6, 6])
      expect(sd.w_perm).toBeUndefined()
      expect(m.namedParameters().map(([n]) => n)).toContain('vk_householder')
      expect(m.namedParameters().map(([n]) => n)).not.toContain('w_0')
      // hard permutation under Householder: w_0 is a 0/1 permutation matrix
      const h = new AllInOneBlock([[4, 2, 2]], { subnetConstructor: conv(), learnedHouseholderPermutation: 1 })
      const w0 = Array.from(h.stateDict().w_0.toArray())
      expect(w0.filter((v) => v === 1).length).toBe(4)
      expect(w0.filter((v) => v === 0).length).toBe(12)
    })
  })

  test('GIN: global_scale stays in the state dict but is not trained (it is unused)', () => {
    tidy(() => {
      const m = new AllInOneBlock([[4]], { subnetConstructor: fc(), ginBlock: true })
      expect(Object.keys(m.stateDict())).toContain('global_scale')
      expect(m.namedParameters().map(([n]) => n)).not.toContain('global_scale')
      expect(m.namedParameters().map(([n]) => n)).toContain('global_offset')
    })
  })

  test.each([
    ['SOFTPLUS', 1],
    ['SOFTPLUS', 0.5],
    ['SOFTPLUS', 3],
    ['SIGMOID', 0.5],
    ['SIGMOID', 1],
    ['SIGMOID', 3],
    ['EXP', 0.5],
    ['EXP', 1],
    ['EXP', 3],
  ] as const)('global scale %s with init %d: Ψ(g₀) = init, log-det = n_pix·C·ln(init) at zero subnet', (type, init) => {
    setDefaultDtype('float64')
    try {
      tidy(() => {
        const m = new AllInOneBlock([[4, 3]], { subnetConstructor: dense([3]), globalAffineType: type, globalAffineInit: init })
        if (type === 'SOFTPLUS' && init === 1) expect(m.stateDict().global_scale.toArray()[0]).toBeCloseTo(9.98648, 5) // FrEIA's value
        // with a zero subnet the coupling is the identity and the block is z = P·(Ψ x)
        noGrad(() => m.subnet.parameters().forEach((p) => nn.init.zeros_(p)))
        const xv = randomValues(8 * 3, 2)
        const [[z], ld] = m.forward([tensor(xv, [2, 4, 3])])
        const perm = Array.from(m.stateDict().w_perm.toArray())
        const zv = z.toArray()
        for (let b = 0; b < 2; b++) for (let i = 0; i < 4; i++) for (let q = 0; q < 3; q++) expect(zv[b * 12 + i * 3 + q]).toBeCloseTo(init * xv[b * 12 + perm[i] * 3 + q], 12)
        // absolute: for init 1 the log-det is 0 up to rounding
        ;(ld as Tensor).toArray().forEach((v) => expect(Math.abs(v - 12 * Math.log(init))).toBeLessThan(1e-12))
      })
    } finally {
      setDefaultDtype('float32')
    }
  })

  test('SOFTPLUS init stays finite for a large globalAffineInit', () => {
    setDefaultDtype('float64')
    try {
      tidy(() => {
        const m = new AllInOneBlock([[2]], { subnetConstructor: fc(), globalAffineInit: 500 })
        const g = m.stateDict().global_scale
        expect(Number.isFinite(g.toArray()[0])).toBe(true)
        expect(g.softplus(0.5, 20).mul(0.1).toArray()[0]).toBeCloseTo(500, 9)
      })
    } finally {
      setDefaultDtype('float32')
    }
  })

  test('jac = false still returns the log-det (FrEIA does; SequenceINN and densities rely on it)', () => {
    tidy(() => {
      manualSeed(4)
      const m = perturb(new AllInOneBlock([[4]], { subnetConstructor: fc() }))
      const x = tensor(randomValues(8, 1), [2, 4])
      const [, a] = m.forward([x], [], false, true)
      const [, b] = m.forward([x], [], false, false)
      expectClose(b as Tensor, (a as Tensor).toArray(), 0)
    })
  })

  test('parameters follow the default dtype; the subnet gets (C₁ + condition channels, 2·C₂)', () => {
    setDefaultDtype('float64')
    try {
      tidy(() => {
        const seen: [number, number][] = []
        const m = new AllInOneBlock([[5, 2, 2]], {
          dimsC: [[2, 2, 2], [1, 2, 2]],
          subnetConstructor: (i, o) => {
            seen.push([i, o])
            return conv()(i, o)
          },
        })
        expect(seen).toEqual([[6, 4]])
        for (const t of Object.values(m.stateDict())) expect(t.dtype).toBe('float64')
      })
    } finally {
      setDefaultDtype('float32')
    }
  })

  test('works as a SequenceINN block (moons-like chain) forward and back', () => {
    tidy(() => {
      manualSeed(9)
      const inn = new SequenceINN(2)
      for (let k = 0; k < 4; k++) inn.append(AllInOneBlock, { subnetConstructor: fc(16), permuteSoft: true })
      const x = tensor(randomValues(20, 3), [10, 2])
      const [z, ld] = inn.forward(x)
      const [xb, ldr] = inn.forward(z, { rev: true })
      expect(relErr(xb.toArray(), x.toArray())).toBeLessThan(1e-5)
      expect(relErr(ldr.neg().toArray(), ld.toArray())).toBeLessThan(1e-4)
      expect(Object.keys(inn.stateDict())).toContain('module_list.3.w_perm_inv')
    })
  })
})

describe('AllInOneBlock: errors', () => {
  const ok = { subnetConstructor: fc() }
  test('bad options', () => {
    expectCode(() => new AllInOneBlock([[4]], {}), 'ERR_ARGUMENT') // no subnetConstructor
    expectCode(() => new AllInOneBlock([[4]], { subnetConstructor: 3 as never }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, globalAffineType: 'RELU' as never }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, affineClamping: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, affineClamping: NaN }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, globalAffineInit: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, globalAffineType: 'SIGMOID', globalAffineInit: 10 }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, learnedHouseholderPermutation: 1.5 }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, learnedHouseholderPermutation: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, permuteSoft: 'yes' as never }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, ginBlock: 1 as never }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, reversePermutation: null as never }), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock([[4]], { ...ok, permute_soft: true } as never), 'ERR_ARGUMENT') // FrEIA spelling
    expectCode(() => new AllInOneBlock([[4], [4]], ok), 'ERR_ARGUMENT')
    expectCode(() => new AllInOneBlock(4 as never, ok), 'ERR_ARGUMENT')
  })
  test('bad shapes', () => {
    expectCode(() => new AllInOneBlock([[1]], ok), 'ERR_SHAPE')
    expectCode(() => new AllInOneBlock([[4, 3, 3]], { ...ok, dimsC: [[2, 3, 2]] }), 'ERR_SHAPE')
    expectCode(() => new AllInOneBlock([[4, 3, 3]], { ...ok, dimsC: [[2, 3, 3], [1, 2, 2]] }), 'ERR_SHAPE')
    tidy(() => {
      const m = new AllInOneBlock([[4]], { ...ok, dimsC: [[2]] })
      expectCode(() => m.forward([tensor(randomValues(10, 1), [2, 5])], [tensor(randomValues(4, 1), [2, 2])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4])], []), 'ERR_ARGUMENT')
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4])], [tensor(randomValues(6, 1), [2, 3])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4])], [tensor(randomValues(6, 1), [3, 2])]), 'ERR_SHAPE')
      const bad = new AllInOneBlock([[4]], { subnetConstructor: (i) => new nn.Linear(i, 3) })
      expectCode(() => bad.forward([tensor(randomValues(8, 1), [2, 4])]), 'ERR_SHAPE')
      const f64 = new AllInOneBlock([[4]], ok)
      expectCode(() => f64.forward([tensor(randomValues(8, 1), [2, 4], { dtype: 'float64' })]), 'ERR_DTYPE')
    })
  })
})

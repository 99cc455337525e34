import { manualSeed, noGrad, ops, optim, SequenceINN, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { bindingFor, core } from '../../lib/binding'
import { InvertibleConv1x1 } from '../../lib/modules/invertible-conv1x1'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

function make64<T>(fn: () => T): T {
  setDefaultDtype('float64')
  try {
    return fn()
  } finally {
    setDefaultDtype('float32')
  }
}

/** Moves every parameter away from its initial value (L, U: random; log_s: random in ±0.6; weight: + noise). */
function perturb(m: InvertibleConv1x1, seed: number): InvertibleConv1x1 {
  noGrad(() =>
    tidy(() => {
      m.namedParameters().forEach(([name, p], k) => {
        const r = randomValues(p.size, seed + k, -0.6, 0.6)
        const v = name === 'weight' ? Array.from(p.toArray(), (w, i) => w + 0.5 * r[i]) : r
        core.copyInto(p.handle, tensor(v, [...p.shape], { dtype: p.dtype }).handle)
      })
    }),
  )
  return m
}

/** y[n, o, q] = Σ_i W[o][i]·x[n, i, q] by loops. */
function convRef(x: ArrayLike<number>, b: number, c: number, positions: number, W: ArrayLike<number>): number[] {
  const out = new Array<number>(b * c * positions).fill(0)
  for (let n = 0; n < b; n++)
    for (let o = 0; o < c; o++)
      for (let q = 0; q < positions; q++) for (let i = 0; i < c; i++) out[(n * c + o) * positions + q] += W[o * c + i] * x[(n * c + i) * positions + q]
  return out
}

type Native = Record<'inverse' | 'lu' | 'slogdet' | 'solveTriangular' | 'luConvWeight', (...a: unknown[]) => unknown>

/** Counts calls of the native linear-algebra entry points while fn runs. */
function countNativeCalls(fn: () => void): Record<string, number> {
  const native = bindingFor<Native>()
  const names = ['inverse', 'lu', 'slogdet', 'solveTriangular', 'luConvWeight'] as const
  const spies = names.map((n) => jest.spyOn(native, n))
  try {
    fn()
    return Object.fromEntries(names.map((n, i) => [n, spies[i].mock.calls.length]))
  } finally {
    spies.forEach((s) => s.mockRestore())
  }
}

describe('InvertibleConv1x1: module checks (float64, perturbed parameters)', () => {
  test.each([
    [true, [3, 5]],
    [false, [3, 5]],
    [true, [2, 3, 2, 3]],
    [false, [2, 3, 2, 3]],
    [true, [2, 4, 2, 2]],
    [false, [3, 1, 2, 2]],
    [true, [2, 2, 5]],
  ])('lu = %s, input %j', (lu, shape) => {
    checkInvertibleModule(() => perturb(new InvertibleConv1x1([shape.slice(1)], { lu }), 40 + shape.length), { inputs: [shape] })
  })
})

describe('InvertibleConv1x1', () => {
  test.each([
    [true, [2, 3, 2, 3]],
    [false, [2, 3, 2, 3]],
    [true, [3, 4]],
    [false, [3, 4]],
  ])('lu = %s, input %j: y = W·x per position, log-det = slogdet(W)·H·W of the assembled weight', (lu, shape) =>
    tidy(() => {
      const [b, c] = shape
      const positions = numel(shape.slice(2))
      const m = perturb(make64(() => new InvertibleConv1x1([shape.slice(1)], { lu })), 7)
      const W = m.assembledWeight()
      const xv = randomValues(numel(shape), 3)
      const x = tensor(xv, shape, { dtype: 'float64' })
      const [[y], ld] = m.forward([x])
      expect(y.shape).toEqual(shape)
      expectClose(y, convRef(xv, b, c, positions, W.toArray()), 1e-14)
      const slog = ops.linalg.slogdet(W).logabsdet.item()
      // the perturbation made W far from orthogonal (so the log-det check means something)
      expect(ops.sub(W.matmul(W.t()), ops.linalg.det(W).abs().pow(2 / c).mul(tensor(Array.from({ length: c * c }, (_, i) => (i % (c + 1) === 0 ? 1 : 0)), [c, c], { dtype: 'float64' }))).abs().sum().item()).toBeGreaterThan(0.1)
      expect((ld as Tensor).shape).toEqual([b])
      expectClose(ld as Tensor, new Array(b).fill(slog * positions), 1e-12)
      const [[xr], ldr] = m.forward([y], [], true)
      expectClose(xr, xv, 1e-12)
      expectClose(ldr as Tensor, new Array(b).fill(-slog * positions), 1e-12)
      // the inverse weight really is W⁻¹
      expectClose(m.inverseWeight().matmul(W), Array.from({ length: c * c }, (_, i) => (i % (c + 1) === 0 ? 1 : 0)), 1e-12)
    }),
  )

  test('lu: the assembled weight is P·L·(U + diag(sign·exp(log_s))) of the stored factors', () =>
    tidy(() => {
      const c = 4
      const m = perturb(make64(() => new InvertibleConv1x1([[c, 2, 2]])), 11)
      const sd = m.stateDict()
      const tri = (t: Tensor, keep: (i: number, j: number) => boolean, diag: (i: number) => number) =>
        tensor(Array.from(t.toArray(), (v, k) => (Math.floor(k / c) === k % c ? diag(k % c) : keep(Math.floor(k / c), k % c) ? v : 0)), [c, c], { dtype: 'float64' })
      const s = Array.from(sd.log_s.toArray())
      const sg = Array.from(sd.s_sign.toArray())
      const L = tri(sd.w_l, (i, j) => j < i, () => 1)
      const U = tri(sd.w_u, (i, j) => j > i, (i) => sg[i] * Math.exp(s[i]))
      expectClose(m.assembledWeight(), sd.w_p.matmul(L.matmul(U)).toArray(), 1e-14)
      // log|det W| = Σ log_s, the sign of det W is det(P)·Π sign
      const { sign, logabsdet } = ops.linalg.slogdet(m.assembledWeight())
      expect(logabsdet.item()).toBeCloseTo(s.reduce((a, v) => a + v, 0), 12)
      expect(sign.item()).toBe(ops.linalg.slogdet(sd.w_p).sign.item() * sg.reduce((a, v) => a * v, 1))
    }))

  test.each([true, false])('lu = %s: initialised as a random rotation (orthogonal W, log-det 0), seeded by manualSeed', (lu) =>
    tidy(() => {
      const c = 5
      manualSeed(3)
      const m = make64(() => new InvertibleConv1x1([[c, 2, 2]], { lu }))
      const W = m.assembledWeight()
      expectClose(W.matmul(W.t()), Array.from({ length: c * c }, (_, i) => (i % (c + 1) === 0 ? 1 : 0)), 1e-13)
      expect(Math.abs(m.logAbsDetWeight().item())).toBeLessThan(1e-12)
      manualSeed(3)
      const again = make64(() => new InvertibleConv1x1([[c, 2, 2]], { lu }))
      expectClose(again.assembledWeight(), W.toArray(), 0)
      manualSeed(4)
      const other = make64(() => new InvertibleConv1x1([[c, 2, 2]], { lu }))
      expect(ops.sub(other.assembledWeight(), W).abs().sum().item()).toBeGreaterThan(0.1)
      if (lu) {
        // the init puts zeros in the unused triangles and a permutation matrix in w_p
        const sd = m.stateDict()
        const l = sd.w_l.toArray()
        const u = sd.w_u.toArray()
        for (let i = 0; i < c; i++)
          for (let j = 0; j < c; j++) {
            if (j >= i) expect(l[i * c + j] === 0).toBe(true) // 0 or -0
            if (j <= i) expect(u[i * c + j] === 0).toBe(true)
          }
        const p = Array.from(sd.w_p.toArray())
        expect(p.every((v) => v === 0 || v === 1)).toBe(true)
        expect(p.reduce((a, v) => a + v, 0)).toBe(c)
        expect(Array.from(sd.s_sign.toArray()).every((v) => v === 1 || v === -1)).toBe(true)
      }
    }),
  )

  test('lu: the inverse uses no general matrix inverse, nor LU, slogdet or solves; only the substitution kernel', () =>
    tidy(() => {
      const m = perturb(make64(() => new InvertibleConv1x1([[4, 3, 3]])), 5)
      const x = tensor(randomValues(72, 9), [2, 4, 3, 3], { dtype: 'float64', requiresGrad: true })
      const counts = countNativeCalls(() => {
        const [[y]] = m.forward([x])
        const [[back], ld] = m.forward([y], [], true)
        back.sum().add((ld as Tensor).sum()).backward()
      })
      expect(counts).toEqual({ inverse: 0, lu: 0, slogdet: 0, solveTriangular: 0, luConvWeight: 2 })
      expect(m.logS!.grad).not.toBeNull()
    }))

  test('lu: false: log-det by slogdet, inverse through LU and triangular solves, never a general inverse', () =>
    tidy(() => {
      const m = perturb(make64(() => new InvertibleConv1x1([[4, 3, 3]], { lu: false })), 5)
      const x = tensor(randomValues(72, 9), [2, 4, 3, 3], { dtype: 'float64' })
      const fwd = countNativeCalls(() => m.forward([x]))
      expect(fwd).toEqual({ inverse: 0, lu: 0, slogdet: 1, solveTriangular: 0, luConvWeight: 0 })
      const rev = countNativeCalls(() => m.forward([x], [], true))
      expect(rev).toEqual({ inverse: 0, lu: 1, slogdet: 1, solveTriangular: 2, luConvWeight: 0 })
    }))

  test('state dict: keys, shapes and dtypes; loads back; SequenceINN prefixes', () =>
    tidy(() => {
      const a = perturb(make64(() => new InvertibleConv1x1([[3, 4, 4]])), 1)
      const sd = a.stateDict()
      expect(Object.keys(sd).sort()).toEqual(['log_s', 's_sign', 'w_l', 'w_p', 'w_u'])
      expect(a.namedParameters().map(([n]) => n)).toEqual(['w_l', 'w_u', 'log_s'])
      expect(a.namedBuffers().map(([n]) => n)).toEqual(['w_p', 's_sign'])
      expect([sd.w_p.shape, sd.w_l.shape, sd.w_u.shape, sd.log_s.shape, sd.s_sign.shape]).toEqual([[3, 3], [3, 3], [3, 3], [3], [3]])
      expect(Object.values(sd).every((t) => t.dtype === 'float64')).toBe(true)
      const plain = make64(() => new InvertibleConv1x1([[3]], { lu: false }))
      expect(Object.keys(plain.stateDict())).toEqual(['weight'])
      expect(plain.stateDict().weight.shape).toEqual([3, 3])
      // a fresh module given the state dict computes the same map
      const b = make64(() => new InvertibleConv1x1([[3, 4, 4]]))
      b.loadStateDict(sd)
      const x = tensor(randomValues(96, 2), [2, 3, 4, 4], { dtype: 'float64' })
      expectClose(b.forward([x])[0][0], a.forward([x])[0][0].toArray(), 0)
      const inn = new SequenceINN(3, 4, 4)
      inn.append(InvertibleConv1x1, {})
      inn.append(InvertibleConv1x1, { lu: false })
      expect(Object.keys(inn.stateDict()).sort()).toEqual(['module_list.0.log_s', 'module_list.0.s_sign', 'module_list.0.w_l', 'module_list.0.w_p', 'module_list.0.w_u', 'module_list.1.weight'])
      // parameter count as in the common PyTorch Glow code: 2·C² + C per LU layer
      expect(inn.parameters().reduce((n, p) => n + p.size, 0)).toBe(2 * 9 + 3 + 9)
    }))

  test('float32 (the default dtype) agrees with float64; to({ dtype }) converts', () =>
    tidy(() => {
      for (const lu of [true, false]) {
        manualSeed(8)
        const m32 = new InvertibleConv1x1([[3, 2, 2]], { lu })
        manualSeed(8)
        const m64 = make64(() => new InvertibleConv1x1([[3, 2, 2]], { lu }))
        expect(m32.parameters()[0].dtype).toBe('float32')
        const xv = randomValues(24, 4)
        const [[y32], l32] = m32.forward([tensor(xv, [2, 3, 2, 2])])
        const [[y64]] = m64.forward([tensor(xv, [2, 3, 2, 2], { dtype: 'float64' })])
        expectClose(y32, y64.toArray(), 1e-5)
        expect((l32 as Tensor).dtype).toBe('float32')
        m32.to({ dtype: 'float64' })
        expectClose(m32.forward([tensor(xv, [2, 3, 2, 2], { dtype: 'float64' })])[0][0], y64.toArray(), 1e-6)
      }
    }))

  test('a few Adam steps on the likelihood of correlated data move W towards decorrelating it', () =>
    tidy(() => {
      // x = A·z with a fixed A: maximum likelihood under N(0, I) wants W·A orthogonal, i.e. log|det W| = −log|det A|
      const m = make64(() => new InvertibleConv1x1([[2]]))
      const opt = new optim.Adam(m.parameters(), { lr: 0.05 })
      const z = tensor(randomValues(400, 12), [200, 2], { dtype: 'float64' }).mul(1.7)
      const A = tensor([3, 1, 0, 2], [2, 2], { dtype: 'float64' })
      const x = z.matmul(A.t())
      for (let i = 0; i < 300; i++)
        tidy(() => {
          const [[y], ld] = m.forward([x])
          const loss = y.square().sum(1).mul(0.5).sub(ld as Tensor).mean()
          opt.zeroGrad()
          loss.backward()
          opt.step()
        })
      // the sample covariance of y should be close to the identity
      const [[y]] = noGrad(() => m.forward([x]))
      const cov = y.t().matmul(y).div(200).toArray()
      expect(Math.abs(cov[0] - 1)).toBeLessThan(0.05)
      expect(Math.abs(cov[3] - 1)).toBeLessThan(0.05)
      expect(Math.abs(cov[1])).toBeLessThan(0.05)
    }))

  test('errors', () =>
    tidy(() => {
      expectCode(() => new InvertibleConv1x1([[3, 2, 2]], { lu: 'yes' as unknown as boolean }), 'ERR_ARGUMENT')
      expectCode(() => new InvertibleConv1x1([[3, 2, 2]], { permute: true } as object), 'ERR_ARGUMENT')
      expectCode(() => new InvertibleConv1x1([[3, 2, 2]], { dimsC: [[1, 2, 2]] }), 'ERR_ARGUMENT')
      expectCode(() => new InvertibleConv1x1([[3, 2, 2], [3, 2, 2]]), 'ERR_SHAPE')
      expectCode(() => new InvertibleConv1x1([[]]), 'ERR_SHAPE')
      expectCode(() => new InvertibleConv1x1([3, 2, 2] as unknown as number[][]), 'ERR_ARGUMENT')
      const m = new InvertibleConv1x1([[3, 2, 2]])
      expectCode(() => m.forward([tensor(randomValues(16, 1), [2, 2, 2, 2])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(24, 1), [2, 3, 2, 2], { dtype: 'float64' })]), 'ERR_DTYPE')
      expectCode(() => m.forward([tensor(randomValues(24, 1), [2, 3, 2, 2])], [tensor([1, 2], [2, 1])]), 'ERR_ARGUMENT')
      expectCode(() => m.outputDims([[3, 2, 2], [3, 2, 2]]), 'ERR_SHAPE')
      // a loaded state dict whose permutation or sign buffer is corrupt is caught by the kernel
      const sd = m.stateDict()
      const bad = { ...sd, s_sign: tensor([1, 0, 1], [3]) }
      m.loadStateDict(bad)
      expectCode(() => m.forward([tensor(randomValues(24, 1), [2, 3, 2, 2])]), 'ERR_ARGUMENT')
    }))
})

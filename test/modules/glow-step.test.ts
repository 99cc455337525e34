import { getDefaultDtype, manualSeed, nn, noGrad, SequenceINN, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { core } from '../../lib/binding'
import { GlowStep } from '../../lib/modules/glow-step'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const mlp = (width: number) => (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, width), new nn.Tanh(), new nn.Linear(width, cOut))
const convNet = (width: number, k = 3) => (cIn: number, cOut: number) =>
  new nn.Sequential(new nn.Conv2d(cIn, width, k, { padding: Math.floor(k / 2) }), new nn.Tanh(), new nn.Conv2d(width, cOut, k, { padding: Math.floor(k / 2) }))

/** Moves the 1×1 convolution's parameters away from their (orthogonal) initial values. */
function perturb(m: GlowStep, seed: number): GlowStep {
  noGrad(() =>
    tidy(() => {
      m.invconv.namedParameters().forEach(([name, p], k) => {
        const r = randomValues(p.size, seed + k, -0.5, 0.5)
        const v = name === 'weight' ? Array.from(p.toArray(), (w, i) => w + 0.5 * r[i]) : r
        core.copyInto(p.handle, tensor(v, [...p.shape], { dtype: p.dtype }).handle)
      })
    }),
  )
  return m
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))

describe('GlowStep: module checks (float64, perturbed 1×1 convolution, random subnets, ActNorm fitted to data)', () => {
  test.each([
    ['1-D, C = 5', [3, 5], { subnetConstructor: mlp(6) }, undefined],
    ['1-D, C = 4, lu: false', [3, 4], { subnetConstructor: mlp(6), lu: false }, undefined],
    ['1-D, C = 3, atan clamp 1.5, condition (2,)', [3, 3], { subnetConstructor: mlp(5), scaleFunction: 'atan', clamp: 1.5, dimsC: [[2]] }, [[3, 2]]],
    ['image (3, 2, 2)', [2, 3, 2, 2], { subnetConstructor: convNet(4) }, undefined],
    ['image (4, 2, 3), lu: false, atan', [2, 4, 2, 3], { subnetConstructor: convNet(3), lu: false, scaleFunction: 'atan' }, undefined],
    ['image (2, 3, 2), condition (1, 3, 2)', [2, 2, 3, 2], { subnetConstructor: convNet(3), dimsC: [[1, 3, 2]] }, [[2, 1, 3, 2]]],
  ] as [string, number[], object, number[][] | undefined][])('%s', (_, shape, opts, conditions) => {
    checkInvertibleModule(() => perturb(new GlowStep([shape.slice(1)], opts), 30 + shape.length), { inputs: [shape], conditions, range: [-1.5, 2] })
  })
})

describe('GlowStep', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test.each([
    ['glow', [2, 5, 2, 3]],
    ['atan', [2, 5, 2, 3]],
    ['glow', [3, 4]],
  ] as ['glow' | 'atan', number[]][])('scale %s, input %j: equals ActNorm → 1×1 conv → a plain-loop Glow coupling', (scaleFunction, shape) =>
    tidy(() => {
      const [b, c] = shape
      const p = numel(shape.slice(2))
      const sub = shape.length === 2 ? mlp(4) : convNet(4)
      const m = perturb(new GlowStep([shape.slice(1)], { subnetConstructor: sub, scaleFunction, ...(scaleFunction === 'atan' ? { clamp: 1.3 } : {}) }), 3)
      const x = tensor(randomValues(numel(shape), 5, -1, 2), shape)
      const [[y], ld] = m.forward([x])
      // reference: the children applied one by one, then the coupling by loops
      const [[h], j1] = m.actnorm.forward([x])
      const [[u], j2] = m.invconv.forward([h])
      const c1 = Math.floor(c / 2)
      const c2 = c - c1
      const a = (m.subnet.forward(u.narrow(1, 0, c1)) as Tensor).toArray()
      const uv = u.toArray()
      const ref = Array.from(uv)
      const jac = new Array<number>(b).fill(0)
      for (let n = 0; n < b; n++)
        for (let k = 0; k < c2; k++)
          for (let q = 0; q < p; q++) {
            const t = a[(n * 2 * c2 + 2 * k) * p + q]
            const raw = a[(n * 2 * c2 + 2 * k + 1) * p + q]
            const logS = scaleFunction === 'glow' ? Math.log(sigmoid(raw + 2)) : 1.3 * 0.636 * Math.atan(raw)
            const i = (n * c + c1 + k) * p + q
            ref[i] = (uv[i] + t) * Math.exp(logS)
            jac[n] += logS
          }
      expectClose(y, ref, 1e-13)
      const j12 = (j1 as Tensor).add(j2 as Tensor).toArray()
      expectClose(ld as Tensor, jac.map((v, n) => v + j12[n]), 1e-13)
      // and back
      const [[xr], ldr] = m.forward([y], [], true)
      expectClose(xr, x.toArray(), 1e-12)
      expectClose(ldr as Tensor, (ld as Tensor).neg().toArray(), 1e-12)
    }),
  )

  test('with a zero last layer (Glow\'s init) the coupling is u2·sigmoid(2) and ActNorm standardises the first batch', () =>
    tidy(() => {
      const zeroLast = (cIn: number, cOut: number) => {
        const last = new nn.Conv2d(8, cOut, 3, { padding: 1 })
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias!)
        return new nn.Sequential(new nn.Conv2d(cIn, 8, 3, { padding: 1 }), new nn.ReLU(), last)
      }
      const m = new GlowStep([[4, 3, 3]], { subnetConstructor: zeroLast })
      const x = tensor(randomValues(2 * 36, 8, 2, 5), [2, 4, 3, 3])
      const [[y], ld] = m.forward([x])
      const [[h], j1] = m.actnorm.forward([x])
      expect(Math.abs(h.mean().item())).toBeLessThan(1e-12)
      const [[u], j2] = m.invconv.forward([h])
      const s = sigmoid(2)
      const uv = u.toArray()
      expectClose(y, Array.from(uv, (v, i) => (Math.floor(i / 9) % 4 >= 2 ? v * s : v)), 1e-14)
      const expected = (j1 as Tensor).add(j2 as Tensor).add(2 * 9 * Math.log(s)).toArray()
      expectClose(ld as Tensor, expected, 1e-13)
    }))

  test('odd channel counts: the first ⌊C/2⌋ channels pass through; the subnet gets the right sizes', () =>
    tidy(() => {
      const sizes: number[][] = []
      const rec = (cIn: number, cOut: number) => {
        sizes.push([cIn, cOut])
        return mlp(4)(cIn, cOut)
      }
      const m = new GlowStep([[5]], { subnetConstructor: rec })
      new GlowStep([[3, 4, 4]], { subnetConstructor: rec, dimsC: [[2, 4, 4]] })
      expect(sizes).toEqual([[2, 6], [1 + 2, 4]])
      expect([m.splitLen1, m.splitLen2]).toEqual([2, 3])
      const x = tensor(randomValues(15, 2), [3, 5])
      const [[y]] = m.forward([x])
      const [[u]] = m.invconv.forward(m.actnorm.forward([x])[0])
      expectClose(y.narrow(1, 0, 2), u.narrow(1, 0, 2).toArray(), 0)
    }))

  test('state dict keys; a loaded state dict reproduces the map (ActNorm stays initialised)', () =>
    tidy(() => {
      manualSeed(1)
      const a = perturb(new GlowStep([[4, 2, 2]], { subnetConstructor: convNet(3) }), 9)
      const x = tensor(randomValues(32, 4), [2, 4, 2, 2])
      const [[ya]] = a.forward([x])
      const sd = a.stateDict()
      expect(Object.keys(sd).sort()).toEqual(
        [
          'actnorm.is_initialized', 'actnorm.loc', 'actnorm.log_scale',
          'invconv.log_s', 'invconv.s_sign', 'invconv.w_l', 'invconv.w_p', 'invconv.w_u',
          'subnet.0.bias', 'subnet.0.weight', 'subnet.2.bias', 'subnet.2.weight',
        ].sort(),
      )
      const b = new GlowStep([[4, 2, 2]], { subnetConstructor: convNet(3) })
      b.loadStateDict(sd)
      expectClose(b.forward([x.mul(3)])[0][0], a.forward([x.mul(3)])[0][0].toArray(), 0)
      expectClose(b.forward([x])[0][0], ya.toArray(), 0)
      const plain = new GlowStep([[4]], { subnetConstructor: mlp(3), lu: false })
      expect(Object.keys(plain.stateDict()).filter((k) => k.startsWith('invconv'))).toEqual(['invconv.weight'])
      const inn = new SequenceINN(4, 2, 2)
      inn.append(GlowStep, { subnetConstructor: convNet(3) })
      inn.append(GlowStep, { subnetConstructor: convNet(3), cond: 0, condShape: [1, 2, 2] })
      expect(Object.keys(inn.stateDict())).toContain('module_list.1.invconv.w_l')
      const [z, j] = inn.forward(x, { c: [tensor(randomValues(8, 1), [2, 1, 2, 2])] })
      expect(z.shape).toEqual([2, 4, 2, 2])
      expect(j.shape).toEqual([2])
    }))

  test('glow-lu workload sizes: parameter count of 8 steps on 12×16×16 is WORKLOADS.md\'s 2,771,584', () =>
    tidy(() => {
      const sub = (cIn: number, cOut: number) =>
        new nn.Sequential(new nn.Conv2d(cIn, 512, 3, { padding: 1 }), new nn.ReLU(), new nn.Conv2d(512, 512, 1), new nn.ReLU(), new nn.Conv2d(512, cOut, 3, { padding: 1 }))
      setDefaultDtype('float32')
      try {
        const inn = new SequenceINN(12, 16, 16)
        for (let k = 0; k < 8; k++) inn.append(GlowStep, { subnetConstructor: sub })
        expect(inn.parameters().reduce((n, p) => n + p.size, 0)).toBe(2771584)
      } finally {
        setDefaultDtype('float64')
      }
    }))

  test('errors', () =>
    tidy(() => {
      const sub = mlp(3)
      expectCode(() => new GlowStep([[4]], {}), 'ERR_ARGUMENT')
      expectCode(() => new GlowStep([[4]], { subnetConstructor: 3 as unknown as typeof sub }), 'ERR_ARGUMENT')
      expectCode(() => new GlowStep([[4]], { subnetConstructor: () => ({}) as nn.Module }), 'ERR_ARGUMENT')
      expectCode(() => new GlowStep([[4]], { subnetConstructor: sub, scaleFunction: 'tanh' as 'glow' }), 'ERR_ARGUMENT')
      expectCode(() => new GlowStep([[4]], { subnetConstructor: sub, clamp: 1 }), 'ERR_ARGUMENT')
      expectCode(() => new GlowStep([[4]], { subnetConstructor: sub, scaleFunction: 'atan', clamp: -1 }), 'ERR_ARGUMENT')
      expectCode(() => new GlowStep([[4]], { subnetConstructor: sub, lu: 1 as unknown as boolean }), 'ERR_ARGUMENT')
      expectCode(() => new GlowStep([[4]], { subnet_constructor: sub } as object), 'ERR_ARGUMENT')
      expectCode(() => new GlowStep([[1, 4, 4]], { subnetConstructor: sub }), 'ERR_SHAPE')
      expectCode(() => new GlowStep([[4], [4]], { subnetConstructor: sub }), 'ERR_SHAPE')
      expectCode(() => new GlowStep([[4, 2, 2]], { subnetConstructor: convNet(2), dimsC: [[1, 3, 3]] }), 'ERR_SHAPE')
      const wrong = new GlowStep([[4]], { subnetConstructor: (cIn: number) => new nn.Linear(cIn, 3) })
      expectCode(() => wrong.forward([tensor(randomValues(8, 1), [2, 4])]), 'ERR_SHAPE')
      const m = new GlowStep([[4]], { subnetConstructor: sub })
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4])], [tensor([1, 2], [2, 1])]), 'ERR_ARGUMENT')
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4], { dtype: 'float32' })]), 'ERR_DTYPE')
    }))
})

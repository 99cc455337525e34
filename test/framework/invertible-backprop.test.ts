/**
 * Invertible backpropagation (SequenceINN.invertibleBackprop): the gradients of every parameter, of the input
 * and of the conditions equal normal mode's, training with Adam gives the same losses, nothing leaks, and the
 * peak memory of a step no longer grows with the depth.
 */
import {
  GraphINN, grad, InputNode, manualSeed, memory, modules as Fm, nn, Node, noGrad, optim, OutputNode, randn, resetPeak,
  SequenceINN, Tensor, tidy,
} from '../../lib'
import type { DType } from '../../lib'
import { core } from '../../lib/binding'
import { expectCode, relErr } from '../helpers'
import { asF64, build, disposeNet, expectGradsClose, fc } from './backprop-compare'

const conv = (width: number) => (cIn: number, cOut: number) =>
  new nn.Sequential(new nn.Conv2d(cIn, width, 3, { padding: 1 }), new nn.ReLU(), new nn.Conv2d(width, cOut, 3, { padding: 1 }))


interface Case {
  name: string
  make: () => SequenceINN
  /** Input shape (with batch). */
  shape: number[]
  /** Condition shapes (with batch). */
  conds?: number[][]
}

const cases: Case[] = [
  {
    name: 'AllInOneBlock, permuteSoft true',
    make: () => {
      const inn = new SequenceINN(6)
      for (let k = 0; k < 4; k++) inn.append(Fm.AllInOneBlock, { subnetConstructor: fc(16), permuteSoft: true })
      return inn
    },
    shape: [8, 6],
  },
  {
    name: 'AllInOneBlock, permuteSoft false',
    make: () => {
      const inn = new SequenceINN(5)
      for (let k = 0; k < 4; k++) inn.append(Fm.AllInOneBlock, { subnetConstructor: fc(16), permuteSoft: false })
      return inn
    },
    shape: [8, 5],
  },
  {
    name: 'GLOWCouplingBlock + PermuteRandom',
    make: () => {
      const inn = new SequenceINN(6)
      for (let k = 0; k < 3; k++) inn.append(Fm.GLOWCouplingBlock, { subnetConstructor: fc(16), clamp: 2.0 }).append(Fm.PermuteRandom, { seed: k })
      return inn
    },
    shape: [8, 6],
  },
  {
    name: 'ActNorm (data-dependent initialisation) between couplings',
    make: () => {
      const inn = new SequenceINN(4)
      for (let k = 0; k < 3; k++) inn.append(Fm.ActNorm).append(Fm.GLOWCouplingBlock, { subnetConstructor: fc(12) }).append(Fm.PermuteRandom, { seed: k })
      return inn
    },
    shape: [10, 4],
  },
  {
    name: 'conditional chain',
    make: () => {
      const inn = new SequenceINN(4)
      for (let k = 0; k < 3; k++) inn.append(Fm.AllInOneBlock, { subnetConstructor: fc(16), cond: k % 2, condShape: [k % 2 === 0 ? 3 : 2] })
      inn.append(Fm.GLOWCouplingBlock, { subnetConstructor: fc(16), cond: 0, condShape: [3] })
      return inn
    },
    shape: [8, 4],
    conds: [[8, 3], [8, 2]],
  },
  {
    name: '2-D image chain with IRevNetDownsampling',
    make: () => {
      const inn = new SequenceINN(2, 8, 8)
      inn.append(Fm.GLOWCouplingBlock, { subnetConstructor: conv(8) }).append(Fm.PermuteRandom, { seed: 1 })
      inn.append(Fm.IRevNetDownsampling)
      inn.append(Fm.ActNorm)
      inn.append(Fm.AllInOneBlock, { subnetConstructor: conv(8), permuteSoft: true })
      inn.append(Fm.GLOWCouplingBlock, { subnetConstructor: conv(8) }).append(Fm.PermuteRandom, { seed: 2 })
      return inn
    },
    shape: [3, 2, 8, 8],
  },
]

interface Grads {
  loss: number
  x: Float64Array
  c: Float64Array[]
  params: Float64Array[]
}

/** One forward/backward in the chosen mode; returns the loss and every gradient (and clears them). */
function gradients(inn: SequenceINN, dtype: DType, shape: number[], condShapes: number[][], invertible: boolean, rev = false): Grads {
  inn.invertibleBackprop = invertible
  return tidy(() => {
    manualSeed(11)
    const x = randn(shape, { dtype, requiresGrad: true })
    const cLeaves = condShapes.map((s) => randn(s, { dtype, requiresGrad: true }))
    // conditions that are not leaves: their gradient must flow on through the graph that made them
    const c = cLeaves.map((l) => l.mul(1.5).tanh())
    const [z, ljd] = inn.forward(x, { c, rev })
    const w = randn([...z.shape], { dtype })
    const loss = z.square().mul(w).flatten(1).sum(1).mul(0.5).sub(ljd.mul(1.25)).mean()
    loss.backward()
    const out: Grads = { loss: loss.item(), x: asF64(x.grad), c: cLeaves.map((l) => asF64(l.grad)), params: inn.parameters().map((p) => asF64(p.grad)) }
    for (const p of inn.parameters()) {
      p.grad?.dispose()
      p.grad = null
    }
    return out
  })
}

function expectSameGrads(a: Grads, b: Grads, tol: number): void {
  expect(relErr([a.loss], [b.loss])).toBeLessThanOrEqual(tol)
  expect(a.x.length).toBeGreaterThan(0)
  expect(relErr(a.x, b.x)).toBeLessThanOrEqual(tol)
  expectGradsClose(a.c, b.c, tol)
  expectGradsClose(a.params, b.params, tol, true)
}


describe.each(cases)('invertible backprop: $name', ({ make, shape, conds }) => {
  test.each([
    ['float64', 1e-9],
    ['float32', 1e-5],
  ] as [DType, number][])('%s: gradients of the input, the conditions and every parameter equal normal mode', (dtype, tol) => {
    // two identical networks, so that ActNorm initialises in each from the same first batch
    const normal = build(dtype, make)
    const invertible = build(dtype, make)
    const a = gradients(normal, dtype, shape, conds ?? [], false)
    const b = gradients(invertible, dtype, shape, conds ?? [], true)
    expectSameGrads(b, a, tol)
    // a second step (ActNorm now initialised, gradients accumulate from null again)
    expectSameGrads(gradients(invertible, dtype, shape, conds ?? [], true), gradients(normal, dtype, shape, conds ?? [], false), tol)
    // every parameter got a gradient
    expect(a.params.every((g) => g.length > 0)).toBe(true)
    disposeNet(normal)
    disposeNet(invertible)
  })

  test('float64: rev = true with gradients works and matches normal mode', () => {
    const normal = build('float64', make)
    const invertible = build('float64', make)
    // initialise ActNorm from a forward batch in both
    noGrad(() =>
      tidy(() => {
        const x0 = randn(shape, { dtype: 'float64' })
        const c0 = (conds ?? []).map((s) => randn(s, { dtype: 'float64' }))
        for (const inn of [normal, invertible]) inn.forward(x0, { c: c0 })
      }),
    )
    const outShape = [shape[0], ...normal.outputDims()[0]]
    expectSameGrads(gradients(invertible, 'float64', outShape, conds ?? [], true, true), gradients(normal, 'float64', outShape, conds ?? [], false, true), 1e-9)
    disposeNet(normal)
    disposeNet(invertible)
  })
})

describe('invertible backprop: training, memory and options', () => {
  const deep = () => {
    const inn = new SequenceINN(8)
    for (let k = 0; k < 6; k++) inn.append(Fm.AllInOneBlock, { subnetConstructor: fc(32), permuteSoft: k % 2 === 0 })
    inn.append(Fm.ActNorm)
    return inn
  }

  function train(invertible: boolean, steps: number): number[] {
    const inn = build('float64', deep)
    inn.invertibleBackprop = invertible
    const opt = new optim.Adam(inn.parameters(), { lr: 1e-2 })
    const losses: number[] = []
    manualSeed(3)
    const batches = Array.from({ length: steps }, () => randn([32, 8], { dtype: 'float64' }))
    for (const x of batches)
      losses.push(
        tidy(() => {
          const [z, ljd] = inn.forward(x)
          const loss = z.square().sum(1).mul(0.5).sub(ljd).mean()
          opt.zeroGrad()
          loss.backward()
          opt.step()
          return loss.item()
        }),
      )
    batches.forEach((b) => b.dispose())
    disposeNet(inn)
    opt.zeroGrad()
    return losses
  }

  test('Adam training gives the same losses as normal mode (float64)', () => {
    const a = train(false, 6)
    const b = train(true, 6)
    expect(a[5]).not.toBeCloseTo(a[0], 3) // it does train
    b.forEach((l, i) => expect(Math.abs(l - a[i]) / Math.abs(a[i])).toBeLessThanOrEqual(1e-9))
  })

  test('a training step leaks no tensors and no bytes', () => {
    const inn = build('float32', deep)
    inn.invertibleBackprop = true
    const opt = new optim.Adam(inn.parameters(), { lr: 1e-3 })
    const x = randn([16, 8])
    const step = () =>
      tidy(() => {
        const [z, ljd] = inn.forward(x)
        const loss = z.square().sum(1).sub(ljd).mean()
        opt.zeroGrad()
        loss.backward()
        opt.step()
        return loss.item()
      })
    step() // creates the gradients and Adam's state
    const before = memory()
    step()
    step()
    const after = memory()
    expect(after.tensors).toBe(before.tensors)
    expect(after.bytes).toBe(before.bytes)
    // also without an enclosing tidy: forward + backward free everything but what they return
    const t0 = memory().tensors
    const [z, ljd] = inn.forward(x)
    expect(memory().tensors - t0).toBe(2) // z and the log-det, nothing else
    const made = [z, ljd]
    made.push(z.square())
    made.push(made[made.length - 1].sum(1))
    made.push(made[made.length - 1].sub(ljd))
    const loss = made[made.length - 1].mean()
    made.push(loss)
    loss.backward()
    made.forEach((t) => t.dispose())
    expect(memory().tensors).toBe(t0)
    x.dispose()
    disposeNet(inn)
  })

  test('peak memory of a step holds one block of activations, not all of them', () => {
    const make = () => {
      const inn = new SequenceINN(16)
      for (let k = 0; k < 12; k++) inn.append(Fm.AllInOneBlock, { subnetConstructor: fc(128), permuteSoft: true })
      return inn
    }
    const peak = (invertible: boolean): number => {
      const inn = build('float32', make)
      inn.invertibleBackprop = invertible
      const x = randn([512, 16])
      const step = () =>
        tidy(() => {
          const [z, ljd] = inn.forward(x)
          z.square().sum(1).sub(ljd).mean().backward()
        })
      step()
      resetPeak()
      const base = memory().bytes
      step()
      const p = memory().peakBytes - base
      x.dispose()
      disposeNet(inn)
      return p
    }
    const normal = peak(false)
    const invertible = peak(true)
    expect(normal).toBeGreaterThan(0)
    expect(invertible).toBeLessThan(normal * 0.3)
  })

  test('grad() returns the same input gradient and leaves .grad alone', () => {
    const normal = build('float64', deep)
    const invertible = build('float64', deep)
    invertible.invertibleBackprop = true
    const g = (inn: SequenceINN) =>
      tidy(() => {
        manualSeed(5)
        const x = randn([16, 8], { dtype: 'float64', requiresGrad: true })
        const [z, ljd] = inn.forward(x)
        const [gx] = grad(z.square().sum(1).sub(ljd).mean(), [x])
        return asF64(gx)
      })
    expect(relErr(g(invertible), g(normal))).toBeLessThanOrEqual(1e-9)
    expect(invertible.parameters().every((p) => p.grad === null)).toBe(true)
    disposeNet(normal)
    disposeNet(invertible)
  })

  test('ActNorm initialises in the first forward and not again during backward', () => {
    const inn = build('float64', () => new SequenceINN(3).append(Fm.ActNorm).append(Fm.AllInOneBlock, { subnetConstructor: fc(8) }).append(Fm.ActNorm))
    inn.invertibleBackprop = true
    tidy(() => {
      const x = randn([20, 3], { dtype: 'float64' }).mul(3).add(1)
      const first = inn.at(0) as InstanceType<typeof Fm.ActNorm>
      const [z, ljd] = inn.forward(x)
      expect(first.isInitialized).toBe(true)
      const loc = Array.from(first.loc.toArray())
      const mean = Array.from(x.mean(0).toArray())
      loc.forEach((v, i) => expect(v).toBeCloseTo(mean[i], 12))
      // the last ActNorm standardised the chain's output
      Array.from(z.mean(0).toArray()).forEach((v) => expect(Math.abs(v)).toBeLessThan(1e-12))
      z.square().sum(1).sub(ljd).mean().backward()
      expect(Array.from(first.loc.toArray())).toEqual(loc)
    })
    disposeNet(inn)
  })

  test('switching the option off restores normal mode; without recording it changes nothing', () => {
    const inn = build('float64', deep)
    expect(inn.invertibleBackprop).toBe(false)
    tidy(() => {
      const x = randn([8, 8], { dtype: 'float64' })
      inn.invertibleBackprop = true
      const [z1] = inn.forward(x)
      expect(z1._gradFn?.node.name).toBe('SequenceINN.invertibleBackprop')
      inn.invertibleBackprop = false
      const [z2] = inn.forward(x)
      expect(z2._gradFn?.node.name).not.toBe('SequenceINN.invertibleBackprop')
      expect(relErr(z1.toArray(), z2.toArray())).toBe(0)
      inn.invertibleBackprop = true
      const [z3] = noGrad(() => inn.forward(x))
      expect(z3.requiresGrad).toBe(false)
    })
    const a = gradients(inn, 'float64', [8, 8], [], true)
    const b = gradients(inn, 'float64', [8, 8], [], false)
    expectSameGrads(a, b, 1e-9)
    expectCode(() => ((inn as unknown as { invertibleBackprop: unknown }).invertibleBackprop = 1), 'ERR_ARGUMENT')
    disposeNet(inn)
  })

  test('AllInOneBlock rebuilds through its fused path (one subnet pass); with reversePermutation it falls back', () => {
    const spy = jest.spyOn(Fm.AllInOneBlock.prototype as unknown as { _rebuildForBackward: () => unknown }, '_rebuildForBackward')
    try {
      const make = () => new SequenceINN(5).append(Fm.AllInOneBlock, { subnetConstructor: fc(8) }).append(Fm.AllInOneBlock, { subnetConstructor: fc(8), reversePermutation: true, permuteSoft: true })
      const normal = build('float64', make)
      const invertible = build('float64', make)
      expectSameGrads(gradients(invertible, 'float64', [6, 5], [], true), gradients(normal, 'float64', [6, 5], [], false), 1e-9)
      expect(spy).toHaveBeenCalledTimes(2)
      expect(spy.mock.results.map((r) => r.value === null)).toEqual([true, false]) // the last block (reversePermutation) declines
      disposeNet(normal)
      disposeNet(invertible)
    } finally {
      spy.mockRestore()
    }
  })

  test('the rebuild of a soft-permutation AllInOneBlock on 2-D data computes no catLinear product: only its backward', () => {
    const make = () => new SequenceINN(6).append(Fm.AllInOneBlock, { subnetConstructor: fc(8), permuteSoft: true }).append(Fm.AllInOneBlock, { subnetConstructor: fc(8), permuteSoft: true })
    const normal = build('float64', make)
    const invertible = build('float64', make)
    const native = core as unknown as Record<string, (...args: unknown[]) => unknown>
    const calls = { catLinear: 0, catLinearBackward: 0 }
    const saved = { catLinear: native.catLinear, catLinearBackward: native.catLinearBackward }
    for (const k of ['catLinear', 'catLinearBackward'] as const)
      native[k] = (...args: unknown[]) => {
        calls[k]++
        return saved[k](...args)
      }
    try {
      const got = gradients(invertible, 'float64', [7, 6], [], true)
      // two blocks: two products in the forward pass, none in the rebuild; two backward passes
      expect(calls).toEqual({ catLinear: 2, catLinearBackward: 2 })
      expectSameGrads(got, gradients(normal, 'float64', [7, 6], [], false), 1e-9)
    } finally {
      Object.assign(native, saved)
      disposeNet(normal)
      disposeNet(invertible)
    }
  })

  test('Dropout in training mode is refused; in eval mode it is fine', () => {
    const inn = new SequenceINN(4).append(Fm.GLOWCouplingBlock, {
      subnetConstructor: (i: number, o: number) => new nn.Sequential(new nn.Linear(i, 8), new nn.Dropout(0.2), new nn.Linear(8, o)),
    })
    inn.invertibleBackprop = true
    tidy(() => {
      const x = randn([4, 4])
      expectCode(() => inn.forward(x), 'ERR_ARGUMENT')
      inn.eval()
      const [z] = inn.forward(x)
      expect(z.requiresGrad).toBe(true)
    })
    disposeNet(inn)
  })

  test('a SequenceINN node with the option on inside a GraphINN (whose own option is off) gives normal gradients', () => {
    const inp = new InputNode(4, { name: 'in' })
    const seq = build('float64', () => new SequenceINN(4).append(Fm.AllInOneBlock, { subnetConstructor: fc(8) }).append(Fm.AllInOneBlock, { subnetConstructor: fc(8) }))
    const ref = build('float64', () => new SequenceINN(4).append(Fm.AllInOneBlock, { subnetConstructor: fc(8) }).append(Fm.AllInOneBlock, { subnetConstructor: fc(8) }))
    const node = new Node(inp, seq as never, {}, { name: 'chain' })
    const graph = new GraphINN([inp, node, new OutputNode(node, { name: 'out' })])
    expect(graph.invertibleBackprop).toBe(false)
    expectCode(() => ((graph as unknown as { invertibleBackprop: unknown }).invertibleBackprop = 'yes'), 'ERR_ARGUMENT')
    seq.invertibleBackprop = true
    const run = (f: (x: Tensor) => [Tensor | Tensor[], Tensor], params: Tensor[]) =>
      tidy(() => {
        manualSeed(2)
        const x = randn([6, 4], { dtype: 'float64' })
        const [z, ljd] = f(x)
        ;(z as Tensor).square().sum(1).sub(ljd).mean().backward()
        const gs = params.map((p) => asF64(p.grad))
        params.forEach((p) => (p.grad = null))
        return gs
      })
    const a = run((x) => graph.forward(x), seq.parameters())
    const b = run((x) => ref.forward(x), ref.parameters())
    a.forEach((g, i) => expect(relErr(g, b[i])).toBeLessThanOrEqual(1e-9))
    disposeNet(seq)
    disposeNet(ref)
  })
})

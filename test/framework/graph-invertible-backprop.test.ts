/**
 * Invertible backpropagation over a graph (GraphINN.invertibleBackprop): for chains, split/concat graphs,
 * conditional graphs (conditions from ConditionNodes and from other nodes' outputs) and graphs with several
 * inputs and outputs, in both directions, the gradients of every input, condition and parameter and the
 * log-dets equal normal mode's, Adam gives the same losses, nothing leaks, Dropout in training mode is refused,
 * and the peak memory of a step of a deep graph is much smaller.
 */
import {
  ConditionNode, GraphINN, grad, InputNode, manualSeed, memory, modules as Fm, nn, Node, noGrad, optim, OutputNode, randn,
  resetPeak, Tensor, tidy,
} from '../../lib'
import type { DType } from '../../lib'
import { expectCode, relErr } from '../helpers'
import { asF64, build, disposeNet, expectGradsClose, fc } from './backprop-compare'


/** Builds a graph in the given dtype (parameters drawn from seed 7, so two builds are identical). */

interface Case {
  name: string
  make: () => GraphINN
  /** Input shapes (with batch), in InputNode order. */
  shapes: number[][]
  /** Condition shapes (with batch), in ConditionNode order. */
  conds?: number[][]
}

const B = 8

const cases: Case[] = [
  {
    name: 'chain of GLOW, RNVP and AllInOne blocks with PermuteRandom and ActNorm',
    make: () => {
      const inp = new InputNode(6, { name: 'in' })
      const n1 = new Node(inp, Fm.GLOWCouplingBlock, { subnetConstructor: fc(16), clamp: 2.0 })
      const n2 = new Node(n1, Fm.PermuteRandom, { seed: 1 })
      const n3 = new Node(n2, Fm.ActNorm)
      const n4 = new Node(n3, Fm.RNVPCouplingBlock, { subnetConstructor: fc(16) })
      const n5 = new Node(n4, Fm.PermuteRandom, { seed: 2 })
      const n6 = new Node(n5, Fm.AllInOneBlock, { subnetConstructor: fc(16), permuteSoft: true })
      const n7 = new Node(n6, Fm.AllInOneBlock, { subnetConstructor: fc(16) })
      return new GraphINN([inp, n1, n2, n3, n4, n5, n6, n7, new OutputNode(n7)])
    },
    shapes: [[B, 6]],
  },
  {
    name: 'Split into two branches with their own blocks, re-joined by Concat',
    make: () => {
      const inp = new InputNode(8, { name: 'in' })
      const perm = new Node(inp, Fm.PermuteRandom, { seed: 3 })
      const split = new Node(perm, Fm.Split, { sectionSizes: [5, 3] })
      const a1 = new Node(split.out0, Fm.GLOWCouplingBlock, { subnetConstructor: fc(12) })
      const a2 = new Node(a1, Fm.ActNorm)
      const a3 = new Node(a2, Fm.RNVPCouplingBlock, { subnetConstructor: fc(12) })
      const b1 = new Node(split.out1, Fm.AllInOneBlock, { subnetConstructor: fc(12), permuteSoft: true })
      const b2 = new Node(b1, Fm.AllInOneBlock, { subnetConstructor: fc(12) })
      const cat = new Node([a3.out0, b2.out0], Fm.Concat)
      const last = new Node(cat, Fm.GLOWCouplingBlock, { subnetConstructor: fc(12) })
      return new GraphINN([inp, perm, split, a1, a2, a3, b1, b2, cat, last, new OutputNode(last)])
    },
    shapes: [[B, 8]],
  },
  {
    name: 'conditional graph: ConditionNodes feed coupling blocks',
    make: () => {
      const inp = new InputNode(4, { name: 'in' })
      const c1 = new ConditionNode(3, { name: 'c1' })
      const c2 = new ConditionNode(2, { name: 'c2' })
      const n1 = new Node(inp, Fm.AllInOneBlock, { subnetConstructor: fc(16) }, { conditions: c1 })
      const n2 = new Node(n1, Fm.GLOWCouplingBlock, { subnetConstructor: fc(16) }, { conditions: c2 })
      const n3 = new Node(n2, Fm.PermuteRandom, { seed: 4 })
      const n4 = new Node(n3, Fm.RNVPCouplingBlock, { subnetConstructor: fc(16) }, { conditions: [c1, c2] })
      const n5 = new Node(n4, Fm.AllInOneBlock, { subnetConstructor: fc(16) }, { conditions: c2 })
      return new GraphINN([inp, c1, c2, n1, n2, n3, n4, n5, new OutputNode(n5)])
    },
    shapes: [[B, 4]],
    conds: [[B, 3], [B, 2]],
  },
  {
    name: 'a node conditioned on another node\'s output (kept from the forward pass)',
    make: () => {
      const inp = new InputNode(7, { name: 'in' })
      const split = new Node(inp, Fm.Split, { sectionSizes: [4, 3] })
      const side = new Node(split.out1, Fm.AllInOneBlock, { subnetConstructor: fc(8) })
      const main1 = new Node(split.out0, Fm.GLOWCouplingBlock, { subnetConstructor: fc(12) }, { conditions: side })
      const main2 = new Node(main1, Fm.AllInOneBlock, { subnetConstructor: fc(12) }, { conditions: side })
      const cat = new Node([main2.out0, side.out0], Fm.Concat)
      const last = new Node(cat, Fm.RNVPCouplingBlock, { subnetConstructor: fc(12) })
      return new GraphINN([inp, split, side, main1, main2, cat, last, new OutputNode(last)])
    },
    shapes: [[B, 7]],
  },
  {
    name: 'two inputs, a condition, two outputs (the tutorial graph)',
    make: () => {
      const in1 = new InputNode(12, { name: 'Input 1' })
      const in2 = new InputNode(3, { name: 'Input 2' })
      const cond = new ConditionNode(5, { name: 'Condition' })
      const perm = new Node(in1, Fm.PermuteRandom, { seed: 5 })
      const split1 = new Node(perm, Fm.Split)
      const split2 = new Node(split1.out1, Fm.Split)
      const actnorm = new Node(split2.out1, Fm.ActNorm)
      const concat1 = new Node([actnorm.out0, in2.out0], Fm.Concat)
      const affine = new Node(concat1, Fm.AffineCouplingOneSided, { subnetConstructor: fc(16) }, { conditions: cond })
      const concat2 = new Node([split2.out0, affine.out0], Fm.Concat)
      const glow = new Node(concat2, Fm.GLOWCouplingBlock, { subnetConstructor: fc(16) }, { conditions: cond })
      return new GraphINN([in1, in2, cond, perm, split1, split2, actnorm, concat1, affine, concat2, glow, new OutputNode(split1.out0), new OutputNode(glow)])
    },
    shapes: [[B, 12], [B, 3]],
    conds: [[B, 5]],
  },
]

interface Grads {
  loss: number
  logDet: Float64Array
  x: Float64Array[]
  c: Float64Array[]
  params: Float64Array[]
}

/** One forward/backward in the chosen mode; returns the loss, the log-det and every gradient (and clears them). */
function gradients(inn: GraphINN, dtype: DType, shapes: number[][], condShapes: number[][], invertible: boolean, rev = false): Grads {
  inn.invertibleBackprop = invertible
  return tidy(() => {
    manualSeed(11)
    const xs = shapes.map((s) => randn(s, { dtype, requiresGrad: true }))
    const cLeaves = condShapes.map((s) => randn(s, { dtype, requiresGrad: true }))
    // conditions that are not leaves: their gradient must flow on through the graph that made them
    const c = cLeaves.map((l) => l.mul(1.5).tanh())
    const [zs, ljd] = inn.forward(xs, c, rev, true)
    if (invertible) expect(ljd._gradFn?.node.name).toBe('GraphINN.invertibleBackprop')
    let loss = ljd.mul(-1.25)
    for (const z of zs) {
      const w = randn([...z.shape], { dtype })
      loss = loss.add(z.square().mul(w).flatten(1).sum(1).mul(0.5))
    }
    loss = loss.mean()
    loss.backward()
    const out: Grads = {
      loss: loss.item(),
      logDet: asF64(ljd),
      x: xs.map((x) => asF64(x.grad)),
      c: cLeaves.map((l) => asF64(l.grad)),
      params: inn.parameters().map((p) => asF64(p.grad)),
    }
    for (const p of inn.parameters()) {
      p.grad?.dispose()
      p.grad = null
    }
    return out
  })
}

function expectSameGrads(a: Grads, b: Grads, tol: number): void {
  expect(relErr([a.loss], [b.loss])).toBeLessThanOrEqual(tol)
  expect(relErr(a.logDet, b.logDet)).toBeLessThanOrEqual(tol)
  expectGradsClose(a.x, b.x, tol)
  expectGradsClose(a.c, b.c, tol)
  expectGradsClose(a.params, b.params, tol, true)
}


describe.each(cases)('graph invertible backprop: $name', ({ make, shapes, conds }) => {
  test.each([
    ['float64', 1e-9],
    ['float32', 1e-5],
  ] as [DType, number][])('%s: gradients of the inputs, the conditions and every parameter, and the log-det, equal normal mode', (dtype, tol) => {
    // two identical networks, so that ActNorm initialises in each from the same first batch
    const normal = build(dtype, make)
    const invertible = build(dtype, make)
    const a = gradients(normal, dtype, shapes, conds ?? [], false)
    const b = gradients(invertible, dtype, shapes, conds ?? [], true)
    expectSameGrads(b, a, tol)
    // a second step (ActNorm now initialised, gradients accumulate from null again)
    expectSameGrads(gradients(invertible, dtype, shapes, conds ?? [], true), gradients(normal, dtype, shapes, conds ?? [], false), tol)
    // every parameter got a gradient
    expect(a.params.every((g) => g.length > 0)).toBe(true)
    disposeNet(normal)
    disposeNet(invertible)
  })

  test('float64: rev = true with gradients matches normal mode', () => {
    const normal = build('float64', make)
    const invertible = build('float64', make)
    // initialise ActNorm from a forward batch in both
    noGrad(() =>
      tidy(() => {
        const x0 = shapes.map((s) => randn(s, { dtype: 'float64' }))
        const c0 = (conds ?? []).map((s) => randn(s, { dtype: 'float64' }))
        for (const inn of [normal, invertible]) inn.forward(x0, c0, false, true)
      }),
    )
    const outShapes = normal.outputDims().map((d) => [B, ...d])
    expectSameGrads(gradients(invertible, 'float64', outShapes, conds ?? [], true, true), gradients(normal, 'float64', outShapes, conds ?? [], false, true), 1e-9)
    disposeNet(normal)
    disposeNet(invertible)
  })
})

describe('graph invertible backprop: training, memory and options', () => {
  const splitGraph = cases[1].make
  const tutorial = cases[4]

  function train(make: () => GraphINN, shapes: number[][], condShapes: number[][], invertible: boolean, steps: number, rev = false): number[] {
    const inn = build('float64', make)
    inn.invertibleBackprop = invertible
    const opt = new optim.Adam(inn.parameters(), { lr: 1e-2 })
    const losses: number[] = []
    manualSeed(3)
    const batches = Array.from({ length: steps }, () => shapes.map((s) => randn([32, ...s.slice(1)], { dtype: 'float64' })))
    const c = condShapes.map((s) => randn([32, ...s.slice(1)], { dtype: 'float64' }))
    for (const xs of batches)
      losses.push(
        tidy(() => {
          const [zs, ljd] = inn.forward(xs, c, rev, true)
          let loss = ljd.neg()
          for (const z of zs) loss = loss.add(z.square().sum(1).mul(0.5))
          loss = loss.mean()
          opt.zeroGrad()
          loss.backward()
          opt.step()
          return loss.item()
        }),
      )
    batches.flat().forEach((b) => b.dispose())
    c.forEach((t) => t.dispose())
    disposeNet(inn)
    opt.zeroGrad()
    return losses
  }

  test.each([false, true])('Adam training gives the same losses as normal mode (float64, rev = %s)', (rev) => {
    for (const { make, shapes, conds } of [{ make: splitGraph, shapes: cases[1].shapes, conds: [] as number[][] }, tutorial]) {
      const inShapes = rev ? build('float64', make).outputDims().map((d) => [B, ...d]) : shapes
      const a = train(make, inShapes, conds ?? [], false, 5, rev)
      const b = train(make, inShapes, conds ?? [], true, 5, rev)
      expect(a[4]).not.toBeCloseTo(a[0], 3) // it does train
      b.forEach((l, i) => expect(Math.abs(l - a[i]) / Math.abs(a[i])).toBeLessThanOrEqual(1e-9))
    }
  })

  test('a training step leaks no tensors and no bytes; the forward keeps only the outputs and the log-det', () => {
    const inn = build('float32', tutorial.make)
    inn.invertibleBackprop = true
    const opt = new optim.Adam(inn.parameters(), { lr: 1e-3 })
    const xs = tutorial.shapes.map((s) => randn(s))
    const c = [randn((tutorial.conds as number[][])[0])]
    const step = () =>
      tidy(() => {
        const [zs, ljd] = inn.forward(xs, c, false, true)
        const loss = zs[0].square().sum(1).add(zs[1].square().sum(1)).sub(ljd).mean()
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
    const [zs, ljd] = inn.forward(xs, c, false, true)
    expect(memory().tensors - t0).toBe(3) // two outputs and the log-det, nothing else
    const made = [...zs, ljd]
    made.push(zs[0].square(), zs[1].square())
    made.push(made[3].sum(1), made[4].sum(1))
    made.push(made[5].add(made[6]))
    made.push(made[made.length - 1].sub(ljd))
    const loss = made[made.length - 1].mean()
    made.push(loss)
    loss.backward()
    made.forEach((t) => t.dispose())
    expect(memory().tensors).toBe(t0)
    // a condition taken from a node's output is kept until the backward pass, then freed
    const kept = build('float32', cases[3].make)
    kept.invertibleBackprop = true
    const x = randn([B, 7])
    const t1 = memory().tensors
    const [z, l] = kept.forward([x], [], false, true)
    expect(memory().tensors - t1).toBe(3) // the output, the log-det and the kept condition
    const q = z[0].square()
    const s = q.sum(1)
    const d = s.sub(l)
    const m = d.mean()
    m.backward()
    ;[...z, l, q, s, d, m].forEach((t) => t.dispose())
    expect(kept.parameters().every((p) => p.grad !== null)).toBe(true)
    for (const p of kept.parameters()) {
      p.grad?.dispose()
      p.grad = null
    }
    expect(memory().tensors).toBe(t1)
    ;[...xs, ...c, x].forEach((t) => t.dispose())
    disposeNet(inn)
    disposeNet(kept)
  })

  test('peak memory of a step of a deep graph (16 blocks) is much smaller than in normal mode', () => {
    const make = () => {
      const inp = new InputNode(16, { name: 'in' })
      const nodes: Node[] = []
      let last: Node | InputNode = inp
      for (let k = 0; k < 7; k++) nodes.push((last = new Node(last, Fm.AllInOneBlock, { subnetConstructor: fc(128), permuteSoft: true })))
      const split = new Node(last, Fm.Split)
      let a: Node = split
      let b: Node = split
      nodes.push(split)
      for (let k = 0; k < 1; k++) {
        nodes.push((a = new Node(a === split ? split.out0 : a, Fm.AllInOneBlock, { subnetConstructor: fc(128) })))
        nodes.push((b = new Node(b === split ? split.out1 : b, Fm.AllInOneBlock, { subnetConstructor: fc(128) })))
      }
      nodes.push((last = new Node([a.out0, b.out0], Fm.Concat)))
      for (let k = 0; k < 7; k++) nodes.push((last = new Node(last, Fm.AllInOneBlock, { subnetConstructor: fc(128), permuteSoft: true })))
      return new GraphINN([inp, ...nodes, new OutputNode(last)])
    }
    const peak = (invertible: boolean): number => {
      const inn = build('float32', make)
      inn.invertibleBackprop = invertible
      const x = randn([512, 16])
      const step = () =>
        tidy(() => {
          const [z, ljd] = inn.forward([x], [], false, true)
          z[0].square().sum(1).sub(ljd).mean().backward()
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

  test('grad() returns the same input gradients and leaves .grad alone', () => {
    const normal = build('float64', tutorial.make)
    const invertible = build('float64', tutorial.make)
    invertible.invertibleBackprop = true
    const g = (inn: GraphINN) =>
      tidy(() => {
        manualSeed(5)
        const xs = tutorial.shapes.map((s) => randn(s, { dtype: 'float64', requiresGrad: true }))
        const c = randn((tutorial.conds as number[][])[0], { dtype: 'float64', requiresGrad: true })
        const [zs, ljd] = inn.forward(xs, [c], false, true)
        const gs = grad(zs[0].square().sum(1).add(zs[1].square().sum(1)).sub(ljd).mean(), [...xs, c])
        return gs.map(asF64)
      })
    const b = g(normal)
    g(invertible).forEach((gi, i) => expect(relErr(gi, b[i])).toBeLessThanOrEqual(1e-9))
    expect(invertible.parameters().every((p) => p.grad === null)).toBe(true)
    disposeNet(normal)
    disposeNet(invertible)
  })

  test('jac: false: the log-det is zeros and the gradients are normal mode\'s, as in FrEIA', () => {
    const normal = build('float64', tutorial.make)
    const invertible = build('float64', tutorial.make)
    invertible.invertibleBackprop = true
    const run = (inn: GraphINN) =>
      tidy(() => {
        manualSeed(5)
        const xs = tutorial.shapes.map((s) => randn(s, { dtype: 'float64', requiresGrad: true }))
        const c = randn((tutorial.conds as number[][])[0], { dtype: 'float64' })
        const [zs, ljd] = inn.forward(xs, [c], false, false)
        const loss = zs[0].square().sum(1).add(zs[1].square().sum(1)).sub(ljd).mean()
        const gs = grad(loss, xs)
        return [asF64(ljd), [loss.item()], ...gs.map(asF64)]
      })
    const a = run(normal)
    const b = run(invertible)
    expect(a[0].every((v) => v === 0)).toBe(true)
    expect(b[0]).toEqual(a[0])
    b.slice(1).forEach((v, i) => expect(relErr(v, a[i + 1])).toBeLessThanOrEqual(1e-9))
    disposeNet(normal)
    disposeNet(invertible)
  })

  test('switching the option off restores normal mode; without recording it changes nothing; only a boolean is taken', () => {
    const inn = build('float64', splitGraph)
    expect(inn.invertibleBackprop).toBe(false)
    tidy(() => {
      const x = randn([B, 8], { dtype: 'float64' })
      inn.invertibleBackprop = true
      expect(inn.invertibleBackprop).toBe(true)
      const [z1] = inn.forward(x) as [Tensor, Tensor]
      expect(z1._gradFn?.node.name).toBe('GraphINN.invertibleBackprop')
      inn.invertibleBackprop = false
      const [z2] = inn.forward(x) as [Tensor, Tensor]
      expect(z2._gradFn?.node.name).not.toBe('GraphINN.invertibleBackprop')
      expect(relErr(z1.toArray(), z2.toArray())).toBe(0)
      inn.invertibleBackprop = true
      const [z3] = noGrad(() => inn.forward(x)) as [Tensor, Tensor]
      expect(z3.requiresGrad).toBe(false)
    })
    expectCode(() => ((inn as unknown as { invertibleBackprop: unknown }).invertibleBackprop = 1), 'ERR_ARGUMENT')
    disposeNet(inn)
  })

  test('Dropout in training mode is refused with ERR_ARGUMENT; in eval mode it is fine', () => {
    const inp = new InputNode(4)
    const n1 = new Node(inp, Fm.AllInOneBlock, { subnetConstructor: fc(8) })
    const n2 = new Node(n1, Fm.GLOWCouplingBlock, {
      subnetConstructor: (i: number, o: number) => new nn.Sequential(new nn.Linear(i, 8), new nn.Dropout(0.2), new nn.Linear(8, o)),
    })
    const inn = new GraphINN([inp, n1, n2, new OutputNode(n2)])
    inn.invertibleBackprop = true
    tidy(() => {
      const x = randn([4, 4])
      expectCode(() => inn.forward(x), 'ERR_ARGUMENT')
      expectCode(() => inn.forward([x], [], true, true), 'ERR_ARGUMENT')
      inn.eval()
      const [z] = inn.forward(x) as [Tensor, Tensor]
      expect(z.requiresGrad).toBe(true)
    })
    disposeNet(inn)
  })
})

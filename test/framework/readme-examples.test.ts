/**
 * FrEIA's README and tutorial examples, written with innflow's API: the moons training loop, the graph with
 * two inputs and a condition, the conditional MNIST-style SequenceINN, and the convolutional multiscale
 * GraphINN (whose parameter count must equal FrEIA's: 14,849,696, WORKLOADS.md).
 */
import {
  ConditionNode, data, GraphINN, InputNode, manualSeed, memory, modules as Fm, nn, Node, noGrad, optim, OutputNode,
  randn, SequenceINN, tensor, Tensor, tidy,
} from '../../lib'
import type { AbstractNode } from '../../lib/framework/nodes'
import { relErr } from '../helpers'
import { freiaParameterCount as countParams } from '../../bench/workloads'

const subnetFc = (width: number) => (cIn: number, cOut: number): nn.Sequential => new nn.Sequential(new nn.Linear(cIn, width), new nn.ReLU(), new nn.Linear(width, cOut))
const subnetConv = (width: number, k: number) => (cIn: number, cOut: number): nn.Sequential =>
  new nn.Sequential(new nn.Conv2d(cIn, width, k, { padding: Math.floor(k / 2) }), new nn.ReLU(), new nn.Conv2d(width, cOut, k, { padding: Math.floor(k / 2) }))

test('moons: SequenceINN of 8 AllInOneBlocks trains and samples (README quick start)', () => {
  manualSeed(0)
  const inn = new SequenceINN(2)
  for (let k = 0; k < 8; k++) inn.append(Fm.AllInOneBlock, { subnetConstructor: subnetFc(64), permuteSoft: true })
  const opt = new optim.Adam(inn.parameters(), { lr: 1e-3 })
  const losses: number[] = []
  for (let i = 0; i < 150; i++) {
    losses.push(
      tidy(() => {
        const x = data.moons(100)
        const [z, logJacDet] = inn.forward(x)
        const loss = z.square().sum(1).mul(0.5).sub(logJacDet).mean().div(2)
        opt.zeroGrad()
        loss.backward()
        opt.step()
        return loss.item()
      }),
    )
  }
  const first = losses.slice(0, 10).reduce((a, b) => a + b) / 10
  const last = losses.slice(-10).reduce((a, b) => a + b) / 10
  expect(last).toBeLessThan(first - 0.3)
  tidy(() => {
    const [samples] = inn.forward(randn([100, 2]), { rev: true })
    expect(samples.shape).toEqual([100, 2])
    expect(Array.from(samples.toArray()).every(Number.isFinite)).toBe(true)
  })
})

test('the tutorial graph: two inputs, a condition, splits, ActNorm, concatenations', () => {
  tidy(() => {
    manualSeed(1)
    const in1 = new InputNode(100, { name: 'Input 1' })
    const in2 = new InputNode(20, { name: 'Input 2' })
    const cond = new ConditionNode(42, { name: 'Condition' })
    const perm = new Node(in1, Fm.PermuteRandom, {}, { name: 'Permutation' })
    const split1 = new Node(perm, Fm.Split, {}, { name: 'Split 1' })
    const split2 = new Node(split1.out1, Fm.Split, {}, { name: 'Split 2' })
    const actnorm = new Node(split2.out1, Fm.ActNorm, {}, { name: 'ActNorm' })
    const concat1 = new Node([actnorm.out0, in2.out0], Fm.Concat, {}, { name: 'Concat' })
    const affine = new Node(concat1, Fm.AffineCouplingOneSided, { subnetConstructor: subnetFc(64) }, { conditions: cond, name: 'Affine Coupling' })
    const concat2 = new Node([split2.out0, affine.out0], Fm.Concat, {}, { name: 'Concat 2' })
    const output1 = new OutputNode(split1.out0, { name: 'Output 1' })
    const output2 = new OutputNode(concat2, { name: 'Output 2' })
    const inn = new GraphINN([in1, in2, cond, perm, split1, split2, actnorm, concat1, affine, concat2, output1, output2])
    const x1 = randn([8, 100], { dtype: 'float32' })
    const x2 = randn([8, 20])
    const c = randn([8, 42])
    const [z, logJacDet] = inn.forward([x1, x2], { c: [c] })
    const zs = z as Tensor[]
    expect(zs.map((t) => t.shape)).toEqual([[8, 50], [8, 70]])
    expect(logJacDet.shape).toEqual([8])
    const [xs, logJacDetRev] = inn.forward(zs, { c: [c], rev: true })
    expect(relErr((xs as Tensor[])[0].toArray(), x1.toArray())).toBeLessThan(1e-5)
    expect(relErr((xs as Tensor[])[1].toArray(), x2.toArray())).toBeLessThan(1e-5)
    expect(relErr(logJacDetRev.neg().toArray(), logJacDet.toArray())).toBeLessThan(1e-4)
    expect(Object.keys(inn.stateDict())).toContain('Affine Coupling.subnet.0.weight')
  })
})

test('conditional MNIST-style SequenceINN: 12 AllInOneBlocks conditioned on a one-hot label', () => {
  tidy(() => {
    manualSeed(2)
    const cinn = new SequenceINN(28 * 28)
    for (let k = 0; k < 12; k++) cinn.append(Fm.AllInOneBlock, { cond: 0, condShape: [10], subnetConstructor: subnetFc(512) })
    expect(countParams(cinn)).toBe(7339968) // cinn-mnist of WORKLOADS.md
    const x = randn([4, 784])
    const labels = new Float32Array(40)
    for (let i = 0; i < 4; i++) labels[i * 10 + ((3 * i) % 10)] = 1
    const c = tensor(labels, [4, 10])
    const [z, logJacDet] = noGrad(() => cinn.forward(x, { c: [c] }))
    expect(logJacDet.shape).toEqual([4])
    const [xr] = noGrad(() => cinn.forward(z, { c: [c], rev: true }))
    expect(relErr(xr.toArray(), x.toArray())).toBeLessThan(1e-4)
    // the condition matters: another label gives another latent
    const [z2] = noGrad(() => cinn.forward(x, { c: [tensor(labels.map((v, i) => (i % 10 === 9 ? 1 : 0)), [4, 10])] }))
    expect(relErr(z2.toArray(), z.toArray())).toBeGreaterThan(1e-3)
  })
})

/**
 * The docs' advice for deep INNs: start close to the identity. At FrEIA's default initialisation the 12 fully
 * connected GLOW blocks amplify activations ~3× per block (|z| ~ 1e5 after 12), and the whole README network is
 * not numerically invertible even in float64 — in FrEIA as here. Shrinking the last layer of every subnet keeps
 * each coupling a genuine (non-identity) transform while the composition stays well conditioned.
 */
const nearIdentity = (make: (cIn: number, cOut: number) => nn.Sequential) => (cIn: number, cOut: number) => {
  const net = make(cIn, cOut)
  const last = net.at(-1) as nn.Linear | nn.Conv2d
  const bound = 0.02 / Math.sqrt(last.weight.size / last.weight.shape[0])
  nn.init.uniform_(last.weight, -bound, bound)
  return net
}

test('the convolutional multiscale GraphINN of the README has FrEIA\'s 14,849,696 parameters and inverts', () => {
  const before = memory().tensors
  manualSeed(3)
  const ndimX = 3 * 32 * 32
  const nodes: AbstractNode[] = [new InputNode(3, 32, 32, { name: 'input' })]
  const last = () => nodes[nodes.length - 1]
  for (let k = 0; k < 4; k++) {
    nodes.push(new Node(last(), Fm.GLOWCouplingBlock, { subnetConstructor: nearIdentity(subnetConv(256, 3)), clamp: 1.2 }, { name: `conv_high_res_${k}` }))
    nodes.push(new Node(last(), Fm.PermuteRandom, { seed: k }, { name: `permute_high_res_${k}` }))
  }
  nodes.push(new Node(last(), Fm.IRevNetDownsampling, {}))
  for (let k = 0; k < 12; k++) {
    const subnet = nearIdentity(k % 2 === 0 ? subnetConv(256, 1) : subnetConv(256, 3))
    nodes.push(new Node(last(), Fm.GLOWCouplingBlock, { subnetConstructor: subnet, clamp: 1.2 }, { name: `conv_low_res_${k}` }))
    nodes.push(new Node(last(), Fm.PermuteRandom, { seed: k }, { name: `permute_low_res_${k}` }))
  }
  nodes.push(new Node(last(), Fm.Flatten, {}, { name: 'flatten' }))
  const split = new Node(last(), Fm.Split, { sectionSizes: [ndimX / 4, (3 * ndimX) / 4], dim: 0 }, { name: 'split' })
  nodes.push(split)
  for (let k = 0; k < 12; k++) {
    nodes.push(new Node(last(), Fm.GLOWCouplingBlock, { subnetConstructor: nearIdentity(subnetFc(512)), clamp: 2.0 }, { name: `fully_connected_${k}` }))
    nodes.push(new Node(last(), Fm.PermuteRandom, { seed: k }, { name: `permute_${k}` }))
  }
  nodes.push(new Node([last().out0, split.out1], Fm.Concat, { dim: 0 }, { name: 'concat' }))
  nodes.push(new OutputNode(last(), { name: 'output' }))
  const convInn = new GraphINN(nodes)
  expect(countParams(convInn)).toBe(14849696)
  tidy(() =>
    noGrad(() => {
      const x = randn([2, 3, 32, 32])
      const [z, logJacDet] = convInn.forward(x)
      expect((z as Tensor).shape).toEqual([2, ndimX])
      const [xr, logJacDetRev] = convInn.forward(z as Tensor, { rev: true })
      expect(relErr((xr as Tensor).toArray(), x.toArray())).toBeLessThan(1e-4)
      expect(relErr(logJacDetRev.neg().toArray(), logJacDet.toArray())).toBeLessThan(1e-4)
      expect(Math.abs(logJacDet.toArray()[0])).toBeGreaterThan(1) // the couplings are not the identity
    }),
  )
  for (const p of convInn.parameters()) p.dispose()
  for (const b of convInn.buffers()) b.dispose()
  expect(memory().tensors).toBe(before)
}, 120000)

/**
 * The benchmark workloads of shared/bench/WORKLOADS.md, built with innflow's public API (same networks and
 * parameter counts as the PyTorch + FrEIA reference).
 */
import { GraphINN, InputNode, modules as Fm, nn, Node, OutputNode, randn, SequenceINN, tensor, Tensor } from '../lib'
import type { AbstractNode } from '../lib/framework/nodes'

export const fc = (width: number) => (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, width), new nn.ReLU(), new nn.Linear(width, cOut))
export const conv = (width: number, k: number) => (cIn: number, cOut: number) =>
  new nn.Sequential(new nn.Conv2d(cIn, width, k, { padding: Math.floor(k / 2) }), new nn.ReLU(), new nn.Conv2d(width, cOut, k, { padding: Math.floor(k / 2) }))

/**
 * FrEIA's parameter count: innflow's parameters plus the buffers FrEIA registers as frozen nn.Parameters
 * (permutations `w_perm`, `w_perm_inv`, `perm`, `perm_inv`, and IRevNet's `downsample_kernel`), so that the
 * counts of WORKLOADS.md can be checked.
 */
export function freiaParameterCount(m: { parameters(): Tensor[]; namedBuffers(): [string, Tensor][] }): number {
  const frozen = /(^|\.)(w_perm|w_perm_inv|perm|perm_inv|downsample_kernel)$/
  return m.parameters().reduce((n, p) => n + p.size, 0) + m.namedBuffers().filter(([k]) => frozen.test(k)).reduce((n, [, b]) => n + b.size, 0)
}

export interface Workload {
  name: string
  batch: number
  /** Expected parameter count (WORKLOADS.md), or null where none is given. */
  params: number | null
  /** Number of dimensions per sample (the loss is divided by it). */
  dims: number
  build(): SequenceINN | GraphINN
  /** A random batch: the input and the conditions. */
  input(): { x: Tensor; c: Tensor[] }
}

function allInOne(dims: number, blocks: number, width: number): SequenceINN {
  const inn = new SequenceINN(dims)
  for (let k = 0; k < blocks; k++) inn.append(Fm.AllInOneBlock, { subnetConstructor: fc(width), permuteSoft: true })
  return inn
}

export const workloads: Workload[] = [
  { name: 'moons-b256', batch: 256, params: 16496, dims: 2, build: () => allInOne(2, 8, 512), input: () => ({ x: randn([256, 2]), c: [] }) },
  { name: 'moons-b16384', batch: 16384, params: 16496, dims: 2, build: () => allInOne(2, 8, 512), input: () => ({ x: randn([16384, 2]), c: [] }) },
  { name: 'tabular64-b4096', batch: 4096, params: 531456, dims: 64, build: () => allInOne(64, 16, 256), input: () => ({ x: randn([4096, 64]), c: [] }) },
  {
    name: 'cinn-mnist-b256',
    batch: 256,
    params: 7339968,
    dims: 784,
    build: () => {
      const inn = new SequenceINN(784)
      for (let k = 0; k < 12; k++) inn.append(Fm.AllInOneBlock, { subnetConstructor: fc(512), cond: 0, condShape: [10] })
      return inn
    },
    input: () => {
      const onehot = new Float32Array(2560)
      for (let i = 0; i < 256; i++) onehot[i * 10 + (i % 10)] = 1
      return { x: randn([256, 784]), c: [tensor(onehot, [256, 10])] }
    },
  },
  {
    name: 'conv-inn-b64',
    batch: 64,
    params: 14849696,
    dims: 3072,
    build: () => {
      const ndim = 3 * 32 * 32
      const nodes: AbstractNode[] = [new InputNode(3, 32, 32, { name: 'input' })]
      const last = () => nodes[nodes.length - 1]
      for (let k = 0; k < 4; k++) {
        nodes.push(new Node(last(), Fm.GLOWCouplingBlock, { subnetConstructor: conv(256, 3), clamp: 1.2 }, { name: `conv_high_res_${k}` }))
        nodes.push(new Node(last(), Fm.PermuteRandom, { seed: k }, { name: `permute_high_res_${k}` }))
      }
      nodes.push(new Node(last(), Fm.IRevNetDownsampling, {}, { name: 'downsample' }))
      for (let k = 0; k < 12; k++) {
        nodes.push(new Node(last(), Fm.GLOWCouplingBlock, { subnetConstructor: k % 2 === 0 ? conv(256, 1) : conv(256, 3), clamp: 1.2 }, { name: `conv_low_res_${k}` }))
        nodes.push(new Node(last(), Fm.PermuteRandom, { seed: k }, { name: `permute_low_res_${k}` }))
      }
      nodes.push(new Node(last(), Fm.Flatten, {}, { name: 'flatten' }))
      const split = new Node(last(), Fm.Split, { sectionSizes: [ndim / 4, (3 * ndim) / 4], dim: 0 }, { name: 'split' })
      nodes.push(split)
      for (let k = 0; k < 12; k++) {
        nodes.push(new Node(last(), Fm.GLOWCouplingBlock, { subnetConstructor: fc(512), clamp: 2.0 }, { name: `fully_connected_${k}` }))
        nodes.push(new Node(last(), Fm.PermuteRandom, { seed: k }, { name: `permute_${k}` }))
      }
      nodes.push(new Node([last().out0, split.out1], Fm.Concat, { dim: 0 }, { name: 'concat' }))
      nodes.push(new OutputNode(last(), { name: 'output' }))
      return new GraphINN(nodes)
    },
    input: () => ({ x: randn([64, 3, 32, 32]), c: [] }),
  },
  { name: 'tabular64x64-b4096', batch: 4096, params: 2125824, dims: 64, build: () => allInOne(64, 64, 256), input: () => ({ x: randn([4096, 64]), c: [] }) },
]

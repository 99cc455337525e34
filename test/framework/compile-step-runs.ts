/**
 * The training runs that compile-step tests compare: the same flow, initial parameters and batches trained
 * eagerly and through compileStep. Shared by test/framework/compile-step.test.ts and test/cuda/compile-step.test.ts.
 */
import {
  compileStep,
  data,
  Device,
  DType,
  GraphINN,
  InputNode,
  manualSeed,
  modules,
  nllLoss,
  nn,
  Node,
  optim,
  OutputNode,
  randn,
  SequenceINN,
  setDefaultDtype,
  Tensor,
  tidy,
} from '../../lib'

export interface RunOptions {
  device?: Device
  dtype?: DType
  steps?: number
  compiled?: boolean
  warmup?: number
  graph?: boolean
  optimizer?: 'adam' | 'sgd'
  clip?: number
  /** adds randn noise inside the step (dequantisation) */
  noise?: boolean
  /** halves the learning rate every 10 steps (a schedule: read at every replay) */
  schedule?: boolean
  /** a smaller batch every 7th step (a second input signature) */
  ragged?: boolean
  cudaGraphs?: boolean
  /** invertibleBackprop (SequenceINN or GraphINN) */
  invertible?: boolean
}

export interface RunResult {
  losses: number[]
  params: number[][]
  captures: number
  kernels: number
  dynamicKernels: number
  graphs: number
  plannedBytes: number
  arenaBytes: number
}

const subnet = (cin: number, cout: number) => new nn.Sequential(new nn.Linear(cin, 32), new nn.ReLU(), new nn.Linear(32, cout))

function makeFlow(graph: boolean): SequenceINN | GraphINN {
  if (graph) {
    const inp = new InputNode(2, { name: 'in' })
    const a = new Node(inp, modules.GLOWCouplingBlock, { subnetConstructor: subnet, clamp: 2 }, { name: 'a' })
    const p = new Node(a, modules.PermuteRandom, { seed: 3 }, { name: 'p' })
    const b = new Node(p, modules.RNVPCouplingBlock, { subnetConstructor: subnet }, { name: 'b' })
    const n = new Node(b, modules.ActNorm, {}, { name: 'n' })
    return new GraphINN([inp, a, p, b, n, new OutputNode(n, { name: 'out' })])
  }
  const flow = new SequenceINN(2)
  flow.append(modules.ActNorm)
  flow.append(modules.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true })
  flow.append(modules.GLOWCouplingBlock, { subnetConstructor: subnet, clamp: 2 })
  flow.append(modules.PermuteRandom, { seed: 1 })
  flow.append(modules.RNVPCouplingBlock, { subnetConstructor: subnet })
  flow.append(modules.ActNorm)
  return flow
}

export function trainRun(o: RunOptions = {}): RunResult {
  const dtype = o.dtype ?? 'float32'
  const device = o.device ?? 'cpu'
  const steps = o.steps ?? 50
  setDefaultDtype(dtype)
  try {
    manualSeed(7)
    const flow = makeFlow(o.graph ?? false)
    if (o.invertible) flow.invertibleBackprop = true
    flow.to({ device })
    const params = flow.parameters()
    const opt = o.optimizer === 'sgd' ? new optim.SGD(params, { lr: 1e-2, momentum: 0.9 }) : new optim.Adam(params, { lr: 2e-3 })
    manualSeed(11)
    const batches: Tensor[] = tidy(() =>
      Array.from({ length: steps }, (_, i) => data.moons(o.ragged && i % 7 === 6 ? 100 : 256, { dtype }).to({ device })),
    )
    const body = (x: Tensor): Tensor => {
      opt.zeroGrad()
      const input = o.noise ? x.add(randn([...x.shape], { dtype, device }).mul(0.01)) : x
      const [z, logJacDet] = flow.forward(input)
      const loss = nllLoss(z as Tensor, logJacDet)
      loss.backward()
      if (o.clip !== undefined) optim.clipGradNorm(params, o.clip)
      opt.step()
      return loss
    }
    const step = o.compiled ? compileStep(body, { warmup: o.warmup ?? 1, cudaGraphs: o.cudaGraphs ?? true }) : null
    manualSeed(23) // the noise stream
    const losses: number[] = []
    batches.forEach((batch, i) => {
      if (o.schedule && i > 0 && i % 10 === 0) opt.lr = opt.lr / 2
      losses.push(tidy(() => (step ? step(batch) : body(batch)).item()))
    })
    const info = step?.info()
    const result: RunResult = {
      losses,
      params: params.map((p) => Array.from(p.toArray())),
      captures: step?.captures ?? 0,
      kernels: info?.kernels ?? 0,
      dynamicKernels: info?.dynamicKernels ?? 0,
      graphs: info?.graphs ?? 0,
      plannedBytes: info?.plannedBytes ?? 0,
      arenaBytes: info?.arenaBytes ?? 0,
    }
    step?.release()
    opt.dispose()
    for (const b of batches) b.dispose()
    return result
  } finally {
    setDefaultDtype('float32')
  }
}

/** max over i of |a_i − b_i| / |b_i| */
export function maxRel(a: number[], b: number[]): number {
  let m = 0
  a.forEach((v, i) => (m = Math.max(m, Math.abs(v - b[i]) / Math.max(Math.abs(b[i]), 1e-30))))
  return m
}

export function paramRel(a: number[][], b: number[][]): number {
  let num = 0
  let den = 0
  a.forEach((p, i) => p.forEach((v, j) => ((num += (v - b[i][j]) ** 2), (den += b[i][j] ** 2))))
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30)
}

/**
 * A multiscale Glow (Kingma & Dhariwal 2018) on the 8×8 digits, trained on the CPU.
 *
 * Data, split, dequantisation and the metric are those of the `digits-nll` row of shared/bench/WORKLOADS.md
 * (as examples/digits-dense.ts): test set = rows whose index % 5 == 0, pixels dequantised with uniform noise
 * and divided by 17, test bits/dim = (NLL + 64·ln 17) / (64·ln 2) with one seeded noise draw per test image.
 *
 * The network (a GraphINN), with L = 3 levels and K = 8 steps per level (222,848 parameters):
 *   (1, 8, 8) → squeeze → (4, 4, 4) → K × GlowStep → split: (2, 4, 4) out, (2, 4, 4) on
 *             → squeeze → (8, 2, 2) → K × GlowStep → split: (4, 2, 2) out, (4, 2, 2) on
 *             → flatten → (16,) → K × GlowStep (fully connected subnets) → out
 * The three outputs are flattened and concatenated into one 64-dimensional latent z ~ N(0, I). A GlowStep is
 * ActNorm → learnable LU 1×1 convolution → affine coupling with scale sigmoid(raw + 2); the subnets are
 * Glow's conv 3×3 → ReLU → conv 1×1 → ReLU → conv 3×3 (linear layers on the last level) with the last layer
 * zero-initialised, so every step starts as ActNorm and a rotation. The squeeze is i-RevNet's
 * (IRevNetDownsampling). Adam (lr 1e-3 with a cosine decay to 0), batch 128, gradient-norm clipping at 10,
 * 1500 steps. ActNorm is initialised from the first 512 training images.
 *
 * Result of the default run (seed 0, float32, 2 shared CPU cores): test bits/dim 2.387 after about 100 s of
 * training, under 2 minutes in all (seed 1: 2.379). For scale: PyTorch + FrEIA reach 3.32 with the dense
 * digits-nll recipe and 2.40 with a convolutional AllInOneBlock model after 2000 steps
 * (shared/bench/reference.json, digits-conv-nll).
 *
 *   npm run build:ts && node dist/examples/digits-glow.js [--steps N] [--seed S] [--k K] [--width W]
 *     [--fc-width F] [--lr LR] [--batch B] [--wd WD] [--eval-every N]
 */
import * as path from 'node:path'
import {
  data, distributions, GraphINN, InputNode, keep, manualSeed, modules as Fm, nn, Node, noGrad, ops, optim, OutputNode, plot, rand, randn, tensor, Tensor, tidy,
} from '../lib'
import { GlowStep } from '../lib/modules/glow-step'
import type { AbstractNode } from '../lib/framework/nodes'

/** The default recipe (the command line and the functions below use it). */
export const DEFAULTS = {
  stepsPerLevel: 8,
  width: 32,
  fcWidth: 128,
  steps: 1500,
  seed: 0,
  lr: 1e-3,
  batch: 128,
  weightDecay: 0,
} as const

/** The sizes of the model. */
export interface DigitsGlowConfig {
  /** Glow steps per level (default 8). */
  stepsPerLevel?: number
  /** Hidden channels of the convolutional subnets (default 32). */
  width?: number
  /** Hidden units of the fully connected subnets of the last level (default 128). */
  fcWidth?: number
}

/** Glow's subnet: conv 3×3 → ReLU → conv 1×1 → ReLU → conv 3×3, the last layer zero-initialised. */
const convSubnet = (width: number) => (cIn: number, cOut: number) => {
  const last = new nn.Conv2d(width, cOut, 3, { padding: 1 })
  nn.init.zeros_(last.weight)
  nn.init.zeros_(last.bias!)
  return new nn.Sequential(new nn.Conv2d(cIn, width, 3, { padding: 1 }), new nn.ReLU(), new nn.Conv2d(width, width, 1), new nn.ReLU(), last)
}

/** The same with linear layers, for the last (1-D) level. */
const fcSubnet = (width: number) => (cIn: number, cOut: number) => {
  const last = new nn.Linear(width, cOut)
  nn.init.zeros_(last.weight)
  nn.init.zeros_(last.bias!)
  return new nn.Sequential(new nn.Linear(cIn, width), new nn.ReLU(), new nn.Linear(width, width), new nn.ReLU(), last)
}

/** Builds the three-level Glow (see the file comment): input (1, 8, 8), one output of 64 dimensions. */
export function buildDigitsGlow(config: DigitsGlowConfig = {}): GraphINN {
  const K = config.stepsPerLevel ?? DEFAULTS.stepsPerLevel
  const width = config.width ?? DEFAULTS.width
  const nodes: AbstractNode[] = []
  const add = <N extends AbstractNode>(n: N): N => (nodes.push(n), n)
  const steps = (from: AbstractNode, level: number, subnet: (cIn: number, cOut: number) => nn.Module): AbstractNode => {
    let last = from
    for (let k = 0; k < K; k++) last = add(new Node(last, GlowStep, { subnetConstructor: subnet }, { name: `level${level}_step${k}` }))
    return last
  }
  const input = add(new InputNode(1, 8, 8, { name: 'input' }))
  // level 1: (4, 4, 4), half the channels leave
  let h: AbstractNode = add(new Node(input, Fm.IRevNetDownsampling, {}, { name: 'squeeze1' }))
  h = steps(h, 1, convSubnet(width))
  const split1 = add(new Node(h, Fm.Split, { sectionSizes: [2, 2] }, { name: 'split1' }))
  const out1 = add(new Node(split1.out1, Fm.Flatten, {}, { name: 'flatten1' }))
  // level 2: (8, 2, 2), half the channels leave
  h = add(new Node(split1.out0, Fm.IRevNetDownsampling, {}, { name: 'squeeze2' }))
  h = steps(h, 2, convSubnet(width))
  const split2 = add(new Node(h, Fm.Split, { sectionSizes: [4, 4] }, { name: 'split2' }))
  const out2 = add(new Node(split2.out1, Fm.Flatten, {}, { name: 'flatten2' }))
  // level 3: (16,) with fully connected subnets
  h = add(new Node(split2.out0, Fm.Flatten, {}, { name: 'flatten3' }))
  h = steps(h, 3, fcSubnet(config.fcWidth ?? DEFAULTS.fcWidth))
  const z = add(new Node([h.out0, out2.out0, out1.out0], Fm.Concat, { dim: 0 }, { name: 'concat' }))
  add(new OutputNode(z, { name: 'output' }))
  return new GraphINN(nodes)
}

/** The digits split of the recipe: (n, 1, 8, 8) train and test images, pixel values 0..16. */
export function digitsSplit(): { train: Tensor; test: Tensor } {
  const { images, labels } = data.digits()
  const all = Array.from(images.toArray())
  images.dispose()
  labels.dispose()
  const rows = (keepRow: (i: number) => boolean) => {
    const out: number[] = []
    for (let i = 0; i < all.length / 64; i++) if (keepRow(i)) out.push(...all.slice(i * 64, i * 64 + 64))
    return out
  }
  const trainValues = rows((i) => i % 5 !== 0)
  const testValues = rows((i) => i % 5 === 0)
  return { train: tensor(trainValues, [trainValues.length / 64, 1, 8, 8]), test: tensor(testValues, [testValues.length / 64, 1, 8, 8]) }
}

const dequantise = (x: Tensor): Tensor => x.add(rand([...x.shape])).div(17)

/** Mean negative log-likelihood (nats per image) of a batch of pixel values under the flow. */
export function nll(flow: GraphINN, latent: distributions.StandardNormal, x: Tensor): Tensor {
  const [z, logJacDet] = flow.forward(x)
  return latent.logProb(z as Tensor).add(logJacDet).neg().mean()
}

export const bitsPerDim = (nllNats: number): number => (nllNats + 64 * Math.log(17)) / (64 * Math.log(2))

export interface DigitsGlowResult {
  bitsPerDim: number
  seconds: number
  /** The PNG written: 4 rows of samples (temperature 0.7) above a row of test images. */
  png: string
}

/** Options of {@link trainDigitsGlow}. */
export interface TrainOptions extends DigitsGlowConfig {
  steps?: number
  seed?: number
  lr?: number
  batch?: number
  weightDecay?: number
  /** Also report the test bits/dim every this many steps (0: only at the end). */
  evalEvery?: number
  /** Where to write the samples (default examples/out/digits-glow-samples.png). */
  png?: string
  log?: (s: string) => void
}

/** Trains the model with the recipe and returns the test bits/dim. */
export function trainDigitsGlow(opts: TrainOptions = {}): DigitsGlowResult {
  const d = DEFAULTS
  const { steps = d.steps, seed = d.seed, lr = d.lr, batch = d.batch, weightDecay = d.weightDecay, evalEvery = 0, log = console.log } = opts
  const { train, test: testPixels } = digitsSplit()
  keep(train)
  manualSeed(seed + 1) // one seeded noise draw per test image, made once (it leaves the training draws alone)
  const test = keep(tidy(() => dequantise(testPixels)))
  testPixels.dispose()
  manualSeed(seed)
  const nTrain = train.shape[0]
  const flow = buildDigitsGlow(opts)
  const params = flow.parameters()
  const opt = new optim.Adam(params, { lr, weightDecay })
  const latent = new distributions.StandardNormal(64)
  const testBitsPerDim = (): number => tidy(() => noGrad(() => bitsPerDim(nll(flow, latent, test).item())))
  const draw = (): Tensor => {
    const idx = Array.from(rand([batch], { dtype: 'float64' }).toArray(), (u) => Math.floor(u * nTrain))
    return dequantise(ops.indexSelect(train, 0, idx))
  }
  // ActNorm's data-dependent initialisation, on a larger batch than a training step's
  tidy(() => {
    noGrad(() => flow.forward(dequantise(ops.indexSelect(train, 0, Array.from({ length: 512 }, (_, i) => i)))))
  })

  const started = Date.now()
  for (let step = 1; step <= steps; step++) {
    const loss = tidy(() => {
      opt.lr = 0.5 * lr * (1 + Math.cos((Math.PI * (step - 1)) / steps)) // cosine decay to 0
      const l = nll(flow, latent, draw())
      opt.zeroGrad()
      l.backward()
      optim.clipGradNorm(params, 10)
      opt.step()
      return l.item()
    })
    if (step % 250 === 0 || step === 1) log(`step ${String(step).padStart(5)}  train ${bitsPerDim(loss).toFixed(3)} bits/dim`)
    if (evalEvery > 0 && step % evalEvery === 0 && step < steps) log(`step ${String(step).padStart(5)}  test ${testBitsPerDim().toFixed(3)} bits/dim`)
  }
  const seconds = (Date.now() - started) / 1000
  flow.eval()
  const result = testBitsPerDim()
  // 40 samples at temperature 0.7 (Glow's habit: the tails of N(0, I) give blotchy digits) above 10 test images
  const png = opts.png ?? path.join(process.cwd(), 'examples', 'out', 'digits-glow-samples.png')
  tidy(() =>
    noGrad(() => {
      const [x] = flow.forward(randn([40, 64]).mul(0.7), { rev: true })
      const images = ops.cat([(x as Tensor).reshape([40, 8, 8]), test.narrow(0, 0, 10).reshape([10, 8, 8])], 0)
      plot.imageGrid(png, images.clamp(0, 1), { rows: 5, cols: 10, scale: 6, range: [0, 1] })
    }),
  )
  log(`wrote ${path.relative(process.cwd(), png)} (rows 1-4: samples at temperature 0.7; row 5: test images)`)
  train.dispose()
  test.dispose()
  opt.dispose()
  for (const t of [...flow.parameters(), ...flow.buffers()]) {
    t.grad?.dispose()
    t.dispose()
  }
  return { bitsPerDim: result, seconds, png }
}

/**
 * The command line: trains with the defaults (or `--steps N --seed S --k K --width W --fc-width F --lr LR
 * --batch B --wd WD --eval-every N`) and logs `test bits/dim: X` as the last line.
 */
export function main(argv: readonly string[] = process.argv.slice(2), log: (s: string) => void = console.log): DigitsGlowResult {
  const arg = (name: string, fallback: number): number => {
    const i = argv.indexOf(`--${name}`)
    if (i < 0) return fallback
    const v = Number(argv[i + 1])
    if (!Number.isFinite(v)) throw new Error(`--${name} needs a number, got ${argv[i + 1]}`)
    return v
  }
  const d = DEFAULTS
  const result = trainDigitsGlow({
    steps: arg('steps', d.steps),
    seed: arg('seed', d.seed),
    stepsPerLevel: arg('k', d.stepsPerLevel),
    width: arg('width', d.width),
    fcWidth: arg('fc-width', d.fcWidth),
    lr: arg('lr', d.lr),
    batch: arg('batch', d.batch),
    weightDecay: arg('wd', d.weightDecay),
    evalEvery: arg('eval-every', 0),
    log,
  })
  log(`trained in ${result.seconds.toFixed(1)} s`)
  log(`test bits/dim: ${result.bitsPerDim.toFixed(3)}`)
  return result
}

if (require.main === module) main()

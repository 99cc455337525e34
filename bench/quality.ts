/**
 * The quality workloads of shared/bench/WORKLOADS.md (`moons-nll`, `8gaussians-nll`, `checkerboard-nll`):
 * each trains a flow to convergence with a fixed, seeded recipe and reports the test NLL (nats) on fresh
 * samples next to the density's entropy. They are not timed workloads and are not part of the default bench
 * run: `npm run bench -- --quality` (all three) or `--workloads moons-nll,checkerboard-nll`.
 *
 * A recipe: the flow (a SequenceINN of RationalQuadraticSpline coupling blocks, or of AllInOneBlocks with soft
 * permutations), Adam with a warm-up and cosine decay of the learning rate to zero, gradient-norm
 * clipping, a fresh batch of the generator every step (no fixed training set, so nothing to overfit), and the
 * test NLL = −mean log p(x) over `testSamples` fresh samples drawn after reseeding (seed 1234), so that the
 * test set is the same whatever the training did.
 */
import { data, manualSeed, modules as Fm, nllLoss, nn, noGrad, optim, SequenceINN, Tensor, tidy, train } from '../lib'
import { freiaParameterCount } from './workloads'

/** How a quality workload trains. */
export interface QualityRecipe {
  /** AllInOneBlock (affine coupling, soft permutation) or RationalQuadraticSpline (two-sided spline coupling). */
  coupling: 'allInOne' | 'spline'
  blocks: number
  /** Width of the subnets' hidden layers. */
  hidden: number
  /** Hidden layers per subnet (default 1: Linear → ReLU → Linear). */
  layers?: number
  /** Spline bins (spline coupling only; default 10). */
  bins?: number
  /** Spline default domain [−d, d]² (spline coupling only; default 3, FrEIA's). */
  domain?: number
  batch: number
  steps: number
  /** Peak learning rate of Adam. */
  lr: number
  /** 'cosine': linear warm-up over `warmup` steps, then cosine decay to 0; 'constant': lr throughout. */
  schedule: 'cosine' | 'constant'
  /** Warm-up steps of the cosine schedule (default 0). */
  warmup?: number
  /** Gradient-norm clipping (default none). */
  clip?: number
  /** Training seed (parameters and batches; default 0). */
  seed?: number
}

/** A quality workload: a 2-D density with known entropy and its recipe. */
export interface QualityWorkload {
  name: string
  /** The density's entropy in nats (WORKLOADS.md): the lowest test NLL any model can reach. */
  entropy: number
  sample(n: number): Tensor
  recipe: QualityRecipe
}

/** One row of the quality table (the `quality` array of the bench's JSON). */
export interface QualityRow {
  workload: string
  /** The recipe in words. */
  recipe: string
  params: number
  batch: number
  steps: number
  trainSeconds: number
  /** Test NLL of the untrained flow (nats). */
  initialNll: number
  /** Test NLL after training (nats). */
  testNll: number
  entropy: number
  /** testNll − entropy (≥ 0 up to the test set's sampling error, about ±0.01 nats at 20000 samples). */
  gap: number
  /** PyTorch + FrEIA's test NLL for this workload (reference.json), or null where there is none. */
  freiaNll: number | null
  /** Which FrEIA run `freiaNll` is. */
  freiaRecipe: string | null
}

/**
 * The fixed recipes, found by the sweep of bench/quality-sweep.ts on one CPU thread (every recipe tried and its
 * result are in the README's quality section). All three use rational-quadratic spline couplings: with the same
 * step budget they beat AllInOneBlocks (affine couplings) clearly on 8 gaussians (gap 0.013 vs 0.29) and on
 * moons (0.009 vs 0.052), and the sharp edges of the checkerboard need them. Common to all: SequenceINN(2) of
 * 4 RationalQuadraticSpline blocks (default domain [−4, 4]², affine tails), subnets Linear → ReLU → Linear,
 * Adam (peak lr 1e-3, 100 warm-up steps, cosine decay to 0), gradient-norm clipping at 10, a fresh batch of the
 * generator every step, seed 0.
 */
export const qualityWorkloads: QualityWorkload[] = [
  {
    name: 'moons-nll',
    entropy: 2.39,
    sample: (n) => data.moons(n),
    recipe: { coupling: 'spline', blocks: 4, hidden: 64, bins: 8, domain: 4, batch: 512, steps: 3000, lr: 1e-3, schedule: 'cosine', warmup: 100, clip: 10 },
  },
  {
    name: '8gaussians-nll',
    entropy: 2.833,
    sample: (n) => data.eightGaussians(n),
    recipe: { coupling: 'spline', blocks: 4, hidden: 64, bins: 8, domain: 4, batch: 512, steps: 3000, lr: 1e-3, schedule: 'cosine', warmup: 100, clip: 10 },
  },
  {
    // the hardest: uniform squares with sharp edges want more bins, wider subnets and larger batches
    name: 'checkerboard-nll',
    entropy: Math.log(32),
    sample: (n) => data.checkerboard(n),
    recipe: { coupling: 'spline', blocks: 4, hidden: 128, bins: 16, domain: 4, batch: 1024, steps: 10000, lr: 1e-3, schedule: 'cosine', warmup: 100, clip: 10 },
  },
]

export const qualityNames = qualityWorkloads.map((w) => w.name)

/** The recipe in one line (for the table and the JSON). */
export function describeRecipe(r: QualityRecipe): string {
  const net = `${r.blocks} x ${r.coupling === 'allInOne' ? 'AllInOneBlock(permuteSoft)' : `RationalQuadraticSpline(bins ${r.bins ?? 10}, domain ±${r.domain ?? 3})`}, fc(${r.hidden})${(r.layers ?? 1) > 1 ? `x${r.layers}` : ''}`
  const sched = r.schedule === 'cosine' ? `cosine${r.warmup ? ` warm-up ${r.warmup}` : ''}` : 'constant'
  return `${net}; Adam lr ${r.lr} ${sched}; batch ${r.batch}; ${r.steps} steps${r.clip ? `; clip ${r.clip}` : ''}`
}

/** The learning rate before step `step` (1-based) of a recipe. */
export function learningRate(r: QualityRecipe, step: number): number {
  if (r.schedule === 'constant') return r.lr
  const warm = r.warmup ?? 0
  if (step <= warm) return (r.lr * step) / warm
  const t = (step - warm) / Math.max(1, r.steps - warm)
  return 0.5 * r.lr * (1 + Math.cos(Math.PI * Math.min(1, t)))
}

/** Builds the recipe's flow on 2 dimensions (parameters drawn from innflow's generator). */
export function buildQualityFlow(r: QualityRecipe): SequenceINN {
  const layers = r.layers ?? 1
  const subnet = (cIn: number, cOut: number) => {
    const mods: nn.Module[] = [new nn.Linear(cIn, r.hidden), new nn.ReLU()]
    for (let k = 1; k < layers; k++) mods.push(new nn.Linear(r.hidden, r.hidden), new nn.ReLU())
    mods.push(new nn.Linear(r.hidden, cOut))
    return new nn.Sequential(...mods)
  }
  const flow = new SequenceINN(2)
  for (let k = 0; k < r.blocks; k++) {
    if (r.coupling === 'allInOne') flow.append(Fm.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true })
    else {
      const d = r.domain ?? 3
      flow.append(Fm.RationalQuadraticSpline, { subnetConstructor: subnet, bins: r.bins ?? 10, defaultDomain: [-d, d, -d, d] })
    }
  }
  return flow
}

/** Mean NLL (nats) of `x` under the flow, in chunks, without gradients. */
function meanNll(flow: SequenceINN, x: Tensor, chunk = 5000): number {
  let sum = 0
  const n = x.shape[0]
  for (let i = 0; i < n; i += chunk) {
    const m = Math.min(chunk, n - i)
    sum += tidy(() => noGrad(() => {
      const [z, ljd] = flow.forward(x.narrow(0, i, m))
      return nllLoss(z, ljd).item() * m
    }))
  }
  return sum / n
}

/** The test set: `n` samples drawn after reseeding with `seed`, the same for every recipe. */
function testSet(w: QualityWorkload, n: number, seed: number): Tensor {
  manualSeed(seed)
  return w.sample(n)
}

/** FrEIA's figure for this workload from reference.json's "quality" section (the longest run listed). */
function freiaFigure(name: string, reference: Record<string, unknown> | null): { nll: number; recipe: string } | null {
  const q = (reference?.quality as Record<string, { freia_test_nll_nats?: Record<string, number>; recipe?: string }> | undefined)?.[name]
  const runs = q?.freia_test_nll_nats
  if (!runs) return null
  const entries = Object.entries(runs)
  if (entries.length === 0) return null
  const [label, nll] = entries[entries.length - 1]
  return { nll, recipe: `${label}: ${q.recipe ?? ''}`.trim() }
}

export interface QualityOptions {
  /** Override the recipe's step count (the test runs a few steps). */
  steps?: number
  /** Fresh test samples (default 20000). */
  testSamples?: number
  /** Called every `every` steps with the training loss (for long runs). */
  onProgress?: (step: number, loss: number) => void
}

/** Trains one quality workload with its recipe (or `recipe`) and evaluates it. */
export function runQuality(w: QualityWorkload, reference: Record<string, unknown> | null, opts: QualityOptions = {}, recipe: QualityRecipe = w.recipe): QualityRow {
  const r: QualityRecipe = { ...recipe, steps: opts.steps ?? recipe.steps }
  const nTest = opts.testSamples ?? 20000
  const test = testSet(w, nTest, 1234)
  manualSeed(r.seed ?? 0)
  const flow = buildQualityFlow(r)
  const opt = new optim.Adam(flow.parameters(), { lr: learningRate(r, 1) })
  try {
    const initialNll = meanNll(flow, test)
    const result = train(flow, (_step: number) => w.sample(r.batch), {
      steps: r.steps,
      optimizer: opt,
      clipGradNorm: r.clip,
      progress: false,
      onStep: ({ step, loss }) => {
        opt.lr = learningRate(r, step + 1)
        opts.onProgress?.(step, loss)
      },
    })
    flow.eval()
    const testNll = meanNll(flow, test)
    const freia = freiaFigure(w.name, reference)
    return {
      workload: w.name,
      recipe: describeRecipe(r),
      params: freiaParameterCount(flow),
      batch: r.batch,
      steps: r.steps,
      trainSeconds: result.seconds,
      initialNll,
      testNll,
      entropy: w.entropy,
      gap: testNll - w.entropy,
      freiaNll: freia?.nll ?? null,
      freiaRecipe: freia?.recipe ?? null,
    }
  } finally {
    opt.dispose()
    test.dispose()
    for (const t of [...flow.parameters(), ...flow.buffers()]) t.dispose()
  }
}

/** The quality table's header and one line per row. */
export const qualityHeader = ['workload', 'steps', 'train s', 'test NLL', 'entropy', 'gap', 'FrEIA NLL']
export function qualityLine(q: QualityRow): string {
  return [q.workload, q.steps, q.trainSeconds.toFixed(1), q.testNll.toFixed(3), q.entropy.toFixed(3), q.gap.toFixed(3), q.freiaNll ?? '-'].join('\t')
}

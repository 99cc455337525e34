/**
 * Two moons, the "hello world" of normalizing flows, trained with `train()` and drawn with `plot`:
 * a SequenceINN of AllInOneBlocks learns the two-moons density, then four pictures go to examples/out/:
 *   moons-data.png     the training data
 *   moons-latent.png   the data mapped to the latent space, z = f(x) (blue), over N(0, I) samples (grey):
 *                      a well-trained flow makes the two clouds indistinguishable
 *   moons-samples.png  samples of the flow, x = f⁻¹(z) with z ~ N(0, I)
 *   moons-density.png  the learned density p(x) on a grid
 *
 *   npm run example:moons                          # 1500 steps, about 10 s on two cores
 *   npm run example:moons -- --steps 5000 --blocks 8 --hidden 512 --checkpoint moons.safetensors
 * With --checkpoint the run saves every 500 steps and picks up where it stopped when started again.
 */
import * as path from 'node:path'
import { data, manualSeed, modules as Fm, nllLoss, nn, noGrad, plot, randn, SequenceINN, tidy, train } from '../lib'
import { defaultOutDir, numberArg, stringArg } from './args'

export interface MoonsOptions {
  steps?: number
  blocks?: number
  hidden?: number
  batch?: number
  seed?: number
  outDir?: string
  checkpoint?: string
  /** Draw a progress bar on a terminal (default true). */
  progress?: boolean
  log?: (s: string) => void
}

export interface MoonsResult {
  /** Loss of each step (nats). */
  losses: number[]
  /** Mean NLL of fresh test points (nats; the density's entropy is 2.390). */
  testNll: number
  /** The PNGs written. */
  files: string[]
}

export function runMoons(opts: MoonsOptions = {}): MoonsResult {
  const { steps = 1500, blocks = 6, hidden = 256, batch = 256, seed = 0, outDir = defaultOutDir(), log = console.log } = opts
  manualSeed(seed)
  const x = data.moons(20000)
  const subnet = (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, hidden), new nn.ReLU(), new nn.Linear(hidden, cOut))
  const flow = new SequenceINN(2)
  for (let k = 0; k < blocks; k++) flow.append(Fm.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true })
  log(`moons: ${blocks} AllInOneBlocks (${flow.parameters().reduce((n, p) => n + p.size, 0)} parameters), ${steps} steps of batch ${batch}`)

  const result = train(flow, x, {
    steps,
    batchSize: batch,
    lr: 1e-3,
    progress: opts.progress ?? true,
    checkpoint: opts.checkpoint ? { path: opts.checkpoint, every: 500 } : undefined,
    resume: opts.checkpoint ? true : undefined,
  })
  if (result.startStep > 0) log(`resumed from ${opts.checkpoint} at step ${result.startStep}`)
  if (result.losses.length) log(`trained in ${result.seconds.toFixed(1)} s; last loss ${result.losses[result.losses.length - 1].toFixed(3)} nats`)

  flow.eval()
  const files = ['data', 'latent', 'samples', 'density'].map((name) => path.join(outDir, `moons-${name}.png`))
  const testNll = tidy(() =>
    noGrad(() => {
      const test = data.moons(5000)
      const shown = test.narrow(0, 0, 2000)
      const [z] = flow.forward(shown)
      const [samples] = flow.forward(randn([2000, 2]), { rev: true })
      plot.scatter(files[0], [{ points: shown, color: 'blue' }], { range: [[-3.5, 3.5], [-2.5, 2.5]] })
      plot.scatter(files[1], [{ points: randn([2000, 2]), color: 'gray', alpha: 0.4 }, { points: z, color: 'blue' }], { range: 4 })
      plot.scatter(files[2], [{ points: samples, color: 'red' }], { range: [[-3.5, 3.5], [-2.5, 2.5]] })
      const d = plot.densityMap(files[3], flow, { range: [[-3.5, 3.5], [-2.5, 2.5]], resolution: 200 })
      log(`density map: p(x) integrates to ${d.integral.toFixed(3)} over the plotted region`)
      const [zt, ldt] = flow.forward(test)
      return nllLoss(zt, ldt).item()
    }),
  )
  log(`test NLL: ${testNll.toFixed(3)} nats (the density's entropy: 2.390)`)
  for (const f of files) log(`wrote ${path.relative(process.cwd(), f)}`)

  result.optimizer.dispose()
  x.dispose()
  for (const t of [...flow.parameters(), ...flow.buffers()]) t.dispose()
  return { losses: result.losses, testNll, files }
}

if (require.main === module) {
  runMoons({
    steps: numberArg('steps', 1500),
    blocks: numberArg('blocks', 6),
    hidden: numberArg('hidden', 256),
    batch: numberArg('batch', 256),
    seed: numberArg('seed', 0),
    outDir: stringArg('out', undefined),
    checkpoint: stringArg('checkpoint', undefined),
  })
}

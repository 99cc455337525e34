/**
 * A conditional INN (cINN) on the 8×8 digits: a SequenceINN of AllInOneBlocks whose subnets also see the
 * one-hot label of the digit (`cond: 0, condShape: [10]`), trained by maximum likelihood with `train()`.
 * Sampling z ~ N(0, I) with a chosen label then draws images of that digit. Pixels (0..16) are dequantised
 * with uniform noise and divided by 17, as in the digits-nll recipe. Writes to examples/out/:
 *   digits-cinn-samples.png  one row per class 0..9, `--cols` samples each (z drawn at temperature 0.8)
 *   digits-cinn-data.png     real digits in the same layout, for comparison
 *
 *   npm run example:digits-cinn                       # 1500 steps, about 20 s on two cores
 *   npm run example:digits-cinn -- --steps 6000 --blocks 12 --hidden 256
 */
import * as path from 'node:path'
import { data, manualSeed, modules as Fm, nn, noGrad, ops, plot, rand, randn, SequenceINN, tensor, Tensor, tidy, train } from '../lib'
import { defaultOutDir, numberArg, stringArg } from './args'

export interface DigitsCinnOptions {
  steps?: number
  blocks?: number
  hidden?: number
  batch?: number
  /** Samples per class in the picture. */
  cols?: number
  /** Scale of the latent samples (below 1 gives cleaner, less varied digits). */
  temperature?: number
  seed?: number
  outDir?: string
  progress?: boolean
  log?: (s: string) => void
}

export interface DigitsCinnResult {
  losses: number[]
  files: string[]
}

/** (n, 10) one-hot rows for the given labels. */
export function oneHot(labels: ArrayLike<number>): Tensor {
  const v = new Array<number>(labels.length * 10).fill(0)
  for (let i = 0; i < labels.length; i++) v[i * 10 + labels[i]] = 1
  return tensor(v, [labels.length, 10])
}

export function runDigitsCinn(opts: DigitsCinnOptions = {}): DigitsCinnResult {
  const { steps = 1500, blocks = 8, hidden = 128, batch = 128, cols = 10, temperature = 0.8, seed = 0, outDir = defaultOutDir(), log = console.log } = opts
  manualSeed(seed)
  const { images, labels } = data.digits()
  const labelValues = Array.from(labels.toArray())
  const c = oneHot(labelValues)

  const subnet = (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, hidden), new nn.ReLU(), new nn.Linear(hidden, cOut))
  const flow = new SequenceINN(64)
  for (let k = 0; k < blocks; k++) flow.append(Fm.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true, cond: 0, condShape: [10] })
  log(`digits cINN: ${blocks} conditional AllInOneBlocks (${flow.parameters().reduce((n, p) => n + p.size, 0)} parameters), ${steps} steps of batch ${batch}`)

  const dequantise = (x: Tensor) => x.add(rand([...x.shape] as number[])).div(17)
  const result = train(flow, { x: images, c }, { steps, batchSize: batch, lr: 1e-3, clipGradNorm: 10, transform: dequantise, progress: opts.progress ?? true })
  const last = result.losses.slice(-50)
  log(`trained in ${result.seconds.toFixed(1)} s; mean loss of the last ${last.length} steps ${(last.reduce((a, b) => a + b, 0) / last.length).toFixed(1)} nats`)

  flow.eval()
  const files = [path.join(outDir, 'digits-cinn-samples.png'), path.join(outDir, 'digits-cinn-data.png')]
  tidy(() =>
    noGrad(() => {
      // row k of the grid: `cols` samples conditioned on digit k
      const wanted = Array.from({ length: 10 * cols }, (_, i) => Math.floor(i / cols))
      const z = randn([10 * cols, 64]).mul(temperature)
      const [x] = flow.forward(z, { c: [oneHot(wanted)], rev: true })
      plot.imageGrid(files[0], x.reshape([10 * cols, 8, 8]), { rows: 10, cols, scale: 4, range: [0, 1] })
      // the first `cols` real images of each class
      const idx: number[] = []
      for (let k = 0; k < 10; k++) idx.push(...labelValues.flatMap((l, i) => (l === k ? [i] : [])).slice(0, cols))
      plot.imageGrid(files[1], ops.indexSelect(images, 0, idx).div(16).reshape([idx.length, 8, 8]), { rows: 10, cols, scale: 4, range: [0, 1] })
    }),
  )
  for (const f of files) log(`wrote ${path.relative(process.cwd(), f)}`)

  result.optimizer.dispose()
  for (const t of [images, labels, c, ...flow.parameters(), ...flow.buffers()]) t.dispose()
  return { losses: result.losses, files }
}

if (require.main === module) {
  runDigitsCinn({
    steps: numberArg('steps', 1500),
    blocks: numberArg('blocks', 8),
    hidden: numberArg('hidden', 128),
    batch: numberArg('batch', 128),
    cols: numberArg('cols', 10),
    temperature: numberArg('temperature', 0.8),
    seed: numberArg('seed', 0),
    outDir: stringArg('out', undefined),
  })
}

/**
 * The `digits-nll` recipe of shared/bench/WORKLOADS.md: a dense flow on the 8×8 digits.
 * SequenceINN(64), 12 × AllInOneBlock(fc(256), permuteSoft), Adam lr 1e-3, batch 128, 4000 steps, gradient-
 * norm clipping at 10. Pixels are dequantised with uniform noise and divided by 17. Test set: rows whose
 * index % 5 == 0. Reports test bits/dim = (NLL + 64·ln 17) / (64·ln 2) (PyTorch + FrEIA: 3.32).
 *
 *   npm run build:ts && node dist/examples/digits-dense.js [--steps N]
 */
import { data, distributions, manualSeed, modules as Fm, nn, noGrad, ops, optim, rand, SequenceINN, tensor, Tensor, tidy, keep } from '../lib'

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

export interface DigitsResult {
  bitsPerDim: number
  seconds: number
}

/** Trains the recipe and returns the test bits/dim. */
export function trainDigitsDense(steps = 4000, seed = 0, log: (s: string) => void = console.log): DigitsResult {
  manualSeed(seed)
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
  const train = keep(tensor(trainValues, [trainValues.length / 64, 64]))
  const test = keep(tensor(testValues, [testValues.length / 64, 64]))
  const nTrain = train.shape[0]

  const subnet = (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, 256), new nn.ReLU(), new nn.Linear(256, cOut))
  const flow = new SequenceINN(64)
  for (let k = 0; k < 12; k++) flow.append(Fm.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true })
  const params = flow.parameters()
  const opt = new optim.Adam(params, { lr: 1e-3 })
  const latent = new distributions.StandardNormal(64)
  const dequantise = (x: Tensor) => x.add(rand([...x.shape] as number[])).div(17)

  const started = Date.now()
  for (let step = 1; step <= steps; step++) {
    const loss = tidy(() => {
      const idx = Array.from(rand([128], { dtype: 'float64' }).toArray(), (u) => Math.floor(u * nTrain))
      const x = dequantise(ops.indexSelect(train, 0, idx))
      const [z, logJacDet] = flow.forward(x)
      const l = latent.logProb(z).add(logJacDet).neg().mean()
      opt.zeroGrad()
      l.backward()
      optim.clipGradNorm(params, 10)
      opt.step()
      return l.item()
    })
    if (step % 500 === 0 || step === 1) log(`step ${String(step).padStart(5)}  nll ${loss.toFixed(3)} nats`)
  }
  const seconds = (Date.now() - started) / 1000
  flow.eval()
  const bitsPerDim = tidy(() =>
    noGrad(() => {
      manualSeed(seed + 1) // one seeded noise draw per test image
      const [z, logJacDet] = flow.forward(dequantise(test))
      const nll = latent.logProb(z).add(logJacDet).neg().mean().item()
      return (nll + 64 * Math.log(17)) / (64 * Math.log(2))
    }),
  )
  train.dispose()
  test.dispose()
  opt.dispose()
  for (const t of [...flow.parameters(), ...flow.buffers()]) {
    t.grad?.dispose()
    t.dispose()
  }
  return { bitsPerDim, seconds }
}

if (require.main === module) {
  const { bitsPerDim, seconds } = trainDigitsDense(arg('steps', 4000), arg('seed', 0))
  console.log(`trained in ${seconds.toFixed(1)} s`)
  console.log(`test bits/dim: ${bitsPerDim.toFixed(3)}`)
}

/**
 * The README's demo: a normalizing flow of 8 AllInOneBlocks learns the two-moons density (the generator of
 * shared/bench/WORKLOADS.md), prints its test negative log-likelihood in nats (the data's entropy is 2.390),
 * and writes a PNG with the data beside samples drawn from the flow. The training step is compiled
 * (compileStep): captured once, then replayed with one native call per step.
 *
 *   npm run demo                      # default budget
 *   npm run demo -- --steps 500       # shorter
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { compileStep, data, distributions, manualSeed, modules as Fm, nn, noGrad, optim, plot, SequenceINN, Tensor, tidy } from '../lib'

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

const steps = arg('steps', 3000)
const batch = arg('batch', 256)
const blocks = 8
manualSeed(arg('seed', 0))

const subnet = (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, 512), new nn.ReLU(), new nn.Linear(512, cOut))
const flow = new SequenceINN(2)
for (let k = 0; k < blocks; k++) flow.append(Fm.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true })
const opt = new optim.Adam(flow.parameters(), { lr: 1e-3 })
const latent = new distributions.StandardNormal(2)

console.log(`moons flow: ${blocks} AllInOneBlocks, ${flow.parameters().reduce((n, p) => n + p.size, 0)} parameters, ${steps} steps of batch ${batch}`)
const trainStep = compileStep((x: Tensor) => {
  const [z, logJacDet] = flow.forward(x)
  const l = z.square().sum(1).mul(0.5).sub(logJacDet).mean().div(2)
  opt.zeroGrad()
  l.backward()
  opt.step()
  return l
})
const started = Date.now()
for (let step = 1; step <= steps; step++) {
  const loss = tidy(() => trainStep(data.moons(batch)).item())
  if (step % 250 === 0 || step === 1) console.log(`step ${String(step).padStart(5)}  loss ${loss.toFixed(4)}`)
}
const seconds = (Date.now() - started) / 1000
console.log(`trained in ${seconds.toFixed(1)} s (${((seconds * 1000) / steps).toFixed(2)} ms/step)`)
trainStep.release()

// test NLL in nats: −log p(x) = −log N(z; 0, I) − log|det ∂z/∂x|, averaged over fresh points
flow.eval()
const { nll, samples, points } = tidy(() =>
  noGrad(() => {
    const x = data.moons(10000)
    const [z, logJacDet] = flow.forward(x)
    const nll = latent.logProb(z).add(logJacDet).neg().mean().item()
    const [s] = flow.forward(latent.sample(2000), { rev: true })
    return { nll, samples: s.toArray(), points: x.narrow(0, 0, 2000).toArray() }
  }),
)
const outDir = path.join(process.cwd(), 'examples', 'out')
fs.mkdirSync(outDir, { recursive: true })
const png = path.join(outDir, 'moons.png')
plot.scatter(
  png,
  [
    { points, color: [40, 90, 200] },
    { points: samples, color: [200, 60, 40] },
  ],
  { range: 3, size: 360, panels: true },
)
console.log(`wrote ${path.relative(process.cwd(), png)} (left: data, right: samples from the flow)`)
console.log(`test NLL: ${nll.toFixed(3)} nats`)

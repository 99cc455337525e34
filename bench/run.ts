/**
 * npm run bench -- [--device cpu|cuda] [--workloads a,b] [--steps N] [--threads N] [--precision highest|high|medium] [--json FILE]
 *                   [--invertible-backprop] [--compile] [--quality] [--quality-steps N]
 *
 * Times the training step (forward with log-det, loss = mean(0.5·|z|² − logJacDet) / dims, backward, one Adam
 * step at lr 1e-4), the forward and the reverse pass of each workload of shared/bench/WORKLOADS.md, and prints
 * one table with the PyTorch + FrEIA reference figures (bench/reference.json) and the ratio reference / innflow
 * (> 1: innflow is faster). Warm-up 5 steps, then the median of N (default 30) timed steps.
 *
 * Peak memory: on the CPU, the high-water mark of live tensor bytes during a training step (memory().peakBytes
 * after resetPeak() at the step's start: parameters, gradients, Adam's state and the batch, plus the most
 * activations alive at any moment); on CUDA, the live device bytes at the end of the step.
 * `--compile` times the training step compiled with compileStep (captured once, replayed with one native call;
 * CUDA graphs on the GPU) instead of the eager step.
 *
 * The reference on the CPU is reference.json's CPU time; on the GPU it is the best PyTorch column: the smallest of
 * eager, torch.compile and the whole step as a CUDA graph (and, at precision high or medium, the graph with TF32).
 *
 * `--invertible-backprop` turns SequenceINN.invertibleBackprop on for the SequenceINN workloads (GraphINN
 * workloads run as usual).
 *
 * Quality workloads (bench/quality.ts: `moons-nll`, `8gaussians-nll`, `checkerboard-nll`) are not timed and not
 * part of the default run: `--quality` runs all three (and no timing workload unless `--workloads` names some),
 * `--workloads moons-nll,...` the ones named. Each trains to convergence with its fixed, seeded recipe on the CPU
 * and reports the test NLL on 20000 fresh samples next to the data entropy, in a second table and in the JSON's
 * `quality` array (absent when no quality workload ran). `--quality-steps N` overrides the recipes' step counts
 * (for smoke tests; the results then say nothing about convergence).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { compileStep, cuda, Device, getMatmulPrecision, GraphINN, MatmulPrecision, manualSeed, memory, noGrad, optim, resetPeak, SequenceINN, setMatmulPrecision, setNumThreads, Tensor, tidy } from '../lib'
import { freiaParameterCount, Workload, workloads } from './workloads'
import { qualityHeader, qualityLine, qualityNames, QualityRow, qualityWorkloads, runQuality } from './quality'

/** One row of the bench table (pinned format, read by other tools). */
export interface Row {
  workload: string
  device: string
  precision: string
  batch: number
  params: number
  trainStepMs: number
  samplesPerSec: number
  forwardMs: number
  reverseMs: number
  peakMemMiB: number
  referenceMs: number | null
  ratio: number | null
}

/** The JSON the bench writes: the pinned timing rows, and the quality rows when quality workloads ran. */
export interface BenchResult {
  device: string
  rows: Row[]
  quality?: QualityRow[]
}

/** Parses the pinned command line. */
export type BenchArgs = ReturnType<typeof parseArgs>

export function parseArgs(argv: string[]) {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const device = get('device') ?? 'cpu'
  if (device !== 'cpu' && device !== 'cuda') throw new Error(`--device must be cpu or cuda, got ${device}`)
  const precision = get('precision') ?? 'highest'
  if (!['highest', 'high', 'medium'].includes(precision)) throw new Error(`--precision must be highest, high or medium`)
  const steps = Number(get('steps') ?? 30)
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer`)
  const threads = get('threads') === undefined ? undefined : Number(get('threads'))
  const names = get('workloads')?.split(',')
  const invertibleBackprop = argv.includes('--invertible-backprop')
  const compile = argv.includes('--compile')
  const quality = argv.includes('--quality')
  const qualitySteps = get('quality-steps') === undefined ? undefined : Number(get('quality-steps'))
  if (qualitySteps !== undefined && !(Number.isInteger(qualitySteps) && qualitySteps >= 1)) throw new Error(`--quality-steps must be a positive integer`)
  return { device, precision, steps, threads, names, json: get('json'), invertibleBackprop, compile, quality, qualitySteps }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

function timeIt(fn: () => void, repeats: number): number {
  const times: number[] = []
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint()
    fn()
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  return median(times)
}

function runWorkload(w: Workload, device: string, precision: string, steps: number, reference: Record<string, unknown>, invertibleBackprop = false, compile = false): Row {
  manualSeed(0)
  const inn: SequenceINN | GraphINN = w.build()
  if (invertibleBackprop && inn instanceof SequenceINN) inn.invertibleBackprop = true
  inn.to({ device: device as Device })
  const params = inn.parameters()
  const nParams = freiaParameterCount(inn)
  if (w.params !== null && nParams !== w.params) throw new Error(`${w.name}: ${nParams} parameters (FrEIA's count), WORKLOADS.md says ${w.params}`)
  const opt = new optim.Adam(params, { lr: 1e-4 })
  const onHost = w.input()
  const batchData = { x: onHost.x.to({ device: device as Device }), c: onHost.c.map((c) => c.to({ device: device as Device })) }
  if (batchData.x !== onHost.x) onHost.x.dispose()
  onHost.c.forEach((c, i) => c !== batchData.c[i] && c.dispose())
  const forward = (x: Tensor, rev = false): [Tensor, Tensor] => {
    const [z, ljd] = inn instanceof GraphINN ? inn.forward(x, { c: batchData.c, rev }) : inn.forward(x, { c: batchData.c, rev })
    return [z as Tensor, ljd]
  }
  let peak = 0
  const body = (x: Tensor): Tensor => {
    const [z, ljd] = forward(x)
    const loss = z.square().flatten(1).sum(1).mul(0.5).sub(ljd).mean().div(w.dims)
    opt.zeroGrad()
    loss.backward()
    opt.step()
    return loss
  }
  const compiled = compile ? compileStep(body) : null
  const step = () => {
    if (device === 'cpu') resetPeak()
    tidy(() => {
      const loss = compiled ? compiled(batchData.x) : body(batchData.x)
      // CUDA: live device memory at the end of the step (the tidy scope still holds the step's tensors)
      if (device === 'cuda') peak = Math.max(peak, memory().cudaBytes)
      loss.item() // the step is complete when the loss is read
    })
    // CPU: the high-water mark of live host bytes during the step, whenever it was reached
    if (device === 'cpu') peak = Math.max(peak, memory().peakBytes)
  }
  for (let i = 0; i < 5; i++) step()
  peak = 0 // the timed steps' peak (a compiled step's capture, during warm-up, holds more)
  const trainStepMs = timeIt(step, steps)
  compiled?.release()
  const z = tidy(() => noGrad(() => forward(batchData.x)[0]))
  const forwardMs = timeIt(() => tidy(() => noGrad(() => void forward(batchData.x)[1].sum().item())), Math.max(5, Math.floor(steps / 2)))
  const reverseMs = timeIt(() => tidy(() => noGrad(() => void forward(z, true)[1].sum().item())), Math.max(5, Math.floor(steps / 2)))
  z.dispose()
  const refTable = ((reference as { cpu: { train_step_ms: Record<string, number> }; gpu: { train_step_ms: Record<string, Record<string, number | null>> } }))
  const referenceMs = device === 'cpu' ? refTable.cpu.train_step_ms[w.name] ?? null : bestGpuReference(refTable.gpu.train_step_ms[w.name], precision)
  for (const p of params) {
    p.grad?.dispose()
    p.dispose()
  }
  for (const b of inn.buffers()) b.dispose()
  batchData.x.dispose()
  batchData.c.forEach((c) => c.dispose())
  return {
    workload: w.name,
    device,
    precision,
    batch: w.batch,
    params: nParams,
    trainStepMs,
    samplesPerSec: (w.batch * 1000) / trainStepMs,
    forwardMs,
    reverseMs,
    peakMemMiB: peak / 2 ** 20,
    referenceMs,
    ratio: referenceMs === null ? null : referenceMs / trainStepMs,
  }
}

/** The best PyTorch time of a GPU workload: the smallest of eager, compile and graph (and graph_tf32 unless 'highest'). */
function bestGpuReference(row: Record<string, number | null> | undefined, precision: string): number | null {
  if (!row) return null
  const columns = ['eager', 'compile', 'graph', ...(precision === 'highest' ? [] : ['graph_tf32'])]
  const times = columns.map((c) => row[c]).filter((v): v is number => typeof v === 'number')
  return times.length ? Math.min(...times) : null
}

/** Runs the selected workloads; prints the table through `log`; returns the pinned JSON object. */
export function runBench(argv: string[], log: (line: string) => void = console.log): BenchResult {
  const args = parseArgs(argv)
  if (args.device === 'cuda' && !cuda.isAvailable()) throw new Error(`--device cuda: ${cuda.unavailableReason()}`)
  if (args.threads !== undefined) setNumThreads(args.threads)
  const savedPrecision = getMatmulPrecision()
  setMatmulPrecision(args.precision as MatmulPrecision)
  try {
    return runSelected(args, log)
  } finally {
    setMatmulPrecision(savedPrecision)
  }
}

function runSelected(args: BenchArgs, log: (line: string) => void): BenchResult {
  const reference = JSON.parse(fs.readFileSync(referencePath(), 'utf8')) as Record<string, unknown>
  const timingNames = args.names?.filter((n) => !qualityNames.includes(n))
  const named = args.names ? workloads.filter((w) => timingNames!.includes(w.name)) : []
  const selected = args.names || args.quality ? named : workloads.filter((w) => w.name !== 'tabular64x64-b4096' || args.device === 'cuda')
  const quality = qualityWorkloads.filter((w) => args.quality || (args.names?.includes(w.name) ?? false))
  if (args.names && named.length !== timingNames!.length)
    throw new Error(`unknown workload in ${args.names.join(',')}; known: ${[...workloads.map((w) => w.name), ...qualityNames].join(', ')}`)
  if (quality.length > 0 && args.device !== 'cpu') throw new Error(`the quality workloads (${quality.map((w) => w.name).join(', ')}) run on the CPU only`)
  const rows: Row[] = []
  if (selected.length > 0) {
    if (args.invertibleBackprop) log('# invertible backprop on for SequenceINN workloads')
    if (args.compile) log('# training steps compiled with compileStep')
    const header = ['workload', 'batch', 'params', 'train ms', 'samples/s', 'fwd ms', 'rev ms', 'peak MiB', 'ref ms', 'ratio']
    log(header.join('\t'))
  }
  for (const w of selected) {
    const r = runWorkload(w, args.device, args.precision, args.steps, reference, args.invertibleBackprop, args.compile)
    rows.push(r)
    log(
      [r.workload, r.batch, r.params, r.trainStepMs.toFixed(2), r.samplesPerSec.toFixed(0), r.forwardMs.toFixed(2), r.reverseMs.toFixed(2), r.peakMemMiB.toFixed(1), r.referenceMs ?? '-', r.ratio?.toFixed(2) ?? '-'].join('\t'),
    )
  }
  const out: BenchResult = { device: args.device, rows }
  if (quality.length > 0) {
    if (selected.length > 0) log('')
    log(`# quality: test NLL (nats) on 20000 fresh samples after training with each workload's recipe${args.qualitySteps ? ` (steps overridden: ${args.qualitySteps})` : ''}`)
    log(qualityHeader.join('\t'))
    out.quality = []
    for (const w of quality) {
      const q = runQuality(w, reference, { steps: args.qualitySteps })
      out.quality.push(q)
      log(qualityLine(q))
    }
  }
  if (args.json) fs.writeFileSync(args.json, JSON.stringify(out, null, 2))
  return out
}

/** bench/reference.json, from the sources (ts-jest) or from dist/bench. */
function referencePath(): string {
  const candidates = [path.join(__dirname, 'reference.json'), path.join(__dirname, '..', '..', 'bench', 'reference.json')]
  const found = candidates.find((p) => fs.existsSync(p))
  if (!found) throw new Error(`bench/reference.json not found (looked in ${candidates.join(', ')})`)
  return found
}

if (require.main === module) runBench(process.argv.slice(2))

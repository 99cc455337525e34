/**
 * `train(flow, data, options)`: the maximum-likelihood training loop of a normalizing flow for long jobs,
 * with a progress bar, gradient clipping, periodic checkpoints and exact resumption.
 *
 * Each step draws a batch, computes the mean negative log-likelihood under a standard normal latent
 * ({@link nllLoss}: −mean(log N(z; 0, I) + logJacDet), in nats), and takes one optimiser step:
 *   zeroGrad → loss.backward() → clipGradNorm (optional) → optimizer.step().
 *
 * Data is either a tensor of samples (rows drawn as shuffled minibatches: the rows are visited epoch by
 * epoch, each epoch in a fresh order that depends only on `seed` and the epoch number, batches running on
 * across epoch boundaries), `{ x, c }` (samples and their conditions, shuffled together), or a function
 * `(step) => batch` returning a tensor or `{ x, c }`.
 *
 * A checkpoint (`checkpoint: { path, every }`) holds the model and optimiser state (io.saveCheckpoint),
 * the step counter, the data order's parameters and the state of innflow's random generator (which draws
 * such as `data.moons(n)`, dequantisation noise or dropout use). `resume` restores all of it, so that a run
 * interrupted after step k and resumed continues with bit-identical losses and parameters on the CPU.
 */
import * as fs from 'node:fs'
import { argumentError, InnflowError } from '../errors'
import { isInvertibleModule } from '../framework/common'
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint'
import { readSafetensorsMetadata } from '../io/safetensors'
import { Module } from '../nn/module'
import { indexSelect } from '../ops'
import { Adam } from '../optim/adam'
import { clipGradNorm } from '../optim/clip'
import { compileStep } from '../framework/compile-step'
import { Optimizer, readOptions } from '../optim/optimizer'
import { tidy } from '../scope'
import { getRngState, setRngState, Tensor } from '../tensor'
import { FlowLike, isFlowLike, nllLoss, runFlow } from './objective'
import { ProgressBar, ProgressBarOptions } from './progress'

/** A batch: samples, or samples with their condition tensors. */
export type Batch = Tensor | { x: Tensor; c?: Tensor | Tensor[] }

/** What train() learns from: samples (shuffled minibatches), samples with conditions, or a batch function. */
export type TrainData = Tensor | { x: Tensor; c?: Tensor | Tensor[] } | ((step: number) => Batch)

/** What `onStep` receives after every step. */
export interface StepInfo {
  /** The step just taken (1-based; a resumed run continues the count). */
  step: number
  /** The last step of the run (options.steps). */
  steps: number
  /** The mean negative log-likelihood of the step's batch, in nats. */
  loss: number
  /** Throughput over the last (up to) 20 steps. */
  samplesPerSecond: number
  /** Seconds since this call of train() started. */
  seconds: number
}

/** Options of {@link train}. */
export interface TrainOptions {
  /** The step to train up to (a positive integer; a resumed run continues from its checkpoint's step). */
  steps: number
  /** Rows per batch, for tensor data (default min(256, rows)). */
  batchSize?: number
  /** Seed of the shuffled data order, for tensor data (default 0). */
  seed?: number
  /** Applied to each batch's samples before the flow sees them (e.g. dequantisation noise). */
  transform?: (x: Tensor, step: number) => Tensor
  /** The optimiser (default: a new Adam over flow.parameters() with `lr`). */
  optimizer?: Optimizer
  /** Learning rate of the default Adam (default 1e-3); not allowed together with `optimizer`. */
  lr?: number
  /** Clip the gradients' total 2-norm to this value before each optimiser step. */
  clipGradNorm?: number
  /**
   * Compile the training step with {@link compileStep} (captured at the second step, then replayed with one native
   * call per step; CUDA graphs on the GPU). The losses and parameters are the eager run's. Default false.
   */
  compile?: boolean
  /** Called after every step. */
  onStep?: (info: StepInfo) => void
  /**
   * The progress bar on stderr (step/steps, loss, samples/s, ETA), drawn only when stderr is a TTY.
   * `false` turns it off; an object chooses the stream (for tests). Default true.
   */
  progress?: boolean | ProgressBarOptions
  /** Save a checkpoint to `path` every `every` steps and after the last step. */
  checkpoint?: { path: string; every: number }
  /**
   * Resume from a checkpoint written by train(): a path (which must exist), or `true` for
   * `checkpoint.path` when that file exists (and a fresh start when it does not).
   */
  resume?: string | boolean
}

/** What {@link train} returns. */
export interface TrainResult {
  /** The loss of every step this call took (steps startStep + 1 … step), in nats. */
  losses: number[]
  /** The step the run started after: 0, or the resumed checkpoint's step. */
  startStep: number
  /** The last step taken (options.steps). */
  step: number
  /** The optimiser (the one given, or the Adam train() made: dispose it when done with it). */
  optimizer: Optimizer
  /** Wall-clock seconds of this call. */
  seconds: number
}

/** The metadata key under which train() describes its checkpoints (JSON). */
export const TRAIN_CHECKPOINT_KEY = 'innflow.train'

/** What train() stores in a checkpoint besides the model and optimiser state. */
interface TrainState {
  format: 1
  /** The last step taken when the checkpoint was written. */
  step: number
  /** The generator state (getRngState()) after that step. */
  rng: string
  /** How batches are drawn: the shuffled order of tensor data, or a user function. */
  data: { kind: 'tensor'; rows: number; batchSize: number; seed: number } | { kind: 'function' }
}

const OPTION_NAMES = [
  'steps', 'batchSize', 'seed', 'transform', 'optimizer', 'lr', 'clipGradNorm', 'compile', 'onStep', 'progress', 'checkpoint', 'resume',
] as const

const isPositiveInteger = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0

/** A small seeded generator (mulberry32) for the shuffled order: independent of innflow's global generator. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The order in which epoch `epoch` visits `rows` rows: a Fisher–Yates shuffle seeded by (seed, epoch). */
export function epochOrder(rows: number, seed: number, epoch: number): Int32Array {
  // mix seed and epoch into 32 bits (seeds beyond 2^32 still differ through the high word)
  const hi = Math.floor(seed / 4294967296)
  const mixed = Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(hi + 1, 0x85ebca6b) ^ Math.imul(epoch + 1, 0xc2b2ae35)
  const rand = mulberry32(mixed)
  const order = new Int32Array(rows)
  for (let i = 0; i < rows; i++) order[i] = i
  for (let i = rows - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    const t = order[i]
    order[i] = order[j]
    order[j] = t
  }
  return order
}

/** Draws the rows of step `step` (1-based) from the endless sequence of shuffled epochs. */
class ShuffledBatches {
  private epoch = -1
  private order: Int32Array = new Int32Array(0)
  constructor(readonly rows: number, readonly batchSize: number, readonly seed: number) {}

  indices(step: number): number[] {
    const out: number[] = new Array(this.batchSize)
    const first = (step - 1) * this.batchSize
    for (let k = 0; k < this.batchSize; k++) {
      const p = first + k
      const e = Math.floor(p / this.rows)
      if (e !== this.epoch) {
        this.order = epochOrder(this.rows, this.seed, e)
        this.epoch = e
      }
      out[k] = this.order[p - e * this.rows]
    }
    return out
  }
}

function checkLiveTensor(fn: string, name: string, v: unknown): Tensor {
  if (!(v instanceof Tensor)) throw argumentError(fn, name, 'a Tensor', v)
  if (v.isDisposed) throw new InnflowError('ERR_DISPOSED', `${fn}: ${name} was disposed`)
  return v
}

/** Validates a batch (from data or a data function) and returns its samples and conditions. */
function readBatch(fn: string, name: string, b: unknown): { x: Tensor; c: Tensor[] } {
  if (b instanceof Tensor) return { x: checkLiveTensor(fn, name, b), c: [] }
  if (b === null || typeof b !== 'object' || Array.isArray(b) || !('x' in b))
    throw argumentError(fn, name, 'a Tensor or { x: Tensor, c?: Tensor | Tensor[] }', b)
  const { x, c } = b as { x: unknown; c?: unknown }
  const xs = checkLiveTensor(fn, `${name}.x`, x)
  const cs = c === undefined ? [] : Array.isArray(c) ? c : [c]
  cs.forEach((t, i) => checkLiveTensor(fn, `${name}.c[${i}]`, t))
  return { x: xs, c: cs as Tensor[] }
}

function readTrainState(file: string, metadata: Record<string, string>): TrainState {
  const fail = (msg: string) => new InnflowError('ERR_CHECKPOINT', `train: cannot resume from '${file}': ${msg} (nothing was changed)`)
  const text = metadata[TRAIN_CHECKPOINT_KEY]
  if (text === undefined) throw fail(`it holds no '${TRAIN_CHECKPOINT_KEY}' metadata (it was not written by train())`)
  let s: TrainState
  try {
    s = JSON.parse(text) as TrainState
  } catch {
    throw fail(`its '${TRAIN_CHECKPOINT_KEY}' metadata is not valid JSON`)
  }
  const ok =
    s !== null && typeof s === 'object' && s.format === 1 && Number.isSafeInteger(s.step) && s.step >= 0 &&
    typeof s.rng === 'string' && /^[0-9a-f]{32}$/i.test(s.rng) && s.data !== null && typeof s.data === 'object' &&
    (s.data.kind === 'function' ||
      (s.data.kind === 'tensor' && isPositiveInteger(s.data.rows) && isPositiveInteger(s.data.batchSize) && Number.isSafeInteger(s.data.seed)))
  if (!ok) throw fail(`its '${TRAIN_CHECKPOINT_KEY}' metadata is malformed: ${text}`)
  return s
}

function describeData(d: TrainState['data']): string {
  return d.kind === 'function' ? 'a batch function' : `tensor data of ${d.rows} rows in batches of ${d.batchSize} with seed ${d.seed}`
}

/**
 * Trains `flow` by maximum likelihood (see the file comment). Every option is validated before anything
 * changes: bad options throw InnflowError ERR_ARGUMENT, and a checkpoint that cannot be resumed throws
 * ERR_CHECKPOINT, with the model, the optimiser and the random generator untouched. Gradients are
 * cleared (zeroGrad) when training ends.
 * @example
 * const { losses } = train(flow, data.moons(10000), { steps: 2000, lr: 1e-3, checkpoint: { path: 'moons.safetensors', every: 500 }, resume: true })
 */
export function train(flow: FlowLike, data: TrainData, options: TrainOptions): TrainResult {
  const fn = 'train'
  if (!isFlowLike(flow)) throw argumentError(fn, 'flow', 'a flow (SequenceINN, GraphINN or a module whose forward returns [z, logJacDet])', flow)
  if (options === undefined) throw argumentError(fn, 'options', '{ steps, ... }', options)
  const o = readOptions<TrainOptions>(fn, options, OPTION_NAMES)
  if (!isPositiveInteger(o.steps)) throw argumentError(fn, 'options.steps', 'a positive integer', o.steps)
  const steps = o.steps

  // --- data
  let sample: (step: number) => { x: Tensor; c: Tensor[] }
  let dataState: TrainState['data']
  if (typeof data === 'function') {
    if (o.batchSize !== undefined) throw new InnflowError('ERR_ARGUMENT', `${fn}: options.batchSize applies to tensor data; a batch function chooses its own batch size`)
    if (o.seed !== undefined) throw new InnflowError('ERR_ARGUMENT', `${fn}: options.seed sets the order of tensor data; a batch function draws its own batches`)
    const draw = data
    sample = (step) => readBatch(fn, `the batch returned by data(${step})`, draw(step))
    dataState = { kind: 'function' }
  } else {
    const all = readBatch(fn, 'data', data)
    if (all.x.ndim < 2 || all.x.shape[0] < 1) throw argumentError(fn, 'data', 'a tensor of samples (rows, ...dims) with at least one row', `shape (${all.x.shape.join(', ')})`)
    const rows = all.x.shape[0]
    all.c.forEach((t, i) => {
      if (t.ndim < 1 || t.shape[0] !== rows) throw new InnflowError('ERR_SHAPE', `${fn}: data.c[${i}] has shape (${t.shape.join(', ')}); expected ${rows} rows like data.x`)
    })
    const bs = o.batchSize ?? Math.min(256, rows)
    if (!isPositiveInteger(bs) || bs > rows) throw argumentError(fn, 'options.batchSize', `a positive integer <= the ${rows} rows of data`, o.batchSize)
    const seed = o.seed ?? 0
    if (!Number.isSafeInteger(seed) || seed < 0) throw argumentError(fn, 'options.seed', 'a non-negative safe integer', o.seed)
    const order = new ShuffledBatches(rows, bs, seed)
    sample = (step) => {
      const idx = order.indices(step)
      return { x: indexSelect(all.x, 0, idx), c: all.c.map((t) => indexSelect(t, 0, idx)) }
    }
    dataState = { kind: 'tensor', rows, batchSize: bs, seed }
  }
  if (o.transform !== undefined && typeof o.transform !== 'function') throw argumentError(fn, 'options.transform', 'a function (x, step) => Tensor', o.transform)

  // --- optimisation
  if (o.optimizer !== undefined && !(o.optimizer instanceof Optimizer)) throw argumentError(fn, 'options.optimizer', 'an Optimizer (e.g. new optim.Adam(flow.parameters()))', o.optimizer)
  if (o.optimizer !== undefined && o.lr !== undefined)
    throw new InnflowError('ERR_ARGUMENT', `${fn}: options.lr sets the learning rate of the default Adam; with options.optimizer, set it on the optimizer instead`)
  if (o.lr !== undefined && !(typeof o.lr === 'number' && Number.isFinite(o.lr) && o.lr > 0)) throw argumentError(fn, 'options.lr', 'a positive finite number', o.lr)
  if (o.clipGradNorm !== undefined && !(typeof o.clipGradNorm === 'number' && o.clipGradNorm > 0 && !Number.isNaN(o.clipGradNorm)))
    throw argumentError(fn, 'options.clipGradNorm', 'a positive number', o.clipGradNorm)
  if (o.compile !== undefined && typeof o.compile !== 'boolean') throw argumentError(fn, 'options.compile', 'a boolean', o.compile)
  const getParams = (flow as { parameters?: unknown }).parameters
  if (o.optimizer === undefined && typeof getParams !== 'function') throw argumentError(fn, 'flow', 'a module with parameters() (or pass options.optimizer)', flow)

  // --- reporting
  if (o.onStep !== undefined && typeof o.onStep !== 'function') throw argumentError(fn, 'options.onStep', 'a function ({ step, loss, samplesPerSecond }) => void', o.onStep)
  const progress = o.progress ?? true
  if (typeof progress !== 'boolean' && (progress === null || typeof progress !== 'object' || Array.isArray(progress)))
    throw argumentError(fn, 'options.progress', 'a boolean or { stream, force }', o.progress)

  // --- checkpoints
  const isModule = flow instanceof Module || isInvertibleModule(flow)
  let ckpt: { path: string; every: number } | null = null
  if (o.checkpoint !== undefined) {
    const c = o.checkpoint as { path?: unknown; every?: unknown } | null
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw argumentError(fn, 'options.checkpoint', '{ path, every }', c)
    for (const k of Object.keys(c)) if (k !== 'path' && k !== 'every') throw new InnflowError('ERR_ARGUMENT', `${fn}: unknown option 'checkpoint.${k}' (known: path, every)`)
    if (typeof c.path !== 'string' || c.path === '') throw argumentError(fn, 'options.checkpoint.path', 'a file path', c.path)
    if (!isPositiveInteger(c.every)) throw argumentError(fn, 'options.checkpoint.every', 'a positive integer (steps between checkpoints)', c.every)
    ckpt = { path: c.path, every: c.every }
  }
  let resumeFrom: string | null = null
  if (o.resume !== undefined && o.resume !== false) {
    if (o.resume === true) {
      if (!ckpt) throw new InnflowError('ERR_ARGUMENT', `${fn}: options.resume = true resumes from options.checkpoint.path, but no checkpoint option was given`)
      if (fs.existsSync(ckpt.path)) resumeFrom = ckpt.path
    } else if (typeof o.resume === 'string' && o.resume !== '') {
      if (!fs.existsSync(o.resume)) throw new InnflowError('ERR_ARGUMENT', `${fn}: options.resume names '${o.resume}', which does not exist (resume: true starts fresh when the checkpoint is missing)`)
      resumeFrom = o.resume
    } else {
      throw argumentError(fn, 'options.resume', 'a checkpoint path or a boolean', o.resume)
    }
  }
  if ((ckpt || resumeFrom) && !isModule) throw argumentError(fn, 'flow', 'a Module (SequenceINN, GraphINN, InvertibleModule) to checkpoint or resume', flow)

  // Everything is valid; read the checkpoint's train state before touching anything.
  let resumeState: TrainState | null = null
  if (resumeFrom) {
    resumeState = readTrainState(resumeFrom, readSafetensorsMetadata(resumeFrom))
    if (resumeState.step > steps)
      throw new InnflowError('ERR_ARGUMENT', `${fn}: the checkpoint '${resumeFrom}' is at step ${resumeState.step}, beyond options.steps = ${steps}`)
    const a = resumeState.data
    const b = dataState
    const same = a.kind === b.kind && (a.kind === 'function' || (b.kind === 'tensor' && a.rows === b.rows && a.batchSize === b.batchSize && a.seed === b.seed))
    if (!same)
      throw new InnflowError('ERR_CHECKPOINT', `${fn}: the checkpoint '${resumeFrom}' was trained on ${describeData(a)}, but this run has ${describeData(b)}; resuming would not continue the same run (nothing was changed)`)
  }

  const optimizer = o.optimizer ?? new Adam((getParams as () => Tensor[]).call(flow), { lr: o.lr ?? 1e-3 })
  let startStep = 0
  if (resumeFrom && resumeState) {
    try {
      loadCheckpoint(resumeFrom, { model: flow as unknown as Module, optimizer })
    } catch (e) {
      if (!o.optimizer) optimizer.dispose()
      throw e
    }
    setRngState(resumeState.rng)
    startStep = resumeState.step
  }

  const save = (step: number) => {
    const state: TrainState = { format: 1, step, rng: getRngState(), data: dataState }
    saveCheckpoint(ckpt!.path, { model: flow as unknown as Module, optimizer, metadata: { [TRAIN_CHECKPOINT_KEY]: JSON.stringify(state) } })
  }

  const params = optimizer.params
  // One training step on a batch (x and its conditions); compiled, it is captured once and replayed.
  const stepBody = (x: Tensor, ...c: Tensor[]): Tensor => {
    const [z, logJacDet] = runFlow(fn, flow, x, c)
    const l = nllLoss(z, logJacDet)
    optimizer.zeroGrad()
    l.backward()
    if (o.clipGradNorm !== undefined) clipGradNorm(params, o.clipGradNorm)
    optimizer.step()
    return l
  }
  const compiled = o.compile ? compileStep(stepBody) : null
  const bar = progress === false ? null : new ProgressBar(startStep, steps, progress === true ? {} : progress)
  const losses: number[] = []
  const window: { ms: number; samples: number }[] = []
  const started = performance.now()
  try {
    for (let step = startStep + 1; step <= steps; step++) {
      const t0 = performance.now()
      const { loss, samples } = tidy(() => {
        const batch = sample(step)
        const x = o.transform ? checkLiveTensor(fn, 'the tensor returned by options.transform', o.transform(batch.x, step)) : batch.x
        const l = compiled ? compiled(x, ...batch.c) : stepBody(x, ...batch.c)
        return { loss: l.item(), samples: x.shape[0] }
      })
      losses.push(loss)
      window.push({ ms: performance.now() - t0, samples })
      if (window.length > 20) window.shift()
      const ms = window.reduce((a, w) => a + w.ms, 0)
      const samplesPerSecond = ms > 0 ? (window.reduce((a, w) => a + w.samples, 0) * 1000) / ms : Infinity
      o.onStep?.({ step, steps, loss, samplesPerSecond, seconds: (performance.now() - started) / 1000 })
      bar?.update(step, loss, samplesPerSecond)
      if (ckpt && (step % ckpt.every === 0 || step === steps)) save(step)
    }
  } finally {
    bar?.finish()
    compiled?.release()
    optimizer.zeroGrad()
  }
  return { losses, startStep, step: steps, optimizer, seconds: (performance.now() - started) / 1000 }
}

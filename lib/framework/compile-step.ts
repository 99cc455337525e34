/**
 * compileStep: a training step (forward, loss, backward, optimiser step) captured once and then replayed with one
 * native call per step.
 *
 * While the step function runs under capture, every native kernel it launches runs as usual and is also kept,
 * with the tensors it reads and writes, in a program (native/capture.cc). A replay copies the new inputs into the
 * captured (static) input tensors, lets the optimisers write this step's scalars (learning rate, step counts)
 * into their kernels' slots, and runs the program: the same kernels on the same memory, with no JavaScript, no
 * autograd bookkeeping and no allocation of results. On the GPU the program's static stretches are CUDA graphs
 * (cuda/graph.cu); random draws and optimiser steps are launched between them from the host, so each replay
 * draws fresh numbers and uses the current learning rate. Replays compute exactly what eager steps compute.
 *
 * Memory: the step's intermediate tensors (made during capture, reachable only by the program once the step function
 * returned) are planned like a compiler's registers: those whose lifetimes in the step do not overlap share one arena,
 * so a compiled step needs about an eager step's peak memory (native/capture.cc, planMemory).
 */
import { core } from '../binding'
import {
  beginHooks,
  captureNative,
  compiledGeneration,
  endHooks,
  NativeProgram,
  ProgramInfo,
} from '../capture'
import { argumentError, InnflowError } from '../errors'
import { keep, tidy } from '../scope'
import { fromHandle, Tensor } from '../tensor'

/** What a step function may return: tensors (read them after the call), or nothing. */
export type StepOutput = Tensor | readonly Tensor[] | { readonly [name: string]: Tensor } | void

/** Options of {@link compileStep}. */
export interface CompileStepOptions {
  /**
   * Eager calls before the first capture (default 1). Lazy initialisation (ActNorm's data-dependent
   * initialisation, optimiser moments) is never kept in a capture anyway; warm-up calls also cover lazy work in
   * user code, as torch.cuda.graphs recommends.
   */
  warmup?: number
  /**
   * On the GPU, replay the step's static stretches as CUDA graphs (default true). With false every kernel is
   * launched from the host: still one native call per step, but one launch per kernel.
   */
  cudaGraphs?: boolean
  /**
   * How many input signatures (shapes, dtypes, devices) keep a capture of their own (default 4), so that a
   * smaller last batch does not throw away the capture of the full one; the least recently used is dropped.
   */
  maxCaptures?: number
  /**
   * Share memory between the step's intermediate tensors whose lifetimes do not overlap (default true). Only the
   * tensors the step function returns (and parameters' gradients, and anything else still referenced from
   * JavaScript) keep their own memory.
   */
  planMemory?: boolean
}

/** A compiled step: call it like the step function. */
export interface CompiledStep<A extends Tensor[], R extends StepOutput> {
  /**
   * Runs one step on `inputs`. The first `warmup` calls run the step function eagerly; the next call captures
   * it (and is itself a normal step); later calls with inputs of the same shapes, dtypes and devices replay the
   * capture. Inputs of another signature are captured anew. A replay returns the same tensors as its capture,
   * overwritten with this step's values: read them (or copy them) before the next call. Disposing them is allowed
   * (the next call then captures again) but not needed: they belong to the compiled step.
   */
  (...inputs: A): R
  /** What the most recently used capture holds (null before the first capture). */
  info(): ProgramInfo | null
  /** Captures made so far (a new input signature, or a recapture after a model or optimiser state was replaced). */
  readonly captures: number
  /** Frees every capture and the tensors it holds; the next call captures again. */
  release(): void
}

interface Capture<R> {
  inputs: Tensor[]
  result: R
  program: NativeProgram
  hooks: (() => void)[]
  generation: number
}

function resultTensors(fn: string, r: unknown): Tensor[] {
  if (r === undefined) return []
  if (r instanceof Tensor) return [r]
  const values = Array.isArray(r) ? r : r !== null && typeof r === 'object' ? Object.values(r) : [r]
  for (const v of values)
    if (!(v instanceof Tensor))
      throw new InnflowError(
        'ERR_CAPTURE',
        `${fn}: the step function must return a tensor, an array or object of tensors, or nothing; got ${typeof v === 'number' ? 'a number' : typeof v} ` +
          '(a value computed on the host would be frozen at its captured value: return the tensor and read it after the step)',
      )
  return values as Tensor[]
}

function signature(inputs: readonly Tensor[]): string {
  return inputs.map((t) => `${t.dtype}/${t.device}/${t.shape.join('x')}/${t.requiresGrad ? 'grad' : ''}`).join('|')
}

/**
 * Compiles a training step: `fn` is captured once and replayed with one native call per step (see the file
 * comment). The step function takes tensors (a batch, a condition) and returns tensors or nothing. What it does
 * on the host is frozen at capture: numbers it passes to ops, which branches it takes, which parameters have
 * gradients. The optimiser's learning rate and step counts are the exception: they are read at every replay, so
 * schedules work. Reading a value inside the step function (`item()`, `toArray()`) is refused with ERR_CAPTURE
 * while capturing. Moving the model (`module.to`) or replacing optimiser state makes the next call capture again.
 * @example
 * const step = compileStep((x: Tensor) => {
 *   opt.zeroGrad()
 *   const [z, logJac] = inn.forward(x)
 *   const loss = nllLoss(z, logJac)
 *   loss.backward()
 *   opt.step()
 *   return loss
 * })
 * for (const batch of batches) console.log(step(batch).item())
 */
export function compileStep<A extends Tensor[], R extends StepOutput>(
  fn: (...inputs: A) => R,
  options: CompileStepOptions = {},
): CompiledStep<A, R> {
  const name = 'compileStep'
  if (typeof fn !== 'function') throw argumentError(name, 'fn', 'a function', fn)
  if (options === null || typeof options !== 'object') throw argumentError(name, 'options', 'an object', options)
  for (const k of Object.keys(options))
    if (!['warmup', 'cudaGraphs', 'maxCaptures', 'planMemory'].includes(k))
      throw argumentError(name, `option '${k}'`, 'one of warmup, cudaGraphs, maxCaptures, planMemory', k)
  const warmup = options.warmup ?? 1
  if (!Number.isInteger(warmup) || warmup < 0) throw argumentError(name, 'warmup', 'a non-negative integer', warmup)
  const cudaGraphs = options.cudaGraphs ?? true
  if (typeof cudaGraphs !== 'boolean') throw argumentError(name, 'cudaGraphs', 'a boolean', cudaGraphs)
  const planMemory = options.planMemory ?? true
  if (typeof planMemory !== 'boolean') throw argumentError(name, 'planMemory', 'a boolean', planMemory)
  const maxCaptures = options.maxCaptures ?? 4
  if (!Number.isInteger(maxCaptures) || maxCaptures < 1) throw argumentError(name, 'maxCaptures', 'a positive integer', maxCaptures)

  let calls = 0
  let captureCount = 0
  let latest: Capture<R> | null = null
  const captures = new Map<string, Capture<R>>()

  const drop = (c: Capture<R>) => {
    captureNative.releaseProgram(c.program)
    for (const t of c.inputs) t.dispose()
    if (latest === c) latest = null
  }
  const releaseAll = () => {
    for (const c of captures.values()) drop(c)
    captures.clear()
  }

  const capture = (key: string, inputs: Tensor[]): R => {
    if (captureNative.isCapturing()) throw new InnflowError('ERR_CAPTURE', `${name}: a compiled step cannot run inside another step being captured`)
    // static inputs: the program reads these; each replay copies the new inputs into them
    const statics = inputs.map((x) => {
      const s = keep(fromHandle(core.cast(x.handle, x.dtype)))
      if (x.requiresGrad) s.requiresGrad = true
      return s
    })
    captureNative.captureBegin()
    beginHooks()
    let result: R
    try {
      // the step's own tidy: what it made and does not return is disposed before the memory plan, which shares
      // memory only between tensors no JavaScript handle can reach
      result = tidy(() => {
        const r = fn(...(statics as A))
        for (const t of resultTensors(name, r)) keep(t)
        return r
      })
    } catch (e) {
      captureNative.captureAbort()
      endHooks()
      for (const s of statics) s.dispose()
      throw e
    }
    const hooks = endHooks()
    const program = captureNative.captureEnd(cudaGraphs, planMemory)
    const c: Capture<R> = { inputs: statics, result, program, hooks, generation: compiledGeneration() }
    if (captures.size >= maxCaptures) {
      const oldest = captures.keys().next().value as string
      drop(captures.get(oldest) as Capture<R>)
      captures.delete(oldest)
    }
    captures.set(key, c)
    latest = c
    captureCount++
    return result
  }

  const step = (...inputs: A): R => {
    inputs.forEach((x, i) => {
      if (!(x instanceof Tensor)) throw argumentError(name, `input ${i}`, 'a tensor', x)
      if (x.isDisposed) throw new InnflowError('ERR_DISPOSED', `${name}: input ${i} was disposed`)
    })
    calls++
    if (calls <= warmup) return fn(...inputs)
    const key = signature(inputs)
    let c = captures.get(key)
    if (c && c.generation !== compiledGeneration()) {
      // a tensor a capture may hold was replaced (module.to, optimiser state loaded): capture again
      releaseAll()
      c = undefined
    }
    if (c && resultTensors(name, c.result).some((t) => t.isDisposed)) {
      // the caller disposed a result: the replay could not hand it back, so this signature is captured again
      drop(c)
      captures.delete(key)
      c = undefined
    }
    if (!c) return capture(key, inputs)
    captures.delete(key)
    captures.set(key, c) // most recently used last
    latest = c
    inputs.forEach((x, i) => core.copyInto((c as Capture<R>).inputs[i].handle, x.handle))
    for (const h of c.hooks) h()
    captureNative.runProgram(c.program)
    return c.result
  }

  const compiled = Object.assign(step, {
    info: () => (latest ? captureNative.programInfo(latest.program) : null),
    release: releaseAll,
  })
  Object.defineProperty(compiled, 'captures', { get: () => captureCount, enumerable: true })
  return compiled as unknown as CompiledStep<A, R>
}

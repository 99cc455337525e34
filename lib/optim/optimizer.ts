/**
 * The base of every optimiser: the parameter list, option validation, `zeroGrad()`, and state dicts keyed
 * by parameter index (`state.<i>.<name>`, PyTorch's state names) so that checkpoints can hold them.
 */
import { bindingFor, core, NativeTensor } from '../binding'
import { argumentError, describe, InnflowError } from '../errors'
import { keep } from '../scope'
import { invalidateCompiledSteps, NativeScalarSlot, withoutCapture } from '../capture'
import { fromHandle, Tensor } from '../tensor'

/** @internal The native multi-tensor kernels of native/cpu/optim.cc. */
export interface OptimBinding {
  adamStep(
    params: NativeTensor[], grads: NativeTensor[], expAvg: NativeTensor[], expAvgSq: NativeTensor[], steps: number[],
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number,
  ): NativeScalarSlot | undefined
  sgdStep(
    params: NativeTensor[], grads: NativeTensor[], momentumBufs: NativeTensor[], fresh: number[],
    lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: boolean,
  ): NativeScalarSlot | undefined
  clipGradNorm(grads: NativeTensor[], maxNorm: number, normType: number): number
}
/** @internal */
export const N = bindingFor<OptimBinding>()

function isTensorLike(v: unknown): v is Tensor {
  return v instanceof Tensor || (v !== null && typeof v === 'object' && (v as { __isInnflowTensor?: boolean }).__isInnflowTensor === true)
}

/** @internal Validates a parameter list: an iterable of distinct, live, leaf tensors. */
export function collectParams(fn: string, params: unknown, allowEmpty = false): Tensor[] {
  if (isTensorLike(params)) return [params]
  if (params === null || typeof params !== 'object' || typeof (params as Iterable<unknown>)[Symbol.iterator] !== 'function')
    throw argumentError(fn, 'params', 'an array (or iterable) of tensors, e.g. model.parameters()', params)
  const out: Tensor[] = []
  const seen = new Set<Tensor>()
  let i = 0
  for (const p of params as Iterable<unknown>) {
    if (!isTensorLike(p)) throw argumentError(fn, `params[${i}]`, 'a Tensor', p)
    if (p.isDisposed) throw new InnflowError('ERR_DISPOSED', `${fn}: params[${i}] was disposed`)
    if (seen.has(p)) throw new InnflowError('ERR_ARGUMENT', `${fn}: params[${i}] appears more than once in the parameter list`)
    seen.add(p)
    out.push(p)
    i++
  }
  if (out.length === 0 && !allowEmpty) throw new InnflowError('ERR_ARGUMENT', `${fn}: got an empty parameter list`)
  return out
}

/** @internal Reads an options object, refusing unknown keys (a snake_case `weight_decay` is a silent bug otherwise). */
export function readOptions<T extends object>(fn: string, opts: unknown, known: readonly (keyof T & string)[]): Partial<T> {
  if (opts === undefined) return {}
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw argumentError(fn, 'options', 'an options object', opts)
  for (const k of Object.keys(opts))
    if (!(known as readonly string[]).includes(k))
      throw new InnflowError('ERR_ARGUMENT', `${fn}: unknown option '${k}' (known options: ${known.join(', ')})`)
  return opts as Partial<T>
}

/** @internal A finite number within [min, max) or [min, max]. */
export function checkNumber(fn: string, name: string, v: unknown, min: number, max = Infinity, maxExclusive = false): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && v >= min && (maxExclusive ? v < max : v <= max)
  if (!ok) {
    const range = max === Infinity ? `a finite number >= ${min}` : `a number in [${min}, ${max}${maxExclusive ? ')' : ']'}`
    throw argumentError(fn, name, range, v)
  }
  return v as number
}

/**
 * @internal A zero tensor shaped and typed like p that survives tidy (optimiser state). Made outside any step
 * being captured: a compiled step must not zero the moments again at every replay.
 */
export function stateZeros(p: Tensor): Tensor {
  return withoutCapture(() => keep(fromHandle(core.full(p.shape, 0, p.dtype, p.device))))
}

/** @internal A kept copy of src with the dtype and device of `like` (its parameter). */
export function stateCopy(src: Tensor, like: Tensor): Tensor {
  return withoutCapture(() => stateCopyNow(src, like))
}
function stateCopyNow(src: Tensor, like: Tensor): Tensor {
  const moved = src.device === like.device ? null : core.toDevice(src.handle, like.device)
  const c = core.cast(moved ?? src.handle, like.dtype)
  moved?.dispose()
  return keep(fromHandle(c))
}

/**
 * @internal Converts a state tensor to its parameter's dtype and device (after `module.to(...)` or loading a
 * state dict saved elsewhere), disposing the old one.
 */
export function matchDtype(t: Tensor, p: Tensor): Tensor {
  if (t.dtype === p.dtype && t.device === p.device) return t
  invalidateCompiledSteps()
  const c = stateCopy(t, p)
  t.dispose()
  return c
}

/** The parsed `state.<i>.<name>` entries of an optimiser state dict, grouped by parameter index. */
export type GroupedState = Map<number, Map<string, Tensor>>

/**
 * Base class of the optimisers. Subclasses implement `step()` and their per-parameter state. Parameters
 * without a gradient are skipped by `step()`, as in PyTorch.
 */
export abstract class Optimizer {
  /** The optimised parameters, in the order given (state dict indices refer to this order). */
  readonly params: readonly Tensor[]
  /** @internal */ protected readonly name: string
  /** @internal the state tensor names every parameter with state must have */
  protected abstract readonly stateNames: readonly string[]

  protected constructor(name: string, params: unknown) {
    this.name = name
    this.params = Object.freeze(collectParams(name, params))
  }

  /** Applies one update to every parameter that has a gradient. */
  abstract step(): void

  /** Drops every parameter's gradient (sets `.grad` to null and frees it), as PyTorch's default. */
  zeroGrad(): void {
    for (const p of this.params) {
      const g = p.grad
      if (g) {
        p.grad = null
        g.dispose()
      }
    }
  }

  /** Frees the optimiser's state (moments, momentum buffers); a later step starts from fresh state. */
  dispose(): void {
    invalidateCompiledSteps()
    this.clearState()
  }
  [Symbol.dispose](): void {
    this.dispose()
  }

  /** @internal the state of parameter i as named tensors (live references), or null when it has none yet */
  protected abstract stateOf(i: number): Record<string, Tensor | number> | null
  /** @internal replaces parameter i's state with copies of the given tensors (already validated) */
  protected abstract setState(i: number, entries: Map<string, Tensor>): void
  /** @internal frees all state */
  protected abstract clearState(): void

  /**
   * The optimiser state as an object of tensors, keyed `state.<paramIndex>.<name>` with PyTorch's names
   * (Adam: `step`, `exp_avg`, `exp_avg_sq`; SGD: `momentum_buffer`). Step counts are 0-d float64 tensors.
   * The tensors are copies owned by the caller (dispose them when done). Hyperparameters are not included:
   * they come from the constructor.
   */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {}
    this.params.forEach((_, i) => {
      const s = this.stateOf(i)
      if (!s) return
      for (const [name, v] of Object.entries(s)) {
        out[`state.${i}.${name}`] =
          typeof v === 'number' ? fromHandle(core.full([], v, 'float64')) : fromHandle(core.cast(v.handle, v.dtype))
      }
    })
    return out
  }

  /**
   * Replaces the optimiser state with the one in `dict` (as made by {@link stateDict}). Everything is
   * validated first (key names, parameter indices, shapes, step counts); on any problem an InnflowError
   * ERR_CHECKPOINT names the keys and the state is left unchanged. Values are converted to each
   * parameter's dtype.
   */
  loadStateDict(dict: Record<string, Tensor>): void {
    this._prepareLoad(dict)()
  }

  /** @internal Validates `dict` and returns the function that applies it (so checkpoints can load atomically). */
  _prepareLoad(dict: unknown): () => void {
    const fn = `${this.name}.loadStateDict`
    if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) throw argumentError(fn, 'dict', 'an object of tensors', dict)
    const grouped: GroupedState = new Map()
    const problems: string[] = []
    for (const [key, value] of Object.entries(dict as Record<string, unknown>)) {
      const m = /^state\.(\d+)\.([A-Za-z_]+)$/.exec(key)
      if (!m || !this.stateNames.includes(m[2])) {
        problems.push(`unexpected key '${key}' (expected state.<i>.{${this.stateNames.join(',')}})`)
        continue
      }
      const i = Number(m[1])
      if (i >= this.params.length) {
        problems.push(`key '${key}' refers to parameter ${i}, but the optimiser has ${this.params.length}`)
        continue
      }
      if (!isTensorLike(value) || value.isDisposed) {
        problems.push(`key '${key}' is not a live tensor (${describe(value)})`)
        continue
      }
      const p = this.params[i]
      if (m[2] === 'step') {
        const v = value.size === 1 ? value.item() : NaN
        if (!(Number.isInteger(v) && v >= 0)) problems.push(`key '${key}': a step count must be one non-negative integer, got ${value.toString()}`)
      } else if (value.shape.join() !== p.shape.join()) {
        problems.push(`key '${key}' has shape [${value.shape.join(', ')}] but parameter ${i} has shape [${p.shape.join(', ')}]`)
      }
      let g = grouped.get(i)
      if (!g) grouped.set(i, (g = new Map()))
      g.set(m[2], value)
    }
    for (const [i, g] of grouped) {
      const missing = this.stateNames.filter((n) => !g.has(n))
      if (missing.length) problems.push(`parameter ${i} lacks ${missing.map((n) => `state.${i}.${n}`).join(', ')}`)
    }
    if (problems.length)
      throw new InnflowError('ERR_CHECKPOINT', `${fn}: the state dict does not fit this optimiser (nothing was loaded):\n  ${problems.join('\n  ')}`)
    return () => {
      invalidateCompiledSteps()
      this.clearState()
      for (const [i, g] of grouped) this.setState(i, g)
    }
  }
}

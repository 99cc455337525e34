/**
 * Explicit memory management: `tidy(fn)` disposes every tensor created inside fn except those it returns or
 * that were `keep()`-ed; `memory()` counts live native tensors and bytes. A GC finalizer in the native layer
 * frees forgotten tensors too, but only as a safety net.
 */
import { core } from './binding'
import { InnflowError } from './errors'
import type { Tensor } from './tensor'

const scopes: Set<Tensor>[] = []

/** @internal Registers a new tensor with the innermost tidy scope. */
export function track(t: Tensor): void {
  if (scopes.length > 0) scopes[scopes.length - 1].add(t)
}

/** @internal Removes a tensor from every scope (it now belongs to a parameter, a gradient, optimizer state...). */
export function untrack(t: Tensor): void {
  for (const s of scopes) s.delete(t)
}

function collect(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return
  if (isTensor(value)) {
    out.add(value)
    return
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, depth + 1)
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out, depth + 1)
}

function isTensor(v: object): v is Tensor {
  return (v as { __isInnflowTensor?: boolean }).__isInnflowTensor === true
}

/**
 * Runs fn and disposes every tensor it created, except the tensors in its result (a tensor, or arrays and
 * plain objects of tensors) and tensors passed to {@link keep}. fn must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new InnflowError('ERR_ARGUMENT', 'tidy: expected a function')
  const scope = new Set<Tensor>()
  scopes.push(scope)
  let result: T
  try {
    result = fn()
  } catch (e) {
    scopes.pop()
    for (const t of scope) if (!t._kept) t.dispose()
    throw e
  }
  scopes.pop()
  if (result instanceof Promise) {
    for (const t of scope) if (!t._kept) t.dispose()
    throw new InnflowError('ERR_ARGUMENT', 'tidy: fn must be synchronous (it returned a Promise)')
  }
  const survivors = new Set<Tensor>()
  collect(result, survivors)
  for (const t of scope) {
    if (survivors.has(t)) {
      if (scopes.length > 0) scopes[scopes.length - 1].add(t)
    } else if (!t._kept) {
      t.dispose()
    }
  }
  return result
}

/** Exempts t from disposal by any enclosing {@link tidy}; returns t. */
export function keep<T extends Tensor>(t: T): T {
  t._kept = true
  untrack(t)
  return t
}

/** Live native memory: tensors (handles not yet disposed), bytes they hold, and bytes the allocator caches. */
export interface MemoryInfo {
  /** Live tensor handles (both devices). */
  tensors: number
  /** Bytes of host memory held by live tensors. */
  bytes: number
  /** The most host bytes held by live tensors at any moment since the last {@link resetPeak} (or since load). */
  peakBytes: number
  /** Freed host blocks kept for reuse. */
  cachedBytes: number
  /** Bytes of device memory held by live CUDA tensors (0 without CUDA; the pool: `cuda.memory()`). */
  cudaBytes: number
}

/** Counts of live native tensors and bytes. */
export function memory(): MemoryInfo {
  const m = core.memory()
  return { tensors: m.tensors, bytes: m.bytes, peakBytes: m.peakBytes, cachedBytes: m.cachedBytes, cudaBytes: m.cudaBytes }
}

/**
 * Restarts the host high-water mark ({@link MemoryInfo.peakBytes}) at the bytes live now, e.g. before a
 * training step whose peak is to be measured.
 */
export function resetPeak(): void {
  core.resetPeak()
}

/** Returns cached (freed but reusable) host blocks, and the CUDA pool's unused memory, to the system. */
export function emptyCache(): void {
  core.emptyCache()
}

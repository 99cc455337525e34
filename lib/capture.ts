/**
 * The state behind compiled steps (lib/framework/compile-step.ts) that lower layers need: the native capture
 * functions (native/capture.cc), the hooks that refresh kept kernels' scalars before each replay (optimisers), a
 * way to run code that must not be kept (state made once), and a generation counter that tells compiled steps to
 * capture again when a tensor they may have kept was replaced.
 */
import { bindingFor } from './binding'

/** An opaque native program: the kernels of one captured step. */
export interface NativeProgram {
  readonly __nativeProgram: never
}

/** An opaque native slot of scalars that a kept kernel reads each time it runs (an optimiser's lr and steps). */
export interface NativeScalarSlot {
  readonly __nativeScalarSlot: never
}

/** What a compiled step's program holds. */
export interface ProgramInfo {
  /** kernels kept */
  kernels: number
  /** kernels replayed from the host because they read host values when they run (random draws, optimiser steps) */
  dynamicKernels: number
  /** kernels that run on the GPU */
  cudaKernels: number
  /** CUDA graphs made so far (at the first replay) */
  graphs: number
  /** bytes of the step's intermediate tensors that the memory plan placed in a shared arena */
  plannedBytes: number
  /** bytes of that arena: tensors whose lifetimes do not overlap share memory */
  arenaBytes: number
}

/** @internal */
export interface CaptureBinding {
  captureBegin(): void
  captureEnd(useGraphs: boolean, planMemory?: boolean): NativeProgram
  captureAbort(): void
  isCapturing(): boolean
  capturePause(): void
  captureResume(): void
  runProgram(program: NativeProgram): void
  programInfo(program: NativeProgram): ProgramInfo
  releaseProgram(program: NativeProgram): void
  setSlot(slot: NativeScalarSlot, values: number[] | Float64Array): void
}

/** @internal */
export const captureNative = bindingFor<CaptureBinding>()

let hooks: (() => void)[] | null = null
let generation = 0

/** @internal Starts collecting replay hooks for a capture; returns them at the end. */
export function beginHooks(): void {
  hooks = []
}
/** @internal */
export function endHooks(): (() => void)[] {
  const h = hooks ?? []
  hooks = null
  return h
}

/**
 * @internal Called by code whose kept kernel reads a scalar slot: `hook` runs before every replay of the step
 * being captured (it advances the optimiser's step counts and writes them, with the current lr, into the slot).
 */
export function onReplay(hook: () => void): void {
  if (hooks) hooks.push(hook)
}

/**
 * Runs fn without keeping its kernels in a step being compiled (they still run, now): for state a module makes once,
 * such as optimiser moments or ActNorm's data-dependent initialisation, which replays of a compiled step must not
 * redo. Values may be read inside fn. Outside a capture it just runs fn.
 * @example if (!this.ready) withoutCapture(() => this.initialise(x))
 */
export function withoutCapture<T>(fn: () => T): T {
  captureNative.capturePause()
  try {
    return fn()
  } finally {
    captureNative.captureResume()
  }
}

/**
 * @internal A tensor that compiled steps may have kept was replaced (a tensor got a new native handle, an
 * optimiser's state was replaced): every compiled step captures again at its next call.
 */
export function invalidateCompiledSteps(): void {
  generation++
}
/** @internal */
export function compiledGeneration(): number {
  return generation
}

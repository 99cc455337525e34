/**
 * The native side of compiled steps (native/capture.cc): while a step is captured every kernel that runs is also
 * kept in a program, which `runProgram` replays with one native call.
 */
import { bindingFor } from '../binding'

/** An opaque native program: the kernels of one captured step. */
export interface NativeProgram {
  readonly __nativeProgram: never
}

/** An opaque native slot of scalars that a kept kernel reads each time it runs (an optimiser's lr and steps). */
export interface NativeScalarSlot {
  readonly __nativeScalarSlot: never
}

export interface ProgramInfo {
  /** kernels kept */
  kernels: number
  /** kernels replayed from the host because they read host values when they run */
  dynamicKernels: number
  /** kernels that run on the GPU */
  cudaKernels: number
  /** CUDA graphs made so far (at the first replay) */
  graphs: number
}

export interface CaptureBinding {
  captureBegin(): void
  captureEnd(useGraphs: boolean): NativeProgram
  captureAbort(): void
  isCapturing(): boolean
  runProgram(program: NativeProgram): void
  programInfo(program: NativeProgram): ProgramInfo
  releaseProgram(program: NativeProgram): void
  setSlot(slot: NativeScalarSlot, values: number[] | Float64Array): void
}

export const captureNative = bindingFor<CaptureBinding>()

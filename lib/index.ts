/**
 * innflow: invertible neural networks and normalizing flows for Node.js, with FrEIA's semantics.
 */
export { InnflowError } from './errors'
export type { ErrorCode } from './errors'
export type { DType, Device } from './dtype'
export { setDefaultDtype, getDefaultDtype } from './dtype'
export { cuda } from './device'
export {
  Tensor, tensor, zeros, ones, full, zerosLike, onesLike, eye, arange, rand, randn, randperm, manualSeed,
  setNumThreads, getNumThreads,
} from './tensor'
export type { TensorLike, TensorOptions } from './tensor'
export { tidy, keep, memory, emptyCache } from './scope'
export type { MemoryInfo } from './scope'
export { noGrad, isGradEnabled } from './autograd/tape'
export * as ops from './ops'
export * as nn from './nn'
export * as optim from './optim'
export * as io from './io'
export * as data from './data'

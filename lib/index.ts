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
  getRngState, setRngState,
  setNumThreads, getNumThreads,
} from './tensor'
export type { TensorLike, TensorOptions } from './tensor'
export { tidy, keep, memory, emptyCache, resetPeak } from './scope'
export { setGemmBackend, getGemmBackend, setMatmulPrecision, getMatmulPrecision } from './ops/matmul'
export type { MatmulPrecision } from './ops/matmul'
export type { GemmBackend } from './ops/matmul'
export type { MemoryInfo } from './scope'
export { noGrad, enableGrad, isGradEnabled, grad } from './autograd/tape'
export * as ops from './ops'
export * as nn from './nn'
export * as optim from './optim'
export * as io from './io'
export * as data from './data'
export * as modules from './modules'
export { InvertibleModule } from './modules/base'
export type { Dims, ModuleOutput, InvertibleModuleOptions, InvertibleModuleClass } from './modules/base'
export { SequenceINN } from './framework/sequence-inn'
export type { AppendOptions } from './framework/sequence-inn'
export { GraphINN } from './framework/graph-inn'
export type { GraphINNOptions } from './framework/graph-inn'
export { InputNode, ConditionNode, OutputNode, Node } from './framework/nodes'
export type { NodeInput, NodeInputs, NodeOptions, NodeConnectOptions } from './framework/nodes'
export type { ForwardOptions } from './framework/common'
export * as distributions from './distributions'
export { train, nllLoss, logLikelihood } from './train'
export type { Batch, TrainData, TrainOptions, TrainResult, StepInfo, FlowLike } from './train'
export * as plot from './plot'

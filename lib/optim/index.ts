/** Optimisers (Adam, SGD) with native multi-tensor updates, and gradient clipping. */
export { Optimizer } from './optimizer'
export { Adam } from './adam'
export type { AdamOptions } from './adam'
export { SGD } from './sgd'
export type { SGDOptions } from './sgd'
export { clipGradNorm } from './clip'

/** Differentiable functional ops, one family per file (each mirrors a file of native/cpu/). */
export * from './elementwise'
export * from './reduce'
export * from './view'
export * from './shape'
export * from './matmul'
export * from './conv'
/** Small dense linear algebra (LU, slogdet, inverse, triangular solve, QR). */
export * as linalg from './linalg'
export * from './lu-conv'
export * from './coupling'
export * from './actnorm'
export * from './loss'
